"""`verify` against tampering: the store is altered directly, as the database superuser could.

One real data set (events in PostgreSQL, published by the real relay to a real Kafka
topic); each trial tampers with it, verifies, and puts the original rows back. Every kind
of tampering must be detected in every trial, at the right agreement and sequence.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from coordreg_contracts.envelope import canonical_json, envelope_hash, seal
from coordreg_contracts.events import ProgressReported

from services.audit.settings import AuditSettings
from services.audit.verify import VerifyReport, verify
from tests.support.audit_cli import run_audit
from tests.support.kafka import Brokers, settings_of
from tests.support.load import generate
from tests.support.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("AUDIT_TAMPER_TRIALS", "5"))
COLUMNS = "position, agreement_id, sequence, event_id, event_type, recorded_at, envelope"


@pytest.fixture
async def published(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    """Registry + relay (no projection needed) with a few hundred events, all on Kafka."""
    async with running_stack(database_url, kafka, topic, projections=False) as stack:
        await generate(stack.pool, agreements=40, events_per_agreement=8, concurrency=8, tag="VERIFY")
        await wait_published(stack.pool)
        yield stack


async def wait_published(pool: asyncpg.Pool, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while await pool.fetchval("SELECT count(*) FROM registry.outbox"):
        assert time.monotonic() < deadline, "the relay did not publish everything"
        await asyncio.sleep(0.2)


def settings_for(stack: Stack) -> AuditSettings:
    return AuditSettings(
        database_url=stack.database_url,
        **settings_of(stack.kafka.audit),
        topic=stack.topic,
        progress_seconds=0,
    )


async def cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    env = {
        "DATABASE_URL": stack.database_url,
        **stack.kafka.audit.env("AUDIT_"),
        "AUDIT_TOPIC": stack.topic,
    }
    return await run_audit(*args, env=env)


# --- tampering, as the superuser: triggers off, change rows, triggers on ---------------------


@dataclass(frozen=True)
class Expected:
    agreement_id: str
    sequence: int
    positions: frozenset[int]  # the reported position must be one of these


async def rows_of(conn: asyncpg.Connection, agreement_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {COLUMNS} FROM registry.events WHERE agreement_id = $1 ORDER BY sequence", agreement_id
        )
    )


async def restore(conn: asyncpg.Connection, agreement_id: str, rows: list[asyncpg.Record]) -> None:
    await conn.execute("DELETE FROM registry.events WHERE agreement_id = $1", agreement_id)
    await conn.executemany(
        f"INSERT INTO registry.events ({COLUMNS}) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [tuple(r) for r in rows],
    )


async def pick(conn: asyncpg.Connection, rng: random.Random, min_events: int) -> list[asyncpg.Record]:
    ids = [
        r["agreement_id"]
        for r in await conn.fetch(
            """SELECT agreement_id FROM registry.events WHERE agreement_id NOT LIKE 'party/%'
               GROUP BY agreement_id HAVING count(*) >= $1 ORDER BY agreement_id""",
            min_events,
        )
    ]
    return await rows_of(conn, rng.choice(ids))


def altered_data(envelope: dict[str, Any]) -> dict[str, Any]:
    """The same envelope with one value of its data changed (hash left as it was)."""
    data = dict(envelope["data"])
    for field_name in ("title", "summary", "reason"):
        if isinstance(data.get(field_name), str):
            data[field_name] = data[field_name] + " (đã sửa)"
            break
    else:
        if isinstance(data.get("completion_percent"), int):
            data["completion_percent"] = (data["completion_percent"] + 35) % 101
        else:
            data["closed_on"] = "2020-01-01"
    return {**envelope, "data": data}


async def tamper_update(
    conn: asyncpg.Connection, rng: random.Random
) -> tuple[Expected, Callable[[], Awaitable[None]]]:
    rows = await pick(conn, rng, 1)
    victim = rng.choice(rows)
    envelope = altered_data(json.loads(victim["envelope"]))
    await conn.execute(
        "UPDATE registry.events SET envelope = $1 WHERE position = $2",
        canonical_json(envelope).decode(),
        victim["position"],
    )
    expected = Expected(victim["agreement_id"], victim["sequence"], frozenset({victim["position"]}))
    return expected, lambda: restore(conn, victim["agreement_id"], rows)


async def tamper_delete(
    conn: asyncpg.Connection, rng: random.Random
) -> tuple[Expected, Callable[[], Awaitable[None]]]:
    rows = await pick(conn, rng, 2)
    victim = rng.choice(rows)
    await conn.execute("DELETE FROM registry.events WHERE position = $1", victim["position"])
    expected = Expected(victim["agreement_id"], victim["sequence"], frozenset({victim["position"]}))
    return expected, lambda: restore(conn, victim["agreement_id"], rows)


async def tamper_swap(
    conn: asyncpg.Connection, rng: random.Random
) -> tuple[Expected, Callable[[], Awaitable[None]]]:
    """Two events of one agreement change places: their envelopes (variant 1) or whole rows' sequences (2)."""
    rows = await pick(conn, rng, 3)
    first, second = sorted(rng.sample(rows, 2), key=lambda r: r["sequence"])
    if rng.random() < 0.5:
        for target, source in ((first, second), (second, first)):
            # (event_id is unique: it stays, the envelopes and the other columns move)
            await conn.execute(
                """UPDATE registry.events SET envelope = $1, event_type = $2, recorded_at = $3
                   WHERE position = $4""",
                source["envelope"],
                source["event_type"],
                source["recorded_at"],
                target["position"],
            )
    else:
        update = "UPDATE registry.events SET sequence = $1 WHERE position = $2"
        await conn.execute(update, 1_000_000, first["position"])
        await conn.execute(update, first["sequence"], second["position"])
        await conn.execute(update, second["sequence"], first["position"])
    expected = Expected(
        first["agreement_id"], first["sequence"], frozenset({first["position"], second["position"]})
    )
    return expected, lambda: restore(conn, first["agreement_id"], rows)


