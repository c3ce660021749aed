"""The audit tool on a succession, on real PostgreSQL and Kafka (docs/CONTRACT.md, decisions 15–17).

An agreement signed in 2023 names Hòa Bình's Labour department (`sld-hoa-binh`) as the lead of
an obligation; the department ceased on 1 July 2025 and Phú Thọ's Home Affairs department
(`snv-phu-tho`) took over. As so often, the registry learnt of it late: the succession and the
agreement's `ObligationsTransferred` were recorded in December 2026, and a late report for 2024
came in between (September 2025). The streams are written straight through the event store and
published by the real relay, so `verify` checks them against Kafka too.

`--as-of` keeps the events recorded by then, and a succession's events from their effective date
on (services/audit/asof.py): on 30 June 2025 the department holds the obligation as signed; on
1 July 2025 its successor does, and the department shows as succeeded, in `party` and in
`rebuild` alike (the latter from the store and from Kafka).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from coordreg_contracts.common import Party
from coordreg_contracts.envelope import Envelope, canonical_json, seal
from coordreg_contracts.events import (
    AgreementSigned,
    Event,
    ObligationsTransferred,
    ObligationTransfer,
    ProgressReported,
)
from coordreg_contracts.parties import PartyEvent, PartyRegistered, SuccessionRecorded, party_subject

from services.audit.common import parse_instant
from services.audit.kafkalog import TopicReader
from services.audit.party import PartyReport, party
from services.audit.rebuild import rebuild
from services.audit.settings import AuditSettings
from services.audit.verify import verify
from services.common.db import create_pool, migrate
from services.common.kafka_security import KafkaConnection
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.adapters.relay import OutboxRelay
from services.registry.migrations import MIGRATIONS as REGISTRY_MIGRATIONS
from tests.support.audit_cli import run_audit
from tests.support.builders import poverty_programme
from tests.support.kafka import Brokers, settings_of

PREDECESSOR = "sld-hoa-binh"
SUCCESSOR = "snv-phu-tho"
FRONT = "mttq-hoa-binh"
OBLIGATION = "giam-ngheo"
EFFECTIVE = "2025-07-01"
TRANSFERRED = "vn.gov.coordination.ObligationsTransferred.v1"
SUCCEEDED = "vn.gov.coordination.SuccessionRecorded.v1"


@dataclass(frozen=True)
class Written:
    agreement_id: str
    database_url: str
    kafka: KafkaConnection
    topic: str

    def settings(self) -> AuditSettings:
        return AuditSettings(
            database_url=self.database_url,
            **settings_of(self.kafka),
            topic=self.topic,
            progress_seconds=0,
        )


class Streams:
    """Appends sealed events to streams through the real event store, each at a given time."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        self.heads: dict[str, tuple[int, str]] = {}  # stream id -> (version, last hash)

    async def append(self, stream_id: str, event: Event | PartyEvent, recorded_at: str) -> Envelope:
        version, prevhash = self.heads.get(stream_id, (0, ""))
        envelope = seal(
            event=event,
            event_id=str(uuid.uuid4()),
            agreement_id=stream_id,
            sequence=version + 1,
            recorded_at=recorded_at,
            prevhash=prevhash,
            actor="audit-succession-test",
            correlation_id=str(uuid.uuid4()),
            causation_id=str(uuid.uuid4()),
        )
        await self.store.append(stream_id, version, [envelope])
        self.heads[stream_id] = (envelope.sequence, envelope.hash)
        return envelope


def signing(agreement_id: str) -> AgreementSigned:
    document_number = f"{uuid.uuid4().hex[:4]}/CTr-SLĐTBXH-MTTQ"
    return AgreementSigned.model_validate(
        {"agreement_id": agreement_id, **poverty_programme(PREDECESSOR, FRONT, document_number)}
    )


def reported(period: str, reported_on: str, percent: int) -> ProgressReported:
    return ProgressReported.model_validate(
        {
            "obligation_id": OBLIGATION,
            "party_id": PREDECESSOR,
            "period": period,
            "status": "in_progress",
            "completion_percent": percent,
            "reported_on": reported_on,
        }
    )


