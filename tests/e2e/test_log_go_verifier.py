"""The live registry's transparency log checked by the Go reference (tests/tools/tlogcheck
`verify`: golang.org/x/mod/sumdb/note and tlog, transparency-dev/merkle).

A stack on the real store signs agreements and reports over HTTP; the tree is integrated and
two checkpoints signed. Everything then comes over HTTP, as an outside verifier gets it: the
checkpoint, every event's record and inclusion proof, the consistency proof between the two
checkpoints. The Go program must accept all of it, checked against the log's verifier key known
beforehand (the development key's, not the one the registry serves), and reject each tampered
copy: a flipped byte in a proof hash, another leaf's record, a wrong tree size, a note signed by
another key. A Go toolchain missing or a failed build fails the test (tests/support/tlogcheck.py).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.settings import DEV_LOG_VERIFIER_KEY
from services.transparency import note
from services.transparency.merkle import MemoryTree
from tests.support.kafka import Brokers
from tests.support.log import integrate, write
from tests.support.stack import Stack, running_stack
from tests.support.tlogcheck import build_tlogcheck, run_tlogcheck

LOG_KEY = note.parse_verifier_key(DEV_LOG_VERIFIER_KEY)
Json = dict[str, Any]


@pytest.fixture
async def log_stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, kafka, topic, relay=False, projections=False) as stack:
        yield stack


async def checkpoint(stack: Stack) -> tuple[str, note.Checkpoint]:
    response = await stack.registry.post("/v1/log/checkpoints")
    assert response.status_code == 201, response.text
    opened, _ = note.open_note(response.text, [LOG_KEY])
    return response.text, note.Checkpoint.parse(opened.body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flip(text: str, at: int = 0) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at % len(raw)] ^= 0x01
    return b64(bytes(raw))


async def test_go_reference_verifies_the_live_log(log_stack: Stack) -> None:
    binary = build_tlogcheck()  # fails, never skips, if Go is missing or the build fails
    stack = log_stack
    await write(stack, agreements=4, reports=2)
    await integrate(stack.pool)
    old_text, old = await checkpoint(stack)
    await write(stack, agreements=5, reports=3)
    await integrate(stack.pool)
    # The served note, exactly as a verifier fetches it (GET /v1/log/checkpoint).
    await checkpoint(stack)
    served = await stack.registry.get("/v1/log/checkpoint")
    assert served.status_code == 200
    new_text = served.text
    opened, _ = note.open_note(new_text, [LOG_KEY])
    new = note.Checkpoint.parse(opened.body)
    assert new.size > old.size

    leaves = (await stack.registry.get("/v1/log/leaves", params={"start": 0, "end": new.size})).json()[
        "leaves"
    ]
    assert len(leaves) == new.size == await stack.pool.fetchval("SELECT count(*) FROM registry.events")
    inclusion: list[Json] = []
    for leaf in leaves:
        for size, root in ((new.size, None), (old.size, old.root)):
            if leaf["leaf_index"] >= size:
                continue
            response = await stack.registry.get(
                "/v1/log/proofs/inclusion", params={"event_id": leaf["event_id"], "tree_size": size}
            )
            assert response.status_code == 200, response.text
            proof = response.json()
            item: Json = {
                "leaf_data_b64": b64(leaf["record"].encode("utf-8")),  # Go hashes the record itself
                "index": proof["leaf_index"],
                "size": size,
                "proof": proof["hashes"],
            }
            if root is not None:
                item["root_b64"] = b64(root)
            inclusion.append(item)
    response = await stack.registry.get(
        "/v1/log/proofs/consistency", params={"from": old.size, "to": new.size}
    )
    assert response.status_code == 200, response.text
    consistency = [
        {
            "old_size": old.size,
            "old_root_b64": b64(old.root),
            "size": new.size,
            "proof": response.json()["hashes"],
        }
    ]
    for size in (1, 2, old.size - 1, new.size - 1, new.size):
        response = await stack.registry.get(
            "/v1/log/proofs/consistency", params={"from": size, "to": new.size}
        )
        older = await stack.registry.get(f"/v1/log/checkpoints/{size}")
        if older.status_code != 200:  # only signed sizes have a root to check against: recompute it
            tree = MemoryTree()
            tree.extend([leaf["record"].encode() for leaf in leaves[:size]])
            root = tree.root()
        else:
            root = note.Checkpoint.parse(note.open_note(older.text, [LOG_KEY])[0].body).root
        consistency.append(
            {
                "old_size": size,
                "old_root_b64": b64(root),
                "size": new.size,
                "proof": response.json()["hashes"],
            }
        )

    request: Json = {
        "verifier_key": LOG_KEY.key(),
        "origin": new.origin,
        "checkpoint": new_text,
        "inclusion": inclusion,
        "consistency": consistency,
    }
    started = time.perf_counter()
    honest = run_tlogcheck(binary, "verify", request=request)
    seconds = time.perf_counter() - started
    assert honest["checkpoint"]["ok"], honest["checkpoint"]
    assert honest["checkpoint"]["size"] == new.size and honest["checkpoint"]["root_b64"] == b64(new.root)
    rejected = [(item, r) for item, r in zip(inclusion + consistency, honest["inclusion"] + honest["consistency"], strict=True) if not r["ok"]]  # fmt: skip
    assert not rejected, rejected
    sizes = [len(item["proof"]) for item in inclusion]
    print(
        f"\nGo accepted {len(inclusion)} inclusion proofs ({min(sizes)}..{max(sizes)} hashes) and"
        f" {len(consistency)} consistency proofs of a {new.size}-leaf log in {seconds:.2f}s"
    )

    # Tampered copies, each rejected.
    # The last leaf: a wrong size changes its path (for some leaves, leaf 0 of sizes 33..63 say,
    # the path is the same whatever the size: the signed checkpoint binds the size, not the proof).
    honest_item = next(item for item in inclusion if "root_b64" not in item and item["index"] == new.size - 1)
    other_leaf = leaves[(honest_item["index"] + 1) % new.size]
    honest_c = consistency[0]
    impostor = note.Signer(LOG_KEY.name, Ed25519PrivateKey.generate())
    forged_note = note.sign_note(new.body(), [impostor])
    tampered_inclusion = [
        *(
            {**honest_item, "proof": [*honest_item["proof"][:i], flip(h, i), *honest_item["proof"][i + 1 :]]}
            for i, h in enumerate(honest_item["proof"])
        ),
        {**honest_item, "leaf_data_b64": b64(other_leaf["record"].encode())},  # a wrong leaf record
        {**honest_item, "leaf_data_b64": b64(honest_item_record(leaves, honest_item) + b" ")},
        {**honest_item, "size": new.size + 1, "root_b64": b64(new.root)},  # a wrong size
        {**honest_item, "size": new.size - 1, "root_b64": b64(new.root)},
    ]
    tampered_consistency = [
        {**honest_c, "proof": [flip(honest_c["proof"][0], 5), *honest_c["proof"][1:]]},
        {**honest_c, "old_size": old.size + 1},
        {**honest_c, "size": new.size * 2, "root_b64": b64(new.root)},
    ]
    verdict = run_tlogcheck(
        binary,
        "verify",
        request={
            "verifier_key": LOG_KEY.key(),
            "checkpoint": new_text,
            "inclusion": tampered_inclusion,
            "consistency": tampered_consistency,
        },
    )
    assert verdict["checkpoint"]["ok"]
    accepted = [
        item
        for item, r in zip(
            tampered_inclusion + tampered_consistency,
            verdict["inclusion"] + verdict["consistency"],
            strict=True,
        )
        if r["ok"]
    ]
    assert not accepted, [
        (i.get("size"), i.get("index"), i.get("old_size"), len(i["proof"]), i.get("root_b64"))
        for i in accepted
    ] + [old.size, new.size]
    assert len(verdict["inclusion"]) == len(tampered_inclusion) >= 5
    # A note signed by another key under the log's name: rejected, and so is what leans on it.
    forged = run_tlogcheck(
        binary,
        "verify",
        request={"verifier_key": LOG_KEY.key(), "checkpoint": forged_note, "inclusion": [honest_item]},
    )
    assert not forged["checkpoint"]["ok"] and "note.Open" in forged["checkpoint"]["error"]
    assert not forged["inclusion"][0]["ok"]
    # The old checkpoint's note, too, verifies in Go.
    assert run_tlogcheck(binary, "verify", request={"verifier_key": LOG_KEY.key(), "checkpoint": old_text})[
        "checkpoint"
    ]["ok"]


def honest_item_record(leaves: list[Json], item: Json) -> bytes:
    record: str = leaves[item["index"]]["record"]
    return record.encode()
