"""Checking that an event is in a signed checkpoint, from the registry's answers taken as data:
the rules `coordreg-audit prove` applies and the console shows, in one place.

Pure: no I/O. The caller fetches (GET /v1/log/checkpoint, /v1/log/proofs/inclusion,
/v1/log/leaves; docs/CONTRACT.md B11) and hands the answers in; nothing in them is trusted:

1. the checkpoint's note verifies with the log's key the caller pinned (`open_checkpoint`),
   never the key the registry serves (check `checkpoint`);
2. the registry places the event at a leaf below the checkpoint's size (`in-tree`);
3. the leaf's record (its Kafka record value) is the event's: its `id` is the event's
   (`record`, `event-id`);
4. its envelope hash is intact: SHA-256 of its canonical envelope without `hash` and
   `position` equals its `hash` (`envelope-hash`);
5. SHA-256(0x00 || record bytes), recomputed here, with the inclusion proof leads to the
   checkpoint's root (`inclusion`).

A checkpoint's other signature lines are its witnesses' cosignatures (`cosignatures`): each is
checked against the witness keys the caller pinned, and is otherwise only reported present.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordreg_contracts.envelope import envelope_hash

from services.transparency import merkle, note
from services.transparency.policy import Policy

__all__ = [
    "Check",
    "Cosignature",
    "LeafChecks",
    "OpenedCheckpoint",
    "ProofDataError",
    "b64",
    "check_leaf",
    "checked_checkpoint",
    "cosignatures",
    "open_checkpoint",
    "placed_leaf",
    "proof_hashes",
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ProofDataError(ValueError):
    """A proof in an answer is not readable as one (the message says what)."""


@dataclass(frozen=True)
class Check:
    """One rule applied: its name (above), whether it held, and what was found (English)."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A signed note whose log signature verified, and the checkpoint it carries."""

    text: str
    checkpoint: note.Checkpoint

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    def describe(self) -> str:
        return f"tree size {self.size}, root {b64(self.root)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.checkpoint.origin,
            "tree_size": self.size,
            "root": b64(self.root),
            "note": self.text,
        }


def open_checkpoint(text: str, log_key: note.Verifier) -> OpenedCheckpoint:
    """The checkpoint of a note signed by `log_key` (other signatures are ignored); raises
    note.NoteError if the note does not carry the log's valid signature or is no checkpoint."""
    opened, verified = note.open_note(text, [log_key])
    if not verified:  # open_note raises first; kept for clarity
        raise note.NoteError("the note carries no signature by the log's key")
    return OpenedCheckpoint(text, note.Checkpoint.parse(opened.body))


def checked_checkpoint(
    text: str, log_key: note.Verifier, what: str = "the checkpoint"
) -> tuple[OpenedCheckpoint | None, Check]:
    """Check 1: the checkpoint of a note, once it verifies with the log's pinned key."""
    try:
        opened = open_checkpoint(text, log_key)
    except note.NoteError as exc:
        return None, Check(
            "checkpoint", False, f"{what} does not verify with the log's key {log_key.name}: {exc}"
        )
    return opened, Check("checkpoint", True, f"{what} is signed by {log_key.name}: {opened.describe()}")


def quorum_check(text: str, policy: Policy, what: str = "the checkpoint") -> Check:
    """The policy's quorum (C2SP tlog-policy): enough of its witnesses cosigned the note."""
    try:
        cosigners = policy.cosigners(text)
    except note.NoteError as exc:
        return Check("quorum", False, f"{what} does not open under the policy: {exc}")
    named = ", ".join(cosigners) or "no witness of the policy"
    if not policy.quorum_met(cosigners):
        return Check(
            "quorum", False, f"{what} is cosigned by {named}: below the policy's quorum, {policy.required()}"
        )
    return Check("quorum", True, f"{what} is cosigned by {named}: the quorum {policy.required()} is met")


@dataclass(frozen=True)
class Cosignature:
    """A signature line of a checkpoint other than the log's: a witness's cosignature.
    `verified`: True or False once checked with a pinned witness key of the same name and key
    ID; None when no such key is pinned (present, not checked)."""

    name: str
    key_id: int
    verified: bool | None


