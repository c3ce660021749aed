"""Which parties an event names, and a one-line summary of it, for the party history."""

from __future__ import annotations

from coordreg_contracts.changes import (
    AddObligation,
    AddParty,
    RemoveParty,
    ReviseObligation,
    WithdrawObligation,
)
from coordreg_contracts.events import AgreementAmended, AgreementSigned, Event, ProgressReported, TermClosed

from services.agreement.state import AgreementState


def parties_named(event: Event, before: AgreementState | None, after: AgreementState) -> set[str]:
    """Parties an event concerns: signatories, leads and supporters it touches, the reporter.

    An amendment names the parties it adds or removes and the leads and supporters of
    every obligation it adds, revises or withdraws (before and after the change); a
    closing concerns every party the agreement has when it closes.
    """
    if isinstance(event, AgreementSigned):
        return {p.party_id for p in event.parties}
    if isinstance(event, ProgressReported):
        return {event.party_id}
    if isinstance(event, TermClosed):
        return set(after.parties)
    named: set[str] = set()
    assert isinstance(event, AgreementAmended)
    for change in event.changes:
        if isinstance(change, AddParty):
            named.add(change.party.party_id)
        elif isinstance(change, RemoveParty):
            named.add(change.party_id)
        elif isinstance(change, AddObligation):
            named |= {change.obligation.lead_party_id, *change.obligation.supporting_party_ids}
        elif isinstance(change, ReviseObligation | WithdrawObligation):
            for state in (before, after):
                current = state.obligations.get(change.obligation_id) if state else None
                if current is not None:
                    named |= {current.obligation.lead_party_id, *current.obligation.supporting_party_ids}
    return named


def summary(event: Event, state: AgreementState) -> str:
    if isinstance(event, AgreementSigned):
        return f"Signed {event.document_number}: {event.title}"
    if isinstance(event, AgreementAmended):
        ops = ", ".join(sorted({c.op for c in event.changes}))
        return f"Amended by {event.document_number} ({ops}): {event.reason}"
    if isinstance(event, ProgressReported):
        percent = f", {event.completion_percent}%" if event.completion_percent is not None else ""
        return f"{event.party_id} reported {event.status.value}{percent} on {event.obligation_id} for {event.period}"
    assert isinstance(event, TermClosed)
    return f"Term of {state.document_number} closed on {event.closed_on} ({event.outcome.value})"
