"""The integrator: takes the events queued in registry.tree_pending (migration 008) into the
Merkle tree, and signs checkpoints of it.

One integrator leads at a time (an advisory lock, as the relay's); it runs in every relay
process. Each batch is one transaction on the lock's session: the queued events in position
order get the next leaf indices, their leaves and the tree's new stored hashes are inserted,
their queue rows deleted. A deposed leader cannot write a leaf twice: the leaf index is the
primary key, and the batch first checks that its session still holds the lock.

Checkpoints: when the tree has grown and `checkpoint_seconds` have passed since the last one,
the leader signs the new tree head (C2SP tlog-checkpoint) and stores the note; a registry signs
one on demand too (POST /v1/log/checkpoints). Both store at most one note per tree size.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from services.common.db import Connection
from services.registry.adapters.leadership import take_lead
from services.registry.adapters.relay import HOLDS_LOCK
from services.registry.service_layer.event_store import StoredEvent
from services.transparency import merkle, tiles
from services.transparency.log import CheckpointSigner, frontier_indices

log = structlog.get_logger(__name__)

# A key of its own: the relay's lock is another one, so either may lead on its own.
TREE_LOCK = 0x74726565  # "tree"
LEAVES = Counter("log_leaves_integrated_total", "Events taken into the Merkle tree")
TREE_SIZE = Gauge("log_tree_size", "Leaves in the Merkle tree (the integrator's last batch)")
PENDING = Gauge("log_pending_events", "Events committed but not yet in the tree (last count)")
IS_LEADER = Gauge("log_integrator_is_leader", "1 while this process integrates the tree")
TOO_LARGE_FOR_BUNDLES = Counter(
    "log_leaves_too_large_for_bundles_total",
    "Leaves whose record is over the 65,535 bytes of a tlog-tiles entry (their bundles answer 422)",
)
_T = TypeVar("_T")
# Stands in for a hash not fetched yet; results computed with it are thrown away.
_UNKNOWN = bytes(32)


class NotLeader(Exception):
    pass


async def tree_size(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(leaf_index) + 1, 0) FROM registry.tree_leaves"))


async def read_hashes(conn: Connection, indices: list[int]) -> dict[int, bytes]:
    rows = await conn.fetch(
        "SELECT hash_index, hash FROM registry.tree_hashes WHERE hash_index = ANY($1::bigint[])", indices
    )
    found = {int(r["hash_index"]): bytes(r["hash"]) for r in rows}
    missing = [i for i in indices if i not in found]
    if missing:
        raise RuntimeError(f"the tree's stored hashes {missing[:5]} are missing")
    return found


async def with_hashes(conn: Connection, compute: Callable[[merkle.HashReader], _T]) -> _T:
    """`compute(read)` over the stored hashes: run once to learn which it reads (which depends
    only on sizes and indices, never on hash values), then again with them fetched."""
    reader = _FetchingReader()
    while True:
        result = compute(reader.read)
        if not reader.missing:
            return result
        reader.cache.update(await read_hashes(conn, sorted(set(reader.missing))))
        reader.missing.clear()


class _FetchingReader:
    def __init__(self) -> None:
        self.cache: dict[int, bytes] = {}
        self.missing: list[int] = []

    def read(self, indices: Sequence[int]) -> list[bytes]:
        self.missing.extend(i for i in indices if i not in self.cache)
        return [self.cache.get(i, _UNKNOWN) for i in indices]


async def root_of(conn: Connection, size: int) -> bytes:
    """The root of the first `size` leaves, from the stored hashes."""
    return await with_hashes(conn, lambda read: merkle.tree_hash(size, read))


async def integrate_batch(conn: Connection, limit: int, lock: int | None = TREE_LOCK) -> int:
    """Takes up to `limit` queued events into the tree, in one transaction; how many."""
    async with conn.transaction():
        if lock is not None and not await conn.fetchval(HOLDS_LOCK, lock):
            raise NotLeader("the tree's lock is no longer held by this session")
        size = await tree_size(conn)
        rows = await conn.fetch(
            # Each queued event by its position (LATERAL ... OFFSET 0: a nested loop on the
            # events' position index; a plain join let the planner hash the whole log on every
            # batch, 14 ms per batch at 8,000 events in bench/hot.py's pg_stat_statements).
            """SELECT p.position, e.agreement_id, e.sequence, e.envelope
               FROM (SELECT position FROM registry.tree_pending ORDER BY position LIMIT $1) p
               CROSS JOIN LATERAL (
                   SELECT agreement_id, sequence, envelope FROM registry.events
                   WHERE position = p.position OFFSET 0
               ) e
               ORDER BY p.position""",
            limit,
        )
        if not rows:
            return 0
        known = await read_hashes(conn, frontier_indices(size))
        # A leaf's data is its event's Kafka record value: what a consumer holds, hashes alone.
        records = [
            StoredEvent(r["position"], r["agreement_id"], r["sequence"], r["envelope"]).message()
            for r in rows
        ]
        leaves = [merkle.leaf_hash(record) for record in records]
        new = merkle.stored_hashes_for_many(size, records, lambda indices: [known[i] for i in indices])
        first_index = merkle.stored_hash_count(size)
        positions = [int(r["position"]) for r in rows]
        await conn.execute(
            """INSERT INTO registry.tree_leaves (leaf_index, position, leaf_hash)
               SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])""",
            list(range(size, size + len(rows))),
            positions,
            leaves,
        )
        await conn.execute(
            """INSERT INTO registry.tree_hashes (hash_index, hash)
               SELECT * FROM unnest($1::bigint[], $2::bytea[])""",
            list(range(first_index, first_index + len(new))),
            new,
        )
        await conn.execute("DELETE FROM registry.tree_pending WHERE position = ANY($1::bigint[])", positions)
    LEAVES.inc(len(rows))
    # Served in the hash tiles as every leaf, but no entry bundle can hold them (tile_routes.py).
    TOO_LARGE_FOR_BUNDLES.inc(sum(len(record) > tiles.MAX_ENTRY_BYTES for record in records))
    TREE_SIZE.set(size + len(rows))
    return len(rows)


async def sign_checkpoint(conn: Connection, signer: CheckpointSigner) -> tuple[int, str]:
    """The checkpoint of the tree as it is now (stored if new); its size and its signed note."""
    async with conn.transaction(isolation="repeatable_read"):
        size = await tree_size(conn)
        existing = await conn.fetchval("SELECT note FROM registry.checkpoints WHERE tree_size = $1", size)
        if existing is not None:
            return size, str(existing)
        root = await root_of(conn, size)
        note = signer.sign(size, root)
        # Two signers at once (the integrator and an on-demand request) sign the same head:
        # Ed25519 is deterministic, so their notes are the same and one insert is enough.
        await conn.execute(
            """INSERT INTO registry.checkpoints (tree_size, root_hash, note, key_name)
               VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING""",
            size,
            root,
            note,
            signer.name,
        )
    return size, note


class TreeIntegrator:
    def __init__(
        self,
        pool: asyncpg.Pool,
        signer: CheckpointSigner,
        *,
        batch_size: int = 2000,
        poll_seconds: float = 0.2,
        checkpoint_seconds: float = 10.0,
        publish: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> None:
        self.pool = pool
        # Where each new checkpoint goes after it is stored (the checkpoints topic), if anywhere.
        self.publish = publish
        self._published_size = -1
        self.signer = signer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self._checkpointed_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._lead(stop)
            except NotLeader as exc:
                log.warning("tree integrator is no longer the leader", reason=str(exc))
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("tree integrator lost its connection; starting over", error=repr(exc))
            else:
                continue
            IS_LEADER.set(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def _publish(self, size: int, signed: str) -> None:
        """At least once: a checkpoint that could not be published is tried again at the next
        interval (the stored note is the record; the topic only spares witnesses the polling)."""
        assert self.publish is not None
        try:
            await self.publish(size, signed)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("checkpoint not published; trying again later", tree_size=size, error=repr(exc))
            self._checkpointed_at = 0.0
        else:
            self._published_size = size

    async def _lead(self, stop: asyncio.Event) -> None:
        conn = await self.pool.acquire()
        try:
            if not await take_lead(conn, TREE_LOCK, stop):
                return
            IS_LEADER.set(1)
            log.info("tree integrator is the leader")
            while not stop.is_set():
                taken = await integrate_batch(conn, self.batch_size)
                if time.monotonic() - self._checkpointed_at >= self.checkpoint_seconds:
                    size, signed = await sign_checkpoint(conn, self.signer)
                    self._checkpointed_at = time.monotonic()
                    PENDING.set(int(await conn.fetchval("SELECT count(*) FROM registry.tree_pending")))
                    if self.publish is not None and size != self._published_size:
                        await self._publish(size, signed)
                if taken < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_seconds)
        finally:
            IS_LEADER.set(0)
            await self.pool.release(conn)
