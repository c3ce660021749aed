"""The transparency log served as C2SP tlog-tiles under `/v1/log/tiles` (docs/CONTRACT.md B11,
"Tiles"; docs/adr/0020-log-served-as-tiles.md): the latest checkpoint, the hash tiles and the entry
bundles, so that the standard tools (Tessera's fsck, Go's tlog.TileHashReader, monitors of Go sumdb,
Sigsum, Sunlight) read this log as they read theirs. Reads need `agreements:read`, as every read of
the log does.

A tile's content never changes once the tree holds it: full tiles and partial ones alike are
served `immutable`. The SQL is in services/registry/adapters/tile_reads.py, the paths and widths
in services/transparency/tiles.py.
"""

from __future__ import annotations

import gzip
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import Counter
from pydantic import RootModel

from services.common import auth
from services.common.auth import Client
from services.common.auth.dependencies import require
from services.common.openapi import ref
from services.common.problems import documented_errors, problem
from services.registry.adapters import log_reads, tile_reads
from services.registry.entrypoints.log_routes import NOTE, Pool, SignedNote
from services.transparency import tiles

PREFIX = "/v1/log/tiles"
router = APIRouter(prefix=PREFIX, tags=["transparency log"])
Reader = Annotated[Client, Depends(require(auth.READ))]
# Plain text, parsed by tiles.py: a malformed one is a 404 (no such tile), as a static server says.
Level = Annotated[str, Path(description="The tile's level: 0 … 63, no leading zero", examples=["0"])]
Index = Annotated[
    str,
    Path(
        description="`<N>[.p/<W>]`: the tile's number in 3-digit groups, all but the last with `x` "
        "(1234067: `x001/x234/067`), and for a partial tile its width W, 1 … 255",
        examples=["000", "x001/x234/067", "001.p/44"],
    ),
]
TILE = "application/octet-stream"
# The spec: tiles and bundles "immutable, so its caching headers SHOULD be long-lived"; the
# checkpoint "SHOULD prevent caching beyond a few seconds". No `public`: the request carries a
# token, and a shared cache must not keep an authorised answer for anyone else (RFC 9111 §3.5).
IMMUTABLE = "max-age=31536000, immutable"
CHECKPOINT_CACHE = "max-age=2"
_AUTH = (401, 403, 413, 429)

TOO_LARGE = Counter(
    "log_entry_bundles_too_large_total",
    "Entry bundles refused (422 entry-too-large): they would hold a record over 65,535 bytes",
)


class TileBytes(RootModel[bytes]):
    """A C2SP tlog-tiles hash tile (256 SHA-256 hashes, or fewer when partial) or entry bundle
    (each entry a big-endian uint16 length then the leaf's data), as raw bytes."""


SCHEMAS = [TileBytes]


def _binary(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {TILE: {"schema": ref(TileBytes)}},
            "headers": {"Cache-Control": {"description": IMMUTABLE, "schema": {"type": "string"}}},
        }
    }


def _no_such_tile(detail: str) -> Response:
    # Not cached: a tile the tree does not hold yet may be served in a moment.
    return problem(404, detail, kind="no-such-tile", headers={"Cache-Control": "no-store"})


def _beyond(tile: tiles.Tile) -> Response:
    what = "entry bundle" if tile.level is None else f"level-{tile.level} tile"
    return _no_such_tile(
        f"the tree does not hold {tile.width} entries of {what} {tile.index} (yet): ask for the "
        "width of a checkpoint's size"
    )


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest checkpoint, at the C2SP tlog-tiles path",
    operation_id="getTiledCheckpoint",
    description="The same note as `GET /v1/log/checkpoint` (with its cosignatures), cached 2 seconds.",
    responses={
        200: {"description": "The latest checkpoint", "content": {"text/plain": {"schema": ref(SignedNote)}}},
        **documented_errors(*_AUTH, 404, 503),
    },
)
async def tiled_checkpoint(pool: Pool, client: Reader) -> Response:
    async with pool.acquire() as conn:
        served = await log_reads.latest_checkpoint(conn)
    if served is None:
        return problem(404, "no checkpoint has been signed yet", headers={"Cache-Control": "no-store"})
    return Response(served.note, media_type=NOTE, headers={"Cache-Control": CHECKPOINT_CACHE})


# Before the hash tiles' route: `entries` would otherwise be taken for a level and refused.
@router.get(
    "/tile/entries/{index:path}",
    summary="An entry bundle: 256 leaves' data (fewer when partial)",
    operation_id="getEntryBundle",
    response_class=Response,
    description="`index` is `<N>[.p/<W>]` as C2SP tlog-tiles writes it (`x001/x234/067`, `067.p/12`). "
    "Compressed with gzip when the client accepts it. A bundle that would hold a record over 65,535 "
    "bytes is refused (422 `entry-too-large`, naming the leaves; read them at `GET /v1/log/leaves`).",
    responses={
        **_binary("The entry bundle"),
        **documented_errors(
            *_AUTH, 404, 422, 503, described={422: "A record of the bundle is over 65,535 bytes"}
        ),
    },
)
async def entry_bundle(request: Request, pool: Pool, client: Reader, index: Index) -> Response:
    try:
        bundle = tiles.parse_entries_path(index)
    except tiles.TilePathError as exc:
        return _no_such_tile(f"not an entry bundle path: {exc}")
    async with pool.acquire() as conn:
        leaves = await tile_reads.bundle_leaves(conn, bundle)
    if leaves is None:
        return _beyond(bundle)
    too_large = [leaf.leaf_index for leaf in leaves if leaf.record is None]
    try:
        if too_large:
            raise tiles.EntryTooLarge(too_large)
        body = tiles.entry_bundle(leaves[0].leaf_index, [leaf.record or b"" for leaf in leaves])
    except tiles.EntryTooLarge as exc:
        TOO_LARGE.inc()
        return problem(
            422,
            f"leaves {exc.leaf_indexes} are over the {tiles.MAX_ENTRY_BYTES} bytes an entry bundle "
            "can hold; read them from GET /v1/log/leaves (the hash tiles hold them as every other)",
            kind="entry-too-large",
            # RFC 9457 extension members: which leaves, and where to read them.
            extensions={"leaf_indexes": exc.leaf_indexes, "read_from": "/v1/log/leaves"},
        )
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
    if tiles.accepts_gzip(request.headers.get("accept-encoding")):
        # The spec asks for compressed bundles; JSON records shrink to about a fifth.
        return Response(
            gzip.compress(body, 6), media_type=TILE, headers={**headers, "Content-Encoding": "gzip"}
        )
    return Response(body, media_type=TILE, headers=headers)


@router.get(
    "/tile/{level}/{index:path}",
    summary="A hash tile: 256 hashes of one tree level (fewer when partial)",
    operation_id="getTile",
    response_class=Response,
    description="`level` is 0 … 63 and `index` is `<N>[.p/<W>]` as C2SP tlog-tiles writes them.",
    responses={**_binary("The tile's hashes, 32 bytes each"), **documented_errors(*_AUTH, 404, 422, 503)},
)
async def hash_tile(pool: Pool, client: Reader, level: Level, index: Index) -> Response:
    try:
        tile = tiles.parse_tile_path(level, index)
    except tiles.TilePathError as exc:
        return _no_such_tile(f"not a tile path: {exc}")
    async with pool.acquire() as conn:
        body = await tile_reads.hash_tile(conn, tile)
    if body is None:
        return _beyond(tile)
    # SHA-256 hashes do not compress: sent as they are, whatever the client accepts.
    return Response(body, media_type=TILE, headers={"Cache-Control": IMMUTABLE})
