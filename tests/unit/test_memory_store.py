"""The in-memory stores run the same port contracts as PostgreSQL (tests/integration/test_postgres_store.py)."""

from __future__ import annotations

import itertools

import pytest

from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from tests.support.store_contract import EventStoreContract, IdempotencyContract, MakeRecorder


@pytest.fixture
def store() -> InMemoryEventStore:
    # A clock that moves on every reading: "stale after 0 seconds" holds without waiting.
    ticks = itertools.count()
    return InMemoryEventStore(clock=lambda: float(next(ticks)))


class TestInMemoryEventStore(EventStoreContract):
    pass


class TestInMemoryIdempotency(IdempotencyContract):
    @pytest.fixture
    def recorder(self, store: InMemoryEventStore) -> MakeRecorder:
        return lambda stale_after: InMemoryIdempotencyStore(store, stale_after)
