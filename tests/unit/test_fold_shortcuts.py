"""The shortcuts taken on the fold's hot path give what the straightforward code gives.

Each is checked against the code it replaced: `dataclasses.replace` in `evolve`, the generator
over every character in `search_key`, the message's bytes decoded back in the fast rebuild,
the check of every state's obligations there, the caches of periods and document numbers, and
the collector's settings while the fast rebuild folds.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import unicodedata
from itertools import pairwise
from typing import Any

import pytest
from coordreg_contracts import periods
from coordreg_contracts.changes import AddObligation
from coordreg_contracts.common import PERIOD_PATTERN, Cadence, Obligation
from coordreg_contracts.envelope import canonical_json
from coordreg_contracts.events import Event
from hypothesis import given, settings
from hypothesis import strategies as st

import services.agreement.state as agreement_state
from bench.events import make_life
from services.agreement import document_numbers
from services.agreement.state import AgreementState, ObligationState, evolve
from services.audit.fast_rebuild import GC_THRESHOLD, FastPathRefused, _Rows, fold_stream
from services.audit.fast_rebuild import _fewer_collections as fewer_collections
from services.audit.outcomes import Counts
from services.common.search_text import search_key
from services.projections.readmodel.apply import decode
from services.registry.service_layer.event_store import StoredEvent


def _events(index: int) -> list[Event]:
    events = []
    for envelope in make_life(index, "SHORT").envelopes:
        events.append(envelope.event())
    return events


def _fold_life(events: list[Event]) -> list[AgreementState]:
    states: list[AgreementState] = []
    state = None
    for event in events:
        state = evolve(state, event)
        states.append(state)
    return states


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_evolve_folds_what_dataclasses_replace_folds(index: int) -> None:
    events = _events(index)
    fast = _fold_life(events)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(agreement_state, "_replace", dataclasses.replace)
        plain = _fold_life(events)
    assert fast == plain
    for a, b in zip(fast, plain, strict=True):
        # The same fields in the same order, as repr shows them.
        assert type(a) is type(b) and list(vars(a).items()) == list(vars(b).items())
        assert repr(a) == repr(b)


def test_replace_may_skip_init_because_the_classes_do_nothing_there() -> None:
    # `_replace` copies the instance dict: no `__post_init__` to run, no slots, every field init.
    for cls in (AgreementState, ObligationState):
        assert not hasattr(cls, "__post_init__") and not hasattr(cls, "__slots__")
        assert all(f.init for f in dataclasses.fields(cls))


def test_replace_refuses_a_field_the_class_has_not() -> None:
    state = _fold_life(_events(0))[-1]
    item = next(iter(state.obligations.values()))
    with pytest.raises(TypeError):
        agreement_state._replace(state, versio=3)
    assert agreement_state._replace(item, status="withdrawn") == dataclasses.replace(item, status="withdrawn")
    with pytest.raises(dataclasses.FrozenInstanceError):
        agreement_state._replace(state, version=9).version = 10  # type: ignore[misc]


def _search_key_by_character(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


VIETNAMESE = "Chương trình phối hợp số 5495/CTPH-RB về công tác vì người nghèo; ĐẢNG ỦY Thừa Thiên Huế"


@settings(max_examples=500, deadline=None)
@given(st.text() | st.text(alphabet=VIETNAMESE + "\u0301\u0300\u0323\u0309\u0303 \t\u2000"))
def test_search_key_is_the_key_computed_character_by_character(text: str) -> None:
    assert search_key.__wrapped__(text) == _search_key_by_character(text)
    assert search_key.__wrapped__(unicodedata.normalize("NFD", text)) == _search_key_by_character(
        unicodedata.normalize("NFD", text)
    )


def test_search_key_of_every_combining_mark_and_letter() -> None:
    every = "".join(chr(c) for c in range(0x30000) if not 0xD800 <= c < 0xE000)
    assert search_key.__wrapped__(every) == _search_key_by_character(every)


def _rows(index: int = 0) -> list[tuple[Any, ...]]:
    life = make_life(index, "SHORT")
    return [
        (100 + n, life.agreement_id, e.sequence, canonical_json(e.without_position()).decode())
        for n, e in enumerate(life.envelopes)
    ]


@given(st.integers(min_value=1, max_value=2**62), st.sampled_from(_rows()))
def test_the_message_text_is_the_message(position: int, row: tuple[Any, ...]) -> None:
    canonical = StoredEvent(position, row[1], row[2], row[3])
    assert canonical.message_text().encode() == canonical.message()
    assert json.loads(canonical.message_text()) == {**json.loads(row[3]), "position": position}
    # Text the splice does not apply to is encoded in full, as before.
    spaced = StoredEvent(position, row[1], row[2], json.dumps(json.loads(row[3]), indent=1))
    assert spaced.message() == canonical_json({**json.loads(row[3]), "position": position})
    assert spaced.message_text().encode() == spaced.message()


def test_a_dead_letter_keeps_the_error_the_live_worker_gets_from_the_bytes() -> None:
    rows = _rows()
    # Not JSON: the error quotes its input, which the live worker has as bytes.
    broken = (rows[1][0], rows[1][1], rows[1][2], rows[1][3][:-40] + ',"prevhash":' + "]")
    out, counts = _Rows(), Counts()
    fold_stream([rows[0], broken], out, counts)
    [(item, exc)] = out.dead
    message = StoredEvent(*broken).message()
    assert item.message == message
    with pytest.raises(Exception) as live:
        decode(message)
    assert f"{type(exc).__name__}: {exc}" == f"{type(live.value).__name__}: {live.value}"
    assert "input_type=bytes" in str(exc)


def test_obligations_naming_a_party_twice_are_refused_whenever_they_appear() -> None:
    rows = _rows()
    amended = next(n for n, r in enumerate(rows) if "AgreementAmended" in r[3])
    envelope = json.loads(rows[amended][3])
    signed = json.loads(rows[0][3])["data"]
    lead = signed["obligations"][0]["lead_party_id"]
    twice = Obligation(
        obligation_id="twice",
        title="Twice",
        lead_party_id=lead,
        supporting_party_ids=[lead],
        cadence=Cadence.ONCE,
    )
    envelope["data"]["changes"] = [
        AddObligation(op="add_obligation", obligation=twice).model_dump(mode="json")
    ]
    rows[amended] = (*rows[amended][:3], canonical_json(envelope).decode())
    # Reports come after the amendment: the state they leave shares its obligations.
    assert any("ProgressReported" in r[3] for r in rows[amended + 1 :])
    with pytest.raises(FastPathRefused, match="names a party twice"):
        fold_stream(rows, _Rows(), Counts())
    fold_stream(rows[:amended], _Rows(), Counts())


def test_a_state_keeps_its_obligations_when_a_report_is_folded() -> None:
    states = _fold_life(_events(3))
    reported = [
        (before, after) for before, after in pairwise(states) if len(after.reports) > len(before.reports)
    ]
    assert reported
    assert all(after.obligations is before.obligations for before, after in reported)
    assert isinstance(next(iter(states[-1].obligations.values())), ObligationState)


@given(st.from_regex(PERIOD_PATTERN, fullmatch=True))
def test_a_period_s_bounds_are_read_once_and_are_what_reading_gives(period: str) -> None:
    assert periods.bounds(period) == periods.bounds.__wrapped__(period)
    assert periods.bounds(period) is periods.bounds(period)
    assert periods.sort_key(period) == (
        periods.bounds.__wrapped__(period)[1],
        periods.bounds.__wrapped__(period)[0],
    )


@given(st.text(max_size=40) | st.sampled_from(["5495/CTPH-RB", "24/2021/QH15", " 01/NDPH-UBND ", "KH"]))
def test_a_document_number_is_read_apart_once_and_as_reading_gives(text: str) -> None:
    assert document_numbers.parse(text) == document_numbers.parse.__wrapped__(text)
    # What the cache hands out again cannot be changed by whoever got it first.
    with pytest.raises(dataclasses.FrozenInstanceError):
        document_numbers.parse(text).text = "changed"  # type: ignore[misc]
    assert isinstance(document_numbers.parse(text).issuers, tuple)


def test_folding_leaves_the_collector_as_it_found_it() -> None:
    threshold = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with fewer_collections():
        assert gc.get_threshold() == (GC_THRESHOLD, *threshold[1:])
        assert gc.get_freeze_count() >= frozen
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == frozen
    # Objects someone else froze stay frozen.
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with fewer_collections():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_stream_folds_to_the_same_rows_whatever_the_collector_does() -> None:
    rows = _rows(5)
    plain, fewer = _Rows(), _Rows()
    fold_stream(rows, plain, Counts())
    with fewer_collections():
        fold_stream(rows, fewer, Counts())
    assert plain.tables == fewer.tables