async def tamper_forge(
    conn: asyncpg.Connection, rng: random.Random
) -> tuple[Expected, Callable[[], Awaitable[None]]]:
    """A valid-looking report appended to an agreement, its hash computed by the forger."""
    rows = await pick(conn, rng, 1)
    last = json.loads(rows[-1]["envelope"])
    signed = json.loads(rows[0]["envelope"])["data"]
    obligation = signed["obligations"][0]
    forged = seal(
        event=ProgressReported.model_validate(
            {
                "obligation_id": obligation["obligation_id"],
                "party_id": obligation["lead_party_id"],
                "period": "2026",
                "status": "completed",
                "completion_percent": 100,
                "summary": "Hoàn thành vượt chỉ tiêu",
                "reported_on": "2026-12-31",
            }
        ),
        event_id=str(uuid.uuid4()),
        agreement_id=last["subject"],
        sequence=last["sequence"] + 1,
        recorded_at=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        prevhash=last["hash"],
        actor=last["actor"],
        correlation_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
    )
    assert forged.computed_hash() == forged.hash == envelope_hash(forged.without_position())
    position = await conn.fetchval(
        """INSERT INTO registry.events (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
           VALUES ($1, $2, $3::uuid, $4, $5, $6) RETURNING position""",
        forged.subject,
        forged.sequence,
        forged.id,
        forged.type,
        datetime.fromisoformat(forged.time),
        canonical_json(forged.without_position()).decode(),
    )
    expected = Expected(forged.subject, forged.sequence, frozenset({position}))
    return expected, lambda: restore(conn, forged.subject, rows)


async def tamper_truncate(
    conn: asyncpg.Connection, rng: random.Random
) -> tuple[Expected, Callable[[], Awaitable[None]]]:
    rows = await pick(conn, rng, 3)
    k = rng.randint(1, len(rows) - 1)
    first_gone = rows[-k]
    await conn.execute(
        "DELETE FROM registry.events WHERE agreement_id = $1 AND sequence >= $2",
        first_gone["agreement_id"],
        first_gone["sequence"],
    )
    expected = Expected(
        first_gone["agreement_id"], first_gone["sequence"], frozenset({first_gone["position"]})
    )
    return expected, lambda: restore(conn, first_gone["agreement_id"], rows)


Tamper = Callable[
    [asyncpg.Connection, random.Random], Awaitable[tuple[Expected, Callable[[], Awaitable[None]]]]
]
TAMPERS: dict[str, Tamper] = {
    "a update data": tamper_update,
    "b delete one": tamper_delete,
    "c swap two": tamper_swap,
    "d forge append": tamper_forge,
    "e truncate tail": tamper_truncate,
}


async def superuser(stack: Stack) -> asyncpg.Connection:
    conn = await asyncpg.connect(stack.database_url)
    assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    return conn


def located(report: VerifyReport, expected: Expected) -> bool:
    firsts = {p.stream_id: p for p in report.first_bad()}
    first = firsts.get(expected.agreement_id)
    return (
        set(firsts) == {expected.agreement_id}
        and first is not None
        and first.sequence == expected.sequence
        and first.position in expected.positions
    )


