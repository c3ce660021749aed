"""Helpers shared by the audit commands: schema names, shadow metadata, instants."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from coordreg_contracts.patterns import ISO_DATE

from services.audit.settings import SCHEMA_PATTERN
from services.common.db import Connection
from services.common.patterns import full_match

# Failures of the infrastructure (retry the whole command), as opposed to one bad record.
INFRASTRUCTURE_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
RESERVED_SCHEMAS = frozenset({"public", "registry", "information_schema"})
# The tool that built a shadow writes what it built into the schema's comment.
META_TOOL = "services.audit"


class AuditError(Exception):
    """A refusal or a failure the command reports in one line (exit code 2)."""


def check_schema_name(name: str, live_schema: str) -> str:
    if not full_match(SCHEMA_PATTERN, name):
        raise AuditError(f"schema name {name!r} must match {SCHEMA_PATTERN}")
    if name == live_schema or name in RESERVED_SCHEMAS or name.startswith("pg_"):
        raise AuditError(f"schema {name!r} is not a shadow: refusing to touch it")
    return name


def ident(name: str) -> str:
    """A schema or table name quoted for SQL (names are checked against SCHEMA_PATTERN first)."""
    return '"' + name.replace('"', '""') + '"'


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")


def parse_instant(text: str) -> datetime:
    """An RFC 3339 timestamp, or a date `YYYY-MM-DD` meaning the END of that day (UTC).

    The result is the inclusive upper bound: events with `time <= result` count.
    """
    text = text.strip()
    if full_match(ISO_DATE, text):
        day = date.fromisoformat(text)
        return datetime.combine(day + timedelta(days=1), time(), UTC) - timedelta(microseconds=1)
    try:
        instant = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise AuditError(f"{text!r} is neither an RFC 3339 timestamp nor a date YYYY-MM-DD") from None
    if instant.tzinfo is None:
        raise AuditError(f"{text!r} has no time zone: write Z or an offset such as +07:00")
    return instant.astimezone(UTC)


def event_time(envelope: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(envelope["time"])).astimezone(UTC)


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def schema_exists(conn: Connection, schema: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema))


async def schema_relations(conn: Connection, schema: str) -> int:
    count = await conn.fetchval(
        """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1""",
        schema,
    )
    return int(count or 0)


async def read_meta(conn: Connection, schema: str) -> dict[str, Any] | None:
    text = await conn.fetchval(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1", schema
    )
    if not text:
        return None
    try:
        meta = json.loads(text)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("tool") == META_TOOL else None


async def write_meta(conn: Connection, schema: str, meta: dict[str, Any]) -> None:
    statement = await conn.fetchval(
        "SELECT format('COMMENT ON SCHEMA %I IS %L', $1::text, $2::text)",
        schema,
        json.dumps({"tool": META_TOOL, **meta}, ensure_ascii=False, sort_keys=True),
    )
    await conn.execute(statement)


def migration_component(schema: str) -> str:
    """How `services.common.db.migrate` records the read-model migrations of a schema."""
    return "projections" if schema == "projections" else f"projections@{schema}"
