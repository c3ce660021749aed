"""`verify`'s transparency-log checks: the Merkle tree (migration 008) matches the event store.

Run in the store walk's REPEATABLE READ snapshot, after every event's record
(`StoredEvent.message()`, the leaf data) was hashed by the walk:

- `leaf`: each leaf's stored hash (registry.tree_leaves, and the tree's stored hash of that
  leaf) equals SHA-256(0x00 || its event's record): a changed event is found at its leaf index;
- `not-in-tree`: every event is a leaf, or queued for the tree (registry.tree_pending);
- log-wide (`TreeReport.problems`): leaves numbered 0..n-1 without holes, each leaf's event
  still in the store (`leaf-without-event`), the stored hashes those of the tree recomputed here
  from the records with MemoryTree (`stored-hash`), and every signed checkpoint: its signature
  verifies with the configured log key (AUDIT_LOG_VERIFIER_KEY, `checkpoint-signature`), the
  tree's stored root at its size is its root (`checkpoint-root`), and so is the root of the
  recomputed tree (`recomputed-root`); and every stored cosignature (registry.cosignatures): a
  signature line of the witness its row names, by a key of AUDIT_LOG_WITNESS_KEYS, that
  verifies on its checkpoint's text (`cosignature`; cosignature/v1 or, from before it, type
  0x01). Without witness keys the cosignatures are counted, not checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from services.audit.logapi import b64
from services.common.db import Connection
from services.registry.adapters.tree_integrator import root_of
from services.transparency import merkle, note

TREE = "tree"


@dataclass(frozen=True)
class LeafRecord:
    stream_id: str
    sequence: int
    leaf_hash: bytes


@dataclass(frozen=True)
class LogProblem:
    check: str
    detail: str
    leaf_index: int | None = None
    tree_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "detail": self.detail,
        }

    def line(self) -> str:
        where = []
        if self.leaf_index is not None:
            where.append(f"leaf {self.leaf_index}")
        if self.tree_size is not None:
            where.append(f"tree size {self.tree_size}")
        return f"{', '.join(where) or 'log'}: [{TREE}/{self.check}] {self.detail}"


@dataclass
class TreeReport:
    checked: bool = False
    leaves: int = 0
    pending: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    cosignatures_checked: bool = False
    latest_size: int | None = None
    latest_root: str | None = None
    verifier_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[LogProblem] = field(default_factory=list)

    def summary_line(self) -> str:
        if not self.checked:
            return "tree: not checked (no transparency log in this database)"
        latest = (
            f"latest checkpoint: tree size {self.latest_size}, root {self.latest_root}"
            if self.latest_size is not None
            else "no checkpoint signed yet"
        )
        cosigned = (
            f"{self.cosignatures:,} cosignatures"
            if self.cosignatures_checked
            else f"{self.cosignatures:,} cosignatures NOT checked (no AUDIT_LOG_WITNESS_KEYS)"
        )
        return (
            f"tree: {self.leaves:,} leaves, {self.pending:,} events pending, {self.checkpoints:,}"
            f" checkpoints ({latest}), {cosigned} checked in {self.seconds:.1f}s"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "leaves": self.leaves,
            "pending": self.pending,
            "checkpoints": self.checkpoints,
            "cosignatures": self.cosignatures,
            "cosignatures_checked": self.cosignatures_checked,
            "latest_checkpoint_size": self.latest_size,
            "latest_checkpoint_root": self.latest_root,
            "verifier_keys": self.verifier_keys,
            "seconds": round(self.seconds, 3),
            "problems": [p.to_json() for p in self.problems],
        }


async def tree_present(conn: Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('registry.tree_leaves') IS NOT NULL"))


# A Problem factory: (stream_id, sequence, position, check, detail, leaf_index).
async def check_tree(
    conn: Connection,
    records: dict[int, LeafRecord],
    verifiers: list[note.Verifier],
    tree: TreeReport,
    event_problem: Any,
    batch_size: int,
    witnesses: list[note.Verifier] | None = None,
) -> None:
    """Compares the tree with `records` (position → the event's leaf hash); per-event problems
    go to `event_problem(stream_id, sequence, position, check, detail, leaf_index)`."""
    started = time.perf_counter()
    tree.checked = True
    tree.verifier_keys = [v.key() for v in verifiers]
    pending = {int(r["position"]) for r in await conn.fetch("SELECT position FROM registry.tree_pending")}
    recomputed = merkle.MemoryTree()
    remaining = dict(records)
    expected_index = 0
    cursor = await conn.cursor(
        "SELECT leaf_index, position, leaf_hash FROM registry.tree_leaves ORDER BY leaf_index"
    )
    while rows := await cursor.fetch(batch_size):
        for row in rows:
            index, position, stored = int(row["leaf_index"]), int(row["position"]), bytes(row["leaf_hash"])
            if index != expected_index:
                tree.problems.append(
                    LogProblem(
                        "leaf-gap", f"leaves {expected_index}..{index - 1} are missing", expected_index
                    )
                )
                break
            record = remaining.pop(position, None)
            if record is None:
                tree.problems.append(
                    LogProblem(
                        "leaf-without-event",
                        f"leaf {index} is the event at position {position}, which is not in the store"
                        " (deleted after it entered the tree?)",
                        index,
                    )
                )
                leaf = stored
            else:
                leaf = record.leaf_hash
                if stored != leaf:
                    event_problem(
                        record.stream_id,
                        record.sequence,
                        position,
                        "leaf",
                        f"leaf {index}: the tree's leaf hash {b64(stored)[:16]}… is not SHA-256(0x00 || the"
                        f" event's record) {b64(leaf)[:16]}…: the event was changed after it entered the tree",
                        index,
                    )
            recomputed.hashes.extend(merkle.stored_hashes_for_hash(recomputed.size, leaf, recomputed.read))
            recomputed.size += 1
            expected_index += 1
        else:
            continue
        break
    tree.leaves = recomputed.size
    for position, record in sorted(remaining.items()):
        if position in pending:
            tree.pending += 1
            continue
        event_problem(
            record.stream_id,
            record.sequence,
            position,
            "not-in-tree",
            "the event is neither a leaf of the tree nor queued for it (inserted behind the registry's back?)",
            None,
        )
    ghosts = sorted(pending - set(records))
    if ghosts:
        tree.problems.append(
            LogProblem(
                "pending-without-event",
                f"{len(ghosts)} queued position(s) name no stored event, the first {ghosts[0]} (deleted?)",
            )
        )
    await _check_stored_hashes(conn, recomputed, tree, batch_size)
    await _check_checkpoints(conn, recomputed, verifiers, tree)
    await _check_cosignatures(conn, verifiers, witnesses or [], tree)
    tree.seconds = time.perf_counter() - started


async def _check_stored_hashes(
    conn: Connection, recomputed: merkle.MemoryTree, tree: TreeReport, batch_size: int
) -> None:
    differ: list[int] = []
    count = 0
    cursor = await conn.cursor("SELECT hash_index, hash FROM registry.tree_hashes ORDER BY hash_index")
    while rows := await cursor.fetch(batch_size):
        for row in rows:
            index = int(row["hash_index"])
            count += 1
            if index >= len(recomputed.hashes) or bytes(row["hash"]) != recomputed.hashes[index]:
                differ.append(index)
    expected = merkle.stored_hash_count(recomputed.size)
    if count != expected:
        tree.problems.append(
            LogProblem(
                "stored-hash",
                f"the tree stores {count} hashes, a tree of {recomputed.size} leaves has {expected}",
                tree_size=recomputed.size,
            )
        )
    if differ:
        level, n = merkle.split_stored_hash_index(differ[0])
        first = f"leaf {n}" if level == 0 else f"the subtree of leaves {n << level}..{((n + 1) << level) - 1}"
        tree.problems.append(
            LogProblem(
                "stored-hash",
                f"{len(differ)} stored hash(es) differ from the tree recomputed from the records;"
                f" the first: stored hash {differ[0]}, {first}",
                leaf_index=n << level,
            )
        )


async def _check_checkpoints(
    conn: Connection, recomputed: merkle.MemoryTree, verifiers: list[note.Verifier], tree: TreeReport
) -> None:
    rows = await conn.fetch("SELECT tree_size, root_hash, note FROM registry.checkpoints ORDER BY tree_size")
    tree.checkpoints = len(rows)
    for row in rows:
        size, column_root, text = int(row["tree_size"]), bytes(row["root_hash"]), str(row["note"])
        try:
            opened, _ = note.open_note(text, verifiers)
            checkpoint = note.Checkpoint.parse(opened.body)
        except note.NoteError as exc:
            names = ", ".join(v.name for v in verifiers)
            tree.problems.append(
                LogProblem(
                    "checkpoint-signature",
                    f"the checkpoint does not verify with the log key(s) {names}: {exc}",
                    tree_size=size,
                )
            )
            continue
        tree.latest_size, tree.latest_root = checkpoint.size, b64(checkpoint.root)
        if checkpoint.size != size or checkpoint.root != column_root:
            tree.problems.append(
                LogProblem(
                    "checkpoint-row",
                    f"the row (size {size}, root {b64(column_root)}) is not its note's"
                    f" (size {checkpoint.size}, root {b64(checkpoint.root)})",
                    tree_size=size,
                )
            )
        if checkpoint.size > recomputed.size:
            tree.problems.append(
                LogProblem(
                    "checkpoint-beyond",
                    f"the checkpoint is of {checkpoint.size} leaves, the tree has {recomputed.size}"
                    " (leaves deleted after it was signed?)",
                    tree_size=checkpoint.size,
                )
            )
            continue
        try:
            stored_root = await root_of(conn, checkpoint.size)
        except RuntimeError as exc:
            stored_root = b""
            detail = str(exc)
        else:
            detail = f"{b64(stored_root)}"
        if stored_root != checkpoint.root:
            tree.problems.append(
                LogProblem(
                    "checkpoint-root",
                    f"the tree's stored root at size {checkpoint.size} ({detail}) is not the"
                    f" checkpoint's root {b64(checkpoint.root)}",
                    tree_size=checkpoint.size,
                )
            )
        again = recomputed.root(checkpoint.size)
        if again != checkpoint.root:
            tree.problems.append(
                LogProblem(
                    "recomputed-root",
                    f"the root recomputed from the store's records at size {checkpoint.size} ({b64(again)})"
                    f" is not the checkpoint's root {b64(checkpoint.root)}",
                    tree_size=checkpoint.size,
                )
            )


async def _check_cosignatures(
    conn: Connection, verifiers: list[note.Verifier], witnesses: list[note.Verifier], tree: TreeReport
) -> None:
    rows = await conn.fetch(
        """SELECT c.tree_size, c.witness, c.signature, k.note FROM registry.cosignatures c
           LEFT JOIN registry.checkpoints k USING (tree_size) ORDER BY c.tree_size, c.witness"""
    )
    tree.cosignatures = len(rows)
    tree.cosignatures_checked = bool(witnesses)
    if not witnesses:
        return
    known = {(w.name, w.key_id): w for w in witnesses}
    for row in rows:
        size, name, line = int(row["tree_size"]), str(row["witness"]), str(row["signature"])

        def bad(detail: str, size: int = size, name: str = name) -> None:
            tree.problems.append(
                LogProblem("cosignature", f"the cosignature by {name}: {detail}", tree_size=size)
            )

        if row["note"] is None:
            bad("its checkpoint is not stored")
            continue
        try:
            body = note.parse_note(str(row["note"])).body
            signature = note.parse_note(body + "\n" + line).signatures[0]
        except note.NoteError as exc:
            bad(f"not a signature line: {exc}")
            continue
        witness = known.get((signature.name, signature.key_id))
        if signature.name != name:
            bad(f"the line is signed by {signature.name}, not the witness its row names")
        elif witness is None:
            bad(f"key ID {signature.key_id:08x} is none of AUDIT_LOG_WITNESS_KEYS")
        elif not witness.verify(body, signature.signature):
            bad("it does not verify on the checkpoint's text (changed after it was stored?)")
