"""Snapshots of agreement states: exact, tied to the fold that made them, never believed over the events.

The store's side (which snapshot a stream resumes from) is the port's contract
(tests/support/store_contract.py); here: the codec, the model version, and the repository.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import itertools
import json
from dataclasses import fields, replace
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from coordreg_contracts.common import LegalBasis, Obligation, Party, Term
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.agreement.state import (
    AgreementState,
    Closure,
    FormerParty,
    Inheritance,
    ObligationState,
    Report,
    fold,
)
from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from services.registry.bootstrap import command_bus
from services.registry.domain.errors import DomainError
from services.registry.refusals import refusal_status_and_body
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandBus, CommandContext
from services.registry.service_layer.event_store import Resumption, Snapshot
from services.registry.service_layer.repository import AgreementRepository
from services.registry.service_layer.snapshots import (
    FOLD_MODULES,
    MODEL_VERSION,
    decode_state,
    encode_state,
    model_version,
)
from tests.support.builders import report_body, sign_body

CTX = CommandContext(Caller.in_process("t"), correlation_id="c", causation_id="k")
PARTY = Party.model_validate(
    {"party_id": "p-a", "name": "Bên A", "role": "lead", "signatory": {"name": "Ông A", "title": "Chủ tịch"}}
)
OBLIGATION = Obligation.model_validate(
    {
        "obligation_id": "o-1",
        "title": "Việc một",
        "description": "Mô tả",
        "lead_party_id": "p-b",
        "supporting_party_ids": ["p-c"],
        "cadence": "quarterly",
    }
)
INHERITANCE = Inheritance("p-a", "p-b", date(2025, 7, 1), "Nghị quyết 60")


def every_field_set() -> AgreementState:
    """A state none of whose fields (nor their dataclasses') holds its default."""
    return AgreementState(
        agreement_id="a-1",
        version=7,
        document_number="25/CTPH",
        kind="program",
        title="Chương trình",
        locality="Hòa Bình",
        signed_on=date(2023, 4, 25),
        term=Term.model_validate({"start": "2023-01-01", "end": "2027-12-31"}),
        parties=MappingProxyType(
            {
                "p-b": PARTY.model_copy(update={"party_id": "p-b"}),
                "p-c": PARTY.model_copy(update={"party_id": "p-c"}),
            }
        ),
        legal_basis=(LegalBasis.model_validate({"reference": "40-CT/TW", "issued_on": "2014-11-22"}),),
        obligations=MappingProxyType(
            {
                "o-1": ObligationState(OBLIGATION, "active", (INHERITANCE,)),
                "o-2": ObligationState(OBLIGATION.model_copy(update={"obligation_id": "o-2"}), "withdrawn"),
            }
        ),
        parent_agreement_id="a-0",
        status="closed",
        closure=Closure(date(2027, 12, 31), "completed", "Tổng kết", "a-2"),
        reports=MappingProxyType(
            {
                ("o-1", "p-b", "2024-Q1"): Report(
                    "o-1", "p-b", "2024-Q1", "at_risk", None, date(2024, 4, 2), 3
                ),
                ("o-1", "p-c", "2024"): Report("o-1", "p-c", "2024", "completed", 100, date(2025, 1, 5), 5),
            }
        ),
        amendment_documents=("1/QĐ", "2/QĐ"),
        former_parties=MappingProxyType(
            {"p-a": FormerParty(PARTY, date(2025, 7, 1), "Nghị quyết 60", ("p-b",))}
        ),
    )


def test_a_state_round_trips_exactly() -> None:
    state = every_field_set()
    decoded = decode_state(encode_state(state))
    assert decoded == state
    # Mappings stay read-only and in the order the fold built them.
    assert isinstance(decoded.parties, MappingProxyType) and isinstance(decoded.reports, MappingProxyType)
    assert list(decoded.reports) == list(state.reports) and list(decoded.parties) == list(state.parties)


def test_every_field_of_the_state_is_encoded() -> None:
    """A field added to the state (or one of its dataclasses) must be added to the codec too."""
    encoded = json.loads(encode_state(every_field_set()))
    [[_, obligation], *_] = encoded["obligations"]
    [[_, former], *_] = encoded["former_parties"]
    [[_, report], *_] = encoded["reports"]
    assert set(encoded) == _names(AgreementState)
    assert set(obligation) == _names(ObligationState)
    assert set(obligation["inherited"][0]) == _names(Inheritance)
    assert set(report) == _names(Report)
    assert set(encoded["closure"]) == _names(Closure)
    assert set(former) == _names(FormerParty)


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def test_the_model_version_covers_every_module_the_fold_depends_on() -> None:
    """Every first-party module the state, the envelopes' reading or the codec imports
    (followed through the source) is hashed into the model version."""
    seen: set[str] = set()
    todo = [
        "services.agreement.state",
        "coordreg_contracts.envelope",
        "services.registry.service_layer.snapshots",
    ]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named = node.module
            elif isinstance(node, ast.Import):
                todo += [
                    a.name for a in node.names if a.name.split(".")[0] in ("services", "coordreg_contracts")
                ]
                continue
            else:
                continue
            if named.split(".")[0] in ("services", "coordreg_contracts"):
                todo.append(named)
                if named.split(".")[0] == "coordreg_contracts":
                    todo.append("coordreg_contracts")
    assert seen <= set(FOLD_MODULES), seen - set(FOLD_MODULES)


def test_the_model_version_changes_with_the_sources_or_the_format() -> None:
    assert model_version() == MODEL_VERSION
    assert model_version(format_=2) != MODEL_VERSION
    assert model_version(FOLD_MODULES[:-1]) != MODEL_VERSION


# -- the repository ----------------------------------------------------------------------------------


def _amend(change: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "document_number": f"{n}/QĐ",
        "reason": "Bổ sung",
        "effective_on": "2024-03-01",
        "changes": [change],
    }


# Who reports on what, and the periods of its cadence (the sample programme's obligations).
_REPORTERS = [
    ("nhan-dao", "mttq-hoa-binh", ["2023", "2024", "2025"]),
    ("nhan-dao", "hctd-hoa-binh", ["2023", "2024", "2025"]),
    ("tuyen-truyen", "hctd-hoa-binh", ["2024-Q1", "2024-Q3", "2025-Q2"]),
]
_reports = st.builds(
    lambda reporter, nth, status, percent: ReportProgress.model_validate(
        report_body(
            obligation_id=reporter[0],
            party_id=reporter[1],
            period=reporter[2][nth],
            status=status,
            completion_percent=percent,
        )
    ),
    st.sampled_from(_REPORTERS),
    st.integers(0, 2),
    st.sampled_from(["not_started", "in_progress", "at_risk", "completed"]),
    st.integers(0, 100),
)
_amendments = st.builds(
    lambda change, n: AmendAgreement.model_validate(_amend(change, n)),
    st.sampled_from(
        [
            {"op": "revise_obligation", "obligation_id": "tuyen-truyen", "description": "Trên nền tảng số"},
            {"op": "revise_obligation", "obligation_id": "nhan-dao", "title": "Nhân đạo, từ thiện"},
            {"op": "revise_obligation", "obligation_id": "nhan-dao", "supporting_party_ids": []},
            {
                "op": "add_party",
                "party": {"party_id": "hlhpn-hoa-binh", "name": "Hội Phụ nữ", "role": "member"},
            },
            {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen", "reason": "Không còn phù hợp"},
            {"op": "change_term", "term": {"start": "2023-01-01", "end": "2028-12-31"}},
            {"op": "change_term", "term": {"start": "2023-01-01", "end": "2029-12-31"}},
        ]
    ),
    st.integers(1, 999),
)
_closings = st.just(
    CloseTerm.model_validate(
        {
            "closed_on": "2027-12-31",
            "outcome": "completed",
            "summary": "Tổng kết",
            "successor_agreement_id": None,
        }
    )
)
_lives = st.builds(
    lambda middle, end: [*middle, *end],
    st.lists(st.one_of(_reports, _reports, _reports, _amendments), min_size=1, max_size=25),
    st.lists(_closings, max_size=1),
)


def _deterministic() -> dict[str, Any]:
    """Ids and times that repeat from one run to the next, so two runs' events compare byte for byte."""
    counter = itertools.count()
    return {
        "clock": lambda: "2025-01-01T00:00:00.000000Z",
        "new_id": lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
    }


async def _live(bus: CommandBus, agreement_id: str, command: Command) -> None:
    # A refusal (a report on a withdrawn obligation, anything after the closing) appends nothing.
    with contextlib.suppress(DomainError):
        await bus.run(command, CTX, agreement_id)


async def _warm(life: list[Command]) -> InMemoryEventStore:
    """The life lived by one registry, its cache warm throughout: no snapshot ever read."""
    registry, store = bootstrap.in_memory(**_deterministic())
    agreement_id = (
        await registry.bus.run(SignAgreement.model_validate(sign_body(document_number="1/CTPH")), CTX)
    ).agreement_id
    for command in life:
        await _live(registry.bus, agreement_id, command)
    return store


async def _cold(life: list[Command]) -> InMemoryEventStore:
    """The same life, each command decided by a fresh repository that resumes from the snapshot
    the previous one left (after every load)."""
    store = InMemoryEventStore()
    keys = InMemoryIdempotencyStore(store)
    made = _deterministic()

    def fresh_bus() -> CommandBus:
        agreements = AgreementRepository(store, snapshot_every=1)
        return command_bus(store, keys, refusal_status_and_body, agreements=agreements, **made)

    signing = SignAgreement.model_validate(sign_body(document_number="1/CTPH"))
    agreement_id = (await fresh_bus().run(signing, CTX)).agreement_id
    for command in life:
        await _live(fresh_bus(), agreement_id, command)
    return store


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_lives)
def test_commands_decided_on_resumed_states_append_the_very_same_events(life: list[Command]) -> None:
    warm, cold = asyncio.run(_warm(life)), asyncio.run(_cold(life))
    [agreement_id] = [s for s in warm.streams if not s.startswith("party/")]
    assert [e.envelope_text for e in cold.streams[agreement_id]] == [
        e.envelope_text for e in warm.streams[agreement_id]
    ]
    assert cold.snapshots, "the cold run resumed from snapshots"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_lives, st.data())
