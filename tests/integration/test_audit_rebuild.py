"""`rebuild`, `diff`, `swap` and `party` on the real stack.

The big test loads the demo data over HTTP plus a generated load (default 50,000 events;
AUDIT_LOAD_EVENTS overrides) straight through the command side, lets the relay and the
live projection process it as in production, and rebuilds the read models from the
store and from Kafka with the audit CLI: both must equal the live ones row for row.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement

from deploy.demo.load import load
from services.audit.common import parse_instant
from services.audit.diff import diff
from services.audit.kafkalog import TopicReader
from services.audit.party import party
from services.audit.rebuild import rebuild
from services.audit.settings import AuditSettings
from services.audit.swap import swap
from services.common.db import create_pool, migrate
from services.registry import bootstrap
from services.registry.migrations import MIGRATIONS as REGISTRY_MIGRATIONS
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from tests.support.audit_cli import run_audit
from tests.support.builders import report_body, sign_body
from tests.support.kafka import settings_of
from tests.support.load import generate, keep_commanding
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
EVENTS = int(os.environ.get("AUDIT_LOAD_EVENTS", "50000"))
PER_AGREEMENT = 25
CTX = CommandContext(Caller.in_process("audit-test"), correlation_id="audit-test", causation_id="audit-test")


def settings_for(stack: Stack, **overrides: Any) -> AuditSettings:
    """As the audit role (docs/adr/0002-database-roles.md); `swap` takes the migrator's URL."""
    return AuditSettings(
        **{
            "database_url": stack.accounts.urls["audit"],
            **settings_of(stack.kafka.audit),
            "topic": stack.topic,
            "progress_seconds": 0,
            **overrides,
        }
    )


async def cli(stack: Stack | None, *args: str, database_url: str | None = None) -> tuple[int, str, str]:
    env = {"AUDIT_PROGRESS_SECONDS": "5"}
    if stack is not None:
        env |= {
            "DATABASE_URL": stack.accounts.urls["audit"],
            **stack.kafka.audit.env("AUDIT_"),
            "AUDIT_TOPIC": stack.topic,
        }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return await run_audit(*args, env=env)


async def store_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM registry.events"))


