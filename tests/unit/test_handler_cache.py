"""The handler's state cache never hides another instance's writes: it reads the tail."""

from __future__ import annotations

import itertools

from coordreg_contracts.commands import ReportProgress, SignAgreement

from services.registry.adapters.memory_store import InMemoryEventStore
from services.registry.service_layer.handlers import CommandContext, CommandHandler
from tests.support.builders import report_body, sign_body

CTX = CommandContext(actor="t", correlation_id="c", causation_id="k")


async def test_a_cached_state_catches_up_with_events_written_elsewhere() -> None:
    store = InMemoryEventStore()
    first, second = CommandHandler(store), CommandHandler(store)
    agreement = (await first.handle(SignAgreement.model_validate(sign_body()), CTX)).agreement_id
    assert (await first.load(agreement)).state.version == 1  # type: ignore[union-attr]
    await second.handle(ReportProgress.model_validate(report_body(period="2023")), CTX, agreement)
    await second.handle(ReportProgress.model_validate(report_body(period="2024")), CTX, agreement)
    loaded = await first.load(agreement)
    assert loaded.state is not None and loaded.state.version == 3
    assert loaded.last_hash == (await store.load(agreement))[-1].envelope().hash
    result = await first.handle(ReportProgress.model_validate(report_body(period="2025")), CTX, agreement)
    assert result.version == 4
    assert [e.sequence for e in await store.load(agreement)] == [1, 2, 3, 4]
    chain = [e.envelope() for e in await store.load(agreement)]
    assert all(b.prevhash == a.hash for a, b in itertools.pairwise(chain))