def test_a_snapshot_and_its_tail_give_the_state_of_the_whole_fold(
    life: list[Command], data: st.DataObject
) -> None:
    async def scenario() -> None:
        store = await _warm(life)
        [agreement_id] = [s for s in store.streams if not s.startswith("party/")]
        stored = await store.load(agreement_id)
        envelopes = [e.envelope() for e in stored]
        whole = fold(e.event() for e in envelopes)
        version = data.draw(st.integers(1, len(stored)), label="snapshot version")
        state = fold(e.event() for e in envelopes[:version])
        assert state is not None
        await store.save_snapshot(
            Snapshot(agreement_id, MODEL_VERSION, version, envelopes[version - 1].hash, encode_state(state))
        )
        loaded = await AgreementRepository(store).get(agreement_id)
        assert loaded.state == whole
        assert loaded.last_hash == envelopes[-1].hash
        assert (await AgreementRepository(store, snapshot_every=None).get(agreement_id)).state == whole

    asyncio.run(scenario())


class CountingStore(InMemoryEventStore):
    """Counts the events each read hands out, and can refuse to keep snapshots."""

    def __init__(self, *, refuse_snapshots: bool = False) -> None:
        super().__init__()
        self.read: list[int] = []
        self.refuse_snapshots = refuse_snapshots

    async def resume(self, stream_id: str, model_version: str) -> Resumption:
        resumption = await super().resume(stream_id, model_version)
        self.read.append(len(resumption.events))
        return resumption

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        if self.refuse_snapshots:
            raise ConnectionError("the database went away")
        await super().save_snapshot(snapshot)


