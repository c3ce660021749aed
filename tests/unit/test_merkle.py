"""The transparency log's Merkle tree (services/transparency/merkle.py), pure.

Checked against a naive recursive RFC 6962 implementation written here (MTH, PATH,
SUBPROOF as RFC 6962 §2.1 writes them), with property tests that every honest proof
verifies and that any single change is rejected. The Go reference implementations check
the same code in tests/integration/test_tlog_go_reference.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.transparency import merkle
from services.transparency.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    split_stored_hash_index,
    stored_hash_count,
    stored_hash_index,
    stored_hashes_for,
    stored_hashes_for_many,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# --- the naive reference (RFC 6962 §2.1, recursive) -------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(data: Sequence[bytes]) -> bytes:
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = _k(len(data))
    return hashlib.sha256(b"\x01" + mth(data[:k]) + mth(data[k:])).digest()


def path(m: int, data: Sequence[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = _k(len(data))
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def subproof(m: int, data: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if whole else [mth(data)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, data[:k], whole), mth(data[k:])]
    return [*subproof(m - k, data[k:], False), mth(data[:k])]


# --- one tree for the property tests ---------------------------------------------------

LEAVES = [f"event {i}".encode() for i in range(300)]
TREE = MemoryTree()
for _leaf in LEAVES:
    TREE.append(_leaf)
ROOTS = [TREE.root(size) for size in range(len(LEAVES) + 1)]


def flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


# --- hashing and layout ----------------------------------------------------------------


def test_hashes_are_rfc6962() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    # transparency-dev/merkle's testonly known answers (RFC 6962's hasher)
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    left, right = leaf_hash(b""), leaf_hash(b"\x00")
    assert node_hash(left, right).hex() == "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"


def test_stored_hash_layout_matches_tlogs_documented_order() -> None:
    # tlog: level 0's n'th hash at n + n/2 + n/4 + …, and level L's n'th hash right
    # after level L-1's (2n+1)'th hash.
    assert [stored_hash_index(0, n) for n in range(8)] == [0, 1, 3, 4, 7, 8, 10, 11]
    assert [stored_hash_index(1, n) for n in range(4)] == [2, 5, 9, 12]
    assert [stored_hash_index(2, n) for n in range(2)] == [6, 13]
    assert stored_hash_index(3, 0) == 14
    for level in range(1, 12):
        for n in range(50):
            assert stored_hash_index(level, n) == stored_hash_index(level - 1, 2 * n + 1) + 1
    for index in range(5000):
        level, n = split_stored_hash_index(index)
        assert stored_hash_index(level, n) == index
    assert [stored_hash_count(n) for n in range(9)] == [0, 1, 3, 4, 7, 8, 10, 11, 15]


def test_memory_tree_stores_every_complete_subtree() -> None:
    assert len(TREE.hashes) == stored_hash_count(TREE.size)
    for index, stored in enumerate(TREE.hashes):
        level, n = split_stored_hash_index(index)
        assert stored == mth(LEAVES[n << level : (n + 1) << level])


def test_roots_equal_the_naive_implementation() -> None:
    for size in range(len(LEAVES) + 1):
        assert ROOTS[size] == mth(LEAVES[:size]), size
    assert tree_hash(0, TREE.read) == EMPTY_ROOT


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=70))
def test_any_leaves_hash_like_the_naive_implementation(leaves: list[bytes]) -> None:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    assert tree.root() == mth(leaves)
    for size in range(len(leaves) + 1):
        assert tree.root(size) == mth(leaves[:size])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 80), st.lists(st.integers(0, 20), max_size=8))
def test_batch_append_equals_one_at_a_time(start: int, batches: list[int]) -> None:
    tree = MemoryTree()
    tree.extend(LEAVES[:start])
    position = start
    for count in batches:
        tree.extend(LEAVES[position : position + count])
        position += count
    assert tree.hashes == TREE.hashes[: stored_hash_count(position)]


def test_batch_append_reads_the_existing_hashes_once() -> None:
    calls: list[list[int]] = []

    def read(indexes: Sequence[int]) -> list[bytes]:
        calls.append(list(indexes))
        return TREE.read(indexes)

    new = stored_hashes_for_many(100, LEAVES[100:200], read)
    assert new == TREE.hashes[stored_hash_count(100) : stored_hash_count(200)]
    assert len(calls) == 1
    assert calls[0] == sorted(set(calls[0]))
    assert all(index < stored_hash_count(100) for index in calls[0])


def test_reads_are_one_sorted_batch() -> None:
    calls: list[list[int]] = []

    def read(indexes: Sequence[int]) -> list[bytes]:
        calls.append(list(indexes))
        return TREE.read(indexes)

    tree_hash(237, read)
    inclusion_proof(237, 100, read)
    consistency_proof(237, 77, read)
    stored_hashes_for(237, LEAVES[237], read)
    assert len(calls) == 4
    for call in calls:
        assert call == sorted(set(call))
        # only rows a tree of 237 leaves has: proofs for an older size stay valid to
        # compute while the tree grows
        assert call[-1] < stored_hash_count(237)


# --- proofs: the naive reference and RFC 9162 order ------------------------------------


def test_proofs_equal_rfc6962_path_and_subproof() -> None:
    for n in range(1, 70):
        for index in range(n):
            assert TREE.inclusion_proof(index, n) == path(index, LEAVES[:n]), (n, index)
        for m in range(1, n + 1):
            assert TREE.consistency_proof(m, n) == subproof(m, LEAVES[:n], True), (n, m)


def test_rfc9162_examples() -> None:
    # RFC 9162 §2.1.5's seven-leaf tree: leaves a … f and d6; g = (a, b), h = (c, d),
    # i = (e, f), j = d6, k = (g, h), l = (i, j).
    d = LEAVES
    a, b, c, dd, e, f, j = (leaf_hash(x) for x in d[:7])
    g, h, i = node_hash(a, b), node_hash(c, dd), node_hash(e, f)
    k, l_ = node_hash(g, h), node_hash(i, j)
    assert TREE.root(7) == node_hash(k, l_)
    assert TREE.inclusion_proof(0, 7) == [b, h, l_]
    assert TREE.inclusion_proof(3, 7) == [c, g, l_]
    assert TREE.inclusion_proof(4, 7) == [f, j, k]
    assert TREE.consistency_proof(3, 7) == [c, dd, g, l_]
    assert TREE.consistency_proof(4, 7) == [l_]
    assert TREE.consistency_proof(6, 7) == [i, j, k]


# --- proofs: every honest proof verifies, every single change is rejected --------------

sizes_and_index = st.integers(1, len(LEAVES)).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1)))
sizes_and_old = st.integers(1, len(LEAVES)).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n)))


@settings(max_examples=300, deadline=None)
@given(sizes_and_index)
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    n, index = case
    proof = TREE.inclusion_proof(index, n)
    verify_inclusion(n, ROOTS[n], index, leaf_hash(LEAVES[index]), proof)


@settings(max_examples=300, deadline=None)
@given(sizes_and_index, st.data())
def test_a_changed_inclusion_proof_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    n, index = case
    proof = TREE.inclusion_proof(index, n)
    leaf = leaf_hash(LEAVES[index])
    root = ROOTS[n]
    bit = data.draw(st.integers(0, 255), "bit")
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), "at")
        changed = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(ProofError):
            verify_inclusion(n, root, index, leaf, changed)
        with pytest.raises(ProofError):  # a missing hash
            verify_inclusion(n, root, index, leaf, proof[:at] + proof[at + 1 :])
        if len(proof) > 1:
            with pytest.raises(ProofError):  # the same hashes in another order
                verify_inclusion(n, root, index, leaf, proof[::-1])
    extra = data.draw(st.sampled_from(TREE.hashes), "extra")
    at = data.draw(st.integers(0, len(proof)), "extra at")
    with pytest.raises(ProofError):
        verify_inclusion(n, root, index, leaf, [*proof[:at], extra, *proof[at:]])
    with pytest.raises(ProofError):
        verify_inclusion(n, root, index, flip(leaf, bit), proof)
    with pytest.raises(ProofError):
        verify_inclusion(n, flip(root, bit), index, leaf, proof)
    with pytest.raises(ProofError):  # the leaf data in place of its hash, a wrong length
        verify_inclusion(n, root, index, LEAVES[index], proof)
    # Another index, or another size with that size's root: rejected, unless the very
    # same hashes are the honest proof there (then the claim is true).
    other = data.draw(st.integers(0, n - 1), "other index")
    if other != index:
        with pytest.raises(ProofError):
            verify_inclusion(n, root, other, leaf, proof)
    other_n = data.draw(st.integers(index + 1, len(LEAVES)), "other size")
    if other_n != n:
        if TREE.inclusion_proof(index, other_n) == proof:
            verify_inclusion(other_n, ROOTS[other_n], index, leaf, proof)
        else:
            with pytest.raises(ProofError):
                verify_inclusion(other_n, ROOTS[other_n], index, leaf, proof)
    with pytest.raises(ProofError):  # an index outside the tree
        verify_inclusion(n, root, n, leaf, proof)


@settings(max_examples=300, deadline=None)
@given(sizes_and_old)
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    n, m = case
    proof = TREE.consistency_proof(m, n)
    verify_consistency(n, ROOTS[n], m, ROOTS[m], proof)


@settings(max_examples=300, deadline=None)
@given(sizes_and_old, st.data())
def test_a_changed_consistency_proof_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    n, m = case
    proof = TREE.consistency_proof(m, n)
    bit = data.draw(st.integers(0, 255), "bit")
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), "at")
        with pytest.raises(ProofError):
            verify_consistency(
                n, ROOTS[n], m, ROOTS[m], [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
            )
        with pytest.raises(ProofError):
            verify_consistency(n, ROOTS[n], m, ROOTS[m], proof[:at] + proof[at + 1 :])
    extra = data.draw(st.sampled_from(TREE.hashes), "extra")
    at = data.draw(st.integers(0, len(proof)), "extra at")
    with pytest.raises(ProofError):
        verify_consistency(n, ROOTS[n], m, ROOTS[m], [*proof[:at], extra, *proof[at:]])
    with pytest.raises(ProofError):
        verify_consistency(n, flip(ROOTS[n], bit), m, ROOTS[m], proof)
    with pytest.raises(ProofError):
        verify_consistency(n, ROOTS[n], m, flip(ROOTS[m], bit), proof)
    # Other sizes with their own roots: rejected unless these hashes are the honest proof.
    other_m = data.draw(st.integers(1, n), "other old size")
    other_n = data.draw(st.integers(m, len(LEAVES)), "other size")
    for new, old in ((n, other_m), (other_n, m)):
        if (new, old) == (n, m):
            continue
        if TREE.consistency_proof(old, new) == proof:
            verify_consistency(new, ROOTS[new], old, ROOTS[old], proof)
        else:
            with pytest.raises(ProofError):
                verify_consistency(new, ROOTS[new], old, ROOTS[old], proof)
    # The old root claimed for another size (a stale root): rejected.
    if other_m != m:
        with pytest.raises(ProofError):
            verify_consistency(n, ROOTS[n], other_m, ROOTS[m], proof)


# --- arguments -------------------------------------------------------------------------


def test_bad_arguments_raise_value_errors_with_a_message() -> None:
    with pytest.raises(ValueError, match="leaf index 5 is not in a tree of size 5"):
        inclusion_proof(5, 5, TREE.read)
    with pytest.raises(ValueError, match="must not be negative"):
        inclusion_proof(5, -1, TREE.read)
    with pytest.raises(ValueError, match="must not be negative"):
        tree_hash(-1, TREE.read)
    with pytest.raises(ValueError, match="old tree size 6 is larger than the tree size 5"):
        consistency_proof(5, 6, TREE.read)
    with pytest.raises(ValueError, match="at least 1"):
        consistency_proof(5, 0, TREE.read)
    with pytest.raises(ValueError, match="must not be negative"):
        stored_hash_index(0, -1)
    with pytest.raises(ValueError, match="must not be negative"):
        split_stored_hash_index(-3)
    with pytest.raises(TypeError):
        stored_hash_count(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="larger than the tree"):
        TREE.root(len(LEAVES) + 1)
    assert consistency_proof(5, 5, TREE.read) == []


def test_verifiers_reject_bad_arguments_with_proof_errors() -> None:
    leaf = leaf_hash(LEAVES[0])
    with pytest.raises(ProofError, match="not in a tree"):
        verify_inclusion(0, EMPTY_ROOT, 0, leaf, [])
    with pytest.raises(ProofError, match="negative"):
        verify_inclusion(3, ROOTS[3], -1, leaf, TREE.inclusion_proof(0, 3))
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(1, ROOTS[1][:31], 0, leaf, [])
    with pytest.raises(ProofError, match="at least 1"):
        verify_consistency(3, ROOTS[3], 0, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="larger"):
        verify_consistency(3, ROOTS[3], 4, ROOTS[4], [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(3, ROOTS[3], 3, ROOTS[3], [ROOTS[3]])
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(3, ROOTS[3], 3, ROOTS[2], [])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(4, ROOTS[4], 3, ROOTS[3], [])
    verify_consistency(3, ROOTS[3], 3, ROOTS[3], [])
    verify_inclusion(1, ROOTS[1], 0, leaf, [])


def test_a_reader_that_answers_wrongly_is_an_error() -> None:
    with pytest.raises(ValueError, match="returned 0 hashes"):
        tree_hash(3, lambda indexes: [])
    with pytest.raises(ValueError, match="32-byte"):
        tree_hash(1, lambda indexes: [b"short"])
    with pytest.raises(IndexError):
        tree_hash(len(LEAVES) + 1, TREE.read)


def test_the_core_does_no_io() -> None:
    source = merkle.__loader__.get_source(merkle.__name__)  # type: ignore[union-attr]
    assert source is not None
    for name in ("asyncpg", "aiokafka", "fastapi", "httpx", "open(", "socket", "os."):
        assert name not in source, name