async def write(pool: asyncpg.Pool) -> str:
    streams = Streams(PostgresEventStore(pool))
    agreement_id = str(uuid.uuid4())
    await streams.append(agreement_id, signing(agreement_id), "2023-03-15T02:00:00.000000Z")
    await streams.append(
        party_subject(PREDECESSOR),
        PartyRegistered(
            party_id=PREDECESSOR,
            name="Sở Lao động – Thương binh và Xã hội tỉnh Hòa Bình",
            kind="department",
            province="Hòa Bình",
            registered_from_agreement_id=agreement_id,
        ),
        "2023-03-15T02:00:00.000000Z",
    )
    await streams.append(agreement_id, reported("2023", "2024-01-10", 40), "2024-01-10T03:00:00.000000Z")
    # After the effective date, before the succession was recorded: a late report for 2024.
    await streams.append(agreement_id, reported("2024", "2025-09-15", 70), "2025-09-15T03:00:00.000000Z")
    await streams.append(
        party_subject(SUCCESSOR),
        PartyRegistered(
            party_id=SUCCESSOR,
            name="Sở Nội vụ tỉnh Phú Thọ",
            kind="department",
            province="Phú Thọ",
            unit_code="25",
        ),
        "2026-11-30T02:00:00.000000Z",
    )
    succession = await streams.append(
        party_subject(PREDECESSOR),
        SuccessionRecorded(effective_on=EFFECTIVE, legal_basis="45/2025/NĐ-CP", successor_party_id=SUCCESSOR),
        "2026-12-01T03:00:00.000000Z",
    )
    await streams.append(
        agreement_id,
        ObligationsTransferred(
            predecessor_party_id=PREDECESSOR,
            effective_on=EFFECTIVE,
            legal_basis="45/2025/NĐ-CP",
            succession_event_id=succession.id,
            successors=[Party(party_id=SUCCESSOR, name="Sở Nội vụ tỉnh Phú Thọ", role="lead")],
            obligations=[ObligationTransfer(obligation_id=OBLIGATION, successor_party_id=SUCCESSOR)],
        ),
        "2026-12-01T03:00:01.000000Z",
    )
    return agreement_id


async def published(pool: asyncpg.Pool, kafka: KafkaConnection, topic: str, timeout: float = 60) -> None:
    """Every stored event readable on the topic. The relay forgets a batch once its Kafka
    transaction is committed, but a read_committed reader sees it only when the commit markers
    reach the partitions, a moment later: `verify` would look too early."""
    deadline = time.monotonic() + timeout
    stored = int(await pool.fetchval("SELECT count(*) FROM registry.events"))
    while await pool.fetchval("SELECT count(*) FROM registry.outbox"):
        assert time.monotonic() < deadline, "the relay did not publish everything"
        await asyncio.sleep(0.1)
    async with TopicReader(kafka, topic) as reader:
        while True:
            begins, ends = await reader.beginning_offsets(), await reader.end_offsets()
            records = [r async for batch in reader.read(begins, ends) for r in batch]
            if len(records) >= stored:
                return
            assert time.monotonic() < deadline, f"{len(records)} of {stored} events readable on the topic"
            await asyncio.sleep(0.1)


@pytest.fixture
async def written(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Written]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    stop = asyncio.Event()
    relay = None
    try:
        await migrate(pool, "registry", REGISTRY_MIGRATIONS)
        agreement_id = await write(pool)
        relay = asyncio.create_task(OutboxRelay(pool, kafka.relay, topic, poll_seconds=0.1).run(stop))
        await published(pool, kafka.audit, topic)
        yield Written(agreement_id, database_url, kafka.audit, topic)
    finally:
        stop.set()
        if relay is not None:
            await asyncio.wait_for(relay, 20)
        await pool.close()


def held(report: PartyReport) -> list[tuple[Any, ...]]:
    return [(o["obligation_id"], o["role"], o["status"], o["inherited_from"]) for o in report.obligations]


def kinds(report: PartyReport) -> list[str]:
    return [e["type"].split(".")[-2] for e in report.history]


