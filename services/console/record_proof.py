"""The proof of record of an agreement's events, checked by the console server: the latest signed
checkpoint of the transparency log, opened with the log's pinned key (CONSOLE_LOG_KEY), its
witnesses' cosignatures, and each event's inclusion proof, checked by the rules of
`coordreg-audit prove` (services/transparency/proofs.py). Nothing the registry sends is
trusted, not even its key (GET /v1/log/keys is never asked).

Requests: the checkpoint (one), then per event its inclusion proof and its leaf (two), all
events at once (asyncio.gather), so a page of N events costs 1 + 2·N requests to the registry in
two rounds after the checkpoint. Any answer that cannot be used (an error status, a timeout, a
body that is not what the contract says) makes that event "not checked now", never an error page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from services.console.backend import Backend, TextAnswer
from services.transparency import note
from services.transparency.policy import Policy
from services.transparency.proofs import (
    Check,
    Cosignature,
    OpenedCheckpoint,
    check_leaf,
    checked_checkpoint,
    cosignatures,
    placed_leaf,
    quorum_check,
)

# A checkpoint: verified with the pinned key; refused (its signature or form); none signed yet;
# the registry could not be asked.
CheckpointState = Literal["verified", "refused", "none", "unavailable"]
# An event: in the checkpoint, every check held; a check failed; appended after the checkpoint
# (in the next one); not checked now (the registry could not be asked, or the checkpoint failed).
EventState = Literal["verified", "refused", "pending", "unavailable"]


@dataclass(frozen=True)
class CheckpointProof:
    state: CheckpointState
    check: Check | None = None
    opened: OpenedCheckpoint | None = None
    issued_at: str | None = None  # RFC 3339, from Last-Modified: the registry's word, not signed
    cosignatures: tuple[Cosignature, ...] = ()
    # The policy's quorum (C2SP tlog-policy), checked here; None without a policy.
    quorum: Check | None = None
    quorum_required: str = ""

    @property
    def size(self) -> int:
        return self.opened.size if self.opened is not None else 0


@dataclass(frozen=True)
class EventProof:
    event_id: str
    state: EventState
    checks: tuple[Check, ...] = ()
    leaf_index: int | None = None
    proof_hashes: int = 0
    detail: str = ""  # why it is pending or unavailable (English, from the registry or here)

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)


@dataclass(frozen=True)
class RecordProof:
    checkpoint: CheckpointProof
    events: tuple[EventProof, ...] = field(default_factory=tuple)
    requests: int = 0

    @property
    def verified(self) -> int:
        return sum(1 for e in self.events if e.state == "verified")

    @property
    def in_checkpoint(self) -> tuple[EventProof, ...]:
        return tuple(e for e in self.events if e.state == "verified")


def _issued_at(headers: httpx.Headers) -> str | None:
    value = headers.get("last-modified")
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


def open_served_checkpoint(
    answer: TextAnswer | None,
    log_key: note.Verifier,
    witnesses: Sequence[note.Verifier],
    policy: Policy | None = None,
) -> CheckpointProof:
    """The registry's latest checkpoint (None: it could not be asked), opened with the pinned key."""
    if answer is None or answer.status >= 500 or answer.status in (401, 403, 429):
        return CheckpointProof("unavailable")
    if answer.status == 404:
        return CheckpointProof("none")
    if answer.status != 200:
        return CheckpointProof("unavailable")
    opened, check = checked_checkpoint(answer.text, log_key)
    if opened is None:
        return CheckpointProof("refused", check)
    found = tuple(cosignatures(opened, log_key, witnesses))
    quorum = quorum_check(answer.text, policy) if policy else None
    required = policy.required(of="trong số", no_witness="không cần nhân chứng nào") if policy else ""
    return CheckpointProof("verified", check, opened, _issued_at(answer.headers), found, quorum, required)


