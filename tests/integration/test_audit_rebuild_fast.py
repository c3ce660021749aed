"""The fast full rebuild from the store (services/audit/fast_rebuild.py) against the general one.

The store holds what the live worker treats specially, put there the way only a damaged or
hand-edited store would hold it (rows inserted by SQL): an event the domain refuses, an
envelope that does not decode, a gap, a stream stored out of order (an event applied late
resumes the one parked after it); and a succession across party and agreement streams.
Both rebuilds must leave the same read models, the same dead letters, the same counts, and
the shadow the same indexes and constraints as the migrations make. What the fast path
cannot reproduce (an envelope of another stream, text PostgreSQL cannot store) it refuses,
and the rebuild is then the general one.

The equality with the live read models is checked by test_audit_rebuild.py, whose rebuilds
from the store take the fast path.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from coordreg_contracts.commands import ReportProgress, SignAgreement

from services.audit.diff import diff
from services.audit.fast_rebuild import FastPathRefused, rebuild_store_fast
from services.audit.rebuild import RebuildResult, prepare_shadow, rebuild
from services.audit.settings import AuditSettings
from services.common.db import create_pool, migrate
from services.registry import bootstrap
from services.registry.migrations import MIGRATIONS as REGISTRY_MIGRATIONS
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from tests.integration.test_audit_succession import write as write_succession
from tests.support.builders import report_body, sign_body

CTX = CommandContext(Caller.in_process("fast-test"), correlation_id="fast-test", causation_id="fast-test")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        await migrate(pool, "registry", REGISTRY_MIGRATIONS)
        yield pool
    finally:
        await pool.close()


async def stored(pool: asyncpg.Pool, agreement_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT envelope FROM registry.events WHERE agreement_id = $1 ORDER BY sequence", agreement_id
    )
    return [json.loads(r["envelope"]) for r in rows]


async def insert(
    pool: asyncpg.Pool, stream: str, envelope: dict[str, Any], *, row_stream: str | None = None
) -> None:
    """One event straight into the store, as its stream's event `sequence` (the next position)."""
    envelope = {**envelope, "id": str(uuid.uuid4()), "subject": stream}
    if "agreement_id" in envelope["data"]:
        envelope["data"] = {**envelope["data"], "agreement_id": stream}
    await pool.execute(
        """INSERT INTO registry.events (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
           VALUES ($1, $2, $3, $4, now(), $5)""",
        row_stream or stream,
        envelope["sequence"],
        uuid.UUID(envelope["id"]),
        envelope["type"],
        json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    )


async def signed_with_reports(pool: asyncpg.Pool, reports: int) -> str:
    registry = bootstrap.on_postgres(pool)
    signed = await registry.bus.run(SignAgreement.model_validate(sign_body()), CTX)
    for n in range(reports):
        body = report_body(period=str(2023 + n), completion_percent=10 * n)
        await registry.bus.run(ReportProgress.model_validate(body), CTX, signed.agreement_id)
    return str(signed.agreement_id)


async def awkward_store(pool: asyncpg.Pool) -> None:
    """Agreements, their parties' streams, a succession, and streams the applier must dead-letter,
    park or resume."""
    await write_succession(pool)
    for reports in (0, 1, 3):
        template = await signed_with_reports(pool, reports)
    signing, first, second, third = await stored(pool, template)

    # Refused by the domain (signed twice): dead-lettered, so the report after it waits for it, parked.
    refused = str(uuid.uuid4())
    bad = {**signing, "sequence": second["sequence"]}
    for envelope in (signing, first, bad, third):
        await insert(pool, refused, envelope)
    # Not an event of its type: dead-lettered before it reaches the domain.
    malformed = str(uuid.uuid4())
    await insert(pool, malformed, signing)
    await insert(pool, malformed, {**first, "data": {"status": "in_progress"}})
    # A gap: the third report waits for the second, which never comes.
    gapped = str(uuid.uuid4())
    for envelope in (signing, first, third):
        await insert(pool, gapped, envelope)
    # Stored out of order: the second report first (parked), then what it follows, which resumes it.
    resumed = str(uuid.uuid4())
    for envelope in (second, signing, first, third):
        await insert(pool, resumed, envelope)


SCHEMA_SHAPE = {
    "indexes": """SELECT t.relname, i.relname, replace(pg_get_indexdef(i.oid), $1 || '.', '')
                  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                  JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
                  WHERE n.nspname = $1 ORDER BY 1, 2""",
    "constraints": """SELECT conrelid::regclass::text IS NOT NULL, conname, contype, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = $1::regnamespace ORDER BY 2, 3""",
    "columns": """SELECT table_name, column_name, ordinal_position, is_nullable, data_type, column_default
                  FROM information_schema.columns WHERE table_schema = $1 ORDER BY 1, 3""",
}


async def same_shadows(pool: asyncpg.Pool, settings: AuditSettings, fast: str, general: str) -> None:
    compared = await diff(settings, fast, general)
    assert compared.consistent, compared.summary()
    dead = "SELECT topic, partition, record_offset, key, reason, message FROM {}.dead_letters ORDER BY 3"
    assert [tuple(r) for r in await pool.fetch(dead.format(fast))] == [
        tuple(r) for r in await pool.fetch(dead.format(general))
    ]
    for name, query in SCHEMA_SHAPE.items():
        mine = [tuple(r) for r in await pool.fetch(query, fast)]
        theirs = [tuple(r) for r in await pool.fetch(query, general)]
        assert mine == theirs, name


def counted(result: RebuildResult) -> dict[str, int]:
    return dict(vars(result.counts))


