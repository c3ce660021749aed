"""The log as C2SP tlog-tiles (docs/CONTRACT.md B11, "Tiles"; docs/adr/0020-log-served-as-tiles.md):
tile paths, which stored hashes a tile holds, entry bundles. Pure functions, no I/O.

A tile at level l, number n, holds MTH(D[(n·256 + i)·256**l : (n·256 + i + 1)·256**l]) for
i = 0 … 255: the hashes of complete subtrees of 256**l = 2**(8·l) leaves, that is of tree level
8·l. Those are stored hashes (merkle.py's layout), so a tile is read, never computed: hash i is
the stored hash `stored_hash_index(8·l, n·256 + i)`.

Paths are parsed strictly, as the spec writes them: `<L>` 0 … 63 and `<W>` 1 … 255 in decimal
with no extra leading zero, `<N>` in 3-digit groups, every group but the last starting with
`x`, and no leading `x000` group (so that each tile has one path: the spec's "zero-padded
3-digit path elements" give 1234067 as `x001/x234/067`, never `x000/x001/x234/067`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from services.transparency import merkle

__all__ = [
    "MAX_ENTRY_BYTES",
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "EntryTooLarge",
    "Tile",
    "TilePathError",
    "accepts_gzip",
    "encode_index",
    "entry_bundle",
    "inclusion_tiles",
    "parse_entries_path",
    "parse_tile_path",
    "tile_hash_indexes",
    "tile_path",
    "width_in_tree",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256), entries in a full bundle."""
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF
"""An entry's length is a big-endian uint16 in a bundle: 65,535 bytes at most."""
# A tree of this log has at most 2**62 leaves (as the proof routes say), so at most 2**54 tiles
# at a level: 17 digits. An index of more than 7 groups names no tile, and is refused before any
# arithmetic on it.
_MAX_GROUPS = 7

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")


class TilePathError(ValueError):
    """A path that names no tile or bundle (the message says why)."""


class EntryTooLarge(ValueError):
    """Entries that a bundle cannot hold: longer than MAX_ENTRY_BYTES."""

    def __init__(self, leaf_indexes: Sequence[int]) -> None:
        self.leaf_indexes = list(leaf_indexes)
        super().__init__(f"leaves {self.leaf_indexes} are over {MAX_ENTRY_BYTES} bytes")


@dataclass(frozen=True)
class Tile:
    """A tile (`level` 0 … 63) or, with `level` None, an entry bundle; `width` 1 … 256 (256:
    a full one, else a partial one)."""

    level: int | None
    index: int
    width: int

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    def path(self) -> str:
        return tile_path(self.level, self.index, self.width)


def encode_index(n: int) -> str:
    """`n` as the spec writes it: 1234067 -> x001/x234/067, 67 -> 067."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"a tile index is a non-negative integer, not {n!r}")
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def tile_path(level: int | None, n: int, width: int = TILE_WIDTH) -> str:
    """The path under the prefix: tile/<L>/<N>[.p/<W>], or tile/entries/<N>[.p/<W>]."""
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"a tile's width is 1 … {TILE_WIDTH}, not {width}")
    head = "tile/entries" if level is None else f"tile/{level}"
    tail = "" if width == TILE_WIDTH else f".p/{width}"
    return f"{head}/{encode_index(n)}{tail}"


def _parse_index(text: str) -> tuple[int, int]:
    """`<N>[.p/<W>]` -> (n, width)."""
    width = TILE_WIDTH
    parts = text.split("/")
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        if _WIDTH.fullmatch(parts[-1]) is None or int(parts[-1]) >= TILE_WIDTH:
            raise TilePathError(f"a partial width is 1 … {TILE_WIDTH - 1} with no leading zero")
        width = int(parts[-1])
        parts = [*parts[:-2], parts[-2].removesuffix(".p")]
    *groups, last = parts
    if _LAST.fullmatch(last) is None or not all(_GROUP.fullmatch(g) for g in groups):
        raise TilePathError("an index is 3-digit groups, each but the last starting with x (x001/x234/067)")
    if groups and groups[0] == "x000":
        raise TilePathError("an index has no leading x000 group")
    if len(groups) + 1 > _MAX_GROUPS:
        raise TilePathError("no tile has so large an index")
    return int("".join(g[1:] for g in groups) + last), width


def parse_tile_path(level: str, index: str) -> Tile:
    """A hash tile from the path's `<L>` and `<N>[.p/<W>]`; TilePathError if malformed."""
    if _LEVEL.fullmatch(level) is None or int(level) > MAX_LEVEL:
        raise TilePathError(f"a tile level is 0 … {MAX_LEVEL} with no leading zero")
    n, width = _parse_index(index)
    return Tile(int(level), n, width)


