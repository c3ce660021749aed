"""`swap`: makes a rebuilt shadow the live read models (blue/green) without losing an event.

1. Catch up, without locks: read Kafka from the shadow's stored offsets (from the
   beginning if it has none, e.g. a rebuild from the store) up to the live worker's
   current offsets, applying with the same sequence-checked `apply` (an event the
   shadow already holds is skipped as a duplicate). Repeat until the rest is small.
2. One transaction:
   - `LOCK TABLE live.streams, live.offsets IN EXCLUSIVE MODE`. Every live batch starts
     with `SELECT … FROM streams … FOR UPDATE` and ends by writing `offsets`, so the lock
     waits for a batch in flight to commit and holds the next one at its first statement.
     (Locking `offsets` alone would let a batch write its rows into the old schema and
     then, once the name resolves to the new schema, its offsets into the new one: its
     events would be lost.) Queries (plain SELECTs) keep being answered meanwhile.
   - apply the records between the shadow's offsets and the now frozen live offsets;
   - copy the live offsets into the shadow;
   - compare the shadow with the live read models (`diff`): agreements the shadow holds
     more events of (a store rebuild ahead of the live worker) are left out, anything
     else differing refuses the swap unless --force;
   - rename live -> `<live>_old_<ts>` and the shadow -> live; commit.
   The worker's blocked statement, and every later one, resolves the table names through
   its search_path again and lands in the new schema, from the same offsets.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.audit.common import (
    AuditError,
    check_schema_name,
    ident,
    migration_component,
    read_meta,
    rfc3339,
    schema_exists,
    utc_stamp,
    write_meta,
)
from services.audit.diff import DiffReport, compare
from services.audit.kafkalog import TopicReader
from services.audit.outcomes import Counts, Item
from services.audit.progress import Progress
from services.audit.rebuild import Appliers, Slice, apply_slice
from services.audit.settings import AuditSettings
from services.common.db import Connection, create_pool
from services.common.db_roles import apply_privileges

# Records left for the locked step: the live worker waits while they are applied.
FINAL_STEP_RECORDS = 50
MAX_CATCH_UP_ROUNDS = 30


class ShadowAhead(Exception):
    """The shadow holds offsets the live worker has not reached yet."""


@dataclass
class SwapResult:
    schema: str
    live_schema: str
    old_schema: str = ""
    consumer_group: str = ""
    caught_up: Counts = field(default_factory=Counts)  # before the lock
    final: Counts = field(default_factory=Counts)  # under the lock
    lock_seconds: float = 0.0
    seconds: float = 0.0
    offsets: dict[int, int] = field(default_factory=dict)
    ahead_streams: int = 0
    check: DiffReport | None = None
    forced: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "swap",
            "schema": self.schema,
            "live_schema": self.live_schema,
            "old_schema": self.old_schema,
            "consumer_group": self.consumer_group,
            "caught_up": vars(self.caught_up),
            "final": vars(self.final),
            "lock_seconds": round(self.lock_seconds, 3),
            "seconds": round(self.seconds, 3),
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "ahead_agreements": self.ahead_streams,
            "forced": self.forced,
            "check": self.check.to_json() if self.check is not None else None,
        }

    def summary(self) -> str:
        lines = [
            f"swapped: {self.schema} is now {self.live_schema}; the previous read models are {self.old_schema}",
            f"  caught up         {self.caught_up.read:,} records before the lock ({self.caught_up.applied:,}"
            f" applied, {self.caught_up.duplicates:,} already held)",
            f"  under the lock    {self.final.read:,} records ({self.final.applied:,} applied) in"
            f" {self.lock_seconds:.2f}s",
            f"  offsets ({self.consumer_group}) "
            + " ".join(f"{p}:{o}" for p, o in sorted(self.offsets.items())),
        ]
        if self.ahead_streams:
            lines.append(
                f"  {self.ahead_streams} stream(s) were ahead in the shadow; the live worker will skip"
                " those events as duplicates"
            )
        if self.check is not None and not self.check.consistent:
            lines.append(f"  FORCED past {len(self.check.differences)} difference(s)")
        return "\n".join(lines)


async def _offsets(conn: Connection, schema: str, group: str, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        f"SELECT partition, next_offset FROM {ident(schema)}.offsets WHERE consumer_group = $1 AND topic = $2",
        group,
        topic,
    )
    return {int(r["partition"]): int(r["next_offset"]) for r in rows}


def _behind(shadow: dict[int, int], live: dict[int, int]) -> int:
    return sum(max(0, offset - shadow.get(p, 0)) for p, offset in live.items())


def _ahead(shadow: dict[int, int], live: dict[int, int]) -> list[int]:
    return sorted(p for p, offset in shadow.items() if offset > live.get(p, 0))


async def swap(settings: AuditSettings, schema: str, *, force: bool = False, workers: int = 4) -> SwapResult:
    live = settings.live_schema
    check_schema_name(schema, live)
    group, topic = settings.consumer_group, settings.topic
    result = SwapResult(schema, live, consumer_group=group)
    clock = asyncio.get_running_loop().time
    started = clock()
    conn = await asyncpg.connect(settings.database_url)
    try:
        if not await schema_exists(conn, schema):
            raise AuditError(f"schema {schema!r} does not exist")
        if not await schema_exists(conn, live):
            raise AuditError(f"the live schema {live!r} does not exist")
        meta = await read_meta(conn, schema)
        if meta is None:
            raise AuditError(f"schema {schema!r} was not built by `rebuild`: refusing to make it live")
        if meta.get("status") != "complete":
            raise AuditError(f"the rebuild of {schema!r} did not complete (status {meta.get('status')!r})")
        if meta.get("as_of"):
            raise AuditError(
                f"{schema!r} was rebuilt as of {meta['as_of']}: it leaves out later events and cannot go live"
            )
        if not await _offsets(conn, live, group, topic):
            raise AuditError(
                f"the live read models have no offsets for consumer group {group!r} on {topic!r}"
                " (set --group to the live worker's group)"
            )
    finally:
        await conn.close()

    pool = await create_pool(settings.database_url, min_size=1, max_size=workers + 1, schema=schema)
    try:
        async with TopicReader(settings.kafka_connection(), topic) as reader:
            for _attempt in range(10):
                await _catch_up(settings, pool, reader, result, workers)
                try:
                    await _final_step(settings, pool, reader, result, force)
                    break
                except ShadowAhead:
                    continue
            else:
                raise AuditError("the live worker did not reach the shadow's offsets; is it running?")
    finally:
        await pool.close()
    result.seconds = clock() - started
    return result


async def _catch_up(
    settings: AuditSettings, pool: asyncpg.Pool, reader: TopicReader, result: SwapResult, workers: int
) -> None:
    live, group, topic = settings.live_schema, settings.consumer_group, settings.topic
    clock = asyncio.get_running_loop().time
    for _round in range(MAX_CATCH_UP_ROUNDS):
        async with pool.acquire() as conn:
            shadow_offsets = await _offsets(conn, result.schema, group, topic)
            live_offsets = await _offsets(conn, live, group, topic)
        if not shadow_offsets:
            shadow_offsets = await reader.beginning_offsets()
        deadline = clock() + settings.swap_wait_seconds
        while _ahead(shadow_offsets, live_offsets):
            # The shadow read further than the live worker: wait for the worker.
            if clock() > deadline:
                raise AuditError(
                    f"the live worker stayed behind the shadow on partitions"
                    f" {_ahead(shadow_offsets, live_offsets)} for {settings.swap_wait_seconds:.0f}s"
                )
            await asyncio.sleep(0.5)
            async with pool.acquire() as conn:
                live_offsets = await _offsets(conn, live, group, topic)
        behind = _behind(shadow_offsets, live_offsets)
        if behind <= FINAL_STEP_RECORDS:
            return
        progress = Progress("swap catch-up", behind, unit="records", every=settings.progress_seconds)
        async with Appliers(pool, workers, group, topic, progress) as appliers:
            slot = {p: i % workers for i, p in enumerate(reader.partitions)}
            start = {p: shadow_offsets.get(p, 0) for p in reader.partitions}
            async for records in reader.read(start, live_offsets, max_records=settings.batch_size):
                slices = [Slice() for _ in range(workers)]
                result.caught_up.read += len(records)
                for record in records:
                    piece = slices[slot[record.partition]]
                    piece.items.append(Item(record.value, topic, record.partition, record.offset, record.key))
                    piece.offsets[record.partition] = record.offset + 1
                for worker, piece in enumerate(slices):
                    if piece.items:
                        await appliers.put(worker, piece)
            counts = await appliers.finish()
        progress.finish()
        async with pool.acquire() as conn, conn.transaction():
            # Partitions with nothing to read still move to the live offsets.
            await _store_offsets(conn, group, topic, live_offsets)
        result.caught_up.add(counts)


async def _store_offsets(conn: Connection, group: str, topic: str, offsets: dict[int, int]) -> None:
    await conn.executemany(
        """INSERT INTO offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
           ON CONFLICT (consumer_group, topic, partition)
           DO UPDATE SET next_offset = GREATEST(offsets.next_offset, EXCLUDED.next_offset)""",
        [(group, topic, p, o) for p, o in sorted(offsets.items())],
    )


async def _hand_over(conn: Connection, live: str, old: str) -> None:
    """The new live read models go to the owner of those they replace (the migrator), with every
    component's grants (docs/adr/0002-database-roles.md): the audit role that built them keeps no
    hold on live data. Needs a role that may act as both owners: the migrator, which the
    deployments make a member of the audit role, or a superuser."""
    owner = await conn.fetchval("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", old)
    await conn.execute(f"ALTER SCHEMA {ident(live)} OWNER TO {owner}")
    # Indexes and identity sequences follow their tables.
    for name in await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')""",
        live,
    ):
        await conn.execute(f"ALTER TABLE {ident(live)}.{ident(name['relname'])} OWNER TO {owner}")
    await apply_privileges(conn, live)


