"""`witness`: cosign the registry's checkpoints, in the spirit of C2SP tlog-witness.

A witness keeps, in its state directory, the last checkpoint it cosigned. Given a new one
(fetched from the registry, or read from a file), signed by the log's key the witness was
told (never the key the registry serves), it cosigns only if the new tree extends the old:

- no state yet: trust on first use (the first checkpoint is accepted as it is, and said so);
- a smaller tree: refused (`rollback`);
- the same size with another root: refused (`split-view`);
- a larger tree: the registry's consistency proof from the old size to the new one must
  verify (else refused, `inconsistent`).

A refusal leaves the state as it was and writes an evidence file beside it: JSON with both
signed notes, the kind of violation and, for a failed proof, the proof. Two notes of one log
key that cannot both be true are the evidence: anyone holding the log's verifier key can check
them. Accepted, the note is cosigned (the witness's signature line added, note.add_signature),
saved atomically as the new state, and handed to the registry (POST /v1/log/cosignatures).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.common import AuditError
from services.audit.logapi import (
    LogApi,
    LogApiError,
    OpenedCheckpoint,
    b64,
    hashes_from,
    open_checkpoint,
    read_note_file,
)
from services.transparency import merkle, note

STATE_FILE = "state.json"

# What a witness concluded.
COSIGNED = "cosigned"
FIRST_USE = "cosigned-first-use"
REFUSED = "refused"
# Kinds of violation.
ROLLBACK = "rollback"
SPLIT_VIEW = "split-view"
INCONSISTENT = "inconsistent"
BAD_SIGNATURE = "bad-signature"
OTHER_LOG = "other-log"


def new_witness_key(name: str, path: Path) -> str:
    """Write a new signer key file (mode 0600, refusing to overwrite); its verifier key."""
    private = Ed25519PrivateKey.generate()
    try:
        text = note.signer_key(name, private, note.ALG_COSIGNATURE_V1)
    except note.NoteError as exc:
        raise AuditError(f"witness key name {name!r}: {exc}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuditError(f"{path} exists: refusing to overwrite a key") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return note.Cosigner(name, private).verifier().key()


def read_witness_key(path: Path) -> note.Signer:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"--key: cannot read {path}: {exc.strerror}") from None
    try:
        return note.parse_signer_key(text)
    except (note.NoteError, ValueError) as exc:
        raise AuditError(f"--key: {path} is not a signer key PRIVATE+KEY+<name>+…: {exc}") from None


@dataclass
class WitnessReport:
    outcome: str = ""
    detail: str = ""
    violation: str = ""
    log_key: str = ""
    witness_key: str = ""
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    proof_hashes: int = 0
    evidence_path: str = ""
    submitted: bool = False
    submit_status: int | None = None
    submit_response: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.outcome == REFUSED

    @property
    def cosigned(self) -> bool:
        return self.outcome in (COSIGNED, FIRST_USE)

    @property
    def delivered(self) -> bool:
        """Handed in and accepted, or not to be handed in at all."""
        return not self.submitted or (self.submit_status is not None and 200 <= self.submit_status < 300)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def summary(self) -> str:
        return "\n".join(self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "witness",
            "outcome": self.outcome,
            "violation": self.violation or None,
            "detail": self.detail,
            "log_key": self.log_key,
            "witness_key": self.witness_key,
            "old": self.old,
            "new": self.new,
            "proof_hashes": self.proof_hashes,
            "evidence": self.evidence_path or None,
            "submitted": self.submitted,
            "submit_status": self.submit_status,
            "submit_response": self.submit_response,
        }


def _atomic_write(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a temporary file beside it, fsync, rename, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_state(state_dir: Path, log_key: note.Verifier) -> OpenedCheckpoint | None:
    """The last checkpoint this witness cosigned, re-verified with the log's key; None if none."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        text = state["note"]
        saved_key = state["log_key"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditError(f"the witness state {path} is unreadable: {exc}") from None
    if saved_key != log_key.key():
        raise AuditError(
            f"the witness state {path} is for the log key {saved_key}, not {log_key.key()}:"
            " use one state directory per log"
        )
    try:
        return open_checkpoint(text, log_key)
    except note.NoteError as exc:
        raise AuditError(
            f"the witness state {path} holds a note the log's key does not verify: {exc}"
        ) from None


def save_state(state_dir: Path, log_key: note.Verifier, cosigned: str, checkpoint: note.Checkpoint) -> None:
    state = {
        "log_key": log_key.key(),
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root": b64(checkpoint.root),
        "note": cosigned,
        "cosigned_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _atomic_write(state_dir / STATE_FILE, json.dumps(state, ensure_ascii=False, indent=2) + "\n")


def write_evidence(
    state_dir: Path,
    kind: str,
    detail: str,
    log_key: note.Verifier,
    old: OpenedCheckpoint | None,
    new_text: str,
    new: OpenedCheckpoint | None,
    source: str,
    proof: dict[str, Any] | None = None,
) -> Path:
    now = datetime.now(UTC)
    evidence: dict[str, Any] = {
        "kind": kind,
        "detail": detail,
        "detected_at": now.isoformat(timespec="seconds"),
        "source": source,
        "log_key": log_key.key(),
        # The last checkpoint this witness cosigned (its note with the witness's signature).
        "old_note": old.text if old else None,
        "old": {"tree_size": old.size, "root": b64(old.root)} if old else None,
        # The note refused, exactly as received.
        "new_note": new_text,
        "new": {"tree_size": new.size, "root": b64(new.root)} if new else None,
    }
    if proof is not None:
        evidence["proof"] = proof
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    path = state_dir / f"evidence-{stamp}-{kind}.json"
    _atomic_write(path, json.dumps(evidence, ensure_ascii=False, indent=2) + "\n")
    return path


async def witness(
    *,
    log_key: note.Verifier,
    signer: note.Signer,
    state_dir: Path,
    registry: str = "",
    token: str = "",
    note_file: Path | None = None,
    origin: str = "",
    submit: bool = True,
    timeout: float = 30.0,
) -> WitnessReport:
    """Check one checkpoint and cosign it, or refuse it (see the module's docstring)."""
    report = WitnessReport(log_key=log_key.key(), witness_key=signer.verifier().key())
    old = load_state(state_dir, log_key)
    api = LogApi(registry, token, timeout=timeout) if registry else None
    async with contextlib.AsyncExitStack() as stack:
        if api is not None:
            await stack.enter_async_context(api)
        if note_file is not None:
            new_text, source = read_note_file(note_file, "--note"), str(note_file)
        else:
            if api is None:
                raise AuditError("no checkpoint: pass --registry URL (or --note FILE)")
            new_text, source = await api.latest_checkpoint(), f"{api.base_url}/v1/log/checkpoint"
        report.old = old.to_json() if old else None

        def refuse(
            kind: str, detail: str, new: OpenedCheckpoint | None, proof: dict[str, Any] | None = None
        ) -> WitnessReport:
            path = write_evidence(state_dir, kind, detail, log_key, old, new_text, new, source, proof)
            report.outcome, report.violation, report.detail = REFUSED, kind, detail
            report.evidence_path = str(path)
            report.say(f"REFUSED ({kind}): {detail}")
            report.say(f"evidence: {path}; the witness state is unchanged")
            return report

        try:
            new = open_checkpoint(new_text, log_key)
        except note.NoteError as exc:
            return refuse(
                BAD_SIGNATURE, f"the checkpoint from {source} does not verify with the log's key: {exc}", None
            )
        report.new = {k: v for k, v in new.to_json().items() if k != "note"}
        report.say(f"checkpoint from {source}: {new.describe()}, signed by {log_key.name}")
        expected_origin = origin or (old.checkpoint.origin if old else "")
        if expected_origin and new.checkpoint.origin != expected_origin:
            return refuse(
                OTHER_LOG,
                f"the checkpoint's origin is {new.checkpoint.origin!r}, not {expected_origin!r}",
                new,
            )
        if old is None:
            outcome = FIRST_USE
            report.say(
                "no earlier checkpoint in the state directory: trusting this one on first use"
                " (nothing before it could be checked)"
            )
        elif new.size < old.size:
            return refuse(
                ROLLBACK,
                f"the log's tree shrank from size {old.size} (cosigned) to {new.size}",
                new,
            )
        elif new.size == old.size:
            if new.root != old.root:
                return refuse(
                    SPLIT_VIEW,
                    f"two roots for tree size {new.size}: {b64(old.root)} (cosigned) and {b64(new.root)}",
                    new,
                )
            outcome = COSIGNED
            report.say(f"same tree as the cosigned checkpoint (size {new.size}): nothing to prove")
        elif old.size == 0:
            outcome = COSIGNED
            report.say("the cosigned tree was empty: every tree extends it")
        else:
            if api is None:
                raise AuditError("a consistency proof is needed: pass --registry URL")
            try:
                answer = await api.consistency(old.size, new.size)
                hashes = hashes_from(answer.get("hashes"), "the consistency proof")
            except LogApiError as exc:
                if exc.status in (401, 403) or exc.status >= 500:
                    raise
                return refuse(
                    INCONSISTENT,
                    f"the registry gives no consistency proof from {old.size} to {new.size}: {exc.detail}",
                    new,
                    {"from": old.size, "to": new.size, "error": exc.detail},
                )
            proof = {"from": old.size, "to": new.size, "hashes": [b64(h) for h in hashes]}
            try:
                merkle.verify_consistency(new.size, new.root, old.size, old.root, hashes)
            except merkle.ProofError as exc:
                return refuse(
                    INCONSISTENT,
                    f"the consistency proof from tree size {old.size} to {new.size} fails: {exc}",
                    new,
                    proof,
                )
            report.proof_hashes = len(hashes)
            outcome = COSIGNED
            report.say(
                f"consistency proof from size {old.size} to {new.size} verified ({len(hashes)} hashes)"
            )

        cosigned = note.add_signature(new_text, signer)
        save_state(state_dir, log_key, cosigned, new.checkpoint)
        report.outcome = outcome
        report.detail = f"cosigned {new.describe()} as {signer.name}"
        report.say(f"COSIGNED: {new.describe()} as {signer.name}; state saved in {state_dir / STATE_FILE}")
        if submit and api is not None:
            report.submitted = True
            status, text = await api.cosign(cosigned)
            report.submit_status, report.submit_response = status, text.strip()
            verdict = "accepted" if 200 <= status < 300 else "NOT accepted"
            report.say(f"registry {verdict} the cosignature: {status} {text.strip()[:300]}")
        elif submit:
            report.say("not handed in (no --registry)")
    return report
