"""The command bus: a command's whole life, from its Idempotency-Key claim to its append.

    claim the key -> [agreement lock] load -> party binding -> If-Match -> decide -> seal -> append

Party binding and the decision use ONE state: the one loaded under the agreement's lock. When
the append loses a race to another process (ConcurrencyError), the whole step runs again on
the newer state, binding included, so a party removed by a concurrent amendment can no longer
act. No HTTP and no SQL here: entry points build a command and its context, the stores are ports.
"""

from __future__ import annotations

import asyncio
import random
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from coordreg_contracts.envelope import Envelope, seal
from coordreg_contracts.events import Event
from coordreg_contracts.parties import (
    PartyCommand,
    PartyEvent,
    PartyRegistered,
    RecordSuccession,
    RegisterParty,
    RenameParty,
    party_subject,
)
from opentelemetry import trace

from services.agreement.state import AgreementState, fold
from services.directory.provinces import province_or_none
from services.directory.state import PartyState, fold_party
from services.registry.domain.decide import Known, decide
from services.registry.domain.directory import (
    decide_register,
    decide_rename,
    decide_succession,
    joining_parties,
    joining_violations,
    registrations,
    signing_violations,
)
from services.registry.domain.errors import Conflict, DomainError, NotFound, PreconditionFailed, Rejected
from services.registry.service_layer import binding
from services.registry.service_layer.binding import Caller, PartyNotHeld
from services.registry.service_layer.event_store import (
    ConcurrencyError,
    DirectoryRead,
    DocumentClaim,
    DuplicateDocument,
    EventStore,
    StreamAppend,
)
from services.registry.service_layer.idempotency import (
    Claim,
    ClaimLost,
    Completion,
    IdempotencyRecorder,
    KeyInFlight,
    StoredResponse,
)
from services.registry.service_layer.repository import AgreementRepository, Loaded, PartyRepository

log = structlog.get_logger(__name__)
# The OTel API only (no SDK here): without a provider configured in the process
# (services/common/tracing.py) its spans are no-ops.
_tracer = trace.get_tracer(__name__)
_R = TypeVar("_R")


@dataclass(frozen=True)
class IdempotentRequest:
    """The request's Idempotency-Key, the fingerprint of the whole request, and the status its
    success answers with (recorded, so that a replay gives the same status)."""

    key: str
    fingerprint: str
    status_code: int


@dataclass(frozen=True)
class CommandContext:
    caller: Caller
    correlation_id: str
    causation_id: str
    expected_version: int | None = None  # from If-Match
    idempotency: IdempotentRequest | None = None


@dataclass(frozen=True)
class CommandResult:
    agreement_id: str
    version: int
    position: int
    status: str

    def body(self) -> dict[str, Any]:
        return {
            "agreement_id": self.agreement_id,
            "version": self.version,
            "position": self.position,
            "status": self.status,
        }


@dataclass(frozen=True)
class PartyResult:
    """A directory command's result: the party's stream version and the position of its event."""

    party_id: str
    version: int
    position: int
    status: str  # active | ceased

    def body(self) -> dict[str, Any]:
        return {
            "party_id": self.party_id,
            "version": self.version,
            "position": self.position,
            "status": self.status,
        }


@dataclass(frozen=True)
class Replayed:
    """The stored response of the first request with this Idempotency-Key."""

    response: StoredResponse


Result = CommandResult | PartyResult
Reply = Result | Replayed
AnyCommand = Command | PartyCommand
# How a refusal is answered (status and body), so that it can be remembered for its key.
DescribeRefusal = Callable[[DomainError], tuple[int, Mapping[str, Any]]]


