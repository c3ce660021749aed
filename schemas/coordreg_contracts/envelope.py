"""The CloudEvents 1.0 envelope of docs/CONTRACT.md and its hash chain.

`hash` is SHA-256 over the canonical JSON of the envelope without `hash` and
`position`; `position` is the store's global order, assigned as the row is written,
so it cannot be part of what the writer hashes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coordreg_contracts.events import EVENT_CLASSES, Event, event_name, event_type
from coordreg_contracts.parties import PARTY_EVENT_CLASSES, PartyEvent
from coordreg_contracts.upcasting import upcast

SPEC_VERSION = "1.0"
SOURCE = "/registry"
DATA_CONTENT_TYPE = "application/json"
CONTENT_TYPE = "application/cloudevents+json"
HASHED_OUT = ("hash", "position")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 written as is (not \\u-escaped)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def envelope_hash(envelope: dict[str, Any]) -> str:
    hashed = {key: value for key, value in envelope.items() if key not in HASHED_OUT}
    return hashlib.sha256(canonical_json(hashed)).hexdigest()


class Envelope(BaseModel):
    """One event as stored, served and published. Fields are CloudEvents attributes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: str = SPEC_VERSION
    id: str
    source: str = SOURCE
    type: str
    subject: str
    time: str
    datacontenttype: str = DATA_CONTENT_TYPE
    sequence: int = Field(ge=1)
    position: int | None = None
    prevhash: str
    hash: str
    actor: str
    correlationid: str
    causationid: str
    data: dict[str, Any]

    def without_position(self) -> dict[str, Any]:
        return self.model_dump(exclude={"position"})

    def to_json(self) -> dict[str, Any]:
        return self.model_dump()

    def computed_hash(self) -> str:
        return envelope_hash(self.model_dump())

    def event(self) -> Event:
        """The typed agreement event in the current schema version (older payloads upcast).
        Raises KeyError for a type that is not an agreement's (a party's: `party_event`)."""
        name = event_name(self.type)
        return EVENT_CLASSES[name].model_validate(upcast(name, self.data))

    def party_event(self) -> PartyEvent:
        """The typed event of a party directory stream."""
        name = event_name(self.type)
        return PARTY_EVENT_CLASSES[name].model_validate(upcast(name, self.data))


def seal(
    *,
    event: Event | PartyEvent,
    event_id: str,
    agreement_id: str,
    sequence: int,
    recorded_at: str,
    prevhash: str,
    actor: str,
    correlation_id: str,
    causation_id: str,
) -> Envelope:
    """Wrap an event in its envelope and compute the hash that chains it to `prevhash`."""
    unsealed: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": SOURCE,
        "type": event_type(event),
        "subject": agreement_id,
        "time": recorded_at,
        "datacontenttype": DATA_CONTENT_TYPE,
        "sequence": sequence,
        "prevhash": prevhash,
        "actor": actor,
        "correlationid": correlation_id,
        "causationid": causation_id,
        "data": event.model_dump(mode="json"),
    }
    return Envelope(**unsealed, hash=envelope_hash(unsealed))
