"""What the services answer, as the client reads it: frozen models that ignore members they do not
know (`extra="ignore"`), so that an addition to an answer (docs/CONTRACT.md: additive changes
only) never breaks a client built before it.

They mirror the services' response models (services/registry/entrypoints/views.py and
services/projections/entrypoints/answers.py, the OpenAPI documents' named schemas) field for
field; tests/unit/test_python_client_models.py holds them to the documents. The registry's dates
are `date`s; the projections answer theirs as text, and so they stay here.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict

from coordreg_contracts.envelope import Envelope


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# --- the registry -------------------------------------------------------------------------------


class AgreementCommandResult(Answer):
    agreement_id: str
    version: int
    position: int
    status: Literal["active", "closed"]


class PartyCommandResult(Answer):
    party_id: str
    version: int
    position: int
    status: Literal["active", "ceased"]


class Term(Answer):
    start: date
    end: date


class Signatory(Answer):
    name: str
    title: str | None = None


class Party(Answer):
    party_id: str
    name: str
    role: str
    signatory: Signatory | None = None


class LegalBasis(Answer):
    reference: str
    issued_on: date | None = None
    issuer: str | None = None
    title: str | None = None


class ObligationInheritance(Answer):
    from_party_id: str
    to_party_id: str
    effective_on: date
    legal_basis: str


class AgreementObligation(Answer):
    obligation_id: str
    title: str
    description: str | None = None
    lead_party_id: str
    supporting_party_ids: list[str] = []
    cadence: str
    status: Literal["active", "withdrawn"]
    inherited: list[ObligationInheritance]


class FormerParty(Answer):
    party_id: str
    name: str
    role: str
    signatory: Signatory | None = None
    effective_on: date
    legal_basis: str
    successor_party_ids: list[str]


class AgreementReport(Answer):
    obligation_id: str
    party_id: str
    period: str
    status: str
    completion_percent: int | None
    reported_on: date
    sequence: int


class AgreementClosure(Answer):
    closed_on: date
    outcome: str
    summary: str | None
    successor_agreement_id: str | None


class Agreement(Answer):
    """`getAgreement` of the registry: the agreement's current state, strongly consistent."""

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


class PartyName(Answer):
    name: str
    effective_on: date | None
    legal_basis: str | None


class ObligationSuccessor(Answer):
    agreement_id: str
    obligation_id: str
    successor_party_id: str


class PartySuccession(Answer):
    effective_on: date
    legal_basis: str
    successor_party_id: str
    obligation_successors: list[ObligationSuccessor]


class DirectoryEntry(Answer):
    """`getParty` of the registry."""

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
    transfers_pending: bool


class EventPage(Answer):
    """A page of a stream's events: CloudEvents envelopes (verify them with `Envelope`)."""

    events: list[Envelope]
    next_cursor: str | None


# --- the projections ----------------------------------------------------------------------------


class DocumentTerm(Answer):
    end: str
    start: str


class DocumentSignatory(Answer):
    name: str
    title: str | None = None


class DocumentParty(Answer):
    name: str
    role: str
    party_id: str
    signatory: DocumentSignatory | None = None


class DocumentFormerParty(Answer):
    name: str
    role: str
    party_id: str
    signatory: DocumentSignatory | None = None
    legal_basis: str
    effective_on: str
    successor_party_ids: list[str]


class DocumentLegalBasis(Answer):
    title: str | None = None
    issuer: str | None = None
    issued_on: str | None = None
    reference: str


class DocumentInheritance(Answer):
    legal_basis: str
    to_party_id: str
    effective_on: str
    from_party_id: str


class DocumentObligation(Answer):
    title: str
    status: str
    cadence: str
    inherited: list[DocumentInheritance] = []
    description: str | None = None
    lead_party_id: str
    obligation_id: str
    supporting_party_ids: list[str] = []


class DocumentReport(Answer):
    period: str
    status: str
    party_id: str
    sequence: int
    reported_on: str
    obligation_id: str
    completion_percent: int | None = None


class DocumentClosure(Answer):
    outcome: str
    summary: str | None = None
    closed_on: str
    successor_agreement_id: str | None = None


class AgreementDocument(Answer):
    """`getAgreement` of the projections: the read model's document."""

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


class StoredName(Answer):
    name: str
    legal_basis: str | None = None
    effective_on: str | None = None


class StoredObligationSuccessor(Answer):
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
    """`getParty` of the projections."""

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


class LatestReport(Answer):
    period: str
    status: str
    reported_on: str
    completion_percent: int | None = None


class HeldObligation(Answer):
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
    """`listPartyObligations`: `HeldObligation`s, or with `status="transferred"` `TransferredObligation`s."""

    party_id: str
    obligations: list[TransferredObligation | HeldObligation]
    succeeded_by: SucceededBy | None
    position: int
    next_cursor: str | None


class HistoryLine(Answer):
    event_id: str
    type: str
    agreement_id: str | None
    sequence: int
    position: int
    recorded_at: str
    summary: str


class PartyHistory(Answer):
    party_id: str
    events: list[HistoryLine]
    next_cursor: str | None


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
    offsets: dict[str, int]
    lag_events: int | None


class ProjectionStatus(Answer):
    projections: list[ProjectionState]
