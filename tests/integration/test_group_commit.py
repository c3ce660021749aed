"""Group commit (services/registry/adapters/group_commit.py, `registry.append_command`): concurrent commands
share one transaction, yet each is answered alone, and a batch whose transaction fails leaves
nothing of any of its commands."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.common.db import create_pool, migrate
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.event_store import ConcurrencyError, DocumentClaim, DuplicateDocument
from tests.support.store_contract import envelopes_for


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=2, max_size=8, stateless=True)
    await migrate(pool, "registry", MIGRATIONS)
    yield pool
    await pool.close()


async def test_concurrent_commands_share_a_transaction_and_each_gets_its_own_answer(
    pool: asyncpg.Pool,
) -> None:
    store = PostgresEventStore(pool)
    fresh = [f"agr-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    contested = f"agr-{uuid.uuid4().hex[:8]}"
    document = f"{uuid.uuid4().hex[:6]}/KH-UBND"
    claim = DocumentClaim("Hòa Bình", document, 2023)
    # 30 new streams, 6 signings racing for one stream, 4 for one document number: all at once.
    appends = [store.append(a, 0, envelopes_for(a, 0)) for a in fresh]
    appends += [store.append(contested, 0, envelopes_for(contested, 0)) for _ in range(6)]
    claimants = [f"agr-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    appends += [store.append(a, 0, envelopes_for(a, 0), claim=claim) for a in claimants]
    outcomes = await asyncio.gather(*appends, return_exceptions=True)

    fresh_outcomes, contested_outcomes, claim_outcomes = outcomes[:30], outcomes[30:36], outcomes[36:]
    assert all(isinstance(o, list) and len(o) == 1 for o in fresh_outcomes), fresh_outcomes
    assert sum(isinstance(o, list) for o in contested_outcomes) == 1
    assert sum(isinstance(o, ConcurrencyError) for o in contested_outcomes) == 5
    assert sum(isinstance(o, list) for o in claim_outcomes) == 1
    duplicates = [o for o in claim_outcomes if isinstance(o, DuplicateDocument)]
    assert len(duplicates) == 3
    [winner] = [a for a, o in zip(claimants, claim_outcomes, strict=True) if isinstance(o, list)]
    assert {str(d) for d in duplicates} == {winner}

    rows = await pool.fetch(
        """SELECT e.agreement_id, e.position, o.position IS NOT NULL AS queued
           FROM registry.events e LEFT JOIN registry.outbox o USING (position)
           WHERE e.agreement_id = ANY($1::text[])""",
        [*fresh, contested, *claimants],
    )
    # Each answer is the position the store holds; every event has its outbox row.
    stored = {r["agreement_id"]: r["position"] for r in rows}
    for agreement_id, outcome in zip(fresh, fresh_outcomes, strict=True):
        assert outcome == [stored[agreement_id]]
    assert len(rows) == 32 and all(r["queued"] for r in rows)
    # Fewer transactions than commands: the commands were committed together.
    assert store.writer.transactions < len(appends) // 2


async def test_a_batch_whose_transaction_fails_leaves_nothing_of_any_command(pool: asyncpg.Pool) -> None:
    slow = f"agr-slow-{uuid.uuid4().hex[:6]}"
    # A test-only trigger holds the batch open on one command's outbox row, so that the batch's
    # session can be terminated mid-transaction, after every command's own writes.
    await pool.execute(
        f"""CREATE FUNCTION registry.test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.agreement_id = '{slow}' THEN PERFORM pg_sleep(30); END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_hold AFTER INSERT ON registry.outbox
                FOR EACH ROW EXECUTE FUNCTION registry.test_hold();"""
    )
    try:
        store = PostgresEventStore(pool)
        others = [f"agr-{uuid.uuid4().hex[:8]}" for _ in range(5)]
        # The first call goes out alone; the next ones gather behind it into one batch, with the
        # slow command last of that batch.
        first = asyncio.create_task(store.append(others[0], 0, envelopes_for(others[0], 0)))
        await first
        batch = [asyncio.create_task(store.append(a, 0, envelopes_for(a, 0))) for a in others[1:]]
        batch.append(asyncio.create_task(store.append(slow, 0, envelopes_for(slow, 0))))
        await asyncio.sleep(0)
        for _ in range(200):
            sleeping = await pool.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
            )
            if sleeping is not None:
                break
            await asyncio.sleep(0.05)
        assert sleeping is not None, "the batch never reached the slow command"
        await pool.execute("SELECT pg_terminate_backend($1)", sleeping)
        outcomes = await asyncio.gather(*batch, return_exceptions=True)
        assert all(isinstance(o, BaseException) for o in outcomes), outcomes
        left = await pool.fetchval(
            "SELECT count(*) FROM registry.events WHERE agreement_id = ANY($1::text[])", [*others[1:], slow]
        )
        assert left == 0
        assert (
            await pool.fetchval("SELECT count(*) FROM registry.events WHERE agreement_id = $1", others[0])
            == 1
        )
    finally:
        await pool.execute("DROP TRIGGER test_hold ON registry.outbox; DROP FUNCTION registry.test_hold()")