async def test_fast_rebuild_equals_the_general_one(pool: asyncpg.Pool, database_url: str) -> None:
    await awkward_store(pool)
    settings = AuditSettings(database_url=database_url, progress_seconds=0)
    general = await rebuild(settings, source="store", schema="shadow_general", fast=False)
    assert not general.fast
    total = await pool.fetchval("SELECT count(*) FROM registry.events")
    c = general.counts
    assert c.read == total and c.dead_lettered == 2 and c.parked == 3 and c.duplicates == 0
    # Everything read was applied (the resumed report counted with the event that resumed it),
    # dead-lettered or left parked.
    assert c.applied + c.dead_lettered + c.parked - 1 == total

    for workers in (1, 2):
        fast = await rebuild(settings, source="store", schema=f"shadow_fast_{workers}", workers=workers)
        assert fast.fast
        assert counted(fast) == counted(general)
        await same_shadows(pool, settings, f"shadow_fast_{workers}", "shadow_general")
    assert await pool.fetchval("SELECT count(*) FROM shadow_general.parked") == 2
    assert await pool.fetchval("SELECT count(*) FROM shadow_general.party_successions") == 1

    # More processes than ranges with events in them: every child process asks, some get nothing.
    await prepare_shadow(settings, "shadow_children", replace=False)
    read, counts = await rebuild_store_fast(database_url, "shadow_children", 3, 0)
    assert read == total
    assert vars(counts) == {**counted(general), "read": 0}
    await same_shadows(pool, settings, "shadow_children", "shadow_general")


async def test_text_the_database_cannot_store_is_rebuilt_the_general_way(
    pool: asyncpg.Pool, database_url: str
) -> None:
    settings = AuditSettings(database_url=database_url, progress_seconds=0)
    signing, report = await stored(pool, await signed_with_reports(pool, 1))
    # Decoded from the JSON escape: the general path dead-letters that one event, record by
    # record, when its rows are written.
    nul = str(uuid.uuid4())
    await insert(pool, nul, {**signing, "data": {**signing["data"], "title": "Chương trình \x00"}})
    await insert(pool, nul, report)
    general = await rebuild(settings, source="store", schema="shadow_general", fast=False)
    # The signing; the report after it then waits for it.
    assert (general.counts.dead_lettered, general.counts.parked) == (1, 1)
    with pytest.raises(FastPathRefused, match="text PostgreSQL cannot store"):
        await prepare_shadow(settings, "shadow_refused", replace=False)
        await rebuild_store_fast(database_url, "shadow_refused", 1, 0)
    rebuilt = await rebuild(settings, source="store", schema="shadow_rebuilt")
    assert not rebuilt.fast and counted(rebuilt) == counted(general)
    await same_shadows(pool, settings, "shadow_rebuilt", "shadow_general")


async def test_an_envelope_in_another_streams_rows_is_rebuilt_the_general_way(
    pool: asyncpg.Pool, database_url: str
) -> None:
    settings = AuditSettings(database_url=database_url, progress_seconds=0)
    template = await signed_with_reports(pool, 1)
    _, report = await stored(pool, template)
    # The applier keys an event by its envelope's subject, whichever rows hold it.
    await insert(pool, template, {**report, "sequence": 3}, row_stream=str(uuid.uuid4()))
    # One worker each: with several, which of the two streams' rows reach the applier first
    # depends on how the random stream ids spread over the workers, and so do the counts.
    general = await rebuild(settings, source="store", schema="shadow_general", fast=False, workers=1)
    assert general.counts.read == 5
    with pytest.raises(FastPathRefused, match="another subject"):
        await prepare_shadow(settings, "shadow_refused", replace=False)
        await rebuild_store_fast(database_url, "shadow_refused", 1, 0)
    rebuilt = await rebuild(settings, source="store", schema="shadow_rebuilt", workers=1)
    assert not rebuilt.fast and counted(rebuilt) == counted(general)
    await same_shadows(pool, settings, "shadow_rebuilt", "shadow_general")


async def test_a_party_named_twice_in_an_obligation_is_rebuilt_the_general_way(
    pool: asyncpg.Pool, database_url: str
) -> None:
    settings = AuditSettings(database_url=database_url, progress_seconds=0)
    signing, report = await stored(pool, await signed_with_reports(pool, 1))
    lead = signing["data"]["obligations"][0]["lead_party_id"]
    # The domain refuses it, but evolve trusts the log: the lead listed among the supporters too,
    # two `party_obligations` rows with one key, which the database refuses.
    change = {
        "op": "revise_obligation",
        "obligation_id": signing["data"]["obligations"][0]["obligation_id"],
        "supporting_party_ids": [lead],
        "cadence": None,
        "description": None,
        "lead_party_id": None,
        "title": None,
    }
    amended = {
        **report,
        "sequence": 2,
        "type": "vn.gov.coordination.AgreementAmended.v1",
        "data": {
            "schema_version": 1,
            "document_number": "1/QĐ-MTTQ",
            "reason": "Sửa danh sách phối hợp",
            "effective_on": "2024-03-01",
            "changes": [change],
        },
    }
    twice = str(uuid.uuid4())
    for envelope in (signing, amended, {**report, "sequence": 3}):
        await insert(pool, twice, envelope)
    general = await rebuild(settings, source="store", schema="shadow_general", fast=False)
    assert general.counts.dead_lettered == 1
    with pytest.raises(FastPathRefused, match="names a party twice"):
        await prepare_shadow(settings, "shadow_refused", replace=False)
        await rebuild_store_fast(database_url, "shadow_refused", 1, 0)
    rebuilt = await rebuild(settings, source="store", schema="shadow_rebuilt")
    assert not rebuilt.fast and counted(rebuilt) == counted(general)
    await same_shadows(pool, settings, "shadow_rebuilt", "shadow_general")
