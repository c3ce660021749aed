"""The registry's own read shape: an agreement's current state as `GET /v1/agreements/{id}` answers it.

Decided on the event store's state (strongly consistent). The projections keep their own
document (services/projections/readmodel/document.py): the two answer the same JSON today
because the contract says so, but neither side's storage depends on the other's code.
"""

from __future__ import annotations

from typing import Any

from services.agreement.state import AgreementState


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
            {**o.obligation.model_dump(mode="json"), "status": o.status} for o in state.obligations.values()
        ],
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
