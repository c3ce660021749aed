"""Resource limits (OWASP API4) on the real stack: body size (413), array and text lengths
(422), page sizes (422), per-client rate limits (429 + Retry-After), and Idempotency-Key
records scoped per client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from coordreg_contracts.common import MAX_EVIDENCE, MAX_PARTIES

from services.common.limits import RateLimited, RateLimiter, rate_limiter
from tests.support.builders import report_body, sign_body
from tests.support.kafka import Brokers
from tests.support.stack import Stack, running_stack

MAX_BODY = 256 * 1024


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    return problem


async def test_a_body_over_the_limit_is_413_whether_announced_or_streamed(stack: Stack) -> None:
    huge = sign_body(title="Chương trình " + "x" * MAX_BODY)
    assert_problem(await stack.registry.post("/v1/agreements", json=huge), 413)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"title": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    streamed = await stack.registry.post(
        "/v1/agreements", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(streamed, 413)
    # Just under the limit the request is read and judged on its content (too long a title: 422).
    assert (
        await stack.registry.post("/v1/agreements", json=sign_body(title="x" * 200_000))
    ).status_code == 422
    # Unauthenticated callers meet the same limit before anything else.
    async with httpx.AsyncClient(base_url=stack.registry_url) as anonymous:
        assert_problem(await anonymous.post("/v1/agreements", json=huge), 413)
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.events") == 0


async def test_arrays_and_texts_longer_than_the_contract_allows_are_422(stack: Stack) -> None:
    body = sign_body()
    party = body["parties"][1]
    body["parties"] = [body["parties"][0]] + [
        {**party, "party_id": f"p{i}"} for i in range(MAX_PARTIES)
    ]  # one more than allowed
    problem = assert_problem(await stack.registry.post("/v1/agreements", json=body), 422)
    assert ["body", "parties"] in [e["loc"] for e in problem["errors"]]

    problem = assert_problem(
        await stack.registry.post("/v1/agreements", json=sign_body(title="t" * 1001)), 422
    )
    assert ["body", "title"] in [e["loc"] for e in problem["errors"]]
    problem = assert_problem(
        await stack.registry.post("/v1/agreements", json=sign_body(document_number="d" * 101)), 422
    )
    assert ["body", "document_number"] in [e["loc"] for e in problem["errors"]]

    agreement = (await stack.sign(sign_body()))["agreement_id"]
    reports = f"/v1/agreements/{agreement}/progress-reports"
    evidence = [{"document_number": f"{i}/BC", "title": "Báo cáo"} for i in range(MAX_EVIDENCE + 1)]
    problem = assert_problem(await stack.registry.post(reports, json=report_body(evidence=evidence)), 422)
    assert ["body", "evidence"] in [e["loc"] for e in problem["errors"]]
    problem = assert_problem(await stack.registry.post(reports, json=report_body(summary="s" * 10_001)), 422)
    assert ["body", "summary"] in [e["loc"] for e in problem["errors"]]
    amendment = {
        "document_number": "1/QĐ",
        "reason": "r",
        "effective_on": "2024-01-01",
        "changes": [{"op": "remove_party", "party_id": "x"}] * 101,
    }
    problem = assert_problem(
        await stack.registry.post(f"/v1/agreements/{agreement}/amendments", json=amendment), 422
    )
    assert ["body", "changes"] in [e["loc"] for e in problem["errors"]]
    # Headers too: an Idempotency-Key over 255 characters.
    too_long_key = {"Idempotency-Key": "k" * 256}
    assert_problem(await stack.registry.post("/v1/agreements", json=sign_body(), headers=too_long_key), 422)


async def test_page_sizes_are_bounded(stack: Stack) -> None:
    for path in ("/v1/agreements", "/v1/parties/mttq-hoa-binh/history"):
        assert (await stack.projections.get(path, params={"limit": 500})).status_code == 200
        problem = assert_problem(await stack.projections.get(path, params={"limit": 501}), 422)
        assert ["query", "limit"] in [e["loc"] for e in problem["errors"]]
        assert_problem(await stack.projections.get(path, params={"limit": 0}), 422)


async def test_a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not(
    database_url: str, kafka: Brokers, topic: str
) -> None:
    options = {"rate_limit_per_second": 0.2, "rate_limit_burst": 3}
    async with running_stack(
        database_url,
        kafka,
        topic,
        relay=False,
        registry_options=options,
        projection_options=options,
    ) as stack:
        greedy = stack.bearer(stack.token("greedy-client"))
        polite = stack.bearer(stack.token("polite-client"))
        for service in (stack.registry, stack.projections):
            path = "/v1/agreements/none" if service is stack.registry else "/v1/projections/status"
            statuses = [(await service.get(path, headers=greedy)).status_code for _ in range(4)]
            assert 429 not in statuses[:3] and statuses[3] == 429, statuses
            refused = await service.get(path, headers=greedy)
            problem = assert_problem(refused, 429)
            assert problem["type"].endswith("/rate-limited")
            assert 1 <= int(refused.headers["Retry-After"]) <= 5  # one token every 5 s
            # The bucket is the client's: another client is not slowed down.
            assert (await service.get(path, headers=polite)).status_code != 429
        # Commands are charged too, and a refused command writes nothing.
        refused = await stack.registry.post("/v1/agreements", json=sign_body(), headers=greedy)
        assert_problem(refused, 429)
        assert await stack.pool.fetchval("SELECT count(*) FROM registry.events") == 0
        # Health, readiness and metrics are not rate limited (nor authenticated).
        async with httpx.AsyncClient(base_url=stack.registry_url) as anonymous:
            for _ in range(5):
                assert (await anonymous.get("/healthz")).status_code == 200
            assert (await anonymous.get("/metrics")).status_code == 200


async def test_idempotency_keys_are_scoped_per_client(stack: Stack) -> None:
    """Two clients, one key: neither ever receives the other's stored response."""
    alice, bob, carol = (
        stack.bearer(stack.token(name, party_ids=["mttq-hoa-binh"]))
        for name in ("alice-system", "bob-system", "carol-system")
    )
    key = {"Idempotency-Key": f"shared-{uuid.uuid4().hex[:6]}"}
    body = sign_body()

    first = await stack.registry.post("/v1/agreements", json=body, headers={**alice, **key})
    assert first.status_code == 201
    # Bob, same key, another body: his own new agreement, not Alice's 201 and not "key reused".
    bobs = await stack.registry.post("/v1/agreements", json=sign_body(), headers={**bob, **key})
    assert bobs.status_code == 201 and "idempotent-replayed" not in bobs.headers
    assert bobs.json()["agreement_id"] != first.json()["agreement_id"]
    # Bob's key is now bound to Bob's body: Alice's body under it is a reuse of *his* key.
    assert_problem(await stack.registry.post("/v1/agreements", json=body, headers={**bob, **key}), 422)
    # Carol, same key, Alice's exact body: decided afresh (already signed: 409), not replayed.
    carols = await stack.registry.post("/v1/agreements", json=body, headers={**carol, **key})
    assert carols.status_code == 409 and "idempotent-replayed" not in carols.headers
    assert carols.json()["existing_agreement_id"] == first.json()["agreement_id"]
    # Alice again: her own stored response.
    again = await stack.registry.post("/v1/agreements", json=body, headers={**alice, **key})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    rows = await stack.pool.fetch(
        "SELECT client_id, status_code FROM registry.idempotency_keys WHERE key = $1 ORDER BY client_id",
        key["Idempotency-Key"],
    )
    assert [(r["client_id"], r["status_code"]) for r in rows] == [
        ("alice-system", 201),
        ("bob-system", 201),
        ("carol-system", 409),
    ]
    # Concurrently, too: each client gets exactly its own outcome.
    key = {"Idempotency-Key": f"race-{uuid.uuid4().hex[:6]}"}
    a, b = await asyncio.gather(
        stack.registry.post("/v1/agreements", json=sign_body(), headers={**alice, **key}),
        stack.registry.post("/v1/agreements", json=sign_body(), headers={**bob, **key}),
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["agreement_id"] != b.json()["agreement_id"]


def test_the_token_bucket_refills_at_its_rate_and_forgets_idle_clients() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=4, clock=lambda: now[0], max_keys=2)
    assert [limiter.try_take("a") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.try_take("a") == 0.5  # one token comes back every 0.5 s
    now[0] += 0.5
    assert limiter.try_take("a") == 0
    with pytest.raises(RateLimited) as refused:
        limiter.charge("a")
    assert refused.value.retry_after == 0.5
    # Buckets that have refilled are dropped once there are more clients than max_keys.
    limiter.try_take("b")
    now[0] += 10
    limiter.try_take("c")
    assert set(limiter._buckets) <= {"c"}
    assert rate_limiter(0, 10) is None  # rate 0 turns rate limiting off
