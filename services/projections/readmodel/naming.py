"""Which parties an event names, and a one-line summary of it, for the party history.

Agreement events (`parties_named`, `summary`) and party directory events
(`party_events_named`, `party_summary`) both land in a party's history: a succession is in the
history of the party that ceased and of every party that took over from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from coordreg_contracts.changes import (
    AddObligation,
    AddParty,
    ChangeTerm,
    RemoveParty,
    ReviseObligation,
    WithdrawObligation,
)
from coordreg_contracts.events import (
    AgreementAmended,
    AgreementSigned,
    Event,
    ObligationsTransferred,
    ProgressReported,
    TermClosed,
)
from coordreg_contracts.parties import PartyEvent, PartyRegistered, PartyRenamed, SuccessionRecorded

from services.agreement.state import AgreementState
from services.directory.state import PartyState


def parties_named(event: Event, before: AgreementState | None, after: AgreementState) -> set[str]:
    """Parties an event concerns: signatories, leads and supporters it touches, the reporter.

    An amendment names the parties it adds or removes and the leads and supporters of
    every obligation it adds, revises or withdraws (before and after the change); a
    closing concerns every party the agreement has when it closes; a transfer of
    obligations, the party that ceased and every successor, whether or not it took any.
    """
    return _READ_OF[type(event)].named(event, before, after)


def summary(event: Event, state: AgreementState) -> str:
    """One line for the event, `state` being the agreement after it."""
    return _READ_OF[type(event)].summary(event, state)


def _signed_named(event: AgreementSigned, before: AgreementState | None, after: AgreementState) -> set[str]:
    return {p.party_id for p in event.parties}


def _signed_summary(event: AgreementSigned, state: AgreementState) -> str:
    return f"Signed {event.document_number}: {event.title}"


def _amended_named(event: AgreementAmended, before: AgreementState | None, after: AgreementState) -> set[str]:
    named: set[str] = set()
    for change in event.changes:
        named |= _CHANGE_NAMES[type(change)](change, before, after)
    return named


def _party_added(change: AddParty, before: AgreementState | None, after: AgreementState) -> set[str]:
    return {change.party.party_id}


def _party_removed(change: RemoveParty, before: AgreementState | None, after: AgreementState) -> set[str]:
    return {change.party_id}


def _obligation_added(
    change: AddObligation, before: AgreementState | None, after: AgreementState
) -> set[str]:
    return {change.obligation.lead_party_id, *change.obligation.supporting_party_ids}


def _obligation_changed(
    change: ReviseObligation | WithdrawObligation, before: AgreementState | None, after: AgreementState
) -> set[str]:
    named: set[str] = set()
    for state in (before, after):
        current = state.obligations.get(change.obligation_id) if state else None
        if current is not None:
            named |= {current.obligation.lead_party_id, *current.obligation.supporting_party_ids}
    return named


def _nobody(change: ChangeTerm, before: AgreementState | None, after: AgreementState) -> set[str]:
    return set()


# The parties each kind of change names.
_CHANGE_NAMES: Mapping[type[Any], Callable[[Any, AgreementState | None, AgreementState], set[str]]] = {
    AddParty: _party_added,
    RemoveParty: _party_removed,
    AddObligation: _obligation_added,
    ReviseObligation: _obligation_changed,
    WithdrawObligation: _obligation_changed,
    ChangeTerm: _nobody,
}


def _amended_summary(event: AgreementAmended, state: AgreementState) -> str:
    ops = ", ".join(sorted({c.op for c in event.changes}))
    return f"Amended by {event.document_number} ({ops}): {event.reason}"


def _reported_named(
    event: ProgressReported, before: AgreementState | None, after: AgreementState
) -> set[str]:
    return {event.party_id}


def _reported_summary(event: ProgressReported, state: AgreementState) -> str:
    percent = f", {event.completion_percent}%" if event.completion_percent is not None else ""
    return (
        f"{event.party_id} reported {event.status.value}{percent} on {event.obligation_id} for {event.period}"
    )


def _transferred_named(
    event: ObligationsTransferred, before: AgreementState | None, after: AgreementState
) -> set[str]:
    return {
        event.predecessor_party_id,
        *(p.party_id for p in event.successors),
        *(o.successor_party_id for o in event.obligations),
    }


def _transferred_summary(event: ObligationsTransferred, state: AgreementState) -> str:
    successors = _successors([p.party_id for p in event.successors])
    moved = ", ".join(o.obligation_id for o in event.obligations) or "none"
    return (
        f"{event.predecessor_party_id} succeeded by {successors} on {event.effective_on}"
        f" ({event.legal_basis}): obligations {moved}"
    )


def _closed_named(event: TermClosed, before: AgreementState | None, after: AgreementState) -> set[str]:
    return set(after.parties)


def _closed_summary(event: TermClosed, state: AgreementState) -> str:
    return f"Term of {state.document_number} closed on {event.closed_on} ({event.outcome.value})"


def _successors(ids: list[str]) -> str:
    return ", ".join(dict.fromkeys(ids))


@dataclass(frozen=True)
class _Read:
    """What the party history makes of one event type."""

    named: Callable[[Any, AgreementState | None, AgreementState], set[str]]
    summary: Callable[[Any, AgreementState], str]


# One row per event type: a new event adds its row.
_READ_OF: Mapping[type[Event], _Read] = {
    AgreementSigned: _Read(_signed_named, _signed_summary),
    AgreementAmended: _Read(_amended_named, _amended_summary),
    ProgressReported: _Read(_reported_named, _reported_summary),
    ObligationsTransferred: _Read(_transferred_named, _transferred_summary),
    TermClosed: _Read(_closed_named, _closed_summary),
}


def party_events_named(event: PartyEvent, party_id: str) -> set[str]:
    """Parties an event of `party_id`'s own stream concerns: the party itself, and for a
    succession every party that takes over (the default successor and any named for one
    obligation)."""
    return _PARTY_NAMED.get(type(event), _only_the_party)(event, party_id)


def party_summary(event: PartyEvent, state: PartyState) -> str:
    """One line for the event, `state` being the party's entry after it."""
    return _PARTY_SUMMARIES[type(event)](event, state)


