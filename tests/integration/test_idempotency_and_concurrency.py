"""Idempotency-Key exactly as docs/CONTRACT.md says, and many concurrent commands on one agreement."""

from __future__ import annotations

import asyncio
import uuid

from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack


async def events_total(stack: Stack) -> int:
    return int(await stack.pool.fetchval("SELECT count(*) FROM registry.events"))


async def test_same_key_same_body_returns_the_first_response_without_a_new_event(stack: Stack) -> None:
    body = sign_body()
    key = {"Idempotency-Key": f"sign-{uuid.uuid4()}"}
    first = await stack.registry.post("/v1/agreements", json=body, headers=key)
    assert first.status_code == 201
    before = await events_total(stack)
    again = await stack.registry.post("/v1/agreements", json=body, headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert (
        again.headers["location"] == first.headers["location"]
        and again.headers["etag"] == first.headers["etag"]
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert await events_total(stack) == before


async def test_same_key_other_body_is_422(stack: Stack) -> None:
    key = {"Idempotency-Key": "k-other-body"}
    assert (await stack.registry.post("/v1/agreements", json=sign_body(), headers=key)).status_code == 201
    before = await events_total(stack)
    response = await stack.registry.post("/v1/agreements", json=sign_body(), headers=key)
    assert response.status_code == 422
    assert ["header", "idempotency-key"] in [e["loc"] for e in response.json()["errors"]]
    assert await events_total(stack) == before


async def test_same_key_while_the_first_runs_is_409(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    key = "k-in-flight"
    # Hold the agreement's stream so the first request blocks inside its transaction.
    async with stack.pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE registry.idempotency_keys IN SHARE ROW EXCLUSIVE MODE")
        first = asyncio.create_task(
            stack.registry.post(
                f"/v1/agreements/{agreement}/progress-reports",
                json=report_body(),
                headers={"Idempotency-Key": key},
            )
        )
        await asyncio.sleep(0.5)
    first_response = await first
    assert first_response.status_code == 201
    # Now simulate a first request still running: an in-flight record for the same body.
    second_key = "k-in-flight-2"
    await stack.pool.execute(
        """INSERT INTO registry.idempotency_keys (client_id, key, fingerprint, token)
           SELECT client_id, $1, fingerprint, gen_random_uuid() FROM registry.idempotency_keys WHERE key = $2""",
        second_key,
        key,
    )
    before = await events_total(stack)
    response = await stack.registry.post(
        f"/v1/agreements/{agreement}/progress-reports",
        json=report_body(),
        headers={"Idempotency-Key": second_key},
    )
    assert response.status_code == 409 and response.headers["retry-after"]
    assert await events_total(stack) == before


async def test_concurrent_duplicates_with_one_key_record_one_event(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    key = {"Idempotency-Key": "k-burst"}
    responses = await asyncio.gather(
        *(
            stack.registry.post(
                f"/v1/agreements/{agreement}/progress-reports", json=report_body(), headers=key
            )
            for _ in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert len({r.json()["position"] for r in responses if r.status_code == 201}) == 1
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM registry.events WHERE agreement_id = $1", agreement
    )
    assert count == 2


async def test_a_refusal_is_remembered_too(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    key = {"Idempotency-Key": "k-refused"}
    bad = report_body(party_id="bao-hoa-binh")
    first = await stack.registry.post(f"/v1/agreements/{agreement}/progress-reports", json=bad, headers=key)
    again = await stack.registry.post(f"/v1/agreements/{agreement}/progress-reports", json=bad, headers=key)
    assert first.status_code == again.status_code == 422 and first.json() == again.json()


async def test_keys_are_scoped_per_client(stack: Stack) -> None:
    """The key's scope is the client id (the token's sub); test_limits.py checks two clients."""
    body = sign_body()
    await stack.registry.post("/v1/agreements", json=body, headers={"Idempotency-Key": "k-scope"})
    owner = await stack.pool.fetchval("SELECT client_id FROM registry.idempotency_keys WHERE key = 'k-scope'")
    assert owner == stack.client_id == "test-client"


async def test_many_concurrent_reports_on_one_agreement_all_land_in_distinct_sequences(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    periods = [f"{year}" for year in range(2023, 2028)]
    bodies = [report_body(period=p, completion_percent=i) for i, p in enumerate(periods * 6)]
    responses = await asyncio.gather(
        *(stack.registry.post(f"/v1/agreements/{agreement}/progress-reports", json=b) for b in bodies)
    )
    statuses = [r.status_code for r in responses]
    # Without If-Match the command does not depend on the version: none is refused.
    assert statuses == [201] * len(bodies)
    accepted = [r.json()["version"] for r in responses if r.status_code == 201]
    assert len(accepted) == len(set(accepted)), "two commands won the same sequence"
    sequences = [
        r["sequence"]
        for r in await stack.pool.fetch(
            "SELECT sequence FROM registry.events WHERE agreement_id = $1 ORDER BY sequence", agreement
        )
    ]
    assert sequences == list(range(1, len(accepted) + 2))


async def test_racing_if_match_one_winner_per_version(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    body = {
        "document_number": "13/QĐ-MTTQ-BTT",
        "reason": "Điều chỉnh kỳ báo cáo",
        "effective_on": "2024-06-01",
        "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "semiannual"}],
    }
    responses = await asyncio.gather(
        *(
            stack.registry.post(
                f"/v1/agreements/{agreement}/amendments", json=body, headers={"If-Match": '"1"'}
            )
            for _ in range(20)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1 and statuses.count(412) == 19
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM registry.events WHERE agreement_id = $1", agreement
    )
    assert count == 2
