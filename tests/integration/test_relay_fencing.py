"""Relay fencing: a relay that lost its leadership in the middle of a batch neither publishes nor deletes.

Real relays on a real PostgreSQL database and a real Kafka topic. A relay is held inside its
first batch, after it read the outbox rows and before it publishes them, by an asyncio.Event
the test sets (`HeldRelay.publish`); its leadership is then taken away by terminating its lock
session (pg_terminate_backend). Then either a standby takes over and drains the outbox before
the held relay resumes (Kafka's fence stops it: the standby's producer init bumped the shared
transactional id's epoch), or no one takes over (its own lock check before the commit stops
it). A trigger on registry.outbox records, for every deleted row, which session deleted it
and whether that session held the relay lock at that moment.

What is proven, for every stored event: a read_committed consumer of the topic sees exactly
one record of it, byte-equal to what the store holds (the envelope with its position), and an
agreement's records are in sequence order within its partition; its outbox row was deleted
exactly once, by the session that held the relay lock at that moment; and the relay that
lost its leadership raised LeadershipLost for the held batch, published nothing a
read_committed consumer sees and deleted nothing while it was not the leader.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from services.audit.kafkalog import topic_partitions
from services.common.db import Connection, create_pool, migrate
from services.common.kafka_security import KafkaConnection
from services.registry.adapters.relay import RELAY_LOCK, LeadershipLost, OutboxRelay
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.event_store import StoredEvent
from tests.support.kafka import Brokers

AGREEMENTS = 8
EVENTS_EACH = 5
TOTAL = AGREEMENTS * EVENTS_EACH
R = TypeVar("R", bound=OutboxRelay)

_LOCK_HOLDER = """SELECT pid FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND ((classid::bigint << 32) | objid::bigint) = $1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


class HeldRelay(OutboxRelay):
    """Stops in its first batch, after reading the rows and before publishing them, until released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.held_done = asyncio.Event()
        self.held_batch: list[StoredEvent] = []
        self.held_outcome: BaseException | None = None

    async def publish(self, conn: Connection, producer: AIOKafkaProducer, events: list[StoredEvent]) -> None:
        if self.held_batch:
            await super().publish(conn, producer, events)
            return
        self.held_batch = list(events)
        self.holding.set()
        await self.release.wait()
        try:
            await super().publish(conn, producer, events)
        except BaseException as exc:
            self.held_outcome = exc
            raise
        finally:
            self.held_done.set()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    await migrate(pool, "registry", MIGRATIONS)
    await pool.execute(
        """CREATE TABLE public.outbox_deletes (
               position bigint NOT NULL, deleted_by text NOT NULL, pid integer NOT NULL,
               by_lock_holder boolean NOT NULL);
           CREATE FUNCTION public.record_outbox_delete() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               INSERT INTO public.outbox_deletes VALUES (
                   OLD.position, current_setting('application_name'), pg_backend_pid(),
                   EXISTS (SELECT 1 FROM pg_locks
                           WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
                             AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = """
        + str(RELAY_LOCK)
        + """));
               RETURN OLD;
           END $$;
           CREATE TRIGGER record_outbox_delete AFTER DELETE ON registry.outbox
               FOR EACH ROW EXECUTE FUNCTION public.record_outbox_delete();"""
    )
    # The relay copies each stored envelope as it is; its content does not matter here.
    rows = [
        (f"fencing-{a}", s, uuid.uuid4(), json.dumps({"subject": f"fencing-{a}", "sequence": s}))
        for s in range(1, EVENTS_EACH + 1)
        for a in range(AGREEMENTS)
    ]
    async with pool.acquire() as conn, conn.transaction():
        for agreement_id, sequence, event_id, envelope in rows:
            await conn.execute(
                """WITH e AS (
                       INSERT INTO registry.events
                           (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
                       VALUES ($1, $2, $3, 'test.Fenced.v1', now(), $4) RETURNING position)
                   INSERT INTO registry.outbox (position, agreement_id, sequence)
                   SELECT position, $1, $2 FROM e""",
                agreement_id,
                sequence,
                event_id,
                envelope,
            )
    yield pool
    await pool.close()


class Relays:
    """Starts relays on the test's database and topic, each with its own pool (its own sessions)."""

    def __init__(self, database_url: str, kafka: KafkaConnection, topic: str) -> None:
        self.database_url = database_url
        self.kafka = kafka
        self.topic = topic
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.pools: list[asyncpg.Pool] = []
        self.held: list[HeldRelay] = []

    async def start(self, kind: type[R], name: str) -> R:
        separator = "&" if "?" in self.database_url else "?"
        pool = await create_pool(
            f"{self.database_url}{separator}application_name={name}", min_size=1, max_size=3
        )
        self.pools.append(pool)
        relay = kind(pool, self.kafka, self.topic, poll_seconds=0.05)
        if isinstance(relay, HeldRelay):
            self.held.append(relay)
        self.tasks.append(asyncio.create_task(relay.run(self.stop)))
        return relay

    async def close(self) -> None:
        self.stop.set()
        for relay in self.held:
            relay.release.set()
        for task in self.tasks:
            await asyncio.wait_for(task, 60)
        for pool in self.pools:
            await pool.close()


@pytest.fixture
async def relays(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Relays]:
    running = Relays(database_url, kafka.relay, topic)
    try:
        yield running
    finally:
        await running.close()


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.05)


