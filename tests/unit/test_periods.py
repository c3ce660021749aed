from __future__ import annotations

from datetime import date

import pytest
from coordreg_contracts.common import Cadence

from services.agreement import periods


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
