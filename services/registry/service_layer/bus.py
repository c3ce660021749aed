"""The command bus: a table from command type to handler, and what wraps every handler once.

    Idempotency-Key claim -> span -> retry on a lost race -> the stream's lock -> handler

`bus.handle(command, context, stream_id)`: the handler for the command's type
(`bootstrap.COMMAND_HANDLERS`) loads, binds the caller, decides and appends on one state, the one
loaded under the stream's lock; when the append loses a race to another process
(`ConcurrencyError`) the retry policy runs the whole handler again on the newer state, binding
included, so a party removed by a concurrent amendment can no longer act. The bus knows no
command: adding one adds a handler and a row to the table (README, "Adding a command"). No HTTP
and no SQL here: entry points build a command and its context, the stores are ports.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from coordreg_contracts.envelope import Envelope
from coordreg_contracts.events import Event
from coordreg_contracts.parties import PartyEvent, party_subject

from services.registry.domain.directory import ProvinceOf
from services.registry.domain.errors import Busy
from services.registry.service_layer.claims import claimed
from services.registry.service_layer.event_store import EventStore
from services.registry.service_layer.idempotency import Claim, Completion, IdempotencyRecorder
from services.registry.service_layer.locks import StreamLocks
from services.registry.service_layer.messages import (
    CommandContext,
    CommandResult,
    DescribeRefusal,
    IdempotentRequest,
    PartyResult,
    Replayed,
    Reply,
    Result,
    UnrecordedRefusal,
)
from services.registry.service_layer.repository import AgreementRepository, PartyRepository
from services.registry.service_layer.retry import RetryPolicy
from services.registry.service_layer.sealing import seal_events, utc_now
from services.registry.service_layer.tracing import traced

# The bus's vocabulary, importable from here by its callers.
__all__ = [
    "AGREEMENT_BUSY",
    "CommandBus",
    "CommandCall",
    "CommandContext",
    "CommandResult",
    "DescribeRefusal",
    "Handler",
    "IdempotentRequest",
    "PartyResult",
    "Replayed",
    "Reply",
    "Result",
    "Services",
    "seal_events",
    "utc_now",
]

C = TypeVar("C")
# A race lost on every try is transient: the same request may well succeed later (409).
AGREEMENT_BUSY = "the agreement is being changed by other requests right now; retry the command"


@dataclass(frozen=True)
class Services:
    """What every handler may use: the store, the repositories folded from it, the clock, ids."""

    store: EventStore
    agreements: AgreementRepository
    parties: PartyRepository
    province_of: ProvinceOf
    clock: Callable[[], str] = utc_now
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class CommandCall:
    """One handling of a command: the stream it acts on, its context, its Idempotency-Key claim."""

    stream_id: str
    context: CommandContext
    claim: Claim | None
    services: Services

    def seal(
        self, events: Sequence[Event | PartyEvent], stream_id: str, version: int, prevhash: str
    ) -> list[Envelope]:
        return seal_events(
            events,
            stream_id=stream_id,
            version=version,
            prevhash=prevhash,
            context=self.context,
            recorded_at=self.services.clock,
            new_id=self.services.new_id,
        )

    def completion(self, result: Callable[[int], Result]) -> Completion | None:
        """The success response the append records for the Idempotency-Key, in its transaction."""
        request = self.context.idempotency
        if self.claim is None or request is None:
            return None
        return Completion(self.claim, request.status_code, lambda position: result(position).body())


@dataclass(frozen=True)
class Handler(Generic[C]):
    """A command's handler, and the 409's detail once every retry lost its race."""

    run: Callable[[C, CommandCall], Awaitable[Result]]
    busy: str = AGREEMENT_BUSY


class CommandBus:
    def __init__(
        self,
        handlers: Mapping[type[Any], Handler[Any]],
        services: Services,
        keys: IdempotencyRecorder,
        describe_refusal: DescribeRefusal,
        *,
        retry: RetryPolicy | None = None,
        locks: StreamLocks | None = None,
    ) -> None:
        self.handlers = dict(handlers)
        self.services = services
        self.keys = keys
        self.describe_refusal = describe_refusal
        self.retry = retry or RetryPolicy()
        self.locks = locks or StreamLocks()

    @property
    def agreements(self) -> AgreementRepository:
        return self.services.agreements

    def new_stream_id(self) -> str:
        """The id of a stream a command opens (a new agreement's)."""
        return self.services.new_id()

    async def handle(self, command: object, context: CommandContext, stream_id: str) -> Reply:
        """The command, acting on the stream `stream_id`: its result, or the stored answer of the
        first request with its Idempotency-Key. A refusal raises (`DomainError`, `PartyNotHeld`,
        `KeyReused`, `KeyInFlight`)."""
        handler = self.handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no handler for {type(command).__name__}")

        async def locked(call: CommandCall) -> Result:
            async with self.locks.of(stream_id):
                return await handler.run(command, call)

        async def run(claim: Claim | None) -> Result:
            call = CommandCall(stream_id, context, claim, self.services)
            return await traced(
                command,
                context,
                lambda: self.retry.run(
                    lambda: locked(call),
                    exhausted=lambda: UnrecordedRefusal(Busy(handler.busy)),
                    stream_id=stream_id,
                ),
            )

        return await claimed(self.keys, self.describe_refusal, context, run)

    async def run(
        self, command: object, context: CommandContext, stream_id: str | None = None
    ) -> CommandResult:
        """An agreement command from an in-process caller (demo data, tests, benchmarks; a context
        without Idempotency-Key): decided and appended, or refused (raises). No `stream_id`: a
        new agreement's."""
        reply = await self.handle(command, context, stream_id or self.new_stream_id())
        if not isinstance(reply, CommandResult):
            raise TypeError(f"{type(command).__name__} is no agreement command")
        return reply

    async def run_directory(self, command: object, context: CommandContext, party_id: str) -> PartyResult:
        """A directory command on `party_id` without Idempotency-Key (demo data, tests)."""
        reply = await self.handle(command, context, party_subject(party_id))
        if not isinstance(reply, PartyResult):
            raise TypeError(f"{type(command).__name__} is no directory command")
        return reply
