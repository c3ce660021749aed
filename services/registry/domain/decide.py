"""`decide(command, state) -> events`: the registry's rules, as a pure function.

Facts that need the store (does a referenced agreement exist?) are looked up by the
handler beforehand and passed in `StoreFacts`, so this module never does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coordreg_contracts import periods
from coordreg_contracts.changes import (
    AddObligation,
    AddParty,
    Change,
    ChangeTerm,
    RemoveParty,
    ReviseObligation,
    WithdrawObligation,
)
from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from coordreg_contracts.common import Outcome
from coordreg_contracts.events import AgreementAmended, AgreementSigned, Event, ProgressReported, TermClosed

from services.agreement.state import AgreementState, ObligationState, apply_change
from services.registry.domain.errors import Conflict, Rejected, Violation
from services.registry.domain.rules import (
    not_an_agreement,
    obligation_violations,
    obligations_violations,
    party_violations,
    term_violations,
)


@dataclass(frozen=True)
class StoreFacts:
    """What the handler looked up in the store for this command: the id of the agreement it acts
    on (a signing's new one), and which of the agreements it refers to exist."""

    agreement_id: str = ""
    existing_agreements: frozenset[str] = field(default_factory=frozenset)


def decide(command: Command, state: AgreementState | None, facts: StoreFacts) -> list[Event]:
    """The events `command` gives on `state`, by the rule for its type (`DECIDERS`)."""
    decider = DECIDERS.get(type(command))
    if decider is None:
        raise TypeError(f"unknown command {type(command).__name__}")
    return decider(command, state, facts)


def _existing(state: AgreementState | None) -> AgreementState:
    if state is None:
        raise Conflict("the agreement does not exist")
    return state


def decide_sign(command: SignAgreement, state: AgreementState | None, facts: StoreFacts) -> list[Event]:
    return [_sign(command, facts)]


def decide_amend(command: AmendAgreement, state: AgreementState | None, facts: StoreFacts) -> list[Event]:
    return [_amend(command, _existing(state))]


def decide_report(command: ReportProgress, state: AgreementState | None, facts: StoreFacts) -> list[Event]:
    return [_report(command, _existing(state))]


def decide_close(command: CloseTerm, state: AgreementState | None, facts: StoreFacts) -> list[Event]:
    return [_close(command, _existing(state), facts)]


Decider = Callable[[Any, AgreementState | None, StoreFacts], list[Event]]
# One rule per command type: a new command adds its row.
DECIDERS: Mapping[type[Command], Decider] = {
    SignAgreement: decide_sign,
    AmendAgreement: decide_amend,
    ReportProgress: decide_report,
    CloseTerm: decide_close,
}


def _sign(command: SignAgreement, facts: StoreFacts) -> AgreementSigned:
    violations = party_violations(command.parties)
    party_ids = {p.party_id for p in command.parties}
    violations += obligations_violations(command.obligations, party_ids)
    violations += term_violations(command.signed_on, command.term)
    parent = command.parent_agreement_id
    if parent is not None:
        violations += _agreement_reference(("parent_agreement_id",), parent, facts)
    if violations:
        raise Rejected(violations)
    return AgreementSigned(agreement_id=facts.agreement_id, **command.model_dump())


def _agreement_reference(loc: tuple[str, ...], reference: str, facts: StoreFacts) -> list[Violation]:
    """No violation when `reference` names a registered agreement (of the agreement kind)."""
    if (refusal := not_an_agreement(reference)) is not None:
        return [Violation(loc, refusal)]
    if reference not in facts.existing_agreements:
        return [Violation(loc, f"no agreement {reference!r} is registered")]
    return []


def _ensure_open(state: AgreementState, action: str) -> None:
    if state.status == "closed":
        raise Conflict(f"the agreement's term is closed; it cannot be {action}")


def _amend(command: AmendAgreement, state: AgreementState) -> AgreementAmended:
    _ensure_open(state, "amended")
    violations: list[Violation] = []
    amended = state
    for index, change in enumerate(command.changes):
        found = _change_violations(change, amended, ("changes", index))
        violations += found
        if not found:
            amended = apply_change(amended, change)
    if not violations:
        violations += _whole_agreement_violations(amended)
    if violations:
        raise Rejected(violations)
    return AgreementAmended(**command.model_dump())


def _change_violations(change: Change, state: AgreementState, loc: tuple[str | int, ...]) -> list[Violation]:
    """Is this change possible on the agreement as the earlier changes left it?"""
    return _CHANGE_RULES[type(change)](change, state, loc)


Loc = tuple[str | int, ...]


def _adding_obligation(change: AddObligation, state: AgreementState, loc: Loc) -> list[Violation]:
    ob = change.obligation
    if ob.obligation_id in state.obligations:
        return [Violation((*loc, "obligation", "obligation_id"), f"{ob.obligation_id!r} already exists")]
    return obligation_violations(ob, set(state.parties), (*loc, "obligation"))


def _active_obligation(obligation_id: str, state: AgreementState, loc: Loc) -> list[Violation]:
    current = state.obligations.get(obligation_id)
    if current is None:
        return [Violation((*loc, "obligation_id"), f"no obligation {obligation_id!r}")]
    if current.status != "active":
        return [Violation((*loc, "obligation_id"), f"obligation {obligation_id!r} is withdrawn")]
    return []


def _revising_obligation(change: ReviseObligation, state: AgreementState, loc: Loc) -> list[Violation]:
    found = _active_obligation(change.obligation_id, state, loc)
    if found:
        return found
    current = state.obligations[change.obligation_id]
    named = change.model_dump(exclude={"op", "obligation_id"}, exclude_none=True)
    return obligation_violations(current.obligation.model_copy(update=named), set(state.parties), loc)


def _withdrawing_obligation(change: WithdrawObligation, state: AgreementState, loc: Loc) -> list[Violation]:
    return _active_obligation(change.obligation_id, state, loc)


def _adding_party(change: AddParty, state: AgreementState, loc: Loc) -> list[Violation]:
    if change.party.party_id in state.parties:
        return [Violation((*loc, "party", "party_id"), f"{change.party.party_id!r} is already a party")]
    return []


def _removing_party(change: RemoveParty, state: AgreementState, loc: Loc) -> list[Violation]:
    if change.party_id not in state.parties:
        return [Violation((*loc, "party_id"), f"{change.party_id!r} is not a party")]
    still = sorted(
        o.obligation_id
        for o in state.obligations.values()
        if o.status == "active"
        and (
            o.obligation.lead_party_id == change.party_id
            or change.party_id in o.obligation.supporting_party_ids
        )
    )
    if still:
        return [
            Violation(
                (*loc, "party_id"),
                f"{change.party_id!r} still leads or supports active obligations: {', '.join(still)}",
            )
        ]
    return []


def _changing_term(change: ChangeTerm, state: AgreementState, loc: Loc) -> list[Violation]:
    return term_violations(state.signed_on, change.term, (*loc, "term", "end"))


# One rule per kind of change: a new kind adds its row.
_CHANGE_RULES: Mapping[type[Any], Callable[[Any, AgreementState, Loc], list[Violation]]] = {
    AddObligation: _adding_obligation,
    ReviseObligation: _revising_obligation,
    WithdrawObligation: _withdrawing_obligation,
    AddParty: _adding_party,
    RemoveParty: _removing_party,
    ChangeTerm: _changing_term,
}


def _whole_agreement_violations(state: AgreementState) -> list[Violation]:
    """The signing rules on the agreement as all the changes leave it."""
    found = party_violations(list(state.parties.values()), ("changes",))
    if not any(o.status == "active" for o in state.obligations.values()):
        found.append(Violation(("changes",), "the agreement would have no active obligation left"))
    return found


def _report(command: ReportProgress, state: AgreementState) -> ProgressReported:
    _ensure_open(state, "reported on")
    violations: list[Violation] = []
    current = state.obligations.get(command.obligation_id)
    if current is None:
        raise Rejected([Violation(("obligation_id",), f"no obligation {command.obligation_id!r}")])
    if current.status != "active":
        violations.append(
            Violation(
                ("obligation_id",), f"obligation {command.obligation_id!r} is withdrawn; it takes no reports"
            )
        )
    ob = current.obligation
    if command.party_id != ob.lead_party_id and command.party_id not in ob.supporting_party_ids:
        violations += _holder_violations(command, current)
    if not periods.matches_cadence(command.period, ob.cadence):
        violations.append(
            Violation(
                ("period",),
                f"a {ob.cadence.value} obligation reports periods like {periods.EXAMPLES[ob.cadence]!r}",
            )
        )
    elif not periods.overlaps(command.period, state.term.start, state.term.end):
        violations.append(
            Violation(
                ("period",), f"{command.period} is outside the term {state.term.start}–{state.term.end}"
            )
        )
    if command.reported_on < state.signed_on:
        violations.append(
            Violation(("reported_on",), f"reported_on is before the agreement was signed ({state.signed_on})")
        )
    if violations:
        raise Rejected(violations)
    return ProgressReported(**command.model_dump())


def _holder_violations(command: ReportProgress, current: ObligationState) -> list[Violation]:
    """A party that does not hold the obligation now: it may still report the periods that
    began before it ceased and passed the obligation on (late reports, decision 18)."""
    ceded = current.ceded_by(command.party_id)
    if ceded is None:
        return [
            Violation(
                ("party_id",), f"{command.party_id!r} neither leads nor supports {current.obligation_id!r}"
            )
        ]
    if periods.bounds(command.period)[0] < ceded.effective_on:
        return []
    holder = _holder_now(current, ceded.to_party_id)
    return [
        Violation(
            ("party_id",),
            f"{command.party_id!r} ceased on {ceded.effective_on} ({ceded.legal_basis}) and"
            f" {ceded.to_party_id!r} succeeded it: from that date {holder!r} reports on"
            f" {current.obligation_id!r}",
        )
    ]


def _holder_now(current: ObligationState, party_id: str) -> str:
    """Where the obligation went after `party_id`, following later transfers."""
    for inheritance in current.inherited:
        if inheritance.from_party_id == party_id:
            party_id = inheritance.to_party_id
    return party_id


def _close(command: CloseTerm, state: AgreementState, facts: StoreFacts) -> TermClosed:
    _ensure_open(state, "closed again")
    violations: list[Violation] = []
    if command.closed_on < state.signed_on:
        violations.append(Violation(("closed_on",), f"closed_on is before signed_on ({state.signed_on})"))
    successor = command.successor_agreement_id
    if command.outcome is Outcome.SUPERSEDED and successor is None:
        violations.append(
            Violation(("successor_agreement_id",), "a superseded agreement must name its successor")
        )
    if successor is not None:
        if successor == state.agreement_id:
            violations.append(Violation(("successor_agreement_id",), "an agreement cannot succeed itself"))
        else:
            violations += _agreement_reference(("successor_agreement_id",), successor, facts)
    if violations:
        raise Rejected(violations)
    return TermClosed(**command.model_dump())
