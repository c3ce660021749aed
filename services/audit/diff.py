"""`diff`: a rebuilt shadow against the live read models, table by table, row by row.

Rows are matched on each table's primary key; a row only in the shadow is MISSING from
the live read models, a row only in the live ones is EXTRA there, and a row in both with
other values DIFFERS (each differing column with both values). Bookkeeping timestamps
(`updated_at`, `applied_at`, `parked_at`) say when a row was written, not what it says,
and are ignored.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.audit.common import AuditError, ident, schema_exists
from services.audit.settings import AuditSettings
from services.common.db import Connection


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    ignored: frozenset[str] = frozenset()


TABLES = (
    Table("agreements", ("agreement_id",), frozenset({"updated_at"})),
    Table("party_obligations", ("party_id", "agreement_id", "obligation_id")),
    Table("reports", ("agreement_id", "obligation_id", "party_id", "period")),
    Table("party_history", ("party_id", "position")),
    Table("streams", ("agreement_id",)),
    Table("applied", ("position",), frozenset({"applied_at"})),
    Table("parked", ("agreement_id", "sequence"), frozenset({"parked_at"})),
    # The party directory's read models (projections migration 004, decision 19).
    Table("parties", ("party_id",)),
    Table("party_successions", ("predecessor_party_id", "successor_party_id")),
    Table("party_transfers", ("party_id", "agreement_id", "obligation_id")),
)
MISSING = "missing"  # in the shadow, not in the live read models
EXTRA = "extra"  # in the live read models, not in the shadow
DIFFERS = "differs"


@dataclass(frozen=True)
class Difference:
    table: str
    kind: str
    key: dict[str, Any]
    # column -> (shadow value, live value); for a missing/extra row, the row itself.
    columns: dict[str, tuple[Any, Any]]
    stream_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "kind": self.kind,
            "key": self.key,
            "columns": {c: {"shadow": s, "live": v} for c, (s, v) in self.columns.items()},
        }

    def line(self, against: str) -> str:
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        if self.kind == MISSING:
            return f"{self.table} [{key}]: missing from {against}"
        if self.kind == EXTRA:
            return f"{self.table} [{key}]: extra in {against} (not in the shadow)"
        cols = "; ".join(f"{c}: shadow={_show(s)} {against}={_show(v)}" for c, (s, v) in self.columns.items())
        return f"{self.table} [{key}]: {cols}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class DiffReport:
    schema: str
    against: str
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (shadow rows, live rows)
    differences: list[Difference] = field(default_factory=list)
    schema_problems: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.differences and not self.schema_problems

    def counts(self) -> dict[str, dict[str, int]]:
        counted: dict[str, Counter[str]] = {t.name: Counter() for t in TABLES}
        for d in self.differences:
            counted[d.table][d.kind] += 1
        return {t: {k: c[k] for k in (MISSING, EXTRA, DIFFERS)} for t, c in counted.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "diff",
            "schema": self.schema,
            "against": self.against,
            "consistent": self.consistent,
            "rows": {t: {"shadow": s, "live": v} for t, (s, v) in self.rows.items()},
            "counts": self.counts(),
            "schema_problems": self.schema_problems,
            "differences": [d.to_json() for d in self.differences],
        }

    def summary(self, limit: int = 20) -> str:
        lines = [f"diff {self.schema} (shadow) against {self.against} (live)"]
        counts = self.counts()
        for table, (shadow_rows, live_rows) in self.rows.items():
            c = counts[table]
            state = (
                "identical"
                if not any(c.values())
                else f"{c[MISSING]} missing, {c[EXTRA]} extra, {c[DIFFERS]} differ"
            )
            lines.append(f"  {table:<18} {shadow_rows:>9,} / {live_rows:>9,} rows  {state}")
        lines.extend(f"  SCHEMA: {p}" for p in self.schema_problems)
        if self.consistent:
            lines.append("CONSISTENT: the live read models equal the rebuild")
            return "\n".join(lines)
        lines.append(f"DIFFERENT: {len(self.differences)} row difference(s)")
        shown: Counter[str] = Counter()
        for d in self.differences:
            shown[d.table] += 1
            if shown[d.table] <= limit:
                lines.append(f"  {d.line(self.against)}")
            elif shown[d.table] == limit + 1:
                lines.append(f"  … more in {d.table} (see --json)")
        return "\n".join(lines)


async def _columns(conn: Connection, schema: str, table: str) -> list[str]:
    rows = await conn.fetch(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position""",
        schema,
        table,
    )
    return [r["column_name"] for r in rows]


