"""What runs is the definition file (docs/adr/0008-append-function-in-one-file.md):
`registry.append_command` is services/registry/migrations/definitions/append_command.sql, on a
database built from the migrations and again after a run that applied nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.common.db import create_pool, migrate
from services.registry.migrations import MIGRATIONS

DEFINITION = MIGRATIONS / "definitions" / "append_command.sql"


def _body() -> str:
    """The function's body as the file writes it (between its `$$`)."""
    found = re.search(r"\$\$(.*)\$\$", DEFINITION.read_text(encoding="utf-8"), re.DOTALL)
    assert found is not None
    return found.group(1)


async def _running(pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow(
        """SELECT prosrc, prosecdef, proconfig FROM pg_proc
           WHERE oid = 'registry.append_command(jsonb)'::regprocedure"""
    )
    assert row is not None
    return row


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_the_running_function_is_the_definition_file(pool: asyncpg.Pool) -> None:
    assert "009_event_signatures.sql" in await migrate(pool, "registry", MIGRATIONS)
    running = await _running(pool)
    assert running["prosrc"] == _body()
    # Not 009's body, which the migrations left before the definition replaced it.
    assert "'stream_id'" in running["prosrc"] and "e->>'a'" not in running["prosrc"]
    assert running["prosecdef"] is True
    assert running["proconfig"] == ["search_path=pg_catalog, pg_temp"]


async def test_a_run_that_applies_nothing_puts_the_definition_back(pool: asyncpg.Pool) -> None:
    await migrate(pool, "registry", MIGRATIONS)
    await pool.execute(
        """CREATE OR REPLACE FUNCTION registry.append_command(cmd jsonb) RETURNS jsonb
           LANGUAGE sql AS $$ SELECT '{"error": "failed"}'::jsonb $$"""
    )
    assert await migrate(pool, "registry", MIGRATIONS) == []
    running = await _running(pool)
    assert running["prosrc"] == _body()
    assert running["prosecdef"] is True
