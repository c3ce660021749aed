"""The Python client (coordreg_contracts.client) across a PostgreSQL restart: every command it is
given succeeds, through 503s and lost connections retried with the command's own Idempotency-Key,
and has exactly one effect (one event in the store)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import httpx
from coordreg_contracts.client import RegistryClient, RetryPolicy
from coordreg_contracts.client import answers as a

from deploy.local.processes import free_port
from deploy.tokens import mint
from services.common.db import create_pool
from tests.faults.conftest import Infra, record
from tests.faults.harness import STARTED_WITHIN, Env, registry_ready, wait_until
from tests.support.builders import report_body, sign_body

SIGNED_BEFORE = 5


async def test_client_commands_have_one_effect_across_a_postgres_restart(env: Env, infra: Infra) -> None:
    port = free_port()
    env.registry("registry", port)
    base = f"http://127.0.0.1:{port}"
    token = mint("fault-client", party_ids=["mttq-hoa-binh", "hctd-hoa-binh"])
    async with httpx.AsyncClient(base_url=base, timeout=10) as probe:
        await wait_until(lambda: registry_ready(probe), STARTED_WITHIN)
    # The policy outlasts the restart and the 15 s after which a key left in flight is taken over.
    policy = RetryPolicy(max_attempts=1000, total_seconds=180, max_delay_seconds=2)
    async with RegistryClient(base, token, policy=policy, timeout=10) as client:
        agreements = [(await client.sign(sign_body())).agreement_id for _ in range(SIGNED_BEFORE)]
        results: list[a.AgreementCommandResult] = []
        stop = asyncio.Event()

        async def clientele() -> None:
            while not stop.is_set():
                if random.random() < 0.2:
                    results.append(await client.sign(sign_body()))
                else:
                    body = report_body(period=random.choice(["2023", "2024", "2025"]))
                    results.append(await client.report_progress(random.choice(agreements), body))

        def failed_attempts() -> int:
            return sum(not outcome.startswith("2") for *_, outcome in client.session.attempts)

        async def succeeded_after(count: int) -> bool:
            return len(results) > count

        tasks = [asyncio.create_task(clientele()) for _ in range(6)]
        try:
            await wait_until(lambda: succeeded_after(10), 60, 0.05)
            infra.postgres.stop()
            stopped_at = time.monotonic()

            async def refused() -> bool:
                return failed_attempts() > 0

            await wait_until(refused, 60, 0.05)
            await asyncio.sleep(max(0.0, stopped_at + 2 - time.monotonic()))
            infra.postgres.start(STARTED_WITHIN)
            restarted = len(results)
            await wait_until(lambda: succeeded_after(restarted + 10), 180, 0.05)
        finally:
            stop.set()
            # Every command in progress finishes through its retries: an exception here fails the test.
            await asyncio.gather(*tasks)

        by_key: dict[str | None, list[str]] = defaultdict(list)
        for _, _, key, outcome in client.session.attempts:
            by_key[key].append(outcome)
        retried = [k for k, outcomes in by_key.items() if k is not None and len(outcomes) > 1]

    pool = await create_pool(env.database_url, min_size=1, max_size=2)
    try:
        stored = {
            (r["agreement_id"], r["position"])
            for r in await pool.fetch("SELECT agreement_id, position FROM registry.events")
        }
        events = await pool.fetchval(
            "SELECT count(*) FROM registry.events WHERE agreement_id NOT LIKE 'party/%'"
        )
    finally:
        await pool.close()
    missing = [r for r in results if (r.agreement_id, r.position) not in stored]
    record("client across a PostgreSQL restart", "commands given (all succeeded)", len(results))
    record("client across a PostgreSQL restart", "attempts refused or lost", failed_attempts())
    record("client across a PostgreSQL restart", "commands retried with their key", len(retried))
    failures = sorted({o for *_, o in client.session.attempts if not o.startswith("2")})
    record("client across a PostgreSQL restart", "what the retried attempts met", ", ".join(failures))
    record(
        "client across a PostgreSQL restart",
        "agreement events (= signings before + every command once)",
        events,
        str(SIGNED_BEFORE + len(results)),
    )
    assert retried, "the restart interrupted no command"
    assert all(by_key[k][-1].startswith("2") for k in retried)
    assert len({(r.agreement_id, r.position) for r in results}) == len(results)
    assert missing == []
    assert events == SIGNED_BEFORE + len(results), "each command exactly one event"