async def _final_step(
    settings: AuditSettings, pool: asyncpg.Pool, reader: TopicReader, result: SwapResult, force: bool
) -> None:
    live, group, topic = settings.live_schema, settings.consumer_group, settings.topic
    schema = result.schema
    clock = asyncio.get_running_loop().time
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"LOCK TABLE {ident(live)}.streams, {ident(live)}.offsets IN EXCLUSIVE MODE")
        locked = clock()
        live_offsets = await _offsets(conn, live, group, topic)
        shadow_offsets = await _offsets(conn, schema, group, topic) or await reader.beginning_offsets()
        if _ahead(shadow_offsets, live_offsets):
            raise ShadowAhead()
        start = {p: shadow_offsets.get(p, 0) for p in reader.partitions}
        piece = Slice()
        async for records in reader.read(start, live_offsets, max_records=settings.batch_size):
            piece.items.extend(Item(r.value, topic, r.partition, r.offset, r.key) for r in records)
        # A savepoint inside this transaction: a failure dead-letters like the live worker.
        counts = await apply_slice(conn, piece, group, topic)
        counts.read = len(piece.items)
        result.final = counts
        await conn.execute(f"DELETE FROM {ident(schema)}.offsets")
        await conn.execute(f"INSERT INTO {ident(schema)}.offsets SELECT * FROM {ident(live)}.offsets")
        result.offsets = live_offsets

        ahead = {
            r["agreement_id"]
            for r in await conn.fetch(
                f"""SELECT s.agreement_id FROM {ident(schema)}.streams s
                    LEFT JOIN {ident(live)}.streams l USING (agreement_id)
                    WHERE l.agreement_id IS NULL OR s.last_sequence > l.last_sequence"""
            )
        }
        result.ahead_streams = len(ahead)
        check = await compare(conn, schema, live, skip_streams=ahead)
        result.check = check
        if not check.consistent and not force:
            raise AuditError(
                f"{schema!r} differs from {live!r} ({len(check.differences)} row difference(s),"
                f" {len(check.schema_problems)} schema problem(s)) at the same offsets: not swapped;"
                " run `diff` to see them, or --force to swap anyway"
            )
        result.forced = not check.consistent

        old = f"{live}_old_{utc_stamp()}"[:63]
        result.old_schema = old
        await conn.execute(f"ALTER SCHEMA {ident(live)} RENAME TO {ident(old)}")
        await conn.execute(f"ALTER SCHEMA {ident(schema)} RENAME TO {ident(live)}")
        await _hand_over(conn, live, old)
        # The migration ledger follows the schemas it describes.
        for before, after in (
            (migration_component(live), "~swap~"),
            (migration_component(schema), migration_component(live)),
            ("~swap~", migration_component(old)),
        ):
            await conn.execute(
                "UPDATE public.schema_migrations SET component = $2 WHERE component = $1", before, after
            )
        meta = {k: v for k, v in (await read_meta(conn, live) or {}).items() if k != "tool"}
        meta.update(status="live", swapped_at=rfc3339(datetime.now(UTC)), previous=old, built_as=schema)
        await write_meta(conn, live, meta)
        result.lock_seconds = clock() - locked
