"""A full rebuild from the store on every core: each stream folded once, its rows copied once.

`rebuild_from_store` hands each stream's events to `apply_many` a batch at a time, and every
batch reads and rewrites the rows of the streams it touched. A rebuild of everything starts
from empty read models and sees every stream whole, so here each stream (an agreement's or a
party's) is folded from its first event to its last by the live applier's own `decode`,
`apply_event` and `folded_rows`, and only the rows the batches would have left behind are written:
an agreement's, its obligations', transfers' and `streams` row, a party's and its successions
as of its last event (each batch rewrites them whole from the state); each report's latest
value; a history row and an `applied` row per event; the events still parked at the end. They
go in with COPY into tables without indexes, which are built once everything is in.

Streams are independent (services/projections/readmodel/apply.py), so the store is cut into
ranges of agreement_id handed out to one process per core, each reading its ranges in a
snapshot the coordinator exports: together they read exactly what one reader would. A stream's
events are applied in store order (`position`), as the general path applies them.

It refuses (`FastPathRefused`) whatever it cannot reproduce exactly, and the caller then
rebuilds the general way: an envelope whose subject is not its row's stream (the streams would
not be split as the applier keys them), and rows the database would refuse, which the general
path dead-letters record by record: text with U+0000, a state naming a party twice in an
obligation (both checked at every event, as the general path may write any state), and
anything else a COPY or an index refuses.

Run as `python -m services.audit.fast_rebuild`, it is one of those worker processes: its job
comes on stdin, the ranges it is given one at a time, and what it did goes back on stdout.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import IO, Any

import asyncpg
import structlog

from services.agreement.state import AgreementState
from services.audit.common import INFRASTRUCTURE_ERRORS, ident
from services.audit.outcomes import STORE_ORIGIN, Counts, Item, count_outcome, dead_letter
from services.audit.progress import Progress
from services.projections.readmodel.apply import (
    COLUMNS,
    StreamFold,
    Writes,
    apply_event,
    decode,
    folded_rows,
)
from services.registry.service_layer.event_store import StoredEvent

log = structlog.get_logger(__name__)

# More ranges than processes, so that one that starts late or gets the busier ranges is not
# the one everybody waits for at the end; and small ones, which PostgreSQL sorts in memory.
RANGES_PER_PROCESS = 8
EVENTS_PER_RANGE = 2_000
MAX_RANGES = 10_000
# Events folded between two rounds of COPY.
FLUSH_EVENTS = 20_000
FETCH_ROWS = 2_000
YIELD_SECONDS = 0.01
# Objects allocated between two collections of the youngest generation while folding.
GC_THRESHOLD = 50_000

# Loaded tables whose indexes are built after the load. `dead_letters` keeps its key: its
# rows are few and written with the general path's ON CONFLICT statement.
LOADED = tuple(COLUMNS)

Range = tuple[str | None, str | None]
# U+0000 as canonical JSON writes it: PostgreSQL stores it in no text or jsonb column, so the
# general path dead-letters the event whose rows carry it (a false alarm, a backslash written
# before "u0000", only costs the general path).
UNSTORABLE = b"\\u0000"
# The same in the message as text: its UTF-8 bytes hold those ASCII bytes where it holds these.
UNSTORABLE_TEXT = UNSTORABLE.decode("ascii")


class FastPathRefused(Exception):
    """The store holds something only the general path reproduces exactly."""


@dataclass(frozen=True)
class Job:
    database_url: str
    schema: str
    snapshot: str
    ranges: list[Range]


@dataclass
class _Rows:
    """Rows waiting for the next COPY, per table, and the dead letters."""

    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in LOADED})
    dead: list[tuple[Item, Exception]] = field(default_factory=list)
    events: int = 0

    def add_stream(self, subject: str, stream: StreamFold, writes: Writes) -> None:
        tables = self.tables
        tables["party_history"] += writes.history
        tables["applied"] += writes.applied
        tables["reports"] += writes.reports.values()
        done = set(writes.parked_done)
        tables["parked"] += [p for p in writes.parked_new if (p[0], p[1]) not in done]
        # As of the stream's last event: what the live applier's last batch would leave.
        for table, rows in folded_rows(subject, stream).items():
            tables[table] += rows

    async def flush(self, conn: asyncpg.Connection, schema: str) -> None:
        for table, rows in self.tables.items():
            if rows:
                await conn.copy_records_to_table(
                    table, records=rows, columns=COLUMNS[table], schema_name=schema
                )
                rows.clear()
        for item, exc in self.dead:
            await dead_letter(conn, item, exc)
        self.dead.clear()
        self.events = 0


def fold_stream(rows: Sequence[Any], out: _Rows, counts: Counts) -> None:
    """One stream's stored events (position, stream id, sequence, envelope), in any order."""
    stream = StreamFold(0, None)
    writes = Writes()
    # The obligations last found to name no party twice: states share them until an event
    # changes them (a report does not), and the same (immutable) obligations pass again.
    checked: object = None
    for position, stream_id, sequence, text in sorted(rows, key=lambda row: int(row[0])):
        stored = StoredEvent(position, stream_id, sequence, text)
        # The Kafka record value (`stored.message()`), as text: what the live worker decodes
        # and parks; a dead letter keeps its bytes.
        message = stored.message_text()
        if UNSTORABLE_TEXT in message:
            raise FastPathRefused(f"event at position {position} holds text PostgreSQL cannot store")
        try:
            envelope, event = decode(message)
        except Exception:
            try:
                # Decoded again as bytes, as the live worker does: its error (the dead letter's
                # reason) is told of bytes.
                envelope, event = decode(message.encode())
            except Exception as exc:
                out.dead.append((_item(stored, message), exc))
                counts.dead_lettered += 1
                continue
        if envelope.subject != stream_id:
            raise FastPathRefused(f"event at position {position} of stream {stream_id!r} has another subject")
        try:
            applied = apply_event(stream, envelope, event, message, writes)
        except Exception as exc:
            out.dead.append((_item(stored, message), exc))
            counts.dead_lettered += 1
            continue
        count_outcome(counts, applied.outcome, applied.resumed)
        state = stream.state
        if isinstance(state, AgreementState) and state.obligations is not checked:
            if not _keys_unique(state):
                raise FastPathRefused(f"stream {stream_id!r} names a party twice in an obligation")
            checked = state.obligations
    out.add_stream(rows[0][1], stream, writes)
    out.events += len(rows)


