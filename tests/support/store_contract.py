"""The ports' contracts: every implementation runs these same suites.

`EventStoreContract`: a subclass provides the `store` fixture (an empty store). It covers the
agreement streams and the party directory's side of the port (decisions 15-17): streams written
together (`with_streams`), directory versions required unchanged at commit (`DirectoryRead`), the
succession queue, and `streams_naming`.
`IdempotencyContract`: a subclass provides `store` and `recorder`, a factory of the
Idempotency-Key recorder that goes with that store (the store records a completion in its
append), taking the seconds after which an unfinished claim may be taken over.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from coordreg_contracts.commands import AmendAgreement, ReportProgress, SignAgreement
from coordreg_contracts.envelope import Envelope
from coordreg_contracts.events import Event
from coordreg_contracts.parties import PartyEvent, PartyKind, PartyRegistered, PartyRenamed, party_subject

from services.agreement.state import AgreementState, fold
from services.registry.bootstrap import command_bus
from services.registry.domain.decide import StoreFacts, decide
from services.registry.refusals import refusal_status_and_body
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext, seal_events, utc_now
from services.registry.service_layer.event_store import (
    ConcurrencyError,
    DirectoryRead,
    DocumentClaim,
    DuplicateDocument,
    EventStore,
    PendingSuccession,
    Resumption,
    Snapshot,
    StoredEvent,
    StreamAppend,
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
from services.registry.service_layer.snapshots import MODEL_VERSION, decode_state, encode_state
from tests.support.builders import report_body, sign_body

CTX = CommandContext(Caller.in_process("tester"), correlation_id="c", causation_id="k")


def envelopes_for(agreement_id: str, version: int, prevhash: str = "", **signing: Any) -> list[Envelope]:
    """The sealed signing of `sign_body(**signing)`."""
    events = decide(SignAgreement.model_validate(sign_body(**signing)), None, StoreFacts(agreement_id))
    return sealed(agreement_id, version, events, prevhash)


def sealed(
    stream_id: str, version: int, events: Sequence[Event | PartyEvent], prevhash: str = ""
) -> list[Envelope]:
    return seal_events(
        events,
        stream_id=stream_id,
        version=version,
        prevhash=prevhash,
        context=CTX,
        recorded_at=utc_now,
        new_id=lambda: str(uuid.uuid4()),
    )


def registration(party_id: str) -> StreamAppend:
    """The first event of a party's stream, to append beside another stream's (`with_streams`)."""
    event = PartyRegistered(party_id=party_id, name=f"Đơn vị {party_id}", kind=PartyKind.DEPARTMENT)
    return StreamAppend(party_subject(party_id), 0, sealed(party_subject(party_id), 0, [event]))


async def register(store: EventStore, party_id: str) -> None:
    """A party stream on its own, as `POST /v1/parties` appends it."""
    first = registration(party_id)
    await store.append(first.stream_id, 0, first.envelopes)


async def rename(store: EventStore, party_id: str, name: str) -> None:
    stream = party_subject(party_id)
    stored = await store.load(stream)
    event = PartyRenamed.model_validate({"name": name, "effective_on": "2025-07-01"})
    await store.append(stream, len(stored), sealed(stream, len(stored), [event], stored[-1].envelope().hash))


def parties_signing(*party_ids: str) -> dict[str, Any]:
    """Overrides of `sign_body` for a signing by these parties (the first leads)."""
    return {
        "parties": [
            {"party_id": p, "name": f"Bên {p}", "role": "lead" if i == 0 else "member"}
            for i, p in enumerate(party_ids)
        ],
        "obligations": [
            {
                "obligation_id": "viec",
                "title": "Việc chung",
                "lead_party_id": party_ids[0],
                "supporting_party_ids": list(party_ids[1:]),
                "cadence": "annual",
            }
        ],
    }


def fold_one(stored: StoredEvent) -> AgreementState:
    state = fold([stored.envelope().event()])
    assert state is not None
    return state


async def reported(store: EventStore, reports: int) -> str:
    """A signed agreement with `reports` progress reports after it: a stream of 1 + `reports`."""
    bus = command_bus(store, NO_KEYS, refusal_status_and_body)
    agreement_id = (await bus.run(SignAgreement.model_validate(sign_body()), CTX)).agreement_id
    for n in range(reports):
        body = report_body(period=str(2023 + n % 3), completion_percent=10 * n)
        await bus.run(ReportProgress.model_validate(body), CTX, agreement_id)
    return agreement_id


def snapshot_at(
    stored: Sequence[StoredEvent], version: int, model_version: str, state: str = "{}"
) -> Snapshot:
    """A snapshot at the stored event of that version (its state text left to the caller)."""
    return Snapshot(stored[0].stream_id, model_version, version, stored[version - 1].envelope().hash, state)


async def queued(store: EventStore) -> list[str]:
    return [p.party_id for p in await store.pending_successions()]


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
        bus = command_bus(store, NO_KEYS, refusal_status_and_body)
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

    # -- the party directory's side of the port (decisions 15-17) ------------------------------------

    async def test_streams_appended_together_are_stored_together(self, store: EventStore) -> None:
        """A signing and the registrations it makes: one append, every stream's events stored,
        the positions returned being the agreement's own."""
        positions = await store.append(
            "a-also",
            0,
            envelopes_for("a-also", 0),
            with_streams=[registration("also-x"), registration("also-y")],
        )
        [signing] = await store.load("a-also")
        assert positions == [signing.position]
        x, y = [await store.load(party_subject(p)) for p in ("also-x", "also-y")]
        assert [e.sequence for e in x + y] == [1, 1]
        assert len({signing.position, x[0].position, y[0].position}) == 3
        assert await store.directory_versions(["also-x", "also-y"]) == {"also-x": 1, "also-y": 1}

    async def test_a_concurrency_error_on_any_stream_stores_nothing_of_any(self, store: EventStore) -> None:
        await register(store, "taken")
        # One of `also` lost its race (another signing registered the party first) …
        with pytest.raises(ConcurrencyError):
            await store.append(
                "a-lost-also",
                0,
                envelopes_for("a-lost-also", 0),
                DocumentClaim("Hòa Bình", "1/CTPH", 2024),
                with_streams=[registration("fresh"), registration("taken")],
                queue_successions=["queued-by-the-loser"],
            )
        # … or the agreement's own stream did: either way, nothing of any stream is stored.
        await store.append("a-first", 0, envelopes_for("a-first", 0))
        with pytest.raises(ConcurrencyError):
            await store.append(
                "a-first", 0, envelopes_for("a-first", 0), with_streams=[registration("fresh")]
            )
        assert await store.load("a-lost-also") == []
        assert await store.load(party_subject("fresh")) == []
        assert len(await store.load(party_subject("taken"))) == 1
        assert len(await store.load("a-first")) == 1
        assert await store.directory_versions(["fresh", "taken"]) == {"taken": 1}
        assert await queued(store) == []
        # The document number was not claimed by the append that failed.
        await store.append(
            "a-claims", 0, envelopes_for("a-claims", 0), DocumentClaim("Hòa Bình", "1/CTPH", 2024)
        )
        # And the party left unregistered can still be registered, by anyone.
        await store.append(
            "a-registers", 0, envelopes_for("a-registers", 0), with_streams=[registration("fresh")]
        )
        assert await store.directory_versions(["fresh"]) == {"fresh": 1}

    async def test_two_appends_registering_one_party_one_wins(self, store: EventStore) -> None:
        results: list[Any] = list(
            await asyncio.gather(
                store.append(
                    "a-reg-1", 0, envelopes_for("a-reg-1", 0), with_streams=[registration("contested")]
                ),
                store.append(
                    "a-reg-2", 0, envelopes_for("a-reg-2", 0), with_streams=[registration("contested")]
                ),
                return_exceptions=True,
            )
        )
        assert sum(isinstance(r, list) for r in results) == 1
        assert sum(isinstance(r, ConcurrencyError) for r in results) == 1
        assert sorted([len(await store.load("a-reg-1")), len(await store.load("a-reg-2"))]) == [0, 1]
        assert len(await store.load(party_subject("contested"))) == 1

    async def test_a_directory_read_must_be_unchanged_at_commit(self, store: EventStore) -> None:
        await register(store, "read-x")
        # The versions the decision saw (0: not registered) still hold: the append goes through.
        await store.append(
            "a-read-ok",
            0,
            envelopes_for("a-read-ok", 0),
            versions_read=DirectoryRead({"read-x": 1, "read-none": 0}),
        )
        await rename(store, "read-x", "Tên mới")
        refused = [
            {"read-x": 1},  # renamed since: it is at version 2
            {"read-x": 0},  # registered since the decision found nothing
            {"read-none": 1},  # a version of a party that is not registered
            {"read-x": 2, "read-none": 1},  # one right, one wrong
        ]
        for n, versions in enumerate(refused):
            with pytest.raises(ConcurrencyError):
                await store.append(
                    f"a-read-{n}",
                    0,
                    envelopes_for(f"a-read-{n}", 0),
                    with_streams=[registration(f"read-new-{n}")],
                    versions_read=DirectoryRead(versions),
                    queue_successions=["read-x"],
                )
            assert await store.load(f"a-read-{n}") == []
            assert await store.load(party_subject(f"read-new-{n}")) == []
        assert await queued(store) == []
        await store.append(
            "a-read-2",
            0,
            envelopes_for("a-read-2", 0),
            versions_read=DirectoryRead({"read-x": 2, "read-none": 0}),
        )
        # A party stream's own append may require other parties' versions too (a succession).
        stream = party_subject("read-x")
        stored = await store.load(stream)
        rename_again = sealed(
            stream,
            2,
            [PartyRenamed.model_validate({"name": "Tên khác", "effective_on": "2025-08-01"})],
            stored[-1].envelope().hash,
        )
        with pytest.raises(ConcurrencyError):
            await store.append(stream, 2, rename_again, versions_read=DirectoryRead({"read-none": 1}))
        assert await store.directory_versions(["read-x"]) == {"read-x": 2}
        await store.append(stream, 2, rename_again, versions_read=DirectoryRead({"read-none": 0}))
        assert await store.directory_versions(["read-x"]) == {"read-x": 3}

    async def test_directory_versions(self, store: EventStore) -> None:
        assert await store.directory_versions([]) == {}
        await register(store, "ver-a")
        await register(store, "ver-b")
        await rename(store, "ver-b", "Tên mới")
        await rename(store, "ver-b", "Tên mới nữa")
        # An agreement stream is no party, whatever its id.
        await store.append("ver-c", 0, envelopes_for("ver-c", 0))
        assert await store.directory_versions(["ver-a", "ver-b", "ver-c", "ver-none"]) == {
            "ver-a": 1,
            "ver-b": 3,
        }

    async def test_the_succession_queue(self, store: EventStore) -> None:
        await register(store, "q-a")
        assert await queued(store) == []
        # Queued by an append of any stream: a succession (the party's own), a signing, a transfer.
        stream = party_subject("q-a")
        stored = await store.load(stream)
        renamed = [PartyRenamed.model_validate({"name": "Tên mới", "effective_on": "2025-07-01"})]
        await store.append(
            stream, 1, sealed(stream, 1, renamed, stored[-1].envelope().hash), queue_successions=["q-a"]
        )
        await store.append("q-sign", 0, envelopes_for("q-sign", 0), queue_successions=["q-b", "q-c"])
        assert (await queued(store))[0] == "q-a"
        assert sorted(await queued(store)) == ["q-a", "q-b", "q-c"]
        first = await store.pending_successions()
        assert [p.request for p in first] == sorted(p.request for p in first)  # oldest request first
        assert len(await store.pending_successions(limit=2)) == 2
        # A manager is carrying q-a when a transfer queues it again: finishing the older request
        # must keep the newer one, which may have agreements the run did not see.
        [running] = [p for p in first if p.party_id == "q-a"]
        await store.append("q-transfer", 0, envelopes_for("q-transfer", 0), queue_successions=["q-a"])
        [again] = [p for p in await store.pending_successions() if p.party_id == "q-a"]
        assert again.request != running.request
        # Queuing again moves it behind the others.
        assert (await queued(store))[-1] == "q-a"
        await store.finish_succession(running)
        assert sorted(await queued(store)) == ["q-a", "q-b", "q-c"]
        await store.finish_succession(again)
        assert sorted(await queued(store)) == ["q-b", "q-c"]
        # Finishing twice, or a request never made, changes nothing.
        await store.finish_succession(again)
        await store.finish_succession(PendingSuccession("q-b", -1))
        assert sorted(await queued(store)) == ["q-b", "q-c"]
        for pending in await store.pending_successions():
            await store.finish_succession(pending)
        assert await queued(store) == []

    async def test_succession_pending_says_whether_a_party_is_queued(self, store: EventStore) -> None:
        assert not await store.succession_pending("sp-a")
        await store.append("sp-sign", 0, envelopes_for("sp-sign", 0), queue_successions=["sp-a"])
        assert await store.succession_pending("sp-a") and not await store.succession_pending("sp-b")
        for pending in await store.pending_successions():
            await store.finish_succession(pending)
        assert not await store.succession_pending("sp-a")

    async def test_streams_naming(self, store: EventStore) -> None:
        await register(store, "nm-front")
        await store.append("nm-1", 0, envelopes_for("nm-1", 0, **parties_signing("nm-front", "nm-red-cross")))
        # Another party whose id starts with the first one's: never taken for it.
        await store.append(
            "nm-2", 0, envelopes_for("nm-2", 0, **parties_signing("nm-front-2", "nm-red-cross"))
        )
        # A party that joins by amendment is named from then on.
        amendment = AmendAgreement.model_validate(
            {
                "document_number": "2/QĐ",
                "reason": "Bổ sung",
                "effective_on": "2024-01-01",
                "changes": [
                    {"op": "add_party", "party": {"party_id": "nm-front", "name": "Bên", "role": "member"}}
                ],
            }
        )
        [signing] = await store.load("nm-2")
        events = decide(amendment, fold_one(signing), StoreFacts("nm-2"))
        await store.append("nm-2", 1, sealed("nm-2", 1, events, signing.envelope().hash))
        await store.append("nm-3", 0, envelopes_for("nm-3", 0, **parties_signing("nm-red-cross", "nm-front")))
        # In signing order; the party's own stream is no agreement that names it.
        assert await store.streams_naming("nm-front") == ["nm-1", "nm-2", "nm-3"]
        assert await store.streams_naming("nm-front-2") == ["nm-2"]
        assert await store.streams_naming("nm-red-cross") == ["nm-1", "nm-2", "nm-3"]
        assert await store.streams_naming("nm-none") == []
        # Nor is a prefix of the ids a party.
        assert await store.streams_naming("nm") == []

    # -- snapshots: a cache of folded states beside the streams ----------------------------------------

    async def test_resume_without_a_snapshot_gives_every_event(self, store: EventStore) -> None:
        agreement_id = await reported(store, 3)
        resumption = await store.resume(agreement_id, "m-1")
        assert resumption.snapshot is None
        assert resumption.events == await store.load(agreement_id)
        assert await store.resume("a-none", "m-1") == Resumption(None, [])

    async def test_a_snapshot_round_trips_and_resumes_after_its_version(self, store: EventStore) -> None:
        agreement_id = await reported(store, 3)
        stored = await store.load(agreement_id)
        snapshot = snapshot_at(stored, 2, "m-1")
        await store.save_snapshot(snapshot)
        resumption = await store.resume(agreement_id, "m-1")
        assert resumption.snapshot == snapshot
        assert resumption.events == stored[2:]
        # At the stream's last event: nothing after it.
        latest = snapshot_at(stored, 4, "m-1")
        await store.save_snapshot(latest)
        assert await store.resume(agreement_id, "m-1") == Resumption(latest, [])

    async def test_a_snapshot_of_another_model_version_is_ignored(self, store: EventStore) -> None:
        agreement_id = await reported(store, 3)
        stored = await store.load(agreement_id)
        old = snapshot_at(stored, 2, "m-old")
        await store.save_snapshot(old)
        assert await store.resume(agreement_id, "m-new") == Resumption(None, stored)
        # Each model version keeps its own: two releases running side by side do not trample
        # each other's.
        new = snapshot_at(stored, 3, "m-new")
        await store.save_snapshot(new)
        assert await store.resume(agreement_id, "m-new") == Resumption(new, stored[3:])
        assert await store.resume(agreement_id, "m-old") == Resumption(old, stored[2:])

    async def test_a_snapshot_not_matching_the_stored_events_is_ignored(self, store: EventStore) -> None:
        agreement_id = await reported(store, 3)
        stored = await store.load(agreement_id)
        # The hash of another event than the one at its version ...
        wrong_hash = replace(snapshot_at(stored, 2, "m-1"), last_hash=stored[0].envelope().hash)
        await store.save_snapshot(wrong_hash)
        assert await store.resume(agreement_id, "m-1") == Resumption(None, stored)
        # ... a version the stream has not reached ...
        ahead = Snapshot(agreement_id, "m-2", 9, stored[-1].envelope().hash, "{}")
        await store.save_snapshot(ahead)
        assert await store.resume(agreement_id, "m-2") == Resumption(None, stored)
        # ... or a stream that holds no event at all.
        await store.save_snapshot(replace(snapshot_at(stored, 2, "m-1"), stream_id="a-nothing"))
        assert await store.resume("a-nothing", "m-1") == Resumption(None, [])

    async def test_a_snapshot_never_replaces_a_newer_one(self, store: EventStore) -> None:
        agreement_id = await reported(store, 3)
        stored = await store.load(agreement_id)
        newer = snapshot_at(stored, 3, "m-1")
        await store.save_snapshot(newer)
        await store.save_snapshot(snapshot_at(stored, 2, "m-1"))
        assert (await store.resume(agreement_id, "m-1")).snapshot == newer
        newest = snapshot_at(stored, 4, "m-1")
        await store.save_snapshot(newest)
        assert (await store.resume(agreement_id, "m-1")).snapshot == newest

    async def test_a_snapshot_and_its_tail_fold_to_the_state_of_every_event(self, store: EventStore) -> None:
        agreement_id = await reported(store, 5)
        stored = await store.load(agreement_id)
        whole = fold(e.envelope().event() for e in stored)
        for version in range(1, len(stored) + 1):
            state = fold(e.envelope().event() for e in stored[:version])
            assert state is not None
            await store.save_snapshot(snapshot_at(stored, version, MODEL_VERSION, encode_state(state)))
            resumption = await store.resume(agreement_id, MODEL_VERSION)
            assert resumption.snapshot is not None and resumption.snapshot.version == version
            resumed = decode_state(resumption.snapshot.state)
            assert fold((e.envelope().event() for e in resumption.events), resumed) == whole


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
