"""Party binding is decided on the state the command is decided on (service_layer/handlers.py).

The race of issue 10: a client acting for party P sends an amendment (or a closing) while
another registry process removes P from the agreement. The removal commits after the
client's command has read the agreement and before it appends. Binding checked on that first
read and the decision taken on a later one (what the HTTP route used to do) lets P act on an
agreement it no longer belongs to. Here the interleaving is forced by the store itself, with
no sleeps: `meanwhile` runs once, right after a load has read the stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, SignAgreement

from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from services.registry.domain.errors import Conflict
from services.registry.service_layer.binding import Caller, PartyNotHeld
from services.registry.service_layer.bus import CommandContext, CommandResult, IdempotentRequest, Replayed
from services.registry.service_layer.event_store import ConcurrencyError, StoredEvent
from services.registry.service_layer.idempotency import Claim
from tests.support.builders import sign_body

LEAD = Caller("lead-system", frozenset({"mttq-hoa-binh"}))
NEWSPAPER = Caller("newspaper-system", frozenset({"bao-hoa-binh"}))


class InterleavingStore(InMemoryEventStore):
    """Runs `meanwhile` once, after a load has read the stream and before it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], Awaitable[Any]] | None = None

    async def load(self, stream_id: str, after: int = 0) -> list[StoredEvent]:
        events = await super().load(stream_id, after)
        if self.meanwhile is not None:
            action, self.meanwhile = self.meanwhile, None
            await action()
        return events


def context(caller: Caller, key: str | None = None) -> CommandContext:
    idempotency = None if key is None else IdempotentRequest(key, f"print-{key}", 200)
    return CommandContext(caller, "correlation", "causation", idempotency=idempotency)


def amendment(number: str, *changes: dict[str, Any]) -> AmendAgreement:
    return AmendAgreement.model_validate(
        {"document_number": number, "reason": "Điều chỉnh", "effective_on": "2024-03-01", "changes": changes}
    )


REMOVE_NEWSPAPER = amendment("1/QĐ-MTTQ", {"op": "remove_party", "party_id": "bao-hoa-binh"})
BY_NEWSPAPER = amendment(
    "2/QĐ-BAO", {"op": "change_term", "term": {"start": "2023-01-01", "end": "2028-12-31"}}
)
CLOSE = CloseTerm.model_validate({"closed_on": "2024-06-30", "outcome": "terminated"})


async def signed_with_newspaper() -> tuple[InterleavingStore, bootstrap.Registry, bootstrap.Registry, str]:
    """One store, two registry processes on it, and an agreement the newspaper is a party of."""
    store = InterleavingStore()
    ours, other = (bootstrap.bootstrap(store, InMemoryIdempotencyStore(store)) for _ in range(2))
    body = sign_body()
    body["parties"].append({"party_id": "bao-hoa-binh", "name": "Báo Hòa Bình", "role": "member"})
    signed = await other.bus.run(SignAgreement.model_validate(body), context(LEAD))
    return store, ours, other, signed.agreement_id


def removal_meanwhile(store: InterleavingStore, other: bootstrap.Registry, agreement_id: str) -> None:
    async def remove() -> None:
        await other.bus.run(REMOVE_NEWSPAPER, context(LEAD), agreement_id)

    store.meanwhile = remove


@pytest.mark.parametrize("command", [BY_NEWSPAPER, CLOSE], ids=["amend", "close"])
async def test_a_party_removed_while_its_command_runs_cannot_amend_or_close(command: Command) -> None:
    store, ours, other, agreement_id = await signed_with_newspaper()
    removal_meanwhile(store, other, agreement_id)
    with pytest.raises(PartyNotHeld):
        await ours.bus.run(command, context(NEWSPAPER), agreement_id)
    assert store.meanwhile is None, "the removal ran in the middle of the command"
    events = [e.envelope() for e in await store.load(agreement_id)]
    assert [(e.type.split(".")[-2], e.actor) for e in events] == [
        ("AgreementSigned", "lead-system"),
        ("AgreementAmended", "lead-system"),
    ]


@pytest.mark.parametrize("command", [BY_NEWSPAPER, CLOSE], ids=["amend", "close"])
async def test_after_the_removal_the_party_stays_refused(command: Command) -> None:
    store, ours, other, agreement_id = await signed_with_newspaper()
    await other.bus.run(REMOVE_NEWSPAPER, context(LEAD), agreement_id)
    await ours.agreements.get(agreement_id)  # a cached state from before changes nothing
    with pytest.raises(PartyNotHeld):
        await ours.bus.run(command, context(NEWSPAPER), agreement_id)
    assert len(await store.load(agreement_id)) == 2


async def test_a_party_added_while_its_command_runs_may_amend() -> None:
    store = InterleavingStore()
    ours, other = (bootstrap.bootstrap(store, InMemoryIdempotencyStore(store)) for _ in range(2))
    agreement_id = (
        await other.bus.run(SignAgreement.model_validate(sign_body()), context(LEAD))
    ).agreement_id
    add = amendment(
        "3/QĐ-MTTQ",
        {"op": "add_party", "party": {"party_id": "bao-hoa-binh", "name": "Báo", "role": "member"}},
    )
    await other.bus.run(add, context(LEAD), agreement_id)
    result = await ours.bus.run(BY_NEWSPAPER, context(NEWSPAPER), agreement_id)
    assert isinstance(result, CommandResult) and result.version == 3


async def test_a_binding_refusal_is_not_remembered_for_the_key() -> None:
    """As before the command bus owned the key: 403 is decided again on every request."""
    store, ours, other, agreement_id = await signed_with_newspaper()
    removal_meanwhile(store, other, agreement_id)
    with pytest.raises(PartyNotHeld):
        await ours.bus.handle(BY_NEWSPAPER, context(NEWSPAPER, key="k-1"), agreement_id)
    # The key was released, not answered: the same request is decided again (and refused again).
    with pytest.raises(PartyNotHeld):
        await ours.bus.handle(BY_NEWSPAPER, context(NEWSPAPER, key="k-1"), agreement_id)
    # A party that may act gets its answer recorded, and the replay gives it again.
    first = await ours.bus.handle(CLOSE, context(LEAD, key="k-2"), agreement_id)
    again = await ours.bus.handle(CLOSE, context(LEAD, key="k-2"), agreement_id)
    assert isinstance(first, CommandResult) and isinstance(again, Replayed)
    assert dict(again.response.body) == first.body() and again.response.status_code == 200


class RacedAfterSigningStore(InMemoryEventStore):
    """Every append after the signing loses to another writer, as under a storm of commands."""

    async def append(self, stream_id: str, expected_version: int, *args: Any, **kwargs: Any) -> list[int]:
        if expected_version > 0:
            raise ConcurrencyError(stream_id)
        return await super().append(stream_id, expected_version, *args, **kwargs)


async def test_losing_every_race_is_a_409_that_is_not_remembered_for_the_key() -> None:
    store = RacedAfterSigningStore()
    keys = InMemoryIdempotencyStore(store)
    registry = bootstrap.bootstrap(store, keys, retries=2)
    agreement_id = (
        await registry.bus.run(SignAgreement.model_validate(sign_body()), context(LEAD))
    ).agreement_id
    for _ in range(2):  # the second try is decided again, not answered from a record
        with pytest.raises(Conflict, match="being changed by other requests"):
            await registry.bus.handle(CLOSE, context(LEAD, key="k-3"), agreement_id)
    assert isinstance(await keys.claim("lead-system", "k-3", "print-k-3"), Claim)