def _keys_unique(state: AgreementState) -> bool:
    """Whether the state's `party_obligations` rows have distinct keys (a party at most once per
    obligation). The domain refuses anything else, but the applier trusts the log: a state that
    broke it would make the general path's bulk write fail, whenever that state is written."""
    for item in state.obligations.values():
        ob = item.obligation
        named = (ob.lead_party_id, *ob.supporting_party_ids)
        if len(set(named)) != len(named):
            return False
    return True


def _item(stored: StoredEvent, message: str) -> Item:
    return Item(message.encode("utf-8"), STORE_ORIGIN, 0, stored.position, stored.stream_id.encode())


def _range_query(bounds: Range) -> tuple[str, list[str]]:
    low, high = bounds
    where, args = [], []
    if low is not None:
        args.append(low)
        where.append(f"agreement_id >= ${len(args)}")
    if high is not None:
        args.append(high)
        where.append(f"agreement_id < ${len(args)}")
    # Grouped by stream: each stream's events arrive together, its own order restored by fold_stream.
    query = "SELECT position, agreement_id, sequence, envelope FROM registry.events"
    if where:
        query += " WHERE " + " AND ".join(where)
    return query + " ORDER BY agreement_id, sequence", args


async def _encode_jsonb(conn: asyncpg.Connection) -> None:
    # The live applier sends an agreement's `state` as JSON text (`$16::text::jsonb`) and the
    # other jsonb values as Python values; COPY has no cast, so text is taken as JSON already.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: (
            b"\x01"
            + (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).encode("utf-8")
        ),
        decoder=lambda data: json.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Folding allocates a dozen objects per event, nearly all freed by their reference counts
    (a fold makes no cycles): the collector, run every 700 allocations by default, mostly
    walks the rows waiting for COPY and what was imported. Those are set aside (`freeze`)
    and the young collected less often while the ranges are folded."""
    threshold = gc.get_threshold()
    # `unfreeze` lets go of everything frozen: if someone froze objects before, they stay so.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


async def work(job: Job, take: Callable[[], Awaitable[int | None]], advance: Callable[[int], None]) -> Counts:
    """Folds the ranges `take` hands out until it hands out None; returns what happened."""
    with _fewer_collections():
        return await _work(job, take, advance)


async def _work(
    job: Job, take: Callable[[], Awaitable[int | None]], advance: Callable[[int], None]
) -> Counts:
    counts = Counts()
    # The processes are the parallelism: a range's query needs no parallel workers of its own.
    reader = await asyncpg.connect(job.database_url, server_settings={"max_parallel_workers_per_gather": "0"})
    writer = await asyncpg.connect(job.database_url, server_settings={"search_path": f"{ident(job.schema)}"})
    try:
        await _encode_jsonb(writer)
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            await reader.execute(f"SET TRANSACTION SNAPSHOT '{job.snapshot}'")
            out = _Rows()
            yielded = time.perf_counter()
            while (index := await take()) is not None:
                query, args = _range_query(job.ranges[index])
                stream: list[Any] = []
                cursor = await reader.cursor(query, *args)
                while rows := await cursor.fetch(FETCH_ROWS):
                    for row in rows:
                        if stream and row[1] != stream[0][1]:
                            fold_stream(stream, out, counts)
                            stream = []
                            # In the coordinator, the other processes wait on this loop for
                            # their next range: it must not wait for a whole page to be folded.
                            if time.perf_counter() - yielded > YIELD_SECONDS:
                                await asyncio.sleep(0)
                                yielded = time.perf_counter()
                        stream.append(row)
                    if out.events >= FLUSH_EVENTS:
                        # COPY a few big batches: each call looks up its table's columns first.
                        advance(out.events)
                        await out.flush(writer, job.schema)
                if stream:
                    fold_stream(stream, out, counts)
            advance(out.events)
            await out.flush(writer, job.schema)
    except INFRASTRUCTURE_ERRORS:
        raise
    except asyncpg.PostgresError as exc:
        raise FastPathRefused(f"the database refused a bulk write: {type(exc).__name__}: {exc}") from exc
    finally:
        await reader.close()
        await writer.close()
    return counts


# --- the coordinator -------------------------------------------------------------------------


@dataclass
class _Index:
    table: str
    name: str
    create: str
    drop: str


async def _take_indexes(database_url: str, schema: str) -> list[_Index]:
    """Drops the loaded tables' indexes (primary keys and unique constraints as constraints)
    and returns how to make each again, by its own definition and name."""
    conn = await asyncpg.connect(database_url)
    try:
        return await _drop_indexes(conn, schema)
    finally:
        await conn.close()


async def _drop_indexes(conn: asyncpg.Connection, schema: str) -> list[_Index]:
    rows = await conn.fetch(
        """SELECT t.relname AS table, i.relname AS name, pg_get_indexdef(i.oid) AS indexdef,
                  c.conname, pg_get_constraintdef(c.oid) AS condef
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_class t ON t.oid = x.indrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace
           LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.conrelid = t.oid AND c.contype IN ('p', 'u')
           WHERE n.nspname = $1 AND t.relname = ANY($2::text[])
           ORDER BY t.relname, i.relname""",
        schema,
        list(LOADED),
    )
    indexes = []
    for row in rows:
        table = f"{ident(schema)}.{ident(row['table'])}"
        if row["conname"] is not None:
            indexes.append(
                _Index(
                    row["table"],
                    row["name"],
                    f"ALTER TABLE {table} ADD CONSTRAINT {ident(row['conname'])} {row['condef']}",
                    f"ALTER TABLE {table} DROP CONSTRAINT {ident(row['conname'])}",
                )
            )
        else:
            indexes.append(
                _Index(
                    row["table"],
                    row["name"],
                    row["indexdef"],
                    f"DROP INDEX {ident(schema)}.{ident(row['name'])}",
                )
            )
    async with conn.transaction():
        for index in indexes:
            await conn.execute(index.drop)
    return indexes


async def _restore_indexes(database_url: str, indexes: list[_Index], connections: int) -> None:
    """Builds the indexes again, the biggest tables' first, over `connections` connections."""
    queue: asyncio.Queue[_Index] = asyncio.Queue()
    order = {"party_history": 0, "applied": 1, "party_obligations": 2, "agreements": 3}
    for index in sorted(indexes, key=lambda i: (order.get(i.table, 9), i.name)):
        queue.put_nowait(index)

    async def build() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("SET maintenance_work_mem = '256MB'")
            while not queue.empty():
                await conn.execute(queue.get_nowait().create)
        finally:
            await conn.close()

    await asyncio.gather(*(build() for _ in range(max(1, connections))))


