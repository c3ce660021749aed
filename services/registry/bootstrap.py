"""Wires the registry's command side: the service layer on real (PostgreSQL) or in-memory adapters.

Entry points (HTTP routes, benchmarks) and tests take a `Registry` from here and call
`registry.bus.handle(command, context, stream_id)` and `registry.agreements`; nothing else builds adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from services.common.envelope_signatures import DEV_SIGNER, EnvelopeSigner
from services.directory.provinces import province_or_none
from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from services.registry.adapters.postgres_idempotency import PostgresIdempotencyStore
from services.registry.adapters.postgres_store import PostgresEventStore

# How a remembered refusal is answered again (RFC 9457): wired in here, so that the service
# layer knows no HTTP.
from services.registry.refusals import refusal_status_and_body
from services.registry.service_layer.bus import CommandBus, DescribeRefusal, Services
from services.registry.service_layer.event_store import EventStore
from services.registry.service_layer.handlers import COMMAND_HANDLERS
from services.registry.service_layer.idempotency import IdempotencyRecorder
from services.registry.service_layer.locks import StreamLocks
from services.registry.service_layer.repository import AgreementRepository, PartyRepository
from services.registry.service_layer.retry import RetryPolicy
from services.registry.service_layer.sealing import utc_now
from services.registry.service_layer.successions import SuccessionManager

# The succession manager's transfers race commands on busy agreements: more tries than a request.
SUCCESSION_RETRIES = 20


@dataclass(frozen=True)
class Registry:
    bus: CommandBus
    agreements: AgreementRepository
    store: EventStore
    parties: PartyRepository
    successions: SuccessionManager


def command_bus(
    store: EventStore,
    keys: IdempotencyRecorder,
    describe_refusal: DescribeRefusal = refusal_status_and_body,
    *,
    agreements: AgreementRepository | None = None,
    parties: PartyRepository | None = None,
    retries: int = 5,
    clock: Callable[[], str] = utc_now,
    new_id: Callable[[], str] | None = None,
    locks: StreamLocks | None = None,
) -> CommandBus:
    """The registry's command bus: the handler table (`handlers.COMMAND_HANDLERS`) on these
    ports, each handler wrapped by the bus in the Idempotency-Key claim, its span, the retry
    policy and its stream's lock."""
    services = Services(
        store,
        agreements or AgreementRepository(store),
        parties or PartyRepository(store),
        province_or_none,
        clock,
        **({} if new_id is None else {"new_id": new_id}),
    )
    return CommandBus(
        COMMAND_HANDLERS, services, keys, describe_refusal, retry=RetryPolicy(retries), locks=locks
    )


def bootstrap(
    store: EventStore,
    keys: IdempotencyRecorder,
    *,
    describe_refusal: DescribeRefusal | None = None,
    retries: int = 5,
    clock: Callable[[], str] = utc_now,
    new_id: Callable[[], str] | None = None,
) -> Registry:
    agreements = AgreementRepository(store)
    parties = PartyRepository(store)
    locks = StreamLocks()  # one per stream, shared by the bus and the succession manager
    bus = command_bus(
        store,
        keys,
        describe_refusal or refusal_status_and_body,
        agreements=agreements,
        parties=parties,
        retries=retries,
        clock=clock,
        new_id=new_id,
        locks=locks,
    )
    successions = SuccessionManager(
        store, agreements, parties, clock=clock, retry=RetryPolicy(SUCCESSION_RETRIES), locks=locks
    )
    return Registry(bus, agreements, store, parties, successions)


def on_postgres(
    pool: asyncpg.Pool,
    *,
    retries: int = 5,
    clock: Callable[[], str] = utc_now,
    signer: EnvelopeSigner = DEV_SIGNER,
) -> Registry:
    """`signer` signs every event appended (the development key unless the settings name one)."""
    return bootstrap(
        PostgresEventStore(pool, signer=signer), PostgresIdempotencyStore(pool), retries=retries, clock=clock
    )


def in_memory(
    *, retries: int = 5, clock: Callable[[], str] = utc_now, new_id: Callable[[], str] | None = None
) -> tuple[Registry, InMemoryEventStore]:
    store = InMemoryEventStore()
    return bootstrap(
        store, InMemoryIdempotencyStore(store), retries=retries, clock=clock, new_id=new_id
    ), store