# --- the tests -------------------------------------------------------------------------------


async def test_a_clean_log_verifies(published: Stack, tmp_path: Path) -> None:
    started = time.perf_counter()
    report = await verify(settings_for(published))
    seconds = time.perf_counter() - started
    print(f"\nclean verify: {report.store_events} events, {report.kafka_records} records in {seconds:.2f}s")
    assert report.ok, report.summary()
    assert report.store_events == report.kafka_records - report.kafka_duplicates > 0
    assert report.pending_in_outbox == 0
    assert report.unsigned == 0, "the registry signs every event it appends (group commit under load)"

    code, out, err = await cli(published, "verify", "--json", str(tmp_path / "clean.json"))
    assert code == 0, out + err
    assert "OK" in out
    assert json.loads((tmp_path / "clean.json").read_text(encoding="utf-8"))["ok"] is True


async def test_every_tampering_is_detected_and_located(published: Stack) -> None:
    seed = int(os.environ.get("AUDIT_TAMPER_SEED", str(random.randrange(10**6))))
    rng = random.Random(seed)
    settings = settings_for(published)
    conn = await superuser(published)
    table: dict[str, list[int]] = {
        name: [0, 0, 0, 0] for name in TAMPERS
    }  # trials, detected, located, store-only
    failures: list[str] = []
    examples: dict[str, str] = {}
    try:
        for name, tamper in TAMPERS.items():
            for _ in range(TRIALS):
                await conn.execute("ALTER TABLE registry.events DISABLE TRIGGER USER")
                try:
                    expected, undo = await tamper(conn, rng)
                    report = await verify(settings)
                    store_only = await verify(settings, skip_kafka=True)
                    await undo()
                finally:
                    await conn.execute("ALTER TABLE registry.events ENABLE TRIGGER USER")
                row = table[name]
                row[0] += 1
                row[1] += not report.ok
                row[2] += located(report, expected)
                row[3] += not store_only.ok
                if not located(report, expected):
                    failures.append(f"{name}: expected {expected}, got:\n{report.summary()}")
                elif name not in examples:
                    examples[name] = report.first_bad()[0].line()
        clean = await verify(settings)
    finally:
        await conn.close()

    print(f"\ntamper detection (seed {seed}): trials / detected / located / detected by the store alone")
    for name, (trials, detected, at, by_store) in table.items():
        print(f"  {name:<16} {trials:>3} {detected:>9} {at:>8} {by_store:>9}")
    for name, line in examples.items():
        print(f"  e.g. {name}: {line}")
    assert not failures, "\n\n".join(failures)
    assert all(trials == detected == at for trials, detected, at, _ in table.values())
    # The hash chains cannot tell a forged tail or a truncated tail; Kafka can, and so can the
    # transparency log in the store (an event neither in the tree nor queued for it, a queued
    # position without its event).
    assert table["d forge append"][3] == TRIALS and table["e truncate tail"][3] == TRIALS
    assert table["a update data"][3] == table["c swap two"][3] == TRIALS
    assert clean.ok, "restoring the rows must give back a clean log:\n" + clean.summary()


async def test_cli_exit_code_names_the_first_bad_event(published: Stack, tmp_path: Path) -> None:
    conn = await superuser(published)
    report_path = tmp_path / "broken.json"
    try:
        await conn.execute("ALTER TABLE registry.events DISABLE TRIGGER USER")
        try:
            expected, undo = await tamper_truncate(conn, random.Random(3))
            code, out, err = await cli(published, "verify", "--json", str(report_path))
            skip_code, skip_out, _ = await cli(published, "verify", "--skip-kafka")
            await undo()
        finally:
            await conn.execute("ALTER TABLE registry.events ENABLE TRIGGER USER")
    finally:
        await conn.close()
    print("\n" + out)
    assert code == 1, out + err
    assert f"{expected.agreement_id} sequence {expected.sequence}" in out
    written = json.loads(report_path.read_text(encoding="utf-8"))
    assert written["ok"] is False
    [first] = written["first_bad"]
    assert (first["agreement_id"], first["sequence"], first["check"]) == (
        expected.agreement_id,
        expected.sequence,
        "not-in-store",
    )
    # The hash chains alone cannot see a truncated tail (they are intact); the transparency
    # log's queue still names the deleted events' positions (services/audit/logtree.py).
    assert skip_code == 1, skip_out
    assert "[tree/pending-without-event]" in skip_out and "BROKEN:" not in skip_out, skip_out
