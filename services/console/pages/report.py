"""`GET|POST /bao-cao/{agreement_id}/{obligation_id}`: the progress report form. Each drawing of
the form carries its own Idempotency-Key; a refusal is drawn again beside the field it concerns;
a stored report leads to the agreement's page at the report's position (read-your-writes)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from urllib.parse import quote

from coordreg_contracts.patterns import PERIOD, full_match
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import due, sessions, vietnamese
from services.console.backend import Backend
from services.console.sessions import Person
from services.console.web import Console, ConsoleOf, today

router = APIRouter()
NOT_FOUND = "Không tìm thấy thỏa thuận hoặc nhiệm vụ này."
# What a refused report says beside each field (the registry's 422 names the field).
FIELD_MESSAGES = {
    "period": "Kỳ báo cáo không hợp lệ: kỳ phải đúng định kỳ của nhiệm vụ và nằm trong thời hạn của thỏa thuận.",
    "party_id": "Đơn vị này không được báo cáo kỳ này: đơn vị đã chấm dứt hoạt động từ trước kỳ báo cáo "
    "và đơn vị kế thừa báo cáo thay, hoặc đơn vị không chủ trì, phối hợp nhiệm vụ.",
    "obligation_id": "Nhiệm vụ đã bị rút hoặc không còn trong thỏa thuận: không nhận thêm báo cáo.",
    "reported_on": "Ngày báo cáo không hợp lệ: ngày phải có dạng ngày/tháng/năm và không trước ngày ký.",
    "completion_percent": "Tỷ lệ hoàn thành phải là số nguyên từ 0 đến 100.",
    "status": "Vui lòng chọn tình trạng thực hiện.",
    "summary": "Nội dung báo cáo quá dài hoặc không hợp lệ.",
    "evidence": "Văn bản kèm theo không hợp lệ.",
}
REPORT_FIELDS = ("party_id", "period", "status", "completion_percent", "summary", "reported_on")


async def obligation_of(
    backend: Backend, token: str, agreement_id: str, obligation_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    answer = await backend.agreement(token, agreement_id)
    if answer.status != 200:
        return None, None
    agreement: dict[str, Any] = answer.body
    for obligation in agreement.get("obligations", []):
        if obligation["obligation_id"] == obligation_id:
            return agreement, obligation
    return agreement, None


def report_parties(official: Person, obligation: dict[str, Any]) -> list[str]:
    """The person's bodies that lead or support the obligation, or did until a succession (they
    may still report the periods that began before it: decision 18): the only ones offered."""
    holders = [
        obligation["lead_party_id"],
        *obligation.get("supporting_party_ids", []),
        *(inheritance["from_party_id"] for inheritance in obligation.get("inherited", [])),
    ]
    return [party for party in official.party_ids if party in holders]


def report_form(
    console: Console,
    request: Request,
    session: sessions.Session,
    official: Person,
    agreement: dict[str, Any],
    obligation: dict[str, Any],
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    general: str | None = None,
) -> Response:
    names = {party["party_id"]: party["name"] for party in agreement.get("parties", [])}
    context = {
        "title": "Báo cáo tiến độ",
        "agreement": agreement,
        "obligation": obligation,
        "parties": [(party, names.get(party, party)) for party in report_parties(official, obligation)],
        "values": values,
        "errors": errors,
        "general_error": general,
        # A new key each time the form is drawn: a double submit of this drawing is one report.
        "idempotency_key": secrets.token_urlsafe(24),
    }
    return console.page(request, "report.html", session, context, status)


@router.get("/bao-cao/{agreement_id}/{obligation_id}", response_class=HTMLResponse)
async def report_page(
    request: Request, console: ConsoleOf, agreement_id: str, obligation_id: str
) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, official, token = visit
    agreement, obligation = await obligation_of(console.services, token, agreement_id, obligation_id)
    if agreement is None or obligation is None:
        return console.refused(request, 404, NOT_FOUND)
    parties = report_parties(official, obligation)
    # `?ky=`: the period a link asked for (an overdue one, from "Việc của đơn vị"), when well formed.
    asked = request.query_params.get("ky", "")
    values = {
        "party_id": parties[0] if parties else "",
        "period": asked if full_match(PERIOD, asked) else due.current_period(obligation["cadence"], today()),
        "status": "in_progress",
        "completion_percent": "",
        "summary": "",
        "reported_on": today().isoformat(),
    }
    return report_form(console, request, session, official, agreement, obligation, values, {})


def checked_values(
    form: dict[str, str], official: Person, obligation: dict[str, Any]
) -> tuple[dict[str, str], int | None, dict[str, str]]:
    """The form's values, the completion percent, and what is wrong with each field."""
    values = {name: form.get(name, "").strip() for name in REPORT_FIELDS}
    errors: dict[str, str] = {}
    if values["party_id"] not in report_parties(official, obligation):
        errors["party_id"] = "Anh/chị không được báo cáo thay đơn vị này."
    if values["status"] not in vietnamese.REPORT_STATUSES:
        errors["status"] = FIELD_MESSAGES["status"]
    percent: int | None = None
    if values["completion_percent"]:
        if values["completion_percent"].isascii() and values["completion_percent"].isdigit():
            percent = int(values["completion_percent"])
        if percent is None or not 0 <= percent <= 100:
            errors["completion_percent"] = FIELD_MESSAGES["completion_percent"]
    try:
        dt.date.fromisoformat(values["reported_on"])
    except ValueError:
        errors["reported_on"] = FIELD_MESSAGES["reported_on"]
    if not values["period"]:
        errors["period"] = "Vui lòng nhập kỳ báo cáo."
    return values, percent, errors


