"""The components' PostgreSQL roles (docs/adr/0002-database-roles.md).

Each component has a NOLOGIN group role; what each may do is said once, in `privileges.sql`,
which the migrator re-applies after every migration run. A deployment that gives one
DATABASE_URL to everything has none of these roles: then nothing is granted and the one role
does everything, as before.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

Connection = asyncpg.Connection | PoolConnectionProxy

PRIVILEGES = Path(__file__).with_name("privileges.sql")

# The group roles, by component. The migrator has none: it owns the schemas.
GROUP_ROLES = {
    "registry": "coordreg_registry",
    "relay": "coordreg_relay",
    "worker": "coordreg_worker",
    "query": "coordreg_query",
    "audit": "coordreg_audit",
}

# The setting each service reads its own account's URL from, by component: the registry and the
# relay both read REGISTRY_*, the query API and the worker PROJECTIONS_* (the settings classes'
# fields `database_url`, `relay_database_url` and `worker_database_url`). The audit tool and the
# migrator are commands: AUDIT_DATABASE_URL and MIGRATOR_DATABASE_URL.
DATABASE_URL_SETTINGS = {
    "registry": "REGISTRY_DATABASE_URL",
    "relay": "REGISTRY_RELAY_DATABASE_URL",
    "query": "PROJECTIONS_DATABASE_URL",
    "worker": "PROJECTIONS_WORKER_DATABASE_URL",
}


class MissingRoles(RuntimeError):
    """Some of the group roles exist and some do not: the grants would be half applied."""


def privileges_sql(read_schema: str) -> str:
    # read_schema is checked against a plain-identifier pattern by every settings class.
    return PRIVILEGES.read_text(encoding="utf-8").replace("@read_schema@", read_schema)


async def ensure_group_roles(conn: Connection) -> None:
    """Creates the missing group roles (needs CREATEROLE; cluster-wide, so several databases of one
    server may race to create the same role: the loser finds it made)."""
    for role in GROUP_ROLES.values():
        await conn.execute(
            f"""DO $$ BEGIN
                    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                        CREATE ROLE {role} NOLOGIN;
                    END IF;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                END $$"""
        )


async def apply_privileges(conn: Connection, read_schema: str = "projections") -> bool:
    """Grants each group role its privileges, in one transaction; False when the roles do not
    exist (one role for everything)."""
    found = {
        r["rolname"]
        for r in await conn.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(GROUP_ROLES.values())
        )
    }
    if not found:
        return False
    missing = sorted(set(GROUP_ROLES.values()) - found)
    if missing:
        raise MissingRoles(f"the database roles {', '.join(missing)} do not exist (docs/OPERATIONS.md)")
    async with conn.transaction():
        await conn.execute(privileges_sql(read_schema))
    log.info("privileges applied", read_schema=read_schema)
    return True
