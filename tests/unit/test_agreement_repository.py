"""The repository's state cache never hides another instance's writes: it reads the tail."""

from __future__ import annotations

import itertools

from coordreg_contracts.commands import ReportProgress, SignAgreement

from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from tests.support.builders import report_body, sign_body

CTX = CommandContext(Caller.in_process("t"), correlation_id="c", causation_id="k")


async def test_a_cached_state_catches_up_with_events_written_elsewhere() -> None:
    store = InMemoryEventStore()
    first, second = (bootstrap.bootstrap(store, InMemoryIdempotencyStore(store)) for _ in range(2))
    agreement = (await first.bus.run(SignAgreement.model_validate(sign_body()), CTX)).agreement_id
    loaded = await first.agreements.get(agreement)
    assert loaded.state is not None and loaded.state.version == 1
    await second.bus.run(ReportProgress.model_validate(report_body(period="2023")), CTX, agreement)
    await second.bus.run(ReportProgress.model_validate(report_body(period="2024")), CTX, agreement)
    loaded = await first.agreements.get(agreement)
    assert loaded.state is not None and loaded.state.version == 3
    assert loaded.last_hash == (await store.load(agreement))[-1].envelope().hash
    result = await first.bus.run(ReportProgress.model_validate(report_body(period="2025")), CTX, agreement)
    assert result.version == 4
    assert [e.sequence for e in await store.load(agreement)] == [1, 2, 3, 4]
    chain = [e.envelope() for e in await store.load(agreement)]
    assert all(b.prevhash == a.hash for a, b in itertools.pairwise(chain))