def refusal_of(status: int, body: Any, errors: dict[str, str]) -> str | None:
    """The registry's refusal, as messages beside the fields (into `errors`) or one general one."""
    general = None
    if status == 422 and isinstance(body, dict):
        for error in body.get("errors") or []:
            loc = error.get("loc") or []
            field = str(loc[1]) if len(loc) > 1 and loc[0] == "body" else ""
            if field in FIELD_MESSAGES and field not in errors:
                errors[field] = FIELD_MESSAGES[field]
            elif field not in FIELD_MESSAGES:
                general = "Báo cáo không hợp lệ. Vui lòng kiểm tra lại các trường."
    elif status == 409:
        general = "Thỏa thuận đã kết thúc hoặc đang được xử lý: báo cáo chưa được ghi. Vui lòng thử lại sau."
    elif status == 403:
        general = "Anh/chị không có quyền báo cáo cho đơn vị này."
    else:
        general = "Hệ thống đăng ký tạm thời không trả lời. Báo cáo chưa được ghi; vui lòng thử lại."
    if not errors and general is None:
        general = "Báo cáo không hợp lệ."
    return general


@router.post("/bao-cao/{agreement_id}/{obligation_id}")
async def report(request: Request, console: ConsoleOf, agreement_id: str, obligation_id: str) -> Response:
    form = await console.checked_form(request)
    if isinstance(form, Response):
        return form
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, official, token = visit
    agreement, obligation = await obligation_of(console.services, token, agreement_id, obligation_id)
    if agreement is None or obligation is None:
        return console.refused(request, 404, NOT_FOUND)
    values, percent, errors = checked_values(form, official, obligation)
    key = form.get("idempotency_key", "")
    if not 1 <= len(key) <= 255:
        return console.refused(request, 400, "Biểu mẫu không hợp lệ. Vui lòng mở lại biểu mẫu báo cáo.")
    if errors:
        return report_form(console, request, session, official, agreement, obligation, values, errors, 422)
    body: dict[str, Any] = {
        "obligation_id": obligation_id,
        "party_id": values["party_id"],
        "period": values["period"],
        "status": values["status"],
        "reported_on": values["reported_on"],
    }
    if percent is not None:
        body["completion_percent"] = percent
    if values["summary"]:
        body["summary"] = values["summary"]
    answer = await console.services.report_progress(token, agreement_id, body, key)
    if answer.status == 201:
        position = int(answer.body["position"])
        target = f"/thoa-thuan/{quote(agreement_id, safe='')}?min_position={position}&da_ghi=1"
        return RedirectResponse(target, status_code=303)
    general = refusal_of(answer.status, answer.body, errors)
    if "party_id" in errors:
        errors["party_id"] = (
            await succession_refusal(console, token, values["party_id"]) or errors["party_id"]
        )
    return report_form(
        console, request, session, official, agreement, obligation, values, errors, 422, general
    )


async def succession_refusal(console: Console, token: str, party_id: str) -> str | None:
    """A predecessor's report after its succession, refused: say when it ceased, by which
    decision, and who reports in its place; None when the party has not ceased."""
    backend = console.services
    answer = await backend.party(token, party_id)
    entry = answer.body if answer.status == 200 and isinstance(answer.body, dict) else {}
    succession = entry.get("succession")
    if not isinstance(succession, dict) or not succession.get("effective_on"):
        return None
    successor = succession.get("successor_party_id")
    names = {item.get("party_id"): item.get("name") for item in entry.get("successors") or []}
    basis = f" theo {succession['legal_basis']}" if succession.get("legal_basis") else ""
    message = (
        f"{entry.get('name') or party_id} đã chấm dứt hoạt động từ ngày"
        f" {vietnamese.date(succession['effective_on'])}{basis}: đơn vị chỉ còn báo cáo các kỳ"
        " bắt đầu trước ngày đó."
    )
    if successor:
        message += f" Từ ngày đó, {names.get(successor) or successor} báo cáo thay."
    return message
