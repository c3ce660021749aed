"""The ports' contracts: every implementation runs these same suites.

`EventStoreContract`: a subclass provides the `store` fixture (an empty store).
`IdempotencyContract`: a subclass provides `store` and `recorder`, a factory of the
Idempotency-Key recorder that goes with that store (the store records a completion in its
append), taking the seconds after which an unfinished claim may be taken over.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from coordreg_contracts.commands import ReportProgress, SignAgreement
from coordreg_contracts.envelope import Envelope

from services.registry.domain.decide import Known, decide
from services.registry.entrypoints.errors import refusal_status_and_body
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandBus, CommandContext, seal_events, utc_now
from services.registry.service_layer.event_store import (
    ConcurrencyError,
    DocumentClaim,
    DuplicateDocument,
    EventStore,
)
from services.registry.service_layer.idempotency import (
    Claim,
    ClaimLost,
    Completion,
    IdempotencyRecorder,
    KeyInFlight,
    KeyReused,
    StoredResponse,
)
from tests.support.builders import report_body, sign_body

CTX = CommandContext(Caller.in_process("tester"), correlation_id="c", causation_id="k")


def envelopes_for(agreement_id: str, version: int, prevhash: str = "", **signing: Any) -> list[Envelope]:
    """The sealed signing of `sign_body(**signing)`."""
    events = decide(SignAgreement.model_validate(sign_body(**signing)), None, Known(agreement_id))
    return seal_events(
        events,
        agreement_id=agreement_id,
        version=version,
        prevhash=prevhash,
        context=CTX,
        recorded_at=utc_now,
        new_id=lambda: str(uuid.uuid4()),
    )


class _NoKeys:
    """Commands without Idempotency-Key never reach the recorder."""

    async def claim(self, client_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
        raise AssertionError("no Idempotency-Key was given")

    async def record_refusal(self, claim: Claim, status_code: int, body: Any) -> None:
        raise AssertionError("no Idempotency-Key was given")

    async def release(self, claim: Claim) -> None:
        raise AssertionError("no Idempotency-Key was given")


NO_KEYS = _NoKeys()


class EventStoreContract:
    async def test_append_then_load_in_sequence_order(self, store: EventStore) -> None:
        bus = CommandBus(store, NO_KEYS, refusal_status_and_body)
        result = await bus.run(SignAgreement.model_validate(sign_body()), CTX)
        for period in ("2023", "2024", "2025"):
            await bus.run(
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
        results: list[Any] = list(
            await asyncio.gather(
                store.append("a-race", 0, envelopes_for("a-race", 0)),
                store.append("a-race", 0, envelopes_for("a-race", 0)),
                return_exceptions=True,
            )
        )
        assert sum(isinstance(r, list) for r in results) == 1
        assert sum(isinstance(r, ConcurrencyError) for r in results) == 1
        assert [e.sequence for e in await store.load("a-race")] == [1]

    async def test_stale_expected_version_is_a_conflict(self, store: EventStore) -> None:
        await store.append("a-stale", 0, envelopes_for("a-stale", 0))
        with pytest.raises(ConcurrencyError):
            await store.append("a-stale", 0, envelopes_for("a-stale", 0))

    async def test_document_number_is_claimed_once_per_locality_and_year(self, store: EventStore) -> None:
        number = "25/NDPH-MTTQ-HCTĐ"
        await store.append("a-doc-1", 0, envelopes_for("a-doc-1", 0), DocumentClaim("Hòa Bình", number, 2018))
        with pytest.raises(DuplicateDocument) as caught:
            await store.append(
                "a-doc-2", 0, envelopes_for("a-doc-2", 0), DocumentClaim(" hòa  BÌNH ", number, 2018)
            )
        assert caught.value.agreement_id == "a-doc-1"
        assert await store.load("a-doc-2") == []
        # Another province may use the same number, and so may the same one another year
        # (decision 13): numbers restart every year.
        await store.append("a-doc-3", 0, envelopes_for("a-doc-3", 0), DocumentClaim("Lào Cai", number, 2018))
        await store.append("a-doc-4", 0, envelopes_for("a-doc-4", 0), DocumentClaim("Hòa Bình", number, 2024))
        # ...but only once in that year too, and the refusal names that year's holder.
        with pytest.raises(DuplicateDocument) as again:
            await store.append(
                "a-doc-5", 0, envelopes_for("a-doc-5", 0), DocumentClaim("HÒA BÌNH", number, 2024)
            )
        assert again.value.agreement_id == "a-doc-4"
        assert await store.load("a-doc-5") == []
        assert [len(await store.load(a)) for a in ("a-doc-1", "a-doc-3", "a-doc-4")] == [1, 1, 1]

    async def test_existing(self, store: EventStore) -> None:
        await store.append("a-known", 0, envelopes_for("a-known", 0))
        assert await store.existing(["a-known", "a-unknown"]) == {"a-known"}

    async def test_envelopes_must_continue_the_sequence(self, store: EventStore) -> None:
        with pytest.raises(ValueError):
            await store.append("a-gap", 1, envelopes_for("a-gap", 0))


MakeRecorder = Callable[[float], IdempotencyRecorder]


def _completion(claim: Claim, status_code: int = 201) -> Completion:
    return Completion(claim, status_code, lambda position: {"agreement_id": "x", "position": position})


class IdempotencyContract:
    async def test_a_new_key_is_claimed_then_in_flight(self, recorder: MakeRecorder) -> None:
        keys = recorder(15.0)
        claim = await keys.claim("client-a", "k1", "print-1")
        assert isinstance(claim, Claim)
        with pytest.raises(KeyInFlight):
            await keys.claim("client-a", "k1", "print-1")
        with pytest.raises(KeyReused):
            await keys.claim("client-a", "k1", "print-2")

    async def test_the_response_is_recorded_with_the_events(
        self, store: EventStore, recorder: MakeRecorder
    ) -> None:
        keys = recorder(15.0)
        claim = await keys.claim("client-a", "k1", "print-1")
        assert isinstance(claim, Claim)
        [position] = await store.append("a-key", 0, envelopes_for("a-key", 0), None, _completion(claim))
        replay = await keys.claim("client-a", "k1", "print-1")
        assert replay == StoredResponse(201, {"agreement_id": "x", "position": position})
        with pytest.raises(KeyReused):
            await keys.claim("client-a", "k1", "print-2")

    async def test_keys_are_scoped_per_client(self, store: EventStore, recorder: MakeRecorder) -> None:
        keys = recorder(15.0)
        first = await keys.claim("client-a", "shared", "print-a")
        assert isinstance(first, Claim)
        await store.append("a-scope", 0, envelopes_for("a-scope", 0), None, _completion(first))
        # Another client's same key is its own: a new claim, even with another request.
        assert isinstance(await keys.claim("client-b", "shared", "print-b"), Claim)

    async def test_a_refusal_is_remembered(self, recorder: MakeRecorder) -> None:
        keys = recorder(15.0)
        claim = await keys.claim("client-a", "k1", "print-1")
        assert isinstance(claim, Claim)
        await keys.record_refusal(claim, 422, {"detail": "no", "status": 422})
        assert await keys.claim("client-a", "k1", "print-1") == StoredResponse(
            422, {"detail": "no", "status": 422}
        )

    async def test_a_released_claim_can_be_claimed_again(self, recorder: MakeRecorder) -> None:
        keys = recorder(15.0)
        claim = await keys.claim("client-a", "k1", "print-1")
        assert isinstance(claim, Claim)
        await keys.release(claim)
        again = await keys.claim("client-a", "k1", "print-1")
        assert isinstance(again, Claim) and again.token != claim.token

    async def test_a_stale_claim_is_taken_over_and_its_append_stores_nothing(
        self, store: EventStore, recorder: MakeRecorder
    ) -> None:
        keys = recorder(0.0)  # every unfinished claim is stale at once
        crashed = await keys.claim("client-a", "k1", "print-1")
        retry = await keys.claim("client-a", "k1", "print-1")
        assert isinstance(crashed, Claim) and isinstance(retry, Claim) and retry.token != crashed.token
        with pytest.raises(ClaimLost):
            await store.append("a-lost", 0, envelopes_for("a-lost", 0), None, _completion(crashed))
        assert await store.load("a-lost") == []
        [position] = await store.append("a-lost", 0, envelopes_for("a-lost", 0), None, _completion(retry))
        assert await keys.claim("client-a", "k1", "print-1") == StoredResponse(
            201, {"agreement_id": "x", "position": position}
        )
