"""The event store port: what the service layer needs from any store of agreement events.

Implementations (services/registry/adapters) give the same guarantees, proven by one contract
suite run against each (tests/support/store_contract.py):
- append-only: an event, once stored, never changes;
- optimistic concurrency: an append names the version it follows and fails with
  `ConcurrencyError` if another append got there first;
- one transaction: the events, their outbox rows, the document-number claim of a signing and
  the Idempotency-Key response are stored together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from coordreg_contracts.envelope import Envelope, canonical_json

from services.registry.service_layer.idempotency import Completion


class ConcurrencyError(Exception):
    """Another writer appended to the agreement since it was read."""


class DuplicateDocument(Exception):
    """The document number is already signed in that locality that year."""

    def __init__(self, agreement_id: str) -> None:
        super().__init__(agreement_id)
        self.agreement_id = agreement_id


@dataclass(frozen=True)
class DocumentClaim:
    """A signing's document number, unique within its locality and the year of its `signed_on`
    (docs/CONTRACT.md, decisions 5 and 13)."""

    locality: str
    document_number: str
    year: int

    def key(self) -> tuple[str, int, str]:
        # Decision 5: "the same locality" ignores case and extra spaces. Decision 13: numbers
        # restart every year, so one signed in another year is another document.
        return " ".join(self.locality.split()).casefold(), self.year, self.document_number


@dataclass(frozen=True)
class StoredEvent:
    position: int
    agreement_id: str
    sequence: int
    envelope_text: str

    def envelope(self) -> Envelope:
        return Envelope.model_validate({**json.loads(self.envelope_text), "position": self.position})

    def message(self) -> bytes:
        """The Kafka record value: the envelope with its position, canonical JSON."""
        return canonical_json({**json.loads(self.envelope_text), "position": self.position})


class EventStore(Protocol):
    async def load(self, agreement_id: str, after: int = 0) -> list[StoredEvent]:
        """The agreement's events with a sequence above `after`, in sequence order."""
        ...

    async def append(
        self,
        agreement_id: str,
        expected_version: int,
        envelopes: Sequence[Envelope],
        claim: DocumentClaim | None = None,
        completion: Completion | None = None,
    ) -> list[int]:
        """Appends after `expected_version`; returns the positions.

        Raises ConcurrencyError (the agreement moved on), DuplicateDocument (the claim is
        taken) or ClaimLost (the Idempotency-Key claim of `completion` was taken over), and
        then stores nothing. With `completion`, the command's response is recorded for its
        Idempotency-Key in the same transaction.
        """
        ...

    async def existing(self, agreement_ids: Sequence[str]) -> set[str]:
        """Which of these agreements are registered."""
        ...


def require_continuation(agreement_id: str, expected_version: int, envelopes: Sequence[Envelope]) -> None:
    """Every store implementation refuses envelopes that do not follow `expected_version`."""
    for offset, envelope in enumerate(envelopes, start=1):
        if envelope.sequence != expected_version + offset or envelope.subject != agreement_id:
            raise ValueError("envelopes must continue the agreement's sequence")
