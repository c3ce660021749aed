"""The transparency log's reads and the witnesses' cosignatures, in SQL (migration 008): what the
log's routes (services/registry/entrypoints/log_routes.py) ask of the database. The tree itself
is kept by `tree_integrator.py`."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.common.db import Connection


async def note_with_cosignatures(conn: Connection, size: int, note: str) -> str:
    """A stored checkpoint's note with every cosignature handed in for it (witnesses in order)."""
    lines = await conn.fetch(
        "SELECT signature FROM registry.cosignatures WHERE tree_size = $1 ORDER BY witness", size
    )
    return note + "".join(str(r["signature"]) for r in lines)


@dataclass(frozen=True)
class ServedCheckpoint:
    """A checkpoint as served: its note with the cosignatures, and when the log signed it."""

    note: str
    issued_at: dt.datetime


async def latest_checkpoint(conn: Connection) -> ServedCheckpoint | None:
    """The latest signed checkpoint with its cosignatures, or None before the first."""
    row = await conn.fetchrow(
        "SELECT tree_size, note, issued_at FROM registry.checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    if row is None:
        return None
    text = await note_with_cosignatures(conn, row["tree_size"], row["note"])
    return ServedCheckpoint(text, row["issued_at"])


async def checkpoint_note(conn: Connection, size: int) -> str | None:
    """The log's note of the checkpoint of `size`, as it signed it (no cosignatures), or None."""
    note: str | None = await conn.fetchval("SELECT note FROM registry.checkpoints WHERE tree_size = $1", size)
    return note


async def checkpoint(conn: Connection, size: int) -> ServedCheckpoint | None:
    """The checkpoint of `size` with its cosignatures, or None when none was signed."""
    row = await conn.fetchrow("SELECT note, issued_at FROM registry.checkpoints WHERE tree_size = $1", size)
    if row is None:
        return None
    return ServedCheckpoint(await note_with_cosignatures(conn, size, row["note"]), row["issued_at"])


async def event_leaf(
    conn: Connection, event_id: uuid.UUID | None, position: int | None
) -> asyncpg.Record | None:
    """An event by id or position: its `position`, `event_id`, and its `leaf_index` and
    `leaf_hash` (None while the event is not in the tree yet); None when there is no such event."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT l.leaf_index, l.leaf_hash, e.position, e.event_id FROM registry.events e
           LEFT JOIN registry.tree_leaves l ON l.position = e.position
           WHERE e.event_id = $1 OR e.position = $2""",
        event_id,
        position,
    )
    return row


async def leaves(conn: Connection, start: int, end: int, budget: int) -> Sequence[asyncpg.Record]:
    """Leaves `start` (inclusive) to `end` (exclusive) with their events, stopped by the database
    once the envelopes' running total of bytes passes `budget` (the first always; ADR 0005)."""
    rows: Sequence[asyncpg.Record] = await conn.fetch(
        """SELECT leaf_index, leaf_hash, position, agreement_id, sequence, event_id, envelope FROM (
               SELECT l.leaf_index, l.leaf_hash, e.position, e.agreement_id, e.sequence, e.event_id,
                      e.envelope,
                      coalesce(sum(octet_length(e.envelope)) OVER (
                          ORDER BY l.leaf_index ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                          AS before
               FROM registry.tree_leaves l
               -- A lookup by position per leaf (OFFSET 0: not a hash of the whole log).
               CROSS JOIN LATERAL (
                   SELECT position, agreement_id, sequence, event_id, envelope FROM registry.events
                   WHERE position = l.position OFFSET 0
               ) e
               WHERE l.leaf_index >= $1 AND l.leaf_index < $2
           ) range
           WHERE before < $3 OR before = 0
           ORDER BY leaf_index""",
        start,
        end,
        budget,
    )
    return rows


async def add_cosignatures(conn: Connection, size: int, signatures: Sequence[tuple[str, str]]) -> None:
    """(witness, signature line) for the checkpoint of `size`; a witness's second one is ignored."""
    for witness, line in signatures:
        await conn.execute(
            """INSERT INTO registry.cosignatures (tree_size, witness, signature) VALUES ($1, $2, $3)
               ON CONFLICT (tree_size, witness) DO NOTHING""",
            size,
            witness,
            line,
        )
