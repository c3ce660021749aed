"""The transparency log's HTTP API (docs/CONTRACT.md B11): checkpoints, proofs, leaves, keys and
cosignatures. Reads need `agreements:read`; signing a checkpoint on demand and handing in a
cosignature need `log:witness`.

Hashes travel as standard base64 (as in the checkpoint's root line); proofs are in RFC 9162's
order, as Go's golang.org/x/mod/sumdb/tlog checks them. The SQL is in
services/registry/adapters/log_reads.py and tree_integrator.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from email.utils import format_datetime
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, RootModel

from services.common import auth
from services.common.auth import Client
from services.common.auth.dependencies import require
from services.common.openapi import ref
from services.common.paging import json_with_list, within_bytes
from services.common.patterns import MAX_POSITION
from services.common.problems import documented_errors, problem
from services.registry.adapters import log_reads
from services.registry.adapters.tree_integrator import sign_checkpoint, with_hashes
from services.registry.adapters.tree_integrator import tree_size as size_now
from services.registry.entrypoints.routes import json_answer
from services.registry.service_layer.event_store import StoredEvent
from services.transparency import merkle, note
from services.transparency.log import CheckpointSigner
from services.transparency.policy import Policy

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1/log", tags=["transparency log"])
TAG = "transparency log"
Reader = Depends(require(auth.READ))
Witness = Annotated[Client, Depends(require(auth.WITNESS))]
Size = Annotated[int, Query(ge=0, le=2**62, description="A tree size: the leaves counted from 0")]
MAX_LEAVES = 1000
NOTE = "text/plain; charset=utf-8"
# Every status each operation can answer (tests/unit/test_openapi_documents.py derives them).
_AUTH = (401, 403, 413, 429)


class LogAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True, validate_by_name=True)


class SignedNote(RootModel[str]):
    """A C2SP signed note (text/plain): a checkpoint of the tree, signed by the log, and by the
    witnesses that cosigned it."""


class InclusionProof(LogAnswer):
    tree_size: int
    leaf_index: int
    position: int
    event_id: str
    leaf_hash: str = Field(description="Base64 of SHA-256(0x00 || record)")
    hashes: list[str] = Field(description="Base64 hashes, in RFC 9162's order")


class ConsistencyProof(LogAnswer):
    from_: int = Field(alias="from")
    to: int
    hashes: list[str]


class Leaf(LogAnswer):
    leaf_index: int
    position: int
    event_id: str
    leaf_hash: str
    record: str = Field(description="The event's Kafka record: SHA-256(0x00 || its bytes) is leaf_hash")


class LeafPage(LogAnswer):
    leaves: list[Leaf]
    next_start: int | None = Field(description="The first leaf left out, when the bytes ended the page early")


class LogKeys(LogAnswer):
    origin: str
    verifier_key: str
    retired_verifier_keys: list[str]
    witness_verifier_keys: list[str] = Field(
        description="Witnesses' keys (C2SP vkeys): type 0x04 cosignature/v1, or type 0x01 (accepted for new "
        "checkpoints until legacy_cosignatures_until)"
    )
    policy: str | None = Field(
        description="The witnessing policy (C2SP tlog-policy text) the registry applies, or null"
    )
    legacy_cosignatures_until: str = Field(
        description="The last day (UTC) type 0x01 cosignatures are accepted"
    )


class Cosigned(LogAnswer):
    tree_size: int
    witnesses: list[str]


LAST_MODIFIED = {
    "Last-Modified": {
        "description": "When the log signed the checkpoint (the registry's word: the note carries no time)",
        "schema": {"type": "string"},
    },
    "Witness-Quorum": {
        "description": "`met` or `not-met`: whether the cosignatures served make the policy's quorum "
        "(absent when the registry has no policy)",
        "schema": {"type": "string", "enum": ["met", "not-met"]},
    },
}


def _note_answer(status: int, description: str, served: bool = True) -> dict[int | str, dict[str, Any]]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"text/plain": {"schema": ref(SignedNote)}},
    }
    if served:
        answer["headers"] = LAST_MODIFIED
    return {status: answer}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def log_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(log_pool)]


def _signer(request: Request) -> CheckpointSigner:
    signer: CheckpointSigner = request.app.state.log_signer
    return signer


async def _beyond_the_tree(conn: Any, size: int) -> Response | None:
    """The 422 for a size the tree has not reached yet, or None."""
    current = await size_now(conn)
    if size <= current:
        return None
    return problem(
        422, f"tree_size {size} is beyond the tree, which has {current} leaves", kind="beyond-the-tree"
    )


def quorum_header(policy: Policy | None, text: str) -> dict[str, str]:
    """`Witness-Quorum: met|not-met` for a served note, under the registry's policy (none: no
    header). Every cosignature served was verified when it was stored."""
    if policy is None:
        return {}
    try:
        met = policy.quorum_met(policy.cosigners(text))
    except note.NoteError:
        log.error("a served checkpoint does not open under the policy", note=text[:200])
        met = False
    return {"Witness-Quorum": "met" if met else "not-met"}


def _served(request: Request, served: log_reads.ServedCheckpoint) -> Response:
    """A stored checkpoint's note; `Last-Modified`: when the log signed it (the note carries no
    time; this one is the registry's word, outside what is signed)."""
    return Response(
        served.note,
        media_type=NOTE,
        headers={
            "Last-Modified": format_datetime(served.issued_at.astimezone(dt.UTC), usegmt=True),
            **quorum_header(request.app.state.log_policy, served.note),
        },
    )


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (a C2SP signed note)",
    operation_id="getCheckpoint",
    responses={**_note_answer(200, "The latest checkpoint"), **documented_errors(*_AUTH, 404, 503)},
)
async def latest_checkpoint(request: Request, pool: Pool, client: Annotated[Client, Reader]) -> Response:
    async with pool.acquire() as conn:
        served = await log_reads.latest_checkpoint(conn)
    if served is None:
        return problem(404, "no checkpoint has been signed yet; POST /v1/log/checkpoints signs one")
    return _served(request, served)


