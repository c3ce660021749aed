"""`GET /thoa-thuan/{agreement_id}/chung-minh`: the proof of record of an agreement's events
(services/console/record_proof.py), and the `coordreg-audit prove` commands that check the same
thing independently; `GET /diem-kiem-tra/{tree_size}`: a checkpoint's note as a file, for them.

A page shows at most PAGE_EVENTS events (the registry's own cursor pages on), so it costs at most
3 + 2·PAGE_EVENTS requests: the agreement (projections), its events and the latest checkpoint
(registry) at once, then each event's inclusion proof and leaf at once.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.backend import Answer, TextAnswer
from services.console.record_proof import prove_record
from services.console.web import ConsoleOf
from services.transparency.proofs import b64

router = APIRouter()

PAGE_EVENTS = 20
MAX_CURSOR_DIGITS = 10  # the registry's events cursor: a sequence, 1-10 ASCII digits
MAX_TREE_SIZE = 2**62  # the registry's bound on a tree size (docs/CONTRACT.md B11)
# The rules of services/transparency/proofs.py, as the page names them.
CHECKS = {
    "checkpoint": "Chữ ký của sổ trên điểm kiểm tra hợp lệ với khóa đã cấu hình",
    "in-tree": "Sự kiện là một lá của cây trong điểm kiểm tra",
    "record": "Sổ đăng ký trả bản ghi của lá đó",
    "event-id": "Bản ghi của lá đó đúng là sự kiện này",
    "envelope-hash": "Mã băm của sự kiện còn nguyên vẹn (nội dung không bị sửa)",
    "inclusion": "Chứng minh bao hàm dẫn tới đúng mã băm gốc của điểm kiểm tra",
}
NO_AGREEMENT = "Không tìm thấy thỏa thuận này."
BAD_PAGE = "Đường dẫn trang không hợp lệ: tham số “sau” phải là số thứ tự của một sự kiện (chữ số)."
UPDATING = "Sổ đăng ký chưa trả lời. Vui lòng tải lại trang sau ít giây."


def note_file(tree_size: int) -> str:
    return f"checkpoint-{tree_size}.note"


async def _text(request: Awaitable[TextAnswer]) -> TextAnswer | None:
    """The answer, or None when the service could not be reached (a timeout, a refused connection)."""
    try:
        return await request
    except httpx.HTTPError:
        return None


async def _json(request: Awaitable[Answer]) -> Answer | None:
    try:
        return await request
    except httpx.HTTPError:
        return None


@router.get("/thoa-thuan/{agreement_id}/chung-minh", response_class=HTMLResponse)
async def proof_page(request: Request, console: ConsoleOf, agreement_id: str) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, _, token = visit
    after = request.query_params.get("sau", "")
    if after and not (after.isascii() and after.isdigit() and len(after) <= MAX_CURSOR_DIGITS):
        return console.refused(request, 400, BAD_PAGE)
    backend = console.services
    path = quote(agreement_id, safe="")
    params: dict[str, Any] = {"limit": PAGE_EVENTS, **({"cursor": after} if after else {})}
    agreement, events, served = await asyncio.gather(
        _json(backend.agreement(token, agreement_id)),
        _json(backend.read(backend.registry, token, f"/v1/agreements/{path}/events", params)),
        _text(backend.read_text(backend.registry, token, "/v1/log/checkpoint")),
    )
    if events is None or events.status >= 500 or not isinstance(events.body, dict):
        return console.refused(request, 503, UPDATING)
    if events.status == 404:
        return console.refused(request, 404, NO_AGREEMENT)
    if events.status == 400:
        return console.refused(request, 400, BAD_PAGE)
    if events.status != 200:
        return console.refused(request, 503, UPDATING)
    listed = [
        e for e in events.body.get("events", []) if isinstance(e, dict) and isinstance(e.get("id"), str)
    ]
    settings = console.settings
    proof = await prove_record(
        backend,
        token,
        [e["id"] for e in listed],
        served,
        settings.log_verifier,
        settings.witness_verifiers,
        settings.policy,
    )
    about = agreement.body if agreement is not None and agreement.status == 200 else {}
    number = about.get("document_number") if isinstance(about, dict) else None
    registry_url = settings.audit_registry_url
    size = proof.checkpoint.size
    key = settings.log_verifier.key()
    checkpoint = note_file(size)
    commands = [
        shlex.join(
            (
                "coordreg-audit",
                "prove",
                event.event_id,
                "--checkpoint",
                checkpoint,
                "--log-key",
                key,
                "--registry",
                registry_url,
            )
        )
        for event in proof.in_checkpoint
    ]
    next_cursor = events.body.get("next_cursor")
    context = {
        "title": f"Chứng minh ghi nhận: thỏa thuận {number or agreement_id}",
        "agreement_id": agreement_id,
        "document_number": number,
        "proof": proof,
        "rows": list(zip(listed, proof.events, strict=True)),
        "commands": commands,
        "note_file": note_file(size),
        "log_key": settings.log_verifier,
        "witness_keys": settings.witness_verifiers,
        "checkpoint_seconds": settings.log_checkpoint_seconds,
        "registry_url": registry_url,
        "after": after,
        "next_cursor": next_cursor if isinstance(next_cursor, str) and next_cursor.isdigit() else None,
        "root": b64(proof.checkpoint.opened.root) if proof.checkpoint.opened else "",
        "CHECKS": CHECKS,
    }
    return console.page(request, "proof.html", session, context)


@router.get("/diem-kiem-tra/{tree_size}")
async def checkpoint_file(request: Request, console: ConsoleOf, tree_size: str) -> Response:
    """The checkpoint of `tree_size` as the registry serves it, with its cosignatures, to save as
    the file the shown command reads. Not checked here: the command checks it."""
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    token = visit.token
    if (
        not (tree_size.isascii() and tree_size.isdigit() and len(tree_size) <= 19)
        or int(tree_size) > MAX_TREE_SIZE
    ):
        return console.refused(request, 404, "Không có điểm kiểm tra này.")
    backend = console.services
    served = await _text(backend.read_text(backend.registry, token, f"/v1/log/checkpoints/{int(tree_size)}"))
    if served is None or served.status >= 500:
        return console.refused(request, 503, UPDATING)
    if served.status != 200:
        return console.refused(request, 404, "Không có điểm kiểm tra này.")
    name = note_file(int(tree_size))
    return Response(
        served.text,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
