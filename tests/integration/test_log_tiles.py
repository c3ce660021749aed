"""The log served as C2SP tlog-tiles (docs/CONTRACT.md B11, "Tiles") by a live registry on the real
store: hash tiles equal to the leaves and stored hashes, partial tiles the prefixes of larger ones,
entry bundles whose entries hash to the leaves, the caching headers, who may read, malformed and
hostile paths (a 404 problem, never a 500), a record over 65,535 bytes (422, the hash tiles whole),
and an inclusion proof computed from the tiles alone, with its bytes against the proof API's."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from services.audit.settings import DEV_LOG_VERIFIER_KEY
from services.transparency import merkle, note, tiles
from tests.integration.test_bounded_reads import large_signing
from tests.support.kafka import Brokers
from tests.support.log import integrate
from tests.support.stack import Stack, running_stack
from tests.support.tiles import write_events

LOG_KEY = note.parse_verifier_key(DEV_LOG_VERIFIER_KEY)
PREFIX = "/v1/log/tiles"
IMMUTABLE = "max-age=31536000, immutable"


@pytest.fixture
async def log_stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, kafka, topic, relay=False, projections=False) as stack:
        yield stack


def mth(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962's MTH over nodes already hashed (leaf hashes, or a tile's hashes)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(mth(hashes[:k]), mth(hashes[k:]))


def split(tile: bytes) -> list[bytes]:
    assert len(tile) % 32 == 0
    return [tile[i : i + 32] for i in range(0, len(tile), 32)]


def entries(bundle: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(bundle):
        length = int.from_bytes(bundle[at : at + 2], "big")
        out.append(bundle[at + 2 : at + 2 + length])
        at += 2 + length
    assert at == len(bundle)
    return out


async def get(stack: Stack, path: str, **headers: str) -> httpx.Response:
    return await stack.registry.get(f"{PREFIX}/{path}", headers=headers)


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, (response.request.url, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_tiles_and_bundles_are_the_log(log_stack: Stack) -> None:
    stack = log_stack
    # Before any event or checkpoint: nothing to serve.
    assert_not_found(await get(stack, "checkpoint"))
    assert_not_found(await get(stack, "tile/0/000.p/1"))
    assert_not_found(await get(stack, "tile/entries/000.p/1"))

    written = await write_events(stack, agreements=30, reports=9)  # 300 events: one full tile
    assert written == 300
    await integrate(stack.pool, batch=100)
    assert (await stack.registry.post("/v1/log/checkpoints")).status_code == 201
    checkpoint = await get(stack, "checkpoint")
    assert checkpoint.status_code == 200
    assert checkpoint.text == (await stack.registry.get("/v1/log/checkpoint")).text
    assert checkpoint.headers["content-type"] == "text/plain; charset=utf-8"
    assert checkpoint.headers["cache-control"] == "max-age=2"
    opened, _ = note.open_note(checkpoint.text, [LOG_KEY])
    head = note.Checkpoint.parse(opened.body)
    size = head.size
    assert 256 < size < 512  # the events, and the parties the first signing registered
    rows = await stack.pool.fetch("SELECT leaf_hash FROM registry.tree_leaves ORDER BY leaf_index")
    leaf_hashes = [bytes(r["leaf_hash"]) for r in rows]
    width = size - 256

    # Level 0: the leaf hashes; a partial tile is the prefix of any wider one.
    full = await get(stack, "tile/0/000")
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["cache-control"] == IMMUTABLE
    assert "content-encoding" not in full.headers  # hashes do not compress: never gzipped
    assert split(full.content) == leaf_hashes[:256]
    partial = await get(stack, f"tile/0/001.p/{width}")
    assert partial.status_code == 200 and partial.headers["cache-control"] == IMMUTABLE
    assert split(partial.content) == leaf_hashes[256:]
    assert (await get(stack, "tile/0/001.p/5")).content == partial.content[: 5 * 32]
    assert (await get(stack, "tile/0/000.p/17")).content == full.content[: 17 * 32]
    # Level 1: the hash of the first full level-0 tile; with it, the checkpoint's root.
    above = await get(stack, "tile/1/000.p/1")
    assert above.status_code == 200
    assert above.content == mth(leaf_hashes[:256])
    assert merkle.node_hash(above.content, mth(split(partial.content))) == head.root
    # What the tree does not hold (yet): the full tile 001, a wider partial, level 2.
    for path in (
        "tile/0/001",
        f"tile/0/001.p/{width + 1}",
        "tile/0/002.p/1",
        "tile/1/000",
        "tile/1/000.p/2",
        "tile/2/000.p/1",
        "tile/63/000.p/1",
        "tile/entries/001",
        f"tile/entries/001.p/{width + 1}",
        "tile/entries/x999/x999/x999/x999/x999/x999/999",
    ):
        missing = await get(stack, path)
        assert_not_found(missing)
        assert missing.headers["cache-control"] == "no-store"

    # Entry bundles: each entry is a leaf's record, hashing to its leaf hash.
    plain = await get(stack, "tile/entries/000", **{"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["cache-control"] == IMMUTABLE
    records = entries(plain.content)
    assert [merkle.leaf_hash(r) for r in records] == leaf_hashes[:256]
    leaves = (await stack.registry.get("/v1/log/leaves", params={"start": 0, "end": 256})).json()["leaves"]
    assert [r.decode() for r in records] == [leaf["record"] for leaf in leaves]
    assert all(json.loads(r)["position"] == leaf["position"] for r, leaf in zip(records, leaves, strict=True))
    # gzip when the client takes it: smaller on the wire, the same bytes once decoded.
    async with stack.registry.stream(
        "GET", f"{PREFIX}/tile/entries/000", headers={"Accept-Encoding": "gzip"}
    ) as zipped:
        wire = b"".join([chunk async for chunk in zipped.aiter_raw()])
        assert zipped.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in zipped.headers["vary"].lower()
    assert gzip.decompress(wire) == plain.content
    assert len(wire) < len(plain.content) / 2
    tail = await get(stack, f"tile/entries/001.p/{width}")
    assert [merkle.leaf_hash(r) for r in entries(tail.content)] == leaf_hashes[256:]

    # An inclusion proof from the tiles alone (the tiles Go's tlog would read), against the API's.
    index = 7
    planned = tiles.inclusion_tiles(size, index)
    fetched = {}
    for tile in planned:
        answer = await get(stack, tile.path())
        assert answer.status_code == 200, tile
        fetched[tile.level, tile.index] = answer.content

    def read(indexes: Sequence[int]) -> list[bytes]:
        out = []
        for x in indexes:
            level, n = merkle.split_stored_hash_index(x)
            base, up = divmod(level, 8)
            first = n << up  # the hashes under it at the tile's level
            hashes = split(fetched[base, first // 256])
            out.append(mth(hashes[first % 256 : first % 256 + (1 << up)]))
        return out

    from_tiles = merkle.inclusion_proof(size, index, read)
    merkle.verify_inclusion(size, head.root, index, leaf_hashes[index], from_tiles)
    api = await stack.registry.get("/v1/log/proofs/inclusion", params={"tree_size": size, "position": 8})
    assert api.status_code == 200
    assert api.json()["leaf_index"] == index
    assert from_tiles == [base64.b64decode(h) for h in api.json()["hashes"]]
    print(
        f"\none inclusion proof in a tree of {size}: tiles {sum(len(c) for c in fetched.values()):,} bytes "
        f"({len(planned)} tiles), proof API {len(api.content):,} bytes of JSON"
    )


async def test_who_may_read_the_tiles_and_what_paths_name_none(log_stack: Stack) -> None:
    stack = log_stack
    await write_events(stack, agreements=2, reports=1)
    await integrate(stack.pool)
    assert (await stack.registry.post("/v1/log/checkpoints")).status_code == 201
    paths = ("checkpoint", "tile/0/000.p/4", "tile/entries/000.p/4")
    for path in paths:
        assert (await get(stack, path)).status_code == 200, path
    async with httpx.AsyncClient(base_url=stack.registry_url, timeout=30) as anonymous:
        for path in paths:
            refused = await anonymous.get(f"{PREFIX}/{path}")
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
        writer = stack.bearer(stack.token(scopes=["agreements:sign"]))
        for path in paths:
            assert (await anonymous.get(f"{PREFIX}/{path}", headers=writer)).status_code == 403, path
    # Hostile and malformed paths: a 404 problem each, nothing else.
    for path in (
        "tile/00/000.p/1",
        "tile/64/000.p/1",
        "tile/-1/000.p/1",
        "tile/1e1/000.p/1",
        "tile/0/0.p/1",
        "tile/0/0000.p/1",
        "tile/0/-001.p/1",
        "tile/0/x000/000.p/1",
        "tile/0/001/000",
        "tile/0/x001",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/0/000.p/",
        "tile/0/000.p/1/",
        "tile/0/",
        "tile/entries/",
        "tile/entries/000.p/0",
        "tile/entries/0",
        "tile/0/" + "x999/" * 6 + "999",
        "tile/0/" + "x123/" * 2000 + "456",
        "tile/0/" + "9" * 4000,
        "tile/0/000%2Ep%2F0",
        "tile/0/٠٠٠.p/1",
        "tile/entries/x/000",
    ):
        assert_not_found(await get(stack, path))
    # A NUL in any parameter is refused before any route sees it, as everywhere (B6).
    nul = await get(stack, "tile/%00/000")
    assert nul.status_code == 422 and nul.json()["type"].endswith("/validation")


async def test_a_record_over_65535_bytes_is_refused_from_bundles_only(log_stack: Stack) -> None:
    stack = log_stack
    await write_events(stack, agreements=3, reports=0)
    large = (await stack.sign(large_signing()))["agreement_id"]
    await write_events(stack, agreements=2, reports=0)
    integrated = _counter(
        (await stack.registry.get("/metrics")).text, "log_leaves_too_large_for_bundles_total"
    )
    await integrate(stack.pool)
    # The integrator (here in this process, as in the relay's) counts the leaf no bundle can hold.
    assert (
        _counter((await stack.registry.get("/metrics")).text, "log_leaves_too_large_for_bundles_total")
        == integrated + 1
    )
    size = int(await stack.pool.fetchval("SELECT count(*) FROM registry.tree_leaves"))
    position = await stack.pool.fetchval(
        "SELECT position FROM registry.events WHERE agreement_id = $1 AND sequence = 1", large
    )
    index = int(
        await stack.pool.fetchval("SELECT leaf_index FROM registry.tree_leaves WHERE position = $1", position)
    )
    record = (await stack.registry.get("/v1/log/leaves", params={"start": index, "end": index + 1})).json()[
        "leaves"
    ][0]["record"]
    assert len(record.encode()) > 200 * 1024
    metrics = await stack.registry.get("/metrics")
    before = _counter(metrics.text, "log_entry_bundles_too_large_total")

    refused = await get(stack, f"tile/entries/000.p/{size}")
    assert refused.status_code == 422
    body = refused.json()
    assert body["type"].endswith("/entry-too-large")
    assert body["leaf_indexes"] == [index]
    assert body["read_from"] == "/v1/log/leaves"
    assert "cache-control" not in refused.headers
    after = _counter((await stack.registry.get("/metrics")).text, "log_entry_bundles_too_large_total")
    assert after == before + 1
    # The bundles before it are served; the hash tiles hold it as every other leaf.
    before_it = await get(stack, f"tile/entries/000.p/{index}")
    assert before_it.status_code == 200 and len(entries(before_it.content)) == index
    hashes = await get(stack, f"tile/0/000.p/{size}")
    assert hashes.status_code == 200
    assert split(hashes.content)[index] == hashlib.sha256(b"\x00" + record.encode()).digest()


def _counter(exposition: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in exposition.splitlines() if line.startswith(f"{name} ")]
    return values[0] if values else 0.0
