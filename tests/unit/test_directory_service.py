"""The party directory through the command bus, on the in-memory store (docs/CONTRACT.md,
decisions 15-17): every refusal with its kind and nothing written, registration from a signing.

The process manager's side of successions is in tests/unit/test_succession_service.py.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from coordreg_contracts.commands import SignAgreement
from coordreg_contracts.parties import (
    PartyCommand,
    PartyRegistered,
    PartyRenamed,
    RecordSuccession,
    RegisterParty,
    RenameParty,
    SuccessionRecorded,
)

from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore
from services.registry.bootstrap import Registry
from services.registry.domain.errors import Conflict, DomainError, NotFound, Rejected
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext, CommandResult, PartyResult
from tests.support.builders import sign_body

CTX = CommandContext(Caller.in_process("directory-admin"), correlation_id="c", causation_id="k")
FRONT, RED_CROSS = "mttq-hoa-binh", "hctd-hoa-binh"  # the parties of HOA_BINH, signed 2023-04-25
SUCCESSOR = "mttq-phu-tho"


@pytest.fixture
def registry() -> tuple[Registry, InMemoryEventStore]:
    return bootstrap.in_memory()


def snapshot(store: InMemoryEventStore) -> dict[str, int]:
    """Every stream's length: what a refusal must leave as it was."""
    return {stream_id: len(events) for stream_id, events in store.streams.items()}


async def refused(
    store: InMemoryEventStore, kind: type[DomainError], attempt: Callable[[], Awaitable[object]]
) -> DomainError:
    """The attempt is refused with exactly `kind`, and writes nothing, queues nothing."""
    before, queued = snapshot(store), await store.pending_successions()
    with pytest.raises(DomainError) as caught:
        await attempt()
    assert type(caught.value) is kind, caught.value
    assert snapshot(store) == before
    assert await store.pending_successions() == queued
    return caught.value


async def sign(registry: Registry, **overrides: Any) -> CommandResult:
    return await registry.bus.run(SignAgreement.model_validate(sign_body(**overrides)), CTX)


async def register(registry: Registry, party_id: str, **fields: Any) -> PartyResult:
    body = {"party_id": party_id, "name": f"Đơn vị {party_id}", "kind": "department", **fields}
    return await registry.bus.run_directory(RegisterParty.model_validate(body), CTX, party_id)


def succession(successor: str = SUCCESSOR, **fields: Any) -> RecordSuccession:
    body = {"effective_on": "2025-07-01", "legal_basis": "202/2025/QH15", "successor_party_id": successor}
    return RecordSuccession.model_validate({**body, **fields})


async def record(registry: Registry, party_id: str, command: PartyCommand) -> PartyResult:
    return await registry.bus.run_directory(command, CTX, party_id)


async def party_events(store: InMemoryEventStore, party_id: str) -> list[object]:
    return [e.envelope().party_event() for e in await store.load(f"party/{party_id}")]


# -- RegisterParty -------------------------------------------------------------------------------


