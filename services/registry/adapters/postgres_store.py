"""The PostgreSQL event store (the port: services/registry/service_layer/event_store.py).

`append` writes the events, their outbox rows, the document-number claim of a signing and the
Idempotency-Key response in ONE transaction, so an event is either stored, queued for Kafka and
answered, or none of these. Triggers refuse UPDATE, DELETE and TRUNCATE of registry.events
(migrations/001_event_store.sql); the primary key (agreement_id, sequence) decides races.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from coordreg_contracts.envelope import Envelope, canonical_json

from services.registry.service_layer.event_store import (
    ConcurrencyError,
    DocumentClaim,
    DuplicateDocument,
    StoredEvent,
    require_continuation,
)
from services.registry.service_layer.idempotency import ClaimLost, Completion

OUTBOX_CHANNEL = "registry_outbox"


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
                    """INSERT INTO registry.document_numbers (locality, year, document_number, agreement_id)
                       VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING agreement_id""",
                    *claim.key(),
                    agreement_id,
                )
                if owner is None:
                    existing = await conn.fetchval(
                        "SELECT agreement_id FROM registry.document_numbers"
                        " WHERE locality = $1 AND year = $2 AND document_number = $3",
                        *claim.key(),
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
                body = completion.body(max(positions))
                updated = await conn.execute(
                    """UPDATE registry.idempotency_keys
                       SET status_code = $4, response = $5::text::jsonb, completed_at = now()
                       WHERE client_id = $1 AND key = $2 AND token = $3::uuid AND status_code IS NULL""",
                    completion.claim.client_id,
                    completion.claim.key,
                    completion.claim.token,
                    completion.status_code,
                    json.dumps(body),
                )
                if updated != "UPDATE 1":
                    raise ClaimLost(completion.claim.key)
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
