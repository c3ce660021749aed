"""The transparency log's proofs, as a client gets them (issue 14): over HTTP from the running
registry, on the tree the load phases grew, each checked here against a signed checkpoint.

Sizes are counted in hashes (32 bytes each); times are the HTTP round trip of the proof request
and the local verification.
"""

from __future__ import annotations

import base64
import contextlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from bench.stats import summary_ms
from services.transparency import merkle, note


@contextlib.asynccontextmanager
async def log_paused(database_url: str) -> AsyncIterator[None]:
    """The system without the transparency log, for a phase: no event is queued for the tree (the
    trigger is off), so the integrator finds nothing to do (one empty read per poll). Afterwards
    the phase's events are queued, so the tree still covers every one."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE registry.events DISABLE TRIGGER events_into_tree")
        try:
            yield
        finally:
            await conn.execute("ALTER TABLE registry.events ENABLE TRIGGER events_into_tree")
            await conn.execute(
                """INSERT INTO registry.tree_pending (position)
                   SELECT e.position FROM registry.events e
                   WHERE NOT EXISTS (SELECT 1 FROM registry.tree_leaves l WHERE l.position = e.position)
                   ON CONFLICT DO NOTHING"""
            )
    finally:
        await conn.close()


def _hashes(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


async def measure(registry_url: str, database_url: str, token: str, samples: int = 200) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=registry_url, headers=headers, timeout=30) as client:
        keys = (await client.get("/v1/log/keys")).json()
        verifier = note.parse_verifier_key(keys["verifier_key"])
        began = time.perf_counter()
        signed = await client.post("/v1/log/checkpoints")
        sign_ms = 1000 * (time.perf_counter() - began)
        signed.raise_for_status()
        latest = note.Checkpoint.parse(note.open_note(signed.text, [verifier])[0].body)
        size = latest.size
        rng = random.Random(14)
        inclusion_http: list[float] = []
        inclusion_verify: list[float] = []
        inclusion_sizes: list[int] = []
        for index in sorted(rng.randrange(size) for _ in range(min(samples, size))):
            leaf = (await client.get("/v1/log/leaves", params={"start": index, "end": index + 1})).json()[
                "leaves"
            ][0]
            began = time.perf_counter()
            response = await client.get(
                "/v1/log/proofs/inclusion", params={"position": leaf["position"], "tree_size": size}
            )
            inclusion_http.append(time.perf_counter() - began)
            proof = _hashes(response.json()["hashes"])
            began = time.perf_counter()
            merkle.verify_inclusion(
                size, latest.root, index, merkle.leaf_hash(leaf["record"].encode()), proof
            )
            inclusion_verify.append(time.perf_counter() - began)
            inclusion_sizes.append(len(proof))
        conn = await asyncpg.connect(database_url)
        try:
            older = [
                int(r["tree_size"])
                for r in await conn.fetch(
                    "SELECT tree_size FROM registry.checkpoints WHERE tree_size BETWEEN 1 AND $1 - 1", size
                )
            ]
        finally:
            await conn.close()
        consistency_http: list[float] = []
        consistency_verify: list[float] = []
        consistency_sizes: list[int] = []
        for old_size in older:
            text = (await client.get(f"/v1/log/checkpoints/{old_size}")).text
            old = note.Checkpoint.parse(note.open_note(text, [verifier])[0].body)
            began = time.perf_counter()
            response = await client.get("/v1/log/proofs/consistency", params={"from": old_size, "to": size})
            consistency_http.append(time.perf_counter() - began)
            proof = _hashes(response.json()["hashes"])
            began = time.perf_counter()
            merkle.verify_consistency(size, latest.root, old.size, old.root, proof)
            consistency_verify.append(time.perf_counter() - began)
            consistency_sizes.append(len(proof))

    def sizes(values: list[int]) -> dict[str, float]:
        return (
            {"min": min(values), "max": max(values), "mean": round(sum(values) / len(values), 1)}
            if values
            else {}
        )

    return {
        "tree_size": size,
        "checkpoint_sign_ms": round(sign_ms, 2),
        "inclusion": {
            "proofs": len(inclusion_sizes),
            "hashes": sizes(inclusion_sizes),
            "http_ms": summary_ms(inclusion_http),
            "verify_ms": summary_ms(inclusion_verify),
        },
        "consistency": {
            "proofs": len(consistency_sizes),
            "hashes": sizes(consistency_sizes),
            "http_ms": summary_ms(consistency_http),
            "verify_ms": summary_ms(consistency_verify),
        },
    }


def render(figures: dict[str, Any]) -> list[str]:
    """The section of latest.md."""
    inclusion, consistency = figures["inclusion"], figures["consistency"]

    def line(name: str, part: dict[str, Any]) -> str:
        if not part["proofs"]:
            return f"| {name} | 0 | — | — | — |"
        hashes, http, verify = part["hashes"], part["http_ms"], part["verify_ms"]
        return (
            f"| {name} | {part['proofs']} | {hashes['min']}–{hashes['max']} (mean {hashes['mean']}; "
            f"{32 * hashes['max']:,} bytes at most) | {http['p50']:.2f} / {http['p99']:.2f} | "
            f"{1000 * verify['p50']:.0f} µs |"
        )

    return [
        "",
        "## Transparency log: proofs as a client gets them",
        "",
        f"Tree of {figures['tree_size']:,} leaves (the events of the load phases); a checkpoint signed on demand "
        f"in {figures['checkpoint_sign_ms']:.1f} ms over HTTP; inclusion proofs of random leaves and consistency "
        "proofs from every older checkpoint to it, each verified here (bench/log_proofs.py).",
        "",
        "| proof | count | hashes | HTTP p50 / p99 ms | verify p50 |",
        "|---|---|---|---|---|",
        line("inclusion", inclusion),
        line("consistency", consistency),
    ]
