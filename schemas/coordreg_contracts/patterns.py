"""The contract's text patterns, written one way and always matched whole (ADR 0004).

Each pattern is written `^...$` with ASCII classes spelled out (`[0-9]`, never `\\d`, `\\w`
or `\\s`): pydantic's regex engine (Rust's `regex` crate) and JSON Schema's (ECMA-262) read
`$` as the end of the text, but their `\\d` takes every Unicode digit (`2٠٢٤`). Python's
`re` is the dangerous reader: its `$` also matches before a trailing newline, so `re.match`
with `^...$` accepts `"abc\\n"`. Python code therefore matches these patterns only through
`full_match` (re.fullmatch, re.ASCII). tests/unit/test_patterns.py reads the source and the
published schemas for any other way.
"""

from __future__ import annotations

import functools
import re

# Party and obligation ids.
SLUG = r"^[a-z0-9._-]{1,64}$"
# A reporting period: 2024 (annual, once), 2024-H1, 2024-Q3, 2024-07. Years 1000-9999.
PERIOD = r"^[1-9][0-9]{3}(-(H[12]|Q[1-4]|0[1-9]|1[0-2]))?$"
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# Decision 20/2020/QĐ-TTg (mã định danh điện tử của cơ quan, tổ chức): groups of digits and
# capital letters separated by dots, e.g. `H22.18` or `000.00.00.H22`.
ELECTRONIC_ID = r"^[0-9A-Z]+(\.[0-9A-Z]+)*$"
# Decision 19/2025/QĐ-TTg (danh mục và mã số các đơn vị hành chính): a province's code has two
# digits, a commune's five.
UNIT_CODE = r"^[0-9]{2}([0-9]{3})?$"
HEX_SHA256 = r"^[0-9a-f]{64}$"


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


def full_match(pattern: str, text: str) -> re.Match[str] | None:
    """`text` matched whole by `pattern`: no trailing newline slips past `$`."""
    return _compiled(pattern).fullmatch(text)