class _NotRemembered(Exception):
    """A refusal that is not the command's own answer: decided before the decision proper (who is
    asking, does the agreement exist), or transient (lost every race). It is not recorded for
    the Idempotency-Key: the key is released and the same request is decided again next time."""

    def __init__(self, reason: Exception) -> None:
        super().__init__(reason)
        self.reason = reason


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class CommandBus:
    def __init__(
        self,
        store: EventStore,
        keys: IdempotencyRecorder,
        describe_refusal: DescribeRefusal,
        *,
        agreements: AgreementRepository | None = None,
        parties: PartyRepository | None = None,
        retries: int = 5,
        clock: Callable[[], str] = utc_now,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.store = store
        self.keys = keys
        self.describe_refusal = describe_refusal
        self.agreements = agreements or AgreementRepository(store)
        self.parties = parties or PartyRepository(store)
        self.retries = retries
        self.clock = clock
        self.new_id = new_id
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def handle(
        self, command: AnyCommand, context: CommandContext, stream_id: str | None = None
    ) -> Reply:
        request = context.idempotency
        if request is None:
            try:
                return await self._execute(command, context, stream_id, None)
            except _NotRemembered as refusal:
                raise refusal.reason from None
        claim = await self.keys.claim(context.caller.client_id, request.key, request.fingerprint)
        if isinstance(claim, StoredResponse):
            return Replayed(claim)
        try:
            return await self._execute(command, context, stream_id, claim)
        except _NotRemembered as refusal:
            await self.keys.release(claim)
            raise refusal.reason from None
        except DomainError as exc:
            status_code, body = self.describe_refusal(exc)
            await self.keys.record_refusal(claim, status_code, body)
            raise
        except ClaimLost:
            raise KeyInFlight(request.key) from None
        except BaseException:
            await self.keys.release(claim)
            raise

    async def run(
        self, command: Command, context: CommandContext, agreement_id: str | None = None
    ) -> CommandResult:
        """A command without Idempotency-Key: decided and appended, or refused (raises)."""
        try:
            result = await self._execute(command, context, agreement_id, None)
        except _NotRemembered as refusal:
            raise refusal.reason from None
        assert isinstance(result, CommandResult)
        return result

    async def run_directory(
        self, command: PartyCommand, context: CommandContext, party_id: str | None = None
    ) -> PartyResult:
        """A directory command without Idempotency-Key (demo data, tests)."""
        try:
            result = await self._execute(command, context, party_id, None)
        except _NotRemembered as refusal:
            raise refusal.reason from None
        assert isinstance(result, PartyResult)
        return result

    async def _execute(
        self, command: AnyCommand, context: CommandContext, stream_id: str | None, claim: Claim | None
    ) -> Result:
        """The command's span around its decision and append, retries included: the store writes
        this span's trace context into the command's outbox rows (docs/CONTRACT.md B10)."""
        with _tracer.start_as_current_span(
            f"command {type(command).__name__}",
            attributes={"coordreg.correlation_id": context.correlation_id},
        ) as span:
            result = await self._dispatch(command, context, stream_id, claim)
            if isinstance(result, CommandResult):
                span.set_attribute("coordreg.agreement_id", result.agreement_id)
            else:
                span.set_attribute("coordreg.party_id", result.party_id)
            span.set_attribute("coordreg.position", result.position)
            return result

    async def _dispatch(
        self, command: AnyCommand, context: CommandContext, stream_id: str | None, claim: Claim | None
    ) -> Result:
        if isinstance(command, SignAgreement):
            return await self._retrying(lambda: self._sign(command, context, claim))
        if isinstance(command, RegisterParty):
            return await self._retrying(lambda: self._directory(command, context, command.party_id, claim))
        assert stream_id is not None
        if isinstance(command, RenameParty | RecordSuccession):
            party_id = stream_id
            return await self._retrying(lambda: self._directory(command, context, party_id, claim))
        agreement_id = stream_id
        # A command that lost a race is decided again on the newer state, unless the
        # caller pinned the version it saw (If-Match): then losing means 412.
        # (The next try's read answers 412 if the agreement moved on; an amendment can also lose
        # to a change of a joining party's directory entry, and that is decided again.)
        for attempt in range(self.retries + 1):
            try:
                # Commands on one agreement queue up inside this process instead of racing
                # each other; the primary key still decides races between processes.
                async with self._lock_for(agreement_id):
                    return await self._decide_and_append(command, context, agreement_id, claim)
            except ConcurrencyError:
                log.info("concurrent append, deciding again", agreement_id=agreement_id, attempt=attempt)
                # Jittered backoff spreads instances that keep colliding on one agreement.
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        # Transient: the same request may well succeed on a retry, so it is not remembered.
        raise _NotRemembered(
            Conflict("the agreement is being changed by other requests right now; retry the command")
        )

    async def _retrying(self, step: Callable[[], Awaitable[_R]]) -> _R:
        """A step whose append can lose a race it cannot pin (a party registered or a succession
        recorded meanwhile): decided again on the newer state."""
        for attempt in range(self.retries + 1):
            try:
                return await step()
            except ConcurrencyError:
                log.info("concurrent directory change, deciding again", attempt=attempt)
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise _NotRemembered(Conflict("the directory is being changed by other requests right now; retry"))

    def _lock_for(self, agreement_id: str) -> asyncio.Lock:
        lock = self._locks.get(agreement_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[agreement_id] = lock
        return lock

    async def _sign(
        self, command: SignAgreement, context: CommandContext, claim: Claim | None
    ) -> CommandResult:
        try:
            binding.check_signing(context.caller, command)
        except PartyNotHeld as exc:
            raise _NotRemembered(exc) from None
        agreement_id = self.new_id()
        refs = [command.parent_agreement_id] if command.parent_agreement_id else []
        known = Known(agreement_id, frozenset(await self.store.existing(refs)))
        events = decide(command, None, known)
        party_ids = [p.party_id for p in command.parties]
        directory, versions = await self.parties.directory(party_ids)
        violations = signing_violations(command, directory)
        if violations:
            raise Rejected(violations)
        envelopes = self._seal(events, agreement_id, 0, "", context)
        # Parties the directory does not know yet are registered by the signing (decision 16),
        # in its transaction; one that ceased after the signing date is carried to its successor
        # by the process manager, queued in the same transaction.
        also = self._registering(
            registrations(command.parties, command.locality, agreement_id, directory, province_or_none),
            context,
        )
        ceased = [p for p in party_ids if (entry := directory.get(p)) is not None and entry.ceased]
        document = DocumentClaim(command.locality, command.document_number, command.signed_on.year)
        result = _result_after(agreement_id, fold(events))
        try:
            positions = await self.store.append(
                agreement_id,
                0,
                envelopes,
                document,
                self._completion(claim, context, result),
                also=also,
                directory=DirectoryRead(versions),
                queue_successions=ceased,
            )
        except DuplicateDocument as exc:
            raise Conflict(
                f"document {command.document_number!r} is already signed in {command.locality!r}"
                f" (agreement {exc.agreement_id})",
                existing_agreement_id=exc.agreement_id,
            ) from None
        return result(positions[-1])

    async def _directory(
        self,
        command: RegisterParty | RenameParty | RecordSuccession,
        context: CommandContext,
        party_id: str,
        claim: Claim | None,
    ) -> PartyResult:
        loaded = await self.parties.get(party_id)
        state = loaded.state
        directory_read: dict[str, int] = {}
        queued: list[str] = []
        events: list[PartyEvent]
        if isinstance(command, RegisterParty):
            events = decide_register(command, state, province_or_none)
        elif isinstance(command, RenameParty):
            events = decide_rename(command, state, party_id)
        else:
            if state is None:
                raise _NotRemembered(NotFound(f"no party {party_id!r} in the directory"))
            successors = [
                command.successor_party_id,
                *(s.successor_party_id for s in command.obligation_successors),
            ]
            directory, directory_read = await self.parties.chain(successors)
            directory_read.pop(party_id, None)  # its own stream is checked by the append itself
            named = {}
            for agreement_id in await self.store.streams_naming(party_id):
                agreement = (await self.agreements.get(agreement_id)).state
                if agreement is not None:
                    named[agreement_id] = agreement
            events = decide_succession(command, state, party_id, directory, named)
            queued = [party_id]
        stream = party_subject(party_id)
        version = state.version if state is not None else 0
        envelopes = self._seal(events, stream, version, loaded.last_hash, context)
        after = fold_party(events, state)
        result = _party_result_after(party_id, after)
        positions = await self.store.append(
            stream,
            version,
            envelopes,
            None,
            self._completion(claim, context, result),
            directory=DirectoryRead(directory_read) if directory_read else None,
            queue_successions=queued,
        )
        return result(positions[-1])

    async def _decide_and_append(
        self, command: Command, context: CommandContext, agreement_id: str, claim: Claim | None
    ) -> CommandResult:
        loaded = await self._bound(command, context, agreement_id)
        state = loaded.state
        assert state is not None
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
        also: list[StreamAppend] = []
        directory_read = None
        joining = joining_parties(command) if isinstance(command, AmendAgreement) else []
        if joining:
            # A party joining by amendment is held to the directory as a signatory is: refused
            # once ceased, registered when unknown, and the entries read must still hold at commit.
            assert isinstance(command, AmendAgreement)
            directory, versions = await self.parties.directory([p.party_id for p in joining])
            violations = joining_violations(command, directory)
            if violations:
                raise Rejected(violations)
            also = self._registering(
                registrations(joining, state.locality, agreement_id, directory, province_or_none), context
            )
            directory_read = DirectoryRead(versions)
        envelopes = self._seal(events, agreement_id, state.version, loaded.last_hash, context)
        result = _result_after(agreement_id, fold(events, state))
        positions = await self.store.append(
            agreement_id,
            state.version,
            envelopes,
            None,
            self._completion(claim, context, result),
            also=also,
            directory=directory_read,
        )
        return result(positions[-1])

    def _registering(
        self, registered: Sequence[PartyRegistered], context: CommandContext
    ) -> list[StreamAppend]:
        """The new party streams, one registration each, written in the command's transaction."""
        return [
            StreamAppend(
                party_subject(r.party_id), 0, self._seal([r], party_subject(r.party_id), 0, "", context)
            )
            for r in registered
        ]

    async def _bound(self, command: Command, context: CommandContext, agreement_id: str) -> Loaded:
        """The agreement, once the caller is bound to it: the state the command is decided on."""
        loaded = await self.agreements.get(agreement_id)
        try:
            if isinstance(command, ReportProgress):
                binding.check_reporter(context.caller, command)
            elif isinstance(command, AmendAgreement | CloseTerm):
                if loaded.state is None:
                    raise NotFound(f"no agreement {agreement_id!r}")
                binding.check_current_party(context.caller, loaded.state)
        except (PartyNotHeld, NotFound) as exc:
            raise _NotRemembered(exc) from None
        if loaded.state is None:
            raise NotFound(f"no agreement {agreement_id!r}")
        return loaded

    def _seal(
        self,
        events: Sequence[Event | PartyEvent],
        agreement_id: str,
        version: int,
        prevhash: str,
        context: CommandContext,
    ) -> list[Envelope]:
        return seal_events(
            events,
            agreement_id=agreement_id,
            version=version,
            prevhash=prevhash,
            context=context,
            recorded_at=self.clock,
            new_id=self.new_id,
        )

    @staticmethod
    def _completion(
        claim: Claim | None, context: CommandContext, result: Callable[[int], Result]
    ) -> Completion | None:
        if claim is None or context.idempotency is None:
            return None
        return Completion(claim, context.idempotency.status_code, lambda position: result(position).body())


def seal_events(
    events: Sequence[Event | PartyEvent],
    *,
    agreement_id: str,
    version: int,
    prevhash: str,
    context: CommandContext,
    recorded_at: Callable[[], str],
    new_id: Callable[[], str],
) -> list[Envelope]:
    """The decided events in their envelopes, continuing the agreement's sequence and hash chain."""
    sealed = []
    for offset, event in enumerate(events, start=1):
        envelope = seal(
            event=event,
            event_id=new_id(),
            agreement_id=agreement_id,
            sequence=version + offset,
            recorded_at=recorded_at(),
            prevhash=prevhash,
            actor=context.caller.client_id,
            correlation_id=context.correlation_id,
            causation_id=context.causation_id,
        )
        sealed.append(envelope)
        prevhash = envelope.hash
    return sealed


def _party_result_after(party_id: str, state: PartyState | None) -> Callable[[int], PartyResult]:
    assert state is not None
    status = "ceased" if state.ceased else "active"
    return lambda position: PartyResult(party_id, state.version, position, status)


def _result_after(agreement_id: str, state: AgreementState | None) -> Callable[[int], CommandResult]:
    """The command's result once its events are stored at a position."""
    assert state is not None
    return lambda position: CommandResult(agreement_id, state.version, position, state.status)