async def _signed_and_reported(store: InMemoryEventStore, reports: int) -> str:
    registry = bootstrap.bootstrap(store, InMemoryIdempotencyStore(store))
    agreement_id = (await registry.bus.run(SignAgreement.model_validate(sign_body()), CTX)).agreement_id
    for n in range(reports):
        body = report_body(period=str(2023 + n % 4), completion_percent=n % 101)
        await registry.bus.run(ReportProgress.model_validate(body), CTX, agreement_id)
    return agreement_id


async def test_a_cold_load_of_a_long_stream_leaves_a_snapshot_and_the_next_reads_only_the_tail() -> None:
    store = CountingStore()
    agreement_id = await _signed_and_reported(store, 150)
    store.read.clear()
    first = await AgreementRepository(store, snapshot_every=100).get(agreement_id)
    [(_, snapshot)] = store.snapshots.items()
    assert (snapshot.version, snapshot.last_hash) == (151, first.last_hash)
    await _signed_and_reported_more(store, agreement_id, 2)
    store.read.clear()
    again = await AgreementRepository(store, snapshot_every=100).get(agreement_id)
    assert store.read == [2]
    assert again.state is not None and again.state.version == 153
    assert again.state == fold(e.envelope().event() for e in await store.load(agreement_id))


async def _signed_and_reported_more(store: InMemoryEventStore, agreement_id: str, reports: int) -> None:
    registry = bootstrap.bootstrap(store, InMemoryIdempotencyStore(store))
    for n in range(reports):
        body = report_body(period="2026", completion_percent=n)
        await registry.bus.run(ReportProgress.model_validate(body), CTX, agreement_id)


