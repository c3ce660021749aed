"""The registry's own read shape: an agreement's current state as `GET /v1/agreements/{id}` answers it.

Decided on the event store's state (strongly consistent). The projections keep their own
document (services/projections/readmodel/document.py): the two answer the same JSON today
because the contract says so, but neither side's storage depends on the other's code.
"""

from __future__ import annotations

from typing import Any

from services.agreement.state import AgreementState, ObligationState
from services.directory.state import PartyState


def agreement_view(state: AgreementState) -> dict[str, Any]:
    return {
        "agreement_id": state.agreement_id,
        "version": state.version,
        "status": state.status,
        "document_number": state.document_number,
        "kind": state.kind,
        "title": state.title,
        "locality": state.locality,
        "signed_on": state.signed_on.isoformat(),
        "term": state.term.model_dump(mode="json"),
        "parties": [p.model_dump(mode="json") for p in state.parties.values()],
        "legal_basis": [b.model_dump(mode="json") for b in state.legal_basis],
        "obligations": [
            {**o.obligation.model_dump(mode="json"), "status": o.status, "inherited": inherited(o)}
            for o in state.obligations.values()
        ],
        "former_parties": former_parties(state),
        "parent_agreement_id": state.parent_agreement_id,
        "amendments": list(state.amendment_documents),
        "reports": [
            {
                "obligation_id": r.obligation_id,
                "party_id": r.party_id,
                "period": r.period,
                "status": r.status,
                "completion_percent": r.completion_percent,
                "reported_on": r.reported_on.isoformat(),
                "sequence": r.sequence,
            }
            for r in state.reports.values()
        ],
        "closure": None
        if state.closure is None
        else {
            "closed_on": state.closure.closed_on.isoformat(),
            "outcome": state.closure.outcome,
            "summary": state.closure.summary,
            "successor_agreement_id": state.closure.successor_agreement_id,
        },
    }


def inherited(item: ObligationState) -> list[dict[str, Any]]:
    return [
        {
            "from_party_id": i.from_party_id,
            "to_party_id": i.to_party_id,
            "effective_on": i.effective_on.isoformat(),
            "legal_basis": i.legal_basis,
        }
        for i in item.inherited
    ]


def former_parties(state: AgreementState) -> list[dict[str, Any]]:
    return [
        {
            **former.party.model_dump(mode="json"),
            "effective_on": former.effective_on.isoformat(),
            "legal_basis": former.legal_basis,
            "successor_party_ids": list(former.successor_party_ids),
        }
        for former in state.former_parties.values()
    ]


def party_view(state: PartyState, *, transfers_pending: bool) -> dict[str, Any]:
    """A directory entry as the registry answers it (its successors; the projections add who
    it succeeded)."""
    succession = state.succession
    return {
        "party_id": state.party_id,
        "version": state.version,
        "status": "ceased" if succession is not None else "active",
        "name": state.name,
        "kind": state.kind,
        "province": state.province,
        "electronic_id": state.electronic_id,
        "unit_code": state.unit_code,
        "registered_from_agreement_id": state.registered_from_agreement_id,
        "names": [
            {
                "name": n.name,
                "effective_on": n.effective_on.isoformat() if n.effective_on else None,
                "legal_basis": n.legal_basis,
            }
            for n in state.names
        ],
        "succession": None
        if succession is None
        else {
            "effective_on": succession.effective_on.isoformat(),
            "legal_basis": succession.legal_basis,
            "successor_party_id": succession.successor_party_id,
            "obligation_successors": [s.model_dump(mode="json") for s in succession.obligation_successors],
        },
        # True until the process manager has carried the succession into every agreement.
        "transfers_pending": transfers_pending,
    }
