"""The party directory: commands and events of one party's own stream (docs/CONTRACT.md,
decisions 15–18).

A party's stream lives in the same store as the agreements, with its own sequence and hash
chain; its subject is `party/<party_id>` (`party_subject`), which no agreement id can be (an
agreement id never holds a `/`). The stream is published on the same topic, keyed by subject.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from coordreg_contracts import examples, patterns
from coordreg_contracts.common import MAX_OBLIGATIONS, DocumentNumber, Frozen, IsoDate, ShortText, Slug, Title

PARTY_SUBJECT_PREFIX = "party/"

# Decision 20/2020/QĐ-TTg: at most 35 characters (patterns.ELECTRONIC_ID says which).
ElectronicId = Annotated[str, Field(max_length=35, pattern=patterns.ELECTRONIC_ID)]
UnitCode = Annotated[str, Field(pattern=patterns.UNIT_CODE)]


class PartyKind(StrEnum):
    PEOPLES_COMMITTEE = "peoples_committee"
    PEOPLES_COUNCIL = "peoples_council"
    FRONT_COMMITTEE = "front_committee"
    DEPARTMENT = "department"
    MINISTRY = "ministry"
    MASS_ORGANISATION = "mass_organisation"
    BANK = "bank"
    PRESS = "press"
    COURT_OR_PROCURACY = "court_or_procuracy"
    ARMED_FORCES = "armed_forces"
    OTHER = "other"
    # A party registered from a signing (decision 16): nobody has classified it yet.
    UNCLASSIFIED = "unclassified"


def party_subject(party_id: str) -> str:
    return f"{PARTY_SUBJECT_PREFIX}{party_id}"


def is_party_subject(subject: str) -> bool:
    return subject.startswith(PARTY_SUBJECT_PREFIX)


def party_id_of(subject: str) -> str:
    if not is_party_subject(subject):
        raise ValueError(f"not a party stream: {subject!r}")
    return subject[len(PARTY_SUBJECT_PREFIX) :]


class ObligationSuccessor(Frozen):
    """One obligation that goes to another successor than the default one."""

    agreement_id: Annotated[str, Field(min_length=1, max_length=64)]
    obligation_id: Slug
    successor_party_id: Slug


# --- commands ---------------------------------------------------------------------------------


class RegisterParty(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.REGISTER_PARTY]})

    party_id: Slug
    name: Title
    kind: PartyKind
    province: ShortText | None = None
    electronic_id: ElectronicId | None = None
    unit_code: UnitCode | None = None


class RenameParty(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.RENAME_PARTY]})

    name: Title
    effective_on: IsoDate
    legal_basis: DocumentNumber | None = None


class RecordSuccession(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.RECORD_SUCCESSION]})

    effective_on: IsoDate
    legal_basis: DocumentNumber
    successor_party_id: Slug
    obligation_successors: Annotated[list[ObligationSuccessor], Field(max_length=MAX_OBLIGATIONS)] = []


PartyCommand = RegisterParty | RenameParty | RecordSuccession


# --- events -----------------------------------------------------------------------------------


class PartyRegistered(Frozen):
    schema_version: Literal[1] = 1
    party_id: Slug
    name: Title
    kind: PartyKind
    province: ShortText | None = None
    electronic_id: ElectronicId | None = None
    unit_code: UnitCode | None = None
    # Set when the party was registered because a signing named it (decision 16).
    registered_from_agreement_id: str | None = None


class PartyRenamed(Frozen):
    schema_version: Literal[1] = 1
    name: Title
    effective_on: IsoDate
    legal_basis: DocumentNumber | None = None


class SuccessionRecorded(Frozen):
    """The party ceased on `effective_on`; its functions went to the successors."""

    schema_version: Literal[1] = 1
    effective_on: IsoDate
    legal_basis: DocumentNumber
    successor_party_id: Slug
    obligation_successors: list[ObligationSuccessor] = []


PartyEvent = PartyRegistered | PartyRenamed | SuccessionRecorded

PARTY_EVENT_CLASSES: dict[str, type[PartyEvent]] = {
    cls.__name__: cls for cls in (PartyRegistered, PartyRenamed, SuccessionRecorded)
}
