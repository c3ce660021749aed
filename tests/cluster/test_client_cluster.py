"""The Python client (coordreg_contracts.client) through the cluster's load balancers while a
registry is killed (kill -9) and started again (issue 22, item 3): every command given to the
client succeeds, and has exactly one event in the store, through the lost connections and proxy
errors it met and retried with the command's own Idempotency-Key.

Several tasks, each a client with its own session (a user of the services), send signings and
progress reports to HAProxy's registry front and read them back through the projections' front
with `min_position` (read-your-writes). The kill strikes only once commands have succeeded, and
the tasks go on until commands succeed again after the registry is back behind HAProxy.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict

import asyncpg
import httpx
from coordreg_contracts.client import Coordreg, RetryPolicy

from deploy.local.cluster import LocalCluster
from deploy.tokens import demo_token
from tests.cluster.clients import Acknowledged, effects
from tests.cluster.conftest import record
from tests.faults.harness import STARTED_WITHIN, registry_ready, wait_until
from tests.support.builders import report_body, sign_body

TASKS = 12
BEFORE = 50  # commands that succeed before the kill
AFTER = 50  # and after the registry is back behind HAProxy
READ_EVERY = 4  # each task reads its command back through the projections every 4th command


def _failed(attempt: tuple[str, str, str | None, str]) -> bool:
    return not attempt[3].startswith("2")


async def test_client_commands_have_one_effect_across_a_registry_kill(
    cluster: LocalCluster, pool: asyncpg.Pool
) -> None:
    scenario = "C5 Python client, registry kill -9"
    # Outlasts the restart and the 15 s after which a key left in flight by the killed process
    # is taken over (docs/CONTRACT.md B1).
    policy = RetryPolicy(max_attempts=1000, total_seconds=120, max_delay_seconds=2)
    token = demo_token()
    clients = [
        Coordreg(cluster.registry_url, cluster.projections_url, token, policy=policy, timeout=10)
        for _ in range(TASKS)
    ]
    given: list[Acknowledged] = []  # every command given to a client, with its answer
    agreements: list[str] = []
    reads = 0
    stop = asyncio.Event()

    async def user(client: Coordreg) -> None:
        nonlocal reads
        count = 0
        while not stop.is_set():
            count += 1
            # The command's key marks its body, so the store can be asked for its events by key.
            key = str(uuid.uuid4())
            if not agreements or random.random() < 0.2:
                body = sign_body(document_number=f"{key}/KH-UBND")
                result = await client.registry.sign(body, idempotency_key=key)
                agreements.append(result.agreement_id)
            else:
                body = report_body(period=random.choice(["2024", "2025", "2026"]), summary=f"cluster {key}")
                agreement = random.choice(agreements)
                result = await client.registry.report_progress(agreement, body, idempotency_key=key)
            attempts = sum(1 for attempt in client.session.attempts if attempt[2] == key)
            given.append(Acknowledged(key, result.agreement_id, result.position, time.monotonic(), attempts))
            if count % READ_EVERY == 0:
                # min_position = this session's last command: the read model holds it.
                document = await client.projections.get_agreement(result.agreement_id)
                assert document.version >= result.version
                reads += 1

    async def given_after(moment: float, count: int) -> bool:
        return sum(1 for g in given if g.at > moment) >= count

    def command_failures() -> int:
        return sum(1 for c in clients for attempt in c.session.attempts if attempt[2] and _failed(attempt))

    started = time.monotonic()
    tasks = [asyncio.create_task(user(client)) for client in clients]
    try:
        await wait_until(lambda: given_after(0.0, BEFORE), 180, 0.05)
        # Struck while registry-1 is inside a command's transaction: a request is in flight on it.
        await wait_until(lambda: _in_a_transaction(pool, "registry-1"), 60, 0.005)
        failed_before = command_failures()
        killed = time.monotonic()
        cluster.processes["registry-1"].kill()
        await asyncio.sleep(1)
        cluster.start_service("registry-1")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{cluster.ports.registries[0]}", timeout=1
        ) as probe:
            restart = await wait_until(lambda: registry_ready(probe), STARTED_WITHIN)
        # HAProxy brings it back after two good checks (0.5 s apart).
        await asyncio.sleep(1.5)
        back = time.monotonic()
        assert not any(task.done() for task in tasks), "a client stopped before the registry was back"
        await wait_until(lambda: given_after(back, AFTER), 180, 0.05)
    finally:
        stop.set()
        # Every command in progress finishes through its retries: an exception here fails the test.
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors
    seconds = time.monotonic() - started

    attempts = [attempt for client in clients for attempt in client.session.attempts]
    by_key: dict[str, list[str]] = defaultdict(list)
    for _, _, key, outcome in attempts:
        if key is not None:
            by_key[key].append(outcome)
    retried = [key for key, outcomes in by_key.items() if len(outcomes) > 1]
    met = Counter(
        outcome for _, _, key, outcome in attempts if key is not None and not outcome.startswith("2")
    )
    found = await effects(pool, given)
    events = await pool.fetchval("SELECT count(*) FROM registry.events WHERE agreement_id NOT LIKE 'party/%'")

    record(scenario, "clients (tasks, each its own session)", TASKS)
    record(scenario, "commands given (all succeeded)", f"{len(given)} in {seconds:.1f} s")
    record(scenario, "reads through the projections' HAProxy (min_position)", reads)
    record(scenario, "command attempts failed before the kill", failed_before, "0")
    record(scenario, "command attempts failed after it, by answer", dict(met) or 0)
    record(scenario, "commands retried with their own key", len(retried))
    record(scenario, "restart until ready again (s)", f"{restart + 1:.1f}")
    record(
        scenario,
        "kill until the last retried command succeeded (s)",
        f"{_last_retried(given, retried, killed):.1f}",
    )
    record(scenario, "commands without their event / with two", f"{found.missing} / {found.twice}", "0 / 0")
    record(scenario, "agreement events in the store", events, str(len(given)))
    assert command_failures() > failed_before, "the kill interrupted no command"
    assert retried, "no command was retried"
    assert all(by_key[key][-1].startswith("2") for key in retried)
    assert len(by_key) == len(given) == len({g.key for g in given}), "each command its own key"
    assert len({g.position for g in given}) == len(given)
    assert found.missing == 0 and found.twice == 0 and found.positions_differ == 0
    assert events == len(given), "each command exactly one event"


async def _in_a_transaction(pool: asyncpg.Pool, process: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL)",
            process,
        )
    )


def _last_retried(given: list[Acknowledged], retried: list[str], killed: float) -> float:
    keys = set(retried)
    return max((g.at for g in given if g.key in keys), default=killed) - killed
