"""An in-memory event store: the same port as PostgreSQL, for pure handler tests and models."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from coordreg_contracts.envelope import Envelope, canonical_json

from services.registry.adapters.postgres_idempotency import Completion
from services.registry.adapters.postgres_store import (
    ConcurrencyError,
    DocumentClaim,
    DuplicateDocument,
    StoredEvent,
    locality_key,
    require_continuation,
)


class InMemoryEventStore:
    def __init__(self) -> None:
        self.streams: dict[str, list[StoredEvent]] = {}
        self.outbox: list[int] = []
        self.documents: dict[tuple[str, str], str] = {}
        self.responses: dict[tuple[str, str], tuple[int, dict[str, object]]] = {}
        self._position = 0
        self._lock = asyncio.Lock()

    async def load(self, agreement_id: str, after: int = 0) -> list[StoredEvent]:
        return [e for e in self.streams.get(agreement_id, []) if e.sequence > after]

    async def append(
        self,
        agreement_id: str,
        expected_version: int,
        envelopes: Sequence[Envelope],
        claim: DocumentClaim | None = None,
        completion: Completion | None = None,
    ) -> list[int]:
        require_continuation(agreement_id, expected_version, envelopes)
        async with self._lock:
            stream = self.streams.get(agreement_id, [])
            if len(stream) != expected_version:
                raise ConcurrencyError(agreement_id)
            if claim is not None:
                key = (locality_key(claim.locality), claim.document_number)
                if key in self.documents:
                    raise DuplicateDocument(self.documents[key])
                self.documents[key] = agreement_id
            positions = []
            for envelope in envelopes:
                self._position += 1
                text = canonical_json(envelope.without_position()).decode("utf-8")
                stream.append(StoredEvent(self._position, agreement_id, envelope.sequence, text))
                self.outbox.append(self._position)
                positions.append(self._position)
            self.streams[agreement_id] = stream
            if completion is not None:
                body = completion.response(agreement_id, len(stream), positions[-1])
                self.responses[(completion.client_id, completion.key)] = (completion.status_code, body)
            return positions

    async def existing(self, agreement_ids: Sequence[str]) -> set[str]:
        return {a for a in agreement_ids if self.streams.get(a)}