async def take_leadership_away(pool: asyncpg.Pool) -> int:
    """Terminates the session holding the relay lock and waits until it is gone; its pid."""
    holders = [r["pid"] for r in await pool.fetch(_LOCK_HOLDER, RELAY_LOCK)]
    assert len(holders) == 1, holders
    pid = int(holders[0])
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)

    async def gone() -> bool:
        return not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid)

    await until(gone, 30, f"backend {pid} to exit")
    return pid


async def outbox_empty(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM registry.outbox") == 0)


async def read_all(kafka: KafkaConnection, topic: str, isolation_level: str) -> list[Any]:
    """Every record up to the end offsets at the time of the call, for that isolation level."""
    consumer = AIOKafkaConsumer(
        **kafka.kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await topic_partitions(kafka, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 60
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert asyncio.get_running_loop().time() < deadline, "topic not read within 60s"
            for batch in (await consumer.getmany(*tps, timeout_ms=200)).values():
                records.extend(r for r in batch if r.offset < ends[TopicPartition(topic, r.partition)])
        return records
    finally:
        await consumer.stop()


async def stored_messages(pool: asyncpg.Pool) -> dict[bytes, tuple[str, int]]:
    rows = await pool.fetch("SELECT position, agreement_id, sequence, envelope FROM registry.events")
    return {
        StoredEvent(r["position"], r["agreement_id"], r["sequence"], r["envelope"]).message(): (
            r["agreement_id"],
            r["sequence"],
        )
        for r in rows
    }


async def assert_each_event_once(pool: asyncpg.Pool, records: list[Any]) -> None:
    stored = await stored_messages(pool)
    assert len(stored) == TOTAL
    copies = Counter(r.value for r in records)
    assert set(copies) == set(stored), "records that are not stored events, or stored events missing"
    assert [n for n in copies.values() if n != 1] == [], "an event visible more than once"
    sequences: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        agreement_id, sequence = stored[record.value]
        assert record.key == agreement_id.encode()
        sequences[agreement_id].append(sequence)
    assert all(s == list(range(1, EVENTS_EACH + 1)) for s in sequences.values()), sequences


async def deletes(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM public.outbox_deletes ORDER BY position"))


async def test_a_relay_that_lost_its_lock_to_a_standby_publishes_and_deletes_nothing(
    store: asyncpg.Pool,
    relays: Relays,
    kafka: Brokers,
    topic: str,
) -> None:
    first = await relays.start(HeldRelay, "relay-first")
    await asyncio.wait_for(first.holding.wait(), 60)
    assert len(first.held_batch) == TOTAL and first.is_leader
    second = await relays.start(OutboxRelay, "relay-second")

    terminated = await take_leadership_away(store)
    await until(lambda: outbox_empty(store), 60, "the standby to take over and drain the outbox")
    assert second.is_leader

    first.release.set()
    await asyncio.wait_for(first.held_done.wait(), 60)
    assert isinstance(first.held_outcome, LeadershipLost), first.held_outcome
    assert isinstance(first.held_outcome.__cause__, ProducerFenced)
    assert first.fenced == 1 and not first.is_leader
    assert second.fenced == 0 and second.is_leader

    await assert_each_event_once(store, await read_all(kafka.consumer, topic, "read_committed"))
    # The broker refused the fenced producer before it appended anything, not even an aborted copy.
    assert len(await read_all(kafka.consumer, topic, "read_uncommitted")) == TOTAL
    removed = await deletes(store)
    assert len(removed) == TOTAL and len({d["position"] for d in removed}) == TOTAL
    assert {(d["deleted_by"], d["by_lock_holder"]) for d in removed} == {("relay-second", True)}
    assert terminated not in {d["pid"] for d in removed}


async def test_a_relay_that_lost_its_lock_commits_nothing_even_without_a_successor(
    store: asyncpg.Pool,
    relays: Relays,
    kafka: Brokers,
    topic: str,
) -> None:
    """No standby fences its producer: the relay's own lock check before the commit stops it."""
    relay = await relays.start(HeldRelay, "relay-only")
    await asyncio.wait_for(relay.holding.wait(), 60)
    terminated = await take_leadership_away(store)
    assert await store.fetchval("SELECT count(*) FROM registry.outbox") == TOTAL

    relay.release.set()
    await asyncio.wait_for(relay.held_done.wait(), 60)
    assert isinstance(relay.held_outcome, LeadershipLost), relay.held_outcome
    assert relay.fenced == 1
    # Then it leads again, on a new session, and publishes the batch again.
    await until(lambda: outbox_empty(store), 60, "the relay to lead again and drain the outbox")

    await assert_each_event_once(store, await read_all(kafka.consumer, topic, "read_committed"))
    # The held batch did reach the log, in a transaction that was aborted: only
    # read_uncommitted readers see those copies.
    assert len(await read_all(kafka.consumer, topic, "read_uncommitted")) == 2 * TOTAL
    removed = await deletes(store)
    assert len(removed) == TOTAL and len({d["position"] for d in removed}) == TOTAL
    assert {(d["deleted_by"], d["by_lock_holder"]) for d in removed} == {("relay-only", True)}
    assert terminated not in {d["pid"] for d in removed}
