"""Commands: what a government system asks the registry to do (imperative names).

Each model is exactly the JSON body of one POST in docs/CONTRACT.md; the agreement id and
the caller's identity travel beside it (see `CommandContext` in the registry).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from coordreg_contracts import examples
from coordreg_contracts.changes import Change
from coordreg_contracts.common import (
    MAX_CHANGES,
    MAX_EVIDENCE,
    MAX_LEGAL_BASIS,
    MAX_OBLIGATIONS,
    MAX_PARTIES,
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


class SignAgreement(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.SIGN_AGREEMENT]})

    document_number: DocumentNumber
    kind: Literal["program", "regulation", "plan", "joint_resolution"]
    title: Title
    locality: ShortText
    signed_on: IsoDate
    term: Term
    parties: Annotated[list[Party], Field(max_length=MAX_PARTIES)]
    legal_basis: Annotated[list[LegalBasis], Field(max_length=MAX_LEGAL_BASIS)] = []
    obligations: Annotated[list[Obligation], Field(max_length=MAX_OBLIGATIONS)]
    parent_agreement_id: Annotated[str, Field(max_length=64)] | None = None


class AmendAgreement(Frozen):
    model_config = ConfigDict(
        json_schema_extra={"examples": [examples.AMEND_AGREEMENT_TERM, examples.AMEND_AGREEMENT_OBLIGATION]}
    )

    document_number: DocumentNumber
    reason: LongText
    effective_on: IsoDate
    changes: Annotated[list[Change], Field(min_length=1, max_length=MAX_CHANGES)]


class ReportProgress(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.REPORT_PROGRESS]})

    obligation_id: Slug
    party_id: Slug
    period: Period
    status: ReportStatus
    completion_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    summary: LongText | None = None
    reported_on: IsoDate
    evidence: Annotated[list[Evidence], Field(max_length=MAX_EVIDENCE)] = []


class CloseTerm(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.CLOSE_TERM]})

    closed_on: IsoDate
    outcome: Outcome
    summary: LongText | None = None
    successor_agreement_id: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("successor_agreement_id")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


Command = SignAgreement | AmendAgreement | ReportProgress | CloseTerm
