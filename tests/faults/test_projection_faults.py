"""Scenarios 2 and 3: projection workers killed mid-batch, and a rebalance under load."""

from __future__ import annotations

import asyncio
import random
import time

from services.common.db import create_pool
from tests.faults.conftest import record
from tests.faults.harness import (
    Env,
    Load,
    live_vs_rebuild,
    outbox_empty,
    projection_caught_up,
    scaled,
    wait_until,
)


async def test_2_worker_killed_mid_batch(env: Env) -> None:
    pool = await create_pool(env.database_url, min_size=2, max_size=20)
    env.relay("relay-a")
    worker = env.worker("worker-1")
    load = Load(pool)
    kills = 0
    done = asyncio.Event()
    # Set at the third kill: the load goes on until then, however fast it runs.
    killed_enough = asyncio.Event()

    async def killer() -> None:
        nonlocal worker, kills
        while not done.is_set():
            # Random moments: some land inside a batch's transaction, some just after its commit.
            await asyncio.sleep(random.uniform(0.5, 2.0))
            worker.kill()
            kills += 1
            if kills >= 3:
                killed_enough.set()
            worker = env.worker("worker-1")

    killing = asyncio.create_task(killer())
    # A killer that failed stops the load too; awaiting it below raises its error.
    killing.add_done_callback(lambda _: killed_enough.set())
    try:
        await load.run(scaled(3000, minimum=1000), until=killed_enough)
        kills_under_load = kills
        await wait_until(lambda: outbox_empty(pool), 120)
    finally:
        done.set()
        await killing
    caught_up = await wait_until(lambda: projection_caught_up(pool), 180)
    differences = await live_vs_rebuild(env.database_url, pool)
    events = await pool.fetchval("SELECT count(*) FROM registry.events")
    await pool.close()
    record("2 worker kill -9 mid-batch", "events", events)
    record(
        "2 worker kill -9 mid-batch",
        "worker kills (of them while the load ran)",
        f"{kills} ({kills_under_load})",
        "≥ 3",
    )
    record("2 worker kill -9 mid-batch", "catch-up after the last restart (s)", f"{caught_up:.1f}")
    record("2 worker kill -9 mid-batch", "read-model rows differing from a rebuild", differences, "0")
    assert kills >= 3 and differences == 0


async def test_3_two_workers_one_killed_under_load(env: Env) -> None:
    pool = await create_pool(env.database_url, min_size=2, max_size=20)
    env.relay("relay-a")
    first = env.worker("worker-1")
    env.worker("worker-2")
    await Load(pool).run(scaled(500))
    await wait_until(lambda: projection_caught_up(pool), 120)
    load = Load(pool)
    # The kill lands under load, and the load goes on after it (at least a quarter of its
    # commands) however fast the machine runs: the other worker takes the partitions over
    # while commands keep arriving.
    killed = asyncio.Event()
    loading = asyncio.create_task(load.run(scaled(2000), until=killed))
    try:
        await load.under_way(scaled(200))
        first.kill()
        killed_at = time.monotonic()
        accepted_at_kill = load.accepted
        await load.under_way(accepted_at_kill + scaled(500))
    finally:
        killed.set()
    await loading
    await wait_until(lambda: outbox_empty(pool), 120)
    await wait_until(lambda: projection_caught_up(pool), 180)
    recovered = time.monotonic() - killed_at
    applied = await pool.fetchval("SELECT count(*) FROM projections.applied")
    events = await pool.fetchval("SELECT count(*) FROM registry.events")
    differences = await live_vs_rebuild(env.database_url, pool)
    await pool.close()
    record("3 two workers, one killed", "events", events)
    record(
        "3 two workers, one killed",
        "commands accepted before, after the kill",
        f"{accepted_at_kill}, {load.accepted - accepted_at_kill}",
    )
    record("3 two workers, one killed", "kill to all events applied (s)", f"{recovered:.1f}")
    record("3 two workers, one killed", "events applied (= events)", applied, str(events))
    record("3 two workers, one killed", "read-model rows differing from a rebuild", differences, "0")
    assert applied == events and differences == 0
