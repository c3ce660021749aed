"""services/transparency/tiles.py: C2SP tlog-tiles paths parsed strictly, a tile's hashes taken from
the stored hashes (checked against RFC 6962's MTH computed here from the leaves), entry bundles and
their 65,535-byte limit, and the tiles a client reads for an inclusion proof."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.transparency import merkle, tiles
from services.transparency.tiles import Tile, TilePathError


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1's MTH, straight from its definition (independent of merkle.py's layout)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


# --- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "000"), (67, "067"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_an_index_is_written_as_the_spec_writes_it(n: int, text: str) -> None:
    assert tiles.encode_index(n) == text
    assert tiles.parse_entries_path(text) == Tile(None, n, 256)


@given(st.integers(min_value=0, max_value=2**54), st.integers(min_value=1, max_value=256), st.integers(0, 63))
def test_every_tile_path_parses_back(n: int, width: int, level: int) -> None:
    path = tiles.tile_path(level, n, width)
    head, _, rest = path.removeprefix("tile/").partition("/")
    assert tiles.parse_tile_path(head, rest) == Tile(level, n, width)
    entries = tiles.tile_path(None, n, width).removeprefix("tile/entries/")
    assert tiles.parse_entries_path(entries) == Tile(None, n, width)


def test_the_spec_examples() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(1, 1, 17) == "tile/1/001.p/17"
    assert tiles.tile_path(None, 273, 112) == "tile/entries/273.p/112"
    assert tiles.parse_tile_path("2", "000.p/1") == Tile(2, 0, 1)


@pytest.mark.parametrize(
    ("level", "index"),
    [
        ("00", "000"),  # a leading zero in L
        ("01", "000"),
        ("64", "000"),  # beyond level 63
        ("-1", "000"),
        ("+1", "000"),
        (" 1", "000"),
        ("1.0", "000"),
        ("٣", "000"),  # an Arabic-Indic digit: decimal to Python, not ASCII
        ("", "000"),
        ("entries", "000"),
        ("0", ""),
        ("0", "0"),  # not 3 digits
        ("0", "0000"),
        ("0", "67"),
        ("0", "-01"),
        ("0", "x001"),  # the last group has no x
        ("0", "001/067"),  # every group but the last has one
        ("0", "x01/067"),
        ("0", "X001/067"),
        ("0", "x000/067"),  # no leading x000 group: one path per tile
        ("0", "x000/x001/067"),
        ("0", "x001/x234/067/"),
        ("0", "/067"),
        ("0", "x001//067"),
        ("0", "06٧"),
        ("0", "067.p/0"),  # W is 1 … 255
        ("0", "067.p/256"),
        ("0", "067.p/01"),
        ("0", "067.p/"),
        ("0", "067.p"),
        ("0", "067.p/1/2"),
        ("0", "067.p/-1"),
        ("0", "067.q/1"),
        ("0", ".p/1"),
        ("0", "x999/" * 7 + "999"),  # more digits than any tile index of this log
        ("0", "x123/" * 1000 + "456"),
    ],
)
def test_a_malformed_path_names_no_tile(level: str, index: str) -> None:
    with pytest.raises(TilePathError):
        tiles.parse_tile_path(level, index)
    if level == "0":
        with pytest.raises(TilePathError):
            tiles.parse_entries_path(index)


def test_the_largest_index_of_a_tree_of_2_62_leaves_parses() -> None:
    n = 2**62 // 256 - 1
    assert tiles.parse_tile_path("0", tiles.encode_index(n)) == Tile(0, n, 256)


# --- widths --------------------------------------------------------------------------------------


def test_the_spec_tree_of_70000() -> None:
    """273 full level-0 tiles, a partial one of 112, a full level-1 tile, a partial one of 17, and a
    partial level-2 tile of 1; nothing else."""
    size = 70_000
    assert [tiles.width_in_tree(0, n, size) for n in (0, 272, 273, 274)] == [256, 256, 112, 0]
    assert [tiles.width_in_tree(1, n, size) for n in (0, 1, 2)] == [256, 17, 0]
    assert [tiles.width_in_tree(2, n, size) for n in (0, 1)] == [1, 0]
    assert tiles.width_in_tree(3, 0, size) == 0
    assert [tiles.width_in_tree(None, n, size) for n in (272, 273, 274)] == [256, 112, 0]


def test_a_tree_of_256_has_a_full_level_0_tile_and_a_level_1_tile_of_1() -> None:
    assert tiles.width_in_tree(0, 0, 256) == 256
    assert tiles.width_in_tree(0, 1, 256) == 0
    assert tiles.width_in_tree(1, 0, 256) == 1
    assert tiles.width_in_tree(0, 0, 0) == 0


# --- content: the stored hashes ------------------------------------------------------------------


def test_a_tiles_hashes_are_the_merkle_tree_hashes_of_the_spec() -> None:
    leaves = [f"leaf {i}".encode() for i in range(3 * 256 + 5)]
    tree = merkle.MemoryTree()
    tree.extend(leaves)
    size = tree.size
    for level, n in [(0, 0), (0, 2), (0, 3), (1, 0)]:
        width = tiles.width_in_tree(level, n, size)
        hashes = tree.read(tiles.tile_hash_indexes(Tile(level, n, width)))
        span = 256**level
        expected = [mth(leaves[(n * 256 + i) * span : (n * 256 + i + 1) * span]) for i in range(width)]
        assert hashes == expected, (level, n)
    assert tiles.width_in_tree(1, 0, size) == 3
    # A partial tile is the prefix of the tile of any larger width.
    full = tiles.tile_hash_indexes(Tile(0, 1, 256))
    assert tiles.tile_hash_indexes(Tile(0, 1, 17)) == full[:17]
    with pytest.raises(ValueError, match="entries"):
        tiles.tile_hash_indexes(Tile(None, 0, 1))


# --- entry bundles --------------------------------------------------------------------------------


def test_an_entry_bundle_is_length_prefixed_entries() -> None:
    assert tiles.entry_bundle(0, [b"ab", b"", b"c" * 300]) == (
        b"\x00\x02ab" + b"\x00\x00" + b"\x01\x2c" + b"c" * 300
    )
    assert tiles.entry_bundle(0, [b"x" * 65_535])[:2] == b"\xff\xff"


def test_an_entry_over_65535_bytes_cannot_be_bundled() -> None:
    with pytest.raises(tiles.EntryTooLarge) as refused:
        tiles.entry_bundle(512, [b"a", b"x" * 65_536, b"b", b"y" * 200_000])
    assert refused.value.leaf_indexes == [513, 515]


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("identity", False),
        ("", False),
        (None, False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("x-gzip", True),
        ("gzip;q=nonsense", False),
        (",,;", False),
    ],
)
def test_accept_encoding(header: str | None, gzip: bool) -> None:
    assert tiles.accepts_gzip(header) is gzip


# --- what a client reads for one inclusion proof ---------------------------------------------------


def test_the_tiles_of_an_inclusion_proof() -> None:
    # 300 leaves: the level-0 tiles 0 (full) and 1 (44 wide), and the level-1 tile of 1.
    assert tiles.inclusion_tiles(300, 5) == [Tile(0, 0, 256), Tile(0, 1, 44), Tile(1, 0, 1)]
    # 70,000 leaves, an early leaf: its level-0 tile, the root's tiles (the partial level-0 tile of
    # 112, level-1 tiles 0 and 1, the level-2 tile of 1); 3 × 8,192 + 112·32 + 17·32 + 32 bytes.
    planned = tiles.inclusion_tiles(70_000, 5)
    assert planned == [
        Tile(0, 0, 256), Tile(0, 273, 112), Tile(1, 0, 256), Tile(1, 1, 17), Tile(2, 0, 1)
    ]  # fmt: skip
    assert sum(32 * t.width for t in planned) == 2 * 8192 + 112 * 32 + 17 * 32 + 32


@given(st.integers(min_value=1, max_value=200_000), st.data())
def test_the_tiles_of_a_proof_hold_every_hash_it_needs(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    planned = tiles.inclusion_tiles(size, index)
    assert all(
        1 <= t.width <= 256 and t.width == tiles.width_in_tree(t.level, t.index, size) for t in planned
    )
    held = {x for t in planned for x in tiles.tile_hash_indexes(t)}
    needed: list[int] = []

    def record(indexes: list[int]) -> list[bytes]:
        needed.extend(indexes)
        return [bytes(32)] * len(indexes)

    merkle.inclusion_proof(size, index, record)  # type: ignore[arg-type]
    for x in needed:
        level, n = merkle.split_stored_hash_index(x)
        # A hash between tile levels is recomputed from the hashes under it at the tile's level.
        base = level - level % 8
        below = {
            merkle.stored_hash_index(base, (n << (level - base)) + i) for i in range(1 << (level - base))
        }
        assert below <= held, (size, index, level, n)
