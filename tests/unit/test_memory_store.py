from __future__ import annotations

import pytest

from services.registry.adapters.memory_store import InMemoryEventStore
from tests.support.store_contract import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()
