"""Scenario 8: the registry killed (kill -9) in the middle of a succession's fan-out.

A party named by a few hundred agreements ceases; the registry process carrying the succession
into them is killed part-way and a new one finishes from the queue (docs/CONTRACT.md, decision
17). Afterwards every open agreement holds exactly one transfer, the closed ones none, every
chain verifies, Kafka holds the store and the read models give the obligations to the successor;
the party queued again, as a redelivery would, changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
from coordreg_contracts.commands import CloseTerm, SignAgreement

from deploy.demo.samples import programme
from deploy.local.processes import free_port
from deploy.tokens import mint
from services.audit.settings import AuditSettings
from services.audit.verify import verify
from services.common.db import create_pool
from services.registry import bootstrap
from services.registry.adapters.postgres_store import SUCCESSION_CHANNEL
from services.registry.service_layer.successions import TRANSFER_NAMESPACE
from tests.faults.conftest import record
from tests.faults.harness import (
    CTX,
    STARTED_WITHIN,
    Env,
    broken_chains,
    live_vs_rebuild,
    outbox_empty,
    projection_caught_up,
    registry_ready,
    scaled,
    wait_until,
)
from tests.support.builders import sign_body
from tests.support.kafka import settings_of

SCENARIO = "8 registry kill -9 mid-succession"
PREDECESSOR = "sldtbxh-hoa-binh"
PREDECESSOR_NAME = "Sở Lao động – Thương binh và Xã hội tỉnh Hòa Bình"
SUCCESSOR = "snv-phu-tho"
TRANSFERRED = "vn.gov.coordination.ObligationsTransferred.v1"
CLOSED_EVERY = 6  # one agreement in six closed before the succession
OTHERS = 10  # agreements that never name the predecessor


def naming_predecessor(number: int) -> dict[str, Any]:
    """Odd numbers: the predecessor is the lead party and leads one obligation; even numbers: a
    member that supports both obligations."""
    body = programme("Hòa Bình", "hoa-binh", f"{number}/CTPH-MTTQ-HCTĐ", womens_union=True)
    stand_in = "mttq-hoa-binh" if number % 2 else "hlhpn-hoa-binh"
    body = json.loads(json.dumps(body).replace(f'"{stand_in}"', f'"{PREDECESSOR}"'))
    for party in body["parties"]:
        if party["party_id"] == PREDECESSOR:
            party["name"] = PREDECESSOR_NAME
    return dict(body)


async def sign_all(pool: asyncpg.Pool, count: int) -> tuple[list[str], list[str], list[str]]:
    """(agreements naming the predecessor, agreements that do not, the closed ones among the first)."""
    registry = bootstrap.on_postgres(pool)
    gate = asyncio.Semaphore(16)

    async def sign(body: dict[str, Any]) -> str:
        async with gate:
            return (await registry.bus.run(SignAgreement.model_validate(body), CTX)).agreement_id

    async def close(agreement_id: str) -> None:
        command = CloseTerm(closed_on="2024-12-31", outcome="terminated", summary="Giải thể theo Đề án")
        async with gate:
            await registry.bus.run(command, CTX, agreement_id)

    # The first two register every party in the directory: one at a time, they do not race for it.
    naming = [await sign(naming_predecessor(1)), await sign(naming_predecessor(2))]
    naming += await asyncio.gather(*(sign(naming_predecessor(n)) for n in range(3, count + 1)))
    others = await asyncio.gather(
        *(sign(sign_body(document_number=f"{count + n}/CTPH-MTTQ-HCTĐ")) for n in range(1, OTHERS + 1))
    )
    closed = naming[::CLOSED_EVERY]
    await asyncio.gather(*(close(a) for a in closed))
    return naming, list(others), closed


async def transfers(conn: asyncpg.Pool | asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM registry.events WHERE event_type = $1", TRANSFERRED))


async def queue_empty(pool: asyncpg.Pool) -> bool:
    return int(await pool.fetchval("SELECT count(*) FROM registry.succession_queue")) == 0


async def transfers_per_agreement(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch(
        """SELECT agreement_id,
                  count(*) FILTER (WHERE event_type = $1
                                   AND envelope::jsonb -> 'data' ->> 'predecessor_party_id' = $2) AS n
           FROM registry.events WHERE agreement_id NOT LIKE 'party/%'
           GROUP BY agreement_id""",
        TRANSFERRED,
        PREDECESSOR,
    )
    return {r["agreement_id"]: r["n"] for r in rows}


async def test_8_registry_killed_mid_succession(env: Env) -> None:
    pool = await create_pool(env.database_url, min_size=2, max_size=20)
    port = free_port()
    registry = env.registry("registry", port)
    env.relay("relay-a")
    env.worker("worker-1")
    naming, others, closed = await sign_all(pool, scaled(300, minimum=100))
    active = [a for a in naming if a not in set(closed)]
    headers = {"Authorization": f"Bearer {mint('fault-suite')}"}
    watcher = await asyncpg.connect(env.database_url)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=headers) as client:
        await wait_until(lambda: registry_ready(client), STARTED_WITHIN)
        registered = await client.post(
            "/v1/parties",
            json={"party_id": SUCCESSOR, "name": "Sở Nội vụ tỉnh Phú Thọ", "kind": "department"},
        )
        assert registered.status_code == 201, registered.text
        succession = {
            "effective_on": "2025-07-01",
            "legal_basis": "45/2025/NĐ-CP",
            "successor_party_id": SUCCESSOR,
            "obligation_successors": [],
        }
        recorded = await client.post(f"/v1/parties/{PREDECESSOR}/succession", json=succession)
        assert recorded.status_code == 200, recorded.text
        pending_during = (await client.get(f"/v1/parties/{PREDECESSOR}")).json()["transfers_pending"]

        # Killed once a quarter of the transfers are in: well inside the fan-out, not at its edges.
        target = max(1, len(active) // 4)
        fan_out_started = time.monotonic()
        while (seen := await transfers(watcher)) < target:
            assert time.monotonic() - fan_out_started < 60, f"the fan-out stalled at {seen} transfers"
            await asyncio.sleep(0.005)
        registry.kill()
        await watcher.close()
        before_kill = await transfers(pool)
        rate = before_kill / (time.monotonic() - fan_out_started)
        assert 1 <= before_kill < len(active), f"the kill came at {before_kill}/{len(active)} transfers"
        still_queued = await pool.fetchval(
            "SELECT count(*) FROM registry.succession_queue WHERE party_id = $1", PREDECESSOR
        )

        registry = env.registry("registry", port)
        finished = await wait_until(lambda: queue_empty(pool), STARTED_WITHIN, 0.02)
        after_restart = await transfers(pool) - before_kill
        await wait_until(lambda: registry_ready(client), STARTED_WITHIN)
        pending_after = (await client.get(f"/v1/parties/{PREDECESSOR}")).json()["transfers_pending"]

        # A redelivery: the party queued again, as a second request or a replayed queue row would.
        events_before = await pool.fetchval("SELECT count(*) FROM registry.events")
        await pool.execute(
            """INSERT INTO registry.succession_queue (party_id) VALUES ($1)
               ON CONFLICT (party_id) DO UPDATE SET request = nextval('registry.succession_requests')""",
            PREDECESSOR,
        )
        await pool.execute("SELECT pg_notify($1, '')", SUCCESSION_CHANNEL)
        await wait_until(lambda: queue_empty(pool), 30, 0.02)
        redelivered = await pool.fetchval("SELECT count(*) FROM registry.events") - events_before
    # The killed run never finished, so it logged nothing; the restart's run and the redelivery's
    # each decided on every agreement that names the party.
    runs = [(e["transferred"], e["unchanged"]) for e in registry.logged("succession carried")]

    counts = await transfers_per_agreement(pool)
    missing = [a for a in active if counts.get(a, 0) == 0]
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    closed_touched = [a for a in closed if counts.get(a, 0) > 0]
    others_touched = [a for a in others if counts.get(a, 0) > 0]
    succession_id = str(
        await pool.fetchval(
            "SELECT event_id FROM registry.events WHERE agreement_id = $1 AND event_type LIKE $2",
            f"party/{PREDECESSOR}",
            "%.SuccessionRecorded.%",
        )
    )
    ids = await pool.fetch(
        "SELECT agreement_id, event_id FROM registry.events WHERE event_type = $1", TRANSFERRED
    )
    misnamed = [
        r["agreement_id"]
        for r in ids
        if str(r["event_id"]) != str(uuid.uuid5(TRANSFER_NAMESPACE, f"{succession_id}/{r['agreement_id']}"))
    ]

    await wait_until(lambda: outbox_empty(pool), 180)
    audit = AuditSettings(
        database_url=env.database_url,
        **settings_of(env.kafka.audit),
        topic=env.topic,
        progress_seconds=0,
    )
    broken = await broken_chains(pool)
    verified = await verify(audit)
    await wait_until(lambda: projection_caught_up(pool), 180)
    held = {
        r["agreement_id"]
        for r in await pool.fetch(
            """SELECT DISTINCT agreement_id FROM projections.party_obligations
               WHERE party_id = $1 AND status = 'active' AND inherited_from = $2""",
            SUCCESSOR,
            PREDECESSOR,
        )
    }
    left_with_predecessor = await pool.fetchval(
        "SELECT count(*) FROM projections.party_obligations WHERE party_id = $1 AND status = 'active'",
        PREDECESSOR,
    )
    differences = await live_vs_rebuild(env.database_url, pool)
    await pool.close()

    record(
        SCENARIO,
        "agreements naming the party (open + closed)",
        f"{len(naming)} ({len(active)} + {len(closed)})",
    )
    record(SCENARIO, "transfers before the kill", f"{before_kill}/{len(active)} (at {rate:.0f}/s)")
    record(SCENARIO, "transfers after the restart", after_restart, str(len(active) - before_kill))
    record(SCENARIO, "restart to queue empty (s)", f"{finished:.1f}")
    record(SCENARIO, "open agreements without their transfer", len(missing), "0")
    record(SCENARIO, "duplicate transfers", duplicates, "0")
    record(
        SCENARIO, "closed (or unrelated) agreements touched", len(closed_touched) + len(others_touched), "0"
    )
    record(SCENARIO, "transfers not named uuid5(succession, agreement)", len(misnamed), "0")
    record(
        SCENARIO,
        "redelivery: agreements decided again, events",
        f"{runs[-1][1]}, {redelivered}",
        f"{len(naming)}, 0",
    )
    record(SCENARIO, "streams whose hash chain breaks (sequence, prevhash, hash)", len(broken), "0")
    record(SCENARIO, "audit verify problems (chains, Kafka ≡ store)", len(verified.problems), "0")
    record(SCENARIO, "open agreements whose obligations the successor holds", len(held), str(len(active)))
    record(SCENARIO, "read-model rows differing from a rebuild", differences, "0")
    assert pending_during is True and still_queued == 1 and pending_after is False
    assert before_kill + after_restart == len(active)
    assert not missing and duplicates == 0 and not closed_touched and not others_touched and not misnamed
    assert redelivered == 0
    assert runs == [(after_restart, len(naming) - after_restart), (0, len(naming))], runs
    assert not broken, broken
    assert verified.ok and verified.kafka_checked, verified.summary()
    assert held == set(active) and left_with_predecessor == 0
    assert differences == 0
