"""What a rebuild counts and dead-letters, shared by the batch path (services/audit/rebuild.py)
and the fast path (services/audit/fast_rebuild.py)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.db import Connection
from services.projections.readmodel.apply import ApplyOutcome

# The dead letters' topic of an event read from the store, not from Kafka.
STORE_ORIGIN = "(event store)"


@dataclass
class Counts:
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    dead_lettered: int = 0
    skipped_after_as_of: int = 0

    def add(self, other: Counts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class Item:
    """One message to apply, and where it came from (for a dead letter)."""

    message: bytes
    topic: str
    partition: int
    offset: int
    key: bytes | None
    # `--as-of` only: the sequence its stream must stand at first (events left out before it).
    follows: int | None = None
    subject: str = ""


async def dead_letter(conn: Connection, item: Item, exc: Exception) -> None:
    await conn.execute(
        """INSERT INTO dead_letters (topic, partition, record_offset, key, reason, message)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
        item.topic,
        item.partition,
        item.offset,
        item.key.decode("utf-8", "replace") if item.key else None,
        f"{type(exc).__name__}: {exc}"[:2000],
        item.message,
    )


def count_outcome(counts: Counts, outcome: ApplyOutcome, resumed: int) -> None:
    if outcome is ApplyOutcome.APPLIED:
        counts.applied += 1
    elif outcome is ApplyOutcome.DUPLICATE:
        counts.duplicates += 1
    else:
        counts.parked += 1
    counts.applied += resumed
