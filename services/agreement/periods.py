"""Reporting periods: `2024`, `2024-H1`, `2024-Q3`, `2024-07`, and the cadence each belongs to."""

from __future__ import annotations

import calendar
import functools
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
_MONTHS_PER_UNIT = {Cadence.SEMIANNUAL: 6, Cadence.QUARTERLY: 3, Cadence.MONTHLY: 1}
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
    for cadence in (Cadence.ANNUAL, Cadence.SEMIANNUAL, Cadence.QUARTERLY, Cadence.MONTHLY):
        if matches_cadence(period, cadence):
            return cadence
    raise ValueError(f"not a reporting period: {period!r}")


# A handful of periods, each met on every report: the read model orders a party's reports by
# them whenever it writes an agreement's rows.
@functools.lru_cache(maxsize=4096)
def bounds(period: str) -> tuple[date, date]:
    """First and last day of a period."""
    cadence = cadence_of(period)
    match = full_match(_FORMS[cadence], period)
    assert match is not None
    year = int(match.group(1))
    if cadence is Cadence.ANNUAL:
        return date(year, 1, 1), date(year, 12, 31)
    months = _MONTHS_PER_UNIT[cadence]
    first_month = (int(match.group(2)) - 1) * months + 1
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