async def test_verify_walks_party_streams_and_finds_a_tampered_one(written: Written) -> None:
    settings = written.settings()
    clean = await verify(settings)
    assert clean.ok, clean.summary()
    assert (clean.store_events, clean.agreements, clean.party_streams) == (7, 1, 2)
    assert clean.kafka_records - clean.kafka_duplicates == 7 and clean.pending_in_outbox == 0
    assert "1 agreements and 2 party streams" in clean.summary()

    # The succession's legal basis edited in place, its hash left as it was.
    conn = await asyncpg.connect(written.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT position, envelope FROM registry.events WHERE agreement_id = $1 AND sequence = 2",
            party_subject(PREDECESSOR),
        )
        assert row is not None
        doc = json.loads(row["envelope"])
        forged = {**doc, "data": {**doc["data"], "legal_basis": "99/2025/NĐ-CP"}}
        await conn.execute("ALTER TABLE registry.events DISABLE TRIGGER USER")
        try:
            await conn.execute(
                "UPDATE registry.events SET envelope = $1 WHERE position = $2",
                canonical_json(forged).decode(),
                row["position"],
            )
        finally:
            await conn.execute("ALTER TABLE registry.events ENABLE TRIGGER USER")
    finally:
        await conn.close()
    tampered = await verify(settings)
    assert not tampered.ok
    [first] = tampered.first_bad()
    assert (first.stream_id, first.sequence, first.position, first.check) == (
        party_subject(PREDECESSOR),
        2,
        row["position"],
        "hash",
    )
    assert {(p.source, p.check) for p in tampered.problems} == {("store", "hash"), ("kafka", "differs")}
    assert tampered.to_json()["broken_party_streams"] == 1 and tampered.to_json()["broken_agreements"] == 0
    # `party` folds the tampered event too, and says so beside the answer.
    after = await party(settings, PREDECESSOR, parse_instant(EFFECTIVE))
    assert any(f"{party_subject(PREDECESSOR)} sequence 2" in w for w in after.warnings), after.warnings
    code, out, err = await run_audit(
        "verify",
        "--skip-kafka",
        env={"DATABASE_URL": written.database_url, **written.kafka.env("AUDIT_")},
    )
    assert code == 1 and f"{party_subject(PREDECESSOR)} sequence 2" in out, out + err


async def test_party_as_of_either_side_of_the_effective_date(written: Written) -> None:
    settings = written.settings()

    before = await party(settings, PREDECESSOR, parse_instant("2025-06-30"))
    assert held(before) == [(OBLIGATION, "lead", "active", None)]
    assert before.obligations[0]["latest_report"]["period"] == "2023"
    assert before.transferred == [] and before.succeeded_by is None
    assert kinds(before) == ["AgreementSigned", "PartyRegistered", "ProgressReported"]
    assert before.warnings == []
    nobody = await party(settings, SUCCESSOR, parse_instant("2025-06-30"))
    assert nobody.obligations == [] and nobody.history == []

    # From the effective date, though recorded in December 2026; the late report of September
    # 2025 is not in yet (recorded after the instant).
    after = await party(settings, PREDECESSOR, parse_instant(EFFECTIVE))
    assert after.obligations == []
    assert [(o["obligation_id"], o["transferred_to"], o["transferred_on"]) for o in after.transferred] == [
        (OBLIGATION, SUCCESSOR, EFFECTIVE)
    ]
    assert after.transferred[0]["latest_report"]["period"] == "2023"
    assert after.succeeded_by == {
        "successor_party_ids": [SUCCESSOR],
        "effective_on": EFFECTIVE,
        "legal_basis": "45/2025/NĐ-CP",
    }
    assert kinds(after) == [
        "AgreementSigned",
        "PartyRegistered",
        "ProgressReported",
        "SuccessionRecorded",
        "ObligationsTransferred",
    ]
    assert after.warnings == []
    successor = await party(settings, SUCCESSOR, parse_instant(EFFECTIVE))
    assert held(successor) == [(OBLIGATION, "lead", "active", PREDECESSOR)]
    assert successor.obligations[0]["inherited_on"] == EFFECTIVE
    # Its own registration was recorded in November 2026: not yet in the directory then.
    assert kinds(successor) == ["SuccessionRecorded", "ObligationsTransferred"]

    # A timestamp on 30 June, late in the UTC day, is still before the date.
    assert held(await party(settings, PREDECESSOR, parse_instant("2025-06-30T23:59:59Z"))) == [
        (OBLIGATION, "lead", "active", None)
    ]
    # Later in 2025 the late report is in, on the side of the department that made it.
    december = await party(settings, PREDECESSOR, parse_instant("2025-12-31"))
    assert december.transferred[0]["latest_report"]["period"] == "2024"
    assert kinds(december) == [
        "AgreementSigned",
        "PartyRegistered",
        "ProgressReported",
        "ProgressReported",
        "SuccessionRecorded",
        "ObligationsTransferred",
    ]

    code, out, err = await run_audit(
        "party", PREDECESSOR, "--as-of", EFFECTIVE, env={"DATABASE_URL": written.database_url}
    )
    assert code == 0, out + err
    assert f"succeeded by {SUCCESSOR} on {EFFECTIVE}" in out and f"to {SUCCESSOR} on {EFFECTIVE}" in out


