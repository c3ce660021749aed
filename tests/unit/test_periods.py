from __future__ import annotations

from datetime import date

import pytest
from coordreg_contracts import periods
from coordreg_contracts.common import Cadence


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("2024", date(2024, 1, 1), date(2024, 12, 31)),
        ("2024-H2", date(2024, 7, 1), date(2024, 12, 31)),
        ("2023-Q3", date(2023, 7, 1), date(2023, 9, 30)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2024-12", date(2024, 12, 1), date(2024, 12, 31)),
    ],
)
def test_bounds(period: str, first: date, last: date) -> None:
    assert periods.bounds(period) == (first, last)


def test_each_cadence_has_its_own_form() -> None:
    assert periods.matches_cadence("2024", Cadence.ANNUAL)
    assert periods.matches_cadence("2024", Cadence.ONCE)
    assert not periods.matches_cadence("2024-Q1", Cadence.ANNUAL)
    assert periods.matches_cadence("2024-H1", Cadence.SEMIANNUAL)
    assert not periods.matches_cadence("2024-13", Cadence.MONTHLY)


def test_overlap_with_a_term() -> None:
    assert periods.overlaps("2023-Q1", date(2023, 3, 31), date(2027, 12, 31))
    assert not periods.overlaps("2022-Q4", date(2023, 1, 1), date(2027, 12, 31))


def test_later_periods_sort_later() -> None:
    assert sorted(["2024-Q3", "2023", "2024-Q1", "2024"], key=periods.sort_key) == [
        "2023",
        "2024-Q1",
        "2024-Q3",
        "2024",
    ]


@pytest.mark.parametrize(
    ("cadence", "day", "period"),
    [
        (Cadence.MONTHLY, date(2024, 1, 31), "2024-01"),
        (Cadence.MONTHLY, date(2024, 2, 29), "2024-02"),
        (Cadence.MONTHLY, date(2024, 3, 1), "2024-03"),
        (Cadence.QUARTERLY, date(2024, 3, 31), "2024-Q1"),
        (Cadence.QUARTERLY, date(2024, 4, 1), "2024-Q2"),
        (Cadence.QUARTERLY, date(2024, 12, 31), "2024-Q4"),
        (Cadence.SEMIANNUAL, date(2024, 6, 30), "2024-H1"),
        (Cadence.SEMIANNUAL, date(2024, 7, 1), "2024-H2"),
        (Cadence.ANNUAL, date(2024, 12, 31), "2024"),
        (Cadence.ANNUAL, date(2025, 1, 1), "2025"),
        (Cadence.ONCE, date(2025, 1, 1), "2025"),
    ],
)
def test_the_period_of_a_day(cadence: Cadence, day: date, period: str) -> None:
    assert periods.period_of(cadence, day) == period
    first, last = periods.bounds(period)
    assert first <= day <= last


def test_the_following_period_turns_the_year() -> None:
    assert periods.following("2024-12") == "2025-01"
    assert periods.following("2024-Q4") == "2025-Q1"
    assert periods.following("2024-H2") == "2025-H1"
    assert periods.following("2024") == "2025"
    assert periods.following("2024-09") == "2024-10"
    assert periods.following("9999-12") is None
    assert periods.following("9999") is None


@pytest.mark.parametrize("period", ["2024", "2024-H1", "2024-H2", "2024-Q1", "2024-Q4", "2024-01", "2024-12"])
def test_a_following_period_starts_the_day_after(period: str) -> None:
    after = periods.following(period)
    assert after is not None
    assert periods.bounds(after)[0] == date.fromordinal(periods.bounds(period)[1].toordinal() + 1)


def test_a_term_starting_and_ending_mid_period_spans_both_ends() -> None:
    start, end = date(2024, 2, 15), date(2025, 1, 10)
    assert list(periods.spanning(Cadence.QUARTERLY, start, end)) == [
        "2024-Q1",
        "2024-Q2",
        "2024-Q3",
        "2024-Q4",
        "2025-Q1",
    ]
    assert list(periods.spanning(Cadence.SEMIANNUAL, start, end)) == ["2024-H1", "2024-H2", "2025-H1"]
    assert list(periods.spanning(Cadence.ANNUAL, start, end)) == ["2024", "2025"]
    assert list(periods.spanning(Cadence.ONCE, start, end)) == ["2024", "2025"]
    months = list(periods.spanning(Cadence.MONTHLY, start, end))
    assert months[0] == "2024-02" and months[-1] == "2025-01" and len(months) == 12
    # Each is a period the registry takes a report for over this term.
    assert all(periods.overlaps(p, start, end) for p in months)
    assert not periods.overlaps("2024-01", start, end) and not periods.overlaps("2025-02", start, end)


def test_a_one_day_term_spans_one_period_of_each_form() -> None:
    day = date(2024, 12, 31)
    assert [list(periods.spanning(c, day, day)) for c in periods.FORMS] == [
        ["2024"],
        ["2024-H2"],
        ["2024-Q4"],
        ["2024-12"],
    ]


def test_the_periods_within_a_span() -> None:
    assert periods.within("2024-Q3") == ["2024-Q3", "2024-07", "2024-08", "2024-09"]
    assert periods.within("2024-07") == ["2024-07"]
    assert periods.within("2024-H1") == [
        "2024-H1",
        "2024-Q1",
        "2024-Q2",
        *(f"2024-0{m}" for m in range(1, 7)),
    ]
    year = periods.within("2024")
    assert len(year) == 1 + 2 + 4 + 12
    assert year[:3] == ["2024", "2024-H1", "2024-H2"] and year[-1] == "2024-12"


def test_parts_of_a_period() -> None:
    assert periods.parts("2024") == (2024, Cadence.ANNUAL, 1)
    assert periods.parts("2024-H2") == (2024, Cadence.SEMIANNUAL, 2)
    assert periods.parts("2024-Q3") == (2024, Cadence.QUARTERLY, 3)
    assert periods.parts("2024-11") == (2024, Cadence.MONTHLY, 11)
    with pytest.raises(ValueError, match="not a reporting period"):
        periods.parts("2024-Q5")
