"""The projection worker: a Kafka consumer-group member that owns the read models' offsets.

Records are untrusted until checked (docs/adr/0003-signed-envelopes.md): one whose hash,
signature (the `envelope-signature` header, by a configured event key) or chain does not hold is
dead-lettered with its reason and counted in `projection_records_refused_total{reason}`, and
the stream waits for the registry's real event.

Offsets live in PostgreSQL, written in the same transaction as the read-model rows the
batch produced; on (re)assignment the worker seeks to them. Kafka's own committed
offsets are never trusted, so a crash anywhere replays at most an uncommitted batch,
whose events the sequence check then skips or applies exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, get_args

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from services.common.db import Connection
from services.common.envelope_signatures import (
    DEV_VERIFIER_KEY,
    SIGNATURE_HEADER,
    EnvelopeVerifier,
    Reason,
    RecordRefused,
)
from services.common.kafka_admin import TOPIC_CONFIG, ensure_topic
from services.common.kafka_security import KafkaConnection
from services.projections.adapters.apply_tracing import batch_started, trace_applied
from services.projections.adapters.worker_metrics import DEAD_LETTERS_STORED, PARKED, PartitionLag
from services.projections.readmodel.apply import Applied, ApplyOutcome, FoldedStates, apply_many

log = structlog.get_logger(__name__)

EVENTS = Counter("projection_events_total", "Events seen by the projection", ["outcome"])
DEAD_LETTERS = Counter("projection_dead_letters_total", "Records that could not be applied")
RECORDS_REFUSED = Counter(
    "projection_records_refused_total",
    "Records dead-lettered as not the registry's next event of their stream, by the check they failed",
    ["reason"],
)
# Every reason's series exists from the start at 0, so that the alert's increase() sees the first one.
for _reason in get_args(Reason):
    RECORDS_REFUSED.labels(_reason)
# Infrastructure failures restart the worker; anything else about one record dead-letters it.
INFRASTRUCTURE_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, KafkaError)
DEV_VERIFIER = EnvelopeVerifier.from_keys([DEV_VERIFIER_KEY])
# The lag, parked and stored dead-letter gauges: services/projections/adapters/worker_metrics.py.


def _signature(record: Any) -> bytes | None:
    """The record's `envelope-signature` header (the last one, if a producer sent several)."""
    found = None
    for key, value in record.headers or ():
        if key == SIGNATURE_HEADER:
            found = value
    return bytes(found) if found is not None else None


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: ProjectionWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Nothing to flush: every batch committed its offsets with its rows.
        log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))
        self.worker.partition_lag.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.seek_to_stored(assigned)
        self.worker.partition_lag.assigned(assigned)


class ProjectionWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaConnection,
        topic: str,
        group: str,
        *,
        max_records: int = 500,
        client_id: str = "projections",
        verifier: EnvelopeVerifier = DEV_VERIFIER,
    ) -> None:
        self.pool = pool
        self.kafka = kafka
        self.topic = topic
        self.group = group
        self.max_records = max_records
        self.client_id = client_id
        # The event keys whose signatures it accepts (the settings'; the development key by default).
        self.verifier = verifier
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.dead_letter_topic = f"{topic}.dlq"
        self.dead_lettered = 0
        self.applied = 0
        self.seen = 0
        self.cache = FoldedStates()
        # Records the consumer handed out whose batch is not yet committed (for lag()).
        self.in_flight: dict[TopicPartition, int] = {}
        self.partition_lag = PartitionLag()

    async def seek_to_stored(self, assigned: set[TopicPartition]) -> None:
        assert self.consumer is not None
        rows = await self.pool.fetch(
            "SELECT partition, next_offset FROM offsets WHERE consumer_group = $1 AND topic = $2",
            self.group,
            self.topic,
        )
        stored = {r["partition"]: r["next_offset"] for r in rows}
        fresh = []
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            else:
                fresh.append(tp)
        if fresh:
            # One call for all: each call waits for an offset lookup round trip.
            await self.consumer.seek_to_beginning(*fresh)
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until `stop` is set; rebuilds the consumer after broker or database failures."""
        while not stop.is_set():
            try:
                await self._consume(stop)
            except INFRASTRUCTURE_ERRORS as exc:
                log.warning("projection worker failed; restarting", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _consume(self, stop: asyncio.Event) -> None:
        self.consumer = AIOKafkaConsumer(
            **self.kafka.kwargs(),
            group_id=self.group,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.max_records,
        )
        self.consumer.subscribe([self.topic], listener=_SeekToStoredOffsets(self))
        await ensure_topic(self.kafka, self.dead_letter_topic, 1, TOPIC_CONFIG)
        self.producer = AIOKafkaProducer(**self.kafka.kwargs(), acks="all")
        await self.producer.start()
        try:
            await self.consumer.start()
            while not stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if batches:
                    self.in_flight = {tp: len(batch) for tp, batch in batches.items()}
                    try:
                        await self.apply_batch(batches)
                    finally:
                        self.in_flight = {}
                    self.partition_lag.applied(batches)
                await self.partition_lag.update(self.consumer, self.pool)
        finally:
            self.partition_lag.clear()
            await self.consumer.stop()
            await self.producer.stop()
            self.producer = None

    async def apply_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """One transaction: the batch's read-model rows and every partition's next offset."""
        records = [(tp, record) for tp, batch in batches.items() for record in batch]
        started = batch_started()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                results = await apply_many(
                    conn,
                    [record.value for _, record in records],
                    self.cache,
                    signatures=[_signature(record) for _, record in records],
                    verifier=self.verifier,
                )
                await self._settle(conn, batches, records, results)
        except INFRASTRUCTURE_ERRORS:
            raise
        except asyncpg.PostgresError as exc:
            # The bulk writes failed on something in the data: go record by record, each in a
            # savepoint, so that only the culprit is dead-lettered.
            log.warning("batch refused by the database; applying record by record", error=repr(exc))
            async with self.pool.acquire() as conn, conn.transaction():
                results = []
                for _, record in records:
                    try:
                        async with conn.transaction():
                            results.extend(
                                await apply_many(
                                    conn,
                                    [record.value],
                                    signatures=[_signature(record)],
                                    verifier=self.verifier,
                                )
                            )
                    except INFRASTRUCTURE_ERRORS:
                        raise
                    except asyncpg.PostgresError as refused:
                        results.append(refused)
                await self._settle(conn, batches, records, results)
        # Committed: each record's span, a child of the relay's (its traceparent header).
        trace_applied(records, results, started)

    async def _settle(
        self,
        conn: Connection,
        batches: dict[TopicPartition, list[Any]],
        records: list[tuple[TopicPartition, Any]],
        results: list[Applied | Exception],
    ) -> None:
        counts = dict.fromkeys(ApplyOutcome, 0)
        resumed = 0
        for (tp, record), result in zip(records, results, strict=True):
            if isinstance(result, Exception):
                await self._dead_letter(conn, tp, record, result)
                continue
            counts[result.outcome] += 1
            counts[ApplyOutcome.APPLIED] += result.resumed
            resumed += result.resumed
            # The command's correlation id, from the HTTP request through Kafka to here.
            log.info(
                "event projected",
                outcome=result.outcome.value,
                agreement_id=result.stream_id,
                sequence=result.sequence,
                position=result.position,
                correlation_id=result.correlation_id,
                partition=tp.partition,
                offset=record.offset,
            )
        await conn.executemany(
            """INSERT INTO offsets (consumer_group, topic, partition, next_offset)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
            [
                (self.group, tp.topic, tp.partition, batch[-1].offset + 1)
                for tp, batch in batches.items()
                if batch
            ],
        )
        for outcome, count in counts.items():
            if count:
                EVENTS.labels(outcome.value).inc(count)
        if counts[ApplyOutcome.PARKED] or resumed:
            # Only a batch that parked or resumed something changes the number waiting.
            parked = await conn.fetchval("SELECT count(*) FROM parked")
            PARKED.set(parked)
        self.applied += counts[ApplyOutcome.APPLIED]
        self.seen += len(records)
        if counts[ApplyOutcome.PARKED]:
            log.warning("events parked behind a gap", parked=counts[ApplyOutcome.PARKED], waiting=parked)

    async def _dead_letter(self, conn: Connection, tp: TopicPartition, record: Any, exc: Exception) -> None:
        """Keeps the record and why it failed, in the database and on the dead-letter topic.

        Published before the batch commits: a crash in between dead-letters it twice, never zero times.
        """
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        key = record.key.decode("utf-8", "replace") if record.key else None
        log.error(
            "record dead-lettered", partition=tp.partition, offset=record.offset, key=key, reason=reason
        )
        await conn.execute(
            """INSERT INTO dead_letters (topic, partition, record_offset, key, reason, message)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
            tp.topic,
            tp.partition,
            record.offset,
            key,
            reason,
            bytes(record.value),
        )
        if self.producer is not None:
            await self.producer.send_and_wait(
                self.dead_letter_topic,
                value=bytes(record.value),
                key=record.key,
                headers=[
                    ("dlq-reason", reason.encode()),
                    ("dlq-source", f"{tp.topic}/{tp.partition}/{record.offset}".encode()),
                ],
            )
        DEAD_LETTERS.inc()
        if isinstance(exc, RecordRefused):
            RECORDS_REFUSED.labels(exc.reason).inc()
        DEAD_LETTERS_STORED.inc()  # until the next recount
        self.dead_lettered += 1

    async def lag(self) -> int | None:
        """Records on the topic not yet applied, summed over the partitions this worker owns."""
        consumer = self.consumer
        if consumer is None:
            return None
        assigned = consumer.assignment()
        if not assigned:
            return 0
        try:
            ends = await consumer.end_offsets(list(assigned))
        except KafkaError:
            return None
        rows = await self.pool.fetch(
            "SELECT partition, next_offset FROM offsets WHERE consumer_group = $1 AND topic = $2",
            self.group,
            self.topic,
        )
        stored = {r["partition"]: r["next_offset"] for r in rows}
        lag = 0
        for tp, end in ends.items():
            done = stored.get(tp.partition, 0)
            # The relay's transactions end with a commit marker: it takes an offset but is no
            # record, so the end offset stays past the last stored next_offset. The consumer's
            # position skips markers; minus the records in flight, it is how far is applied.
            with contextlib.suppress(KafkaError, TimeoutError):
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
                done = max(done, position - self.in_flight.get(tp, 0))
            lag += max(0, end - done)
        return int(lag)
