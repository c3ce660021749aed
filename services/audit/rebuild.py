"""`rebuild`: replays the log into a fresh shadow schema with the live projection's own code.

Every event goes through `services.projections.readmodel.apply.apply_many`, the function the live
worker applies Kafka records with (sequence-checked: duplicates skipped, gaps parked).
The SQL in it names tables without a schema, so a connection whose search_path starts
with the shadow writes the shadow.

Agreements are independent in the read models (every row belongs to one agreement, a
history row to one event), so the work is spread over `workers` connections by agreement
(store) or by partition (Kafka); each agreement's events stay in order on one connection,
and each batch slice is one transaction. A record the live worker would dead-letter is
dead-lettered here too (into the shadow's `dead_letters`), so the results match.

`--as-of` keeps what `services.audit.asof` keeps, the rule `party --as-of` folds by: a
succession's events from their effective date on, whenever recorded. Such an event comes
after events of its stream that were left out; the shadow's `streams` row is stepped over
that gap first, or the sequence-checked applier would park the event.

A whole store without `--as-of` is rebuilt by `services.audit.fast_rebuild` instead: each
stream folded once by the same applier code, its final rows copied in, one process per core.
It refuses what it could not reproduce exactly, and then the rebuild is made the way above.
"""

from __future__ import annotations

import asyncio
import json
import os
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from services.audit.asof import StreamsAsOf
from services.audit.common import (
    INFRASTRUCTURE_ERRORS,
    AuditError,
    check_schema_name,
    ident,
    migration_component,
    rfc3339,
    schema_exists,
    schema_relations,
    utc_stamp,
    write_meta,
)
from services.audit.fast_rebuild import FastPathRefused, rebuild_store_fast
from services.audit.kafkalog import Record, TopicReader
from services.audit.outcomes import STORE_ORIGIN, Counts, Item, count_outcome, dead_letter
from services.audit.progress import Progress
from services.audit.settings import AuditSettings
from services.common.db import Connection, create_pool, migrate
from services.projections.migrations import MIGRATIONS
from services.projections.readmodel.apply import Applied, FoldedStates, apply_many
from services.registry.service_layer.event_store import StoredEvent

log = structlog.get_logger(__name__)


@dataclass
class RebuildResult:
    schema: str
    source: str
    as_of: str | None
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0
    # Kafka only: where the shadow's consumer would resume, per partition.
    offsets: dict[int, int] = field(default_factory=dict)
    consumer_group: str | None = None
    # Built by `services.audit.fast_rebuild` rather than batch by batch.
    fast: bool = False

    @property
    def rate(self) -> float:
        return self.counts.read / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "rebuild",
            "schema": self.schema,
            "source": self.source,
            "as_of": self.as_of,
            **vars(self.counts),
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate, 1),
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "consumer_group": self.consumer_group,
            "fast": self.fast,
        }

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"rebuilt shadow schema {self.schema} from {self.source}"
            + (f" as of {self.as_of}" if self.as_of else "")
            + (" (fast path: one process per core)" if self.fast else ""),
            f"  events read       {c.read:,}",
            f"  applied           {c.applied:,}",
            f"  duplicates        {c.duplicates:,}",
            f"  parked (gaps)     {c.parked:,}",
            f"  dead-lettered     {c.dead_lettered:,}",
        ]
        if self.as_of:
            lines.append(f"  after as-of       {c.skipped_after_as_of:,} (left out)")
        lines.append(f"  time              {self.seconds:.1f}s  ({self.rate:,.0f} events/s)")
        if self.offsets:
            lines.append(
                f"  offsets ({self.consumer_group}) "
                + " ".join(f"{p}:{o}" for p, o in sorted(self.offsets.items()))
            )
        return "\n".join(lines)


@dataclass
class Slice:
    items: list[Item] = field(default_factory=list)
    # Kafka only: partition -> next offset, written in the slice's transaction.
    offsets: dict[int, int] = field(default_factory=dict)


def default_shadow_name() -> str:
    return f"shadow_{utc_stamp()}"


