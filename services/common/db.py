"""PostgreSQL access shared by both services: pools and forward-only SQL migrations."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from services.common.db_roles import apply_privileges

log = structlog.get_logger(__name__)

# A bare connection or one borrowed from a pool: both run the same queries.
Connection = asyncpg.Connection | PoolConnectionProxy

# Serialises concurrent starts of several service instances on one database.
_MIGRATION_LOCK = 0x636F6F72  # "coor"


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary format (a version byte, then the JSON text) so that COPY can carry jsonb too.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + json.dumps(value, ensure_ascii=False).encode("utf-8"),
        decoder=lambda data: json.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def _rollback_if_open(conn: asyncpg.Connection) -> None:
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    schema: str | None = None,
    stateless: bool = False,
) -> asyncpg.Pool:
    """A pool that retries the first connection for a while: the database may still be starting.

    With `schema`, unqualified table names resolve in that schema (read models live in
    `projections`, or in a shadow schema the audit tool rebuilds).

    `stateless`: the pool's users leave no session state behind (no advisory locks, cursors,
    LISTEN or SET outside a transaction), so a released connection is only rolled back if a
    transaction is open, instead of asyncpg's reset query: a round trip per release, which the
    flame graph of the registry under load showed at a tenth of its time
    (bench/results/flame-registry-before.svg, `Connection.reset`).
    """
    server_settings = {"search_path": f'"{schema}", public'} if schema else None
    for attempt in range(60):
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                server_settings=server_settings,
                reset=_rollback_if_open if stateless else None,
            )
            assert pool is not None
            return pool
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            log.warning("database not reachable yet", attempt=attempt, error=str(exc))
            await asyncio.sleep(0.5)
    raise RuntimeError(f"could not connect to PostgreSQL at {redact(dsn)}")


def redact(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn


async def migrate(
    pool: asyncpg.Pool,
    component: str,
    folder: Path,
    schema: str | None = None,
    *,
    privileges: bool = True,
) -> list[str]:
    """Applies the folder's `NNN_name.sql` files not yet applied, each in its own transaction.

    With `schema`, the files run with that schema first on the search_path (created if
    missing), and are recorded per schema: the same files build any number of copies.

    Then the files of the folder's `definitions/` are run, in name order, after every run (also
    one that applied nothing): each holds the current definition of an object the migrations
    made, replaced as a whole (`CREATE OR REPLACE`), so what runs is what that one file says
    (the registry's append function, docs/adr/0008-append-function-in-one-file.md). A copy of
    the folder without `definitions/` (a test migrating part way) keeps what its migrations made.

    Then, with `privileges` and unless `schema` names a copy, the migrator re-applies every
    component's grants (services/common/privileges.sql). A component that connects as its own role, not the
    schema's owner, finds nothing to apply and leaves: its migrations are the migrator's
    (`coordreg-migrate`), and one still pending is an error here.
    """
    base, target = component, schema or component
    if schema is not None and schema != component:
        component = f"{component}@{schema}"
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            # Checked first: a component's own role may read the ledger but not create tables.
            if not await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL"):
                await conn.execute(
                    """CREATE TABLE IF NOT EXISTS public.schema_migrations (
                           component text NOT NULL, name text NOT NULL,
                           applied_at timestamptz NOT NULL DEFAULT now(),
                           PRIMARY KEY (component, name))"""
                )
            done = {
                r["name"]
                for r in await conn.fetch(
                    "SELECT name FROM public.schema_migrations WHERE component = $1", component
                )
            }
            # A handful of small files read once at start: not worth a thread.
            scripts = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.sql"))}  # noqa: ASYNC240
            definitions = [
                p.read_text(encoding="utf-8") for p in sorted((folder / "definitions").glob("*.sql"))
            ]
            pending = [name for name in scripts if name not in done]
            owner = await conn.fetchval(
                """SELECT coalesce(pg_has_role(current_user, n.nspowner, 'USAGE'), true)
                   FROM (SELECT 1) AS one LEFT JOIN pg_namespace AS n ON n.nspname = $1""",
                target,
            )
            if not owner:
                if pending:
                    raise RuntimeError(
                        f"{component}: migrations {', '.join(pending)} are not applied, and this role"
                        f" does not own schema {target!r}; run coordreg-migrate as the migrator first"
                    )
                return applied
            for name in pending:
                sql = scripts[name]
                async with conn.transaction():
                    if schema is not None:
                        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                        await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO public.schema_migrations (component, name) VALUES ($1, $2)",
                        component,
                        name,
                    )
                applied.append(name)
                log.info("migration applied", component=component, migration=name)
            if definitions:
                async with conn.transaction():
                    if schema is not None:
                        await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    for sql in definitions:
                        await conn.execute(sql)
            # Not after a copy's migrations (the audit tool's shadow schemas): those are its own.
            if privileges and schema in (None, base):
                await apply_privileges(conn, target if base != "registry" else "projections")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
