"""Reporting periods: `2024`, `2024-H1`, `2024-Q3`, `2024-07` (docs/CONTRACT.md), the cadence each
belongs to, and their arithmetic: first and last day, order, the period of a day, the periods
a term holds, the periods inside another.

The one place the project computes with periods: the registry's rules, the read models and the
officials' console all use it (the console reaches the services over HTTP only, so the rule
lives here, in the contract's distribution, and not in the services' code).
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterator
from datetime import date

from coordreg_contracts.common import Cadence
from coordreg_contracts.patterns import full_match

_FORMS: dict[Cadence, str] = {
    Cadence.ANNUAL: r"^([0-9]{4})$",
    Cadence.ONCE: r"^([0-9]{4})$",
    Cadence.SEMIANNUAL: r"^([0-9]{4})-H([12])$",
    Cadence.QUARTERLY: r"^([0-9]{4})-Q([1-4])$",
    Cadence.MONTHLY: r"^([0-9]{4})-(0[1-9]|1[0-2])$",
}
_MONTHS_PER_UNIT = {Cadence.ANNUAL: 12, Cadence.SEMIANNUAL: 6, Cadence.QUARTERLY: 3, Cadence.MONTHLY: 1}
# Each form's periods, longest first: a year holds halves, quarters and months (`within`).
FORMS = (Cadence.ANNUAL, Cadence.SEMIANNUAL, Cadence.QUARTERLY, Cadence.MONTHLY)
EXAMPLES = {
    Cadence.ANNUAL: "2024",
    Cadence.ONCE: "2024",
    Cadence.SEMIANNUAL: "2024-H1",
    Cadence.QUARTERLY: "2024-Q3",
    Cadence.MONTHLY: "2024-07",
}


def matches_cadence(period: str, cadence: Cadence) -> bool:
    return full_match(_FORMS[cadence], period) is not None


def cadence_of(period: str) -> Cadence:
    """The form of a period: `ANNUAL` for a year (a `once` obligation reports a year too)."""
    for cadence in FORMS:
        if matches_cadence(period, cadence):
            return cadence
    raise ValueError(f"not a reporting period: {period!r}")


def parts(period: str) -> tuple[int, Cadence, int]:
    """`(year, form, number)`: `2024-Q3` is `(2024, QUARTERLY, 3)`; a year's number is 1."""
    cadence = cadence_of(period)
    match = full_match(_FORMS[cadence], period)
    assert match is not None
    return int(match.group(1)), cadence, 1 if cadence is Cadence.ANNUAL else int(match.group(2))


def _named(year: int, form: Cadence, number: int) -> str:
    if form in (Cadence.ANNUAL, Cadence.ONCE):
        return f"{year}"
    if form is Cadence.SEMIANNUAL:
        return f"{year}-H{number}"
    if form is Cadence.QUARTERLY:
        return f"{year}-Q{number}"
    return f"{year}-{number:02d}"


# A handful of periods, each met on every report: the read model orders a party's reports by
# them whenever it writes an agreement's rows.
@functools.lru_cache(maxsize=4096)
def bounds(period: str) -> tuple[date, date]:
    """First and last day of a period."""
    year, form, number = parts(period)
    months = _MONTHS_PER_UNIT[form]
    first_month = (number - 1) * months + 1
    last_month = first_month + months - 1
    # monthrange, not "first day of the next period minus one": 9999-12 has no next month.
    return date(year, first_month, 1), date(year, last_month, calendar.monthrange(year, last_month)[1])


def overlaps(period: str, start: date, end: date) -> bool:
    first, last = bounds(period)
    return first <= end and start <= last


def sort_key(period: str) -> tuple[date, date]:
    """Later periods sort after earlier ones; a year sorts by its whole span."""
    first, last = bounds(period)
    return last, first


def period_of(cadence: Cadence, day: date) -> str:
    """The period of that cadence's form that `day` falls in (`once` reports a year)."""
    form = Cadence.ANNUAL if cadence is Cadence.ONCE else cadence
    return _named(day.year, form, (day.month - 1) // _MONTHS_PER_UNIT[form] + 1)


def following(period: str) -> str | None:
    """The next period of the same form; None after the last one the contract can write (9999)."""
    year, form, number = parts(period)
    if number < 12 // _MONTHS_PER_UNIT[form]:
        return _named(year, form, number + 1)
    return _named(year + 1, form, 1) if year < 9999 else None


def spanning(cadence: Cadence, start: date, end: date) -> Iterator[str]:
    """Every period of the cadence's form that overlaps `start`..`end`, oldest first: the periods
    the registry takes reports for over a term of those dates (a `once` obligation: its years)."""
    period: str | None = period_of(cadence, start)
    while period is not None and bounds(period)[0] <= end:
        yield period
        period = following(period)


def within(span: str) -> list[str]:
    """Every period, of every form, that lies wholly inside `span`, longest form first and each
    form oldest first: `2024-Q3` holds `2024-Q3`, `2024-07`, `2024-08` and `2024-09`."""
    first, last = bounds(span)
    found: list[str] = []
    for form in FORMS:
        found.extend(p for p in spanning(form, first, last) if first <= bounds(p)[0] and bounds(p)[1] <= last)
    return found
