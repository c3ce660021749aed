"""The event-store port's contract: every implementation runs this same suite.

A subclass provides the `store` fixture (an empty store).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from coordreg_contracts.commands import ReportProgress, SignAgreement
from coordreg_contracts.envelope import Envelope

from services.registry.adapters.postgres_store import (
    ConcurrencyError,
    DocumentClaim,
    DuplicateDocument,
    EventStore,
)
from services.registry.domain.decide import Known, decide
from services.registry.service_layer.handlers import CommandContext, CommandHandler
from tests.support.builders import report_body, sign_body

CTX = CommandContext(actor="tester", correlation_id="c", causation_id="k")


def envelopes_for(agreement_id: str, version: int, prevhash: str = "") -> list[Envelope]:
    handler = CommandHandler(store=None)  # type: ignore[arg-type]  # only its sealing is used
    [event] = decide(SignAgreement.model_validate(sign_body()), None, Known(agreement_id))
    return handler._seal([event], agreement_id, version, prevhash, CTX)


class EventStoreContract:
    async def test_append_then_load_in_sequence_order(self, store: EventStore) -> None:
        handler = CommandHandler(store)
        result = await handler.handle(SignAgreement.model_validate(sign_body()), CTX)
        for period in ("2023", "2024", "2025"):
            await handler.handle(
                ReportProgress.model_validate(report_body(period=period)),
                CTX,
                result.agreement_id,
            )
        events = await store.load(result.agreement_id)
        assert [e.sequence for e in events] == [1, 2, 3, 4]
        positions = [e.position for e in events]
        assert positions == sorted(positions) and len(set(positions)) == 4
        chain = [e.envelope() for e in events]
        assert chain[0].prevhash == ""
        for previous, current in itertools.pairwise(chain):
            assert current.prevhash == previous.hash
            assert current.computed_hash() == current.hash

    async def test_two_writers_on_one_version_one_wins(self, store: EventStore) -> None:
        results: list[Any] = await asyncio.gather(
            store.append("a-race", 0, envelopes_for("a-race", 0)),
            store.append("a-race", 0, envelopes_for("a-race", 0)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, list) for r in results) == 1
        assert sum(isinstance(r, ConcurrencyError) for r in results) == 1
        assert [e.sequence for e in await store.load("a-race")] == [1]

    async def test_stale_expected_version_is_a_conflict(self, store: EventStore) -> None:
        await store.append("a-stale", 0, envelopes_for("a-stale", 0))
        with pytest.raises(ConcurrencyError):
            await store.append("a-stale", 0, envelopes_for("a-stale", 0))

    async def test_document_number_is_claimed_once_per_locality(self, store: EventStore) -> None:
        claim = DocumentClaim("Hòa Bình", "25/NDPH-MTTQ-HCTĐ")
        await store.append("a-doc-1", 0, envelopes_for("a-doc-1", 0), claim)
        with pytest.raises(DuplicateDocument) as caught:
            await store.append(
                "a-doc-2", 0, envelopes_for("a-doc-2", 0), DocumentClaim(" hòa  BÌNH ", claim.document_number)
            )
        assert caught.value.agreement_id == "a-doc-1"
        assert await store.load("a-doc-2") == []
        # Another province may use the same number.
        await store.append(
            "a-doc-3", 0, envelopes_for("a-doc-3", 0), DocumentClaim("Lào Cai", claim.document_number)
        )

    async def test_existing(self, store: EventStore) -> None:
        await store.append("a-known", 0, envelopes_for("a-known", 0))
        assert await store.existing(["a-known", "a-unknown"]) == {"a-known"}

    async def test_envelopes_must_continue_the_sequence(self, store: EventStore) -> None:
        with pytest.raises(ValueError):
            await store.append("a-gap", 1, envelopes_for("a-gap", 0))
