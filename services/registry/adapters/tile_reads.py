"""The log's tiles and entry bundles (C2SP tlog-tiles; docs/CONTRACT.md B11, "Tiles") in SQL: what
services/registry/entrypoints/tile_routes.py asks of the database. A tile is read from the stored
hashes (migration 008) and an entry bundle from the events, never computed from the whole tree."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.db import Connection
from services.registry.adapters.tree_integrator import read_hashes, tree_size
from services.registry.service_layer.event_store import StoredEvent
from services.transparency import tiles
from services.transparency.tiles import Tile


async def hash_tile(conn: Connection, tile: Tile) -> bytes | None:
    """The tile's hashes, concatenated; None when the tree does not hold `tile.width` of them yet.
    The tree only grows and its stored hashes never change, so what is read is final."""
    if tiles.width_in_tree(tile.level, tile.index, await tree_size(conn)) < tile.width:
        return None
    found = await read_hashes(conn, tiles.tile_hash_indexes(tile))
    return b"".join(found[i] for i in tiles.tile_hash_indexes(tile))


@dataclass(frozen=True)
class BundleLeaf:
    """A leaf of a bundle: its data (the event's Kafka record value), or None when it is over the
    65,535 bytes an entry can hold."""

    leaf_index: int
    record: bytes | None


async def bundle_leaves(conn: Connection, bundle: Tile) -> list[BundleLeaf] | None:
    """The leaves of an entry bundle in index order; None when the tree does not hold
    `bundle.width` of them yet."""
    if tiles.width_in_tree(None, bundle.index, await tree_size(conn)) < bundle.width:
        return None
    first = bundle.index * tiles.TILE_WIDTH
    rows = await conn.fetch(
        # An envelope over the limit is not fetched: its record (the envelope with `position`
        # added) is longer still. octet_length reads a stored text's size without its bytes.
        """SELECT l.leaf_index, e.position, e.agreement_id, e.sequence,
                  CASE WHEN octet_length(e.envelope) <= $3 THEN e.envelope END AS envelope
           FROM registry.tree_leaves l
           -- A lookup by position per leaf (OFFSET 0: not a hash of the whole log).
           CROSS JOIN LATERAL (
               SELECT position, agreement_id, sequence, envelope FROM registry.events
               WHERE position = l.position OFFSET 0
           ) e
           WHERE l.leaf_index >= $1 AND l.leaf_index < $2
           ORDER BY l.leaf_index""",
        first,
        first + bundle.width,
        tiles.MAX_ENTRY_BYTES,
    )
    return [
        BundleLeaf(
            int(r["leaf_index"]),
            None
            if r["envelope"] is None
            # The leaf's data, exactly the bytes the integrator hashed (tree_integrator.py).
            else StoredEvent(r["position"], r["agreement_id"], r["sequence"], r["envelope"]).message(),
        )
        for r in rows
    ]