@router.get(
    "/checkpoints/{tree_size}",
    response_class=PlainTextResponse,
    summary="The checkpoint of one tree size",
    operation_id="getCheckpointOfSize",
    responses={**_note_answer(200, "The checkpoint"), **documented_errors(*_AUTH, 404, 422, 503)},
)
async def checkpoint_of(
    request: Request,
    pool: Pool,
    tree_size: Annotated[int, Path(ge=0, le=2**62)],
    client: Annotated[Client, Reader],
) -> Response:
    async with pool.acquire() as conn:
        served = await log_reads.checkpoint(conn, tree_size)
    if served is None:
        return problem(404, f"no checkpoint of tree size {tree_size} was signed")
    return _served(request, served)


@router.post(
    "/checkpoints",
    response_class=PlainTextResponse,
    status_code=201,
    summary="Sign a checkpoint of the tree now",
    operation_id="signCheckpoint",
    responses={**_note_answer(201, "The checkpoint, signed", served=False), **documented_errors(*_AUTH, 503)},
)
async def checkpoint_now(request: Request, pool: Pool, client: Witness) -> Response:
    async with pool.acquire() as conn:
        _, text = await sign_checkpoint(conn, _signer(request))
    return Response(text, status_code=201, media_type=NOTE)


@router.get(
    "/proofs/inclusion",
    summary="An event's inclusion proof against a tree size",
    operation_id="getInclusionProof",
    response_model=InclusionProof,
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
        row = await log_reads.event_leaf(conn, event_id, position)
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
    proof = InclusionProof.model_construct(
        tree_size=tree_size,
        leaf_index=index,
        position=int(row["position"]),
        event_id=str(row["event_id"]),
        leaf_hash=_b64(bytes(row["leaf_hash"])),
        hashes=[_b64(h) for h in hashes],
    )
    return json_answer(proof)


@router.get(
    "/proofs/consistency",
    summary="A consistency proof between two tree sizes",
    operation_id="getConsistencyProof",
    response_model=ConsistencyProof,
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
    return json_answer(
        ConsistencyProof.model_construct(from_=old_size, to=new_size, hashes=[_b64(h) for h in hashes])
    )


@router.get(
    "/leaves",
    summary="A range of leaves, each with its event's Kafka record",
    operation_id="listLeaves",
    response_model=LeafPage,
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
        rows = await log_reads.leaves(conn, start, end, budget)
    rendered = (
        Leaf.model_construct(
            leaf_index=int(r["leaf_index"]),
            position=int(r["position"]),
            event_id=str(r["event_id"]),
            leaf_hash=_b64(bytes(r["leaf_hash"])),
            # The leaf's data: SHA-256(0x00 || these bytes) is leaf_hash.
            record=StoredEvent(r["position"], r["agreement_id"], r["sequence"], r["envelope"]).message_text(),
        )
        .model_dump_json()
        .encode()
        for r in rows
    )
    taken, _ = within_bytes(rendered, budget)
    # Leaves are contiguous from `start`, so the next one to ask for follows the last one sent.
    next_start = start + len(taken) if start + len(taken) < end else None
    return json_with_list({"next_start": next_start}, "leaves", taken)


@router.get(
    "/keys",
    summary="The keys that sign checkpoints, and the witnesses accepted",
    operation_id="getLogKeys",
    response_model=LogKeys,
    responses=documented_errors(*_AUTH),
)
async def keys(request: Request, client: Annotated[Client, Reader]) -> Response:
    signer = _signer(request)
    state = request.app.state
    policy: Policy | None = state.log_policy
    return json_answer(
        LogKeys.model_construct(
            origin=signer.origin,
            verifier_key=signer.verifier_key,
            retired_verifier_keys=list(state.log_retired_keys),
            witness_verifier_keys=[w.key() for w in state.log_witnesses],
            policy=policy.source if policy else None,
            legacy_cosignatures_until=state.log_legacy_until.isoformat(),
        )
    )


# A checkpoint of the development log (size and root illustrative) signed by the development log
# key, with a witness's line added (tests/unit/test_body_examples.py opens it with that key).
COSIGNED_CHECKPOINT_EXAMPLE = (
    "dev.coordreg.invalid/agreements-log\n258\n27d6B5A3Z9yF5eaFfhFpKWSoNbGHMD0jczbg/pMffJY=\n\n"
    "— dev.coordreg.invalid/agreements-log "
    "pLTXuapBJlXkG8TRsabCxKwkLW5fkby0PLLyCqCyBaJVD/kAGlOBwzJkRlcEVE5WNqs/2DvI1KTiKhgtc3hncMPbIwc=\n"
    "— witness.coordreg.invalid "
    "2DuxNiGvzyIILHatK8z31ch7uWvT5AifNhGMAiCNiYgIPRJl18CbDYzatDjsh7nk+oHV4A/E39GuuJryBOQv8tz8yQ0=\n"
)


@router.post(
    "/cosignatures",
    status_code=201,
    summary="Hand in a witness's cosignature of a checkpoint",
    operation_id="addCosignature",
    response_model=Cosigned,
    responses=documented_errors(*_AUTH, 400, 409, 422, 503),
    openapi_extra={
        "requestBody": {
            "content": {
                "text/plain": {"schema": {"type": "string", "examples": [COSIGNED_CHECKPOINT_EXAMPLE]}}
            },
            "required": True,
        }
    },
)
async def cosign(
    request: Request, pool: Pool, client: Witness, text: Annotated[str, Body(media_type="text/plain")] = ""
) -> Response:
    signer = _signer(request)
    state = request.app.state
    log_verifier = note.parse_verifier_key(signer.verifier_key)
    try:
        opened, verified = note.open_note(text, [log_verifier, *state.log_witnesses])
        checkpoint = note.Checkpoint.parse(opened.body)
    except (note.NoteError, ValueError) as exc:
        return problem(422, f"not a checkpoint signed by this log: {exc}", kind="bad-cosignature")
    if (log_verifier.name, log_verifier.key_id) not in {(s.name, s.key_id) for s in verified}:
        return problem(422, "the note does not carry this log's valid signature", kind="bad-cosignature")
    cosigners = [s for s in verified if (s.name, s.key_id) != (log_verifier.name, log_verifier.key_id)]
    if not cosigners:
        return problem(422, "no signature of a known witness verifies on this note", kind="bad-cosignature")
    refused = cosignature_refusal(cosigners, state.log_legacy_until, state.log_max_skew)
    if refused is not None:
        return problem(422, refused, kind="bad-cosignature")
    async with pool.acquire() as conn, conn.transaction():
        stored = await log_reads.checkpoint_note(conn, checkpoint.size)
        if stored is None or note.open_note(stored, [log_verifier])[0].body != opened.body:
            return problem(
                409,
                f"this log signed no such checkpoint of tree size {checkpoint.size}",
                kind="unknown-checkpoint",
            )
        await log_reads.add_cosignatures(conn, checkpoint.size, [(s.name, s.line()) for s in cosigners])
    cosigned = sorted(signature.name for signature in cosigners)
    return json_answer(Cosigned.model_construct(tree_size=checkpoint.size, witnesses=cosigned), 201)


def cosignature_refusal(
    cosigners: list[note.Signature], legacy_until: dt.date, max_skew: int, now: float | None = None
) -> str | None:
    """Why verified cosignatures may not be stored, or None: a plain (type 0x01) signature after
    its acceptance period, or a cosignature/v1 timestamped ahead of the registry's clock."""
    moment = time.time() if now is None else now
    for signature in cosigners:
        if len(signature.signature) == 64:
            if dt.datetime.fromtimestamp(moment, dt.UTC).date() > legacy_until:
                return (
                    f"{signature.name} signed a plain Ed25519 (type 0x01) cosignature, accepted until "
                    f"{legacy_until.isoformat()}; sign cosignature/v1 (type 0x04)"
                )
        elif note.cosignature_time(signature) > moment + max_skew:
            return f"the cosignature by {signature.name} is timestamped in the future"
    return None
