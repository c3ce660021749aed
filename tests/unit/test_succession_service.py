"""The succession process manager on the in-memory store (docs/CONTRACT.md, decisions 17 and
18): what a succession does to every agreement, exactly once, and the reports after it.

The directory commands' own refusals are in tests/unit/test_directory_service.py.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest
from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement
from coordreg_contracts.common import Role
from coordreg_contracts.events import ObligationsTransferred
from coordreg_contracts.parties import RecordSuccession, RegisterParty

from services.agreement.state import AgreementState, Inheritance
from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from services.registry.bootstrap import Registry
from services.registry.domain.errors import Rejected
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from services.registry.service_layer.successions import Carried
from tests.support.builders import report_body, sign_body

CTX = CommandContext(Caller.in_process("signer"), correlation_id="c-sign", causation_id="k")
ADMIN = CommandContext(Caller.in_process("directory-admin"), correlation_id="c-succession", causation_id="k2")
FRONT, RED_CROSS = "mttq-hoa-binh", "hctd-hoa-binh"  # HOA_BINH: signed 2023-04-25, term 2023-2027
FRONT_NOW, RED_CROSS_NOW, LATER = "mttq-phu-tho", "hctd-phu-tho", "mttq-trung-uong"


@pytest.fixture
def registry() -> tuple[Registry, InMemoryEventStore]:
    return bootstrap.in_memory()


async def sign(reg: Registry, **overrides: Any) -> str:
    return (await reg.bus.run(SignAgreement.model_validate(sign_body(**overrides)), CTX)).agreement_id


async def register(reg: Registry, *party_ids: str) -> None:
    for party_id in party_ids:
        body = {"party_id": party_id, "name": f"Đơn vị {party_id}", "kind": "front_committee"}
        await reg.bus.run_directory(RegisterParty.model_validate(body), ADMIN, party_id)


async def succeed(
    reg: Registry, party_id: str, successor: str, effective_on: str = "2025-07-01", **fields: Any
) -> None:
    body = {"effective_on": effective_on, "legal_basis": "202/2025/QH15", "successor_party_id": successor}
    await reg.bus.run_directory(RecordSuccession.model_validate({**body, **fields}), ADMIN, party_id)


async def state(reg: Registry, agreement_id: str) -> AgreementState:
    loaded = (await reg.agreements.get(agreement_id)).state
    assert loaded is not None
    return loaded


async def transfers(store: InMemoryEventStore, agreement_id: str) -> list[ObligationsTransferred]:
    events = [e.envelope().event() for e in await store.load(agreement_id)]
    return [e for e in events if isinstance(e, ObligationsTransferred)]


def holders(agreement: AgreementState) -> dict[str, tuple[str, list[str]]]:
    return {
        oid: (o.obligation.lead_party_id, list(o.obligation.supporting_party_ids))
        for oid, o in agreement.obligations.items()
    }


def report(party_id: str, period: str, obligation_id: str = "nhan-dao") -> ReportProgress:
    return ReportProgress.model_validate(
        report_body(obligation_id=obligation_id, party_id=party_id, period=period, reported_on="2026-01-10")
    )


async def test_the_manager_carries_a_succession_into_the_agreement(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    agreement = await sign(reg)
    await register(reg, FRONT_NOW)
    await succeed(reg, FRONT, FRONT_NOW)
    # Asynchronous: the succession's answer comes before any transfer.
    assert (await state(reg, agreement)).version == 1
    assert await reg.successions.run_pending() == [Carried(FRONT, 1, 0)]
    after = await state(reg, agreement)
    assert after.version == 2
    assert {p: (party.name, party.role) for p, party in after.parties.items()} == {
        FRONT_NOW: (
            f"Đơn vị {FRONT_NOW}",
            Role.LEAD,
        ),  # the directory's name; the lead, as its predecessor was
        RED_CROSS: ("Hội Chữ thập đỏ tỉnh Hòa Bình", Role.MEMBER),
    }
    assert holders(after) == {"nhan-dao": (FRONT_NOW, [RED_CROSS]), "tuyen-truyen": (RED_CROSS, [])}
    inheritance = Inheritance(FRONT, FRONT_NOW, date(2025, 7, 1), "202/2025/QH15")
    assert after.obligations["nhan-dao"].inherited == (inheritance,)
    assert after.obligations["tuyen-truyen"].inherited == ()
    former = after.former_parties[FRONT]
    assert (former.party.name, former.party.role) == ("Ủy ban MTTQ Việt Nam tỉnh Hòa Bình", Role.LEAD)
    assert (former.effective_on, former.successor_party_ids) == (date(2025, 7, 1), (FRONT_NOW,))
    # The transfer is caused by the succession event, correlated with its request, by its actor.
    [succession_event] = [e.envelope() for e in await store.load(f"party/{FRONT}")][-1:]
    [transfer] = [e.envelope() for e in await store.load(agreement)][-1:]
    assert (transfer.actor, transfer.correlationid, transfer.causationid) == (
        "directory-admin",
        "c-succession",
        succession_event.id,
    )
    event = transfer.event()
    assert isinstance(event, ObligationsTransferred) and event.succession_event_id == succession_event.id
    assert await store.pending_successions() == []


async def test_one_obligation_goes_to_another_successor(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    agreement = await sign(reg)
    await register(reg, FRONT_NOW, RED_CROSS_NOW)
    named = [{"agreement_id": agreement, "obligation_id": "nhan-dao", "successor_party_id": RED_CROSS_NOW}]
    await succeed(reg, FRONT, FRONT_NOW, obligation_successors=named)
    await reg.successions.run_pending()
    after = await state(reg, agreement)
    # The default successor takes the lead of the agreement though no obligation goes to it.
    assert {p: party.role for p, party in after.parties.items()} == {
        FRONT_NOW: Role.LEAD,
        RED_CROSS_NOW: Role.MEMBER,
        RED_CROSS: Role.MEMBER,
    }
    assert holders(after)["nhan-dao"] == (RED_CROSS_NOW, [RED_CROSS])
    assert after.former_parties[FRONT].successor_party_ids == (FRONT_NOW, RED_CROSS_NOW)
    [event] = await transfers(store, agreement)
    assert [p.party_id for p in event.successors] == [FRONT_NOW, RED_CROSS_NOW]


async def test_two_obligations_to_one_other_successor_name_it_once(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    # The front leads one obligation and supports the other: both go to the same second successor.
    body = sign_body()
    body["obligations"][1]["supporting_party_ids"] = [FRONT]
    agreement = await sign(reg, obligations=body["obligations"])
    await register(reg, FRONT_NOW, LATER)
    named = [
        {"agreement_id": agreement, "obligation_id": oid, "successor_party_id": LATER}
        for oid in ("nhan-dao", "tuyen-truyen")
    ]
    await succeed(reg, FRONT, FRONT_NOW, obligation_successors=named)
    await reg.successions.run_pending()
    [event] = await transfers(store, agreement)
    assert [p.party_id for p in event.successors] == [FRONT_NOW, LATER]
    after = await state(reg, agreement)
    assert after.former_parties[FRONT].successor_party_ids == (FRONT_NOW, LATER)
    assert holders(after) == {"nhan-dao": (LATER, [RED_CROSS]), "tuyen-truyen": (RED_CROSS, [LATER])}


async def test_a_successor_already_a_party_keeps_its_entry_and_takes_the_lead(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, _ = registry
    agreement = await sign(reg)
    # The Red Cross takes over the front's functions: one party is left, leading everything.
    await succeed(reg, FRONT, RED_CROSS)
    await reg.successions.run_pending()
    after = await state(reg, agreement)
    assert {p: (party.name, party.role) for p, party in after.parties.items()} == {
        RED_CROSS: ("Hội Chữ thập đỏ tỉnh Hòa Bình", Role.LEAD)
    }
    # It no longer supports what it now leads.
    assert holders(after) == {"nhan-dao": (RED_CROSS, []), "tuyen-truyen": (RED_CROSS, [])}


async def test_a_chain_ends_with_the_last_successor_each_transfer_once(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    first, second = await sign(reg), await sign(reg)
    await register(reg, FRONT_NOW, LATER)
    await succeed(reg, FRONT, FRONT_NOW)
    await reg.successions.run_pending()
    await succeed(reg, FRONT_NOW, LATER, effective_on="2026-01-01")
    assert await reg.successions.run_pending() == [Carried(FRONT_NOW, 2, 0)]
    for agreement in (first, second):
        after = await state(reg, agreement)
        assert set(after.parties) == {LATER, RED_CROSS}
        assert holders(after)["nhan-dao"] == (LATER, [RED_CROSS])
        assert [(i.from_party_id, i.to_party_id) for i in after.obligations["nhan-dao"].inherited] == [
            (FRONT, FRONT_NOW),
            (FRONT_NOW, LATER),
        ]
        assert [t.predecessor_party_id for t in await transfers(store, agreement)] == [FRONT, FRONT_NOW]
    assert await reg.successions.run_pending() == []


async def test_a_chain_recorded_before_any_run(registry: tuple[Registry, InMemoryEventStore]) -> None:
    """The successor ceased before its predecessor's agreements reached it: the transfer to it
    queues it again, so it passes them on in turn."""
    reg, store = registry
    agreement = await sign(reg)
    await register(reg, FRONT_NOW, LATER)
    await succeed(reg, FRONT, FRONT_NOW)
    await succeed(reg, FRONT_NOW, LATER, effective_on="2026-01-01")
    for _ in range(3):
        await reg.successions.run_pending()
    assert await store.pending_successions() == []
    after = await state(reg, agreement)
    assert set(after.parties) == {LATER, RED_CROSS}
    assert [t.predecessor_party_id for t in await transfers(store, agreement)] == [FRONT, FRONT_NOW]


async def test_an_agreement_signed_late_gets_its_transfer_at_the_next_run(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    await register(reg, FRONT_NOW)
    early = await sign(reg)
    await succeed(reg, FRONT, FRONT_NOW)
    assert await reg.successions.run_pending() == [Carried(FRONT, 1, 0)]
    # An older agreement, registered after the succession: signed before it took effect.
    late = await sign(reg, signed_on="2024-05-01")
    assert [p.party_id for p in await store.pending_successions()] == [FRONT]
    assert await reg.successions.run_pending() == [Carried(FRONT, 1, 1)]
    assert FRONT_NOW in (await state(reg, late)).parties
    assert [len(await transfers(store, a)) for a in (early, late)] == [1, 1]


async def test_the_manager_is_idempotent(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    agreements = [await sign(reg) for _ in range(3)]
    await register(reg, FRONT_NOW)
    await succeed(reg, FRONT, FRONT_NOW)
    assert await reg.successions.carry(FRONT) == Carried(FRONT, 3, 0)
    assert await reg.successions.carry(FRONT) == Carried(FRONT, 0, 3)
    # Still queued (carry does not dequeue): the run finds nothing left to do, then dequeues.
    assert await reg.successions.run_pending() == [Carried(FRONT, 0, 3)]
    assert await reg.successions.run_pending() == []
    assert [len(await transfers(store, a)) for a in agreements] == [1, 1, 1]
    # A party that has not ceased, or that the directory does not hold, has nothing to carry.
    assert await reg.successions.carry(RED_CROSS) == Carried(RED_CROSS, 0, 0)
    assert await reg.successions.carry("nobody") == Carried("nobody", 0, 0)


async def test_two_managers_at_once_transfer_each_agreement_once() -> None:
    store = InMemoryEventStore()
    one, other = (bootstrap.bootstrap(store, InMemoryIdempotencyStore(store)) for _ in range(2))
    agreements = [await sign(one) for _ in range(4)]
    await register(one, FRONT_NOW)
    await succeed(one, FRONT, FRONT_NOW)
    done = await asyncio.gather(one.successions.run_pending(), other.successions.run_pending())
    assert sum(c.transferred for run in done for c in run) == 4
    assert [len(await transfers(store, a)) for a in agreements] == [1, 1, 1, 1]
    assert await store.pending_successions() == []


async def test_closed_agreements_and_ones_the_party_left_are_untouched(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    running, closed, left = await sign(reg), await sign(reg), await sign(reg)
    close = CloseTerm.model_validate({"closed_on": "2025-06-30", "outcome": "completed", "summary": "Xong"})
    await reg.bus.run(close, CTX, closed)
    # The front hands everything to the Women's Union and leaves the third agreement.
    women = {"party_id": "hlhpn-hoa-binh", "name": "Hội LHPN tỉnh Hòa Bình", "role": "lead"}
    amend = AmendAgreement.model_validate(
        {
            "document_number": "3/QĐ",
            "reason": "Bàn giao",
            "effective_on": "2025-01-01",
            "changes": [
                {"op": "add_party", "party": women},
                {"op": "revise_obligation", "obligation_id": "nhan-dao", "lead_party_id": "hlhpn-hoa-binh"},
                {"op": "remove_party", "party_id": FRONT},
            ],
        }
    )
    await reg.bus.run(amend, CTX, left)
    before = {a: [e.envelope_text for e in await store.load(a)] for a in (closed, left)}
    await register(reg, FRONT_NOW)
    await succeed(reg, FRONT, FRONT_NOW)
    assert await reg.successions.run_pending() == [Carried(FRONT, 1, 2)]
    assert {a: [e.envelope_text for e in await store.load(a)] for a in (closed, left)} == before
    assert len(await transfers(store, running)) == 1


async def test_reports_after_the_succession(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    agreement = await sign(reg)
    await register(reg, FRONT_NOW)
    await succeed(reg, FRONT, FRONT_NOW)
    await reg.successions.run_pending()
    # The successor reports any period, the ones before it took over included.
    for period in ("2024", "2025", "2026"):
        await reg.bus.run(report(FRONT_NOW, period), CTX, agreement)
    # The predecessor: the periods that began before 1 July 2025 (2025 began on 1 January).
    await reg.bus.run(report(FRONT, "2024"), CTX, agreement)
    await reg.bus.run(report(FRONT, "2025"), CTX, agreement)
    version = (await state(reg, agreement)).version
    with pytest.raises(Rejected) as refused:
        await reg.bus.run(report(FRONT, "2026"), CTX, agreement)
    [violation] = refused.value.violations
    assert violation.loc == ("party_id",)
    assert FRONT_NOW in violation.msg and "2025-07-01" in violation.msg
    assert (await state(reg, agreement)).version == version
    # On an obligation it never held, the predecessor is refused whatever the period.
    with pytest.raises(Rejected):
        await reg.bus.run(report(FRONT, "2024-Q1", "tuyen-truyen"), CTX, agreement)
    assert len(await store.load(agreement)) == version


async def test_a_quarterly_report_on_the_day_of_the_succession(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    """The edge of decision 18: a period that begins on `effective_on` is the successor's."""
    reg, _ = registry
    agreement = await sign(reg)
    await register(reg, RED_CROSS_NOW)
    await succeed(reg, RED_CROSS, RED_CROSS_NOW)
    await reg.successions.run_pending()
    await reg.bus.run(report(RED_CROSS, "2025-Q2", "tuyen-truyen"), CTX, agreement)
    with pytest.raises(Rejected):
        await reg.bus.run(report(RED_CROSS, "2025-Q3", "tuyen-truyen"), CTX, agreement)
    await reg.bus.run(report(RED_CROSS_NOW, "2025-Q3", "tuyen-truyen"), CTX, agreement)