async def test_a_short_stream_leaves_no_snapshot() -> None:
    store = CountingStore()
    agreement_id = await _signed_and_reported(store, 98)
    await AgreementRepository(store, snapshot_every=100).get(agreement_id)
    assert store.snapshots == {}
    await AgreementRepository(store, snapshot_every=None).get(agreement_id)
    assert store.snapshots == {}


async def test_a_snapshot_that_cannot_be_saved_fails_no_command() -> None:
    store = CountingStore(refuse_snapshots=True)
    agreement_id = await _signed_and_reported(store, 3)
    bus = command_bus(
        store,
        InMemoryIdempotencyStore(store),
        refusal_status_and_body,
        agreements=AgreementRepository(store, snapshot_every=1),
    )
    result = await bus.run(ReportProgress.model_validate(report_body(period="2026")), CTX, agreement_id)
    assert result.version == 5 and store.snapshots == {}


async def test_a_snapshot_that_does_not_decode_to_its_own_version_is_folded_past() -> None:
    """Matching the events is the store's check; the repository checks what the text holds."""
    store = CountingStore()
    agreement_id = await _signed_and_reported(store, 4)
    stored = await store.load(agreement_id)
    envelopes = [e.envelope() for e in stored]
    whole = fold(e.event() for e in envelopes)
    early = fold(e.event() for e in envelopes[:2])
    assert whole is not None and early is not None
    for text in ("not json", "{}", encode_state(early), encode_state(replace(whole, agreement_id="other"))):
        store.snapshots.clear()
        await store.save_snapshot(Snapshot(agreement_id, MODEL_VERSION, 5, envelopes[-1].hash, text))
        loaded = await AgreementRepository(store).get(agreement_id)
        assert loaded.state == whole and loaded.last_hash == envelopes[-1].hash


async def test_a_snapshot_of_another_model_version_is_never_read() -> None:
    store = CountingStore()
    agreement_id = await _signed_and_reported(store, 4)
    stored = await store.load(agreement_id)
    whole = fold(e.envelope().event() for e in stored)
    assert whole is not None
    lying = encode_state(replace(whole, title="Không phải tên này"))
    await store.save_snapshot(Snapshot(agreement_id, "0-older", 5, stored[-1].envelope().hash, lying))
    assert (await AgreementRepository(store).get(agreement_id)).state == whole
