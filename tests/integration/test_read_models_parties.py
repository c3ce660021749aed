"""The party directory in the read models (issue 11), on a real PostgreSQL and over real HTTP.

The events are sealed here, hash-chained per stream as the registry seals them, and applied
with `apply_many`, the function the live worker and `coordreg-audit rebuild` apply Kafka
records with: so each test controls exactly which events exist and in what batches they
come. The projections service answers from the same database (its Kafka consumer off).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from coordreg_contracts.commands import ReportProgress, SignAgreement
from coordreg_contracts.envelope import canonical_json, seal
from coordreg_contracts.events import Event
from coordreg_contracts.parties import (
    ObligationSuccessor,
    PartyEvent,
    PartyKind,
    PartyRegistered,
    PartyRenamed,
    SuccessionRecorded,
    party_subject,
)

from deploy.local.processes import free_port
from deploy.tokens import mint
from services.agreement.state import AgreementState, evolve
from services.audit.rebuild import rebuild
from services.audit.settings import AuditSettings
from services.common.auth import ALL_SCOPES
from services.common.db import create_pool, migrate
from services.directory.state import PartyState, evolve_party
from services.projections.entrypoints.app import create_app
from services.projections.migrations import MIGRATIONS
from services.projections.readmodel.apply import Applied, ApplyOutcome, FoldedStates, apply_many
from services.projections.readmodel.document import to_document
from services.projections.settings import ProjectionSettings
from services.registry.domain.decide import StoreFacts, decide
from services.registry.domain.directory import Directory, decide_transfer
from services.registry.migrations import MIGRATIONS as REGISTRY_MIGRATIONS
from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack, serve, stop_server

FRONT, RED_CROSS = "mttq-hoa-binh", "hctd-hoa-binh"
NEW_FRONT = "mttq-phu-tho"
BASIS = "202/2025/QH15"
MERGED = date(2025, 7, 1)


@dataclass
class Log:
    """Sealed envelopes as the registry would record them: one position counter for the
    store, a sequence and hash chain per stream."""

    position: int = 0
    chains: dict[str, tuple[int, str]] = field(default_factory=dict)
    agreements: dict[str, AgreementState] = field(default_factory=dict)
    parties: dict[str, PartyState] = field(default_factory=dict)
    # Every message sealed, in position order.
    messages: list[bytes] = field(default_factory=list)

    def seal(self, subject: str, event: Event | PartyEvent) -> bytes:
        sequence, prevhash = self.chains.get(subject, (0, ""))
        self.position += 1
        envelope = seal(
            event=event,
            event_id=str(uuid.uuid4()),
            agreement_id=subject,
            sequence=sequence + 1,
            recorded_at=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            prevhash=prevhash,
            actor="test-client",
            correlation_id=str(uuid.uuid4()),
            causation_id=str(uuid.uuid4()),
        )
        self.chains[subject] = (sequence + 1, envelope.hash)
        message = canonical_json({**envelope.without_position(), "position": self.position})
        self.messages.append(message)
        return message

    def party(self, party_id: str, event: PartyEvent) -> bytes:
        self.parties[party_id] = evolve_party(self.parties.get(party_id), event)
        return self.seal(party_subject(party_id), event)

    def register(self, party_id: str, name: str, province: str | None = None) -> bytes:
        return self.party(
            party_id,
            PartyRegistered(party_id=party_id, name=name, kind=PartyKind.FRONT_COMMITTEE, province=province),
        )

    def agreement(self, agreement_id: str, command: Any) -> bytes:
        before = self.agreements.get(agreement_id)
        [event] = decide(command, before, StoreFacts(agreement_id))
        self.agreements[agreement_id] = evolve(before, event)
        return self.seal(agreement_id, event)

    def transfer(self, agreement_id: str, predecessor: str) -> bytes:
        state = self.agreements[agreement_id]
        [event] = decide_transfer(
            state, self.parties[predecessor], "succession-event", Directory(self.parties)
        )
        self.agreements[agreement_id] = evolve(state, event)
        return self.seal(agreement_id, event)


@dataclass
class ReadModels:
    pool: asyncpg.Pool
    http: httpx.AsyncClient
    cache: FoldedStates = field(default_factory=FoldedStates)

    async def apply(self, *messages: bytes, cached: bool = True) -> list[Applied | Exception]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await apply_many(conn, list(messages), self.cache if cached else None)

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = await self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def read_models(database_url: str) -> AsyncIterator[ReadModels]:
    pool = await create_pool(database_url, min_size=1, max_size=3, schema="projections")
    settings = ProjectionSettings(database_url=database_url, run_consumer=False, json_logs=False)
    port = free_port()
    server = await serve(create_app(settings), port)  # its start migrates the read models
    token = mint("test-client", ALL_SCOPES, ())
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=Stack.bearer(token), timeout=30)
    try:
        yield ReadModels(pool, http)
    finally:
        await http.aclose()
        await stop_server(*server)
        await pool.close()


def applied(results: list[Applied | Exception]) -> list[ApplyOutcome]:
    outcomes = []
    for result in results:
        assert isinstance(result, Applied), result
        outcomes.append(result.outcome)
    return outcomes


async def succession(read_models: ReadModels, log: Log) -> str:
    """Hòa Bình's front (lead of `nhan-dao`) is succeeded by Phú Thọ's; returns the agreement."""
    agreement = "a-hoa-binh"
    sign = SignAgreement.model_validate(sign_body(document_number="25/KH-MTTQ"))
    report = ReportProgress.model_validate(report_body(party_id=FRONT, period="2024"))
    assert (
        applied(
            await read_models.apply(
                log.register(FRONT, "Ủy ban MTTQ tỉnh Hòa Bình", "Hòa Bình"),
                log.register(RED_CROSS, "Hội Chữ thập đỏ tỉnh Hòa Bình", "tỉnh Hòa Bình"),
                log.register(NEW_FRONT, "Ủy ban MTTQ tỉnh Phú Thọ", "Phú Thọ"),
                log.agreement(agreement, sign),
                log.agreement(agreement, report),
            )
        )
        == [ApplyOutcome.APPLIED] * 5
    )
    # Each in its own batch and without the cache: every state is read back from its rows.
    for message in (
        log.party(
            FRONT, PartyRenamed(name="Ủy ban MTTQ Việt Nam tỉnh Hòa Bình", effective_on=date(2024, 1, 2))
        ),
        log.party(
            FRONT,
            SuccessionRecorded(
                effective_on=MERGED,
                legal_basis=BASIS,
                successor_party_id=NEW_FRONT,
                obligation_successors=[
                    ObligationSuccessor(
                        agreement_id="a-other", obligation_id="x", successor_party_id=RED_CROSS
                    )
                ],
            ),
        ),
        log.transfer(agreement, FRONT),
    ):
        assert applied(await read_models.apply(message, cached=False)) == [ApplyOutcome.APPLIED]
    return agreement


async def test_a_successor_holds_what_it_inherited_and_the_predecessor_what_it_ceded(
    read_models: ReadModels,
) -> None:
    agreement = await succession(read_models, Log())
    successor = await read_models.get(f"/v1/parties/{NEW_FRONT}/obligations")
    assert successor["succeeded_by"] is None
    assert [
        (o["agreement_id"], o["obligation_id"], o["role"], o["inherited_from"], o["inherited_on"])
        for o in successor["obligations"]
    ] == [(agreement, "nhan-dao", "lead", FRONT, "2025-07-01")]
    red_cross = await read_models.get(f"/v1/parties/{RED_CROSS}/obligations", status="all")
    assert {
        (o["obligation_id"], o["inherited_from"], o["inherited_on"]) for o in red_cross["obligations"]
    } == {
        ("nhan-dao", None, None),
        ("tuyen-truyen", None, None),
    }

    predecessor = await read_models.get(f"/v1/parties/{FRONT}/obligations")
    assert predecessor["obligations"] == []
    assert (await read_models.get(f"/v1/parties/{FRONT}/obligations", status="all"))["obligations"] == []
    assert predecessor["succeeded_by"] == {
        "successor_party_id": NEW_FRONT,
        "effective_on": "2025-07-01",
        "legal_basis": BASIS,
    }
    ceded = await read_models.get(f"/v1/parties/{FRONT}/obligations", status="transferred")
    assert ceded["succeeded_by"] == predecessor["succeeded_by"]
    [item] = ceded["obligations"]
    assert item == {
        "agreement_id": agreement,
        "document_number": "25/KH-MTTQ",
        "agreement_title": sign_body()["title"],
        "obligation_id": "nhan-dao",
        "title": "Tổ chức hoạt động nhân đạo, từ thiện và an sinh xã hội",
        "cadence": "annual",
        "status": "active",
        # Its own report, made while it held the obligation.
        "latest_report": {
            "period": "2024",
            "status": "in_progress",
            "completion_percent": 60,
            "reported_on": "2024-12-20",
        },
        "inherited_from": None,
        "inherited_on": None,
        "transferred_to": NEW_FRONT,
        "transferred_on": "2025-07-01",
    }
    assert (await read_models.get(f"/v1/parties/{NEW_FRONT}/obligations", status="transferred"))[
        "obligations"
    ] == []
    bad = await read_models.http.get(f"/v1/parties/{FRONT}/obligations", params={"status": "ceded"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


async def test_history_holds_directory_events_and_successions_on_both_sides(read_models: ReadModels) -> None:
    agreement = await succession(read_models, Log())

    async def history(party_id: str) -> list[tuple[str, str | None]]:
        events = (await read_models.get(f"/v1/parties/{party_id}/history"))["events"]
        return [(e["type"].split(".")[-2], e["agreement_id"]) for e in events]

    assert await history(FRONT) == [
        ("PartyRegistered", None),
        ("AgreementSigned", agreement),
        ("ProgressReported", agreement),
        ("PartyRenamed", None),
        ("SuccessionRecorded", None),
        ("ObligationsTransferred", agreement),
    ]
    assert await history(NEW_FRONT) == [
        ("PartyRegistered", None),
        ("SuccessionRecorded", None),
        ("ObligationsTransferred", agreement),
    ]
    # Named by the succession for an obligation of another agreement; not by this transfer.
    assert await history(RED_CROSS) == [
        ("PartyRegistered", None),
        ("AgreementSigned", agreement),
        ("SuccessionRecorded", None),
    ]
    events = (await read_models.get(f"/v1/parties/{NEW_FRONT}/history"))["events"]
    assert events[1]["summary"] == (
        f"{FRONT} succeeded by {NEW_FRONT} (some obligations to {RED_CROSS}) on 2025-07-01 ({BASIS})"
    )
    assert events[1]["sequence"] == 3 and "agreement_id" in events[1]
    assert (
        events[2]["summary"]
        == f"{FRONT} succeeded by {NEW_FRONT} on 2025-07-01 ({BASIS}): obligations nhan-dao"
    )


async def test_a_party_entry_links_its_predecessors_and_successors(read_models: ReadModels) -> None:
    log = Log()
    await succession(read_models, log)
    successor = await read_models.get(f"/v1/parties/{NEW_FRONT}", min_position=log.position)
    assert successor == {
        "party_id": NEW_FRONT,
        "name": "Ủy ban MTTQ tỉnh Phú Thọ",
        "kind": "front_committee",
        "province": "Phú Thọ",
        "province_now": "Phú Thọ",
        "electronic_id": None,
        "unit_code": None,
        "names": [{"name": "Ủy ban MTTQ tỉnh Phú Thọ", "effective_on": None, "legal_basis": None}],
        "registered_from_agreement_id": None,
        "status": "active",
        "succession": None,
        "predecessors": [
            {
                "party_id": FRONT,
                "name": "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình",
                "effective_on": "2025-07-01",
                "legal_basis": BASIS,
            }
        ],
        "successors": [],
        "version": 1,
        "position": 3,
    }
    predecessor = await read_models.get(f"/v1/parties/{FRONT}")
    assert predecessor["status"] == "ceased" and predecessor["version"] == 3
    assert predecessor["province"] == "Hòa Bình" and predecessor["province_now"] == "Phú Thọ"
    assert [n["name"] for n in predecessor["names"]] == [
        "Ủy ban MTTQ tỉnh Hòa Bình",
        "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình",
    ]
    assert predecessor["names"][1] == {
        "name": "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình",
        "effective_on": "2024-01-02",
        "legal_basis": None,
    }
    assert predecessor["succession"] == {
        "effective_on": "2025-07-01",
        "legal_basis": BASIS,
        "successor_party_id": NEW_FRONT,
        "obligation_successors": [
            {"agreement_id": "a-other", "obligation_id": "x", "successor_party_id": RED_CROSS}
        ],
    }
    assert predecessor["predecessors"] == []
    assert predecessor["successors"] == [
        {
            "party_id": RED_CROSS,
            "name": "Hội Chữ thập đỏ tỉnh Hòa Bình",
            "effective_on": "2025-07-01",
            "legal_basis": BASIS,
        },
        {
            "party_id": NEW_FRONT,
            "name": "Ủy ban MTTQ tỉnh Phú Thọ",
            "effective_on": "2025-07-01",
            "legal_basis": BASIS,
        },
    ]
    red_cross = await read_models.get(f"/v1/parties/{RED_CROSS}")
    assert red_cross["province_now"] == "Phú Thọ"
    assert [p["party_id"] for p in red_cross["predecessors"]] == [FRONT]

    unknown = await read_models.http.get("/v1/parties/nobody")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["status"] == 404
    # A party of an agreement that is not in the directory is unknown to it too.
    assert (await read_models.http.get("/v1/parties/bao-hoa-binh")).status_code == 404


async def test_party_streams_skip_duplicates_park_gaps_and_refuse_foreign_events(
    read_models: ReadModels,
) -> None:
    log = Log()
    registered = log.register(FRONT, "Ủy ban MTTQ tỉnh Hòa Bình")
    renamed = log.party(
        FRONT, PartyRenamed(name="Ủy ban MTTQ Việt Nam tỉnh Hòa Bình", effective_on=date(2024, 1, 2))
    )
    assert applied(await read_models.apply(renamed)) == [ApplyOutcome.PARKED]
    assert (await read_models.http.get(f"/v1/parties/{FRONT}")).status_code == 404
    [filled] = await read_models.apply(registered)
    assert isinstance(filled, Applied) and filled.outcome is ApplyOutcome.APPLIED and filled.resumed == 1
    assert applied(await read_models.apply(registered, renamed)) == [ApplyOutcome.DUPLICATE] * 2
    entry = await read_models.get(f"/v1/parties/{FRONT}")
    assert entry["name"] == "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình" and entry["version"] == 2
    assert await read_models.pool.fetchval("SELECT count(*) FROM parked") == 0
    assert (
        await read_models.pool.fetchval(
            "SELECT last_sequence FROM streams WHERE agreement_id = $1", party_subject(FRONT)
        )
        == 2
    )

    # An agreement's event on a party stream, a second registration, a registration of
    # another party: each refused on its own (the worker dead-letters them), the rest applied.
    signing = SignAgreement.model_validate(sign_body())
    [signed] = decide(signing, None, StoreFacts("a-1"))
    foreign = log.seal(party_subject(FRONT), signed)
    other = log.register("mttq-lao-cai", "Ủy ban MTTQ tỉnh Lào Cai")
    wrong_id = log.seal(party_subject("x"), PartyRegistered(party_id="y", name="Y", kind=PartyKind.OTHER))
    results = await read_models.apply(foreign, other, wrong_id)
    assert isinstance(results[0], KeyError)
    assert isinstance(results[1], Applied) and results[1].outcome is ApplyOutcome.APPLIED
    assert isinstance(results[2], ValueError)
    assert (await read_models.get("/v1/parties/mttq-lao-cai"))["name"] == "Ủy ban MTTQ tỉnh Lào Cai"


async def test_locality_now_and_document_type_in_listing_search_and_document(read_models: ReadModels) -> None:
    log = Log()
    hoa_binh = SignAgreement.model_validate(
        sign_body(document_number="25/KH-MTTQ", title="Kế hoạch Hòa Bình")
    )
    ha_noi = SignAgreement.model_validate(
        sign_body(document_number="3/QC-UBND", locality="Hà Nội", title="Quy chế Hà Nội")
    )
    vinh_phuc = SignAgreement.model_validate(
        sign_body(document_number="8/CTPH-MTTQ", locality="tỉnh Vĩnh Phúc", title="Chương trình Vĩnh Phúc")
    )
    assert (
        applied(
            await read_models.apply(
                log.agreement("a-hb", hoa_binh),
                log.agreement("a-hn", ha_noi),
                log.agreement("a-vp", vinh_phuc),
            )
        )
        == [ApplyOutcome.APPLIED] * 3
    )

    async def listed(**params: Any) -> list[tuple[str, str, str | None]]:
        items = (await read_models.get("/v1/agreements", **params))["agreements"]
        return [(a["agreement_id"], a["locality_now"], a["document_type"]) for a in items]

    assert await listed() == [("a-hb", "Phú Thọ", "KH"), ("a-hn", "Hà Nội", "QC"), ("a-vp", "Phú Thọ", None)]
    assert await listed(locality="Phú Thọ") == [("a-hb", "Phú Thọ", "KH"), ("a-vp", "Phú Thọ", None)]
    assert await listed(locality="tỉnh phu tho") == [("a-hb", "Phú Thọ", "KH"), ("a-vp", "Phú Thọ", None)]
    assert await listed(locality="Hoa Binh") == [("a-hb", "Phú Thọ", "KH")]
    assert await listed(locality="Hòa Bình") == [("a-hb", "Phú Thọ", "KH")]
    assert await listed(locality="Hà Nội") == [("a-hn", "Hà Nội", "QC")]
    assert await listed(document_type="KH") == [("a-hb", "Phú Thọ", "KH")]
    assert await listed(document_type="QC", locality="Phú Thọ") == []
    assert await listed(q="ke hoach", locality="Phú Thọ", document_type="KH") == [("a-hb", "Phú Thọ", "KH")]
    assert await listed(q="ke hoach", document_type="QC") == []
    assert await listed(q="vinh phuc", locality="Phú Thọ") == [("a-vp", "Phú Thọ", None)]
    refused = await read_models.http.get("/v1/agreements", params={"document_type": "kh"})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert "'KH'" in refused.text and "'QĐ'" in refused.text  # the allowed values are listed

    document = await read_models.get("/v1/agreements/a-hb")
    assert document["locality"] == "Hòa Bình" and document["locality_now"] == "Phú Thọ"
    assert document["document_type"] == "KH" and document["former_parties"] == []
    assert all(o["inherited"] == [] for o in document["obligations"])


async def test_the_agreement_document_after_a_transfer(read_models: ReadModels) -> None:
    log = Log()
    agreement = await succession(read_models, log)
    document = await read_models.get(f"/v1/agreements/{agreement}")
    assert document == json.loads(json.dumps(to_document(log.agreements[agreement])))
    [former] = document["former_parties"]
    assert (former["party_id"], former["successor_party_ids"]) == (FRONT, [NEW_FRONT])
    nhan_dao = next(o for o in document["obligations"] if o["obligation_id"] == "nhan-dao")
    assert nhan_dao["lead_party_id"] == NEW_FRONT
    assert nhan_dao["inherited"] == [
        {"from_party_id": FRONT, "to_party_id": NEW_FRONT, "effective_on": "2025-07-01", "legal_basis": BASIS}
    ]


async def test_rows_from_before_the_migration_read_sensibly_and_heal_on_the_next_event(
    database_url: str, tmp_path: Path
) -> None:
    """Migration 004 cannot compute the province map in SQL: an existing agreement keeps its
    locality as `locality_now` and no `document_type` until its next event (or a rebuild)."""
    old = tmp_path / "migrations"
    old.mkdir()
    for script in sorted(MIGRATIONS.glob("00[123]_*.sql")):
        shutil.copy(script, old / script.name)
    pool = await create_pool(database_url, min_size=1, max_size=2, schema="projections")
    try:
        assert await migrate(pool, "projections", old, schema="projections") == [
            "001_read_models.sql",
            "002_dead_letters.sql",
            "003_search_trigrams.sql",
        ]
        log = Log()
        message = log.agreement(
            "a-old", SignAgreement.model_validate(sign_body(document_number="25/KH-MTTQ"))
        )
        state = log.agreements["a-old"]
        document = to_document(state)
        for key in ("former_parties", "locality_now", "document_type"):
            del document[key]
        for obligation in document["obligations"]:
            del obligation["inherited"]
        sealed = json.loads(message)
        # The row as the code before this migration wrote it.
        await pool.execute(
            """INSERT INTO agreements (agreement_id, version, first_position, last_position, document_number,
                   kind, title, locality, locality_key, status, signed_on, term_start, term_end, party_ids,
                   search_text, state)
               VALUES ('a-old', 1, 1, 1, $1, 'program', $2, 'Hòa Bình', 'hoa binh', 'active', $3, $4, $5, $6,
                       'x', $7::text::jsonb)""",
            state.document_number,
            state.title,
            state.signed_on,
            state.term.start,
            state.term.end,
            sorted(state.parties),
            json.dumps(document, ensure_ascii=False),
        )
        await pool.execute("INSERT INTO streams VALUES ('a-old', 1, 1, $1)", sealed["hash"])
        assert await migrate(pool, "projections", MIGRATIONS, schema="projections") == [
            "004_party_directory.sql",
            "005_agreement_state_uncompressed.sql",
        ]
        row = await pool.fetchrow("SELECT locality_now, locality_now_key, document_type FROM agreements")
        assert row is not None and dict(row) == {
            "locality_now": "Hòa Bình",
            "locality_now_key": "hoa binh",
            "document_type": None,
        }
        report = log.agreement("a-old", ReportProgress.model_validate(report_body()))
        async with pool.acquire() as conn, conn.transaction():
            assert applied(await apply_many(conn, [report])) == [ApplyOutcome.APPLIED]
        row = await pool.fetchrow(
            "SELECT locality_now, locality_now_key, document_type, state FROM agreements"
        )
        assert row is not None
        assert (row["locality_now"], row["locality_now_key"], row["document_type"]) == (
            "Phú Thọ",
            "phu tho",
            "KH",
        )
        assert row["state"]["former_parties"] == [] and row["state"]["locality_now"] == "Phú Thọ"
    finally:
        await pool.close()


# Every read-model table, and the columns that say when a row was written rather than what it says.
READ_MODEL_TABLES = {
    "agreements": ("updated_at",),
    "party_obligations": (),
    "party_transfers": (),
    "reports": (),
    "party_history": (),
    "parties": (),
    "party_successions": (),
    "streams": (),
    "applied": ("applied_at",),
    "parked": ("parked_at",),
}


async def test_a_rebuild_from_the_store_equals_the_read_models_applied_live(
    read_models: ReadModels, database_url: str
) -> None:
    """Party and agreement streams interleave in any order across the rebuild's connections
    (spread by subject), and still give the same rows as the live batches did."""
    log = Log()
    await succession(read_models, log)
    more = [
        log.agreement(
            "a-vp", SignAgreement.model_validate(sign_body(locality="Vĩnh Phúc", document_number="1/KH-X"))
        ),
        log.party(RED_CROSS, PartyRenamed(name="Hội Chữ thập đỏ tỉnh Phú Thọ", effective_on=MERGED)),
        log.register("mttq-lao-cai", "Ủy ban MTTQ tỉnh Lào Cai", "Lào Cai"),
        log.party(
            NEW_FRONT,
            SuccessionRecorded(effective_on=date(2026, 1, 1), legal_basis="9/NQ-X", successor_party_id="z"),
        ),
    ]
    assert applied(await read_models.apply(*more)) == [ApplyOutcome.APPLIED] * len(more)

    store = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(store, "registry", REGISTRY_MIGRATIONS)
        for message in log.messages:  # positions are handed out in this order, as the log's
            envelope = json.loads(message)
            position = envelope.pop("position")
            stored = await store.fetchval(
                """INSERT INTO registry.events (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
                   VALUES ($1, $2, $3::uuid, $4, $5, $6) RETURNING position""",
                envelope["subject"],
                envelope["sequence"],
                envelope["id"],
                envelope["type"],
                datetime.fromisoformat(envelope["time"]),
                canonical_json(envelope).decode(),
            )
            assert stored == position
        settings = AuditSettings(database_url=database_url, progress_seconds=0)
        result = await rebuild(settings, source="store", schema="shadow_parties", workers=3)
        assert result.counts.applied == len(log.messages) and result.counts.dead_lettered == 0
        for table, ignored in READ_MODEL_TABLES.items():
            rows = "to_jsonb(t)" + "".join(f" - '{column}'" for column in ignored)
            counts = await store.fetchrow(
                f"""SELECT (SELECT count(*) FROM projections.{table}) AS live,
                           (SELECT count(*) FROM (SELECT {rows} FROM projections.{table} t
                                                  EXCEPT SELECT {rows} FROM shadow_parties.{table} t) d) AS only_live,
                           (SELECT count(*) FROM (SELECT {rows} FROM shadow_parties.{table} t
                                                  EXCEPT SELECT {rows} FROM projections.{table} t) d) AS only_shadow"""
            )
            assert counts is not None and (counts["only_live"], counts["only_shadow"]) == (0, 0), table
            assert counts["live"] > 0 or table == "parked", table
    finally:
        await store.close()
