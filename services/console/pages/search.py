"""`GET /tim-kiem`: search across agreements, ignoring diacritics (`chuyen doi so` finds
`chuyển đổi số`), with filters by province (as governed now), document type and status.

A GET form, so it works without JavaScript and a search can be bookmarked or sent as a link.
The projections search (`GET /v1/agreements?q=&locality=&document_type=&status=&cursor=`); the
console first checks what it offers as lists, and maps the projections' refusals (400 for a
cursor not theirs, 422 problem+json naming the parameter) to a Vietnamese message beside the
field. Nothing here writes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console import vietnamese
from services.console.backend import Answer
from services.console.provinces import current_provinces, province_names
from services.console.web import ConsoleOf

router = APIRouter()
FILTERS = ("q", "locality", "document_type", "status")
# The projections' own limit on `q` (GET /v1/agreements), checked first so that the message
# can say it.
MAX_Q = 300
TOO_LONG = f"Từ khóa quá dài: tối đa {MAX_Q} ký tự."
# PostgreSQL's text cannot hold U+0000: the projections refuse it (422), so the console says why.
NUL = "Từ khóa chứa ký tự không hợp lệ (ký tự NUL). Vui lòng gõ lại từ khóa."
# Beside each field when the projections refuse it.
MESSAGES = {
    "q": f"Từ khóa không hợp lệ: tối đa {MAX_Q} ký tự, không chứa ký tự điều khiển.",
    "locality": "Vui lòng chọn một tỉnh, thành phố trong danh sách.",
    "document_type": "Vui lòng chọn một loại văn bản trong danh sách.",
    "status": "Vui lòng chọn một tình trạng trong danh sách.",
}
CURSOR_REFUSED = (
    "Liên kết “Trang sau” không hợp lệ hoặc đã cũ. Vui lòng tìm lại từ trang đầu bằng biểu mẫu bên dưới."
)
UNREADABLE = "Không tìm được lúc này: dịch vụ tra cứu tạm thời không trả lời. Vui lòng thử lại sau ít phút."


def checked(values: dict[str, str]) -> dict[str, str]:
    """What is wrong with each filter, before anything is asked of the projections."""
    errors: dict[str, str] = {}
    if len(values["q"]) > MAX_Q:
        errors["q"] = TOO_LONG
    elif "\x00" in values["q"]:
        errors["q"] = NUL
    if values["locality"] and values["locality"] not in province_names():
        errors["locality"] = MESSAGES["locality"]
    if values["document_type"] and values["document_type"] not in vietnamese.DOCUMENT_TYPES:
        errors["document_type"] = MESSAGES["document_type"]
    if values["status"] and values["status"] not in vietnamese.AGREEMENT_STATUSES:
        errors["status"] = MESSAGES["status"]
    return errors


def refusal_of(answer: Answer) -> tuple[dict[str, str], str | None]:
    """The projections' refusal as messages beside the fields, or one general message."""
    errors: dict[str, str] = {}
    general: str | None = None
    if answer.status == 400:
        general = CURSOR_REFUSED
    elif answer.status == 422 and isinstance(answer.body, dict):
        for error in answer.body.get("errors") or []:
            loc = (error.get("loc") or []) if isinstance(error, dict) else []
            name = str(loc[1]) if len(loc) > 1 and loc[0] == "query" else ""
            if name in MESSAGES:
                errors[name] = MESSAGES[name]
            elif name == "cursor":
                general = CURSOR_REFUSED
            else:
                general = general or "Yêu cầu tìm kiếm không hợp lệ. Vui lòng kiểm tra lại các trường."
        if not errors and general is None:
            general = "Yêu cầu tìm kiếm không hợp lệ. Vui lòng kiểm tra lại các trường."
    else:
        general = UNREADABLE
    return errors, general


def page_link(values: dict[str, str], cursor: str | None = None) -> str:
    """This search's address, at `cursor` (the first page without one)."""
    params = {name: values[name] for name in FILTERS}
    if cursor:
        params["cursor"] = cursor
    return f"/tim-kiem?{urlencode(params)}"


@router.get("/tim-kiem", response_class=HTMLResponse)
async def search_page(request: Request, console: ConsoleOf) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, _, token = visit
    query = request.query_params
    values = {name: query.get(name, "").strip() for name in FILTERS}
    cursor = query.get("cursor", "")
    # The form sends every field, so any of them present means a search was asked for; a visit
    # without one shows the form alone.
    asked = any(name in query for name in (*FILTERS, "cursor"))
    errors = checked(values) if asked else {}
    general: str | None = None
    results: list[dict[str, Any]] | None = None
    next_cursor: str | None = None
    status = 200
    if asked and not errors:
        params: dict[str, Any] = {name: value for name, value in values.items() if value}
        params["limit"] = console.settings.page_size
        if cursor:
            params["cursor"] = cursor
        backend = console.services
        answer = await backend.read(backend.projections, token, "/v1/agreements", params)
        if answer.status == 200:
            results = answer.body["agreements"]
            next_cursor = answer.body.get("next_cursor")
        else:
            errors, general = refusal_of(answer)
            status = answer.status if answer.status in (400, 422) else 503
    if errors:
        status = 422
    context = {
        "title": "Tìm kiếm thỏa thuận",
        # Drawn again as typed, less any NUL (not a character an HTML page may carry).
        "values": {name: value.replace("\x00", "") for name, value in values.items()},
        "errors": errors,
        "general_error": general,
        "results": results,
        "later_page": bool(cursor),
        "first_page": page_link(values),
        "next_page": page_link(values, next_cursor) if next_cursor and results else None,
        "provinces": current_provinces(),
    }
    return console.page(request, "search.html", session, context, status)
