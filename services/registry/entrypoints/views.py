"""The registry's own read shapes, as typed response models: an agreement's current state as
`GET /v1/agreements/{id}` answers it, a directory entry, and what a command answers.

Decided on the event store's state (strongly consistent). The contract gives the projections'
document the same shape (with two derived members more), so both are written by one codec,
services/agreement/codec.py (services/directory/codec.py for a party's parts); neither side's
storage depends on the other's code.

The models are the OpenAPI document's named schemas and the answers' encoders: a view is the
codec's JSON validated into its model, and written with pydantic-core (`model_dump_json`). Their
fields are in the order the answers have always had (tests/integration/test_response_bodies.py
holds them to it, byte for byte).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from coordreg_contracts.common import LegalBasis, Obligation, Party, Term
from coordreg_contracts.envelope import Envelope
from coordreg_contracts.parties import ObligationSuccessor
from pydantic import BaseModel, ConfigDict, Field

from services.agreement.codec import agreement_json
from services.agreement.state import AgreementState
from services.directory.codec import naming_json, obligation_successors_json
from services.directory.state import PartyState


class View(BaseModel):
    """Base of the response models: immutable, and nothing but the fields declared."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class AgreementCommandResult(View):
    """What an agreement's command answers: its stream's version and the position of its event."""

    agreement_id: str
    version: int
    position: int
    status: Literal["active", "closed"]


class PartyCommandResult(View):
    """What a directory command answers: the party's stream version and the position of its event."""

    party_id: str
    version: int
    position: int
    status: Literal["active", "ceased"]


class ObligationInheritance(View):
    """An obligation a party holds because it took over a ceased party's functions."""

    from_party_id: str
    to_party_id: str
    effective_on: date
    legal_basis: str


class AgreementObligation(Obligation):
    """An obligation as the agreement holds it now."""

    status: Literal["active", "withdrawn"]
    inherited: list[ObligationInheritance]


class FormerParty(Party):
    """A party that ceased, and who took over its part in the agreement."""

    effective_on: date
    legal_basis: str
    successor_party_ids: list[str]


class AgreementReport(View):
    """The latest progress report of one obligation, party and period."""

    obligation_id: str
    party_id: str
    period: str
    status: str
    completion_percent: int | None
    reported_on: date
    sequence: int


class AgreementClosure(View):
    closed_on: date
    outcome: str
    summary: str | None
    successor_agreement_id: str | None


class Agreement(View):
    """An agreement's current state, folded from its events."""

    agreement_id: str
    version: int
    status: Literal["active", "closed"]
    document_number: str
    kind: str
    title: str
    locality: str
    signed_on: date
    term: Term
    parties: list[Party]
    legal_basis: list[LegalBasis]
    obligations: list[AgreementObligation]
    former_parties: list[FormerParty]
    parent_agreement_id: str | None
    amendments: list[str]
    reports: list[AgreementReport]
    closure: AgreementClosure | None


class PartyName(View):
    name: str
    effective_on: date | None
    legal_basis: str | None


class PartySuccession(View):
    effective_on: date
    legal_basis: str
    successor_party_id: str
    obligation_successors: list[ObligationSuccessor]


class DirectoryEntry(View):
    """A party's directory entry, folded from its own stream (its successors; the projections add
    who it succeeded)."""

    party_id: str
    version: int
    status: Literal["active", "ceased"]
    name: str
    kind: str
    province: str | None
    electronic_id: str | None
    unit_code: str | None
    registered_from_agreement_id: str | None
    names: list[PartyName]
    succession: PartySuccession | None
    transfers_pending: bool = Field(
        description="True until the process manager has carried the succession into every agreement"
    )


class EventPage(View):
    """A page of a stream's events (CloudEvents envelopes) in sequence order (docs/CONTRACT.md B7)."""

    events: list[Envelope]
    next_cursor: str | None


def agreement_view(state: AgreementState) -> Agreement:
    return Agreement.model_validate(agreement_json(state))


def party_view(state: PartyState, *, transfers_pending: bool) -> DirectoryEntry:
    succession = state.succession
    return DirectoryEntry.model_validate(
        {
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
    )


def as_json(view: BaseModel) -> dict[str, Any]:
    """A view as the JSON value it is written as (tests compare it with the read side's)."""
    return view.model_dump(mode="json")
