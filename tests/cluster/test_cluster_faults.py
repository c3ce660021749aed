"""The cluster's fault scenarios (issue 13): each breaks one part of a fresh local cluster under
command load through the load balancer, then proves that no acknowledged command was lost or
applied twice, that each agreement's events reached Kafka in order, and that the read models
equal a rebuild from the store."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from deploy.local.cluster import COMPONENTS, LocalCluster
from deploy.local.db_accounts import LOGIN_ROLES
from deploy.local.kafka_cluster import busiest_leader, in_sync_replicas, partition_leaders
from deploy.local.kafka_principals import AUDIT
from tests.cluster.clients import HttpLoad, effects
from tests.cluster.conftest import record
from tests.faults.harness import (
    broken_chains,
    compare_topic_with_store,
    live_vs_rebuild,
    outbox_empty,
    projection_caught_up,
    scaled,
    tree_complete,
    tree_leaf_problems,
    wait_until,
)


async def _stored_up_to(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM registry.events"))


async def _published_up_to(pool: asyncpg.Pool, position: int) -> bool:
    """Every event stored up to `position` is on Kafka (the relay deletes what it published)."""
    return not await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM registry.outbox WHERE position <= $1)", position
    )


async def _publishing_again(pool: asyncpg.Pool, fault: float) -> float:
    """Seconds from the fault until every event stored in the second after it is on Kafka: the
    relay publishes to the partitions' new leaders (the events stored before the fault may
    have been published before it)."""
    await asyncio.sleep(max(0.0, fault + 1 - time.monotonic()))
    stored = await _stored_up_to(pool)
    await wait_until(lambda: _published_up_to(pool, stored), 120, 0.05)
    return time.monotonic() - fault


async def _under_load(load: HttpLoad, until: asyncio.Event, acknowledged: int = 100) -> asyncio.Task[None]:
    """Starts the load, and returns once it has `acknowledged` commands: the fault then strikes a
    cluster under load by construction, however fast or slow the machine."""
    running = asyncio.create_task(load.run(until=until))
    await wait_until(lambda: _acknowledged_after(load, 0.0, acknowledged), 180, 0.05)
    return running


async def _acknowledged_after(load: HttpLoad, moment: float, count: int) -> bool:
    return sum(1 for ack in load.acknowledged if ack.at > moment) >= count


async def _recovered(
    load: HttpLoad, moment: float, until: asyncio.Event, running: asyncio.Task[None]
) -> None:
    """Lets the load go on until commands have been acknowledged after `moment` (the cluster
    serves again after the fault), then lets it finish; the load was never done before."""
    assert not running.done(), "the load ended before the fault was over"
    await wait_until(lambda: _acknowledged_after(load, moment, 50), 300, 0.05)
    until.set()
    await running
    assert not load.capped


async def _sessions_not_as_their_role(pool: asyncpg.Pool) -> int:
    """The services' sessions (named by process in application_name) signed in as any role but
    their component's (docs/adr/0002-database-roles.md)."""
    sessions = await pool.fetch(
        "SELECT application_name, usename FROM pg_stat_activity WHERE application_name ~ $1",
        "^(registry|relay|projections|worker)-[0-9]+$",
    )
    assert sessions, "no service session to check"
    return sum(
        1
        for s in sessions
        if s["usename"] not in {LOGIN_ROLES[c] for c in COMPONENTS[s["application_name"].rpartition("-")[0]]}
    )


async def _all_in_sync(cluster: LocalCluster, replicas: int = 3) -> bool:
    try:
        isr = await in_sync_replicas(cluster.kafka.connection(AUDIT), cluster.topic)
    except RuntimeError:
        return False
    return all(len(nodes) == replicas for nodes in isr.values())


