"""In-memory stores with the same ports and guarantees as PostgreSQL, for service-layer tests and models.

The event store and the Idempotency-Key records share one lock and one set of key records, so
that a response is recorded exactly when its events are appended, as in PostgreSQL's single
transaction.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordreg_contracts.envelope import Envelope
from coordreg_contracts.parties import is_party_subject, party_subject

from services.common.envelope_signatures import DEV_SIGNER, EnvelopeSigner
from services.registry.adapters.append_payload import AppendPayload, append_payload
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
from services.registry.service_layer.idempotency import (
    Claim,
    ClaimLost,
    Completion,
    KeyInFlight,
    KeyReused,
    StoredResponse,
)


@dataclass
class _KeyRecord:
    fingerprint: str
    token: str
    started_at: float
    response: StoredResponse | None = None


class InMemoryEventStore:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, signer: EnvelopeSigner | None = DEV_SIGNER
    ) -> None:
        self.streams: dict[str, list[StoredEvent]] = {}
        self.clock = clock
        # Signs each event as the PostgreSQL store does (None: stores them unsigned).
        self.signer = signer
        self._documents: dict[tuple[str, int, str], str] = {}
        self._keys: dict[tuple[str, str], _KeyRecord] = {}
        self._position = 0
        self._successions: dict[str, int] = {}
        self._request = 0
        self.snapshots: dict[tuple[str, str], Snapshot] = {}
        self._lock = asyncio.Lock()

    async def load(self, stream_id: str, after: int = 0) -> list[StoredEvent]:
        return [e for e in self.streams.get(stream_id, []) if e.sequence > after]

    async def load_page(self, stream_id: str, after: int, limit: int, max_bytes: int) -> list[StoredEvent]:
        page: list[StoredEvent] = []
        used = 0
        for event in await self.load(stream_id, after):
            if len(page) == limit or (page and used >= max_bytes):
                break
            page.append(event)
            used += len(event.envelope_text.encode())
        return page

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
        # The argument the PostgreSQL store sends `registry.append_command`, signed before the
        # lock (a signature costs tens of microseconds and needs no state).
        payload = append_payload(
            stream_id, appends, claim, completion, versions_read, queue_successions, signer=self.signer
        )
        async with self._lock:
            return self._append_command(payload)

    def _append_command(self, payload: AppendPayload) -> list[int]:
        """`registry.append_command` in Python, on the same argument
        (services/registry/migrations/definitions/append_command.sql): every check before any
        write, so a refused append stores nothing, as the function's rolled-back subtransaction."""
        stream_id = payload["stream_id"]
        for party_id, version in (payload["directory"] or {}).items():
            if len(self.streams.get(party_subject(party_id), [])) != version:
                raise ConcurrencyError(party_subject(party_id))
        claim = payload["claim"]
        document = None if claim is None else (claim["locality"], claim["year"], claim["document_number"])
        if document is not None and document in self._documents:
            raise DuplicateDocument(self._documents[document])
        # The events' primary key (stream, sequence); party streams' directory rows are their
        # streams' lengths here, so `parties` moves along with their events.
        length = {
            event["stream_id"]: len(self.streams.get(event["stream_id"], [])) for event in payload["events"]
        }
        for event in payload["events"]:
            if event["sequence"] != length[event["stream_id"]] + 1:
                raise ConcurrencyError(event["stream_id"])
            length[event["stream_id"]] += 1
        completion = payload["completion"]
        if completion is not None and not self._holds(
            Claim(completion["client_id"], completion["key"], completion["token"])
        ):
            raise ClaimLost(completion["key"])
        if document is not None:
            self._documents[document] = stream_id
        positions = []
        for event in payload["events"]:
            self._position += 1
            self.streams.setdefault(event["stream_id"], []).append(
                StoredEvent(
                    self._position,
                    event["stream_id"],
                    event["sequence"],
                    event["envelope"],
                    signature=event.get("signature"),
                )
            )
            if event["stream_id"] == stream_id:
                positions.append(self._position)
        for party_id in payload["queue_successions"]:
            self._request += 1
            self._successions[party_id] = self._request
        if completion is not None:
            record = self._keys[(completion["client_id"], completion["key"])]
            response = {**completion["response"], "position": positions[-1]}
            record.response = StoredResponse(completion["status_code"], response)
        return positions

    async def directory_versions(self, party_ids: Sequence[str]) -> dict[str, int]:
        return {
            p: len(self.streams[party_subject(p)]) for p in party_ids if self.streams.get(party_subject(p))
        }

    async def streams_naming(self, party_id: str) -> list[str]:
        marker = party_marker(party_id)
        named = [
            (stream[0].position, stream_id)
            for stream_id, stream in self.streams.items()
            if stream and not is_party_subject(stream_id) and any(marker in e.envelope_text for e in stream)
        ]
        return [stream_id for _, stream_id in sorted(named)]

    async def pending_successions(self, limit: int = 100) -> list[PendingSuccession]:
        queued = sorted(self._successions.items(), key=lambda item: item[1])[:limit]
        return [PendingSuccession(party_id, request) for party_id, request in queued]

    async def succession_pending(self, party_id: str) -> bool:
        return party_id in self._successions

    async def finish_succession(self, pending: PendingSuccession) -> None:
        if self._successions.get(pending.party_id) == pending.request:
            del self._successions[pending.party_id]

    async def existing(self, agreement_ids: Sequence[str]) -> set[str]:
        return {a for a in agreement_ids if self.streams.get(a)}

    async def resume(self, stream_id: str, model_version: str) -> Resumption:
        snapshot = self.snapshots.get((stream_id, model_version))
        if snapshot is not None and not _matches(snapshot, self.streams.get(stream_id, [])):
            snapshot = None
        # Read through `load`: a test double that hooks reading a stream hooks resuming it too.
        events = await self.load(stream_id, snapshot.version if snapshot is not None else 0)
        return Resumption(snapshot, events)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        kept = self.snapshots.get((snapshot.stream_id, snapshot.model_version))
        if kept is None or kept.version < snapshot.version:
            self.snapshots[(snapshot.stream_id, snapshot.model_version)] = snapshot

    def _holds(self, claim: Claim) -> bool:
        record = self._keys.get((claim.client_id, claim.key))
        return record is not None and record.token == claim.token and record.response is None


