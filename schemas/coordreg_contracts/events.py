"""Events: what happened to an agreement (past-tense names). Contracts with consumers.

Every event's data carries `schema_version`; an older payload is brought up to the
current model by `coordreg_contracts.upcasting` before it is validated.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from coordreg_contracts.changes import Change
from coordreg_contracts.common import (
    DocumentNumber,
    Evidence,
    Frozen,
    IsoDate,
    LegalBasis,
    LongText,
    Obligation,
    Outcome,
    Party,
    Period,
    ReportStatus,
    ShortText,
    Slug,
    Term,
    Title,
)
from coordreg_contracts.parties import PARTY_EVENT_CLASSES, PartyEvent

EVENT_TYPE_PREFIX = "vn.gov.coordination."


class AgreementSigned(Frozen):
    schema_version: Literal[1] = 1
    agreement_id: str
    document_number: DocumentNumber
    kind: Literal["program", "regulation", "plan", "joint_resolution"]
    title: Title
    locality: ShortText
    signed_on: IsoDate
    term: Term
    parties: list[Party]
    legal_basis: list[LegalBasis] = []
    obligations: list[Obligation]
    parent_agreement_id: str | None = None


class AgreementAmended(Frozen):
    schema_version: Literal[1] = 1
    document_number: DocumentNumber
    reason: LongText
    effective_on: IsoDate
    changes: list[Change]


class ProgressReported(Frozen):
    schema_version: Literal[1] = 1
    obligation_id: Slug
    party_id: Slug
    period: Period
    status: ReportStatus
    completion_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    summary: LongText | None = None
    reported_on: IsoDate
    evidence: list[Evidence] = []


class TermClosed(Frozen):
    schema_version: Literal[1] = 1
    closed_on: IsoDate
    outcome: Outcome
    summary: LongText | None = None
    successor_agreement_id: str | None = None


class ObligationTransfer(Frozen):
    obligation_id: Slug
    successor_party_id: Slug


class ObligationsTransferred(Frozen):
    """A party of the agreement ceased (its directory stream records `SuccessionRecorded`, the
    event `succession_event_id`): from `effective_on` its place and its obligations belong to
    its successors. Recorded by the succession process manager (docs/CONTRACT.md, decision 17).

    `successors` are the parties that take over, as they stand in the agreement from now on
    (one that was already a party keeps its entry, but takes the lead if the predecessor led);
    `obligations` lists every obligation that named the predecessor, with who holds it now.
    """

    schema_version: Literal[1] = 1
    predecessor_party_id: Slug
    effective_on: IsoDate
    legal_basis: DocumentNumber
    succession_event_id: str
    successors: list[Party]
    obligations: list[ObligationTransfer]


Event = AgreementSigned | AgreementAmended | ProgressReported | TermClosed | ObligationsTransferred

EVENT_CLASSES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (AgreementSigned, AgreementAmended, ProgressReported, TermClosed, ObligationsTransferred)
}


def event_type(event: Event | PartyEvent) -> str:
    """The CloudEvents `type` of an event, e.g. vn.gov.coordination.AgreementSigned.v1."""
    return f"{EVENT_TYPE_PREFIX}{type(event).__name__}.v{event.schema_version}"


def event_name(cloud_type: str) -> str:
    """`vn.gov.coordination.AgreementSigned.v1` -> `AgreementSigned`."""
    if not cloud_type.startswith(EVENT_TYPE_PREFIX):
        raise ValueError(f"not a registry event type: {cloud_type!r}")
    return cloud_type[len(EVENT_TYPE_PREFIX) :].rsplit(".", 1)[0]


# Every event type the store holds, agreements' and parties': what schemas/ publishes.
ALL_EVENT_CLASSES: dict[str, type[Event | PartyEvent]] = {**EVENT_CLASSES, **PARTY_EVENT_CLASSES}
