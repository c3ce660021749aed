"""The outbox relay: publishes stored events to Kafka, in order, and forgets them only once committed.

- One relay leads at a time: it holds a PostgreSQL session-level advisory lock on one
  connection, its lock session; a standby retries the lock and takes over once the holder's
  session ends.
- A relay that lost its leadership (its lock session was terminated, or it stalled while a
  standby took over) can neither delete outbox rows nor publish; both are fenced, not checked:
  - it reads and deletes outbox rows on the lock session only: a session-level lock lives
    exactly as long as its session, so a statement that succeeds there ran while this relay
    held the lock, and the next leader reads the outbox only after it;
  - it publishes each batch as one Kafka transaction under one transactional id shared by
    every relay of the topic: a new leader's producer init bumps the epoch, so the old
    producer's later sends and commits fail (ProducerFenced) and its open transaction is
    aborted, invisible to read_committed consumers. Before committing it also checks that
    its lock session still holds the lock, so a leader that lost the lock and has no
    successor yet does not commit either.
- It reads unpublished outbox rows, not "positions after the last one sent": a position
  handed out early may commit late, and reading by row never skips it.
- Key = stream id (an agreement's, or a party's `party/<id>`), so one stream's events share a
  partition; the producer is idempotent with acks=all, so a retried send neither duplicates
  nor reorders within it.
  A crash (or lost leadership) between the commit and the rows' deletion republishes the
  batch: consumers skip it by its sequence (at-least-once on the wire, exactly-once in
  effect). An old leader's transaction is visible only if it committed before the new
  leader's producer init, so its records never follow the new leader's on a partition.
- Each record carries on the trace of the command that wrote it: the outbox row's W3C trace
  context (migration 007) becomes the parent of the relay's span, whose context goes into the
  `traceparent`/`tracestate` headers (docs/CONTRACT.md B10); the value stays the stored envelope.
- Each record carries the registry's signature of its event, stored beside the envelope
  (migration 009), in the `envelope-signature` header (docs/CONTRACT.md B12). The relay holds
  no key: a relay that forges or alters a record cannot make that header verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, ProducerFenced
from coordreg_contracts.envelope import CONTENT_TYPE
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from services.common import tracing
from services.common.db import Connection
from services.common.envelope_signatures import SIGNATURE_HEADER
from services.common.kafka_security import KafkaConnection
from services.common.trace_context import (
    Headers,
    carrier_from_column,
    carrier_of,
    context_of,
    headers_from_carrier,
    normalised,
)
from services.registry.adapters.leadership import take_lead
from services.registry.adapters.outbox_metrics import watch_outbox
from services.registry.adapters.postgres_store import OUTBOX_CHANNEL
from services.registry.service_layer.event_store import StoredEvent

log = structlog.get_logger(__name__)

RELAY_LOCK = 0x72656C61  # "rela"
PUBLISHED = Counter("relay_published_total", "Events published to Kafka and committed")
# The outbox's backlog and age: services/registry/adapters/outbox_metrics.py.
BATCH_SECONDS = Histogram("relay_batch_seconds", "Time to publish and commit one batch")
IS_LEADER = Gauge("relay_is_leader", "1 while this relay holds the leader lock")
FENCED = Counter("relay_fenced_total", "Batches refused because this relay was no longer the leader")

# pg_locks shows a one-bigint advisory key as classid (high half) and objid (low half).
HOLDS_LOCK = """SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND objsubid = 1
      AND ((classid::bigint << 32) | objid::bigint) = $1)"""
# How long a failed batch may spend aborting its transaction before the relay starts over:
# a new producer's init aborts it anyway, this only frees the consumers sooner.
_ABORT_SECONDS = 5.0


_tracer = trace.get_tracer(__name__)
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())


@dataclass(frozen=True)
class OutboxEvent(StoredEvent):
    """A stored event as its outbox row queued it: with the W3C trace context of the command
    that wrote it (empty for rows without one), which its Kafka record carries on."""

    trace_context: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)


def _signature_header(event: StoredEvent) -> Headers:
    """The registry's signature as the store holds it (docs/CONTRACT.md B12); none if unsigned.
    The relay only carries it: it holds no key, so it cannot sign what the registry did not."""
    if event.signature is None:
        return []
    return [(SIGNATURE_HEADER, event.signature.encode("ascii"))]


class LeadershipLost(Exception):
    """The lock session is gone or no longer holds the lock, or a newer leader fenced the producer."""


def relay_transactional_id(topic: str) -> str:
    """One transactional id per relay group (every relay of a topic): the newest leader fences the rest."""
    return f"coordreg-relay.{topic}"


def make_producer(kafka: KafkaConnection, transactional_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka.kwargs(),
        # Implies the idempotent producer; acks=all is then required.
        transactional_id=transactional_id,
        acks="all",
        linger_ms=2,
        # A broker that stops answering without closing its connections (a network partition)
        # holds a batch this long before the relay asks the cluster for the new leaders.
        request_timeout_ms=10000,
        max_batch_size=1048576,
    )


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaConnection,
        topic: str,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        linger_seconds: float = 0.0,
        transactional_id: str | None = None,
        outbox_check_seconds: float = 5.0,
    ) -> None:
        self.pool = pool
        self.outbox_check_seconds = outbox_check_seconds
        self.kafka = kafka
        self.topic = topic
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.linger_seconds = linger_seconds
        self.transactional_id = transactional_id or relay_transactional_id(topic)
        self.is_leader = False
        # Batches this relay refused to finish because it had lost its leadership.
        self.fenced = 0
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Waits for leadership, then relays until `stop` is set; starts over after failures.
        Meanwhile counts the outbox's backlog for the metrics, leader or not."""
        watcher = asyncio.create_task(watch_outbox(self.pool, stop, self.outbox_check_seconds))
        try:
            await self._run(stop)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._lead(stop)
            except LeadershipLost as exc:
                log.warning("relay is no longer the leader; standing by", reason=str(exc))
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
                log.warning("relay lost its connection; starting over", error=repr(exc))
            else:
                continue
            self.is_leader = False
            IS_LEADER.set(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def _lead(self, stop: asyncio.Event) -> None:
        conn = await self.pool.acquire()
        try:
            if not await take_lead(conn, RELAY_LOCK, stop):
                return
            self.is_leader = True
            IS_LEADER.set(1)
            log.info("relay is the leader", transactional_id=self.transactional_id)
            await conn.add_listener(OUTBOX_CHANNEL, self._notified)
            producer = make_producer(self.kafka, self.transactional_id)
            await producer.start()
            try:
                await self._relay(stop, conn, producer)
            finally:
                await producer.stop()
                with contextlib.suppress(Exception):
                    await conn.remove_listener(OUTBOX_CHANNEL, self._notified)
        finally:
            self.is_leader = False
            IS_LEADER.set(0)
            # Releasing resets the session (asyncpg unlocks its advisory locks) or drops a
            # broken one: either way the lock is free for a standby.
            await self.pool.release(conn)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _relay(self, stop: asyncio.Event, conn: Connection, producer: AIOKafkaProducer) -> None:
        while not stop.is_set():
            self._wake.clear()
            sent = await self.publish_batch(conn, producer)
            if sent < self.batch_size:
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                if self._wake.is_set() and self.linger_seconds > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.linger_seconds)

    async def publish_batch(self, conn: Connection, producer: AIOKafkaProducer) -> int:
        """One batch: read on the lock session, publish in one transaction, delete on the lock session.

        `conn` must be the session that holds RELAY_LOCK: nothing but the end of that session
        releases the lock (the relay never unlocks, and the pool's reset runs only on
        release, after which the relay never uses it), so the read and the delete below
        either run while this relay is the leader or fail.
        """
        # The batch's outbox rows first, then their events by position: with the LIMIT outside
        # the join the planner may walk the events' position index from the start of the log
        # (a published prefix that only grows) on every batch; a drain of 100,000 rows behind
        # 100,000 published took 25.6 s that way and 0.5 s this way. LATERAL ... OFFSET 0 keeps
        # each event a lookup by position: a plain join let the planner hash the whole log.
        rows = await conn.fetch(
            """SELECT o.position, o.agreement_id, o.sequence, e.envelope, e.signature, o.trace_context
               FROM (SELECT position, agreement_id, sequence, trace_context FROM registry.outbox
                     ORDER BY position LIMIT $1) AS o
               CROSS JOIN LATERAL (
                   SELECT envelope, signature FROM registry.events
                   WHERE position = o.position OFFSET 0
               ) e
               ORDER BY o.position""",
            self.batch_size,
        )
        if not rows:
            return 0
        started = time.perf_counter()
        events: list[StoredEvent] = [
            OutboxEvent(
                r["position"],
                r["agreement_id"],
                r["sequence"],
                r["envelope"],
                carrier_from_column(r["trace_context"]),
                signature=r["signature"],
            )
            for r in rows
        ]
        await self.publish(conn, producer, events)
        # Committed on the broker; a failure from here on republishes the batch (duplicates
        # that consumers skip by sequence), never loses it.
        await conn.execute(
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

    async def publish(self, conn: Connection, producer: AIOKafkaProducer, events: list[StoredEvent]) -> None:
        """Sends the events as one transaction and commits it while `conn` still holds the lock.

        Raises LeadershipLost (and commits nothing) when a newer leader's producer fenced
        this one or the lock session no longer holds the lock.
        """
        futures: list[asyncio.Future[Any]] = []
        spans: list[Span] = []
        try:
            await producer.begin_transaction()
            # Within one stream the outbox order is the sequence order: event n+1 is decided
            # on a state that includes n, so n committed first.
            for event in events:
                span, trace_headers = self._trace(event)
                if span is not None:
                    spans.append(span)
                # The value is the stored envelope's bytes, untouched; the trace context
                # travels in headers only (docs/CONTRACT.md B10).
                future = await producer.send(
                    self.topic,
                    value=event.message(),
                    key=event.stream_id.encode("utf-8"),
                    headers=[_CONTENT_TYPE_HEADER, *_signature_header(event), *trace_headers],
                )
                futures.append(future)
            await asyncio.gather(*futures)
            await self._still_leader(conn)
            await producer.commit_transaction()
        except ProducerFenced as exc:
            _settle_unawaited(futures)
            _failed(spans, exc)
            # Fatal for this producer: it cannot even abort; the new leader's init already did.
            self._lost()
            raise LeadershipLost("a newer relay's producer fenced this one") from exc
        except Exception as exc:
            _settle_unawaited(futures)
            _failed(spans, exc)
            if isinstance(exc, LeadershipLost):
                self._lost()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.abort_transaction(), _ABORT_SECONDS)
            raise
        finally:
            # A record's span ends when its transaction committed (read_committed consumers see
            # it from then on) or failed.
            for span in spans:
                span.end()

    def _trace(self, event: StoredEvent) -> tuple[Span | None, Headers]:
        """The record's span, a child of the command's (when this relay traces), and the
        trace headers that make the consumer's span its child."""
        carrier = event.trace_context if isinstance(event, OutboxEvent) else {}
        if not tracing.enabled():
            # No span of its own, but the command's trace goes on through this relay.
            return None, headers_from_carrier(normalised(carrier))
        span = _tracer.start_span(
            f"send {self.topic}",
            context=context_of(carrier),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": self.topic,
                "messaging.kafka.message.key": event.stream_id,
                "coordreg.position": event.position,
                "coordreg.sequence": event.sequence,
            },
        )
        return span, headers_from_carrier(carrier_of(trace.set_span_in_context(span)))

    async def _still_leader(self, conn: Connection) -> None:
        try:
            held = await conn.fetchval(HOLDS_LOCK, RELAY_LOCK)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LeadershipLost(f"the lock session failed: {exc!r}") from exc
        if not held:
            raise LeadershipLost("the lock session no longer holds the relay lock")

    def _lost(self) -> None:
        self.fenced += 1
        FENCED.inc()
        self.is_leader = False
        IS_LEADER.set(0)


def _failed(spans: list[Span], exc: BaseException) -> None:
    for span in spans:
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, type(exc).__name__)


def _settle_unawaited(futures: list[asyncio.Future[Any]]) -> None:
    # A send that raises leaves the earlier records' futures unawaited; their failure is the
    # batch's, already handled, and must not be reported again as "never retrieved".
    for future in futures:
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