async def _verify(scenario: str, cluster: LocalCluster, pool: asyncpg.Pool, load: HttpLoad) -> None:
    """The figures every scenario reports, and the guarantees every scenario asserts."""
    drained = await wait_until(lambda: outbox_empty(pool), 180)
    caught_up = await wait_until(lambda: projection_caught_up(pool), 180)
    found = await effects(pool, load.acknowledged)
    topic = await compare_topic_with_store(pool, cluster.kafka.connection(AUDIT), cluster.topic)
    differences = await live_vs_rebuild(cluster.database_url, pool)
    chains = await broken_chains(pool)
    in_tree = await wait_until(lambda: tree_complete(pool), 120)
    leaf_problems = await tree_leaf_problems(pool)
    strangers = await _sessions_not_as_their_role(pool)
    rate = found.acknowledged / load.seconds if load.seconds else 0
    record(scenario, "commands acknowledged (2xx)", f"{found.acknowledged} of {load.issued} ({rate:.0f}/s)")
    record(scenario, "requests retried with the same Idempotency-Key", load.retries)
    record(scenario, "final refusals", dict(load.refused) or 0, "0")
    record(scenario, "commands without an answer", load.unanswered, "0")
    record(scenario, "acknowledged commands lost", found.missing, "0")
    record(scenario, "acknowledged commands applied twice", found.twice, "0")
    record(scenario, "events lost on the way to Kafka", topic.lost, "0")
    record(scenario, "duplicate records on Kafka", topic.duplicates, "counted")
    record(scenario, "per-agreement order violations on Kafka", topic.out_of_order, "0")
    record(scenario, "outbox drained, projections caught up (s)", f"{drained:.1f}, {caught_up:.1f}")
    record(scenario, "read-model rows differing from a rebuild", differences, "0")
    record(scenario, "broken hash chains", len(chains), "0")
    record(scenario, "every event a leaf of the log's tree after (s)", f"{in_tree:.1f}")
    record(scenario, "leaves out of order or naming no event", leaf_problems, "0")
    assert load.unanswered == 0 and not load.refused, load.refused
    assert load.issued >= load.commands and found.acknowledged == load.issued
    assert found.missing == 0 and found.twice == 0 and found.positions_differ == 0
    assert topic.lost == 0 and topic.out_of_order == 0 and topic.foreign == 0
    assert differences == 0 and chains == []
    assert leaf_problems == 0
    record(scenario, "service sessions not signed in as their own role", strangers, "0")
    assert strangers == 0


async def test_broker_leading_most_partitions_killed(cluster: LocalCluster, pool: asyncpg.Pool) -> None:
    scenario = "C1 broker leader kill -9"
    load = HttpLoad(cluster.registry_url, scaled(3000))
    faulted = asyncio.Event()
    running = await _under_load(load, faulted)
    leaders = await partition_leaders(cluster.kafka.connection(AUDIT), cluster.topic)
    victim = busiest_leader(leaders)
    killed = time.monotonic()
    await asyncio.to_thread(cluster.kafka.node(victim).kill)
    published = await _publishing_again(pool, killed)
    moved = await partition_leaders(cluster.kafka.connection(AUDIT), cluster.topic)
    await _recovered(load, killed + published, faulted, running)
    restarted = time.monotonic()
    await asyncio.to_thread(cluster.kafka.node(victim).start)
    await wait_until(lambda: _all_in_sync(cluster), 180)
    in_sync = time.monotonic() - restarted
    record(scenario, "partitions the killed broker led", sum(1 for n in leaders.values() if n == victim))
    record(
        scenario,
        "partitions still led by it after the kill",
        sum(1 for n in moved.values() if n == victim),
        "0",
    )
    record(scenario, "kill until the events stored 1 s after it are on Kafka (s)", f"{published:.2f}")
    record(scenario, "restart until all 3 replicas are in sync again (s)", f"{in_sync:.1f}")
    assert victim not in moved.values()
    await _verify(scenario, cluster, pool, load)


