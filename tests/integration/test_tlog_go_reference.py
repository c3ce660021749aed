"""The transparency log's core (services/transparency) checked by independent Go code.

tests/tools/tlogcheck is a small Go program on the reference implementations: Go's
golang.org/x/mod/sumdb/tlog and sumdb/note (the Go checksum database's log), and
github.com/transparency-dev/merkle (its RFC 6962 hasher, proof verifiers and known
answers). The first run builds it with `go build` (modules from the Go module proxy, into
Go's own module cache, outside this checkout; the checksums in its go.sum) into
`.cache/tlogcheck/<hash of its sources>/`, and later runs reuse that binary. A missing
`go` or a failed build is a failure, never a skip.

- `vectors`: the references' stored hashes, tree hashes, record (inclusion) and tree
  (consistency) proofs must equal ours byte for byte;
- `verify`: checkpoints and proofs made by our code must be accepted by note.Open,
  tlog.CheckRecord / tlog.CheckTree and transparency-dev's proof verifiers, and tampered
  ones (each first shown to be rejected by our own verifiers) rejected by them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency import merkle
from services.transparency.merkle import MemoryTree, ProofError, leaf_hash
from services.transparency.note import (
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    NoteError,
    Signature,
    SignedNote,
    Signer,
    add_signature,
    cosignature_time,
    open_note,
    parse_note,
    parse_witness_key,
    sign_note,
)
from tests.support.tlogcheck import build_tlogcheck, run_tlogcheck

ORIGIN = "registry.test/coordreg/tlog"

Json = dict[str, Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.fixture(scope="module")
def tlogcheck() -> Path:
    """The built Go program, reused while its sources are unchanged."""
    return build_tlogcheck()


def run(binary: Path, *args: str, request: Json | None = None) -> Json:
    return run_tlogcheck(binary, *args, request=request)


# --- vectors ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors(tlogcheck: Path) -> Json:
    return run(tlogcheck, "vectors", "-n", "130")


def test_stored_hashes_and_tree_hashes_equal_tlogs(vectors: Json) -> None:
    v = vectors["tlog"]
    leaves = [unb64(x) for x in v["leaves_b64"]]
    assert leaves == [str(i).encode() for i in range(130)]
    one_by_one = MemoryTree()
    for leaf in leaves:
        one_by_one.append(leaf)
    batched = MemoryTree()
    for start in range(0, len(leaves), 17):
        batched.extend(leaves[start : start + 17])
    expected = [unb64(x) for x in v["stored_hashes_b64"]]
    assert one_by_one.hashes == expected
    assert batched.hashes == expected
    assert [merkle.stored_hash_count(n) for n in range(len(leaves) + 1)] == v["stored_hash_counts"]
    for item in v["split_indexes"]:
        assert merkle.split_stored_hash_index(item["index"]) == (item["level"], item["n"])
        assert merkle.stored_hash_index(item["level"], item["n"]) == item["index"]
    roots = [unb64(x) for x in v["tree_hashes_b64"]]
    assert len(roots) == len(leaves) + 1
    assert roots[0] == merkle.EMPTY_ROOT
    assert [one_by_one.root(size) for size in range(len(leaves) + 1)] == roots


def test_inclusion_and_consistency_proofs_equal_tlogs(vectors: Json) -> None:
    v = vectors["tlog"]
    tree = MemoryTree()
    tree.extend([unb64(x) for x in v["leaves_b64"]])
    assert len(v["record_proofs"]) > 1000 and len(v["tree_proofs"]) > 1000
    for item in v["record_proofs"]:
        size, index = item["size"], item["index"]
        theirs = [unb64(x) for x in item["proof"]]
        assert tree.inclusion_proof(index, size) == theirs, (size, index)
        merkle.verify_inclusion(size, tree.root(size), index, tree.leaf_hash(index), theirs)
    for item in v["tree_proofs"]:
        size, old = item["size"], item["old_size"]
        theirs = [unb64(x) for x in item["proof"]]
        assert tree.consistency_proof(old, size) == theirs, (size, old)
        merkle.verify_consistency(size, tree.root(size), old, tree.root(old), theirs)


def test_transparency_dev_known_answers(vectors: Json) -> None:
    v = vectors["merkle_testonly"]
    leaves = [unb64(x) for x in v["leaves_b64"]]
    tree = MemoryTree()
    tree.extend(leaves)
    assert [tree.root(size) for size in range(len(leaves) + 1)] == [unb64(x) for x in v["root_hashes_b64"]]
    for level, row in enumerate(v["node_hashes_b64"]):
        for n, h in enumerate(row):
            assert tree.hashes[merkle.stored_hash_index(level, n)] == unb64(h), (level, n)
    for item in v["inclusion_proofs"]:
        theirs = [unb64(x) for x in item["proof"]]
        assert tree.inclusion_proof(item["index"], item["size"]) == theirs, item
    for item in v["consistency_proofs"]:
        theirs = [unb64(x) for x in item["proof"]]
        assert tree.consistency_proof(item["old_size"], item["size"]) == theirs, item


# --- verify: honest and tampered -------------------------------------------------------

LOG = Signer(ORIGIN, Ed25519PrivateKey.generate())
WITNESS = Signer("witness.test/w1", Ed25519PrivateKey.generate())
IMPOSTOR = Signer(ORIGIN, Ed25519PrivateKey.generate())  # the log's name, another key
SIZE = 77


LEAF_DATA = [hashlib.sha256(b"event %d" % i).digest() + b"{}" * (i % 5) for i in range(SIZE + 20)]


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    tree = MemoryTree()
    tree.extend(LEAF_DATA)
    return tree


def checkpoint(tree: MemoryTree, size: int = SIZE, signer: Signer = LOG) -> str:
    return sign_note(Checkpoint(ORIGIN, size, tree.root(size)).body(), [signer])


def inclusion_item(tree: MemoryTree, index: int, size: int, *, explicit_root: bool = False) -> Json:
    item: Json = {
        "leaf_hash_b64": b64(tree.leaf_hash(index)),
        "index": index,
        "size": size,
        "proof": [b64(h) for h in tree.inclusion_proof(index, size)],
    }
    if explicit_root or size != SIZE:
        item["root_b64"] = b64(tree.root(size))
    return item


def consistency_item(tree: MemoryTree, old: int, size: int) -> Json:
    item: Json = {
        "old_size": old,
        "old_root_b64": b64(tree.root(old)),
        "size": size,
        "proof": [b64(h) for h in tree.consistency_proof(old, size)],
    }
    if size != SIZE:
        item["root_b64"] = b64(tree.root(size))
    return item


def python_inclusion(tree: MemoryTree, item: Json) -> None:
    """Our verifier on an inclusion item (raises ProofError)."""
    root = unb64(item["root_b64"]) if "root_b64" in item else tree.root(SIZE)
    merkle.verify_inclusion(
        item["size"], root, item["index"], unb64(item["leaf_hash_b64"]), [unb64(h) for h in item["proof"]]
    )


def python_consistency(tree: MemoryTree, item: Json) -> None:
    root = unb64(item["root_b64"]) if "root_b64" in item else tree.root(SIZE)
    merkle.verify_consistency(
        item["size"], root, item["old_size"], unb64(item["old_root_b64"]), [unb64(h) for h in item["proof"]]
    )


def honest_pairs() -> Iterator[tuple[int, int]]:
    for size in (1, 2, 3, 7, 8, 9, 31, 32, 33, 64, SIZE, SIZE + 20):
        for index in sorted({0, 1, size // 2, size - 2, size - 1}):
            if 0 <= index < size:
                yield size, index


def test_go_accepts_our_checkpoints_and_proofs(tlogcheck: Path, tree: MemoryTree) -> None:
    note = add_signature(checkpoint(tree), WITNESS)  # a cosigned checkpoint
    inclusion = [inclusion_item(tree, index, size) for size, index in honest_pairs()]
    by_data = inclusion_item(tree, 5, SIZE)
    del by_data["leaf_hash_b64"]
    by_data["leaf_data_b64"] = b64(LEAF_DATA[5])  # Go hashes the leaf itself
    inclusion.append(by_data)
    consistency = [consistency_item(tree, old, size) for size, old in honest_pairs() if old >= 1]
    consistency += [consistency_item(tree, size, size) for size in (1, 13, SIZE)]
    consistency.append(consistency_item(tree, 13, SIZE))
    assert leaf_hash(LEAF_DATA[5]) == tree.leaf_hash(5)
    for item in inclusion:
        if "leaf_hash_b64" in item:
            python_inclusion(tree, item)
    for item in consistency:
        python_consistency(tree, item)

    result = run(
        tlogcheck,
        "verify",
        request={
            "verifier_key": LOG.verifier().key(),
            "origin": ORIGIN,
            "checkpoint": note,
            "inclusion": inclusion,
            "consistency": consistency,
        },
    )
    assert result["checkpoint"]["ok"], result["checkpoint"]
    assert result["checkpoint"]["size"] == SIZE
    assert result["checkpoint"]["root_b64"] == b64(tree.root(SIZE))
    assert result["checkpoint"]["signed_by"] == [ORIGIN]  # the witness is unknown: ignored
    bad = [
        (item, r)
        for item, r in zip(inclusion + consistency, result["inclusion"] + result["consistency"], strict=True)
        if not r["ok"]
    ]
    assert not bad, bad
    assert len(result["inclusion"]) == len(inclusion) and len(result["consistency"]) == len(consistency)

    both = run(
        tlogcheck,
        "verify",
        request={"verifier_keys": [LOG.verifier().key(), WITNESS.verifier().key()], "checkpoint": note},
    )
    assert both["checkpoint"]["ok"] and both["checkpoint"]["signed_by"] == [ORIGIN, WITNESS.name]


def flip_b64(text: str, byte: int = 0) -> str:
    raw = bytearray(unb64(text))
    raw[byte % len(raw)] ^= 0x01
    return b64(bytes(raw))


def tampered_items(tree: MemoryTree) -> tuple[list[tuple[str, Json]], list[tuple[str, Json]]]:
    inclusion: list[tuple[str, Json]] = []
    honest = inclusion_item(tree, 41, SIZE)
    for at in range(len(honest["proof"])):
        inclusion.append(
            (
                f"proof hash {at} flipped",
                {
                    **honest,
                    "proof": [
                        *honest["proof"][:at],
                        flip_b64(honest["proof"][at], at),
                        *honest["proof"][at + 1 :],
                    ],
                },
            )
        )
    inclusion += [
        ("a hash missing", {**honest, "proof": honest["proof"][:-1]}),
        ("an extra hash", {**honest, "proof": [*honest["proof"], honest["proof"][0]]}),
        ("wrong leaf hash", {**honest, "leaf_hash_b64": flip_b64(honest["leaf_hash_b64"])}),
        ("wrong index", {**honest, "index": 40}),
        ("wrong index", {**honest, "index": 43}),
        ("index outside the tree", {**honest, "index": SIZE}),
        ("wrong root", {**honest, "root_b64": flip_b64(b64(tree.root(SIZE)), 7)}),
        ("another size's root", {**honest, "root_b64": b64(tree.root(SIZE + 1)), "size": SIZE + 1}),
        (
            "wrong size, the checkpoint's root",
            {**honest, "root_b64": b64(tree.root(SIZE)), "size": SIZE * 2 + 1},
        ),
        ("wrong size, the checkpoint's root", {**honest, "root_b64": b64(tree.root(SIZE)), "size": 64}),
    ]
    consistency: list[tuple[str, Json]] = []
    honest_c = consistency_item(tree, 13, SIZE)
    for at in range(len(honest_c["proof"])):
        consistency.append(
            (
                f"proof hash {at} flipped",
                {
                    **honest_c,
                    "proof": [
                        *honest_c["proof"][:at],
                        flip_b64(honest_c["proof"][at], at),
                        *honest_c["proof"][at + 1 :],
                    ],
                },
            )
        )
    consistency += [
        ("a hash missing", {**honest_c, "proof": honest_c["proof"][1:]}),
        ("an extra hash", {**honest_c, "proof": [*honest_c["proof"], honest_c["proof"][-1]]}),
        ("wrong old root", {**honest_c, "old_root_b64": flip_b64(honest_c["old_root_b64"], 3)}),
        ("another size's old root", {**honest_c, "old_root_b64": b64(tree.root(12))}),
        ("wrong old size", {**honest_c, "old_size": 12}),
        ("wrong old size", {**honest_c, "old_size": 14}),
        ("wrong root", {**honest_c, "root_b64": flip_b64(b64(tree.root(SIZE)), 31)}),
        ("wrong size", {**honest_c, "root_b64": b64(tree.root(SIZE + 1)), "size": SIZE + 1}),
        (
            "old size above the size",
            {**honest_c, "old_size": SIZE + 1, "old_root_b64": b64(tree.root(SIZE + 1))},
        ),
        (
            "equal sizes, different roots",
            {**consistency_item(tree, SIZE, SIZE), "old_root_b64": b64(tree.root(SIZE - 1))},
        ),
    ]
    return inclusion, consistency


def test_go_rejects_tampered_proofs(tlogcheck: Path, tree: MemoryTree) -> None:
    inclusion, consistency = tampered_items(tree)
    for what, item in inclusion:
        with pytest.raises(ProofError):
            python_inclusion(tree, item)
            pytest.fail(f"our verifier accepted inclusion: {what}")
    for what, item in consistency:
        with pytest.raises(ProofError):
            python_consistency(tree, item)
            pytest.fail(f"our verifier accepted consistency: {what}")
    result = run(
        tlogcheck,
        "verify",
        request={
            "verifier_key": LOG.verifier().key(),
            "checkpoint": checkpoint(tree),
            "inclusion": [item for _, item in inclusion],
            "consistency": [item for _, item in consistency],
        },
    )
    assert result["checkpoint"]["ok"], result["checkpoint"]
    accepted = [
        what
        for (what, _), r in zip(
            inclusion + consistency, result["inclusion"] + result["consistency"], strict=True
        )
        if r["ok"]
    ]
    assert not accepted, f"Go accepted tampered proofs: {accepted}"
    errors = [r["error"] for r in result["inclusion"] + result["consistency"]]
    assert any("tlog.CheckRecord" in e for e in errors) and any("tlog.CheckTree" in e for e in errors), errors


def test_go_rejects_tampered_checkpoints(tlogcheck: Path, tree: MemoryTree) -> None:
    good = checkpoint(tree)
    body, signatures = good.split("\n\n")
    forged_size = Checkpoint(ORIGIN, SIZE + 1, tree.root(SIZE)).body() + "\n" + signatures
    forged_root = Checkpoint(ORIGIN, SIZE, tree.root(SIZE + 1)).body() + "\n" + signatures
    raw_sig = bytearray(unb64(signatures.split(" ")[-1].strip()))
    raw_sig[10] ^= 0x80
    flipped_sig = body + "\n\n" + f"— {ORIGIN} {b64(bytes(raw_sig))}\n"
    cases = {
        "signed by another key": checkpoint(tree, signer=IMPOSTOR),
        "signed by a witness only": checkpoint(tree, signer=WITNESS),
        "modified size": forged_size,
        "modified root": forged_root,
        "flipped signature bit": flipped_sig,
        "no blank line": good.replace("\n\n", "\n"),
        "no signature": body + "\n\n",
    }
    for what, text in cases.items():
        with pytest.raises(NoteError):
            open_note(text, [LOG.verifier()])
            pytest.fail(f"our open_note accepted: {what}")
        result = run(
            tlogcheck,
            "verify",
            request={
                "verifier_key": LOG.verifier().key(),
                "checkpoint": text,
                "inclusion": [inclusion_item(tree, 3, SIZE)],
                "consistency": [consistency_item(tree, 5, SIZE)],
            },
        )
        assert not result["checkpoint"]["ok"], what
        assert "note.Open" in result["checkpoint"]["error"], (what, result["checkpoint"])
        # proofs that lean on an unverified checkpoint are not accepted
        assert not result["inclusion"][0]["ok"] and not result["consistency"][0]["ok"], what
    wrong_origin = run(
        tlogcheck,
        "verify",
        request={"verifier_key": LOG.verifier().key(), "origin": "another.test/log", "checkpoint": good},
    )
    assert not wrong_origin["checkpoint"]["ok"]


def test_cosignatures_v1_agree_with_torchwood(tlogcheck: Path) -> None:
    """Our cosignature/v1 (services/transparency/note.py) and filippo.io/torchwood's (what
    litewitness signs with) accept each other's lines and write the same vkey; a line with
    its timestamp changed is refused by both."""
    seed = bytes(range(7, 39))
    ours = Cosigner("witness.test/so-tttt", Ed25519PrivateKey.from_private_bytes(seed))
    body = Checkpoint(ORIGIN, 1234, hashlib.sha256(b"root").digest()).body()
    signed = sign_note(body, [LOG])
    cosigned = add_signature(signed, ours)
    cosigners = [{"name": ours.name, "seed_b64": b64(seed)}]
    go = run(
        tlogcheck,
        "verify",
        request={"verifier_key": LOG.verifier().key(), "cosigners": cosigners, "checkpoint": cosigned},
    )["checkpoint"]
    assert go["ok"] and go["signed_by"] == [ORIGIN, ours.name], go
    assert go["cosigner_keys"] == [ours.verifier().key()]
    # torchwood's own line (its clock, now) verifies here, with the vkey torchwood wrote.
    theirs = parse_witness_key(go["cosigner_keys"][0])
    assert isinstance(theirs, CosignatureVerifier)
    _, verified = open_note(go["cosigned_note"], [LOG.verifier(), theirs])
    assert [s.name for s in verified] == [ORIGIN, ours.name]
    # The timestamp moved by one second: neither implementation accepts the line.
    line = parse_note(cosigned).signatures[-1]
    moved = Signature(
        line.name, line.key_id, (cosignature_time(line) + 1).to_bytes(8, "big") + line.signature[8:]
    )
    forged = SignedNote(body, [*parse_note(signed).signatures, moved]).format()
    refused = run(
        tlogcheck,
        "verify",
        request={"verifier_key": LOG.verifier().key(), "cosigners": cosigners, "checkpoint": forged},
    )["checkpoint"]
    assert not refused["ok"] and "note.Open" in refused["error"], refused
    with pytest.raises(NoteError, match="does not verify"):
        open_note(forged, [LOG.verifier(), ours.verifier()])
