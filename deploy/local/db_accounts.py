"""A PostgreSQL login per component, for the local stacks and the tests (docs/adr/0002-database-roles.md).

The server's administrator (the local `postgres` superuser) creates the group roles, one login
role per component in its group, with a password generated at first start and kept in a file
under `.local` (mode 0600; nothing secret is committed), and gives the database to the
migrator. `coordreg-migrate` then builds the schemas as the migrator and grants each group
what services/common/privileges.sql says.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.common.db_roles import DATABASE_URL_SETTINGS, GROUP_ROLES, ensure_group_roles
from services.migrate_main import MigratorSettings
from services.migrate_main import run as migrate_all

MIGRATOR = "coordreg_migrator"
# The login role of each component (the migrator's is its own: it owns, it needs no group).
LOGIN_ROLES = {
    "migrator": MIGRATOR,
    **{component: f"{group}_app" for component, group in GROUP_ROLES.items()},
}


def load_passwords(path: Path) -> dict[str, str]:
    """The components' passwords kept in `path`, generating (and keeping) those missing."""
    kept: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    passwords = {component: kept.get(component) or secrets.token_urlsafe(24) for component in LOGIN_ROLES}
    if passwords != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(passwords, file, indent=2)
    return passwords


def generated_passwords() -> dict[str, str]:
    """Passwords for one test session, kept nowhere."""
    return {component: secrets.token_urlsafe(24) for component in LOGIN_ROLES}


def _split(url: str) -> tuple[str, str, str, str, str]:
    """(scheme, user info, hosts, database, query) of a postgresql:// URL."""
    scheme, rest = url.split("://", 1)
    rest, _, query = rest.partition("?")
    authority, _, database = rest.partition("/")
    userinfo, _, hosts = authority.rpartition("@")
    return scheme, userinfo, hosts, database or "postgres", query


def _join(scheme: str, userinfo: str, hosts: str, database: str, query: str) -> str:
    return f"{scheme}://{userinfo + '@' if userinfo else ''}{hosts}/{database}" + (
        f"?{query}" if query else ""
    )


def account_url(url: str, user: str, password: str) -> str:
    """`url` (the same servers and database) as another user."""
    scheme, _, hosts, database, query = _split(url)
    return _join(scheme, f"{user}:{password}", hosts, database, query)


def with_database(url: str, database: str) -> str:
    scheme, userinfo, hosts, _, query = _split(url)
    return _join(scheme, userinfo, hosts, database, query)


def database_of(url: str) -> str:
    return _split(url)[3]


@dataclass(frozen=True)
class DatabaseAccounts:
    """Each component's database URL (migrator, registry, relay, worker, query, audit)."""

    urls: Mapping[str, str]

    def env(self, *components: str) -> dict[str, str]:
        """The variables that give these services (all four when none is named) their own accounts,
        and nothing more: a process is not handed another component's password."""
        return {DATABASE_URL_SETTINGS[c]: self.urls[c] for c in components or DATABASE_URL_SETTINGS}


# A database the services built before they had roles (a `.local` folder of an earlier `make
# run`): its schemas and everything in them are handed to the migrator, so that it can apply
# the next migrations and the grants. A no-op once done.
ADOPT = f"""
DO $$
DECLARE
    item record;
BEGIN
    IF to_regclass('public.schema_migrations') IS NOT NULL THEN
        ALTER TABLE public.schema_migrations OWNER TO {MIGRATOR};
    END IF;
    FOR item IN
        SELECT format('ALTER SCHEMA %I OWNER TO {MIGRATOR}', n.nspname) AS statement
        FROM pg_namespace n WHERE n.nspname IN ('registry', 'projections')
        UNION ALL
        SELECT format('ALTER TABLE %I.%I OWNER TO {MIGRATOR}', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('registry', 'projections') AND c.relkind IN ('r', 'p', 'v', 'm')
        UNION ALL
        SELECT format('ALTER SEQUENCE %I.%I OWNER TO {MIGRATOR}', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('registry', 'projections') AND c.relkind = 'S'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
        UNION ALL
        SELECT format('ALTER FUNCTION %s OWNER TO {MIGRATOR}', p.oid::regprocedure)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('registry', 'projections')
    LOOP
        EXECUTE item.statement;
    END LOOP;
END $$;
"""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def ensure_accounts(admin_url: str, passwords: Mapping[str, str]) -> DatabaseAccounts:
    """As the administrator of `admin_url`'s server: the roles, their passwords, and the database
    (the one `admin_url` names, created if missing) owned by the migrator. Idempotent."""
    database = database_of(admin_url)
    conn = await asyncpg.connect(with_database(admin_url, "postgres"))
    try:
        await ensure_group_roles(conn)
        for component, login in LOGIN_ROLES.items():
            # Cluster-wide: a concurrent creation elsewhere (another test database) is no error.
            await conn.execute(
                f"""DO $$ BEGIN
                        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{login}') THEN
                            CREATE ROLE {login} LOGIN;
                        END IF;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END $$"""
            )
            await conn.execute(f"ALTER ROLE {login} LOGIN PASSWORD {_literal(passwords[component])}")
            if component in GROUP_ROLES:
                await conn.execute(f"GRANT {GROUP_ROLES[component]} TO {login}")
        # `coordreg-audit swap` runs as the migrator and takes over the shadow the audit role built.
        await conn.execute(f"GRANT {LOGIN_ROLES['audit']} TO {MIGRATOR}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
        await conn.execute(f'ALTER DATABASE "{database}" OWNER TO {MIGRATOR}')
    finally:
        await conn.close()
    target = await asyncpg.connect(admin_url)
    try:
        await target.execute(ADOPT)
    finally:
        await target.close()
    return DatabaseAccounts(
        {
            component: account_url(admin_url, login, passwords[component])
            for component, login in LOGIN_ROLES.items()
        }
    )


async def prepare_database(
    admin_url: str, passwords: Mapping[str, str], read_schema: str = "projections"
) -> DatabaseAccounts:
    """The accounts, then the schemas built and granted by the migrator (`coordreg-migrate`)."""
    accounts = await ensure_accounts(admin_url, passwords)
    await migrate_all(MigratorSettings(database_url=accounts.urls["migrator"], read_schema=read_schema))
    return accounts
