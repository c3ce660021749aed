"""The command handler: load the agreement's past, decide, seal the envelopes, append.

No HTTP and no SQL here: the routes build a command and a context, the store is a port.
"""

from __future__ import annotations

import asyncio
import random
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from coordreg_contracts.commands import CloseTerm, Command, SignAgreement
from coordreg_contracts.envelope import Envelope, seal
from coordreg_contracts.events import Event

from services.agreement.state import AgreementState, evolve
from services.common.lru import Lru
from services.registry.adapters.postgres_idempotency import Completion
from services.registry.adapters.postgres_store import (
    ConcurrencyError,
    DocumentClaim,
    DuplicateDocument,
    EventStore,
)
from services.registry.domain.decide import Known, decide
from services.registry.domain.errors import Conflict, NotFound, PreconditionFailed

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CommandContext:
    actor: str
    correlation_id: str
    causation_id: str
    expected_version: int | None = None  # from If-Match


@dataclass(frozen=True)
class CommandResult:
    agreement_id: str
    version: int
    position: int
    status: str

    def body(self) -> dict[str, object]:
        return {
            "agreement_id": self.agreement_id,
            "version": self.version,
            "position": self.position,
            "status": self.status,
        }


@dataclass(frozen=True)
class Loaded:
    state: AgreementState | None
    last_hash: str = ""


class StateCache(Lru[str, Loaded]):
    """Folded states of recently used agreements. Events are immutable, so a cached state
    stays true: loading an agreement reads and folds only the events after it."""

    def __init__(self, capacity: int = 10_000) -> None:
        super().__init__(capacity)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class CommandHandler:
    def __init__(
        self,
        store: EventStore,
        *,
        retries: int = 5,
        clock: Callable[[], str] = utc_now,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.store = store
        self.retries = retries
        self.clock = clock
        self.new_id = new_id
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.cache = StateCache()

    def _lock_for(self, agreement_id: str) -> asyncio.Lock:
        lock = self._locks.get(agreement_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[agreement_id] = lock
        return lock

    async def load(self, agreement_id: str) -> Loaded:
        cached = self.cache.get(agreement_id) or Loaded(None)
        after = cached.state.version if cached.state is not None else 0
        events = await self.store.load(agreement_id, after)
        if not events:
            return cached
        state = cached.state
        for stored in events:
            envelope = stored.envelope()
            state = evolve(state, envelope.event())
        loaded = Loaded(state, envelope.hash)
        self.cache.put(agreement_id, loaded)
        return loaded

    async def envelopes(self, agreement_id: str) -> list[Envelope]:
        events = await self.store.load(agreement_id)
        if not events:
            raise NotFound(f"no agreement {agreement_id!r}")
        return [e.envelope() for e in events]

    async def handle(
        self,
        command: Command,
        context: CommandContext,
        agreement_id: str | None = None,
        completion: Completion | None = None,
    ) -> CommandResult:
        if isinstance(command, SignAgreement):
            return await self._sign(command, context, completion)
        assert agreement_id is not None
        # A command that lost a race is decided again on the newer state, unless the
        # caller pinned the version it saw (If-Match): then losing means 412.
        attempts = 1 if context.expected_version is not None else self.retries + 1
        for attempt in range(attempts):
            try:
                # Commands on one agreement queue up inside this process instead of racing
                # each other; the primary key still decides races between processes.
                async with self._lock_for(agreement_id):
                    return await self._decide_and_append(command, context, agreement_id, completion)
            except ConcurrencyError:
                if context.expected_version is not None:
                    raise PreconditionFailed(
                        f"the agreement changed after version {context.expected_version}"
                    ) from None
                log.info("concurrent append, deciding again", agreement_id=agreement_id, attempt=attempt)
                # Jittered backoff spreads instances that keep colliding on one agreement.
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise Conflict("the agreement is being changed by other requests right now; retry the command")

    async def _sign(
        self, command: SignAgreement, context: CommandContext, completion: Completion | None
    ) -> CommandResult:
        agreement_id = self.new_id()
        refs = [command.parent_agreement_id] if command.parent_agreement_id else []
        known = Known(agreement_id, frozenset(await self.store.existing(refs)))
        events = decide(command, None, known)
        envelopes = self._seal(events, agreement_id, 0, "", context)
        claim = DocumentClaim(command.locality, command.document_number)
        try:
            positions = await self.store.append(agreement_id, 0, envelopes, claim, completion)
        except DuplicateDocument as exc:
            raise Conflict(
                f"document {command.document_number!r} is already signed in {command.locality!r}"
                f" (agreement {exc.agreement_id})",
                existing_agreement_id=exc.agreement_id,
            ) from None
        return CommandResult(agreement_id, len(events), positions[-1], "active")

    async def _decide_and_append(
        self, command: Command, context: CommandContext, agreement_id: str, completion: Completion | None
    ) -> CommandResult:
        loaded = await self.load(agreement_id)
        state = loaded.state
        if state is None:
            raise NotFound(f"no agreement {agreement_id!r}")
        if context.expected_version is not None and context.expected_version != state.version:
            raise PreconditionFailed(
                f"If-Match names version {context.expected_version}; the agreement is at version {state.version}"
            )
        refs = (
            [command.successor_agreement_id]
            if isinstance(command, CloseTerm) and command.successor_agreement_id
            else []
        )
        known = Known(agreement_id, frozenset(await self.store.existing(refs)))
        events = decide(command, state, known)
        envelopes = self._seal(events, agreement_id, state.version, loaded.last_hash, context)
        new_state = state
        for event in events:
            new_state = evolve(new_state, event)
        if completion is not None:
            completion = replace(completion, agreement_status=new_state.status)
        positions = await self.store.append(agreement_id, state.version, envelopes, None, completion)
        return CommandResult(agreement_id, new_state.version, positions[-1], new_state.status)

    def _seal(
        self,
        events: list[Event],
        agreement_id: str,
        version: int,
        prevhash: str,
        context: CommandContext,
    ) -> list[Envelope]:
        sealed = []
        for offset, event in enumerate(events, start=1):
            envelope = seal(
                event=event,
                event_id=self.new_id(),
                agreement_id=agreement_id,
                sequence=version + offset,
                recorded_at=self.clock(),
                prevhash=prevhash,
                actor=context.actor,
                correlation_id=context.correlation_id,
                causation_id=context.causation_id,
            )
            sealed.append(envelope)
            prevhash = envelope.hash
        return sealed
