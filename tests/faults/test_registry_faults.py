"""Scenarios 5 and 7: PostgreSQL restarted under HTTP load, and clients racing one If-Match version
(in one process as separate registries, and over HTTP against one registry of several worker
processes)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
from coordreg_contracts.commands import AmendAgreement

from deploy.local.processes import free_port
from deploy.tokens import mint
from services.common.db import create_pool
from services.registry import bootstrap
from services.registry.domain.errors import PreconditionFailed
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from tests.faults.conftest import Infra, record
from tests.faults.harness import STARTED_WITHIN, Env, Load, registry_ready, scaled, wait_until
from tests.support.builders import report_body, sign_body


async def test_5_postgres_restarted_under_load(env: Env, infra: Infra) -> None:
    port = free_port()
    env.registry("registry", port)
    base = f"http://127.0.0.1:{port}"
    token = mint("fault-suite", party_ids=["mttq-hoa-binh", "hctd-hoa-binh"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        await wait_until(lambda: registry_ready(client), STARTED_WITHIN)
        agreements = [
            (await client.post("/v1/agreements", json=sign_body())).json()["agreement_id"] for _ in range(20)
        ]
        outcomes: list[dict[str, Any]] = []
        stop = asyncio.Event()

        async def clientele() -> None:
            while not stop.is_set():
                key = str(uuid.uuid4())
                if random.random() < 0.2:
                    path, body = "/v1/agreements", sign_body()
                else:
                    path = f"/v1/agreements/{random.choice(agreements)}/progress-reports"
                    body = report_body(period=random.choice(["2023", "2024", "2025"]))
                try:
                    response = await client.post(path, json=body, headers={"Idempotency-Key": key})
                    outcome = {"key": key, "path": path, "body": body, "status": response.status_code}
                    if response.status_code < 300:
                        outcome["result"] = response.json()
                    else:
                        outcome["retry_after"] = response.headers.get("retry-after")
                except httpx.TransportError as exc:
                    outcome = {"key": key, "path": path, "body": body, "status": None, "error": repr(exc)}
                outcomes.append(outcome)

        def answered(since: int, ok: bool) -> Callable[[], Awaitable[bool]]:
            """Whether a command sent after the first `since` got an answer of the kind asked."""

            async def seen() -> bool:
                return any((o["status"] is not None and o["status"] < 300) == ok for o in outcomes[since:])

            return seen

        clients = [asyncio.create_task(clientele()) for _ in range(8)]
        # Each step waits for what it needs, not for a guessed time: commands accepted before the
        # restart, refused while the database is down (for at least 2 s), accepted after it.
        try:
            await wait_until(answered(0, ok=True), 60, 0.05)
            await asyncio.sleep(1)
            infra.postgres.stop()
            stopped, stopped_at = len(outcomes), time.monotonic()
            await wait_until(answered(stopped, ok=False), 60, 0.05)
            await asyncio.sleep(max(0.0, stopped_at + 2 - time.monotonic()))
            infra.postgres.start(STARTED_WITHIN)
            await wait_until(answered(len(outcomes), ok=True), 120, 0.05)
            await asyncio.sleep(1)
        finally:
            stop.set()
            await asyncio.gather(*clients)

        pool = await create_pool(env.database_url, min_size=1, max_size=4)
        accepted = [o for o in outcomes if o["status"] is not None and o["status"] < 300]
        stored = {
            (r["agreement_id"], r["position"])
            for r in await pool.fetch("SELECT agreement_id, position FROM registry.events")
        }
        missing = [
            o for o in accepted if (o["result"]["agreement_id"], o["result"]["position"]) not in stored
        ]
        failed = [o for o in outcomes if o["status"] is None or o["status"] >= 300]
        retryable = [
            o for o in failed if o["status"] is None or (o["status"] == 503 and o.get("retry_after"))
        ]
        # Retrying every failed command with its Idempotency-Key gives exactly one effect each,
        # for a client that honours Retry-After (a 409 means the first attempt's claim on the
        # key has not expired yet: its outcome is unknown until then).
        retried_ok = 0
        for outcome in failed:
            for _ in range(60):
                response = await client.post(
                    outcome["path"], json=outcome["body"], headers={"Idempotency-Key": outcome["key"]}
                )
                if response.status_code not in (409, 503) or "retry-after" not in response.headers:
                    break
                await asyncio.sleep(float(response.headers["retry-after"]))
            retried_ok += response.status_code < 300
        # Agreement streams only: the first signing also registered its two parties in the
        # directory, on streams of their own.
        events = await pool.fetchval(
            "SELECT count(*) FROM registry.events WHERE agreement_id NOT LIKE 'party/%'"
        )
        await pool.close()
    record("5 PostgreSQL restart", "commands answered 2xx", len(accepted))
    record("5 PostgreSQL restart", "2xx commands missing from the store", len(missing), "0")
    record("5 PostgreSQL restart", "commands refused during the restart", len(failed))
    record(
        "5 PostgreSQL restart",
        "refusals that were not retryable (503 + Retry-After or no answer)",
        len(failed) - len(retryable),
        "0",
    )
    record(
        "5 PostgreSQL restart",
        "refused commands succeeding on retry with the same key",
        f"{retried_ok}/{len(failed)}",
    )
    record(
        "5 PostgreSQL restart",
        "agreement events in store (= 20 signings + every command once)",
        events,
        str(20 + len(outcomes)),
    )
    assert accepted and failed, "the restart did not interrupt the load"
    assert not missing and len(retryable) == len(failed) and retried_ok == len(failed)
    assert events == 20 + len(outcomes)


async def test_7_clients_racing_one_if_match_version(env: Env) -> None:
    pool = await create_pool(env.database_url, min_size=4, max_size=40)
    load = Load(pool)
    await load.run(1, signings_share=1.0)
    [agreement] = load.agreements
    # One registry per client, as if each were its own registry instance: only the database decides.
    registries = [bootstrap.on_postgres(pool) for _ in range(16)]
    rounds, violations = scaled(30, minimum=10), 0
    for version in range(1, rounds + 1):
        command = AmendAgreement.model_validate(
            {
                "document_number": f"{version}/QĐ-MTTQ-BTT",
                "reason": "Điều chỉnh kỳ báo cáo",
                "effective_on": "2024-03-01",
                "changes": [
                    {
                        "op": "revise_obligation",
                        "obligation_id": "nhan-dao",
                        "cadence": random.choice(["annual", "quarterly"]),
                    }
                ],
            }
        )

        async def attempt(registry: bootstrap.Registry) -> bool:
            context = CommandContext(Caller.in_process("racer"), "c", "k", expected_version=version)  # noqa: B023
            try:
                await registry.bus.run(command, context, agreement)  # noqa: B023
            except PreconditionFailed:
                return False
            return True

        winners = sum(await asyncio.gather(*(attempt(r) for r in registries)))
        violations += winners != 1
    final = await pool.fetchval(
        "SELECT max(sequence) FROM registry.events WHERE agreement_id = $1", agreement
    )
    await pool.close()
    record("7 If-Match race", "rounds × clients", f"{rounds} × {len(registries)}")
    record("7 If-Match race", "versions with a number of winners other than one", violations, "0")
    record("7 If-Match race", "final version (= rounds + 1)", final, str(rounds + 1))
    assert violations == 0 and final == rounds + 1


async def test_7_over_http_against_several_worker_processes(env: Env) -> None:
    port = free_port()
    workers = 2
    env.registry("registry", port, workers=workers)
    token = mint("fault-suite", party_ids=["mttq-hoa-binh", "hctd-hoa-binh"])
    clients = 16
    # One connection per client, so that the race spreads over the worker processes.
    sessions = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=1),
        )
        for _ in range(clients)
    ]
    try:
        await wait_until(lambda: registry_ready(sessions[0]), STARTED_WITHIN)
        # Every worker process up with its pool before the race, so that the race can spread over
        # them: readiness answered by one says nothing of the other.
        await wait_until(lambda: _registry_backends(env.database_url, workers * 2), STARTED_WITHIN)
        signed = await sessions[0].post("/v1/agreements", json=sign_body())
        agreement = signed.json()["agreement_id"]
        rounds, violations = scaled(20, minimum=8), 0
        for version in range(1, rounds + 1):
            body = {
                "document_number": f"{version}/QĐ-MTTQ-BTT",
                "reason": "Điều chỉnh kỳ báo cáo",
                "effective_on": "2024-03-01",
                "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "annual"}],
            }
            answers = await asyncio.gather(
                *(
                    s.post(
                        f"/v1/agreements/{agreement}/amendments",
                        json=body,
                        headers={"If-Match": f'"{version}"'},
                    )
                    for s in sessions
                )
            )
            statuses = [a.status_code for a in answers]
            # An amendment answers 200; a stale If-Match 412.
            assert set(statuses) <= {200, 412}, statuses
            violations += statuses.count(200) != 1
        # Then every client reports at once without If-Match: each report lands once, and the
        # stream stays gapless whichever process appended it.
        reports = await asyncio.gather(
            *(
                s.post(
                    f"/v1/agreements/{agreement}/progress-reports", json=report_body(period=str(2023 + i % 3))
                )
                for i, s in enumerate(sessions)
            )
        )
        pool = await create_pool(env.database_url, min_size=1, max_size=2)
        sequences = [
            r["sequence"]
            for r in await pool.fetch(
                "SELECT sequence FROM registry.events WHERE agreement_id = $1 ORDER BY position", agreement
            )
        ]
        # Every worker process opened its own pool (a process that never started would not).
        backends = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'registry'"
        )
        await pool.close()
    finally:
        for s in sessions:
            await s.aclose()
    accepted_reports = sum(r.status_code == 201 for r in reports)
    record("7 If-Match race over HTTP", "worker processes × clients", f"{workers} × {clients}")
    record("7 If-Match race over HTTP", "versions with a number of winners other than one", violations, "0")
    record("7 If-Match race over HTTP", "concurrent reports accepted", f"{accepted_reports}/{clients}")
    record(
        "7 If-Match race over HTTP",
        "stream in store order",
        f"1..{len(sequences)}",
        f"1..{1 + rounds + clients}, gapless",
    )
    assert violations == 0 and accepted_reports == clients, [r.text for r in reports]
    assert sequences == list(range(1, 2 + rounds + clients))
    assert backends >= workers * 2, "not every worker process opened its pool"


async def _registry_backends(database_url: str, at_least: int) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        backends = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'registry'"
        )
    finally:
        await conn.close()
    return bool(backends >= at_least)
