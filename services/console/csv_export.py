"""CSV files for download: UTF-8 with a byte order mark (so that Excel reads the Vietnamese as
UTF-8 and not as the machine's code page), rows ended by CRLF (RFC 4180), written by the
standard library's `csv` module.

A cell that a spreadsheet would read as a formula (text from users, such as an obligation's
title, beginning with `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a leading
apostrophe, as OWASP's "CSV Injection" page advises: the spreadsheet then shows it as text and
never evaluates it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE = "text/csv; charset=utf-8"


def cell(value: str | int) -> str | int:
    """The value as it goes into the file: a number as it is, text never as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str | int]]) -> bytes:
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([cell(name) for name in header])
    writer.writerows([cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def attachment(filename: str) -> str:
    """A Content-Disposition for a file name of ASCII letters, digits, `.`, `_` and `-` only."""
    if not filename or not all(c.isascii() and (c.isalnum() or c in "._-") for c in filename):
        raise ValueError(f"not a plain file name: {filename!r}")
    return f'attachment; filename="{filename}"'