async def prepare_shadow(settings: AuditSettings, schema: str, *, replace: bool) -> None:
    """Creates the shadow schema with the read-model migrations; refuses a non-empty one."""
    check_schema_name(schema, settings.live_schema)
    conn = await asyncpg.connect(settings.database_url)
    try:
        if await schema_exists(conn, schema) and await schema_relations(conn, schema):
            if not replace:
                raise AuditError(f"schema {schema!r} exists and is not empty; pass --replace to drop it")
            await conn.execute(f"DROP SCHEMA {ident(schema)} CASCADE")
        # A dropped schema's migrations must run again.
        if await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL"):
            await conn.execute(
                "DELETE FROM public.schema_migrations WHERE component = $1", migration_component(schema)
            )
    finally:
        await conn.close()
    pool = await create_pool(settings.database_url, min_size=1, max_size=1, schema=schema)
    try:
        await migrate(pool, "projections", MIGRATIONS, schema=schema)
    finally:
        await pool.close()


async def _write_offsets(conn: Connection, group: str, topic: str, offsets: dict[int, int]) -> None:
    if not offsets:
        return
    await conn.executemany(
        """INSERT INTO offsets (consumer_group, topic, partition, next_offset)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset""",
        [(group, topic, partition, offset) for partition, offset in sorted(offsets.items())],
    )


async def apply_slice(
    conn: Connection, piece: Slice, group: str, topic: str, cache: FoldedStates | None = None
) -> Counts:
    """Applies a slice in one transaction, with its offsets; returns what happened.

    The same batch applier as the live worker (`readmodels.apply_many`): records it cannot
    apply are dead-lettered exactly as the live worker does. Should the database refuse
    the bulk writes, the slice is applied again record by record, each in a savepoint.
    """
    try:
        async with conn.transaction():
            results = await _apply(conn, piece.items, cache)
            counts = await _settle(conn, piece, results)
            await _write_offsets(conn, group, topic, piece.offsets)
        return counts
    except INFRASTRUCTURE_ERRORS:
        raise
    except asyncpg.PostgresError:
        pass  # retried below, record by record
    async with conn.transaction():
        results = []
        for item in piece.items:
            try:
                async with conn.transaction():
                    results.extend(await _apply(conn, [item]))
            except INFRASTRUCTURE_ERRORS:
                raise
            except asyncpg.PostgresError as exc:
                results.append(exc)
        counts = await _settle(conn, piece, results)
        await _write_offsets(conn, group, topic, piece.offsets)
    return counts


async def _apply(
    conn: Connection, items: list[Item], cache: FoldedStates | None = None
) -> list[Applied | Exception]:
    """`apply_many` over the items, a stream stepped over what `--as-of` left out before an
    item that `follows` it (one call per run, so the step lands between the right records)."""
    results: list[Applied | Exception] = []
    runs: list[list[Item]] = []
    for item in items:
        if item.follows is not None or not runs:
            runs.append([])
        runs[-1].append(item)
    for run in runs:
        head = run[0]
        if head.follows is not None:
            # Only forward: a stream that already stands further on has nothing to step over.
            await conn.execute(
                "UPDATE streams SET last_sequence = $2 WHERE agreement_id = $1 AND last_sequence < $2",
                head.subject,
                head.follows,
            )
        results += await apply_many(conn, [item.message for item in run], cache)
    return results


async def _settle(conn: Connection, piece: Slice, results: list[Applied | Exception]) -> Counts:
    counts = Counts()
    for item, result in zip(piece.items, results, strict=True):
        if isinstance(result, Exception):
            await dead_letter(conn, item, result)
            counts.dead_lettered += 1
        else:
            count_outcome(counts, result.outcome, result.resumed)
    return counts