async def wait_published(pool: asyncpg.Pool, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while await pool.fetchval("SELECT count(*) FROM registry.outbox"):
        assert time.monotonic() < deadline, "the relay did not publish everything"
        await asyncio.sleep(0.5)


async def wait_live(pool: asyncpg.Pool, events: int, timeout: float = 1800) -> float:
    """Until the live read models applied `events` events; returns the seconds waited."""
    started = time.monotonic()
    while True:
        applied = await pool.fetchval("SELECT count(*) FROM projections.applied")
        if applied >= events:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"live projection stuck at {applied}/{events}"
        await asyncio.sleep(1)


async def live_group(pool: asyncpg.Pool) -> str:
    return str(await pool.fetchval("SELECT DISTINCT consumer_group FROM projections.offsets"))


def withdraw(obligation_id: str) -> AmendAgreement:
    return AmendAgreement.model_validate(
        {
            "document_number": "07/QĐ-MTTQ",
            "reason": "Chuyển sang chương trình riêng",
            "effective_on": "2024-06-01",
            "changes": [{"op": "withdraw_obligation", "obligation_id": obligation_id}],
        }
    )


async def test_rebuilds_from_store_and_from_kafka_equal_the_live_read_models(
    stack: Stack, tmp_path: Path
) -> None:
    started = time.monotonic()
    # Without the 2025 successions: the generated load below keeps commanding the demo's parties,
    # which the succession manager would otherwise be moving to their successors meanwhile.
    demo = await asyncio.to_thread(load, str(stack.registry.base_url), successions=False)
    assert demo["signed_now"] > 0

    # An obligation that is withdrawn later: as of an instant before, it was still owed.
    registry = bootstrap.on_postgres(stack.pool)
    signed = await registry.bus.run(SignAgreement.model_validate(sign_body()), CTX)
    await registry.bus.run(ReportProgress.model_validate(report_body()), CTX, signed.agreement_id)
    await asyncio.sleep(0.05)
    before_withdrawal = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await registry.bus.run(withdraw("nhan-dao"), CTX, signed.agreement_id)

    generated = await generate(
        stack.pool, agreements=max(1, EVENTS // PER_AGREEMENT), events_per_agreement=PER_AGREEMENT, chunk=6
    )
    total = await store_count(stack.pool)
    print(
        f"\nloaded: demo {demo['signed_now']} agreements; generated {generated.events:,} events"
        f" in {generated.seconds:.1f}s ({generated.rate:,.0f}/s); {total:,} events in the store"
    )
    assert generated.events >= EVENTS
    await wait_published(stack.pool)

    # The rebuilds and verify run as the CLI, in their own processes, while the live
    # projection is still catching up (so the figures below are under that load).
    paths = {name: tmp_path / f"{name}.json" for name in ("store", "kafka", "verify")}
    group = await live_group(stack.pool)
    runs = await asyncio.gather(
        cli(stack, "rebuild", "--from", "store", "--schema", "shadow_store", "--json", str(paths["store"])),
        cli(
            stack,
            "rebuild",
            "--from",
            "kafka",
            "--schema",
            "shadow_kafka",
            "--group",
            group,
            "--json",
            str(paths["kafka"]),
        ),
        cli(stack, "verify", "--json", str(paths["verify"])),
        wait_live(stack.pool, total),
    )
    for code, out, err in runs[:3]:
        assert code == 0, out + err
    reports = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in paths.items()}
    assert reports["verify"]["ok"] and reports["verify"]["store_events"] == total
    for source in ("store", "kafka"):
        assert reports[source]["read"] == total and reports[source]["applied"] == total, reports[source]
    print(
        f"rebuild from store: {reports['store']['events_per_second']:,.0f} events/s"
        f" ({total:,} events in {reports['store']['seconds']:.1f}s)\n"
        f"rebuild from kafka: {reports['kafka']['events_per_second']:,.0f} events/s"
        f" ({total:,} events in {reports['kafka']['seconds']:.1f}s)\n"
        f"verify: {total:,} events (store {reports['verify']['store_seconds']:.1f}s,"
        f" kafka {reports['verify']['kafka_seconds']:.1f}s)\n"
        f"live projection caught up {runs[3]:.0f}s after the load was published"
    )

    settings = settings_for(stack, consumer_group=group)
    for shadow in ("shadow_store", "shadow_kafka"):
        compared = await diff(settings, shadow)
        assert compared.consistent, compared.summary()
        assert compared.rows["applied"] == (total, total)
    code, out, err = await cli(stack, "diff", "--schema", "shadow_kafka")
    assert code == 0 and "CONSISTENT" in out, out + err
    # The Kafka shadow can carry on where it stopped: after the same records as the live worker.
    # It stopped at the end offsets, the worker right after its last record: in between there
    # may be only the relay's transaction markers, which take offsets but are no records.
    offsets = await stack.pool.fetch(
        "SELECT partition, next_offset FROM shadow_kafka.offsets WHERE consumer_group = $1 ORDER BY 1", group
    )
    live_offsets = await stack.pool.fetch(
        "SELECT partition, next_offset FROM projections.offsets WHERE consumer_group = $1 ORDER BY 1", group
    )
    shadow_next = {r["partition"]: r["next_offset"] for r in offsets}
    live_next = {r["partition"]: r["next_offset"] for r in live_offsets}
    assert shadow_next.keys() == live_next.keys()
    assert all(live_next[p] <= shadow_next[p] for p in live_next)
    async with TopicReader(stack.kafka.audit, stack.topic) as reader:
        assert [record async for batch in reader.read(live_next, shadow_next) for record in batch] == []

    # --as-of: what the parties owed before the withdrawal.
    as_of = await rebuild(settings, source="store", schema="shadow_asof", as_of=before_withdrawal)
    assert 0 < as_of.counts.applied < total
    owed_then = await stack.pool.fetch(
        """SELECT party_id, status FROM shadow_asof.party_obligations
           WHERE agreement_id = $1 AND obligation_id = 'nhan-dao' ORDER BY party_id""",
        signed.agreement_id,
    )
    owed_now = await stack.pool.fetch(
        """SELECT party_id, status FROM projections.party_obligations
           WHERE agreement_id = $1 AND obligation_id = 'nhan-dao' ORDER BY party_id""",
        signed.agreement_id,
    )
    assert [tuple(r) for r in owed_then] == [("hctd-hoa-binh", "active"), ("mttq-hoa-binh", "active")]
    assert [tuple(r) for r in owed_now] == [("hctd-hoa-binh", "withdrawn"), ("mttq-hoa-binh", "withdrawn")]
    code, out, _ = await cli(stack, "diff", "--schema", "shadow_asof", "--limit", "2")
    assert code == 1 and "DIFFERENT" in out
    code, _, err = await cli(stack, "swap", "--schema", "shadow_asof", "--group", group)
    assert code == 2 and "as of" in err, err

    # `party` straight from the store agrees with the live read models today.
    answer = await party(settings, "mttq-hoa-binh", datetime.now(UTC))
    live_rows = await stack.pool.fetch(
        """SELECT agreement_id, obligation_id, role, status, latest_report::text AS latest_report
           FROM projections.party_obligations WHERE party_id = 'mttq-hoa-binh'
           ORDER BY document_number, agreement_id, obligation_id"""
    )
    assert [
        (o["agreement_id"], o["obligation_id"], o["role"], o["status"], o["latest_report"])
        for o in answer.obligations
    ] == [
        (
            r["agreement_id"],
            r["obligation_id"],
            r["role"],
            r["status"],
            json.loads(r["latest_report"] or "null"),
        )
        for r in live_rows
    ]
    live_history = await stack.pool.fetch(
        "SELECT event_id, position, summary FROM projections.party_history WHERE party_id = 'mttq-hoa-binh' ORDER BY position"
    )
    assert [(e["event_id"], e["position"], e["summary"]) for e in answer.history] == [
        tuple(r) for r in live_history
    ]
    print(f"total test time {time.monotonic() - started:.0f}s")


async def test_swap_while_commands_keep_arriving_loses_no_event(stack: Stack) -> None:
    generated = await generate(stack.pool, agreements=60, events_per_agreement=12, chunk=4, tag="SWAP")
    await wait_published(stack.pool)
    await wait_live(stack.pool, await store_count(stack.pool))
    group = await live_group(stack.pool)
    settings = settings_for(stack, consumer_group=group)
    built = await rebuild(settings, source="kafka", schema="shadow_blue")
    assert built.counts.applied == await store_count(stack.pool)

    stop = asyncio.Event()
    writer = asyncio.create_task(keep_commanding(stack.pool, generated.agreements, stop))
    try:
        await asyncio.sleep(2)
        # Renaming the live read models is the migrator's (it owns them), not the audit role's.
        as_migrator = settings_for(stack, consumer_group=group, database_url=stack.accounts.urls["migrator"])
        first = await swap(as_migrator, "shadow_blue")
        print("\n" + first.summary())
        # A second swap, of a shadow rebuilt from the store (no offsets: caught up from
        # the beginning of the topic), through the CLI, with commands still arriving.
        await rebuild(settings, source="store", schema="shadow_green")
        await asyncio.sleep(1)
        code, out, err = await cli(
            stack,
            "swap",
            "--schema",
            "shadow_green",
            "--group",
            group,
            database_url=stack.accounts.urls["migrator"],
        )
        assert code == 0, out + err
        print(out)
        await asyncio.sleep(2)
    finally:
        stop.set()
        written = await writer
    assert written.events > 0
    total = await store_count(stack.pool)
    await wait_published(stack.pool)
    await wait_live(stack.pool, total, timeout=300)

    # Nothing lost, nothing twice: every stored event applied exactly once, no gap parked.
    assert await stack.pool.fetchval("SELECT count(*) FROM projections.applied") == total
    assert await stack.pool.fetchval("SELECT count(*) FROM projections.parked") == 0
    missing = await stack.pool.fetchval(
        """SELECT count(*) FROM registry.events e
           WHERE NOT EXISTS (SELECT 1 FROM projections.applied a WHERE a.position = e.position)"""
    )
    assert missing == 0
    # And the live read models equal a fresh rebuild.
    await rebuild(settings, source="store", schema="shadow_check")
    compared = await diff(settings, "shadow_check")
    assert compared.consistent, compared.summary()
    schemas = {
        r["nspname"]
        for r in await stack.pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'projections%'")
    }
    assert len(schemas) == 3  # the live one and two previous ones
    print(f"{written.events} commands arrived during the swaps; {total:,} events, all applied once")


def clock(*instants: str) -> Iterator[str]:
    yield from instants


def agreement_sequences(report: Any) -> list[int]:
    """The agreement events of a party's history: its own directory stream is there too (its
    registration by the signing, decision 16), checked apart."""
    directory = [e for e in report.history if e["agreement_id"] is None]
    assert [e["type"] for e in directory] == ["vn.gov.coordination.PartyRegistered.v1"]
    return [e["sequence"] for e in report.history if e["agreement_id"] is not None]


async def test_party_as_of_a_date_from_the_event_store(database_url: str, tmp_path: Path) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        await migrate(pool, "registry", REGISTRY_MIGRATIONS)
        times = clock(
            "2024-01-10T09:00:00.000000Z",  # signed
            # the signing registers its parties in the directory (decision 16), at the same instant
            *["2024-01-10T09:00:00.000000Z"] * len(sign_body()["parties"]),
            "2024-03-05T10:00:00.000000Z",  # hctd reports on nhan-dao
            "2024-06-01T08:30:00.000000Z",  # nhan-dao withdrawn
            "2024-09-30T16:00:00.000000Z",  # hctd reports on tuyen-truyen
            "2025-01-15T11:00:00.000000Z",  # closed
        )
        registry = bootstrap.on_postgres(pool, clock=lambda: next(times))
        signed = await registry.bus.run(SignAgreement.model_validate(sign_body(signed_on="2024-01-10")), CTX)
        agreement = signed.agreement_id
        await registry.bus.run(
            ReportProgress.model_validate(report_body(reported_on="2024-03-05", completion_percent=40)),
            CTX,
            agreement,
        )
        await registry.bus.run(withdraw("nhan-dao"), CTX, agreement)
        await registry.bus.run(
            ReportProgress.model_validate(
                report_body(
                    obligation_id="tuyen-truyen",
                    period="2024-Q3",
                    status="completed",
                    reported_on="2024-09-30",
                )
            ),
            CTX,
            agreement,
        )
        await registry.bus.run(
            CloseTerm.model_validate({"closed_on": "2025-01-15", "outcome": "completed"}), CTX, agreement
        )
        settings = AuditSettings(database_url=database_url, progress_seconds=0)

        def owed(answer: Any) -> list[tuple[Any, ...]]:
            return [
                (o["obligation_id"], o["role"], o["status"], (o["latest_report"] or {}).get("period"))
                for o in answer.obligations
            ]

        before = await party(settings, "hctd-hoa-binh", parse_instant("2024-01-09"))
        assert before.obligations == [] and before.history == []

        may = await party(settings, "hctd-hoa-binh", parse_instant("2024-05-31"))
        assert owed(may) == [
            ("nhan-dao", "supporter", "active", "2024"),
            ("tuyen-truyen", "lead", "active", None),
        ]
        assert may.obligations[0]["latest_report"]["completion_percent"] == 40
        assert agreement_sequences(may) == [1, 2]

        # The end of the day counts: the withdrawal at 08:30 on 1 June is in.
        june = await party(settings, "hctd-hoa-binh", parse_instant("2024-06-01"))
        assert owed(june) == [
            ("nhan-dao", "supporter", "withdrawn", "2024"),
            ("tuyen-truyen", "lead", "active", None),
        ]
        assert agreement_sequences(june) == [1, 2, 3]
        active_only = await party(settings, "hctd-hoa-binh", parse_instant("2024-06-01"), status="active")
        assert owed(active_only) == [("tuyen-truyen", "lead", "active", None)]

        later = await party(settings, "hctd-hoa-binh", parse_instant("2025-12-31"))
        assert owed(later) == [
            ("nhan-dao", "supporter", "closed", "2024"),
            ("tuyen-truyen", "lead", "closed", "2024-Q3"),
        ]
        assert agreement_sequences(later) == [1, 2, 3, 4, 5]
        assert later.warnings == []
        # The lead of the agreement never reported, but is named by signing, withdrawal and closing.
        lead = await party(settings, "mttq-hoa-binh", parse_instant("2025-12-31"))
        assert agreement_sequences(lead) == [1, 3, 5]

        path = tmp_path / "party.json"
        code, out, err = await cli(
            None,
            "party",
            "hctd-hoa-binh",
            "--as-of",
            "2024-05-31",
            "--json",
            str(path),
            database_url=database_url,
        )
        assert code == 0, out + err
        print("\n" + out)
        assert "nhan-dao" in out and "active" in out and "2024 in_progress 40%" in out
        written = json.loads(path.read_text(encoding="utf-8"))
        assert written["as_of"] == "2024-05-31T23:59:59.999999Z"
        assert [o["status"] for o in written["obligations"]] == ["active", "active"]
    finally:
        await pool.close()
