"""A command's body read once (services/registry/entrypoints/bodies.py) is answered exactly as
when FastAPI read it: the same status and problem (type, detail, errors) for every kind of bad
body, and the same JSON value for the Idempotency-Key's fingerprint.

Two routes on one app with the registry's problem handlers: `/fastapi` declares the body as
FastAPI reads it (as the command routes did before), `/once` reads it with `command_body`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import httpx
import pytest
from coordreg_contracts.changes import CHANGE_OPS
from coordreg_contracts.commands import AmendAgreement, ReportProgress
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from services.common import problems
from services.common.text_input import refuse_unstorable_body
from services.registry.entrypoints.bodies import CommandBody, command_body
from services.registry.entrypoints.routes import fingerprint

REPORT = {
    "obligation_id": "nhan-dao",
    "party_id": "hctd-hoa-binh",
    "period": "2024",
    "status": "in_progress",
    "completion_percent": 60,
    "summary": "Vận động 1,2 tỷ đồng",
    "reported_on": "2024-12-20",
}
JSON = {"Content-Type": "application/json"}
# (content, headers): every kind of body a client can send that is not a valid command, and two
# that are valid (one with the text escaped, as Python's json.dumps writes it).
BODIES: list[tuple[bytes, dict[str, str]]] = [
    (json.dumps(REPORT).encode(), JSON),
    (json.dumps(REPORT, ensure_ascii=False).encode(), {"Content-Type": "application/json; charset=utf-8"}),
    (json.dumps(REPORT).encode(), {"Content-Type": "application/merge-patch+json"}),
    (b"", JSON),
    (b"", {}),
    (json.dumps(REPORT).encode(), {}),  # no content type: not read as JSON (strict)
    (json.dumps(REPORT).encode(), {"Content-Type": "text/plain"}),
    (b"{", JSON),
    (b'{"period": "2024",}', JSON),
    (b"[]", JSON),
    (b"null", JSON),
    (b'"text"', JSON),
    (b'{"title": "\xff"}', JSON),  # not UTF-8
    (json.dumps(REPORT).encode("utf-16"), JSON),  # json.loads reads UTF-16
    (json.dumps({**REPORT, "completion_percent": float("nan")}).encode(), JSON),  # NaN
    (json.dumps({**REPORT, "completion_percent": 1e400}).encode(), JSON),  # json.dumps: Infinity
    (b'{"completion_percent": 1e400}', JSON),
    (json.dumps({**REPORT, "summary": "a\x00b"}).encode(), JSON),  # a NUL
    (json.dumps({**REPORT, "summary": "a\ud800b"}).encode(), JSON),  # a lone surrogate
    (json.dumps({**REPORT, "summary": "a\U0001f600b"}).encode(), JSON),  # a pair, escaped
    (json.dumps({**REPORT, "extra": 1}).encode(), JSON),
    (json.dumps({**REPORT, "completion_percent": "60"}).encode(), JSON),
    (json.dumps({**REPORT, "completion_percent": 60.0}).encode(), JSON),
    (json.dumps({**REPORT, "completion_percent": 60.5}).encode(), JSON),
    (json.dumps({**REPORT, "period": 2024}).encode(), JSON),
    (json.dumps({k: v for k, v in REPORT.items() if k != "period"}).encode(), JSON),
    (b'{"period": "2024", "period": "2025"}', JSON),  # a duplicate member: the last wins
    (b"[" * 5000 + b"]" * 5000, JSON),  # deeper than pydantic-core parses
    (b'{"a": ' * 300 + b"1" + b"}" * 300, JSON),
    (json.dumps({**REPORT, "evidence": [{"document_number": "1/BC", "title": "x\x00"}]}).encode(), JSON),
]
AMENDMENTS: list[tuple[bytes, dict[str, str]]] = [
    (
        json.dumps(
            {"document_number": "2/QĐ", "reason": "r", "effective_on": "2025-01-01", "changes": c}
        ).encode(),
        JSON,
    )
    for c in (
        [{"op": "change_term", "term": {"start": "2024-01-01", "end": "2023-01-01"}}],
        [{"op": "nope"}],
        [{"op": "remove_party", "party_id": "x"}],
        [{"op": "change_term"}],
        "not a list",
    )
]


def app() -> FastAPI:
    application = FastAPI()
    problems.install(application, CHANGE_OPS)

    def answer(command: Any, value: Any) -> JSONResponse:
        refuse_unstorable_body(command.model_dump())
        return JSONResponse({"command": command.model_dump(mode="json"), "value": value})

    @application.post("/fastapi/report")
    async def fastapi_report(body: ReportProgress) -> JSONResponse:
        return answer(body, None)

    @application.post("/once/report")
    async def once_report(
        body: Annotated[CommandBody[ReportProgress], Depends(command_body(ReportProgress))],
    ) -> JSONResponse:
        return answer(body.valid(), body.value)

    @application.post("/fastapi/amend")
    async def fastapi_amend(body: AmendAgreement) -> JSONResponse:
        return answer(body, None)

    @application.post("/once/amend")
    async def once_amend(
        body: Annotated[CommandBody[AmendAgreement], Depends(command_body(AmendAgreement))],
    ) -> JSONResponse:
        return answer(body.valid(), body.value)

    return application


async def both(path: str, content: bytes, headers: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = await client.post(f"/fastapi/{path}", content=content, headers=headers)
        after = await client.post(f"/once/{path}", content=content, headers=headers)
    return before, after


@pytest.mark.parametrize(
    ("path", "content", "headers"),
    [("report", c, h) for c, h in BODIES] + [("amend", c, h) for c, h in AMENDMENTS],
)
async def test_a_body_read_once_is_answered_as_fastapi_answered_it(
    path: str, content: bytes, headers: dict[str, str]
) -> None:
    before, after = await both(path, content, headers)
    assert after.status_code == before.status_code, (before.text, after.text)
    assert after.headers["content-type"] == before.headers["content-type"]
    if before.status_code >= 400:
        assert after.json() == before.json()
    else:
        assert after.json()["command"] == before.json()["command"]
        # The fingerprint's value is the JSON the client sent, as json.loads read it before.
        value = after.json()["value"]
        assert value == json.loads(content)
        assert fingerprint("POST", "/p", None, value) == fingerprint("POST", "/p", None, json.loads(content))


def test_the_bodies_tried_include_refusals_of_every_kind() -> None:
    statuses = set()
    for content, headers in BODIES:
        before, _ = asyncio.run(both("report", content, headers))
        statuses.add(before.status_code)
    assert statuses == {200, 400, 422}
