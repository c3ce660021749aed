"""The read models' side of the party directory, on the pure code: who each event names and
how its history line reads (services/projections/readmodel/naming.py), and the agreement
document after a succession (readmodel/document.py), including documents written before it."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from coordreg_contracts.commands import SignAgreement
from coordreg_contracts.events import ObligationsTransferred
from coordreg_contracts.parties import (
    ObligationSuccessor,
    PartyKind,
    PartyRegistered,
    PartyRenamed,
    SuccessionRecorded,
)

from services.agreement.state import AgreementState, Inheritance, evolve
from services.directory.state import PartyState, evolve_party, fold_party
from services.projections.readmodel.apply import inherited_by
from services.projections.readmodel.document import from_document, to_document
from services.projections.readmodel.locality import locality_keys, locality_now
from services.projections.readmodel.naming import (
    parties_named,
    party_events_named,
    party_summary,
    summary,
)
from services.registry.domain.decide import StoreFacts, decide
from services.registry.domain.directory import Directory, decide_transfer
from services.registry.entrypoints.views import agreement_view, as_json
from tests.support.builders import sign_body

FRONT, RED_CROSS = "mttq-hoa-binh", "hctd-hoa-binh"
NEW_FRONT, NEW_RED_CROSS = "mttq-phu-tho", "hctd-phu-tho"
AGREEMENT = "a-1"
BASIS = "202/2025/QH15"
MERGED = date(2025, 7, 1)


def signed(**overrides: Any) -> AgreementState:
    [event] = decide(SignAgreement.model_validate(sign_body(**overrides)), None, StoreFacts(AGREEMENT))
    return evolve(None, event)


def ceased(party_id: str, successor: str, *exceptions: ObligationSuccessor) -> PartyState:
    state = fold_party(
        [
            PartyRegistered(party_id=party_id, name=f"Bên {party_id}", kind=PartyKind.FRONT_COMMITTEE),
            SuccessionRecorded(
                effective_on=MERGED,
                legal_basis=BASIS,
                successor_party_id=successor,
                obligation_successors=list(exceptions),
            ),
        ]
    )
    assert state is not None
    return state


def transferred(
    state: AgreementState, party_id: str, successor: str, *exceptions: ObligationSuccessor
) -> tuple[ObligationsTransferred, AgreementState]:
    [event] = decide_transfer(state, ceased(party_id, successor, *exceptions), "e-1", Directory())
    return event, evolve(state, event)


def test_a_transfer_names_the_party_that_ceased_and_every_successor() -> None:
    before = signed()
    to_red_cross = ObligationSuccessor(
        agreement_id=AGREEMENT, obligation_id="nhan-dao", successor_party_id=RED_CROSS
    )
    # The front leads nhan-dao, which goes to the Red Cross, already a party; nothing else is left
    # for its default successor, who takes its place (and its lead) all the same.
    event, after = transferred(before, FRONT, NEW_FRONT, to_red_cross)
    assert parties_named(event, before, after) == {FRONT, NEW_FRONT, RED_CROSS}
    assert summary(event, after) == (
        f"{FRONT} succeeded by {NEW_FRONT}, {RED_CROSS} on 2025-07-01 ({BASIS}): obligations nhan-dao"
    )


def test_a_transfer_summary_lists_every_obligation_it_moves() -> None:
    before = signed()
    event, after = transferred(before, RED_CROSS, NEW_RED_CROSS)
    assert summary(event, after) == (
        f"{RED_CROSS} succeeded by {NEW_RED_CROSS} on 2025-07-01 ({BASIS}): obligations nhan-dao, tuyen-truyen"
    )
    assert parties_named(event, before, after) == {RED_CROSS, NEW_RED_CROSS}


def test_directory_events_name_their_party_and_a_succession_every_successor() -> None:
    registered = PartyRegistered(
        party_id=FRONT,
        name="Ủy ban MTTQ tỉnh Hòa Bình",
        kind=PartyKind.UNCLASSIFIED,
        province="Hòa Bình",
        registered_from_agreement_id=AGREEMENT,
    )
    renamed = PartyRenamed(name="Ủy ban MTTQ Việt Nam tỉnh Hòa Bình", effective_on=date(2024, 1, 2))
    succession = SuccessionRecorded(
        effective_on=MERGED,
        legal_basis=BASIS,
        successor_party_id=NEW_FRONT,
        obligation_successors=[
            ObligationSuccessor(agreement_id=AGREEMENT, obligation_id="tuyen-truyen", successor_party_id="x"),
            ObligationSuccessor(agreement_id="a-2", obligation_id="y", successor_party_id=NEW_FRONT),
        ],
    )
    assert party_events_named(registered, FRONT) == {FRONT}
    assert party_events_named(renamed, FRONT) == {FRONT}
    assert party_events_named(succession, FRONT) == {FRONT, NEW_FRONT, "x"}

    state = evolve_party(None, registered)
    assert party_summary(registered, state) == (
        f"{FRONT} registered from agreement {AGREEMENT}: Ủy ban MTTQ tỉnh Hòa Bình (unclassified)"
    )
    state = evolve_party(state, renamed)
    assert party_summary(renamed, state) == (
        f"{FRONT} renamed from Ủy ban MTTQ tỉnh Hòa Bình to Ủy ban MTTQ Việt Nam tỉnh Hòa Bình on 2024-01-02"
    )
    state = evolve_party(state, succession)
    assert party_summary(succession, state) == (
        f"{FRONT} succeeded by {NEW_FRONT} (some obligations to x) on 2025-07-01 ({BASIS})"
    )


def test_the_document_after_a_transfer_carries_former_parties_and_inheritances() -> None:
    _, once = transferred(signed(), RED_CROSS, NEW_RED_CROSS)
    # The successor ceases in its turn: the obligation is passed on again, oldest first.
    _, twice = transferred(once, NEW_RED_CROSS, "hctd-moi")
    doc = json.loads(json.dumps(to_document(twice)))  # as stored: JSON through and through
    obligations = {o["obligation_id"]: o for o in doc["obligations"]}
    assert obligations["tuyen-truyen"]["lead_party_id"] == "hctd-moi"
    assert obligations["tuyen-truyen"]["inherited"] == [
        {
            "from_party_id": RED_CROSS,
            "to_party_id": NEW_RED_CROSS,
            "effective_on": "2025-07-01",
            "legal_basis": BASIS,
        },
        {
            "from_party_id": NEW_RED_CROSS,
            "to_party_id": "hctd-moi",
            "effective_on": "2025-07-01",
            "legal_basis": BASIS,
        },
    ]
    assert [(f["party_id"], f["successor_party_ids"]) for f in doc["former_parties"]] == [
        (RED_CROSS, [NEW_RED_CROSS]),
        (NEW_RED_CROSS, ["hctd-moi"]),
    ]
    assert doc["locality_now"] == "Phú Thọ" and doc["document_type"] is None  # CTPH: a joint CT, unsettled
    assert from_document(doc) == twice
    item = twice.obligations["tuyen-truyen"]
    assert inherited_by(item, "hctd-moi") == Inheritance(NEW_RED_CROSS, "hctd-moi", MERGED, BASIS)
    assert inherited_by(item, NEW_RED_CROSS) == Inheritance(RED_CROSS, NEW_RED_CROSS, MERGED, BASIS)
    assert inherited_by(item, FRONT) is None


def test_both_services_answer_the_same_document_after_a_transfer_but_the_derived_fields() -> None:
    _, after = transferred(signed(document_number="7/KH-UBND"), FRONT, NEW_FRONT)
    doc = to_document(after)
    assert doc["document_type"] == "KH"
    derived = {"locality_now", "document_type"}
    assert as_json(agreement_view(after)) == {k: v for k, v in doc.items() if k not in derived}


def test_a_document_written_before_the_directory_reads_back() -> None:
    state = signed()
    doc = to_document(state)
    for key in ("former_parties", "locality_now", "document_type"):
        del doc[key]
    for obligation in doc["obligations"]:
        del obligation["inherited"]
    assert from_document(doc) == state


def test_locality_now_is_the_province_governing_it_after_the_switch() -> None:
    assert locality_now("Hòa Bình") == "Phú Thọ"
    assert locality_now("tỉnh Hòa Bình") == "Phú Thọ"
    assert locality_now("Hà Nội") == "Hà Nội"
    # No province's name: kept as written.
    assert locality_now("xã Tân Lạc") == "xã Tân Lạc"
    assert locality_keys("Phú Thọ") == ["phu tho"]
    assert locality_keys("tỉnh Phú Thọ") == ["tinh phu tho", "phu tho"]
    assert locality_keys("xã Tân Lạc") == ["xa tan lac"]
