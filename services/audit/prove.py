"""`prove` and `check-consistency`: one event's place in a signed checkpoint, and one signed
checkpoint's extension of another, checked from the registry's answers as data.

`prove EVENT_ID --checkpoint FILE --log-key KEY` (the rules are services/transparency/proofs.py's,
which the officials' console applies too):
1. the checkpoint's note verifies with the log's key given (`checkpoint`);
2. the registry knows the event and gives its leaf index, which is below the checkpoint's
   size (`in-tree`; an event appended after the checkpoint is not in it);
3. the leaf's record (GET /v1/log/leaves) is the event's: its `id` is EVENT_ID (`event-id`);
4. the record's envelope hash is intact: SHA-256 of its canonical envelope without `hash`
   and `position` equals its `hash` (`envelope-hash`);
5. SHA-256(0x00 || record bytes), recomputed here, with the inclusion proof leads to the
   checkpoint's root (`inclusion`).

With `--policy FILE` (C2SP tlog-policy), each checkpoint must also be cosigned by the policy's
quorum of witnesses (`quorum`): a checkpoint below it is refused before anything else.

`check-consistency --old FILE --new FILE --log-key KEY`: both notes verify (`checkpoint`);
the new tree is not smaller (`rollback`); equal sizes have equal roots (`split-view`);
otherwise the registry's consistency proof verifies (`consistency`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.audit.logapi import LogApi, LogApiError, b64, hashes_from, read_note_file
from services.transparency import merkle, note
from services.transparency.policy import Policy
from services.transparency.proofs import (
    Check,
    OpenedCheckpoint,
    check_leaf,
    checked_checkpoint,
    placed_leaf,
    quorum_check,
)


@dataclass
class ProofReport:
    command: str
    subject: dict[str, Any] = field(default_factory=dict)  # what was proven, where
    checks: list[Check] = field(default_factory=list)
    proof_hashes: int = 0
    verify_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def fail(self, name: str, detail: str) -> ProofReport:
        self.checks.append(Check(name, False, detail))
        return self

    def where(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.subject.items() if v is not None)

    def summary(self) -> str:
        lines = [f"{'ok' if c.ok else 'FAILED'} [{c.name}] {c.detail}" for c in self.checks]
        failed = self.failed
        if failed is None:
            lines.append(f"PROVEN: {self.where()}")
        else:
            lines.append(f"NOT PROVEN: [{failed.name}] {failed.detail} ({self.where()})")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "command": self.command,
            "ok": self.ok,
            **self.subject,
            "failed_check": failed.name if failed else None,
            "proof_hashes": self.proof_hashes,
            "verify_seconds": round(self.verify_seconds, 6),
            "checks": [c.to_json() for c in self.checks],
        }


def _open(
    report: ProofReport, text: str, log_key: note.Verifier, what: str, policy: Policy | None = None
) -> OpenedCheckpoint | None:
    """The checkpoint once its note verifies with the log's key and, given a policy, once its
    cosignatures make the policy's quorum (a checkpoint below it proves nothing)."""
    opened, check = checked_checkpoint(text, log_key, what)
    report.checks.append(check)
    if opened is None or policy is None:
        return opened
    quorum = quorum_check(text, policy, what)
    report.checks.append(quorum)
    return opened if quorum.ok else None


async def prove(
    event_id: str, *, checkpoint_text: str, log_key: note.Verifier, api: LogApi, policy: Policy | None = None
) -> ProofReport:
    report = ProofReport("prove", {"event_id": event_id, "leaf_index": None, "tree_size": None})
    checkpoint = _open(report, checkpoint_text, log_key, "the checkpoint", policy)
    if checkpoint is None:
        return report
    size = report.subject["tree_size"] = checkpoint.size
    try:
        answer = await api.inclusion(event_id, size)
    except LogApiError as exc:
        if exc.status in (401, 403) or exc.status >= 500:
            raise
        if exc.kind == "not-in-that-tree":
            # Where the registry says the event is (to locate the failure, not to trust it):
            # the problem's `leaf_index` member (docs/CONTRACT.md B11).
            said = exc.body.get("leaf_index")
            if isinstance(said, int) and not isinstance(said, bool):
                report.subject["leaf_index"] = said
            return report.fail(
                "in-tree",
                f"the event is not in the checkpoint's tree of size {size}: appended later"
                f" (the registry: {exc.detail})",
            )
        return report.fail("in-tree", f"the registry gives no inclusion proof: {exc.detail}")
    index, placed = placed_leaf(answer, size)
    report.checks.append(placed)
    if index is None:
        return report
    report.subject["leaf_index"] = index
    try:
        leaf = await api.leaf(index)
    except LogApiError as exc:
        if exc.status in (401, 403) or exc.status >= 500:
            raise
        return report.fail("record", f"the registry gives no record for leaf {index}: {exc.detail}")
    checked = check_leaf(event_id, index, checkpoint, answer, leaf)
    report.checks.extend(checked.checks)
    report.proof_hashes = checked.proof_hashes
    report.verify_seconds = checked.verify_seconds
    return report


async def check_consistency(
    *,
    old_text: str,
    new_text: str,
    log_key: note.Verifier,
    api: LogApi | None,
    policy: Policy | None = None,
) -> ProofReport:
    report = ProofReport("check-consistency", {"old_size": None, "new_size": None})
    old = _open(report, old_text, log_key, "the old checkpoint", policy)
    new = _open(report, new_text, log_key, "the new checkpoint", policy)
    if old is None or new is None:
        return report
    report.subject.update(old_size=old.size, new_size=new.size)
    if new.size < old.size:
        return report.fail(
            "rollback", f"the new tree (size {new.size}) is smaller than the old (size {old.size})"
        )
    if new.size == old.size:
        if new.root != old.root:
            return report.fail(
                "split-view", f"two roots for tree size {new.size}: {b64(old.root)} and {b64(new.root)}"
            )
        report.passed("consistency", f"the same tree (size {new.size}, same root)")
        return report
    if old.size == 0:
        report.passed("consistency", "the old tree is empty: every tree extends it")
        return report
    if api is None:
        return report.fail("consistency", "a consistency proof is needed: pass --registry URL")
    try:
        answer = await api.consistency(old.size, new.size)
        hashes = hashes_from(answer.get("hashes"), "the consistency proof")
    except LogApiError as exc:
        if exc.status in (401, 403) or exc.status >= 500:
            raise
        return report.fail("consistency", f"the registry gives no consistency proof: {exc.detail}")
    report.proof_hashes = len(hashes)
    started = time.perf_counter()
    try:
        merkle.verify_consistency(new.size, new.root, old.size, old.root, hashes)
    except merkle.ProofError as exc:
        report.verify_seconds = time.perf_counter() - started
        return report.fail("consistency", f"the consistency proof ({len(hashes)} hashes) fails: {exc}")
    report.verify_seconds = time.perf_counter() - started
    report.passed("consistency", f"the consistency proof ({len(hashes)} hashes) verifies")
    return report


def read_checkpoint(path: Path, what: str) -> str:
    return read_note_file(path, what)
