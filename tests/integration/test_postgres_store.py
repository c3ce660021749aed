"""The PostgreSQL event store: the port's contract, plus what only a database can prove."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from coordreg_contracts.commands import ReportProgress
from coordreg_contracts.envelope import Envelope, canonical_json

from services.agreement.state import AgreementState, fold
from services.common.db import create_pool, migrate
from services.registry.adapters.postgres_idempotency import PostgresIdempotencyStore
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.domain.decide import StoreFacts, decide
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.bus import seal_events, utc_now
from services.registry.service_layer.event_store import DocumentClaim, DuplicateDocument
from tests.support.builders import report_body
from tests.support.store_contract import (
    CTX,
    EventStoreContract,
    IdempotencyContract,
    MakeRecorder,
    envelopes_for,
)


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
    positions = await store.append(
        "a-1", 0, envelopes_for("a-1", 0), DocumentClaim("Bắc Kạn", "01/CTPH", 2023)
    )
    assert await pool.fetchval("SELECT array_agg(position) FROM registry.outbox") == positions
    # A refused append leaves neither an event nor an outbox row nor a claim behind.
    with pytest.raises(DuplicateDocument):
        await store.append("a-2", 0, envelopes_for("a-2", 0), DocumentClaim("Bắc Kạn", "01/CTPH", 2023))
    assert await pool.fetchval("SELECT count(*) FROM registry.events") == 1
    assert await pool.fetchval("SELECT count(*) FROM registry.outbox") == 1


async def test_outbox_insert_failing_rolls_the_events_back(pool: asyncpg.Pool) -> None:
    """If the outbox row cannot be written, the event must not be stored either."""
    store = PostgresEventStore(pool)
    await pool.execute("ALTER TABLE registry.outbox ADD CONSTRAINT refuse_all CHECK (sequence < 0) NOT VALID")
    with pytest.raises(asyncpg.CheckViolationError):
        await store.append("a-1", 0, envelopes_for("a-1", 0))
    assert await pool.fetchval("SELECT count(*) FROM registry.events") == 0


HOA_BINH_2018 = ("Hòa Bình", "25/NDPH-MTTQ-HCTĐ", "2018-03-23")
HOA_BINH_2023 = ("Hòa Bình", "01/CTPH-MTTQ-NHCSXH", "2023-04-25")
LAO_CAI_2019 = ("Lào Cai", "25/NDPH-MTTQ-HCTĐ", "2019-12-31")


async def _sign_the_way_002_did(pool: asyncpg.Pool, agreement_id: str, signing: tuple[str, str, str]) -> None:
    """A signing as the store wrote it before migration 003: events, and a claim without a year."""
    locality, document_number, signed_on = signing
    envelopes = envelopes_for(
        agreement_id, 0, locality=locality, document_number=document_number, signed_on=signed_on
    )
    # A second event, so that the backfill has to pick the signing out of the agreement's events.
    report = seal_events(
        decide(
            ReportProgress.model_validate(report_body()), fold_signing(envelopes), StoreFacts(agreement_id)
        ),
        stream_id=agreement_id,
        version=1,
        prevhash=envelopes[-1].hash,
        context=CTX,
        recorded_at=utc_now,
        new_id=lambda: str(uuid.uuid4()),
    )
    async with pool.acquire() as conn, conn.transaction():
        for envelope in [*envelopes, *report]:
            await conn.execute(
                """INSERT INTO registry.events (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
                   VALUES ($1, $2, $3::uuid, $4, $5, $6)""",
                agreement_id,
                envelope.sequence,
                envelope.id,
                envelope.type,
                datetime.fromisoformat(envelope.time),
                canonical_json(envelope.without_position()).decode("utf-8"),
            )
        await conn.execute(
            "INSERT INTO registry.document_numbers (locality, document_number, agreement_id) VALUES ($1, $2, $3)",
            " ".join(locality.split()).casefold(),
            document_number,
            agreement_id,
        )


def fold_signing(envelopes: list[Envelope]) -> AgreementState:
    state = fold([envelope.event() for envelope in envelopes])
    assert state is not None
    return state


def _before_003(tmp_path: Path) -> Path:
    """The registry's migrations as they were before 003."""
    for script in ("001_event_store.sql", "002_idempotency.sql"):
        (tmp_path / script).write_text((MIGRATIONS / script).read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


async def test_migration_003_gives_existing_claims_the_year_of_their_signing(
    database_url: str, tmp_path: Path
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=3)
    try:
        assert await migrate(pool, "registry", _before_003(tmp_path)) == [
            "001_event_store.sql",
            "002_idempotency.sql",
        ]
        for agreement_id, signing in (
            ("a-2018", HOA_BINH_2018),
            ("a-2023", HOA_BINH_2023),
            ("a-lc", LAO_CAI_2019),
        ):
            await _sign_the_way_002_did(pool, agreement_id, signing)
        # 003 onwards, in order; later migrations (009 onwards) follow, whatever they are.
        assert (await migrate(pool, "registry", MIGRATIONS))[:6] == [
            "003_document_numbers_per_year.sql",
            "004_party_directory.sql",
            "005_append_function.sql",
            "006_snapshots.sql",
            "007_outbox_trace_context.sql",
            "008_transparency_log.sql",
        ]
        rows = await pool.fetch(
            "SELECT locality, year, document_number, agreement_id FROM registry.document_numbers"
        )
        assert {tuple(r) for r in rows} == {
            ("hòa bình", 2018, "25/NDPH-MTTQ-HCTĐ", "a-2018"),
            ("hòa bình", 2023, "01/CTPH-MTTQ-NHCSXH", "a-2023"),
            ("lào cai", 2019, "25/NDPH-MTTQ-HCTĐ", "a-lc"),
        }
        assert await pool.fetchval(
            """SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE i.indrelid = 'registry.document_numbers'::regclass AND i.indisprimary"""
        ) == ["locality", "year", "document_number"]
        # The claims carried over hold in their year, and only there.
        store = PostgresEventStore(pool)
        with pytest.raises(DuplicateDocument) as caught:
            await store.append(
                "a-again", 0, envelopes_for("a-again", 0), DocumentClaim(" HÒA BÌNH", HOA_BINH_2018[1], 2018)
            )
        assert caught.value.agreement_id == "a-2018"
        await store.append(
            "a-2024", 0, envelopes_for("a-2024", 0), DocumentClaim("Hòa Bình", HOA_BINH_2018[1], 2024)
        )
        assert await pool.fetchval("SELECT count(*) FROM registry.document_numbers") == 4
    finally:
        await pool.close()


async def test_migration_003_refuses_a_claim_without_its_signing(database_url: str, tmp_path: Path) -> None:
    """No year is guessed: the migration fails and leaves the table as it was."""
    pool = await create_pool(database_url, min_size=1, max_size=3)
    try:
        await migrate(pool, "registry", _before_003(tmp_path))
        await _sign_the_way_002_did(pool, "a-2018", HOA_BINH_2018)
        await pool.execute(
            "INSERT INTO registry.document_numbers (locality, document_number, agreement_id)"
            " VALUES ('sơn la', '7/KH-UBND', 'a-nowhere')"
        )
        with pytest.raises(asyncpg.NotNullViolationError):
            await migrate(pool, "registry", MIGRATIONS)
        columns = await pool.fetch(
            """SELECT column_name FROM information_schema.columns
               WHERE table_schema = 'registry' AND table_name = 'document_numbers'"""
        )
        assert {c["column_name"] for c in columns} == {"locality", "document_number", "agreement_id"}
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM public.schema_migrations WHERE name = '003_document_numbers_per_year.sql'"
            )
            == 0
        )
    finally:
        await pool.close()
