"""Scenarios 1, 4 and 6: the relay killed, the broker stopped, and commits arriving out of order."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from services.common.db import create_pool
from services.registry.adapters.relay import OutboxRelay
from tests.faults.conftest import Infra, record
from tests.faults.harness import (
    STARTED_WITHIN,
    Env,
    Load,
    compare_topic_with_store,
    live_vs_rebuild,
    outbox_empty,
    projection_caught_up,
    relay_leader,
    scaled,
    tree_complete,
    tree_leaf_problems,
    wait_until,
)


async def test_1_relay_killed_at_random_moments(env: Env) -> None:
    pool = await create_pool(env.database_url, min_size=2, max_size=20)
    relays = {name: env.relay(name) for name in ("relay-a", "relay-b")}
    env.worker("worker-1")
    load = Load(pool)
    commands = scaled(5000, minimum=5000)
    kills = 0
    takeovers: list[float] = []
    done = asyncio.Event()
    # Set at the third kill: the load goes on until then, however fast it runs.
    killed_enough = asyncio.Event()

    async def killer() -> None:
        nonlocal kills
        while not done.is_set():
            await asyncio.sleep(random.uniform(0.3, 1.2))
            leader = await relay_leader(pool)
            if leader is None or leader not in relays:
                continue
            relays[leader].kill()
            kills += 1
            # The standby takes over; the killed one comes back as the new standby.
            takeovers.append(await wait_until(lambda: _has_leader(pool), 30, 0.05))
            relays[leader] = env.relay(leader)
            if kills >= 3:
                killed_enough.set()

    killing = asyncio.create_task(killer())
    # A killer that failed stops the load too; awaiting it below raises its error.
    killing.add_done_callback(lambda _: killed_enough.set())
    started = time.monotonic()
    try:
        await load.run(commands, until=killed_enough)
        elapsed = time.monotonic() - started
        kills_under_load = kills
    finally:
        done.set()
        await killing
    await wait_until(lambda: outbox_empty(pool), 120)
    await wait_until(lambda: projection_caught_up(pool), 120)
    check = await compare_topic_with_store(pool, env.kafka.audit, env.topic)
    differences = await live_vs_rebuild(env.database_url, pool)
    # The relays' tree integrators were killed with them: the tree still holds every event once.
    in_tree = await wait_until(lambda: tree_complete(pool), 120)
    leaf_problems = await tree_leaf_problems(pool)
    await pool.close()
    record("1 relay kill -9", "commands accepted", f"{load.accepted} in {elapsed:.1f}s")
    record("1 relay kill -9", "every event a leaf of the log's tree after (s)", f"{in_tree:.1f}")
    record("1 relay kill -9", "leaves out of order or naming no event", leaf_problems, "0")
    record(
        "1 relay kill -9", "relay kills (of them while the load ran)", f"{kills} ({kills_under_load})", "≥ 3"
    )
    record("1 relay kill -9", "max standby takeover (s)", f"{max(takeovers, default=0):.2f}", "≤ 10")
    record("1 relay kill -9", "events lost", check.lost, "0")
    record("1 relay kill -9", "duplicates published to Kafka", check.duplicates, "counted")
    record("1 relay kill -9", "per-agreement order violations", check.out_of_order, "0")
    record("1 relay kill -9", "read-model rows differing from a rebuild", differences, "0")
    assert load.accepted >= 5000, load.reasons
    assert kills >= 3
    assert check.lost == 0 and check.out_of_order == 0 and check.foreign == 0
    assert differences == 0 and leaf_problems == 0
    assert max(takeovers, default=0) <= 10


async def _has_leader(pool: object) -> bool:
    return await relay_leader(pool) is not None  # type: ignore[arg-type]


async def test_4_broker_stopped_under_load(env: Env, infra: Infra) -> None:
    pool = await create_pool(env.database_url, min_size=2, max_size=20)
    env.relay("relay-a")
    env.worker("worker-1")
    await Load(pool).run(scaled(500))
    await wait_until(lambda: outbox_empty(pool), 180)
    infra.kafka.stop()
    load = Load(pool)
    stopped_at = time.monotonic()
    await load.run(scaled(2000))
    backlog = await pool.fetchval("SELECT count(*) FROM registry.outbox")
    await asyncio.sleep(max(0.0, 5 - (time.monotonic() - stopped_at)))
    infra.kafka.start(STARTED_WITHIN)
    restarted = time.monotonic()
    drain = await wait_until(lambda: outbox_empty(pool), 180)
    caught_up = await wait_until(lambda: projection_caught_up(pool), 180) + drain
    check = await compare_topic_with_store(pool, env.kafka.audit, env.topic)
    differences = await live_vs_rebuild(env.database_url, pool)
    await pool.close()
    record(
        "4 broker down", "commands accepted while Kafka was down", f"{load.accepted} (refused {load.refused})"
    )
    record("4 broker down", "outbox backlog at restart", backlog)
    record("4 broker down", "outbox drain time after restart (s)", f"{drain:.1f}")
    record("4 broker down", "projections caught up after restart (s)", f"{caught_up:.1f}")
    record("4 broker down", "events lost", check.lost, "0")
    record("4 broker down", "read-model rows differing from a rebuild", differences, "0")
    assert load.refused == 0, load.reasons
    assert backlog > 0
    assert check.lost == 0 and check.out_of_order == 0 and differences == 0
    assert time.monotonic() - restarted < 300


@pytest.fixture
async def slow_commits(env: Env) -> None:
    """Every appending transaction sleeps at commit: positions become visible out of order."""
    pool = await create_pool(env.database_url, min_size=1, max_size=1)
    await pool.execute(
        """CREATE FUNCTION registry.slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_sleep(random() * 0.03); RETURN NULL; END $$;
           CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON registry.outbox
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION registry.slow_commit();"""
    )
    await pool.close()


async def test_6_writers_with_random_commit_delays(env: Env, slow_commits: None) -> None:
    pool = await create_pool(env.database_url, min_size=4, max_size=40)
    stop = asyncio.Event()
    relay = asyncio.create_task(OutboxRelay(pool, env.kafka.relay, env.topic, poll_seconds=0.05).run(stop))
    seed = Load(pool)
    await seed.run(64, concurrency=16, signings_share=1.0)
    late = 0
    writing = asyncio.Event()
    # Set at the first late commit: the writers go on until one has been seen.
    late_seen = asyncio.Event()

    async def watch_commit_order() -> None:
        """Counts positions that became visible after a higher one was already visible."""
        nonlocal late
        seen: set[int] = set(await _positions(pool))
        while not writing.is_set():
            highest = max(seen, default=0)
            fresh = set(await _positions(pool)) - seen
            late += sum(1 for position in fresh if position < highest)
            if late:
                late_seen.set()
            seen |= fresh
            await asyncio.sleep(0.002)

    async def writer() -> None:
        # Its own handler: as if each writer were its own registry instance.
        await Load(pool, agreements=list(seed.agreements)).run(
            scaled(40), concurrency=1, signings_share=0.0, until=late_seen
        )

    watcher = asyncio.create_task(watch_commit_order())
    # A watcher that failed stops the writers too; awaiting it below raises its error.
    watcher.add_done_callback(lambda _: late_seen.set())
    try:
        await asyncio.gather(*(writer() for _ in range(32)))
    finally:
        writing.set()
        await watcher
    await wait_until(lambda: outbox_empty(pool), 120)
    stop.set()
    await relay
    check = await compare_topic_with_store(pool, env.kafka.audit, env.topic)
    await pool.close()
    record("6 32 writers, random commit delays", "events", check.store_events)
    record(
        "6 32 writers, random commit delays",
        "positions committed after a higher one (late commits)",
        late,
        "> 0",
    )
    record("6 32 writers, random commit delays", "events skipped (in store, not on topic)", check.lost, "0")
    record("6 32 writers, random commit delays", "per-agreement order violations", check.out_of_order, "0")
    record("6 32 writers, random commit delays", "topic records not in store", check.foreign, "0")
    assert late > 0, "the scenario did not produce out-of-order commits"
    assert check.lost == 0 and check.out_of_order == 0 and check.foreign == 0


async def _positions(pool: object) -> list[int]:
    return [r["position"] for r in await pool.fetch("SELECT position FROM registry.events")]  # type: ignore[attr-defined]