async def shadow_rows(conn: asyncpg.Connection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """What the shadow says of the succession: one test database holds one agreement."""
    queries = {
        "obligations": "SELECT party_id, role, status, inherited_from FROM {}.party_obligations ORDER BY 1",
        "transfers": "SELECT party_id, transferred_to, transferred_on::text FROM {}.party_transfers ORDER BY 1",
        "parties": "SELECT party_id, ceased_on::text, successor_party_id FROM {}.parties ORDER BY 1",
        "successions": """SELECT predecessor_party_id, successor_party_id, effective_on::text
                          FROM {}.party_successions ORDER BY 1, 2""",
        "streams": "SELECT agreement_id, last_sequence FROM {}.streams ORDER BY 1",
        "stuck": "SELECT (SELECT count(*) FROM {0}.parked), (SELECT count(*) FROM {0}.dead_letters)",
    }
    return {name: [tuple(r) for r in await conn.fetch(sql.format(schema))] for name, sql in queries.items()}


async def test_rebuild_as_of_either_side_of_the_effective_date(written: Written) -> None:
    settings = written.settings()
    agreement = written.agreement_id
    conn = await asyncpg.connect(written.database_url)
    try:
        for source in ("store", "kafka"):
            before = await rebuild(
                settings, source=source, schema=f"shadow_{source}_before", as_of=parse_instant("2025-06-30")
            )
            assert (before.counts.applied, before.counts.skipped_after_as_of) == (3, 4), source
            assert await shadow_rows(conn, f"shadow_{source}_before") == {
                "obligations": [(FRONT, "supporter", "active", None), (PREDECESSOR, "lead", "active", None)],
                "transfers": [],
                "parties": [(PREDECESSOR, None, None)],
                "successions": [],
                "streams": sorted([(agreement, 2), (party_subject(PREDECESSOR), 1)]),
                "stuck": [(0, 0)],
            }, source

            after = await rebuild(
                settings, source=source, schema=f"shadow_{source}_after", as_of=parse_instant(EFFECTIVE)
            )
            # The succession and the transfer are in; the late report and the successor's
            # registration (recorded after the instant) are not.
            assert (after.counts.applied, after.counts.skipped_after_as_of) == (5, 2), source
            assert await shadow_rows(conn, f"shadow_{source}_after") == {
                "obligations": [
                    (FRONT, "supporter", "active", None),
                    (SUCCESSOR, "lead", "active", PREDECESSOR),
                ],
                "transfers": [(PREDECESSOR, SUCCESSOR, EFFECTIVE)],
                "parties": [(PREDECESSOR, EFFECTIVE, SUCCESSOR)],
                "successions": [(PREDECESSOR, SUCCESSOR, EFFECTIVE)],
                # The agreement's stream stepped over the late report (sequence 3) to the transfer.
                "streams": sorted([(agreement, 4), (party_subject(PREDECESSOR), 2)]),
                "stuck": [(0, 0)],
            }, source
            history = await conn.fetch(
                f"""SELECT type, sequence FROM shadow_{source}_after.party_history
                    WHERE party_id = $1 AND type IN ($2, $3) ORDER BY position""",
                SUCCESSOR,
                SUCCEEDED,
                TRANSFERRED,
            )
            assert [(r["type"], r["sequence"]) for r in history] == [(SUCCEEDED, 2), (TRANSFERRED, 4)]

        # `party` and `rebuild` agree on who held what, either side of the date.
        for day, schema in (("2025-06-30", "shadow_store_before"), (EFFECTIVE, "shadow_store_after")):
            rows = await conn.fetch(
                f"SELECT party_id, obligation_id, role FROM {schema}.party_obligations ORDER BY 1, 2"
            )
            folded = [
                (who, o["obligation_id"], o["role"])
                for who in (FRONT, PREDECESSOR, SUCCESSOR)
                for o in (await party(settings, who, parse_instant(day))).obligations
            ]
            assert [tuple(r) for r in rows] == folded, day
    finally:
        await conn.close()
