"""The registry's own read shape: an agreement's current state as `GET /v1/agreements/{id}` answers it.

Decided on the event store's state (strongly consistent). The contract gives the projections'
document the same shape (with two derived members more), so both are written by one codec,
services/agreement/codec.py; neither side's storage depends on the other's code.
"""

from __future__ import annotations

from typing import Any

from services.agreement.codec import agreement_json
from services.agreement.state import AgreementState
from services.directory.codec import naming_json, obligation_successors_json
from services.directory.state import PartyState


def agreement_view(state: AgreementState) -> dict[str, Any]:
    return agreement_json(state)


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
        "names": [naming_json(n) for n in state.names],
        "succession": None
        if succession is None
        else {
            "effective_on": succession.effective_on.isoformat(),
            "legal_basis": succession.legal_basis,
            "successor_party_id": succession.successor_party_id,
            "obligation_successors": obligation_successors_json(succession),
        },
        # True until the process manager has carried the succession into every agreement.
        "transfers_pending": transfers_pending,
    }