class Appliers:
    """`workers` connections, each applying the slices queued for it in order."""

    def __init__(
        self, pool: asyncpg.Pool, workers: int, group: str, topic: str, progress: Progress | None
    ) -> None:
        self.pool = pool
        self.workers = workers
        self.group = group
        self.topic = topic
        self.progress = progress
        self.counts = Counts()
        self._queues: list[asyncio.Queue[Slice | None]] = [asyncio.Queue(maxsize=2) for _ in range(workers)]
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Appliers:
        self._tasks = [asyncio.create_task(self._work(q)) for q in self._queues]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is not None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self, queue: asyncio.Queue[Slice | None]) -> None:
        cache = FoldedStates()  # each worker owns its agreements (by id or by partition)
        async with self.pool.acquire() as conn:
            while (piece := await queue.get()) is not None:
                counts = await apply_slice(conn, piece, self.group, self.topic, cache)
                self.counts.add(counts)
                if self.progress is not None:
                    self.progress.advance(len(piece.items))

    async def put(self, worker: int, piece: Slice | None) -> None:
        # A failed worker would leave its queue full forever: surface its error instead.
        put = asyncio.ensure_future(self._queues[worker].put(piece))
        done, _ = await asyncio.wait([put, self._tasks[worker]], return_when=asyncio.FIRST_COMPLETED)
        if self._tasks[worker] in done:
            put.cancel()
            self._tasks[worker].result()
            raise RuntimeError("a rebuild worker stopped early")

    async def finish(self) -> Counts:
        for worker in range(self.workers):
            await self.put(worker, None)
        await asyncio.gather(*self._tasks)
        return self.counts


def worker_for(stream_id: str, workers: int) -> int:
    return zlib.crc32(stream_id.encode("utf-8")) % workers


def _kept(message: bytes | str, streams: StreamsAsOf | None) -> tuple[bool, int | None, str]:
    """Whether `--as-of` keeps the message, the sequence its stream must stand at first, and its
    subject; everything is kept without `--as-of`."""
    if streams is None:
        return True, None, ""
    doc = json.loads(message)
    kept = streams.keep(str(doc["subject"]), int(doc["sequence"]), doc)
    return kept is not None, kept.follows if kept else None, str(doc["subject"])


async def rebuild_from_store(
    settings: AuditSettings, pool: asyncpg.Pool, result: RebuildResult, as_of: datetime | None, workers: int
) -> None:
    reader = await asyncpg.connect(settings.database_url)
    try:
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            total = int(await reader.fetchval("SELECT count(*) FROM registry.events"))
            progress = Progress("rebuild from store", total, every=settings.progress_seconds)
            streams = StreamsAsOf(as_of) if as_of is not None else None
            async with Appliers(pool, workers, settings.consumer_group, settings.topic, progress) as appliers:
                cursor = await reader.cursor(
                    "SELECT position, agreement_id, sequence, envelope FROM registry.events ORDER BY position"
                )
                while rows := await cursor.fetch(settings.batch_size):
                    slices = [Slice() for _ in range(workers)]
                    for row in rows:
                        stored = StoredEvent(
                            row["position"], row["agreement_id"], row["sequence"], row["envelope"]
                        )
                        result.counts.read += 1
                        message = stored.message()
                        kept, follows, subject = _kept(message, streams)
                        if not kept:
                            result.counts.skipped_after_as_of += 1
                            progress.advance()
                            continue
                        item = Item(
                            message,
                            STORE_ORIGIN,
                            0,
                            stored.position,
                            stored.stream_id.encode(),
                            follows,
                            subject,
                        )
                        slices[worker_for(stored.stream_id, workers)].items.append(item)
                    for worker, piece in enumerate(slices):
                        if piece.items:
                            await appliers.put(worker, piece)
                counts = await appliers.finish()
            progress.finish()
    finally:
        await reader.close()
    _merge(result, counts)


async def rebuild_from_kafka(
    settings: AuditSettings, pool: asyncpg.Pool, result: RebuildResult, as_of: datetime | None, workers: int
) -> None:
    async with TopicReader(settings.kafka_connection(), settings.topic) as reader:
        begins = await reader.beginning_offsets()
        ends = await reader.end_offsets()
        total = sum(max(0, ends[p] - begins.get(p, 0)) for p in ends)
        progress = Progress("rebuild from kafka", total, every=settings.progress_seconds)
        slot = {p: i % workers for i, p in enumerate(reader.partitions)}
        streams = StreamsAsOf(as_of) if as_of is not None else None
        async with Appliers(pool, workers, settings.consumer_group, settings.topic, progress) as appliers:
            async for records in reader.read(begins, ends, max_records=settings.batch_size):
                slices = [Slice() for _ in range(workers)]
                for record in records:
                    piece = slices[slot[record.partition]]
                    piece.offsets[record.partition] = record.offset + 1
                    result.counts.read += 1
                    kept, follows, subject = _kept_record(record, streams)
                    if not kept:
                        result.counts.skipped_after_as_of += 1
                        progress.advance()
                        continue
                    piece.items.append(
                        Item(
                            record.value,
                            settings.topic,
                            record.partition,
                            record.offset,
                            record.key,
                            follows,
                            subject,
                        )
                    )
                for worker, piece in enumerate(slices):
                    if piece.items or piece.offsets:
                        await appliers.put(worker, piece)
            counts = await appliers.finish()
        progress.finish()
    # Everything up to the end offsets is in: that is where a consumer of this shadow resumes.
    async with pool.acquire() as conn, conn.transaction():
        await _write_offsets(conn, settings.consumer_group, settings.topic, ends)
    result.offsets = dict(ends)
    result.consumer_group = settings.consumer_group
    _merge(result, counts)


