"""Text PostgreSQL cannot store (U+0000, a lone surrogate) is bad input: 422 with its field path,
nothing written, nothing dead-lettered, on every kind of input of both services.

Before, a NUL in a title was accepted (201) and then dead-lettered by the projections, and a
NUL in an id, a path or a query parameter answered 500.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack


def refused(response: httpx.Response, *loc: Any) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/validation")
    assert [list(loc)] == [e["loc"] for e in problem["errors"]], problem


async def test_text_the_database_cannot_store_is_refused_everywhere(stack: Stack) -> None:
    # Agreement streams only: the one signing below also registers its parties (decision 16).
    count = "SELECT count(*) FROM registry.events WHERE agreement_id NOT LIKE 'party/%'"
    before = await stack.pool.fetchval(count)
    refused(
        await stack.registry.post("/v1/agreements", json=sign_body(title="Chương trình\x00")), "body", "title"
    )
    refused(
        await stack.registry.post("/v1/agreements", json=sign_body(parent_agreement_id="a\x00b")),
        "body",
        "parent_agreement_id",
    )
    # A lone surrogate is valid JSON only escaped: json.dumps writes it as \\ud800.
    lone = json.dumps(sign_body(title="lone \ud800 surrogate")).encode("ascii")
    refused(
        await stack.registry.post(
            "/v1/agreements", content=lone, headers={"Content-Type": "application/json"}
        ),
        "body",
        "title",
    )
    signed = await stack.registry.post("/v1/agreements", json=sign_body())
    assert signed.status_code == 201, signed.text
    agreement = signed.json()["agreement_id"]
    refused(
        await stack.registry.post(
            f"/v1/agreements/{agreement}/progress-reports", json=report_body(summary="báo cáo\x00")
        ),
        "body",
        "summary",
    )
    assert await stack.pool.fetchval(count) == before + 1
    refused(await stack.registry.get("/v1/agreements/a%00b"), "path", "agreement_id")
    refused(await stack.registry.get("/v1/agreements/a%00b/events"), "path", "agreement_id")
    refused(
        await stack.registry.post(
            "/v1/parties", json={"party_id": "p1", "name": "Sở\x00", "kind": "department"}
        ),
        "body",
        "name",
    )
    refused(await stack.projections.get("/v1/agreements", params={"q": "a\x00b"}), "query", "q")
    refused(await stack.projections.get("/v1/agreements", params={"locality": "a\x00"}), "query", "locality")
    refused(await stack.projections.get("/v1/agreements/a%00b"), "path", "agreement_id")
    refused(await stack.projections.get("/v1/parties/x%00/obligations"), "path", "party_id")
    # A parameter the route does not declare reaches no query and is ignored, as FastAPI does.
    assert (await stack.projections.get("/v1/projections/status", params={"junk": "\x00"})).status_code == 200
    # Without a token it is still 401 first: the caller is known before its input is judged.
    anonymous = httpx.AsyncClient(base_url=stack.registry_url)
    async with anonymous:
        assert (await anonymous.get("/v1/agreements/a%00b")).status_code == 401
    assert await stack.pool.fetchval("SELECT count(*) FROM projections.dead_letters") == 0
