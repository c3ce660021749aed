"""The outbox relay: publishes stored events to Kafka, in order, and forgets them only when acknowledged.

- One relay is active at a time: it holds a PostgreSQL advisory lock on its own session;
  a standby blocks on the same lock and takes over as soon as the holder's session ends.
- It reads unpublished outbox rows, not "positions after the last one sent": a position
  handed out early may commit late, and reading by row never skips it.
- Key = agreement id, so one agreement's events share a partition; the producer is
  idempotent with acks=all, so a retried send neither duplicates nor reorders within it.
  A crash between the broker's ack and the row's deletion republishes a row: consumers
  skip it by its sequence (at-least-once on the wire, exactly-once in effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from coordreg_contracts.envelope import CONTENT_TYPE
from prometheus_client import Counter, Gauge, Histogram

from services.registry.adapters.postgres_store import OUTBOX_CHANNEL, StoredEvent

log = structlog.get_logger(__name__)

RELAY_LOCK = 0x72656C61  # "rela"
PUBLISHED = Counter("relay_published_total", "Events published to Kafka and acknowledged")
BACKLOG = Gauge("relay_outbox_backlog", "Unpublished outbox rows seen in the last batch")
BATCH_SECONDS = Histogram("relay_batch_seconds", "Time to publish and acknowledge one batch")
IS_LEADER = Gauge("relay_is_leader", "1 while this relay holds the leader lock")


def make_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        request_timeout_ms=30000,
        max_batch_size=1048576,
    )


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap_servers: str,
        topic: str,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
    ) -> None:
        self.pool = pool
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.is_leader = False
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Waits for leadership, then relays until `stop` is set; reconnects after failures."""
        while not stop.is_set():
            try:
                await self._lead(stop)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
                log.warning("relay lost its connection; starting over", error=repr(exc))
                self.is_leader = False
                IS_LEADER.set(0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _lead(self, stop: asyncio.Event) -> None:
        conn = await self.pool.acquire()
        try:
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                return
            self.is_leader = True
            IS_LEADER.set(1)
            log.info("relay is the leader")
            await conn.add_listener(OUTBOX_CHANNEL, self._notified)
            producer = make_producer(self.bootstrap_servers)
            await producer.start()
            try:
                await self._relay(stop, producer)
            finally:
                await producer.stop()
                with contextlib.suppress(Exception):
                    await conn.remove_listener(OUTBOX_CHANNEL, self._notified)
        finally:
            self.is_leader = False
            IS_LEADER.set(0)
            # Closing the session releases the advisory lock for a standby.
            await self.pool.release(conn)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _relay(self, stop: asyncio.Event, producer: AIOKafkaProducer) -> None:
        while not stop.is_set():
            self._wake.clear()
            sent = await self.publish_batch(producer)
            if sent < self.batch_size:
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()

    async def publish_batch(self, producer: AIOKafkaProducer) -> int:
        rows = await self.pool.fetch(
            """SELECT o.position, o.agreement_id, o.sequence, e.envelope
               FROM registry.outbox o JOIN registry.events e USING (position)
               ORDER BY o.position LIMIT $1""",
            self.batch_size,
        )
        BACKLOG.set(len(rows))
        if not rows:
            return 0
        started = time.perf_counter()
        events = [StoredEvent(r["position"], r["agreement_id"], r["sequence"], r["envelope"]) for r in rows]
        # Within one agreement the outbox order is the sequence order: event n+1 is decided
        # on a state that includes n, so n committed first.
        futures = [
            await producer.send(
                self.topic,
                value=event.message(),
                key=event.agreement_id.encode("utf-8"),
                headers=[("content-type", CONTENT_TYPE.encode())],
            )
            for event in events
        ]
        await asyncio.gather(*futures)
        await self.pool.execute(
            "DELETE FROM registry.outbox WHERE position = ANY($1::bigint[])", [e.position for e in events]
        )
        PUBLISHED.inc(len(events))
        log.info(
            "batch published",
            events=len(events),
            first_position=events[0].position,
            last_position=events[-1].position,
        )
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return len(events)
