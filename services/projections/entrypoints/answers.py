"""The query API's answers, as typed response models: the OpenAPI document's named schemas and
the answers' encoders (pydantic-core writes them: `model_dump_json`).

Two kinds of object:

- `Answer`: built by the queries (services/projections/readmodel/queries.py) member by member;
  its fields are in the order the answers have always had.
- `Stored`: an object as the read model's `jsonb` holds it (an agreement's document, a party's
  names, a latest report). PostgreSQL keeps a jsonb object's members shorter name first, then
  bytewise, and the answers have always had them in that order, so these models declare their
  fields in it (tests/unit/test_projection_answers.py checks it). A member the model does not
  name is kept (`extra="allow"`), and one a stored object lacks (a document written before the
  party directory has no `former_parties`) stays out (`exclude_unset`): what is stored is what
  is answered.

tests/integration/test_response_bodies.py holds the answers to what they were, byte for byte.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Stored(BaseModel):
    """A jsonb object (see the module's docstring): fields in jsonb's order."""

    model_config = ConfigDict(frozen=True, extra="allow")


def encoded(answer: BaseModel) -> str:
    """What the answer's body is: members not stored stay out."""
    return answer.model_dump_json(exclude_unset=True)


# --- an agreement's document (the `state` column of `agreements`) ----------------------------------


class DocumentTerm(Stored):
    end: str
    start: str


class DocumentSignatory(Stored):
    name: str
    title: str | None = None


class DocumentParty(Stored):
    name: str
    role: str
    party_id: str
    signatory: DocumentSignatory | None = None


class DocumentFormerParty(Stored):
    name: str
    role: str
    party_id: str
    signatory: DocumentSignatory | None = None
    legal_basis: str
    effective_on: str
    successor_party_ids: list[str]


class DocumentLegalBasis(Stored):
    title: str | None = None
    issuer: str | None = None
    issued_on: str | None = None
    reference: str


class DocumentInheritance(Stored):
    legal_basis: str
    to_party_id: str
    effective_on: str
    from_party_id: str


class DocumentObligation(Stored):
    title: str
    status: str
    cadence: str
    inherited: list[DocumentInheritance] = []
    description: str | None = None
    lead_party_id: str
    obligation_id: str
    supporting_party_ids: list[str] = []


class DocumentReport(Stored):
    period: str
    status: str
    party_id: str
    sequence: int
    reported_on: str
    obligation_id: str
    completion_percent: int | None = None


class DocumentClosure(Stored):
    outcome: str
    summary: str | None = None
    closed_on: str
    successor_agreement_id: str | None = None


class AgreementDocument(Stored):
    """An agreement as the read model holds it: its current state, with the locality as governed
    now (`locality_now`) and the document number's type."""

    kind: str
    term: DocumentTerm
    title: str
    status: Literal["active", "closed"]
    closure: DocumentClosure | None
    parties: list[DocumentParty]
    reports: list[DocumentReport]
    version: int
    locality: str
    signed_on: str
    amendments: list[str]
    legal_basis: list[DocumentLegalBasis]
    obligations: list[DocumentObligation]
    agreement_id: str
    locality_now: str | None = None
    document_type: str | None = None
    former_parties: list[DocumentFormerParty] = []
    document_number: str
    parent_agreement_id: str | None


# --- the party directory ------------------------------------------------------------------------


class StoredName(Stored):
    name: str
    legal_basis: str | None = None
    effective_on: str | None = None


class StoredObligationSuccessor(Stored):
    agreement_id: str
    obligation_id: str
    successor_party_id: str


class DirectorySuccession(Answer):
    effective_on: str
    legal_basis: str | None
    successor_party_id: str | None
    obligation_successors: list[StoredObligationSuccessor]


class LinkedParty(Answer):
    party_id: str
    name: str | None
    effective_on: str
    legal_basis: str | None


class PartyEntry(Answer):
    """A party's directory entry, with the parties it succeeded and that succeeded it."""

    party_id: str
    name: str
    kind: str
    province: str | None
    province_now: str | None
    electronic_id: str | None
    unit_code: str | None
    names: list[StoredName]
    registered_from_agreement_id: str | None
    status: Literal["active", "ceased"]
    succession: DirectorySuccession | None
    predecessors: list[LinkedParty]
    successors: list[LinkedParty]
    version: int
    position: int


class LatestReport(Stored):
    period: str
    status: str
    reported_on: str
    completion_percent: int | None = None


class HeldObligation(Answer):
    """An obligation the party holds (`role`: lead or supporter), and how it came to hold it."""

    agreement_id: str
    document_number: str
    agreement_title: str
    obligation_id: str
    title: str
    role: str
    cadence: str
    status: str
    latest_report: LatestReport | None
    inherited_from: str | None
    inherited_on: str | None


class TransferredObligation(Answer):
    """An obligation the party passed on to a successor when it ceased."""

    agreement_id: str
    document_number: str
    agreement_title: str
    obligation_id: str
    title: str
    cadence: str
    status: str
    latest_report: LatestReport | None
    inherited_from: str | None
    inherited_on: str | None
    transferred_to: str
    transferred_on: str | None


class SucceededBy(Answer):
    successor_party_id: str | None
    effective_on: str
    legal_basis: str | None


class PartyObligations(Answer):
    party_id: str
    # One array whose items are either kind, not "an array of one kind or an array of the other":
    # the wire is the same (the server never mixes them), but openapi-generator cannot build a
    # client from a union of two array types (docs/CLIENTS.md).
    obligations: list[HeldObligation | TransferredObligation] = Field(
        description="`HeldObligation`s, or with `status=transferred` `TransferredObligation`s"
    )
    succeeded_by: SucceededBy | None
    position: int = Field(description="The last position the read models have applied")
    next_cursor: str | None


class HistoryLine(Answer):
    event_id: str
    type: str
    agreement_id: str | None = Field(description="None for an event of the party's own stream")
    sequence: int
    position: int
    recorded_at: str
    summary: str


class PartyHistory(Answer):
    party_id: str
    events: list[HistoryLine]
    next_cursor: str | None


# --- listings and reports -----------------------------------------------------------------------


class SummaryTerm(Answer):
    start: str
    end: str


class AgreementSummary(Answer):
    agreement_id: str
    document_number: str
    kind: str
    title: str
    locality: str
    locality_now: str | None
    document_type: str | None
    status: Literal["active", "closed"]
    signed_on: str
    term: SummaryTerm
    party_ids: list[str]
    version: int


class AgreementList(Answer):
    agreements: list[AgreementSummary]
    next_cursor: str | None


class OverdueObligation(Answer):
    lead_party_id: str
    agreement_id: str
    document_number: str
    agreement_title: str
    obligation_id: str
    title: str
    cadence: str


class OverdueReport(Answer):
    period: str
    obligations: list[OverdueObligation]
    next_cursor: str | None


class ProjectionState(Answer):
    name: str
    consumer_group: str
    last_position: int
    applied_events: int
    parked_events: int
    dead_letters: int
    last_applied_at: str | None
    offsets: dict[str, int] = Field(description="The next offset to read, by partition")
    lag_events: int | None


class ProjectionStatus(Answer):
    projections: list[ProjectionState]
