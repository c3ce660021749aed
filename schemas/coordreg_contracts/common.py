"""Value types shared by commands and events.

Text is normalised to Unicode NFC on the way in, so that Vietnamese written with
combining marks (NFD, as some keyboards and PDF extractions produce) and the
precomposed form are one and the same string in the log and in search.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from coordreg_contracts import patterns

MAX_PARTIES = 50
MAX_OBLIGATIONS = 100
MAX_LEGAL_BASIS = 50
MAX_CHANGES = 100
MAX_EVIDENCE = 50


class Frozen(BaseModel):
    """Base of every contract model: immutable, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _nfc(value: str) -> str:
    normalised = unicodedata.normalize("NFC", value)
    if not normalised.strip():
        raise ValueError("must not be blank")
    return normalised


def _iso_date(value: Any) -> Any:
    # pydantic's lax date parsing also takes numbers and datetimes; the contract says YYYY-MM-DD.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not patterns.full_match(patterns.ISO_DATE, value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


ShortText = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_nfc)]
Title = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_nfc)]
LongText = Annotated[str, Field(min_length=1, max_length=10000), AfterValidator(_nfc)]
DocumentNumber = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_nfc)]
Slug = Annotated[str, Field(pattern=patterns.SLUG)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
# A reporting period (patterns.PERIOD): ASCII digits only, so `2٠٢٤` is not a second `2024`.
PERIOD_PATTERN = patterns.PERIOD
Period = Annotated[str, Field(pattern=PERIOD_PATTERN)]


class Role(StrEnum):
    LEAD = "lead"
    MEMBER = "member"


class Cadence(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    SEMIANNUAL = "semiannual"
    ANNUAL = "annual"
    ONCE = "once"


class ReportStatus(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    AT_RISK = "at_risk"
    BLOCKED = "blocked"
    COMPLETED = "completed"


class Outcome(StrEnum):
    COMPLETED = "completed"
    TERMINATED = "terminated"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


class Term(Frozen):
    start: IsoDate
    end: IsoDate

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.start > self.end:
            raise ValueError("term.start must not be after term.end")
        return self


class Signatory(Frozen):
    name: ShortText
    title: ShortText | None = None


class Party(Frozen):
    party_id: Slug
    name: Title
    role: Role
    signatory: Signatory | None = None


class LegalBasis(Frozen):
    reference: DocumentNumber
    issued_on: IsoDate | None = None
    issuer: ShortText | None = None
    title: Title | None = None


class Obligation(Frozen):
    obligation_id: Slug
    title: Title
    description: LongText | None = None
    lead_party_id: Slug
    supporting_party_ids: Annotated[list[Slug], Field(max_length=MAX_PARTIES)] = []
    cadence: Cadence


class Evidence(Frozen):
    document_number: DocumentNumber
    title: Title | None = None