def _only_the_party(event: PartyEvent, party_id: str) -> set[str]:
    return {party_id}


def _succession_named(event: SuccessionRecorded, party_id: str) -> set[str]:
    return {
        party_id,
        event.successor_party_id,
        *(s.successor_party_id for s in event.obligation_successors),
    }


def _registered_summary(event: PartyRegistered, state: PartyState) -> str:
    source = (
        f" from agreement {event.registered_from_agreement_id}" if event.registered_from_agreement_id else ""
    )
    return f"{event.party_id} registered{source}: {event.name} ({event.kind.value})"


def _renamed_summary(event: PartyRenamed, state: PartyState) -> str:
    former = state.names[-2].name if len(state.names) > 1 else None
    basis = f" ({event.legal_basis})" if event.legal_basis else ""
    was = f" from {former}" if former is not None else ""
    return f"{state.party_id} renamed{was} to {event.name} on {event.effective_on}{basis}"


def _succession_summary(event: SuccessionRecorded, state: PartyState) -> str:
    others = sorted({s.successor_party_id for s in event.obligation_successors} - {event.successor_party_id})
    also = f" (some obligations to {', '.join(others)})" if others else ""
    return (
        f"{state.party_id} succeeded by {event.successor_party_id}{also} on {event.effective_on}"
        f" ({event.legal_basis})"
    )


_PARTY_NAMED: Mapping[type[PartyEvent], Callable[[Any, str], set[str]]] = {
    SuccessionRecorded: _succession_named,
}
_PARTY_SUMMARIES: Mapping[type[PartyEvent], Callable[[Any, PartyState], str]] = {
    PartyRegistered: _registered_summary,
    PartyRenamed: _renamed_summary,
    SuccessionRecorded: _succession_summary,
}