def parse_entries_path(index: str) -> Tile:
    """An entry bundle from the path's `<N>[.p/<W>]`; TilePathError if malformed."""
    n, width = _parse_index(index)
    return Tile(None, n, width)


def width_in_tree(level: int | None, n: int, size: int) -> int:
    """How many hashes (or entries) tile `n` of `level` (None: the bundle) holds in a tree of
    `size` leaves: 256 when it is full, 0 when it is empty."""
    span = 1 << (TILE_HEIGHT * (level or 0))  # leaves under one hash of the tile
    return max(0, min(TILE_WIDTH, size // span - n * TILE_WIDTH))


def tile_hash_indexes(tile: Tile) -> list[int]:
    """The stored-hash indexes (merkle.stored_hash_index) of the tile's hashes, in order."""
    if tile.level is None:
        raise ValueError("an entry bundle holds entries, not stored hashes")
    level = TILE_HEIGHT * tile.level
    first = tile.index * TILE_WIDTH
    return [merkle.stored_hash_index(level, first + i) for i in range(tile.width)]


def entry_bundle(first_leaf: int, entries: Iterable[bytes]) -> bytes:
    """Entries, each as a big-endian uint16 length then its bytes; EntryTooLarge names the
    leaves (counted from `first_leaf`) that cannot be written so."""
    out = bytearray()
    too_large = []
    for offset, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_BYTES:
            too_large.append(first_leaf + offset)
            continue
        out += len(entry).to_bytes(2, "big")
        out += entry
    if too_large:
        raise EntryTooLarge(too_large)
    return bytes(out)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header (RFC 9110 §12.5.3) takes gzip: named, or by `*`, with a
    q-value above 0."""
    qualities: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if not coding:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[coding.lower()] = quality
    if "gzip" in qualities:
        return qualities["gzip"] > 0
    if "x-gzip" in qualities:
        return qualities["x-gzip"] > 0
    return qualities.get("*", 0.0) > 0


def inclusion_tiles(size: int, index: int) -> list[Tile]:
    """The tiles a client reads to prove leaf `index` in the tree of `size` leaves, as Go's
    tlog.TileHashReader plans them for tlog.ProveRecord: the tiles holding the hashes the proof
    needs and those of the tree's root (which authenticate them against the checkpoint), with the
    parents of any other tile, each at the width the tree gives it. A hash of a level between two
    tile levels is recomputed from the tile below it."""

    def stored(compute: Callable[[merkle.HashReader], object]) -> list[int]:
        indexes: list[int] = []

        def record(wanted: Sequence[int]) -> list[bytes]:
            indexes.extend(wanted)
            return [bytes(merkle.HASH_SIZE)] * len(wanted)

        compute(record)
        return indexes

    def tile_of(stored_index: int, up: int = 0) -> Tile:
        level, n = merkle.split_stored_hash_index(stored_index)
        tile_level, above = divmod(level, TILE_HEIGHT)
        # The hashes below it at the tile's level, then the tile `up` levels above that one.
        number = (n << above) >> (TILE_HEIGHT * (1 + up))
        return Tile(tile_level + up, number, width_in_tree(tile_level + up, number, size))

    planned = {tile_of(x) for x in stored(lambda read: merkle.tree_hash(size, read))}
    for x in stored(lambda read: merkle.inclusion_proof(size, index, read)):
        up = 0
        while (tile := tile_of(x, up)) not in planned and tile.width > 0:
            planned.add(tile)
            up += 1
    return sorted(planned, key=lambda t: (t.level or 0, t.index))
