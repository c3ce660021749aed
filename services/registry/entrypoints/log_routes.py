"""The transparency log's HTTP API (docs/CONTRACT.md B11): checkpoints, proofs, leaves, keys and
cosignatures. Reads need `agreements:read`; signing a checkpoint on demand and handing in a
cosignature need `log:witness`.

Hashes travel as standard base64 (as in the checkpoint's root line); proofs are in RFC 9162's
order, as Go's golang.org/x/mod/sumdb/tlog checks them.
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from services.common import auth
from services.common.auth import Client
from services.common.auth.dependencies import require
from services.common.paging import json_with_list, render, within_bytes
from services.common.patterns import MAX_POSITION
from services.common.problems import documented_errors, problem
from services.registry.adapters.tree_integrator import sign_checkpoint, with_hashes
from services.registry.adapters.tree_integrator import tree_size as size_now
from services.registry.service_layer.event_store import StoredEvent
from services.transparency import merkle, note
from services.transparency.log import CheckpointSigner

router = APIRouter(prefix="/v1/log", tags=["transparency log"])
Reader = Depends(require(auth.READ))
Witness = Annotated[Client, Depends(require(auth.WITNESS))]
Size = Annotated[int, Query(ge=0, le=2**62, description="A tree size: the leaves counted from 0")]
MAX_LEAVES = 1000
NOTE = "text/plain; charset=utf-8"
# Every status each operation can answer (tests/unit/test_openapi_documents.py derives them).
_AUTH = (401, 403, 413, 429)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def log_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(log_pool)]


def _signer(request: Request) -> CheckpointSigner:
    signer: CheckpointSigner = request.app.state.log_signer
    return signer


async def _with_cosignatures(conn: Any, size: int, text: str) -> str:
    lines = await conn.fetch(
        "SELECT signature FROM registry.cosignatures WHERE tree_size = $1 ORDER BY witness", size
    )
    return text + "".join(str(r["signature"]) for r in lines)


async def _beyond_the_tree(conn: Any, size: int) -> Response | None:
    """The 422 for a size the tree has not reached yet, or None."""
    current = await size_now(conn)
    if size <= current:
        return None
    return problem(
        422, f"tree_size {size} is beyond the tree, which has {current} leaves", kind="beyond-the-tree"
    )


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (a C2SP signed note)",
    responses=documented_errors(*_AUTH, 404, 503),
)
async def latest_checkpoint(pool: Pool, client: Annotated[Client, Reader]) -> Response:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT tree_size, note FROM registry.checkpoints ORDER BY tree_size DESC LIMIT 1"
        )
        if row is None:
            return problem(404, "no checkpoint has been signed yet; POST /v1/log/checkpoints signs one")
        text = await _with_cosignatures(conn, row["tree_size"], row["note"])
    return Response(text, media_type=NOTE)


@router.get(
    "/checkpoints/{tree_size}",
    response_class=PlainTextResponse,
    summary="The checkpoint of one tree size",
    responses=documented_errors(*_AUTH, 404, 422, 503),
)
async def checkpoint_of(
    pool: Pool, tree_size: Annotated[int, Path(ge=0, le=2**62)], client: Annotated[Client, Reader]
) -> Response:
    async with pool.acquire() as conn:
        text = await conn.fetchval("SELECT note FROM registry.checkpoints WHERE tree_size = $1", tree_size)
        if text is None:
            return problem(404, f"no checkpoint of tree size {tree_size} was signed")
        text = await _with_cosignatures(conn, tree_size, text)
    return Response(text, media_type=NOTE)


@router.post(
    "/checkpoints",
    response_class=PlainTextResponse,
    status_code=201,
    summary="Sign a checkpoint of the tree now",
    responses=documented_errors(*_AUTH, 503),
)
async def checkpoint_now(request: Request, pool: Pool, client: Witness) -> Response:
    async with pool.acquire() as conn:
        _, text = await sign_checkpoint(conn, _signer(request))
    return Response(text, status_code=201, media_type=NOTE)


@router.get(
    "/proofs/inclusion",
    summary="An event's inclusion proof against a tree size",
    responses=documented_errors(*_AUTH, 404, 422, 503),
)
async def inclusion(
    pool: Pool,
    client: Annotated[Client, Reader],
    tree_size: Size,
    event_id: Annotated[uuid.UUID | None, Query(description="The event, by id ...")] = None,
    position: Annotated[int | None, Query(ge=1, le=MAX_POSITION, description="... or by position")] = None,
) -> Response:
    if (event_id is None) == (position is None):
        return problem(422, "give exactly one of event_id and position", kind="bad-proof-request")
    async with pool.acquire() as conn:
        if (refused := await _beyond_the_tree(conn, tree_size)) is not None:
            return refused
        row = await conn.fetchrow(
            """SELECT l.leaf_index, l.leaf_hash, e.position, e.event_id FROM registry.events e
               LEFT JOIN registry.tree_leaves l ON l.position = e.position
               WHERE e.event_id = $1 OR e.position = $2""",
            event_id,
            position,
        )
        if row is None:
            return problem(404, f"no event {event_id or position}")
        if row["leaf_index"] is None:
            return problem(
                404, "the event is not in the tree yet; retry in a moment", headers={"Retry-After": "1"}
            )
        index = int(row["leaf_index"])
        if index >= tree_size:
            return problem(
                422,
                f"the event is leaf {index}, not in a tree of {tree_size} leaves (it was appended later)",
                kind="not-in-that-tree",
                # RFC 9457 extension members: where the event is, for an auditor to report.
                extensions={"leaf_index": index, "tree_size": tree_size},
            )
        hashes = await with_hashes(conn, lambda read: merkle.inclusion_proof(tree_size, index, read))
    body = {
        "tree_size": tree_size,
        "leaf_index": index,
        "position": int(row["position"]),
        "event_id": str(row["event_id"]),
        "leaf_hash": _b64(bytes(row["leaf_hash"])),
        "hashes": [_b64(h) for h in hashes],
    }
    return _json(body)


@router.get(
    "/proofs/consistency",
    summary="A consistency proof between two tree sizes",
    responses=documented_errors(*_AUTH, 422, 503),
)
async def consistency(
    pool: Pool,
    client: Annotated[Client, Reader],
    old_size: Annotated[int, Query(alias="from", ge=1, le=2**62, description="The older size (at least 1)")],
    new_size: Annotated[int, Query(alias="to", ge=0, le=2**62)],
) -> Response:
    if old_size > new_size:
        return problem(422, f"from ({old_size}) must not exceed to ({new_size})", kind="bad-proof-request")
    async with pool.acquire() as conn:
        if (refused := await _beyond_the_tree(conn, new_size)) is not None:
            return refused
        hashes = await with_hashes(conn, lambda read: merkle.consistency_proof(new_size, old_size, read))
    return _json({"from": old_size, "to": new_size, "hashes": [_b64(h) for h in hashes]})


@router.get(
    "/leaves",
    summary="A range of leaves, each with its event's Kafka record",
    description=f"At most {MAX_LEAVES} leaves and `REGISTRY_MAX_PAGE_BYTES` of them (the first always): "
    "when the bytes end the answer early, `next_start` is the first leaf left out; ask again from there.",
    responses=documented_errors(*_AUTH, 422, 503),
)
async def leaves(
    request: Request,
    pool: Pool,
    client: Annotated[Client, Reader],
    start: Annotated[int, Query(ge=0, le=2**62)],
    end: Annotated[int, Query(ge=0, le=2**62, description=f"Exclusive; at most {MAX_LEAVES} leaves")],
) -> Response:
    if not start < end <= start + MAX_LEAVES:
        return problem(422, f"need start < end <= start + {MAX_LEAVES}", kind="bad-leaf-range")
    budget: int = request.app.state.max_page_bytes
    async with pool.acquire() as conn:
        if (refused := await _beyond_the_tree(conn, end)) is not None:
            return refused
        # The running total of the envelopes' bytes stops the rows in the database, so a range
        # of large events is never all fetched (ADR 0005); the cut below is on the exact bytes.
        rows = await conn.fetch(
            """SELECT leaf_index, leaf_hash, position, agreement_id, sequence, event_id, envelope FROM (
                   SELECT l.leaf_index, l.leaf_hash, e.position, e.agreement_id, e.sequence, e.event_id,
                          e.envelope,
                          coalesce(sum(octet_length(e.envelope)) OVER (
                              ORDER BY l.leaf_index ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                              AS before
                   FROM registry.tree_leaves l JOIN registry.events e ON e.position = l.position
                   WHERE l.leaf_index >= $1 AND l.leaf_index < $2
               ) range
               WHERE before < $3 OR before = 0
               ORDER BY leaf_index""",
            start,
            end,
            budget,
        )
    rendered = (
        render(
            {
                "leaf_index": int(r["leaf_index"]),
                "position": int(r["position"]),
                "event_id": str(r["event_id"]),
                "leaf_hash": _b64(bytes(r["leaf_hash"])),
                # The leaf's data: SHA-256(0x00 || these bytes) is leaf_hash.
                "record": StoredEvent(
                    r["position"], r["agreement_id"], r["sequence"], r["envelope"]
                ).message_text(),
            }
        )
        for r in rows
    )
    taken, _ = within_bytes(rendered, budget)
    # Leaves are contiguous from `start`, so the next one to ask for follows the last one sent.
    next_start = start + len(taken) if start + len(taken) < end else None
    return json_with_list({"next_start": next_start}, "leaves", taken)


@router.get(
    "/keys",
    summary="The keys that sign checkpoints, and the witnesses accepted",
    responses=documented_errors(*_AUTH),
)
async def keys(request: Request, client: Annotated[Client, Reader]) -> Response:
    signer = _signer(request)
    state = request.app.state
    return _json(
        {
            "origin": signer.origin,
            "verifier_key": signer.verifier_key,
            "retired_verifier_keys": list(state.log_retired_keys),
            "witness_verifier_keys": [w.key() for w in state.log_witnesses],
        }
    )


@router.post(
    "/cosignatures",
    status_code=201,
    summary="Hand in a witness's cosignature of a checkpoint",
    responses=documented_errors(*_AUTH, 400, 409, 422, 503),
    openapi_extra={
        "requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def cosign(
    request: Request, pool: Pool, client: Witness, text: Annotated[str, Body(media_type="text/plain")] = ""
) -> Response:
    signer = _signer(request)
    witnesses: list[note.Verifier] = list(request.app.state.log_witnesses)
    log_verifier = note.parse_verifier_key(signer.verifier_key)
    try:
        opened, verified = note.open_note(text, [log_verifier, *witnesses])
        checkpoint = note.Checkpoint.parse(opened.body)
    except (note.NoteError, ValueError) as exc:
        return problem(422, f"not a checkpoint signed by this log: {exc}", kind="bad-cosignature")
    names = {v.name for v in verified}
    if signer.name not in names:
        return problem(422, "the note does not carry this log's valid signature", kind="bad-cosignature")
    cosigners = [s for s in verified if s.name != signer.name]
    if not cosigners:
        return problem(422, "no signature of a known witness verifies on this note", kind="bad-cosignature")
    async with pool.acquire() as conn, conn.transaction():
        stored = await conn.fetchval(
            "SELECT note FROM registry.checkpoints WHERE tree_size = $1", checkpoint.size
        )
        if stored is None or note.open_note(stored, [log_verifier])[0].body != opened.body:
            return problem(
                409,
                f"this log signed no such checkpoint of tree size {checkpoint.size}",
                kind="unknown-checkpoint",
            )
        for signature in cosigners:
            await conn.execute(
                """INSERT INTO registry.cosignatures (tree_size, witness, signature) VALUES ($1, $2, $3)
                   ON CONFLICT (tree_size, witness) DO NOTHING""",
                checkpoint.size,
                signature.name,
                signature.line(),
            )
    return _json({"tree_size": checkpoint.size, "witnesses": sorted(s.name for s in cosigners)}, 201)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)
