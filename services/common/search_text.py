"""Search text: case and Vietnamese diacritics folded away, so `chuyen doi so` finds `Chuyển đổi số`.

Pure, and shared: the read side's searches and the directory's province lookup fold names alike.
"""

from __future__ import annotations

import functools
import unicodedata


class _Marks(dict[int, int | None]):
    """A `str.translate` table dropping combining marks: a code point maps to None if it is
    one, else to itself; each is looked up once, when first met."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        self[code] = kept
        return kept


_MARKS = _Marks()


@functools.lru_cache(maxsize=65536)  # titles and localities repeat on every event of an agreement
def search_key(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    # One pass in C rather than a generator over every character (a title's key is computed
    # once per agreement in a rebuild, as often as its characters in the generator).
    stripped = decomposed.translate(_MARKS)
    return " ".join(stripped.casefold().split())
