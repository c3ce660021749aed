"""The pure parts of the search (contract decision 14): its words, their LIKE patterns, its cursors.

What PostgreSQL does with them (matching, ranking, the index) is tested on a real server in
tests/integration/test_read_models.py.
"""

from __future__ import annotations

import struct

import pytest
from fastapi import HTTPException

from services.common.patterns import MAX_POSITION
from services.projections.entrypoints.routes import (
    _decode_cursor,
    _decode_ranked_cursor,
    _encode_ranked_cursor,
)
from services.projections.readmodel.queries import Ranked, like_pattern, search_query, search_words


def float4(value: float) -> float:
    """`value` as PostgreSQL's `real` holds it (asyncpg hands it over as this Python float)."""
    (single,) = struct.unpack(">f", struct.pack(">f", value))
    return float(single)


def test_words_are_folded_like_the_search_text_and_each_kept_once() -> None:
    assert search_words("  Chuyển  ĐỔI số\tQuảng Ngãi số ") == ["chuyen", "doi", "so", "quang", "ngai"]
    assert search_words("25/NDPH-MTTQ-HCTĐ") == ["25/ndph-mttq-hctd"]
    assert search_words(" \u0301 ") == []  # a lone combining mark folds away: no word


@pytest.mark.parametrize(
    ("word", "pattern"),
    [
        ("so", "%so%"),
        ("100%", "%100\\%%"),
        ("a_b", "%a\\_b%"),
        ("c:\\x", "%c:\\\\x%"),
        ("\\%_", "%\\\\\\%\\_%"),
    ],
)
def test_like_patterns_take_the_words_literally(word: str, pattern: str) -> None:
    assert like_pattern(word) == pattern


def test_the_query_has_one_like_per_word_and_refuses_none() -> None:
    sql, args = search_query(party_id=None, locality="Bình  Định", status=None, words=["a", "b_"], after=None)
    assert sql.count("LIKE") == 2 and "public.strict_word_similarity($4" in sql
    assert args == [None, ["binh dinh"], None, "a b_", None, None, None, "%a%", "%b\\_%"]
    # A province written with its kind is also looked for by its name (as `locality_now` holds it).
    sql, args = search_query(
        party_id=None, locality="tỉnh Bình Định", status=None, words=["a"], after=None, document_type="KH"
    )
    assert "a.document_type = $7" in sql and "LIKE $8" in sql
    assert args == [None, ["tinh binh dinh", "binh dinh"], None, "a", None, None, "KH", "%a%"]
    with pytest.raises(ValueError):
        search_query(party_id=None, locality=None, status=None, words=[], after=None)


@pytest.mark.parametrize(
    "rank", [0.0, 1.0, float4(0.8928571343421936), float4(1 / 3), float4(1e-30), 2**-149]
)
@pytest.mark.parametrize("position", [1, 42, MAX_POSITION])
def test_a_ranked_cursor_carries_its_rank_exactly(rank: float, position: int) -> None:
    cursor = _encode_ranked_cursor(Ranked(rank, position))
    assert len(cursor) <= 40 and not cursor.isdigit()
    assert _decode_ranked_cursor(cursor) == Ranked(rank, position)


def test_ranked_cursors_sort_as_their_ranks() -> None:
    """The bits of non-negative floats order as the floats: the cursor keeps the rank's order."""
    ranks = sorted({float4(n / 997) for n in range(998)})
    bits = [int(_encode_ranked_cursor(Ranked(r, 1)).split(".")[0]) for r in ranks]
    assert bits == sorted(bits) and len(set(bits)) == len(ranks)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "12",  # a listing's cursor
        "x",
        "1.2.3",
        "1.",
        ".1",
        "-1.2",
        "1.-2",
        f"{0x3F800001}.1",  # above 1.0: no similarity
        f"{0x7FC00000}.1",  # NaN
        f"1.{MAX_POSITION + 1}",
        "12345678901.1",
        "１.1",
        "1.2\n",
        " 1.2",
    ],
)
def test_a_malformed_ranked_cursor_is_a_400(cursor: str) -> None:
    with pytest.raises(HTTPException) as caught:
        _decode_ranked_cursor(cursor)
    assert caught.value.status_code == 400
    assert caught.value.detail == "cursor must be a value returned as next_cursor"


def test_a_ranked_cursor_is_no_listing_cursor() -> None:
    with pytest.raises(HTTPException):
        _decode_cursor(_encode_ranked_cursor(Ranked(0.5, 7)))
    assert _decode_ranked_cursor(None) is None and _decode_cursor(None) == 0