async def test_register_a_party(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    result = await register(reg, "snv-phu-tho", province="tỉnh Phú Thọ", unit_code="25")
    assert result == PartyResult("snv-phu-tho", 1, result.position, "active")
    [event] = await party_events(store, "snv-phu-tho")
    assert isinstance(event, PartyRegistered)
    assert (event.kind.value, event.province, event.unit_code) == ("department", "Phú Thọ", "25")
    assert event.registered_from_agreement_id is None


async def test_register_refusals(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    await register(reg, "snv-phu-tho")
    await refused(store, Conflict, lambda: register(reg, "snv-phu-tho", name="Sở Nội vụ"))
    # Decision 15: `unclassified` is only for parties a signing registered.
    error = await refused(store, Rejected, lambda: register(reg, "other", kind="unclassified"))
    assert isinstance(error, Rejected) and [v.loc for v in error.violations] == [("kind",)]
    error = await refused(store, Rejected, lambda: register(reg, "other", province="Atlantis"))
    assert isinstance(error, Rejected) and [v.loc for v in error.violations] == [("province",)]
    # Both at once: both named.
    error = await refused(
        store, Rejected, lambda: register(reg, "other", kind="unclassified", province="Atlantis")
    )
    assert isinstance(error, Rejected) and {v.loc for v in error.violations} == {("kind",), ("province",)}
    # A registered party is a 409 before any 422 of the same command.
    await refused(store, Conflict, lambda: register(reg, "snv-phu-tho", kind="unclassified"))


# -- RenameParty ---------------------------------------------------------------------------------


def rename(name: str) -> RenameParty:
    return RenameParty.model_validate({"name": name, "effective_on": "2025-07-01", "legal_basis": "1/QĐ"})


async def test_rename_and_its_refusals(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    await register(reg, "snv-phu-tho", name="Sở Nội vụ")
    await register(reg, SUCCESSOR)
    await refused(store, NotFound, lambda: record(reg, "nobody", rename("Tên mới")))
    await refused(store, Rejected, lambda: record(reg, "snv-phu-tho", rename("Sở Nội vụ")))
    renamed = await record(reg, "snv-phu-tho", rename("Sở Nội vụ tỉnh Phú Thọ"))
    assert (renamed.version, renamed.status) == (2, "active")
    assert isinstance((await party_events(store, "snv-phu-tho"))[-1], PartyRenamed)
    await record(reg, "snv-phu-tho", succession())
    await refused(store, Conflict, lambda: record(reg, "snv-phu-tho", rename("Sở Nội vụ mới")))
    # A ceased party is a 409 even for a name that would also be a 422.
    await refused(store, Conflict, lambda: record(reg, "snv-phu-tho", rename("Sở Nội vụ tỉnh Phú Thọ")))


# -- Registration from a signing (decision 16) -----------------------------------------------------


async def test_a_signing_registers_the_parties_the_directory_does_not_know(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    await register(reg, RED_CROSS, name="Hội Chữ thập đỏ tỉnh Hòa Bình", kind="mass_organisation")
    signed = await sign(reg)
    # The signing's answer is its own event's position, not a registration's.
    [own] = await store.load(signed.agreement_id)
    assert signed.position == own.position and (signed.version, signed.status) == (1, "active")
    [front] = await party_events(store, FRONT)
    assert isinstance(front, PartyRegistered)
    assert (front.name, front.kind.value, front.province, front.registered_from_agreement_id) == (
        "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình",
        "unclassified",
        "Hòa Bình",
        signed.agreement_id,
    )
    # The one registered before keeps its entry: nothing is added to its stream.
    [red_cross] = await party_events(store, RED_CROSS)
    assert isinstance(red_cross, PartyRegistered) and red_cross.kind.value == "mass_organisation"
    # The registration is in the signing's append: the same positions, right after it.
    stored = await store.load(f"party/{FRONT}")
    assert stored[0].position == own.position + 1
    # A second signing by the same parties registers nobody again.
    await sign(reg)
    assert len(await store.load(f"party/{FRONT}")) == 1
    assert len(await store.load(f"party/{RED_CROSS}")) == 1


async def test_a_locality_that_is_no_province_registers_the_party_without_one(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    await sign(reg, locality="Huyện Mai Châu")
    [front] = await party_events(store, FRONT)
    assert isinstance(front, PartyRegistered) and front.province is None


async def test_a_refused_signing_registers_nobody(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    signed = await sign(reg, document_number="25/NDPH-MTTQ-HCTĐ")
    await register(reg, "newcomer")
    parties = [
        {"party_id": "unknown-a", "name": "Bên A", "role": "lead"},
        {"party_id": "unknown-b", "name": "Bên B", "role": "member"},
    ]
    obligations = [
        {
            "obligation_id": "x",
            "title": "Việc",
            "lead_party_id": "unknown-a",
            "supporting_party_ids": [],
            "cadence": "annual",
        }
    ]
    # The duplicate document (409) is decided at the append: the registrations go with it.
    await refused(
        store,
        Conflict,
        lambda: sign(reg, document_number="25/NDPH-MTTQ-HCTĐ", parties=parties, obligations=obligations),
    )
    # A rule (422): nothing either.
    bad = [{**obligations[0], "lead_party_id": "nobody"}]
    await refused(store, Rejected, lambda: sign(reg, parties=parties, obligations=bad))
    assert await store.load("party/unknown-a") == []
    assert signed.version == 1


async def test_a_party_that_ceased_cannot_sign_on_or_after_that_day(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    await sign(reg)
    await register(reg, SUCCESSOR)
    await record(reg, FRONT, succession())
    await reg.successions.run_pending()
    for signed_on in ("2025-07-01", "2026-01-01"):
        error = await refused(store, Rejected, functools.partial(sign, reg, signed_on=signed_on))
        assert isinstance(error, Rejected)
        [violation] = error.violations
        assert violation.loc == ("parties", 0, "party_id")
        assert SUCCESSOR in violation.msg and "2025-07-01" in violation.msg
    # The day before, it still could: the agreement is accepted and queued for the manager.
    late = await sign(reg, signed_on="2025-06-30")
    assert [p.party_id for p in await store.pending_successions()] == [FRONT]
    assert late.version == 1


# -- RecordSuccession (decision 17) --------------------------------------------------------------


async def test_record_a_succession(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    signed = await sign(reg)
    await register(reg, SUCCESSOR)
    await register(reg, "hctd-phu-tho")
    named = [
        {
            "agreement_id": signed.agreement_id,
            "obligation_id": "nhan-dao",
            "successor_party_id": "hctd-phu-tho",
        }
    ]
    before = snapshot(store)
    result = await record(reg, FRONT, succession(obligation_successors=named))
    assert (result.party_id, result.version, result.status) == (FRONT, 2, "ceased")
    event = (await party_events(store, FRONT))[-1]
    assert isinstance(event, SuccessionRecorded)
    assert (event.successor_party_id, [s.successor_party_id for s in event.obligation_successors]) == (
        SUCCESSOR,
        ["hctd-phu-tho"],
    )
    # One event on the party's stream, none on the agreement's (the manager writes those) …
    after = snapshot(store)
    assert after == {**before, f"party/{FRONT}": before[f"party/{FRONT}"] + 1}
    # … and the party queued for the manager, in the same append.
    assert [p.party_id for p in await store.pending_successions()] == [FRONT]


async def test_succession_refusals(registry: tuple[Registry, InMemoryEventStore]) -> None:
    reg, store = registry
    signed = await sign(reg)
    agreement = signed.agreement_id
    await register(reg, SUCCESSOR)
    await register(reg, "never-signed")

    def named(**entry: str) -> list[dict[str, str]]:
        return [
            {"agreement_id": agreement, "obligation_id": "nhan-dao", "successor_party_id": SUCCESSOR, **entry}
        ]

    async def refused_on(loc: tuple[str | int, ...], command: RecordSuccession, party_id: str = FRONT) -> str:
        error = await refused(store, Rejected, lambda: record(reg, party_id, command))
        assert isinstance(error, Rejected)
        assert [v.loc for v in error.violations] == [loc], error.violations
        return error.violations[0].msg

    await refused(store, NotFound, lambda: record(reg, "nobody", succession()))
    await refused_on(("successor_party_id",), succession("nobody"))
    assert "cycle" in await refused_on(("successor_party_id",), succession(FRONT))
    # Decision 17: not before the party's earliest signing (2023-04-25), the day itself is fine.
    await refused_on(("effective_on",), succession(effective_on="2023-04-24"))
    # Obligation successors: each entry checked on its own path.
    await refused_on(
        ("obligation_successors", 0, "agreement_id"),
        succession(obligation_successors=named(agreement_id="a-none")),
    )
    await refused_on(
        ("obligation_successors", 0, "obligation_id"),
        succession(obligation_successors=named(obligation_id="no-such")),
    )
    # The front neither leads nor supports tuyen-truyen (the Red Cross leads it alone).
    await refused_on(
        ("obligation_successors", 0, "obligation_id"),
        succession(obligation_successors=named(obligation_id="tuyen-truyen")),
    )
    await refused_on(("obligation_successors", 1), succession(obligation_successors=named() + named()))
    await refused_on(
        ("obligation_successors", 0, "successor_party_id"),
        succession(obligation_successors=named(successor_party_id="nobody")),
    )
    # An agreement that exists but never named the party.
    other = await sign(
        reg,
        parties=[
            {"party_id": "x-lead", "name": "X", "role": "lead"},
            {"party_id": "x-member", "name": "Y", "role": "member"},
        ],
        obligations=[
            {
                "obligation_id": "nhan-dao",
                "title": "Việc",
                "lead_party_id": "x-lead",
                "supporting_party_ids": [],
                "cadence": "annual",
            }
        ],
    )
    await refused_on(
        ("obligation_successors", 0, "agreement_id"),
        succession(obligation_successors=named(agreement_id=other.agreement_id)),
    )
    # A party no agreement names has no earliest signing: any date will do.
    await record(reg, "never-signed", succession(effective_on="1990-01-01"))
    # ... and a successor that has ceased is refused: the body holding its functions now must be named.
    assert "'mttq-phu-tho'" in await refused_on(("successor_party_id",), succession("never-signed"))

    result = await record(reg, FRONT, succession(effective_on="2023-04-25"))
    assert result.status == "ceased"
    await refused(store, Conflict, lambda: record(reg, FRONT, succession()))
    # A cycle through a ceased party: the front went to mttq-phu-tho; mttq-phu-tho to the front.
    assert "cycle" in await refused_on(("successor_party_id",), succession(FRONT), SUCCESSOR)


async def test_a_succession_of_an_unknown_party_is_404_before_any_rule(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    await refused(
        store, NotFound, lambda: record(reg, "nobody", succession("nobody", effective_on="1900-01-01"))
    )


async def test_a_second_succession_is_409_before_any_rule(
    registry: tuple[Registry, InMemoryEventStore],
) -> None:
    reg, store = registry
    await sign(reg)
    await register(reg, SUCCESSOR)
    await record(reg, FRONT, succession())
    await refused(
        store, Conflict, lambda: record(reg, FRONT, succession("nobody", effective_on="1900-01-01"))
    )