async def test_a_predecessor_reports_as_before_until_the_transfer(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    """Until the manager has run, the agreement still has the predecessor as a party, and its
    obligations are its own: decision 18 applies to an obligation that has passed on."""
    reg, _ = registry
    agreement = await sign(reg)
    await register(reg, FRONT_NOW)
    await succeed(reg, FRONT, FRONT_NOW)
    await reg.bus.run(report(FRONT, "2026"), CTX, agreement)
    with pytest.raises(Rejected):
        await reg.bus.run(report(FRONT_NOW, "2026"), CTX, agreement)


def adding(party_id: str, name: str = "Đơn vị mới") -> AmendAgreement:
    return AmendAgreement.model_validate(
        {
            "document_number": "02/PL-MTTQ-HCTĐ",
            "reason": "Bổ sung bên tham gia",
            "effective_on": "2026-03-01",
            "changes": [{"op": "add_party", "party": {"party_id": party_id, "name": name, "role": "member"}}],
        }
    )


async def test_a_ceased_party_cannot_join_by_amendment(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    agreement = await sign(reg)
    await register(reg, FRONT_NOW)
    await succeed(reg, FRONT, FRONT_NOW)
    await reg.successions.run_pending()
    before = await store.load(agreement)
    # Back into the agreement it was transferred out of: the successor holds its functions.
    with pytest.raises(Rejected) as refused:
        await reg.bus.run(adding(FRONT, "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình"), CTX, agreement)
    [violation] = refused.value.violations
    assert violation.loc == ("changes", 0, "party", "party_id")
    assert FRONT_NOW in violation.msg and "2025-07-01" in violation.msg
    assert await store.load(agreement) == before
    assert len(await transfers(store, agreement)) == 1


async def test_an_unknown_party_joining_by_amendment_is_registered_from_it(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, _ = registry
    agreement = await sign(reg)
    result = await reg.bus.run(adding("doan-tn-hoa-binh", "Tỉnh đoàn Hòa Bình"), CTX, agreement)
    assert result.version == 2
    entry = (await reg.parties.get("doan-tn-hoa-binh")).state
    assert entry is not None
    assert (entry.name, entry.kind, entry.registered_from_agreement_id) == (
        "Tỉnh đoàn Hòa Bình",
        "unclassified",
        agreement,
    )
    assert entry.province == "Hòa Bình"
    # A party the directory holds already is not registered again.
    await register(reg, FRONT_NOW)
    assert (await reg.bus.run(adding(FRONT_NOW), CTX, agreement)).version == 3
    assert (await reg.parties.get(FRONT_NOW)).state.version == 1  # type: ignore[union-attr]


async def test_a_succession_that_fails_to_carry_does_not_hold_up_the_queue(
    registry: tuple[Registry, InMemoryEventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, store = registry
    agreement = await sign(reg)
    await register(reg, FRONT_NOW, RED_CROSS_NOW)
    await succeed(reg, FRONT, FRONT_NOW)
    await succeed(reg, RED_CROSS, RED_CROSS_NOW)
    naming = store.streams_naming

    async def broken_for_the_front(party_id: str) -> list[str]:
        if party_id == FRONT:
            raise RuntimeError("this party's agreements cannot be read")
        return await naming(party_id)

    monkeypatch.setattr(store, "streams_naming", broken_for_the_front)
    # The Red Cross, queued after the Front, is carried; the Front stays queued.
    assert await reg.successions.run_pending() == [Carried(RED_CROSS, 1, 0)]
    assert [p.party_id for p in await store.pending_successions()] == [FRONT]
    monkeypatch.setattr(store, "streams_naming", naming)
    assert await reg.successions.run_pending() == [Carried(FRONT, 1, 0)]
    assert await store.pending_successions() == []
    assert len(await transfers(store, agreement)) == 2
