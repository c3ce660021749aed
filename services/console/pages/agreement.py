"""`GET /thoa-thuan/{agreement_id}`: an agreement and the timeline of its events."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import ConsoleOf

router = APIRouter()


@router.get("/thoa-thuan/{agreement_id}", response_class=HTMLResponse)
async def agreement_page(request: Request, console: ConsoleOf, agreement_id: str) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, official, token = visit
    backend = console.services
    params: dict[str, Any] = {}
    min_position = request.query_params.get("min_position", "")
    if min_position.isascii() and min_position.isdigit() and len(min_position) <= 18:
        params["min_position"] = min_position
    path = quote(agreement_id, safe="")
    answer = await backend.agreement(token, agreement_id, params)
    if answer.status == 503:
        return console.refused(
            request, 503, "Dữ liệu đang được cập nhật. Vui lòng tải lại trang sau ít giây."
        )
    if answer.status != 200:
        return console.refused(request, 404, "Không tìm thấy thỏa thuận này.")
    events = await backend.read(backend.registry, token, f"/v1/agreements/{path}/events")
    agreement = answer.body
    names = {party["party_id"]: party["name"] for party in agreement.get("parties", [])}
    names.update({party["party_id"]: party["name"] for party in agreement.get("former_parties", [])})
    context = {
        "title": f"Thỏa thuận {agreement['document_number']}",
        "agreement": agreement,
        "names": names,
        "events": events.body.get("events", []) if events.status == 200 else [],
        "reported": request.query_params.get("da_ghi") == "1",
        "my_parties": official.party_ids,
    }
    return console.page(request, "agreement.html", session, context)