async def compare(
    conn: Connection, schema: str, against: str, *, skip_streams: Collection[str] = ()
) -> DiffReport:
    """Compares on one connection (inside the caller's transaction, if any)."""
    report = DiffReport(schema, against)
    for name in (schema, against):
        if not await schema_exists(conn, name):
            raise AuditError(f"schema {name!r} does not exist")
    for table in TABLES:
        mine = await _columns(conn, schema, table.name)
        theirs = await _columns(conn, against, table.name)
        if not mine or not theirs:
            report.schema_problems.append(
                f"table {table.name} is missing from {schema if not mine else against}"
            )
            continue
        if set(mine) != set(theirs):
            report.schema_problems.append(
                f"table {table.name} has other columns: {sorted(set(mine) ^ set(theirs))}"
            )
        compared = [c for c in mine if c in theirs and c not in table.ignored and c not in table.key]
        join = " AND ".join(f"s.{ident(k)} = l.{ident(k)}" for k in table.key)
        first = ident(table.key[0])
        distinct = (
            f"ROW({', '.join(f's.{ident(c)}' for c in compared)}) IS DISTINCT FROM"
            f" ROW({', '.join(f'l.{ident(c)}' for c in compared)})"
            if compared
            else "false"
        )
        order = ", ".join(f"coalesce(s.{ident(k)}, l.{ident(k)})" for k in table.key)
        rows = await conn.fetch(
            f"""SELECT CASE WHEN s.{first} IS NULL THEN NULL ELSE to_jsonb(s) END AS shadow,
                       CASE WHEN l.{first} IS NULL THEN NULL ELSE to_jsonb(l) END AS live
                FROM {ident(schema)}.{ident(table.name)} s
                FULL JOIN {ident(against)}.{ident(table.name)} l ON {join}
                WHERE s.{first} IS NULL OR l.{first} IS NULL OR {distinct}
                ORDER BY {order}"""
        )
        counts = await conn.fetchrow(
            f"""SELECT (SELECT count(*) FROM {ident(schema)}.{ident(table.name)}) AS shadow,
                       (SELECT count(*) FROM {ident(against)}.{ident(table.name)}) AS live"""
        )
        assert counts is not None
        report.rows[table.name] = (int(counts["shadow"]), int(counts["live"]))
        for row in rows:
            difference = _difference(table, _json(row["shadow"]), _json(row["live"]))
            if difference.stream_id in skip_streams:
                continue
            report.differences.append(difference)
    return report


def _json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):  # a connection without the jsonb codec
        decoded: dict[str, Any] = json.loads(value)
        return decoded
    return dict(value)


def _difference(table: Table, shadow: dict[str, Any] | None, live: dict[str, Any] | None) -> Difference:
    row = shadow if shadow is not None else live
    assert row is not None
    key = {k: row[k] for k in table.key}
    stream_id = str(row["agreement_id"]) if row.get("agreement_id") is not None else None
    if live is None:
        kept = {c: (v, None) for c, v in row.items() if c not in table.ignored}
        return Difference(table.name, MISSING, key, kept, stream_id)
    if shadow is None:
        kept = {c: (None, v) for c, v in row.items() if c not in table.ignored}
        return Difference(table.name, EXTRA, key, kept, stream_id)
    columns = {
        c: (shadow.get(c), live.get(c))
        for c in shadow.keys() | live.keys()
        if c not in table.ignored and shadow.get(c) != live.get(c)
    }
    return Difference(table.name, DIFFERS, key, dict(sorted(columns.items())), stream_id)


async def diff(settings: AuditSettings, schema: str, against: str | None = None) -> DiffReport:
    conn = await asyncpg.connect(settings.database_url)
    try:
        # One snapshot of both schemas.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await compare(conn, schema, against or settings.live_schema)
    finally:
        await conn.close()
