"""Each component's PostgreSQL role may do its own job and nothing else (docs/adr/0002-database-roles.md,
docs/SECURITY.md "Database roles"): every refusal below is tried as that role, on a real server.

One database for the module: the roles are the server's, the grants are re-applied by every
migration run, and no test here changes what the others see (each statement runs in a
transaction that is rolled back).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from deploy.local.db_accounts import LOGIN_ROLES, DatabaseAccounts, ensure_accounts, with_database
from services.migrate_main import MigratorSettings
from services.migrate_main import run as migrate_all
from tests.support.builders import sign_body
from tests.support.stack import Stack, session_passwords

REFUSED = asyncpg.InsufficientPrivilegeError  # SQLSTATE 42501
COMPONENTS = ("registry", "relay", "worker", "query", "audit")

EVENT_INSERT = """INSERT INTO registry.events (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
                  VALUES ('forged', 1, gen_random_uuid(), 'AgreementSigned', now(), '{}')"""

# What no component may do: rewrite or unguard the event store and the transparency log.
EVERY_COMPONENT_REFUSED = {
    "update an event": "UPDATE registry.events SET envelope = '{}'",
    "delete events": "DELETE FROM registry.events",
    "truncate the events": "TRUNCATE registry.events",
    "drop the append-only trigger": "DROP TRIGGER events_append_only ON registry.events",
    "disable the append-only trigger": "ALTER TABLE registry.events DISABLE TRIGGER events_append_only",
    "disable every trigger": "ALTER TABLE registry.events DISABLE TRIGGER ALL",
    "replace the trigger's function": (
        "CREATE OR REPLACE FUNCTION registry.refuse_rewrite() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN OLD; END $$"
    ),
    "make the append function run as its caller": (
        "ALTER FUNCTION registry.append_command(jsonb) SECURITY INVOKER"
    ),
    "drop the event store": "DROP TABLE registry.events",
    "rewrite a leaf": "UPDATE registry.tree_leaves SET leaf_hash = leaf_hash",
    "delete leaves": "DELETE FROM registry.tree_leaves",
    "delete tree hashes": "DELETE FROM registry.tree_hashes",
    "truncate the checkpoints": "TRUNCATE registry.checkpoints",
    "drop the log's trigger": "DROP TRIGGER tree_leaves_append_only ON registry.tree_leaves",
    "create a table in public": "CREATE TABLE public.planted (x int)",
    "create a temporary table": "CREATE TEMP TABLE planted (x int)",
    "forget a registry migration": "DELETE FROM public.schema_migrations WHERE component = 'registry'",
    "become the administrator": "SET ROLE postgres",
    "become the migrator": "SET ROLE coordreg_migrator",
}

# What each component may not do although a neighbour may.
COMPONENT_REFUSED: dict[str, dict[str, str]] = {
    "query": {
        "insert an event": EVENT_INSERT,
        "read the events": "SELECT count(*) FROM registry.events",
        "read the idempotency keys": "SELECT count(*) FROM registry.idempotency_keys",
        "call the append function": "SELECT registry.append_command('{}'::jsonb)",
        "write a read model": "INSERT INTO projections.parties (party_id) VALUES ('forged')",
        "move its offsets": "UPDATE projections.offsets SET next_offset = 0",
        "delete read models": "DELETE FROM projections.agreements",
        "create a schema": "CREATE SCHEMA planted",
    },
    "registry": {
        "insert an event past the append function": EVENT_INSERT,
        "insert an outbox row": "INSERT INTO registry.outbox (position, agreement_id, sequence) VALUES (-1, 'x', 1)",
        "delete outbox rows": "DELETE FROM registry.outbox",
        "claim a document number past the append function": (
            "INSERT INTO registry.document_numbers (locality, year, document_number, agreement_id)"
            " VALUES ('x', 2026, '1/CTr-x', 'x')"
        ),
        "write the tree": "INSERT INTO registry.tree_hashes (hash_index, hash) VALUES (999999, '\\x00')",
        "write a read model": "INSERT INTO projections.parties (party_id) VALUES ('forged')",
        "read the read models": "SELECT count(*) FROM projections.agreements",
    },
    "relay": {
        "insert an event": EVENT_INSERT,
        "call the append function": "SELECT registry.append_command('{}'::jsonb)",
        "insert an outbox row": "INSERT INTO registry.outbox (position, agreement_id, sequence) VALUES (-1, 'x', 1)",
        "write idempotency keys": "DELETE FROM registry.idempotency_keys",
        "write a read model": "INSERT INTO projections.parties (party_id) VALUES ('forged')",
    },
    "worker": {
        "insert an event": EVENT_INSERT,
        "read the events": "SELECT count(*) FROM registry.events",
        "delete outbox rows": "DELETE FROM registry.outbox",
        "call the append function": "SELECT registry.append_command('{}'::jsonb)",
        "drop a read model": "DROP TABLE projections.agreements",
        "create a schema": "CREATE SCHEMA planted",
    },
    "audit": {
        "insert an event": EVENT_INSERT,
        "call the append function": "SELECT registry.append_command('{}'::jsonb)",
        "delete outbox rows": "DELETE FROM registry.outbox",
        "write idempotency keys": "DELETE FROM registry.idempotency_keys",
        "write the tree": "INSERT INTO registry.tree_hashes (hash_index, hash) VALUES (999999, '\\x00')",
        "write a read model": "INSERT INTO projections.parties (party_id) VALUES ('forged')",
        "move the live offsets": "UPDATE projections.offsets SET next_offset = 0",
        "delete live read models": "DELETE FROM projections.agreements",
        "rename the live read models": "ALTER SCHEMA projections RENAME TO gone",
    },
}

CASES = [
    pytest.param(component, sql, id=f"{component}: {what}")
    for component in COMPONENTS
    for what, sql in {**EVERY_COMPONENT_REFUSED, **COMPONENT_REFUSED[component]}.items()
    # The audit role may delete its own shadows' rows there: row-level security, not a refusal,
    # keeps it from the others (test_the_audit_role_cannot_forget_the_live_migrations).
    if (component, what) != ("audit", "forget a registry migration")
]


def _command(stream: str) -> dict[str, Any]:
    """The smallest argument of registry.append_command: one event of a new stream."""
    event = {
        "stream_id": stream,
        "sequence": 1,
        "event_id": str(uuid.uuid4()),
        "type": "AgreementSigned",
        "recorded_at": "2026-01-01T00:00:00Z",
        "envelope": "{}",
    }
    return {"stream_id": stream, "events": [event]}


@pytest.fixture(scope="module")
async def accounts(postgres_url: str) -> AsyncIterator[DatabaseAccounts]:
    name = f"t_roles_{uuid.uuid4().hex[:8]}"
    admin_url = with_database(postgres_url, name)
    made = await ensure_accounts(admin_url, session_passwords())
    await migrate_all(MigratorSettings(database_url=made.urls["migrator"]))
    # Something to refuse to rewrite: an event appended as the registry, and its tree leaf.
    registry = await asyncpg.connect(made.urls["registry"])
    try:
        await registry.fetchval(
            "SELECT registry.append_command($1::text::jsonb)", json.dumps(_command("seed"))
        )
    finally:
        await registry.close()
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(
            "INSERT INTO registry.tree_leaves (leaf_index, position, leaf_hash)"
            " SELECT 0, position, decode(repeat('00', 32), 'hex') FROM registry.events"
        )
        await admin.execute(
            "INSERT INTO registry.checkpoints (tree_size, root_hash, note, key_name)"
            " VALUES (1, decode(repeat('00', 32), 'hex'), 'note', 'key')"
        )
    finally:
        await admin.close()
    yield made
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _as(accounts: DatabaseAccounts, component: str, sql: str, *args: Any) -> Any:
    """Runs `sql` as the component, in a transaction that is always rolled back."""
    conn = await asyncpg.connect(accounts.urls[component])
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            return await conn.fetch(sql, *args)
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


@pytest.mark.parametrize(("component", "sql"), CASES)
async def test_refused(accounts: DatabaseAccounts, component: str, sql: str) -> None:
    with pytest.raises(REFUSED):
        await _as(accounts, component, sql)


async def test_the_event_store_is_unchanged_by_every_attempt(accounts: DatabaseAccounts) -> None:
    rows = await _as(accounts, "audit", "SELECT agreement_id FROM registry.events")
    assert [r["agreement_id"] for r in rows] == ["seed"]


@pytest.mark.parametrize(
    ("component", "sql"),
    [
        pytest.param("registry", "SELECT registry.append_command($1::text::jsonb)", id="registry appends"),
        pytest.param("registry", "SELECT count(*) FROM registry.events", id="registry reads events"),
        pytest.param(
            "registry",
            "INSERT INTO registry.idempotency_keys (client_id, key, fingerprint, token)"
            " VALUES ('c', 'k', 'f', gen_random_uuid())",
            id="registry claims a key",
        ),
        pytest.param(
            "relay", "DELETE FROM registry.outbox RETURNING position", id="relay deletes outbox rows"
        ),
        pytest.param(
            "relay",
            "INSERT INTO registry.tree_hashes (hash_index, hash) VALUES (999999, decode(repeat('00', 32), 'hex'))",
            id="relay writes the tree",
        ),
        pytest.param("relay", "DELETE FROM registry.tree_pending", id="relay takes queued leaves"),
        pytest.param(
            "relay",
            "WITH c AS (INSERT INTO registry.checkpoints (tree_size, root_hash, note, key_name)"
            " VALUES (999999, decode(repeat('00', 32), 'hex'), 'n', 'k') RETURNING tree_size)"
            " INSERT INTO registry.cosignatures (tree_size, witness, signature) SELECT tree_size, 'w', 's' FROM c",
            id="relay stores a witness's cosignature",
        ),
        pytest.param(
            "worker",
            "INSERT INTO projections.offsets (consumer_group, topic, partition, next_offset) VALUES ('g', 't', 0, 1)",
            id="worker stores offsets",
        ),
        pytest.param(
            "worker",
            "INSERT INTO projections.dead_letters (topic, partition, record_offset, reason, message)"
            " VALUES ('t', 0, 1, 'r', '\\x00')",
            id="worker dead-letters",
        ),
        pytest.param("query", "SELECT count(*) FROM projections.agreements", id="query reads read models"),
        pytest.param("audit", "SELECT count(*) FROM registry.events", id="audit reads events"),
        pytest.param("audit", "SELECT count(*) FROM projections.offsets", id="audit reads live offsets"),
    ],
)
async def test_allowed(accounts: DatabaseAccounts, component: str, sql: str) -> None:
    args = [json.dumps(_command(f"a-{uuid.uuid4().hex[:6]}"))] if "$1" in sql else []
    await _as(accounts, component, sql, *args)


async def test_the_audit_role_builds_and_owns_its_shadow_schemas(accounts: DatabaseAccounts) -> None:
    conn = await asyncpg.connect(accounts.urls["audit"])
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("CREATE SCHEMA shadow_x")
        await conn.execute("CREATE TABLE shadow_x.t (x int)")
        await conn.execute("INSERT INTO shadow_x.t VALUES (1)")
        await conn.execute(
            "INSERT INTO public.schema_migrations (component, name) VALUES ('projections@shadow_x', 'x')"
        )
        await transaction.rollback()
    finally:
        await conn.close()


async def test_the_audit_role_cannot_forget_the_live_migrations(accounts: DatabaseAccounts) -> None:
    """Row-level security: it records and forgets only its own shadow schemas' migrations."""
    rows = await _as(accounts, "audit", "DELETE FROM public.schema_migrations RETURNING component")
    assert rows == []
    with pytest.raises(REFUSED):
        await _as(
            accounts,
            "audit",
            "INSERT INTO public.schema_migrations (component, name) VALUES ('registry', '999_x.sql')",
        )


async def test_the_append_function_runs_as_its_owner_with_a_fixed_search_path(
    accounts: DatabaseAccounts,
) -> None:
    row = (
        await _as(
            accounts,
            "audit",
            """SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) AS owner FROM pg_proc p
               WHERE p.oid = 'registry.append_command(jsonb)'::regprocedure""",
        )
    )[0]
    assert row["prosecdef"] is True
    assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"]
    assert row["owner"] == LOGIN_ROLES["migrator"]


async def test_nobody_but_the_migrator_owns_anything(accounts: DatabaseAccounts) -> None:
    rows = await _as(
        accounts,
        "audit",
        """SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('registry', 'projections')
           UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname IN ('registry', 'projections')""",
    )
    assert {r["owner"] for r in rows} == {LOGIN_ROLES["migrator"]}


async def test_a_component_cannot_sign_in_without_its_password(accounts: DatabaseAccounts) -> None:
    url = accounts.urls["query"]
    wrong = url.replace(f":{session_passwords()['query']}@", ":not-the-password@")
    assert wrong != url
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_the_test_stack_runs_each_component_as_its_own_role(stack: Stack) -> None:
    """So every other integration suite proves that each role can do its job."""
    signed = await stack.sign(sign_body())
    await stack.wait_for_position(signed["position"])
    users = {
        r["usename"]
        for r in await stack.pool.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database()"
        )
    }
    assert {LOGIN_ROLES[c] for c in ("registry", "relay", "worker", "query")} <= users
