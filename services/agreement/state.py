"""An agreement's current state, folded from its events: `evolve(state, event) -> state`.

Pure: no I/O, no clock. The registry folds it to decide commands; the projections fold
it to build read models; the audit tool folds it to rebuild history as of a date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from coordreg_contracts.changes import (
    AddObligation,
    AddParty,
    Change,
    ChangeTerm,
    RemoveParty,
    ReviseObligation,
    WithdrawObligation,
)
from coordreg_contracts.common import LegalBasis, Obligation, Party, Term
from coordreg_contracts.events import (
    AgreementAmended,
    AgreementSigned,
    Event,
    ObligationsTransferred,
    ProgressReported,
    TermClosed,
)

ObligationStatus = Literal["active", "withdrawn"]
AgreementStatus = Literal["active", "closed"]

_Frozen = TypeVar("_Frozen", "AgreementState", "ObligationState")


def _replace(obj: _Frozen, /, **changes: Any) -> _Frozen:
    """`dataclasses.replace` for the state's frozen dataclasses, equal field for field.

    `dataclasses.replace` looks each field up and calls the generated `__init__`, which sets
    each through `object.__setattr__`: that was most of `evolve`'s time on every event. These
    classes have only init fields, no `__post_init__` and no slots, so a copy of the instance
    dict with the changes written over it is the same object (the same keys, in field order)."""
    fields = obj.__dataclass_fields__
    if not changes.keys() <= fields.keys():
        raise TypeError(f"{type(obj).__name__} has no field {sorted(changes.keys() - fields.keys())}")
    new = object.__new__(type(obj))
    values = new.__dict__
    values.update(obj.__dict__)
    values.update(changes)
    return new


@dataclass(frozen=True)
class Inheritance:
    """An obligation passed from a party that ceased to its successor (decision 17)."""

    from_party_id: str
    to_party_id: str
    effective_on: date
    legal_basis: str


@dataclass(frozen=True)
class ObligationState:
    obligation: Obligation
    status: ObligationStatus = "active"
    # Oldest first: a successor that later ceased too passes it on again.
    inherited: tuple[Inheritance, ...] = ()

    def ceded_by(self, party_id: str) -> Inheritance | None:
        """The transfer by which `party_id` stopped holding this obligation, if it did."""
        return next((i for i in self.inherited if i.from_party_id == party_id), None)

    @property
    def obligation_id(self) -> str:
        return self.obligation.obligation_id


@dataclass(frozen=True)
class Report:
    obligation_id: str
    party_id: str
    period: str
    status: str
    completion_percent: int | None
    reported_on: date
    sequence: int


@dataclass(frozen=True)
class Closure:
    closed_on: date
    outcome: str
    summary: str | None
    successor_agreement_id: str | None


@dataclass(frozen=True)
class FormerParty:
    """A party that ceased while the agreement ran: kept as signed, with who took its place."""

    party: Party
    effective_on: date
    legal_basis: str
    successor_party_ids: tuple[str, ...]


@dataclass(frozen=True)
class AgreementState:
    agreement_id: str
    version: int
    document_number: str
    kind: str
    title: str
    locality: str
    signed_on: date
    term: Term
    parties: Mapping[str, Party]
    legal_basis: tuple[LegalBasis, ...]
    obligations: Mapping[str, ObligationState]
    parent_agreement_id: str | None
    status: AgreementStatus = "active"
    closure: Closure | None = None
    # The latest report of each (obligation, party, period): a later one supersedes it.
    reports: Mapping[tuple[str, str, str], Report] = field(default_factory=dict)
    amendment_documents: tuple[str, ...] = ()
    former_parties: Mapping[str, FormerParty] = field(default_factory=dict)


def apply_change(state: AgreementState, change: Change) -> AgreementState:
    """One amendment change, without checking it (decide checks before, evolve trusts the log)."""
    return _CHANGE_STEPS[type(change)](state, change)


def _add_obligation(state: AgreementState, change: AddObligation) -> AgreementState:
    obligations = dict(state.obligations)
    obligations[change.obligation.obligation_id] = ObligationState(change.obligation)
    return _replace(state, obligations=MappingProxyType(obligations))


def _revise_obligation(state: AgreementState, change: ReviseObligation) -> AgreementState:
    obligations = dict(state.obligations)
    current = obligations[change.obligation_id]
    named = change.model_dump(exclude={"op", "obligation_id"}, exclude_none=True)
    obligations[change.obligation_id] = _replace(
        current, obligation=current.obligation.model_copy(update=named)
    )
    return _replace(state, obligations=MappingProxyType(obligations))


def _withdraw_obligation(state: AgreementState, change: WithdrawObligation) -> AgreementState:
    obligations = dict(state.obligations)
    obligations[change.obligation_id] = _replace(obligations[change.obligation_id], status="withdrawn")
    return _replace(state, obligations=MappingProxyType(obligations))


def _add_party(state: AgreementState, change: AddParty) -> AgreementState:
    parties = dict(state.parties)
    parties[change.party.party_id] = change.party
    return _replace(state, parties=MappingProxyType(parties))


def _remove_party(state: AgreementState, change: RemoveParty) -> AgreementState:
    parties = dict(state.parties)
    parties.pop(change.party_id, None)
    return _replace(state, parties=MappingProxyType(parties))


def _change_term(state: AgreementState, change: ChangeTerm) -> AgreementState:
    return _replace(state, term=change.term)


# One step per kind of change: a new kind adds its row.
_CHANGE_STEPS: Mapping[type[Any], Callable[[AgreementState, Any], AgreementState]] = {
    AddObligation: _add_obligation,
    ReviseObligation: _revise_obligation,
    WithdrawObligation: _withdraw_obligation,
    AddParty: _add_party,
    RemoveParty: _remove_party,
    ChangeTerm: _change_term,
}


def apply_changes(state: AgreementState, changes: Iterable[Change]) -> AgreementState:
    for change in changes:
        state = apply_change(state, change)
    return state


def signed(event: AgreementSigned) -> AgreementState:
    return AgreementState(
        agreement_id=event.agreement_id,
        version=1,
        document_number=event.document_number,
        kind=event.kind,
        title=event.title,
        locality=event.locality,
        signed_on=event.signed_on,
        term=event.term,
        parties=MappingProxyType({p.party_id: p for p in event.parties}),
        legal_basis=tuple(event.legal_basis),
        obligations=MappingProxyType({o.obligation_id: ObligationState(o) for o in event.obligations}),
        parent_agreement_id=event.parent_agreement_id,
    )


def evolve(state: AgreementState | None, event: Event) -> AgreementState:
    """The state after `event`, by the fold step for its type (`EVOLVERS`)."""
    step = EVOLVERS.get(type(event))
    if step is None:
        raise TypeError(f"unknown event {type(event).__name__}")
    opens = step is _signed
    if state is None and not opens:
        raise ValueError(f"{type(event).__name__} before AgreementSigned")
    if state is not None and opens:
        raise ValueError("AgreementSigned on an agreement that already exists")
    return step(state, event)


def _signed(state: None, event: AgreementSigned) -> AgreementState:
    return signed(event)


def _amended(state: AgreementState, event: AgreementAmended) -> AgreementState:
    amended = apply_changes(state, event.changes)
    return _replace(
        amended,
        version=state.version + 1,
        amendment_documents=(*state.amendment_documents, event.document_number),
    )


def _reported(state: AgreementState, event: ProgressReported) -> AgreementState:
    version = state.version + 1
    reports = dict(state.reports)
    reports[(event.obligation_id, event.party_id, event.period)] = Report(
        obligation_id=event.obligation_id,
        party_id=event.party_id,
        period=event.period,
        status=event.status.value,
        completion_percent=event.completion_percent,
        reported_on=event.reported_on,
        sequence=version,
    )
    return _replace(state, version=version, reports=MappingProxyType(reports))


def _transferred(state: AgreementState, event: ObligationsTransferred) -> AgreementState:
    return _replace(transfer(state, event), version=state.version + 1)


def _closed(state: AgreementState, event: TermClosed) -> AgreementState:
    closure = Closure(event.closed_on, event.outcome.value, event.summary, event.successor_agreement_id)
    return _replace(state, version=state.version + 1, status="closed", closure=closure)


# One fold step per event type: a new event adds its row.
EVOLVERS: Mapping[type[Event], Callable[[Any, Any], AgreementState]] = {
    AgreementSigned: _signed,
    AgreementAmended: _amended,
    ProgressReported: _reported,
    ObligationsTransferred: _transferred,
    TermClosed: _closed,
}


def _replaced(ids: Iterable[str], old: str, new: str, lead: str) -> list[str]:
    """Supporters with `old` replaced by `new`, without the lead and without repeats."""
    out: list[str] = []
    for party_id in ids:
        party_id = new if party_id == old else party_id
        if party_id != lead and party_id not in out:
            out.append(party_id)
    return out


def transfer(state: AgreementState, event: ObligationsTransferred) -> AgreementState:
    """The predecessor leaves the parties for the successors; each obligation it named moves to
    the successor the event gives (unchecked: decide checked it, evolve trusts the log)."""
    old = event.predecessor_party_id
    parties = dict(state.parties)
    predecessor = parties.pop(old)
    for successor in event.successors:
        parties[successor.party_id] = successor
    obligations = dict(state.obligations)
    for moved in event.obligations:
        current = obligations[moved.obligation_id]
        ob = current.obligation
        lead = moved.successor_party_id if ob.lead_party_id == old else ob.lead_party_id
        revised = ob.model_copy(
            update={
                "lead_party_id": lead,
                "supporting_party_ids": _replaced(
                    ob.supporting_party_ids, old, moved.successor_party_id, lead
                ),
            }
        )
        inheritance = Inheritance(old, moved.successor_party_id, event.effective_on, event.legal_basis)
        obligations[moved.obligation_id] = _replace(
            current, obligation=revised, inherited=(*current.inherited, inheritance)
        )
    former = dict(state.former_parties)
    former[old] = FormerParty(
        predecessor, event.effective_on, event.legal_basis, tuple(p.party_id for p in event.successors)
    )
    return _replace(
        state,
        parties=MappingProxyType(parties),
        obligations=MappingProxyType(obligations),
        former_parties=MappingProxyType(former),
    )


def fold(events: Iterable[Event], state: AgreementState | None = None) -> AgreementState | None:
    """`evolve` over the events, from `state` (none: from before the signing)."""
    for event in events:
        state = evolve(state, event)
    return state
