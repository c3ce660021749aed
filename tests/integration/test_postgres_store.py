"""The PostgreSQL event store: the port's contract, plus what only a database can prove."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.common.db import create_pool, migrate
from services.registry.adapters.postgres_idempotency import PostgresIdempotencyStore
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.event_store import DocumentClaim, DuplicateDocument
from tests.support.store_contract import EventStoreContract, IdempotencyContract, MakeRecorder, envelopes_for


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=5)
    await migrate(pool, "registry", MIGRATIONS)
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> PostgresEventStore:
    return PostgresEventStore(pool)


class TestPostgresEventStore(EventStoreContract):
    pass


class TestPostgresIdempotency(IdempotencyContract):
    @pytest.fixture
    def recorder(self, pool: asyncpg.Pool) -> MakeRecorder:
        return lambda stale_after: PostgresIdempotencyStore(pool, stale_after)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE registry.events SET envelope = '{}'",
        "UPDATE registry.events SET sequence = sequence + 10",
        "DELETE FROM registry.events",
        "TRUNCATE registry.events",
    ],
)
async def test_events_cannot_be_updated_or_deleted(pool: asyncpg.Pool, statement: str) -> None:
    store = PostgresEventStore(pool)
    await store.append("a-1", 0, envelopes_for("a-1", 0))
    before = await pool.fetch("SELECT * FROM registry.events")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute(statement)
    assert await pool.fetch("SELECT * FROM registry.events") == before


async def test_every_event_gets_its_outbox_row_in_the_same_transaction(pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pool)
    positions = await store.append("a-1", 0, envelopes_for("a-1", 0), DocumentClaim("Bắc Kạn", "01/CTPH"))
    assert await pool.fetchval("SELECT array_agg(position) FROM registry.outbox") == positions
    # A refused append leaves neither an event nor an outbox row nor a claim behind.
    with pytest.raises(DuplicateDocument):
        await store.append("a-2", 0, envelopes_for("a-2", 0), DocumentClaim("Bắc Kạn", "01/CTPH"))
    assert await pool.fetchval("SELECT count(*) FROM registry.events") == 1
    assert await pool.fetchval("SELECT count(*) FROM registry.outbox") == 1


async def test_outbox_insert_failing_rolls_the_events_back(pool: asyncpg.Pool) -> None:
    """If the outbox row cannot be written, the event must not be stored either."""
    store = PostgresEventStore(pool)
    await pool.execute("ALTER TABLE registry.outbox ADD CONSTRAINT refuse_all CHECK (sequence < 0) NOT VALID")
    with pytest.raises(asyncpg.CheckViolationError):
        await store.append("a-1", 0, envelopes_for("a-1", 0))
    assert await pool.fetchval("SELECT count(*) FROM registry.events") == 0