def _kept_record(record: Record, streams: StreamsAsOf | None) -> tuple[bool, int | None, str]:
    try:
        return _kept(record.value, streams)
    except (ValueError, KeyError, TypeError):
        return True, None, ""  # not an envelope: apply dead-letters it, as the live worker does


def _merge(result: RebuildResult, counts: Counts) -> None:
    result.counts.applied += counts.applied
    result.counts.duplicates += counts.duplicates
    result.counts.parked += counts.parked
    result.counts.dead_lettered += counts.dead_lettered


async def rebuild(
    settings: AuditSettings,
    *,
    source: str,
    schema: str | None = None,
    as_of: datetime | None = None,
    replace: bool = False,
    workers: int = 4,
    fast: bool = True,
) -> RebuildResult:
    """`fast`: a whole store without `--as-of` is rebuilt by `services.audit.fast_rebuild` (one
    process per core, at most `workers`), unless it refuses; everything else, and that store
    then, goes the general way (`apply_many` batches over `workers` connections)."""
    if source not in ("store", "kafka"):
        raise AuditError(f"--from must be store or kafka, not {source!r}")
    schema = schema or default_shadow_name()
    await prepare_shadow(settings, schema, replace=replace)
    result = RebuildResult(schema, source, rfc3339(as_of) if as_of else None)
    started = datetime.now(UTC)
    clock = asyncio.get_running_loop().time
    begun = clock()
    if (
        fast
        and source == "store"
        and as_of is None
        and await _rebuilt_fast(settings, schema, result, workers, started)
    ):
        result.seconds = clock() - begun
        return result
    pool = await create_pool(settings.database_url, min_size=1, max_size=workers + 1, schema=schema)
    try:
        async with pool.acquire() as conn:
            await write_meta(conn, schema, _meta(result, "building", started))
        run: Callable[..., Awaitable[None]] = rebuild_from_store if source == "store" else rebuild_from_kafka
        await run(settings, pool, result, as_of, max(1, workers))
        result.seconds = clock() - begun
        async with pool.acquire() as conn:
            await write_meta(conn, schema, _meta(result, "complete", started))
    finally:
        await pool.close()
    return result


async def _rebuilt_fast(
    settings: AuditSettings, schema: str, result: RebuildResult, workers: int, started: datetime
) -> bool:
    """The fast path; False, with the shadow made empty again, when it refused."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await write_meta(conn, schema, _meta(result, "building", started))
        try:
            result.counts.read, counts = await rebuild_store_fast(
                settings.database_url,
                schema,
                min(max(1, workers), _cores()),
                settings.progress_seconds,
            )
        except FastPathRefused as exc:
            log.warning("fast rebuild refused, rebuilding the general way", schema=schema, reason=str(exc))
            result.counts = Counts()
            await conn.close()
            await prepare_shadow(settings, schema, replace=True)
            return False
        _merge(result, counts)
        result.fast = True
        await write_meta(conn, schema, _meta(result, "complete", started))
        return True
    finally:
        if not conn.is_closed():
            await conn.close()


def _cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _meta(result: RebuildResult, status: str, started: datetime) -> dict[str, Any]:
    return {
        "status": status,
        "source": result.source,
        "as_of": result.as_of,
        "started_at": rfc3339(started),
        "events": result.counts.read,
        "consumer_group": result.consumer_group,
    }