def _matches(snapshot: Snapshot, stream: Sequence[StoredEvent]) -> bool:
    """Whether the stream holds an event at the snapshot's version with the snapshot's hash."""
    if not 1 <= snapshot.version <= len(stream):
        return False
    event = stream[snapshot.version - 1]
    return (
        event.sequence == snapshot.version and json.loads(event.envelope_text)["hash"] == snapshot.last_hash
    )


class InMemoryIdempotencyStore:
    """Idempotency-Key records kept by an InMemoryEventStore (see the module docstring)."""

    def __init__(self, store: InMemoryEventStore, stale_after: float = 15.0) -> None:
        self.store = store
        self.stale_after = stale_after

    async def claim(self, client_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
        async with self.store._lock:
            records = self.store._keys
            now = self.store.clock()
            record = records.get((client_id, key))
            if record is None or (
                record.response is None
                and record.fingerprint == fingerprint
                and record.started_at < now - self.stale_after
            ):
                token = str(uuid.uuid4())
                records[(client_id, key)] = _KeyRecord(fingerprint, token, now)
                return Claim(client_id, key, token)
            if record.fingerprint != fingerprint:
                raise KeyReused(key)
            if record.response is None:
                raise KeyInFlight(key)
            return record.response

    async def record_refusal(self, claim: Claim, status_code: int, body: Mapping[str, Any]) -> None:
        async with self.store._lock:
            if self.store._holds(claim):
                self.store._keys[(claim.client_id, claim.key)].response = StoredResponse(status_code, body)

    async def release(self, claim: Claim) -> None:
        async with self.store._lock:
            record = self.store._keys.get((claim.client_id, claim.key))
            if record is not None and record.token == claim.token:
                del self.store._keys[(claim.client_id, claim.key)]
