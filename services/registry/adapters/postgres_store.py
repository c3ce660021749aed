"""The event store port and its PostgreSQL adapter.

`append` writes the events, their outbox rows and (for a signing) the document-number
claim in ONE transaction, so an event is either stored and queued for Kafka, or neither.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
from coordreg_contracts.envelope import Envelope, canonical_json

from services.registry.adapters.postgres_idempotency import ClaimLost, Completion

OUTBOX_CHANNEL = "registry_outbox"


class ConcurrencyError(Exception):
    """Another writer appended to the agreement since it was read."""


class DuplicateDocument(Exception):
    """The document number is already signed in that locality."""

    def __init__(self, agreement_id: str) -> None:
        super().__init__(agreement_id)
        self.agreement_id = agreement_id


@dataclass(frozen=True)
class DocumentClaim:
    locality: str
    document_number: str


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
        """Appends after `expected_version`; returns the positions. Raises ConcurrencyError.

        With `completion`, the command's response is recorded for its Idempotency-Key in
        the same transaction.
        """
        ...

    async def existing(self, agreement_ids: Sequence[str]) -> set[str]: ...


def require_continuation(agreement_id: str, expected_version: int, envelopes: Sequence[Envelope]) -> None:
    """Every store implementation refuses envelopes that do not follow `expected_version`."""
    for offset, envelope in enumerate(envelopes, start=1):
        if envelope.sequence != expected_version + offset or envelope.subject != agreement_id:
            raise ValueError("envelopes must continue the agreement's sequence")


def locality_key(locality: str) -> str:
    return " ".join(locality.split()).casefold()


class PostgresEventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, agreement_id: str, after: int = 0) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            """SELECT position, sequence, envelope FROM registry.events
               WHERE agreement_id = $1 AND sequence > $2 ORDER BY sequence""",
            agreement_id,
            after,
        )
        return [StoredEvent(r["position"], agreement_id, r["sequence"], r["envelope"]) for r in rows]

    async def append(
        self,
        agreement_id: str,
        expected_version: int,
        envelopes: Sequence[Envelope],
        claim: DocumentClaim | None = None,
        completion: Completion | None = None,
    ) -> list[int]:
        require_continuation(agreement_id, expected_version, envelopes)
        async with self.pool.acquire() as conn, conn.transaction():
            if claim is not None:
                owner = await conn.fetchval(
                    """INSERT INTO registry.document_numbers (locality, document_number, agreement_id)
                       VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING agreement_id""",
                    locality_key(claim.locality),
                    claim.document_number,
                    agreement_id,
                )
                if owner is None:
                    existing = await conn.fetchval(
                        "SELECT agreement_id FROM registry.document_numbers"
                        " WHERE locality = $1 AND document_number = $2",
                        locality_key(claim.locality),
                        claim.document_number,
                    )
                    raise DuplicateDocument(str(existing))
            try:
                positions: list[int] = [
                    r["position"]
                    for r in await conn.fetch(
                        """WITH appended AS (
                               INSERT INTO registry.events
                                   (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
                               SELECT $1, s, e::uuid, t, r, v
                               FROM unnest($2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
                                    AS x(s, e, t, r, v)
                               RETURNING position, sequence)
                           INSERT INTO registry.outbox (position, agreement_id, sequence)
                           SELECT position, $1, sequence FROM appended
                           RETURNING position""",
                        agreement_id,
                        [e.sequence for e in envelopes],
                        [e.id for e in envelopes],
                        [e.type for e in envelopes],
                        [datetime.fromisoformat(e.time) for e in envelopes],
                        [canonical_json(e.without_position()).decode("utf-8") for e in envelopes],
                    )
                ]
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "events_pkey":
                    raise ConcurrencyError(agreement_id) from exc
                raise
            if completion is not None:
                body = completion.response(agreement_id, expected_version + len(envelopes), max(positions))
                updated = await conn.execute(
                    """UPDATE registry.idempotency_keys
                       SET status_code = $4, response = $5::text::jsonb, completed_at = now()
                       WHERE client_id = $1 AND key = $2 AND token = $3::uuid AND status_code IS NULL""",
                    completion.client_id,
                    completion.key,
                    completion.token,
                    completion.status_code,
                    json.dumps(body),
                )
                if updated != "UPDATE 1":
                    raise ClaimLost(completion.key)
            # Delivered at commit: wakes the relay without polling.
            await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
        return sorted(positions)

    async def existing(self, agreement_ids: Sequence[str]) -> set[str]:
        if not agreement_ids:
            return set()
        rows = await self.pool.fetch(
            "SELECT DISTINCT agreement_id FROM registry.events WHERE agreement_id = ANY($1::text[]) AND sequence = 1",
            list(agreement_ids),
        )
        return {r["agreement_id"] for r in rows}
