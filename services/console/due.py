"""What an obligation asks of its lead party on a given day, for every cadence: the period running
now and whether the lead has reported it, and the periods that have ended without a report from
the lead (overdue). Pure: the caller gives the term, the lead's reported periods and the day.

The rule is the projections' overdue report (docs/CONTRACT.md, `GET /v1/reports/overdue`): a
period of the obligation's cadence that overlaps the agreement's term asks for a report from
the lead party, and a period is overdue once its last day has passed. A `once` obligation asks
for one report in its whole term: any period the lead reports settles it; it is overdue only
when the year its term ends has passed without one. (The projections list an unreported `once`
obligation under every year of its term, whatever its lead reported in another year; the
console keeps only that last year: `owes`.)

Periods come from `coordreg_contracts.periods`, the project's one source of period arithmetic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from itertools import takewhile

from coordreg_contracts import periods
from coordreg_contracts.common import Cadence


@dataclass(frozen=True)
class Standing:
    current: str | None  # the period running today, within the term; None outside it
    due: bool  # the current period (for `once`: the term) still waits for the lead's report
    overdue: tuple[str, ...]  # ended periods the lead has not reported, oldest first


def cadence_of(code: str) -> Cadence | None:
    """The contract's cadence, or None for a code this console does not know."""
    try:
        return Cadence(code)
    except ValueError:
        return None


def current_period(code: str, today: dt.date) -> str:
    """The period a report made today would usually be for (the report form's default)."""
    cadence = cadence_of(code) or Cadence.ANNUAL
    return periods.period_of(cadence, today)


def owes(cadence: Cadence, period: str, term_end: dt.date, lead_reported: Collection[str]) -> bool:
    """Whether `period` (one of the cadence's, within the term) still asks the lead for a report."""
    if cadence is Cadence.ONCE:
        return not lead_reported and period == periods.period_of(Cadence.ONCE, term_end)
    return period not in lead_reported


def ended(period: str, today: dt.date) -> bool:
    return periods.bounds(period)[1] < today


def days_overdue(period: str, today: dt.date) -> int:
    """Days since the period's last day (1 on the day after it)."""
    return (today - periods.bounds(period)[1]).days


def standing(
    code: str, term_start: dt.date, term_end: dt.date, lead_reported: Collection[str], today: dt.date
) -> Standing:
    cadence = cadence_of(code)
    if cadence is None:
        return Standing(None, False, ())
    running = term_start <= today <= term_end
    current = periods.period_of(cadence, today) if running else None
    if cadence is Cadence.ONCE:
        due = running and not lead_reported
    else:
        due = current is not None and current not in lead_reported
    past = takewhile(lambda period: ended(period, today), periods.spanning(cadence, term_start, term_end))
    overdue = tuple(period for period in past if owes(cadence, period, term_end, lead_reported))
    return Standing(current, due, overdue)
