"""Amend, report and close rules on the pure domain."""

from __future__ import annotations

from typing import Any

import pytest
from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement

from services.agreement.state import AgreementState, evolve
from services.registry.domain.decide import StoreFacts, decide
from services.registry.domain.errors import Conflict, Rejected
from tests.support.builders import report_body, sign_body


@pytest.fixture
def signed() -> AgreementState:
    [event] = decide(SignAgreement.model_validate(sign_body()), None, StoreFacts("a-1"))
    return evolve(None, event)


def amend(state: AgreementState, *changes: dict[str, Any]) -> AgreementState:
    command = AmendAgreement.model_validate(
        {
            "document_number": "12/QĐ-MTTQ-BTT",
            "reason": "Bổ sung",
            "effective_on": "2024-03-01",
            "changes": changes,
        }
    )
    for event in decide(command, state, StoreFacts("a-1")):
        state = evolve(state, event)
    return state


def amend_locs(state: AgreementState, *changes: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(Rejected) as caught:
        amend(state, *changes)
    return [v.loc for v in caught.value.violations]


NEW_OBLIGATION = {
    "obligation_id": "chuyen-doi-so",
    "title": "Chuyển đổi số trong công tác nhân đạo",
    "lead_party_id": "hctd-hoa-binh",
    "supporting_party_ids": ["mttq-hoa-binh"],
    "cadence": "semiannual",
}


def test_every_change_applies_in_order(signed: AgreementState) -> None:
    state = amend(
        signed,
        {"op": "add_party", "party": {"party_id": "bao-hoa-binh", "name": "Báo Hòa Bình", "role": "member"}},
        {"op": "add_obligation", "obligation": NEW_OBLIGATION},
        {"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "quarterly"},
        {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen", "reason": "Gộp vào chương trình khác"},
        {"op": "change_term", "term": {"start": "2023-01-01", "end": "2028-12-31"}},
    )
    assert state.version == 2
    assert state.obligations["nhan-dao"].obligation.cadence.value == "quarterly"
    assert state.obligations["nhan-dao"].obligation.title.startswith("Tổ chức")  # unnamed fields kept
    assert state.obligations["tuyen-truyen"].status == "withdrawn"
    assert "bao-hoa-binh" in state.parties and str(state.term.end) == "2028-12-31"


def test_one_bad_change_rejects_the_whole_amendment(signed: AgreementState) -> None:
    locs = amend_locs(
        signed,
        {"op": "add_obligation", "obligation": NEW_OBLIGATION},
        {"op": "revise_obligation", "obligation_id": "missing"},
    )
    assert locs == [("changes", 1, "obligation_id")]


def test_a_party_still_leading_cannot_be_removed(signed: AgreementState) -> None:
    assert amend_locs(signed, {"op": "remove_party", "party_id": "hctd-hoa-binh"}) == [
        ("changes", 0, "party_id")
    ]


def test_removing_the_lead_party_breaks_the_one_lead_rule(signed: AgreementState) -> None:
    state = amend(
        signed,
        {"op": "add_party", "party": {"party_id": "sldtbxh", "name": "Sở LĐ-TB&XH", "role": "member"}},
        {"op": "revise_obligation", "obligation_id": "nhan-dao", "lead_party_id": "sldtbxh"},
    )
    assert ("changes",) in amend_locs(state, {"op": "remove_party", "party_id": "mttq-hoa-binh"})


def test_moving_a_lead_onto_a_supporter_is_refused(signed: AgreementState) -> None:
    locs = amend_locs(
        signed, {"op": "revise_obligation", "obligation_id": "nhan-dao", "lead_party_id": "hctd-hoa-binh"}
    )
    assert locs == [("changes", 0, "supporting_party_ids", 0)]


def test_withdrawing_every_obligation_is_refused(signed: AgreementState) -> None:
    locs = amend_locs(
        signed,
        {"op": "withdraw_obligation", "obligation_id": "nhan-dao"},
        {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"},
    )
    assert locs == [("changes",)]


def report(state: AgreementState, **overrides: Any) -> AgreementState:
    for event in decide(ReportProgress.model_validate(report_body(**overrides)), state, StoreFacts("a-1")):
        state = evolve(state, event)
    return state


def report_locs(state: AgreementState, **overrides: Any) -> list[tuple[str | int, ...]]:
    with pytest.raises(Rejected) as caught:
        report(state, **overrides)
    return [v.loc for v in caught.value.violations]


def test_a_later_report_supersedes_the_earlier_one(signed: AgreementState) -> None:
    state = report(report(signed), status="completed", completion_percent=100)
    assert state.reports[("nhan-dao", "hctd-hoa-binh", "2024")].status == "completed"
    assert state.version == 3


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"party_id": "bao-hoa-binh"}, ("party_id",)),
        ({"period": "2024-Q3"}, ("period",)),
        ({"period": "2031"}, ("period",)),
        ({"reported_on": "2023-04-24"}, ("reported_on",)),
        ({"obligation_id": "khong-co"}, ("obligation_id",)),
        ({"obligation_id": "tuyen-truyen", "period": "2024"}, ("period",)),
    ],
)
def test_report_rules(signed: AgreementState, overrides: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert loc in report_locs(signed, **overrides)


def test_withdrawn_obligation_takes_no_reports(signed: AgreementState) -> None:
    state = amend(signed, {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"})
    assert ("obligation_id",) in report_locs(
        state, obligation_id="tuyen-truyen", party_id="hctd-hoa-binh", period="2024-Q1"
    )


def close(state: AgreementState, known: StoreFacts | None = None, **overrides: Any) -> AgreementState:
    body = {"closed_on": "2027-12-31", "outcome": "completed", "summary": "Tổng kết giai đoạn 2023-2027"}
    body.update(overrides)
    for event in decide(CloseTerm.model_validate(body), state, known or StoreFacts("a-1")):
        state = evolve(state, event)
    return state


def test_closed_agreement_takes_nothing_but_reads(signed: AgreementState) -> None:
    closed = close(signed)
    assert closed.status == "closed"
    with pytest.raises(Conflict):
        close(closed)
    with pytest.raises(Conflict):
        report(closed)
    with pytest.raises(Conflict):
        amend(closed, {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"})


def test_superseded_names_an_existing_successor(signed: AgreementState) -> None:
    with pytest.raises(Rejected):
        close(signed, outcome="superseded")
    with pytest.raises(Rejected):
        close(signed, outcome="superseded", successor_agreement_id="unknown")
    closed = close(
        signed, StoreFacts("a-1", frozenset({"a-2"})), outcome="superseded", successor_agreement_id="a-2"
    )
    assert closed.closure is not None and closed.closure.successor_agreement_id == "a-2"


def test_closed_before_signing_is_rejected(signed: AgreementState) -> None:
    with pytest.raises(Rejected) as caught:
        close(signed, closed_on="2023-04-24")
    assert caught.value.violations[0].loc == ("closed_on",)
