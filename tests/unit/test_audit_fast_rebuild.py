"""`fold_stream` and the range queries of the fast rebuild, without a database."""

from __future__ import annotations

import json
from typing import Any

import pytest
from coordreg_contracts.envelope import canonical_json

from bench.events import make_life
from services.audit.fast_rebuild import FastPathRefused, _range_query, _Rows, fold_stream
from services.audit.outcomes import Counts


def stored_rows(first_position: int = 1) -> list[tuple[Any, ...]]:
    life = make_life(0, "UNIT")
    return [
        (first_position + n, life.agreement_id, e.sequence, canonical_json(e.without_position()).decode())
        for n, e in enumerate(life.envelopes)
    ]


def test_a_stream_is_folded_in_store_order_whatever_order_it_comes_in() -> None:
    rows = stored_rows()
    in_order, shuffled = _Rows(), _Rows()
    counts = Counts()
    fold_stream(rows, in_order, counts)
    assert counts.applied == len(rows) and counts.parked == 0
    fold_stream(list(reversed(rows)), shuffled, Counts())
    assert in_order.tables == shuffled.tables
    assert [row[0] for row in in_order.tables["applied"]] == [row[0] for row in rows]
    assert len(in_order.tables["agreements"]) == len(in_order.tables["streams"]) == 1
    assert in_order.tables["streams"][0][:3] == (rows[0][1], len(rows), rows[-1][0])


def test_store_order_decides_what_is_parked_and_resumed() -> None:
    rows = stored_rows()
    # The second event stored before the first: parked, then resumed by the first.
    swapped = [(rows[1][0], *rows[0][1:]), (rows[0][0], *rows[1][1:]), *rows[2:]]
    out, counts = _Rows(), Counts()
    fold_stream(swapped, out, counts)
    assert (counts.parked, counts.applied) == (1, len(rows))
    assert out.tables["parked"] == []
    # A gap: the rest waits, parked, and the stream stands at the event before it.
    out, counts = _Rows(), Counts()
    fold_stream([rows[0], *rows[2:]], out, counts)
    assert (counts.applied, counts.parked) == (1, len(rows) - 2)
    assert [(p[1], p[2]) for p in out.tables["parked"]] == [(r[2], r[0]) for r in rows[2:]]
    assert out.tables["streams"][0][1] == 1


def test_what_cannot_be_applied_is_dead_lettered_as_the_general_path_does() -> None:
    rows = stored_rows()
    broken = json.loads(rows[1][3])
    broken["data"] = {"status": "in_progress"}
    out, counts = _Rows(), Counts()
    fold_stream([rows[0], (*rows[1][:3], json.dumps(broken)), *rows[2:]], out, counts)
    assert counts.dead_lettered == 1 and counts.parked == len(rows) - 2
    [(item, exc)] = out.dead
    assert (item.offset, item.key, item.partition) == (rows[1][0], rows[1][1].encode(), 0)
    assert json.loads(item.message)["position"] == rows[1][0]
    assert "ValidationError" in type(exc).__name__


def test_an_envelope_of_another_stream_is_refused() -> None:
    rows = stored_rows()
    with pytest.raises(FastPathRefused, match="another subject"):
        fold_stream([(rows[0][0], "another", *rows[0][2:])], _Rows(), Counts())


def test_ranges_read_each_stream_whole_and_once() -> None:
    assert _range_query((None, None)) == (
        "SELECT position, agreement_id, sequence, envelope FROM registry.events ORDER BY agreement_id, sequence",
        [],
    )
    query, args = _range_query(("b", "m"))
    assert "agreement_id >= $1 AND agreement_id < $2" in query and args == ["b", "m"]
    query, args = _range_query((None, "m"))
    assert "WHERE agreement_id < $1 ORDER" in query and args == ["m"]