async def _ranges(reader: asyncpg.Connection, processes: int) -> tuple[int, list[Range]]:
    """The number of events, and ranges of agreement_id holding about as many each."""
    total = int(await reader.fetchval("SELECT count(*) FROM registry.events"))
    count = min(MAX_RANGES, max(processes * RANGES_PER_PROCESS, total // EVENTS_PER_RANGE))
    bounds = await reader.fetchval(
        "SELECT percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY agreement_id) FROM registry.events",
        [i / count for i in range(1, count)],
    )
    edges: list[str | None] = [None, *sorted({b for b in bounds or [] if b is not None}), None]
    return total, list(pairwise(edges))


async def rebuild_store_fast(
    database_url: str, schema: str, processes: int, progress_every: float
) -> tuple[int, Counts]:
    """Fills the freshly migrated, empty shadow `schema` from the whole store; returns the
    number of events read and what happened to them. Raises FastPathRefused if it cannot
    reproduce the general path (the shadow is then partly filled: make it again)."""
    processes = max(1, processes)
    reader = await asyncpg.connect(database_url)
    try:
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            snapshot = str(await reader.fetchval("SELECT pg_export_snapshot()"))
            total, ranges = await _ranges(reader, processes)
            indexes = await _take_indexes(database_url, schema)
            job = Job(database_url, schema, snapshot, ranges)
            progress = Progress("rebuild from store", total, every=progress_every)
            counts = await _run(job, processes, progress)
            folded = progress.finish()
    finally:
        await reader.close()
    began = time.perf_counter()
    try:
        await _restore_indexes(database_url, indexes, processes)
    except INFRASTRUCTURE_ERRORS:
        raise
    except asyncpg.PostgresError as exc:
        # A key the rows break: the general path would have dead-lettered what wrote them.
        raise FastPathRefused(
            f"the read models' indexes refused the rows: {type(exc).__name__}: {exc}"
        ) from exc
    log.info(
        "fast rebuild",
        schema=schema,
        events=total,
        processes=processes,
        fold_seconds=round(folded, 3),
        index_seconds=round(time.perf_counter() - began, 3),
    )
    return total, counts


async def _run(job: Job, processes: int, progress: Progress) -> Counts:
    """This process works too; the others are children started with the same interpreter."""
    pending = list(range(len(job.ranges)))
    pending.reverse()

    def next_range() -> int | None:
        return pending.pop() if pending else None

    async def take_here() -> int | None:
        return next_range()

    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.audit.fast_rebuild",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # It imports what this process imports, from wherever it was started.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        for _ in range(processes - 1)
    ]

    async def serve(child: asyncio.subprocess.Process) -> Counts:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write((json.dumps(asdict(job)) + "\n").encode())
        result: dict[str, Any] | None = None
        while line := await child.stdout.readline():
            message = json.loads(line)
            if "advance" in message:
                progress.advance(int(message["advance"]))
            elif "take" in message:
                child.stdin.write((json.dumps(next_range()) + "\n").encode())
                await child.stdin.drain()
            else:
                result = message
        await child.wait()
        if result is None or "counts" not in result:
            error = (result or {}).get("refused")
            if error is not None:
                raise FastPathRefused(error)
            raise RuntimeError(
                f"a rebuild worker failed (exit {child.returncode}): {(result or {}).get('error', 'no answer')}"
            )
        return Counts(**result["counts"])

    tasks = [
        asyncio.create_task(work(job, take_here, progress.advance)),
        *(asyncio.create_task(serve(c)) for c in children),
    ]
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        # Nobody may go on writing the shadow: the caller is about to make it again.
        pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for child in children:
            if child.returncode is None:
                child.kill()
            await child.wait()
        raise
    total = Counts()
    for counts in results:
        total.add(counts)
    return total


# --- a worker process ------------------------------------------------------------------------


async def _child(commands: IO[str], answers: IO[str]) -> None:
    def say(message: dict[str, Any]) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    loop = asyncio.get_running_loop()
    job_fields = json.loads(await loop.run_in_executor(None, commands.readline))
    job = Job(**{**job_fields, "ranges": [tuple(r) for r in job_fields["ranges"]]})

    async def take() -> int | None:
        say({"take": True})
        answer: int | None = json.loads(await loop.run_in_executor(None, commands.readline))
        return answer

    try:
        counts = await work(job, take, lambda n: say({"advance": n}))
    except FastPathRefused as exc:
        say({"refused": str(exc)})
        return
    except Exception as exc:
        say({"error": f"{type(exc).__name__}: {exc}"})
        raise
    say({"counts": asdict(counts)})


def main() -> None:
    # stdout is the conversation with the coordinator: anything else printed goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    asyncio.run(_child(sys.stdin, answers))


if __name__ == "__main__":
    main()
