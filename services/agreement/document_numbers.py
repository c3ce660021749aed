"""Document numbers ("số, ký hiệu") as Vietnamese administrative documents write them.

Decree 30/2020/NĐ-CP on clerical work (Nghị định số 30/2020/NĐ-CP ngày 05/3/2020 của Chính
phủ về công tác văn thư) has a document numbered `<number>/<type>-<issuer>[-<drafting unit>]`,
for example `104/KH-UBND`, the type written with the abbreviations of its Appendix III
("Viết tắt tên loại văn bản và bản sao"). A công văn has no type: `123/UBND-VP`.

Real numbers stray from that shape and are no less real: a joint document adds a marker to
its type (`QCPH`, quy chế phối hợp; `NDPH`, nội dung phối hợp, whose stem is in no appendix),
parts are separated by `/` as well as `-` (`01/QCPH/UBND-UBMTTQ`), the issuers of a joint
document are all listed (`05/CTPH-MTTQ-STTTT-BHB-ĐPTTH`), a legal normative document puts
its year after the number (`24/2021/QH15`) and a Party document a hyphen (`40-CT/TW`). So
`parse` reads what it recognises and never refuses a number: whatever it does not
recognise is left unknown (`document_type is None`), not an error.

Shared by both sides, so it lives with the agreement model: the projections file each
agreement under its `document_type` (`GET /v1/agreements?document_type=`). Nothing decides on
it: the duplicate-document rule compares the number as a whole (docs/CONTRACT.md, decisions 5
and 13).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from coordreg_contracts.document_types import DOCUMENT_TYPES, DocumentType

# The abbreviations of Appendix III, part I, and their names live with the contract
# (coordreg_contracts.document_types): the query API and the console name them too.

# Markers a joint document appends to its type: phối hợp, liên tịch. Custom, not the decree.
JOINT_MARKERS = ("PH", "LT")

# Case does not tell two types apart (no two entries differ only by case), so a number typed
# in capitals (`CTR`, `QYĐ`) still names its type.
_BY_UPPER: dict[str, DocumentType] = {abbreviation.upper(): abbreviation for abbreviation in DOCUMENT_TYPES}
# `CTPH` is customarily a chương trình phối hợp (the demo data's programmes), yet its stem is
# the appendix's `CT`, a chỉ thị: the stem alone does not settle the type.
_AMBIGUOUS_JOINT_STEMS = frozenset({"CT"})

# A slash or a hyphen separates parts; numbers typed in a word processor may carry its dashes.
_SEPARATOR = r"[/\-\u2010-\u2015\u2212]"
_SEPARATORS = re.compile(_SEPARATOR)
# Read as prefixes (`.match`, the only such use: tests/unit/test_patterns.py). Serials and years
# are ASCII digits, as the decree writes them (`2٠٢٤` is no year); blanks are any blanks, as a
# word processor's no-break space is one.
_NUMBER = re.compile(rf"\s*([0-9](?:(?!{_SEPARATOR})\S)*)\s*({_SEPARATOR}|\Z)")
_YEAR = re.compile(r"\s*([0-9]{4})\s*/")


@dataclass(frozen=True)
class DocumentNumber:
    """A document number read apart. Every field but `text` may be unknown."""

    text: str  # the number as given, in Unicode NFC, without surrounding blanks
    number: str | None  # the serial as written ("01", "25a"), if the text starts with a digit
    year: int | None  # the year after the serial, in the shape `24/2021/QH15`
    type_part: str | None  # the part that carries the type, as written ("QCPH", "NDPH", "KH")
    document_type: DocumentType | None  # the Appendix III abbreviation it names ("QC"), None if unknown
    issuers: tuple[str, ...]  # the parts after the type part (all of them if there is none)

    @property
    def type_name(self) -> str | None:
        """The type's name in Appendix III ("Quy chế"), if the type is known."""
        return None if self.document_type is None else DOCUMENT_TYPES[self.document_type]


# An agreement's number is read apart twice for each write of its read-model row.
@functools.lru_cache(maxsize=4096)
def parse(document_number: str) -> DocumentNumber:
    """Reads the number, the year, the type and the issuers of any text; never raises."""
    text = unicodedata.normalize("NFC", document_number).strip()
    rest = text
    number: str | None = None
    year: int | None = None
    if match := _NUMBER.match(rest):
        number, rest = match.group(1), rest[match.end() :]
        if match.group(2) == "/" and (year_match := _YEAR.match(rest)):
            year, rest = int(year_match.group(1)), rest[year_match.end() :]
    parts = tuple(part for part in (p.strip() for p in _SEPARATORS.split(rest)) if part)
    document_type, is_type = _read_type(parts[0]) if parts else (None, False)
    if is_type:
        return DocumentNumber(text, number, year, parts[0], document_type, parts[1:])
    return DocumentNumber(text, number, year, None, None, parts)


def _read_type(part: str) -> tuple[DocumentType | None, bool]:
    """The Appendix III abbreviation `part` names, and whether `part` is a type at all: a joint
    marker makes it one even when its stem is unknown (`NDPH`)."""
    upper = part.upper()
    if upper in _BY_UPPER:
        return _BY_UPPER[upper], True
    for marker in JOINT_MARKERS:
        stem = upper.removesuffix(marker)
        if stem != upper and stem:
            known = stem in _BY_UPPER and stem not in _AMBIGUOUS_JOINT_STEMS
            return (_BY_UPPER[stem] if known else None), True
    return None, False
