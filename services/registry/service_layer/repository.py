"""Agreements as the command side sees them: folded from the event store, newest first from a cache."""

from __future__ import annotations

from dataclasses import dataclass

from coordreg_contracts.envelope import Envelope

from services.agreement.state import AgreementState, fold
from services.common.lru import Lru
from services.registry.domain.errors import NotFound
from services.registry.service_layer.event_store import EventStore


@dataclass(frozen=True)
class Loaded:
    """An agreement's state and the hash of its last event (the next event's `prevhash`)."""

    state: AgreementState | None
    last_hash: str = ""


class AgreementRepository:
    """Loads agreements for decisions and reads.

    Events are immutable, so a cached state stays true: loading an agreement reads and folds
    only the events after the cached version.
    """

    def __init__(self, store: EventStore, capacity: int = 10_000) -> None:
        self.store = store
        self._loaded: Lru[str, Loaded] = Lru(capacity)

    async def get(self, agreement_id: str) -> Loaded:
        cached = self._loaded.get(agreement_id) or Loaded(None)
        after = cached.state.version if cached.state is not None else 0
        stored = await self.store.load(agreement_id, after)
        if not stored:
            return cached
        envelopes = [s.envelope() for s in stored]
        loaded = Loaded(fold((e.event() for e in envelopes), cached.state), envelopes[-1].hash)
        self._loaded.put(agreement_id, loaded)
        return loaded

    async def envelopes(self, agreement_id: str) -> list[Envelope]:
        stored = await self.store.load(agreement_id)
        if not stored:
            raise NotFound(f"no agreement {agreement_id!r}")
        return [e.envelope() for e in stored]
