"""`GET /qua-han`: the overdue report of one of the person's bodies (meant for a Front committee or
a people's committee, the bodies that convene coordination) for a year, a half, a quarter or a
month; `GET /qua-han.csv`: the same report as a CSV file. Both are GET forms: nothing changes,
so no CSRF token; the body is chosen among those the person acts for, and only those.

Which obligations, and how each row is made: `services/console/overdue_report.py`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console import csv_export, overdue_report, vietnamese
from services.console.backend import Backend
from services.console.overdue_report import Row, Unavailable
from services.console.sessions import Person
from services.console.web import ConsoleOf, today

router = APIRouter()
# The span's part of the year, in the contract's period notation after `<year>-` ("" the year).
PARTS: tuple[tuple[str, str], ...] = (
    ("", "Cả năm"),
    ("H1", "6 tháng đầu năm"),
    ("H2", "6 tháng cuối năm"),
    *((f"Q{n}", f"Quý {roman}") for n, roman in enumerate(("I", "II", "III", "IV"), start=1)),
    *((f"{m:02d}", f"Tháng {m}") for m in range(1, 13)),
)
PART_CODES = frozenset(code for code, _ in PARTS)
NOT_YOURS = "Anh/chị không xem được báo cáo của đơn vị này. Vui lòng chọn một đơn vị trong danh sách."
BAD_YEAR = "Năm phải là số có 4 chữ số, từ 1000 đến 9999, ví dụ 2025."
BAD_PART = "Vui lòng chọn kỳ trong danh sách: cả năm, 6 tháng, quý hoặc tháng."
UNAVAILABLE = "Không đọc được dữ liệu báo cáo lúc này. Vui lòng tải lại trang sau ít phút."
CSV_HEADER = (
    "STT",
    "Số văn bản",
    "Tên thỏa thuận",
    "Nhiệm vụ",
    "Định kỳ",
    "Đơn vị chủ trì",
    "Đơn vị phối hợp",
    "Kỳ báo cáo",
    "Ngày hết kỳ",
    "Số ngày quá hạn",
    "Báo cáo gần nhất",
    "Ngày báo cáo gần nhất",
    "Đơn vị báo cáo gần nhất",
)


def default_year(day: dt.date) -> int:
    """The year of the last month that has ended: in January, the year before (nothing of the new
    year has ended yet), then the year itself."""
    return (day.replace(day=1) - dt.timedelta(days=1)).year


def chosen(
    query: Mapping[str, str], official: Person, day: dt.date
) -> tuple[dict[str, str], dict[str, str], int]:
    """The form's values (defaults where absent), what is wrong with each, and the status."""
    values = {
        "don_vi": query.get("don_vi", official.party_ids[0] if official.party_ids else ""),
        "nam": query.get("nam", str(default_year(day))).strip(),
        "ky": query.get("ky", ""),
    }
    errors: dict[str, str] = {}
    if values["don_vi"] not in official.party_ids:
        errors["don_vi"] = NOT_YOURS
    year = values["nam"]
    if not (len(year) == 4 and year.isascii() and year.isdigit() and year[0] != "0"):
        errors["nam"] = BAD_YEAR
    if values["ky"] not in PART_CODES:
        errors["ky"] = BAD_PART
    status = 403 if "don_vi" in errors else 422 if errors else 200
    return values, errors, status


def span_of(values: Mapping[str, str]) -> str:
    return f"{values['nam']}-{values['ky']}" if values["ky"] else values["nam"]


def csv_line(number: int, row: Row) -> list[str | int]:
    last = row.last_report
    latest = ""
    if last is not None:
        latest = (
            f"{vietnamese.period(last.period)}: {vietnamese.label(vietnamese.REPORT_STATUSES, last.status)}"
        )
        if last.completion_percent is not None:
            latest += f" ({last.completion_percent}%)"
    return [
        number,
        row.document_number,
        row.agreement_title,
        row.title,
        vietnamese.label(vietnamese.CADENCES, row.cadence),
        row.lead.name,
        "; ".join(body.name for body in row.supporters),
        vietnamese.period(row.period),
        row.period_end.strftime("%d/%m/%Y"),
        row.days_overdue,
        latest,
        vietnamese.date(last.reported_on) if last else "",
        last.reporter.name if last else "",
    ]


def csv_of(rows: Sequence[Row]) -> bytes:
    return csv_export.csv_bytes(CSV_HEADER, (csv_line(n, row) for n, row in enumerate(rows, start=1)))


async def body_names(backend: Backend, token: str, party_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Each of the person's bodies with its name in the directory (its id when unreadable), all
    read at once."""

    async def named(party_id: str) -> tuple[str, str]:
        try:
            entry = await backend.party(token, party_id)
        except httpx.HTTPError:  # a name is a nicety: the id will do
            return party_id, party_id
        name = entry.body.get("name") if entry.status == 200 else None
        return party_id, name if isinstance(name, str) else party_id

    return list(await asyncio.gather(*(named(party_id) for party_id in party_ids)))


@router.get("/qua-han", response_class=HTMLResponse)
async def overdue_page(request: Request, console: ConsoleOf) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, official, token = visit
    backend = console.services
    now = today()
    bodies = await body_names(backend, token, official.party_ids)
    values, errors, status = chosen(request.query_params, official, now)
    context: dict[str, object] = {
        "title": "Nhiệm vụ quá hạn báo cáo",
        "bodies": bodies,
        "parts": PARTS,
        "values": values,
        "errors": errors,
        "today": now.isoformat(),
        "rows": None,
    }
    if errors:
        return console.page(request, "overdue.html", session, context, status)
    span = span_of(values)
    asked = overdue_report.periods_to_ask(span, now)
    body_name = dict(bodies)[values["don_vi"]]
    context.update(
        title=f"Nhiệm vụ quá hạn báo cáo — {body_name} — {vietnamese.period(span)}",
        span=span,
        body_name=body_name,
        asked=asked,
        csv_url=f"/qua-han.csv?{urlencode(values)}",
    )
    try:
        context["rows"] = await overdue_report.gather(backend, token, values["don_vi"], span, now)
    except Unavailable:
        context["unavailable"] = UNAVAILABLE
        status = 503
    return console.page(request, "overdue.html", session, context, status)


@router.get("/qua-han.csv")
async def overdue_csv(request: Request, console: ConsoleOf) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    _, official, token = visit
    now = today()
    values, errors, status = chosen(request.query_params, official, now)
    if errors:
        return console.refused(request, status, " ".join(errors.values()))
    span = span_of(values)
    try:
        rows = await overdue_report.gather(console.services, token, values["don_vi"], span, now)
    except Unavailable:
        return console.refused(request, 503, UNAVAILABLE)
    filename = f"qua-han-{values['don_vi']}-{span}.csv"
    return Response(
        csv_of(rows),
        media_type=csv_export.MEDIA_TYPE,
        headers={"Content-Disposition": csv_export.attachment(filename)},
    )
