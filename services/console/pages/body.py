"""`GET /don-vi/{party_id}`: a body's page. Its directory entry, the bodies it succeeded and that
succeeded it (the 2025 reorganisation), the obligations it holds now (with the report form for a
person who acts for it) and its history, paged.

From the projections: `GET /v1/parties/{id}` (the entry, with `predecessors` and `successors`),
`/obligations` (keyed pages) and `/history` (pages by position), each page through its own
cursor in this page's address (`nhiem_vu`, `lich_su`). A cursor the projections refuse (400, or
422 for one too long) gets a Vietnamese message in its section; the rest of the page is drawn.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.backend import Answer, Backend
from services.console.web import ConsoleOf

router = APIRouter()
# This page's query parameters: the cursor of each paged list.
OBLIGATIONS_CURSOR = "nhiem_vu"
HISTORY_CURSOR = "lich_su"
OBLIGATIONS_PAGE = 100
CURSOR_REFUSED = "Liên kết “Trang sau” không hợp lệ hoặc đã cũ. Vui lòng xem lại từ trang đầu."
UNREADABLE = "Không đọc được mục này lúc này. Vui lòng tải lại trang sau ít phút."
NOT_FOUND = "Không tìm thấy đơn vị này trong danh bạ."


def event_name(event_type: str) -> str:
    """`vn.gov.coordination.SuccessionRecorded.v1` → `SuccessionRecorded`."""
    parts = event_type.split(".")
    return parts[-2] if len(parts) >= 2 else event_type


def listed(answer: Answer, key: str) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """A page's items, its next cursor, and the message to show instead if it was refused."""
    if answer.status == 200:
        return answer.body[key], answer.body.get("next_cursor"), None
    if answer.status in (400, 422):
        return [], None, CURSOR_REFUSED
    return [], None, UNREADABLE


async def documents(backend: Backend, token: str, agreement_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The agreements a history page names, for their number and title (read at once)."""
    ordered = sorted(agreement_ids)
    answers = await asyncio.gather(*(backend.agreement(token, agreement_id) for agreement_id in ordered))
    return {
        agreement_id: answer.body
        for agreement_id, answer in zip(ordered, answers, strict=True)
        if answer.status == 200
    }


@router.get("/don-vi/{party_id}", response_class=HTMLResponse)
async def body_page(request: Request, console: ConsoleOf, party_id: str) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, official, token = visit
    backend = console.services
    entry = await backend.party(token, party_id)
    if entry.status == 503:
        return console.refused(
            request, 503, "Dữ liệu đang được cập nhật. Vui lòng tải lại trang sau ít giây."
        )
    if entry.status != 200:  # 404, or 422 for an id that cannot be one
        return console.refused(request, 404, NOT_FOUND)
    query = request.query_params
    cursors = {name: query.get(name, "") for name in (OBLIGATIONS_CURSOR, HISTORY_CURSOR)}
    obligations_params: dict[str, Any] = {"limit": OBLIGATIONS_PAGE}
    if cursors[OBLIGATIONS_CURSOR]:
        obligations_params["cursor"] = cursors[OBLIGATIONS_CURSOR]
    history_params: dict[str, Any] = {"limit": console.settings.page_size}
    if cursors[HISTORY_CURSOR]:
        history_params["cursor"] = cursors[HISTORY_CURSOR]
    held, history_page = await asyncio.gather(
        backend.party(token, party_id, "/obligations", obligations_params),
        backend.party(token, party_id, "/history", history_params),
    )
    obligations, obligations_next, obligations_error = listed(held, "obligations")
    history, history_next, history_error = listed(history_page, "events")
    known = {item["agreement_id"]: item for item in obligations}
    wanted = {line["agreement_id"] for line in history if line["agreement_id"]}
    if entry.body["registered_from_agreement_id"]:
        wanted.add(entry.body["registered_from_agreement_id"])
    wanted -= set(known)
    agreements = {
        agreement_id: {"document_number": doc["document_number"], "title": doc["title"]}
        for agreement_id, doc in (await documents(backend, token, wanted)).items()
    }
    agreements.update(
        {
            agreement_id: {"document_number": item["document_number"], "title": item["agreement_title"]}
            for agreement_id, item in known.items()
        }
    )
    body = entry.body
    names = {linked["party_id"]: linked["name"] for linked in (*body["predecessors"], *body["successors"])}
    names[body["party_id"]] = body["name"]

    def page_link(name: str, cursor: str | None) -> str:
        """This page with `name`'s list at `cursor` (its first page without one), the other kept."""
        params = {key: value for key, value in cursors.items() if value and key != name}
        if cursor:
            params[name] = cursor
        suffix = f"?{urlencode(params)}" if params else ""
        return f"/don-vi/{quote(party_id, safe='')}{suffix}#{name.replace('_', '-')}"

    for line in history:
        line["event"] = event_name(line["type"])
    context = {
        "title": body["name"],
        "body": body,
        "names": names,
        "acts_for": party_id in official.party_ids,
        "obligations": obligations,
        "obligations_error": obligations_error,
        "obligations_later": bool(cursors[OBLIGATIONS_CURSOR]),
        "obligations_first": page_link(OBLIGATIONS_CURSOR, None),
        "obligations_next": page_link(OBLIGATIONS_CURSOR, obligations_next) if obligations_next else None,
        "history": history,
        "history_error": history_error,
        "history_later": bool(cursors[HISTORY_CURSOR]),
        "history_first": page_link(HISTORY_CURSOR, None),
        "history_next": page_link(HISTORY_CURSOR, history_next) if history_next else None,
        "agreements": agreements,
    }
    status = 400 if obligations_error == CURSOR_REFUSED or history_error == CURSOR_REFUSED else 200
    return console.page(request, "body.html", session, context, status)
