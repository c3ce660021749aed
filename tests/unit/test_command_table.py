"""The command bus knows no command: a toy command, in a handler table of this test only, gets
every guarantee the bus wraps around a handler (services/registry/service_layer/bus.py) without
any edit to the bus: its Idempotency-Key (a success and a refusal answered again), the retry on a
lost race, the stream's lock, and its stream as the caller names it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from coordreg_contracts.common import Frozen
from coordreg_contracts.parties import PartyKind, PartyRegistered, party_id_of

from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from services.registry.domain.errors import Busy, Conflict, Rejected, Violation
from services.registry.entrypoints.errors import domain_problem
from services.registry.refusals import refusal_status_and_body
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import (
    CommandBus,
    CommandCall,
    CommandContext,
    Handler,
    IdempotentRequest,
    PartyResult,
    Replayed,
    Services,
)
from services.registry.service_layer.event_store import ConcurrencyError
from services.registry.service_layer.repository import AgreementRepository, PartyRepository
from services.registry.service_layer.retry import RetryPolicy


class Enrol(Frozen):
    """The toy command: puts a party in the directory under the name given."""

    name: str


class Wait(Frozen):
    """A toy command that loses its first `losses` races, and notes when it runs."""

    label: str


async def enrol(command: Enrol, call: CommandCall) -> PartyResult:
    if not command.name:
        raise Rejected([Violation(("name",), "a name is needed")])
    party_id = party_id_of(call.stream_id)
    event = PartyRegistered(party_id=party_id, name=command.name, kind=PartyKind.OTHER)
    envelopes = call.seal([event], call.stream_id, 0, "")

    def result(position: int) -> PartyResult:
        return PartyResult(party_id, 1, position, "active")

    [position] = await call.services.store.append(call.stream_id, 0, envelopes, None, call.completion(result))
    return result(position)


class Waiting:
    """The `Wait` handler: records its steps, and raises ConcurrencyError for the first `losses` tries."""

    def __init__(self, losses: int) -> None:
        self.losses = losses
        self.steps: list[str] = []

    async def __call__(self, command: Wait, call: CommandCall) -> PartyResult:
        self.steps.append(f"start {command.label}")
        await asyncio.sleep(0.01)  # another command on the stream would run here, without the lock
        self.steps.append(f"end {command.label}")
        if self.losses:
            self.losses -= 1
            raise ConcurrencyError(call.stream_id)
        return PartyResult(party_id_of(call.stream_id), 1, 1, command.label)


def toy_bus(waiting: Waiting, retries: int = 5) -> tuple[CommandBus, InMemoryEventStore]:
    store = InMemoryEventStore()
    services = Services(store, AgreementRepository(store), PartyRepository(store), lambda name: None)
    table: dict[type[Any], Handler[Any]] = {
        Enrol: Handler(enrol),
        Wait: Handler(waiting, busy="the toy is busy"),
    }
    bus = CommandBus(
        table,
        services,
        InMemoryIdempotencyStore(store),
        refusal_status_and_body,
        retry=RetryPolicy(retries, base_seconds=0.0),
    )
    return bus, store


def context(key: str | None = None, fingerprint: str = "print") -> CommandContext:
    idempotency = None if key is None else IdempotentRequest(key, fingerprint, 201)
    return CommandContext(
        Caller("toy-client", frozenset()), "correlation", "causation", idempotency=idempotency
    )


async def test_a_toy_command_is_handled_on_the_stream_it_names() -> None:
    bus, store = toy_bus(Waiting(0))
    result = await bus.handle(Enrol(name="Sở Thử nghiệm"), context(), "party/so-thu-nghiem")
    assert result == PartyResult("so-thu-nghiem", 1, 1, "active")
    [stored] = await store.load("party/so-thu-nghiem")
    assert stored.envelope().party_event() == PartyRegistered(
        party_id="so-thu-nghiem", name="Sở Thử nghiệm", kind=PartyKind.OTHER
    )


async def test_its_idempotency_key_answers_again_without_a_second_event() -> None:
    bus, store = toy_bus(Waiting(0))
    first = await bus.handle(Enrol(name="Sở A"), context("k-1"), "party/so-a")
    again = await bus.handle(Enrol(name="Sở A"), context("k-1"), "party/so-a")
    assert isinstance(first, PartyResult) and isinstance(again, Replayed)
    assert (again.response.status_code, dict(again.response.body)) == (201, first.body())
    assert len(await store.load("party/so-a")) == 1
    # A refusal is remembered for its key too: the same request gets the same answer.
    with pytest.raises(Rejected):
        await bus.handle(Enrol(name=""), context("k-2"), "party/so-b")
    refused = await bus.handle(Enrol(name=""), context("k-2"), "party/so-b")
    assert isinstance(refused, Replayed) and refused.response.status_code == 422


async def test_a_lost_race_is_decided_again_and_every_race_lost_is_a_409() -> None:
    waiting = Waiting(losses=2)
    bus, _ = toy_bus(waiting)
    result = await bus.handle(Wait(label="w"), context(), "party/p")
    assert isinstance(result, PartyResult) and result.status == "w"
    assert waiting.steps.count("start w") == 3
    always = Waiting(losses=100)
    bus, _ = toy_bus(always, retries=2)
    with pytest.raises(Busy, match="the toy is busy") as lost:
        await bus.handle(Wait(label="x"), context(), "party/p")
    assert always.steps.count("start x") == 3
    # Transient, unlike the other conflicts: a problem type of its own, with Retry-After.
    status, body = refusal_status_and_body(lost.value)
    assert (status, body["type"]) == (409, "https://coordination-registry.gov.vn/problems/busy")
    answer = domain_problem(lost.value)
    assert answer.status_code == 409 and answer.headers["retry-after"] == "1"
    closed = domain_problem(Conflict("the agreement is closed"))
    assert (
        json.loads(bytes(closed.body))["type"].endswith("/conflict") and "retry-after" not in closed.headers
    )


async def test_commands_on_one_stream_take_turns_and_other_streams_do_not_wait() -> None:
    waiting = Waiting(0)
    bus, _ = toy_bus(waiting)
    await asyncio.gather(
        bus.handle(Wait(label="a"), context(), "party/p"),
        bus.handle(Wait(label="b"), context(), "party/p"),
    )
    assert waiting.steps in (
        ["start a", "end a", "start b", "end b"],
        ["start b", "end b", "start a", "end a"],
    )
    waiting.steps.clear()
    await asyncio.gather(
        bus.handle(Wait(label="c"), context(), "party/p"),
        bus.handle(Wait(label="d"), context(), "party/q"),
    )
    assert waiting.steps[:2] == ["start c", "start d"]


async def test_a_command_without_a_handler_is_refused_before_anything_runs() -> None:
    bus, store = toy_bus(Waiting(0))
    with pytest.raises(TypeError, match="no handler for Frozen"):
        await bus.handle(Frozen(), context("k-3"), "party/p")
    assert store.streams == {}