def cosignatures(
    opened: OpenedCheckpoint, log_key: note.Verifier, witnesses: Sequence[note.Verifier]
) -> list[Cosignature]:
    """Each cosignature of an opened checkpoint, checked one by one (a bad one does not hide the
    others, nor the log's own signature, already verified)."""
    known = {(w.name, w.key_id): w for w in witnesses}
    parsed = note.parse_note(opened.text)
    message = parsed.body.encode("utf-8")
    found: list[Cosignature] = []
    for signature in parsed.signatures:
        if (signature.name, signature.key_id) == (log_key.name, log_key.key_id):
            continue
        witness = known.get((signature.name, signature.key_id))
        verified = None if witness is None else witness.verify(message, signature.signature)
        found.append(Cosignature(signature.name, signature.key_id, verified))
    return found


def proof_hashes(values: object, what: str) -> list[bytes]:
    """The proof hashes of an answer (a list of standard base64 strings)."""
    if not isinstance(values, list):
        raise ProofDataError(f"{what}: 'hashes' is not a list")
    out = []
    for i, value in enumerate(values):
        try:
            out.append(base64.b64decode(str(value), validate=True))
        except (binascii.Error, ValueError):
            raise ProofDataError(f"{what}: hash {i} is not base64") from None
    return out


def placed_leaf(answer: Mapping[str, Any], size: int) -> tuple[int | None, Check]:
    """The leaf index an inclusion proof's answer gives, once it is one of a tree of `size`."""
    index = answer.get("leaf_index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        return None, Check(
            "in-tree", False, f"the registry names leaf {index!r}, not one of the tree of size {size}"
        )
    return index, Check("in-tree", True, f"the registry places the event at leaf {index} (< {size})")


@dataclass(frozen=True)
class LeafChecks:
    """The checks of one leaf against a checkpoint, in order; they stop at the first failure
    that leaves nothing to check (a changed envelope still has its inclusion checked)."""

    checks: tuple[Check, ...]
    proof_hashes: int = 0
    verify_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def check_leaf(
    event_id: str,
    index: int,
    checkpoint: OpenedCheckpoint,
    answer: Mapping[str, Any],
    leaf: Mapping[str, Any],
) -> LeafChecks:
    """Checks 3 to 5 (above) of leaf `index`: `answer` is the inclusion proof's answer, `leaf`
    the leaf's entry in GET /v1/log/leaves."""
    checks: list[Check] = []

    def failed(name: str, detail: str) -> LeafChecks:
        return LeafChecks((*checks, Check(name, False, detail)))

    record = leaf.get("record")
    if not isinstance(record, str) or leaf.get("leaf_index") != index:
        return failed("record", f"the registry's answer for leaf {index} holds no record of that leaf")
    try:
        hashes = proof_hashes(answer.get("hashes"), "the inclusion proof")
    except ProofDataError as exc:
        return failed("record", str(exc))
    try:
        data = record.encode("utf-8")
        doc = json.loads(record)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return failed("event-id", f"leaf {index}'s record is not an event envelope: {exc}")
    if str(doc.get("id")) != event_id:
        return failed("event-id", f"leaf {index}'s record is event {doc.get('id')!r}, not {event_id}")
    checks.append(
        Check(
            "event-id",
            True,
            f"leaf {index}'s record is event {event_id} ({doc.get('subject')} sequence {doc.get('sequence')})",
        )
    )
    try:
        recomputed = envelope_hash({k: v for k, v in doc.items() if k != "position"})
    except (ValueError, TypeError) as exc:
        recomputed = f"(not computable: {exc})"
    if doc.get("hash") != recomputed:
        checks.append(
            Check(
                "envelope-hash",
                False,
                f"the record's hash {str(doc.get('hash'))[:16]}… is not its envelope's ({recomputed[:16]}…):"
                " the event was changed",
            )
        )
    else:
        checks.append(Check("envelope-hash", True, "the record's envelope hash is intact"))
    leaf_hash = merkle.leaf_hash(data)
    started = time.perf_counter()
    try:
        merkle.verify_inclusion(checkpoint.size, checkpoint.root, index, leaf_hash, hashes)
    except merkle.ProofError as exc:
        seconds = time.perf_counter() - started
        detail = (
            f"the record's leaf hash {b64(leaf_hash)} with the inclusion proof ({len(hashes)} hashes)"
            f" does not lead to the checkpoint's root: {exc}"
        )
        return LeafChecks((*checks, Check("inclusion", False, detail)), len(hashes), seconds)
    seconds = time.perf_counter() - started
    detail = f"SHA-256(0x00 || record) with the inclusion proof ({len(hashes)} hashes) leads to the checkpoint's root"
    return LeafChecks((*checks, Check("inclusion", True, detail)), len(hashes), seconds)
