"""The PostgreSQL event store (the port: services/registry/service_layer/event_store.py).

`append` writes the events, their outbox rows, the document-number claim of a signing and the
Idempotency-Key response in ONE transaction, so an event is either stored, queued for Kafka and
answered, or none of these: one call of the server-side function `registry.append_command`
(defined in services/registry/migrations/definitions/append_command.sql; its argument is
`append_payload.AppendPayload`), one round trip, sent with the other commands waiting at that moment in one
transaction (group commit, `services/registry/adapters/group_commit.py`). Triggers refuse UPDATE, DELETE and TRUNCATE of registry.events
(migrations/001_event_store.sql); the primary key (agreement_id, sequence) decides races.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg
from coordreg_contracts.envelope import Envelope

from services.common.envelope_signatures import DEV_SIGNER, EnvelopeSigner
from services.common.trace_context import carrier_of
from services.registry.adapters.append_payload import append_payload
from services.registry.adapters.group_commit import GroupCommitWriter
from services.registry.service_layer.event_store import (
    ConcurrencyError,
    DirectoryRead,
    DocumentClaim,
    DuplicateDocument,
    PendingSuccession,
    Resumption,
    Snapshot,
    StoredEvent,
    StreamAppend,
    party_marker,
    require_continuation,
)
from services.registry.service_layer.idempotency import ClaimLost, Completion

OUTBOX_CHANNEL = "registry_outbox"
SUCCESSION_CHANNEL = "registry_successions"


# asyncpg's exception class for each SQLSTATE, so that an error the append function reports
# for one command (instead of failing the whole group commit) raises as if PostgreSQL had.
_ERRORS: dict[str, type[asyncpg.PostgresError]] = {
    cls.sqlstate: cls
    for name in asyncpg.exceptions.__all__
    if isinstance(cls := getattr(asyncpg.exceptions, name), type)
    and issubclass(cls, asyncpg.PostgresError)
    and isinstance(getattr(cls, "sqlstate", None), str)
}


class PostgresEventStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        writer: GroupCommitWriter | None = None,
        signer: EnvelopeSigner | None = DEV_SIGNER,
    ) -> None:
        self.pool = pool
        self.writer = writer or GroupCommitWriter(pool)
        # Signs each event's hash as it is appended (docs/adr/0003-signed-envelopes.md); None
        # stores events unsigned, which consumers refuse (tests of that refusal only).
        self.signer = signer

    async def load(self, stream_id: str, after: int = 0) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            """SELECT position, sequence, envelope FROM registry.events
               WHERE agreement_id = $1 AND sequence > $2 ORDER BY sequence""",
            stream_id,
            after,
        )
        return [StoredEvent(r["position"], stream_id, r["sequence"], r["envelope"]) for r in rows]

    async def load_page(self, stream_id: str, after: int, limit: int, max_bytes: int) -> list[StoredEvent]:
        # The running total stops the rows in the database: a page never fetches a stream's
        # megabytes to keep a few of them. `before` is the bytes ahead of a row in the page.
        rows = await self.pool.fetch(
            """SELECT position, sequence, envelope FROM (
                   SELECT position, sequence, envelope,
                          coalesce(sum(octet_length(envelope)) OVER (
                              ORDER BY sequence ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
                   FROM (SELECT position, sequence, envelope FROM registry.events
                         WHERE agreement_id = $1 AND sequence > $2
                         ORDER BY sequence LIMIT $3) first_rows
               ) page
               WHERE before < $4 OR before = 0
               ORDER BY sequence""",
            stream_id,
            after,
            limit,
            max_bytes,
        )
        return [StoredEvent(r["position"], stream_id, r["sequence"], r["envelope"]) for r in rows]

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        envelopes: Sequence[Envelope],
        claim: DocumentClaim | None = None,
        completion: Completion | None = None,
        *,
        with_streams: Sequence[StreamAppend] = (),
        versions_read: DirectoryRead | None = None,
        queue_successions: Sequence[str] = (),
    ) -> list[int]:
        appends = [StreamAppend(stream_id, expected_version, envelopes), *with_streams]
        for append in appends:
            require_continuation(append.stream_id, append.expected_version, append.envelopes)
        # The command's span is current here, in the caller's task (the writer's batch runs in
        # its own): its trace context goes into the command's outbox rows.
        payload = append_payload(
            stream_id, appends, claim, completion, versions_read, queue_successions, carrier_of(), self.signer
        )
        outcome = await self.writer.submit(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
        error = outcome.get("error")
        if error is None:
            return [int(p) for p in outcome["positions"]]
        if error == "concurrency":
            raise ConcurrencyError(stream_id)
        if error == "duplicate_document":
            raise DuplicateDocument(str(outcome["agreement_id"]))
        if error == "claim_lost":
            assert completion is not None
            raise ClaimLost(completion.claim.key)
        raise _ERRORS.get(str(outcome.get("sqlstate")), asyncpg.PostgresError)(str(outcome.get("message")))

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

    async def resume(self, stream_id: str, model_version: str) -> Resumption:
        # One round trip: the snapshot's row (no position) comes first, as its version is below
        # every event after it. `json`, not `jsonb`: only the hash is read out of the envelope.
        rows = await self.pool.fetch(
            """WITH snapshot AS (
                   SELECT s.version, s.last_hash, s.state
                   FROM registry.snapshots AS s
                   JOIN registry.events AS e ON e.agreement_id = s.stream_id AND e.sequence = s.version
                   WHERE s.stream_id = $1 AND s.model_version = $2
                     AND e.envelope::json ->> 'hash' = s.last_hash
               )
               SELECT NULL::bigint AS position, version AS sequence, state AS text, last_hash
               FROM snapshot
               UNION ALL
               SELECT position, sequence, envelope, NULL FROM registry.events
               WHERE agreement_id = $1 AND sequence > coalesce((SELECT version FROM snapshot), 0)
               ORDER BY sequence""",
            stream_id,
            model_version,
        )
        snapshot = None
        if rows and rows[0]["position"] is None:
            first = rows.pop(0)
            snapshot = Snapshot(
                stream_id, model_version, first["sequence"], first["last_hash"], first["text"]
            )
        events = [StoredEvent(r["position"], stream_id, r["sequence"], r["text"]) for r in rows]
        return Resumption(snapshot, events)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.pool.execute(
            """INSERT INTO registry.snapshots AS kept (stream_id, model_version, version, last_hash, state)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (stream_id, model_version) DO UPDATE
               SET version = excluded.version, last_hash = excluded.last_hash, state = excluded.state,
                   taken_at = now()
               WHERE kept.version < excluded.version""",
            snapshot.stream_id,
            snapshot.model_version,
            snapshot.version,
            snapshot.last_hash,
            snapshot.state,
        )
