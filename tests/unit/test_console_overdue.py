"""The console's pure parts of "due" and "overdue" (services/console/due.py), the overdue report's
rows (services/console/overdue_report.py), its form (services/console/pages/overdue.py) and its
CSV file (services/console/csv_export.py): boundaries of months, quarters, halves and years,
terms that start or end mid-period, `once`, formula injection, the byte order mark, headers."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from coordreg_contracts.client.answers import AgreementDocument, OverdueObligation

from services.console import csv_export, due, overdue_report
from services.console.pages import overdue
from services.console.sessions import Person

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


# --- the report's rows -----------------------------------------------------------------------


def document(**overrides: Any) -> AgreementDocument:
    body: dict[str, Any] = {
        "agreement_id": "a-1",
        "document_number": "07/CTPH-MTTQ-HCTĐ",
        "kind": "program",
        "title": "Chương trình phối hợp",
        "locality": "Phú Thọ",
        "signed_on": "2024-01-10",
        "term": {"start": "2024-01-01", "end": "2026-12-31"},
        "status": "active",
        "closure": None,
        "parties": [
            {"party_id": "mttq", "name": "Ủy ban MTTQ tỉnh", "role": "lead"},
            {"party_id": "hctd", "name": "Hội Chữ thập đỏ tỉnh", "role": "member"},
        ],
        "former_parties": [
            {
                "party_id": "hctd-cu",
                "name": "Hội Chữ thập đỏ tỉnh cũ",
                "role": "member",
                "legal_basis": "202/2025/QH15",
                "effective_on": "2025-07-01",
                "successor_party_ids": ["hctd"],
            }
        ],
        "reports": [
            report("tuyen-truyen", "hctd", "2024-Q1", 4),
            report("tuyen-truyen", "hctd-cu", "2024-Q2", 5),
            report("tuyen-truyen", "mttq", "2024-Q2", 6),
            report("mot-lan", "hctd", "2024", 7),
        ],
        "version": 7,
        "amendments": [],
        "legal_basis": [],
        "obligations": [
            obligation("tuyen-truyen", "- Tuyên truyền", "hctd", ["mttq"], "quarterly"),
            obligation("mot-lan", "Tổng kết", "mttq", ["hctd"], "once"),
        ],
        "parent_agreement_id": None,
    }
    return AgreementDocument.model_validate(body | overrides)


def report(obligation_id: str, party_id: str, period: str, sequence: int) -> dict[str, Any]:
    return {
        "obligation_id": obligation_id,
        "party_id": party_id,
        "period": period,
        "status": "in_progress",
        "completion_percent": 40,
        "reported_on": "2024-07-02",
        "sequence": sequence,
    }


def obligation(oid: str, title: str, lead: str, supporters: list[str], cadence: str) -> dict[str, Any]:
    return {
        "obligation_id": oid,
        "title": title,
        "lead_party_id": lead,
        "supporting_party_ids": supporters,
        "cadence": cadence,
        "status": "active",
    }


def item(oid: str, title: str, lead: str, cadence: str) -> OverdueObligation:
    return OverdueObligation(
        lead_party_id=lead,
        agreement_id="a-1",
        document_number="07/CTPH-MTTQ-HCTĐ",
        agreement_title="Chương trình phối hợp",
        obligation_id=oid,
        title=title,
        cadence=cadence,
    )


def test_rows_carry_supporters_names_the_last_report_and_days_overdue() -> None:
    found = [
        ("2024-Q3", item("tuyen-truyen", "- Tuyên truyền", "hctd", "quarterly")),
        ("2024-Q2", item("tuyen-truyen", "- Tuyên truyền", "hctd", "quarterly")),
    ]
    rows = overdue_report.rows_of(found, {"a-1": document()}, D(2024, 10, 31))
    assert [r.period for r in rows] == ["2024-Q2", "2024-Q3"]  # oldest first
    q2 = rows[0]
    assert q2.lead == overdue_report.Body("hctd", "Hội Chữ thập đỏ tỉnh")
    assert q2.supporters == (overdue_report.Body("mttq", "Ủy ban MTTQ tỉnh"),)
    assert q2.period_end == D(2024, 6, 30)
    assert q2.days_overdue == 123
    # The last report on the obligation, by any party: the Front's, later in the same period.
    assert q2.last_report is not None
    assert (q2.last_report.period, q2.last_report.reporter.name) == ("2024-Q2", "Ủy ban MTTQ tỉnh")


def test_a_former_partys_report_is_named_from_former_parties() -> None:
    doc = document(reports=[report("tuyen-truyen", "hctd-cu", "2024-Q2", 5)])
    [row] = overdue_report.rows_of(
        [("2024-Q3", item("tuyen-truyen", "t", "hctd", "quarterly"))], {"a-1": doc}, D(2024, 10, 1)
    )
    assert row.last_report is not None and row.last_report.reporter.name == "Hội Chữ thập đỏ tỉnh cũ"


def test_once_rows_only_for_the_terms_last_year_and_only_unreported() -> None:
    once = item("mot-lan", "Tổng kết", "mttq", "once")
    doc = document()
    # The projections list it under every year the lead did not report; the console keeps the last.
    assert overdue_report.rows_of([("2024", once), ("2025", once)], {"a-1": doc}, D(2027, 2, 1)) == []
    [row] = overdue_report.rows_of([("2026", once)], {"a-1": doc}, D(2027, 2, 1))
    assert row.period == "2026" and row.days_overdue == 32
    reported = document(reports=[report("mot-lan", "mttq", "2025", 9)])
    assert overdue_report.rows_of([("2026", once)], {"a-1": reported}, D(2027, 2, 1)) == []


def test_an_item_without_its_document_is_left_out() -> None:
    assert (
        overdue_report.rows_of(
            [("2024-Q3", item("tuyen-truyen", "t", "hctd", "quarterly"))], {}, D(2025, 1, 1)
        )
        == []
    )


def test_the_periods_asked_are_those_ended_inside_the_span() -> None:
    assert overdue_report.periods_to_ask("2024-Q3", D(2024, 8, 15)) == ["2024-07"]
    assert overdue_report.periods_to_ask("2024-Q3", D(2024, 10, 1)) == [
        "2024-Q3",
        "2024-07",
        "2024-08",
        "2024-09",
    ]
    assert overdue_report.periods_to_ask("2024", D(2024, 7, 1)) == [
        "2024-H1",
        "2024-Q1",
        "2024-Q2",
        *(f"2024-0{m}" for m in range(1, 7)),
    ]
    assert overdue_report.periods_to_ask("2030", D(2024, 7, 1)) == []


# --- the form ----------------------------------------------------------------------------------

HOA = Person(subject="demo", name="Nguyễn Thị Hoa", party_ids=("mttq-phu-tho", "ubnd-phu-tho"))


def test_the_form_defaults_to_the_first_body_and_the_year_of_the_last_month_ended() -> None:
    values, errors, status = overdue.chosen({}, HOA, D(2026, 1, 20))
    assert values == {"don_vi": "mttq-phu-tho", "nam": "2025", "ky": ""} and errors == {} and status == 200
    assert overdue.chosen({}, HOA, D(2026, 2, 1))[0]["nam"] == "2026"
    assert overdue.span_of({"nam": "2025", "ky": "Q3"}) == "2025-Q3"
    assert overdue.span_of({"nam": "2025", "ky": ""}) == "2025"


@pytest.mark.parametrize(
    ("query", "field", "status"),
    [
        ({"nam": "20x5"}, "nam", 422),
        ({"nam": "0999"}, "nam", 422),
        ({"nam": "２０２５"}, "nam", 422),  # fullwidth digits: not ASCII
        ({"nam": "20255"}, "nam", 422),
        ({"nam": ""}, "nam", 422),
        ({"ky": "Q5"}, "ky", 422),
        ({"ky": "13"}, "ky", 422),
        ({"don_vi": "hctd-phu-tho"}, "don_vi", 403),
        ({"don_vi": "hctd-phu-tho", "nam": "x"}, "don_vi", 403),
    ],
)
def test_bad_choices_are_named_beside_their_field(query: dict[str, str], field: str, status: int) -> None:
    _, errors, got = overdue.chosen(query, HOA, D(2025, 6, 1))
    assert field in errors and got == status
    assert errors[field] in (overdue.BAD_YEAR, overdue.BAD_PART, overdue.NOT_YOURS)


def test_every_part_makes_a_period_of_the_contract() -> None:
    for code, _ in overdue.PARTS:
        span = overdue.span_of({"nam": "2025", "ky": code})
        assert overdue_report.periods_to_ask(span, D(2030, 1, 1))[0] == span


# --- the CSV file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["=1+1", "+84 912", "-2", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")']
)
def test_a_cell_that_would_be_a_formula_is_written_as_text(text: str) -> None:
    assert csv_export.cell(text) == f"'{text}"


def test_other_cells_are_written_as_they_are() -> None:
    assert csv_export.cell("Tuyên truyền") == "Tuyên truyền"
    assert csv_export.cell("a=b") == "a=b"
    assert csv_export.cell(12) == 12


def test_the_file_has_a_bom_vietnamese_headers_and_crlf_rows() -> None:
    rows = overdue_report.rows_of(
        [("2024-Q2", item("tuyen-truyen", "- Tuyên truyền", "hctd", "quarterly"))],
        {"a-1": document()},
        D(2024, 7, 3),
    )
    data = overdue.csv_of(rows)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8's byte order mark
    text = data.decode("utf-8")
    assert "\r\n" in text
    parsed = list(csv.reader(io.StringIO(text.removeprefix(csv_export.BOM))))
    assert parsed[0] == list(overdue.CSV_HEADER)
    assert parsed[0][:4] == ["STT", "Số văn bản", "Tên thỏa thuận", "Nhiệm vụ"]
    line = dict(zip(parsed[0], parsed[1], strict=True))
    assert line["Nhiệm vụ"] == "'- Tuyên truyền"  # the title began with "-"
    assert line["Kỳ báo cáo"] == "Quý II/2024"
    assert line["Ngày hết kỳ"] == "30/06/2024"
    assert line["Số ngày quá hạn"] == "3"
    assert line["Đơn vị chủ trì"] == "Hội Chữ thập đỏ tỉnh"
    assert line["Đơn vị phối hợp"] == "Ủy ban MTTQ tỉnh"
    assert line["Báo cáo gần nhất"] == "Quý II/2024: Đang thực hiện (40%)"
    assert line["Ngày báo cáo gần nhất"] == "02/07/2024"
    assert len(parsed) == 2


def test_an_empty_report_is_its_header_alone() -> None:
    text = overdue.csv_of([]).decode("utf-8")
    assert text == csv_export.BOM + ",".join(overdue.CSV_HEADER) + "\r\n"


def test_the_attachment_name_is_plain() -> None:
    assert csv_export.attachment("qua-han-mttq-phu-tho-2025-Q3.csv") == (
        'attachment; filename="qua-han-mttq-phu-tho-2025-Q3.csv"'
    )
    for bad in ('a"b.csv', "a b.csv", "tệp.csv", "a\r\nb.csv", ""):
        with pytest.raises(ValueError, match="plain file name"):
            csv_export.attachment(bad)
