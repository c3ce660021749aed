"""The transparency log on the real store (migration 008, services/registry/adapters/tree_integrator.py,
the /v1/log routes): every event becomes a leaf, the served proofs verify against signed
checkpoints, bad requests get problem+json, and what the log wrote cannot be rewritten."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import asyncpg
import pytest

from services.audit.kafkalog import TopicReader
from services.common.kafka_admin import TOPIC_CONFIG, ensure_topic
from services.registry.adapters.tree_integrator import (
    NotLeader,
    TreeIntegrator,
    integrate_batch,
    root_of,
)
from services.registry.entrypoints.app import log_signer_from_settings
from services.registry.entrypoints.relay_main import checkpoint_publisher
from services.registry.settings import RegistrySettings
from services.transparency import merkle, note
from tests.support.kafka import Brokers, settings_of
from tests.support.log import integrate, write
from tests.support.stack import Stack, running_stack


@pytest.fixture
async def log_stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, kafka, topic, relay=False, projections=False) as stack:
        yield stack


async def _checkpoint(stack: Stack) -> tuple[note.Checkpoint, str]:
    response = await stack.registry.post("/v1/log/checkpoints")
    assert response.status_code == 201, response.text
    keys = (await stack.registry.get("/v1/log/keys")).json()
    opened, _ = note.open_note(response.text, [note.parse_verifier_key(keys["verifier_key"])])
    return note.Checkpoint.parse(opened.body), response.text


def _hashes(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


async def test_every_event_becomes_a_leaf_and_every_proof_verifies(log_stack: Stack) -> None:
    stack = log_stack
    await write(stack, 3, 2)
    first_count = await integrate(stack.pool)
    old, _ = await _checkpoint(stack)
    await write(stack, 2, 3)
    await integrate(stack.pool)
    new, text = await _checkpoint(stack)
    events = await stack.pool.fetchval("SELECT count(*) FROM registry.events")
    assert old.size == first_count and new.size == events
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.tree_pending") == 0
    # The root is the RFC 6962 root of the served records, recomputed here from them alone.
    leaves = (await stack.registry.get("/v1/log/leaves", params={"start": 0, "end": new.size})).json()[
        "leaves"
    ]
    tree = merkle.MemoryTree()
    tree.extend([leaf["record"].encode() for leaf in leaves])
    assert tree.root(new.size) == new.root and tree.root(old.size) == old.root
    assert [leaf["leaf_index"] for leaf in leaves] == list(range(new.size))
    # Every event's inclusion proof, by id and by position, against both checkpoints.
    for leaf in leaves:
        for size, root in ((old.size, old.root), (new.size, new.root)):
            if leaf["leaf_index"] >= size:
                continue
            by_id = await stack.registry.get(
                "/v1/log/proofs/inclusion", params={"event_id": leaf["event_id"], "tree_size": size}
            )
            assert by_id.status_code == 200, by_id.text
            proof = by_id.json()
            merkle.verify_inclusion(
                size,
                root,
                proof["leaf_index"],
                merkle.leaf_hash(leaf["record"].encode()),
                _hashes(proof["hashes"]),
            )
    by_position = await stack.registry.get(
        "/v1/log/proofs/inclusion", params={"position": leaves[0]["position"], "tree_size": new.size}
    )
    assert by_position.json()["leaf_index"] == 0
    consistency = await stack.registry.get(
        "/v1/log/proofs/consistency", params={"from": old.size, "to": new.size}
    )
    merkle.verify_consistency(new.size, new.root, old.size, old.root, _hashes(consistency.json()["hashes"]))
    # The served latest checkpoint is the one just signed; signing again at the same size gives it again.
    latest = await stack.registry.get("/v1/log/checkpoint")
    assert latest.text == text
    # When it was signed: Last-Modified, the stored issued_at (the note carries no time).
    issued_at = await stack.pool.fetchval(
        "SELECT issued_at FROM registry.checkpoints WHERE tree_size = $1", new.size
    )
    for served in (latest, await stack.registry.get(f"/v1/log/checkpoints/{new.size}")):
        assert parsedate_to_datetime(served.headers["last-modified"]) == issued_at.replace(microsecond=0)
    assert (await stack.registry.post("/v1/log/checkpoints")).text == text


async def test_bad_requests_get_problems_and_change_nothing(log_stack: Stack) -> None:
    stack = log_stack
    await write(stack, 2, 1)
    await integrate(stack.pool)
    size = int(await stack.pool.fetchval("SELECT count(*) FROM registry.tree_leaves"))
    last = await stack.pool.fetchrow(
        "SELECT e.event_id FROM registry.events e ORDER BY position DESC LIMIT 1"
    )
    assert last is not None
    cases: list[tuple[str, dict[str, str | int], int]] = [
        ("/v1/log/proofs/inclusion", {"event_id": str(last["event_id"]), "tree_size": size + 1}, 422),
        ("/v1/log/proofs/inclusion", {"event_id": str(last["event_id"]), "tree_size": size - 1}, 422),
        ("/v1/log/proofs/inclusion", {"event_id": str(uuid.uuid4()), "tree_size": size}, 404),
        (
            "/v1/log/proofs/inclusion",
            {"event_id": str(last["event_id"]), "position": 1, "tree_size": size},
            422,
        ),
        ("/v1/log/proofs/inclusion", {"tree_size": size}, 422),
        ("/v1/log/proofs/inclusion", {"event_id": "not-a-uuid", "tree_size": size}, 422),
        ("/v1/log/proofs/consistency", {"from": size, "to": size - 1}, 422),
        ("/v1/log/proofs/consistency", {"from": 0, "to": size + 1}, 422),
        ("/v1/log/proofs/consistency", {"from": -1, "to": size}, 422),
        ("/v1/log/proofs/consistency", {"from": 0, "to": size}, 422),
        ("/v1/log/leaves", {"start": 0, "end": size + 1}, 422),
        ("/v1/log/leaves", {"start": 2, "end": 2}, 422),
        ("/v1/log/checkpoints/999999", {}, 404),
    ]
    before = await stack.pool.fetchval("SELECT count(*) FROM registry.checkpoints")
    for path, params, status in cases:
        response = await stack.registry.get(path, params=params)
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), (path, params)
        assert response.json()["status"] == status
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.checkpoints") == before
    # A cosignature that is not this log's checkpoint, or carries no known witness, changes nothing.
    junk = await stack.registry.post(
        "/v1/log/cosignatures", content="hello\n", headers={"content-type": "text/plain"}
    )
    assert junk.status_code == 422 and junk.headers["content-type"].startswith("application/problem+json")
    _, text = await _checkpoint(stack)
    unwitnessed = await stack.registry.post(
        "/v1/log/cosignatures", content=text, headers={"content-type": "text/plain"}
    )
    assert unwitnessed.status_code == 422
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.cosignatures") == 0
    # Reading the log needs a token.
    anonymous = await stack.registry.get("/v1/log/checkpoint", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_the_log_cannot_be_rewritten_and_a_deposed_integrator_writes_nothing(log_stack: Stack) -> None:
    stack = log_stack
    await write(stack, 1, 1)
    await integrate(stack.pool)
    await _checkpoint(stack)
    for statement in (
        "UPDATE registry.tree_leaves SET leaf_hash = leaf_hash WHERE leaf_index = 0",
        "DELETE FROM registry.tree_hashes WHERE hash_index = 0",
        "TRUNCATE registry.tree_leaves",
        "UPDATE registry.checkpoints SET note = note",
        "DELETE FROM registry.checkpoints",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await stack.pool.execute(statement)
    await write(stack, 1, 0)
    async with stack.pool.acquire() as conn:
        # Without the lock (another integrator leads, or led and this one lost its session).
        with pytest.raises(NotLeader):
            await integrate_batch(conn, 100)
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.tree_pending") > 0


async def test_events_appended_concurrently_all_become_leaves_once(log_stack: Stack) -> None:
    stack = log_stack

    async def integrating(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await integrate(stack.pool)
            await asyncio.sleep(0.01)

    stop = asyncio.Event()
    task = asyncio.create_task(integrating(stop))
    await asyncio.gather(*(write(stack, 2, 2) for _ in range(6)))
    stop.set()
    await task
    await integrate(stack.pool)
    rows = await stack.pool.fetch("SELECT leaf_index, position FROM registry.tree_leaves ORDER BY leaf_index")
    events = await stack.pool.fetch("SELECT position FROM registry.events")
    assert [r["leaf_index"] for r in rows] == list(range(len(events)))
    assert sorted(r["position"] for r in rows) == sorted(r["position"] for r in events)
    async with stack.pool.acquire() as conn:
        stored = await root_of(conn, len(rows))
    records = await stack.registry.get("/v1/log/leaves", params={"start": 0, "end": len(rows)})
    tree = merkle.MemoryTree()
    tree.extend([leaf["record"].encode() for leaf in records.json()["leaves"]])
    assert tree.root() == stored


async def test_the_integrator_signs_checkpoints_and_publishes_them(log_stack: Stack, kafka: Brokers) -> None:
    stack = log_stack
    await write(stack, 2, 1)
    settings = RegistrySettings(
        database_url=stack.database_url,
        **settings_of(kafka.relay),
        log_checkpoint_topic=f"agreements.checkpoints.test-{uuid.uuid4().hex[:8]}",
    )
    # Provisioned beside the events topic: the relay's principal may not create topics.
    await ensure_topic(kafka.admin, settings.log_checkpoint_topic, 1, TOPIC_CONFIG)
    signer = log_signer_from_settings(settings)
    stop = asyncio.Event()
    async with checkpoint_publisher(settings, signer.origin) as publish:
        integrator = TreeIntegrator(
            stack.pool, signer, checkpoint_seconds=0.1, poll_seconds=0.05, publish=publish
        )
        task = asyncio.create_task(integrator.run(stop))
        events = await stack.pool.fetchval("SELECT count(*) FROM registry.events")
        for _ in range(200):
            if await stack.pool.fetchval("SELECT max(tree_size) FROM registry.checkpoints") == events:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        stop.set()
        await task
    async with TopicReader(kafka.audit, settings.log_checkpoint_topic) as reader:
        ends = await reader.end_offsets()
        records = [r async for batch in reader.read(await reader.beginning_offsets(), ends) for r in batch]
    verifier = note.parse_verifier_key(signer.verifier_key)
    published = [note.Checkpoint.parse(note.open_note(r.value, [verifier])[0].body) for r in records]
    assert published and published[-1].size == events
    assert all(r.key == signer.origin.encode() for r in records)
    stored = await stack.pool.fetchval("SELECT note FROM registry.checkpoints WHERE tree_size = $1", events)
    assert records[-1].value.decode() == stored
