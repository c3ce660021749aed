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
from coordreg_contracts.parties import is_party_subject, party_id_of, party_subject

from services.common.db import Connection
from services.registry.service_layer.event_store import (
    ConcurrencyError,
    DirectoryRead,
    DocumentClaim,
    DuplicateDocument,
    PendingSuccession,
    StoredEvent,
    StreamAppend,
    party_marker,
    require_continuation,
)
from services.registry.service_layer.idempotency import ClaimLost, Completion

OUTBOX_CHANNEL = "registry_outbox"
SUCCESSION_CHANNEL = "registry_successions"


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
        *,
        also: Sequence[StreamAppend] = (),
        directory: DirectoryRead | None = None,
        queue_successions: Sequence[str] = (),
    ) -> list[int]:
        appends = [StreamAppend(agreement_id, expected_version, envelopes), *also]
        for append in appends:
            require_continuation(append.stream_id, append.expected_version, append.envelopes)
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                if directory is not None and directory.versions:
                    await _require_directory(conn, directory)
                if claim is not None:
                    await _claim_document(conn, claim, agreement_id)
                rows = await _insert_events(conn, appends)
                await _advance_directory(conn, appends)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name in ("events_pkey", "parties_pkey"):
                    raise ConcurrencyError(agreement_id) from exc
                raise
            except asyncpg.DeadlockDetectedError as exc:
                # Two successions naming each other, say: one of them is decided again.
                raise ConcurrencyError(agreement_id) from exc
            positions = sorted(position for position, stream_id in rows if stream_id == agreement_id)
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
            if queue_successions:
                await conn.execute(
                    """INSERT INTO registry.succession_queue (party_id)
                       SELECT unnest($1::text[])
                       ON CONFLICT (party_id) DO UPDATE
                       SET request = nextval('registry.succession_requests'), queued_at = now()""",
                    sorted(set(queue_successions)),
                )
                await conn.execute("SELECT pg_notify($1, '')", SUCCESSION_CHANNEL)
            # Delivered at commit: wakes the relay without polling.
            await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
        return positions

    async def directory_versions(self, party_ids: Sequence[str]) -> dict[str, int]:
        if not party_ids:
            return {}
        rows = await self.pool.fetch(
            "SELECT party_id, version FROM registry.parties WHERE party_id = ANY($1::text[])", list(party_ids)
        )
        return {r["party_id"]: r["version"] for r in rows}

    async def streams_naming(self, party_id: str) -> list[str]:
        # A full scan, on purpose: successions are rare (a few hundred a reorganisation), and an
        # index kept for them would cost every command. Canonical JSON makes the marker exact.
        rows = await self.pool.fetch(
            """SELECT agreement_id, min(position) AS first FROM registry.events
               WHERE agreement_id NOT LIKE 'party/%' AND strpos(envelope, $1) > 0
               GROUP BY agreement_id ORDER BY first""",
            party_marker(party_id),
        )
        return [r["agreement_id"] for r in rows]

    async def pending_successions(self, limit: int = 100) -> list[PendingSuccession]:
        rows = await self.pool.fetch(
            "SELECT party_id, request FROM registry.succession_queue ORDER BY request LIMIT $1", limit
        )
        return [PendingSuccession(r["party_id"], r["request"]) for r in rows]

    async def succession_pending(self, party_id: str) -> bool:
        found: bool = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM registry.succession_queue WHERE party_id = $1)", party_id
        )
        return found

    async def finish_succession(self, pending: PendingSuccession) -> None:
        await self.pool.execute(
            "DELETE FROM registry.succession_queue WHERE party_id = $1 AND request = $2",
            pending.party_id,
            pending.request,
        )

    async def existing(self, agreement_ids: Sequence[str]) -> set[str]:
        if not agreement_ids:
            return set()
        rows = await self.pool.fetch(
            "SELECT DISTINCT agreement_id FROM registry.events WHERE agreement_id = ANY($1::text[]) AND sequence = 1",
            list(agreement_ids),
        )
        return {r["agreement_id"] for r in rows}


async def _require_directory(conn: Connection, directory: DirectoryRead) -> None:
    # Locked in id order, like every other taker of these rows, so that lockers cannot deadlock
    # among themselves; a succession's UPDATE waits until this transaction ends.
    ids = sorted(directory.versions)
    rows = await conn.fetch(
        "SELECT party_id, version FROM registry.parties WHERE party_id = ANY($1::text[])"
        " ORDER BY party_id FOR SHARE",
        ids,
    )
    found = {r["party_id"]: r["version"] for r in rows}
    for party_id in ids:
        if found.get(party_id, 0) != directory.versions[party_id]:
            raise ConcurrencyError(party_subject(party_id))


async def _claim_document(conn: Connection, claim: DocumentClaim, agreement_id: str) -> None:
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


async def _insert_events(conn: Connection, appends: Sequence[StreamAppend]) -> list[tuple[int, str]]:
    """Every stream's events and their outbox rows in one statement: (position, stream id)."""
    envelopes = [(a.stream_id, e) for a in appends for e in a.envelopes]
    rows = await conn.fetch(
        """WITH appended AS (
               INSERT INTO registry.events
                   (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
               SELECT a, s, e::uuid, t, r, v
               FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
                    AS x(a, s, e, t, r, v)
               RETURNING position, agreement_id, sequence)
           INSERT INTO registry.outbox (position, agreement_id, sequence)
           SELECT position, agreement_id, sequence FROM appended
           RETURNING position, agreement_id""",
        [stream_id for stream_id, _ in envelopes],
        [e.sequence for _, e in envelopes],
        [e.id for _, e in envelopes],
        [e.type for _, e in envelopes],
        [datetime.fromisoformat(e.time) for _, e in envelopes],
        [canonical_json(e.without_position()).decode("utf-8") for _, e in envelopes],
    )
    return [(r["position"], r["agreement_id"]) for r in rows]


async def _advance_directory(conn: Connection, appends: Sequence[StreamAppend]) -> None:
    """Party streams move their directory row along (a new party inserts it: a concurrent
    registration of the same party fails on its primary key)."""
    for append in appends:
        if not is_party_subject(append.stream_id) or not append.envelopes:
            continue
        party_id = party_id_of(append.stream_id)
        version = append.envelopes[-1].sequence
        if append.expected_version == 0:
            await conn.execute(
                "INSERT INTO registry.parties (party_id, version) VALUES ($1, $2)", party_id, version
            )
            continue
        updated = await conn.execute(
            "UPDATE registry.parties SET version = $3 WHERE party_id = $1 AND version = $2",
            party_id,
            append.expected_version,
            version,
        )
        if updated != "UPDATE 1":
            raise ConcurrencyError(append.stream_id)