def _leaf_entry(body: Any, index: int) -> Mapping[str, Any]:
    """Leaf `index`'s entry in a GET /v1/log/leaves answer, or {} (check_leaf then refuses it)."""
    if isinstance(body, dict):
        leaves = body.get("leaves")
        if isinstance(leaves, list) and len(leaves) == 1 and isinstance(leaves[0], dict):
            entry: Mapping[str, Any] = leaves[0]
            return entry
    return {}


def _not_in_tree(status: int, body: Any) -> str | None:
    """Why the registry has no proof for this tree yet, when that is the reason (B11): the event
    was appended after the checkpoint (422 not-in-that-tree), or is not a leaf yet (404 with
    Retry-After, told by its detail); None otherwise."""
    if not isinstance(body, dict):
        return None
    kind = str(body.get("type", "")).rsplit("/", 1)[-1]
    detail = str(body.get("detail", ""))
    if status == 422 and kind == "not-in-that-tree":
        return detail
    if status == 404 and "not in the tree yet" in detail:
        return detail
    return None


async def prove_event(
    backend: Backend, token: str, event_id: str, checkpoint: OpenedCheckpoint
) -> tuple[EventProof, int]:
    """One event against the checkpoint, and how many requests it took."""
    size = checkpoint.size
    params = {"event_id": event_id, "tree_size": size}
    try:
        answer = await backend.read(backend.registry, token, "/v1/log/proofs/inclusion", params)
    except httpx.HTTPError as exc:
        return EventProof(event_id, "unavailable", detail=f"the registry did not answer: {exc!r}"), 1
    if answer.status != 200:
        later = _not_in_tree(answer.status, answer.body)
        if later is not None:
            return EventProof(event_id, "pending", detail=later), 1
        if answer.status >= 500 or answer.status in (401, 403, 429):
            return EventProof(event_id, "unavailable", detail=f"the registry answered {answer.status}"), 1
        why = answer.body.get("detail") if isinstance(answer.body, dict) else None
        check = Check("in-tree", False, f"the registry gives no inclusion proof: {answer.status}: {why}")
        return EventProof(event_id, "refused", (check,)), 1
    body: Mapping[str, Any] = answer.body if isinstance(answer.body, dict) else {}
    index, placed = placed_leaf(body, size)
    if index is None:
        return EventProof(event_id, "refused", (placed,)), 1
    try:
        leaf = await backend.read(
            backend.registry, token, "/v1/log/leaves", {"start": index, "end": index + 1}
        )
    except httpx.HTTPError as exc:
        return EventProof(
            event_id, "unavailable", (placed,), index, detail=f"the registry did not answer: {exc!r}"
        ), 2
    if leaf.status != 200:
        if leaf.status >= 500 or leaf.status in (401, 403, 429):
            return EventProof(
                event_id, "unavailable", (placed,), index, detail=f"the registry answered {leaf.status}"
            ), 2
        check = Check("record", False, f"the registry gives no record for leaf {index}: {leaf.status}")
        return EventProof(event_id, "refused", (placed, check), index), 2
    checked = check_leaf(event_id, index, checkpoint, body, _leaf_entry(leaf.body, index))
    state: EventState = "verified" if checked.ok else "refused"
    return EventProof(event_id, state, (placed, *checked.checks), index, checked.proof_hashes), 2


async def prove_record(
    backend: Backend,
    token: str,
    event_ids: Sequence[str],
    served: TextAnswer | None,
    log_key: note.Verifier,
    witnesses: Sequence[note.Verifier],
    policy: Policy | None = None,
) -> RecordProof:
    """The checkpoint (already fetched: `served`) and each event's proof against it."""
    checkpoint = open_served_checkpoint(served, log_key, witnesses, policy)
    opened = checkpoint.opened
    if opened is None:
        # No checkpoint to check against: nothing is asked for the events.
        state: EventState = "pending" if checkpoint.state == "none" else "unavailable"
        return RecordProof(checkpoint, tuple(EventProof(e, state) for e in event_ids), 1)
    proven = await asyncio.gather(*(prove_event(backend, token, e, opened) for e in event_ids))
    return RecordProof(checkpoint, tuple(p for p, _ in proven), 1 + sum(n for _, n in proven))
