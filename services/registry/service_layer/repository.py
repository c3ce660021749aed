"""Agreements and directory entries as the command side sees them: folded from the event store, newest first from a cache."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from coordreg_contracts.envelope import Envelope
from coordreg_contracts.parties import SuccessionRecorded, is_party_subject, party_subject

from services.agreement.state import AgreementState, fold
from services.common.lru import Lru
from services.directory.state import PartyState, fold_party
from services.registry.domain.directory import MAX_CHAIN, Directory
from services.registry.domain.errors import NotFound
from services.registry.service_layer.event_store import EventStore, Snapshot, StoredEvent
from services.registry.service_layer.snapshots import MODEL_VERSION, decode_state, encode_state

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Loaded:
    """An agreement's state and the hash of its last event (the next event's `prevhash`)."""

    state: AgreementState | None
    last_hash: str = ""


class AgreementRepository:
    """Loads agreements for decisions and reads.

    Events are immutable, so a cached state stays true: loading an agreement reads and folds
    only the events after the cached version. An agreement not cached resumes from its latest
    snapshot (services/registry/service_layer/snapshots.py), so that its cost does not grow with
    its stream: a load that had to fold `snapshot_every` events or more leaves a snapshot of the
    state it folded. `snapshot_every=None`: no snapshot is read or written.
    """

    def __init__(
        self, store: EventStore, capacity: int = 10_000, *, snapshot_every: int | None = 100
    ) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self._loaded: Lru[str, Loaded] = Lru(capacity)

    async def get(self, agreement_id: str) -> Loaded:
        if is_party_subject(agreement_id):
            return Loaded(None)  # a party's directory stream is no agreement, whatever it holds
        cached = self._loaded.get(agreement_id)
        if cached is not None and cached.state is not None:
            start, stored = cached, await self.store.load(agreement_id, cached.state.version)
        elif self.snapshot_every is None:
            start, stored = Loaded(None), await self.store.load(agreement_id)
        else:
            start, stored = await self._resume(agreement_id)
        if not stored:
            if start.state is not None:
                self._loaded.put(agreement_id, start)
            return start
        envelopes = [s.envelope() for s in stored]
        loaded = Loaded(fold((e.event() for e in envelopes), start.state), envelopes[-1].hash)
        self._loaded.put(agreement_id, loaded)
        if self.snapshot_every is not None and len(stored) >= self.snapshot_every:
            await self._save_snapshot(agreement_id, loaded)
        return loaded

    async def _resume(self, agreement_id: str) -> tuple[Loaded, list[StoredEvent]]:
        """The agreement's latest snapshot and the events after it, or all of its events."""
        resumption = await self.store.resume(agreement_id, MODEL_VERSION)
        snapshot = resumption.snapshot
        if snapshot is None:
            return Loaded(None), resumption.events
        try:
            state = decode_state(snapshot.state)
            if (state.agreement_id, state.version) != (agreement_id, snapshot.version):
                raise ValueError(f"holds {state.agreement_id!r} at version {state.version}")
        except (ValueError, KeyError, TypeError) as exc:
            # A snapshot is a cache: one that cannot be read is folded past, never trusted.
            log.warning(
                "snapshot ignored",
                agreement_id=agreement_id,
                version=snapshot.version,
                error=f"{type(exc).__name__}: {exc}",
            )
            return Loaded(None), await self.store.load(agreement_id)
        return Loaded(state, snapshot.last_hash), resumption.events

    async def _save_snapshot(self, agreement_id: str, loaded: Loaded) -> None:
        assert loaded.state is not None
        snapshot = Snapshot(
            agreement_id, MODEL_VERSION, loaded.state.version, loaded.last_hash, encode_state(loaded.state)
        )
        try:
            await self.store.save_snapshot(snapshot)
        except Exception as exc:
            # Best effort: the command that loaded the agreement goes on; a later load folds again.
            log.warning("snapshot not saved", agreement_id=agreement_id, error=f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class EventPage:
    """A page of a stream's stored events, and whether more may follow its last one."""

    events: list[StoredEvent]
    more: bool


async def event_page(store: EventStore, stream_id: str, after: int, limit: int, max_bytes: int) -> EventPage:
    """The events after sequence `after`, at most `limit` and about `max_bytes` (the reader
    cuts exactly: docs/CONTRACT.md B7)."""
    events = await store.load_page(stream_id, after, limit, max_bytes)
    # The store stops at `limit` rows, or before a row once `max_bytes` of envelopes came first.
    more = len(events) == limit or sum(len(e.envelope_text.encode()) for e in events) >= max_bytes
    return EventPage(events, more)


async def stream_exists(store: EventStore, stream_id: str) -> bool:
    return bool(await store.existing([stream_id]))


@dataclass(frozen=True)
class LoadedParty:
    """A party's directory entry, the hash of its last event, and the id of the event that
    recorded its succession (what the agreements' transfers name as their cause)."""

    state: PartyState | None
    last_hash: str = ""
    succession_event_id: str = ""


class PartyRepository:
    """Loads directory entries (party streams) the way `AgreementRepository` loads agreements."""

    def __init__(self, store: EventStore, capacity: int = 10_000) -> None:
        self.store = store
        self._loaded: Lru[str, LoadedParty] = Lru(capacity)

    async def get(self, party_id: str) -> LoadedParty:
        cached = self._loaded.get(party_id) or LoadedParty(None)
        after = cached.state.version if cached.state is not None else 0
        stored = await self.store.load(party_subject(party_id), after)
        if not stored:
            return cached
        envelopes = [s.envelope() for s in stored]
        events = [e.party_event() for e in envelopes]
        succession_id = cached.succession_event_id
        for envelope, event in zip(envelopes, events, strict=True):
            if isinstance(event, SuccessionRecorded):
                succession_id = envelope.id
        loaded = LoadedParty(fold_party(events, cached.state), envelopes[-1].hash, succession_id)
        self._loaded.put(party_id, loaded)
        return loaded

    async def directory(self, party_ids: Iterable[str]) -> tuple[Directory, dict[str, int]]:
        """The entries of these parties and the versions they were read at (0: not registered).
        One query when the cache is current."""
        ids = sorted(set(party_ids))
        versions = await self.store.directory_versions(ids)
        entries: dict[str, PartyState | None] = {}
        for party_id in ids:
            cached = self._loaded.get(party_id)
            current = (
                cached is not None
                and cached.state is not None
                and cached.state.version == versions.get(party_id)
            )
            state = cached.state if current and cached is not None else None
            if state is None and party_id in versions:
                loaded = await self.get(party_id)
                state = loaded.state
                # Read at the version folded, which may be newer than the one counted above.
                versions[party_id] = state.version if state is not None else 0
            entries[party_id] = state
        return Directory(entries), {party_id: versions.get(party_id, 0) for party_id in ids}

    async def chain(self, party_ids: Iterable[str]) -> tuple[Directory, dict[str, int]]:
        """As `directory`, plus every party the given ones' successions lead to (bounded)."""
        wanted = set(party_ids)
        directory, versions = await self.directory(wanted)
        for _ in range(MAX_CHAIN):
            following = {
                entry.succession.successor_party_id
                for entry in directory.entries.values()
                if entry is not None and entry.succession is not None
            } - set(directory.entries)
            if not following:
                break
            more, more_versions = await self.directory(following)
            directory = Directory({**directory.entries, **more.entries})
            versions.update(more_versions)
        return directory, versions

    async def envelopes(self, party_id: str) -> list[Envelope]:
        stored = await self.store.load(party_subject(party_id))
        if not stored:
            raise NotFound(f"no party {party_id!r} in the directory")
        return [e.envelope() for e in stored]
