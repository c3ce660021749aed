"""docs/CONTRACT.md: its v1 text stays as first published, and the decisions of its additions
("A. Decisions where v1 was ambiguous") that no other test pins down on its own hold, on the
pure domain and read-model code (no I/O)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement
from coordreg_contracts.events import AgreementAmended, Event

from services.agreement.state import AgreementState, evolve
from services.projections.readmodel.apply import latest_report
from services.projections.readmodel.naming import parties_named
from services.registry.domain.decide import StoreFacts, decide
from services.registry.domain.errors import Rejected
from tests.support.builders import report_body, sign_body

LEAD, RED_CROSS, NEWSPAPER = "mttq-hoa-binh", "hctd-hoa-binh", "bao-hoa-binh"
AGREEMENT = "a-1"
CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "CONTRACT.md"


def signed(body: dict[str, Any] | None = None) -> AgreementState:
    [event] = decide(SignAgreement.model_validate(body or sign_body()), None, StoreFacts(AGREEMENT))
    return evolve(None, event)


def amendment(*changes: dict[str, Any]) -> AmendAgreement:
    return AmendAgreement.model_validate(
        {
            "document_number": "12/QĐ-MTTQ",
            "reason": "Điều chỉnh",
            "effective_on": "2024-03-01",
            "changes": changes,
        }
    )


def step(
    state: AgreementState, command: Any, known: StoreFacts | None = None
) -> tuple[Event, AgreementState]:
    [event] = decide(command, state, known or StoreFacts(AGREEMENT))
    return event, evolve(state, event)


def report(state: AgreementState, **overrides: Any) -> AgreementState:
    return step(state, ReportProgress.model_validate(report_body(**overrides)))[1]


def refused_locs(command: Any, state: AgreementState | None, known: StoreFacts | None = None) -> list[Any]:
    with pytest.raises(Rejected) as caught:
        decide(command, state, known or StoreFacts(AGREEMENT))
    return [v.loc for v in caught.value.violations]


# SHA-256 of the v1 text as first published (UTF-8, from its title to its last newline).
V1_SHA256 = "c9925fc68e9bd2abc6e84bb6bda02f1a1d2563f8de915a2215eda23001780823"


def test_the_v1_text_is_kept_as_first_published() -> None:
    """The additions extend v1; an edit inside the v1 text would silently change the contract."""
    text = CONTRACT.read_text(encoding="utf-8")
    start = text.index("# Coordination Agreement Registry — public contract (v1)\n")
    end = text.index("\n---\n\n# Additions to v1\n")
    assert hashlib.sha256(text[start:end].encode("utf-8")).hexdigest() == V1_SHA256


def test_decision_3_a_supporter_listed_twice_is_refused() -> None:
    body = sign_body()
    body["parties"].append({"party_id": NEWSPAPER, "name": "Báo Hòa Bình", "role": "member"})
    body["obligations"][0]["supporting_party_ids"] = [RED_CROSS, NEWSPAPER, RED_CROSS]
    assert refused_locs(SignAgreement.model_validate(body), None) == [
        ("obligations", 0, "supporting_party_ids", 2)
    ]
    revise = {
        "op": "revise_obligation",
        "obligation_id": "tuyen-truyen",
        "supporting_party_ids": [LEAD, LEAD],
    }
    assert refused_locs(amendment(revise), signed()) == [("changes", 0, "supporting_party_ids", 1)]


@pytest.mark.parametrize("outcome", ["completed", "terminated", "expired", "superseded"])
def test_decision_4_a_successor_is_checked_whatever_the_outcome(outcome: str) -> None:
    state = signed()
    known = StoreFacts(AGREEMENT, frozenset({"a-2"}))

    def closing(successor: str | None) -> CloseTerm:
        return CloseTerm.model_validate(
            {"closed_on": "2027-12-31", "outcome": outcome, "successor_agreement_id": successor}
        )

    for successor in ("no-such-agreement", AGREEMENT):
        assert refused_locs(closing(successor), state, known) == [("successor_agreement_id",)]
    _, closed = step(state, closing("a-2"), known)
    assert closed.closure is not None and closed.closure.successor_agreement_id == "a-2"
    if outcome == "superseded":
        assert refused_locs(closing(""), state, known) == [("successor_agreement_id",)]
    else:
        assert step(state, closing(""), known)[1].status == "closed"  # "" is no successor


def test_decision_6_recording_order_supersedes_and_latest_report_is_the_partys_own() -> None:
    state = report(signed(), period="2024", status="in_progress", reported_on="2024-12-20")
    # Recorded later, dated earlier: it still supersedes (recording order, not reported_on).
    state = report(state, period="2024", status="at_risk", reported_on="2024-06-01")
    assert state.reports[("nhan-dao", RED_CROSS, "2024")].status == "at_risk"
    # The lead reports a later period: the supporter's own latest report does not move.
    state = report(state, party_id=LEAD, period="2025", status="completed", reported_on="2025-12-01")
    assert latest_report(state, "nhan-dao", RED_CROSS) == {
        "period": "2024",
        "status": "at_risk",
        "completion_percent": 60,
        "reported_on": "2024-06-01",
    }
    assert (latest_report(state, "nhan-dao", LEAD) or {})["period"] == "2025"
    assert latest_report(state, "tuyen-truyen", LEAD) is None
    # After a cadence change, periods of both forms compare by last day, then first day.
    _, state = step(
        state, amendment({"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "quarterly"})
    )
    state = report(state, period="2024-Q2", reported_on="2025-01-10")
    assert (latest_report(state, "nhan-dao", RED_CROSS) or {})["period"] == "2024"
    state = report(state, period="2024-Q4", reported_on="2025-01-11")
    assert (latest_report(state, "nhan-dao", RED_CROSS) or {})["period"] == "2024-Q4"


def test_decision_7_null_leaves_a_field_unchanged() -> None:
    before = signed()
    revise = {
        "op": "revise_obligation",
        "obligation_id": "nhan-dao",
        "title": None,
        "description": None,
        "lead_party_id": None,
        "supporting_party_ids": None,
        "cadence": "quarterly",
    }
    event, after = step(before, amendment(revise))
    old, new = before.obligations["nhan-dao"].obligation, after.obligations["nhan-dao"].obligation
    assert new == old.model_copy(update={"cadence": new.cadence}) and new.cadence.value == "quarterly"
    assert new.description is not None  # null cannot clear it
    # The event records every field of the change, the unnamed ones as null.
    assert isinstance(event, AgreementAmended)
    assert event.model_dump(mode="json")["changes"][0] == {**revise, "cadence": "quarterly"}
    # An empty list is not null: it clears the supporters.
    _, cleared = step(
        after, amendment({"op": "revise_obligation", "obligation_id": "nhan-dao", "supporting_party_ids": []})
    )
    assert cleared.obligations["nhan-dao"].obligation.supporting_party_ids == []


def named(state: AgreementState, *changes: dict[str, Any]) -> tuple[set[str], AgreementState]:
    event, after = step(state, amendment(*changes))
    return parties_named(event, state, after), after


def test_decision_8_signing_reporting_and_closing() -> None:
    body = sign_body()
    body["parties"].append({"party_id": NEWSPAPER, "name": "Báo Hòa Bình", "role": "member"})
    [signing] = decide(SignAgreement.model_validate(body), None, StoreFacts(AGREEMENT))
    state = evolve(None, signing)
    assert parties_named(signing, None, state) == {LEAD, RED_CROSS, NEWSPAPER}
    reported, after = step(state, ReportProgress.model_validate(report_body()))
    assert parties_named(reported, state, after) == {RED_CROSS}
    # A party removed before the closing is not named by it.
    _, state = named(after, {"op": "remove_party", "party_id": NEWSPAPER})
    closing, closed = step(
        state, CloseTerm.model_validate({"closed_on": "2027-12-31", "outcome": "completed"})
    )
    assert parties_named(closing, state, closed) == {LEAD, RED_CROSS}


def test_decision_8_an_amendment_names_what_it_touches_before_and_after() -> None:
    state = signed()
    join = {"op": "add_party", "party": {"party_id": NEWSPAPER, "name": "Báo Hòa Bình", "role": "member"}}
    parties, state = named(state, join)
    assert parties == {NEWSPAPER}
    new_obligation = {
        "obligation_id": "chuyen-doi-so",
        "title": "Chuyển đổi số",
        "lead_party_id": NEWSPAPER,
        "supporting_party_ids": [RED_CROSS],
        "cadence": "annual",
    }
    assert named(state, {"op": "add_obligation", "obligation": new_obligation})[0] == {NEWSPAPER, RED_CROSS}
    # The lead moves from the Front to the newspaper: both are named, and the supporter too.
    moved = {"op": "revise_obligation", "obligation_id": "nhan-dao", "lead_party_id": NEWSPAPER}
    assert named(state, moved)[0] == {LEAD, NEWSPAPER, RED_CROSS}
    # Supporters dropped by a revision are named (as they were before it).
    dropped = {"op": "revise_obligation", "obligation_id": "nhan-dao", "supporting_party_ids": []}
    assert named(state, dropped)[0] == {LEAD, RED_CROSS}
    assert named(state, {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"})[0] == {RED_CROSS}
    assert named(state, {"op": "remove_party", "party_id": NEWSPAPER})[0] == {NEWSPAPER}
    term = {"op": "change_term", "term": {"start": "2023-01-01", "end": "2028-12-31"}}
    assert named(state, term)[0] == set()