async def test_postgres_primary_killed_and_standby_promoted(
    cluster: LocalCluster, pool: asyncpg.Pool
) -> None:
    scenario = "C2 PostgreSQL primary kill -9"
    load = HttpLoad(cluster.registry_url, scaled(3000))
    faulted = asyncio.Event()
    running = await _under_load(load, faulted)
    before = list(load.acknowledged)
    killed = time.monotonic()
    await asyncio.to_thread(cluster.postgres.kill_primary)
    # As a failover manager would after its check interval (CloudNativePG: seconds).
    await asyncio.sleep(1)
    promotion = await asyncio.to_thread(cluster.postgres.promote)
    await _recovered(load, time.monotonic(), faulted, running)
    recovery = load.recovery_after(killed)
    found_before = await effects(pool, before)
    record(scenario, "commands acknowledged before the kill", len(before))
    record(scenario, "of them missing from the promoted standby", found_before.missing, "0")
    record(scenario, "promotion took (s)", f"{promotion:.2f}")
    record(scenario, "kill until commands succeed again (s)", f"{load.first_success_after(killed):.1f}")
    # A command caught in flight holds its Idempotency-Key's claim until it is stale (15 s):
    # its retries answer 409 + Retry-After until then, and the same result after.
    record(scenario, "kill until the last retried command succeeded (s)", f"{recovery:.1f}")
    record(scenario, "failed attempts during the failover, by answer", dict(load.retried_statuses))
    assert before and found_before.missing == 0
    await _verify(scenario, cluster, pool, load)


async def test_registry_killed_behind_the_load_balancer(cluster: LocalCluster, pool: asyncpg.Pool) -> None:
    """Each registry in turn: killed, started again, back behind HAProxy before the other goes."""
    scenario = "C3 registry kill -9"
    load = HttpLoad(cluster.registry_url, scaled(3000))
    faulted = asyncio.Event()
    running = await _under_load(load, faulted)
    killed = time.monotonic()
    back: list[float] = []
    for name, port in (
        ("registry-1", cluster.ports.registries[0]),
        ("registry-2", cluster.ports.registries[1]),
    ):
        cluster.processes[name].kill()
        await asyncio.sleep(1)
        cluster.start_service(name)
        back.append(await wait_until(lambda port=port: _ready(port), 60))
        # HAProxy brings it back after two good checks (0.5 s apart).
        await asyncio.sleep(1.5)
    await _recovered(load, time.monotonic(), faulted, running)
    recovery = load.recovery_after(killed)
    record(scenario, "kills (each registry once, under load)", 2)
    record(scenario, "failed attempts after the kills (retried with the same key)", len(load.failures))
    record(scenario, "restart until ready again (s)", ", ".join(f"{b + 1:.1f}" for b in back))
    record(scenario, "first kill until no attempt fails (s)", f"{recovery:.1f}")
    await _verify(scenario, cluster, pool, load)


async def _ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_broker_cut_off(cluster: LocalCluster, pool: asyncpg.Pool) -> None:
    """A broker that can neither be reached nor reach anyone for 10 s (SIGSTOP), then returns."""
    scenario = "C4 broker cut off 10 s"
    load = HttpLoad(cluster.registry_url, scaled(3000))
    faulted = asyncio.Event()
    running = await _under_load(load, faulted)
    victim = busiest_leader(await partition_leaders(cluster.kafka.connection(AUDIT), cluster.topic))
    cut = time.monotonic()
    cluster.kafka.node(victim).pause()
    try:
        published = await _publishing_again(pool, cut)
        await asyncio.sleep(max(0.0, 10 - published))
    finally:
        cluster.kafka.node(victim).resume()
    resumed = time.monotonic()
    await _recovered(load, resumed, faulted, running)
    await wait_until(lambda: _all_in_sync(cluster), 180)
    in_sync = time.monotonic() - resumed
    record(scenario, "cut-off until the events stored 1 s after it are on Kafka (s)", f"{published:.2f}")
    record(scenario, "return until all 3 replicas are in sync again (s)", f"{in_sync:.1f}")
    await _verify(scenario, cluster, pool, load)
