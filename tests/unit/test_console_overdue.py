"""The console's pure parts of "due" and "overdue" (services/console/due.py): boundaries of
months, quarters, halves and years, terms that start or end mid-period, `once`."""

from __future__ import annotations

import datetime as dt

from services.console import due

D = dt.date
TERM = (D(2024, 1, 1), D(2026, 12, 31))


def standing(
    cadence: str, today: dt.date, reported: set[str] | None = None, term: tuple[dt.date, dt.date] = TERM
) -> due.Standing:
    return due.standing(cadence, term[0], term[1], reported or set(), today)


# --- due and overdue, per cadence ------------------------------------------------------------


def test_monthly_on_the_last_and_first_day_of_a_month() -> None:
    on_the_last = standing("monthly", D(2024, 3, 31))
    assert on_the_last.current == "2024-03" and on_the_last.due
    assert on_the_last.overdue == ("2024-01", "2024-02")  # March has not ended on its last day
    on_the_first = standing("monthly", D(2024, 4, 1))
    assert on_the_first.current == "2024-04"
    assert on_the_first.overdue == ("2024-01", "2024-02", "2024-03")


def test_monthly_across_the_turn_of_the_year() -> None:
    new_year = standing("monthly", D(2025, 1, 1), {f"2024-{m:02d}" for m in range(1, 12)})
    assert new_year.current == "2025-01" and new_year.due
    assert new_year.overdue == ("2024-12",)


def test_quarterly_semiannual_and_annual_boundaries() -> None:
    assert standing("quarterly", D(2024, 3, 31)).overdue == ()
    assert standing("quarterly", D(2024, 4, 1)).overdue == ("2024-Q1",)
    assert standing("quarterly", D(2024, 4, 1)).current == "2024-Q2"
    assert standing("semiannual", D(2024, 6, 30)).overdue == ()
    assert standing("semiannual", D(2024, 7, 1)).overdue == ("2024-H1",)
    assert standing("annual", D(2024, 12, 31)).overdue == ()
    assert standing("annual", D(2025, 1, 1)).overdue == ("2024",)
    assert standing("annual", D(2025, 1, 1)).current == "2025"


def test_what_the_lead_reported_is_neither_due_nor_overdue() -> None:
    reported = standing("quarterly", D(2024, 8, 15), {"2024-Q1", "2024-Q3"})
    assert reported.current == "2024-Q3" and not reported.due
    assert reported.overdue == ("2024-Q2",)
    # Another form's report (a year for a quarterly obligation) settles nothing.
    assert standing("quarterly", D(2025, 1, 2), {"2024"}).overdue == (
        "2024-Q1",
        "2024-Q2",
        "2024-Q3",
        "2024-Q4",
    )


def test_a_term_starting_mid_period_asks_for_that_period() -> None:
    term = (D(2024, 2, 15), D(2025, 5, 10))
    mid = standing("quarterly", D(2024, 7, 1), term=term)
    assert mid.overdue == ("2024-Q1", "2024-Q2")  # Q1 overlaps the term: the registry takes its report
    assert standing("semiannual", D(2024, 7, 1), term=term).overdue == ("2024-H1",)
    assert standing("monthly", D(2024, 3, 1), term=term).overdue == ("2024-02",)


def test_before_and_after_the_term_nothing_is_running() -> None:
    term = (D(2024, 2, 15), D(2025, 5, 10))
    before = standing("monthly", D(2024, 2, 14), term=term)
    assert before == due.Standing(None, False, ())
    after = standing("quarterly", D(2025, 9, 1), term=term)
    assert after.current is None and not after.due
    # The last period overlaps the term's end: asked for, and overdue once it has ended.
    assert after.overdue[-1] == "2025-Q2"
    assert len(after.overdue) == 6


def test_once_is_one_report_in_the_term_overdue_only_after_its_last_year() -> None:
    running = standing("once", D(2025, 3, 1))
    assert running.current == "2025" and running.due
    assert running.overdue == ()  # 2024 has ended, but the term has not
    assert standing("once", D(2025, 3, 1), {"2024"}) == due.Standing("2025", False, ())
    ended = standing("once", D(2027, 1, 1))
    assert ended.current is None and not ended.due
    assert ended.overdue == ("2026",)
    assert standing("once", D(2027, 1, 1), {"2025"}).overdue == ()
    # Still the term's last year on its last day: not overdue yet.
    assert standing("once", D(2026, 12, 31)).overdue == ()


def test_an_unknown_cadence_stands_nowhere() -> None:
    assert standing("fortnightly", D(2025, 1, 1)) == due.Standing(None, False, ())
    assert due.current_period("fortnightly", D(2025, 8, 1)) == "2025"


def test_days_overdue_count_from_the_day_after_the_period() -> None:
    assert due.days_overdue("2024-Q1", D(2024, 4, 1)) == 1
    assert due.days_overdue("2024-02", D(2024, 3, 31)) == 31
    assert due.days_overdue("2024", D(2025, 1, 31)) == 31
