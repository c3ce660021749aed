"""Scenarios 5 and 7: PostgreSQL restarted under HTTP load, and clients racing one If-Match version."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
from coordreg_contracts.commands import AmendAgreement

from deploy.tokens import mint
from services.common.db import create_pool
from services.registry import bootstrap
from services.registry.domain.errors import PreconditionFailed
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from tests.faults.conftest import Infra, record
from tests.faults.harness import Env, Load, registry_ready, scaled, wait_until
from tests.support.builders import report_body, sign_body
from tests.support.stack import free_port


async def test_5_postgres_restarted_under_load(env: Env, infra: Infra) -> None:
    port = free_port()
    env.registry("registry", port)
    base = f"http://127.0.0.1:{port}"
    token = mint("fault-suite", party_ids=["mttq-hoa-binh", "hctd-hoa-binh"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        await wait_until(lambda: registry_ready(client), 60)
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

        clients = [asyncio.create_task(clientele()) for _ in range(8)]
        await asyncio.sleep(3)
        infra.postgres.stop()
        await asyncio.sleep(2)
        infra.postgres.start()
        await asyncio.sleep(5)
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
