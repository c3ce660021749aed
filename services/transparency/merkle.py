"""RFC 6962 / RFC 9162 Merkle tree hashing, kept as "stored hashes", and its proofs.

Pure functions, no I/O. A log of n leaves is kept append-only as a sequence of stored
hashes indexed by integers, in the layout of Go's golang.org/x/mod/sumdb/tlog (so a table
keyed by that integer holds a whole tree, and a tree of n leaves is exactly its first
`stored_hash_count(n)` rows):

* the hash of the complete subtree at `level` (2**level leaves) number `n` (its leaves
  are n·2**level … (n+1)·2**level − 1) is stored at `stored_hash_index(level, n)`;
* appending leaf n stores its leaf hash, then the hash of every complete subtree that
  leaf n completes, lowest first (`stored_hashes_for`).

A tree whose size is not a power of two is hashed from its complete subtrees, largest
(leftmost) first: RFC 6962's MTH splits D[0:n] at the largest power of two k < n, so
MTH(D[0:n]) = node(complete(0..k), MTH(D[k:n])), and the recursion on the right part
ends in complete subtrees again.

The reads go through a `HashReader`: a function given stored-hash indexes (in increasing
order, without repeats) that returns their hashes in the same order, so that a database
can answer each computation with one query.

Proofs are RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency), hash for hash as RFC
6962's PATH and SUBPROOF give them, which is also the order of Go tlog's ProveRecord and
ProveTree and of transparency-dev/merkle; the verifiers are the algorithms of RFC 9162
§2.1.3.2 and §2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HashReader",
    "MemoryTree",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hashes_for",
    "stored_hashes_for_hash",
    "stored_hashes_for_many",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in a hash (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: MTH({}) = SHA-256() (RFC 6962 §2.1)."""

HashReader = Callable[[Sequence[int]], Sequence[bytes]]
"""Reads stored hashes by index: given indexes, returns their hashes in the same order."""


class ProofError(Exception):
    """A proof, a root or a leaf hash that does not verify (the message says why)."""


# --- hashing ---------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """The leaf hash of an entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- the stored-hash layout ------------------------------------------------------------


def _check_count(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must not be negative (got {value})")


def _leaf_index(n: int) -> int:
    """Where leaf n's hash is stored: after the hashes of leaves 0..n-1 and of every
    complete subtree among them, of which there are n/2 + n/4 + … (2n − popcount(n) in all
    with the n leaves)."""
    return 2 * n - n.bit_count()


def stored_hash_index(level: int, n: int) -> int:
    """The index at which the hash of complete subtree number n of `level` is stored.

    It is stored right after the hashes that its last leaf, number (n+1)·2**level − 1,
    stores below it: that leaf's own hash and one per level under `level`.
    """
    _check_count(level, "level")
    _check_count(n, "n")
    return _leaf_index(((n + 1) << level) - 1) + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The (level, n) whose hash `stored_hash_index(level, n)` stores at `index`."""
    _check_count(index, "index")
    # The leaf that stored it is the last leaf k with _leaf_index(k) <= index; since
    # k <= _leaf_index(k) <= 2k, it lies in [index // 2, index].
    k = index // 2
    while _leaf_index(k + 1) <= index:
        k += 1
    level = index - _leaf_index(k)
    return level, k >> level


def stored_hash_count(n: int) -> int:
    """How many hashes a tree of n leaves stores (its rows are indexes 0 … count − 1)."""
    _check_count(n, "n")
    return _leaf_index(n)


def _trailing_ones(n: int) -> int:
    return ((n ^ (n + 1)).bit_length()) - 1


def stored_hashes_for_hash(n: int, leaf: bytes, read: HashReader) -> list[bytes]:
    """The hashes to store when appending leaf number n, whose leaf hash is `leaf`.

    `read` must answer for the stored hashes of the first n leaves.
    """
    _check_count(n, "n")
    if not isinstance(leaf, bytes | bytearray) or len(leaf) != HASH_SIZE:
        raise ValueError(f"a leaf hash has {HASH_SIZE} bytes")
    levels = _trailing_ones(n)
    # The left siblings, from the highest level down (increasing index order).
    indexes = [stored_hash_index(level, (n >> level) - 1) for level in reversed(range(levels))]
    siblings = _read(read, indexes)
    h = bytes(leaf)
    out = [h]
    for sibling in reversed(siblings):
        h = node_hash(sibling, h)
        out.append(h)
    return out


def stored_hashes_for(n: int, leaf: bytes, read: HashReader) -> list[bytes]:
    """The hashes to store when appending leaf number n holding `leaf` (its data): its
    leaf hash, then the hash of each complete subtree it completes, lowest first.
    """
    return stored_hashes_for_hash(n, leaf_hash(leaf), read)


def stored_hashes_for_many(start_n: int, leaves: Sequence[bytes], read: HashReader) -> list[bytes]:
    """The hashes to store when appending `leaves` (data) as leaves start_n, start_n + 1, …

    The result is what `stored_hashes_for` gives for each leaf in turn, concatenated:
    the rows stored_hash_count(start_n) … stored_hash_count(start_n + len(leaves)) − 1.
    The existing hashes needed (at most one per level) are read with one call.
    """
    _check_count(start_n, "start_n")
    base = stored_hash_count(start_n)
    # Which existing hashes the new leaves combine with: the roots of the complete
    # subtrees of the tree of start_n leaves, when a new leaf completes their parent.
    needed: set[int] = set()
    for n in range(start_n, start_n + len(leaves)):
        for level in range(_trailing_ones(n)):
            index = stored_hash_index(level, (n >> level) - 1)
            if index < base:
                needed.add(index)
    ordered = sorted(needed)
    old = dict(zip(ordered, _read(read, ordered), strict=True))
    new: list[bytes] = []

    def lookup(index: int) -> bytes:
        return old[index] if index < base else new[index - base]

    for offset, data in enumerate(leaves):
        n = start_n + offset
        h = leaf_hash(data)
        new.append(h)
        for level in range(_trailing_ones(n)):
            h = node_hash(lookup(stored_hash_index(level, (n >> level) - 1)), h)
            new.append(h)
    return new


# --- subtree hashes from storage -------------------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two k < n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _complete_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The complete subtrees, as (level, n), that make up the RFC 6962 node D[lo:hi],
    largest first. Every node of the RFC 6962 tree starts at a multiple of the largest
    power of two not above its size, so its complete subtrees are aligned."""
    out = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def _read(read: HashReader, indexes: Sequence[int]) -> list[bytes]:
    if not indexes:
        return []
    hashes = list(read(indexes))
    if len(hashes) != len(indexes):
        raise ValueError(f"the hash reader returned {len(hashes)} hashes for {len(indexes)} indexes")
    for index, h in zip(indexes, hashes, strict=True):
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise ValueError(f"the hash reader returned no {HASH_SIZE}-byte hash for stored hash {index}")
    return [bytes(h) for h in hashes]


def _range_hashes(ranges: Sequence[tuple[int, int]], read: HashReader) -> list[bytes]:
    """MTH(D[lo:hi]) for each (lo, hi) RFC 6962 node, with one call of `read`."""
    parts = [_complete_subtrees(lo, hi) for lo, hi in ranges]
    indexes = sorted({stored_hash_index(level, n) for part in parts for level, n in part})
    stored = dict(zip(indexes, _read(read, indexes), strict=True))
    out = []
    for part in parts:
        hashes = [stored[stored_hash_index(level, n)] for level, n in part]
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = node_hash(left, h)
        out.append(h)
    return out


def tree_hash(n: int, read: HashReader) -> bytes:
    """The root hash of the tree of the first n leaves (EMPTY_ROOT for 0)."""
    _check_count(n, "tree size")
    if n == 0:
        return EMPTY_ROOT
    return _range_hashes([(0, n)], read)[0]


# --- proofs ----------------------------------------------------------------------------


def _inclusion_ranges(n: int, index: int) -> list[tuple[int, int]]:
    """The nodes of RFC 6962's PATH(index, D[0:n]), in proof order (leaf side first)."""
    ranges = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(n: int, m: int) -> list[tuple[int, int]]:
    """The nodes of RFC 6962's PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true), in order."""
    ranges = []
    lo, hi = 0, n
    whole = True  # SUBPROOF's b: is D[lo:hi]'s first m - lo leaves the whole old tree?
    while m != hi:
        k = _largest_power_of_two_below(hi - lo)
        if m <= lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole = False
    if not whole:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def inclusion_proof(n: int, index: int, read: HashReader) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf `index` in the tree of the first n leaves."""
    _check_count(n, "tree size")
    _check_count(index, "leaf index")
    if index >= n:
        raise ValueError(f"leaf index {index} is not in a tree of size {n}")
    return _range_hashes(_inclusion_ranges(n, index), read)


def consistency_proof(n: int, m: int, read: HashReader) -> list[bytes]:
    """The RFC 9162 consistency proof that the tree of size m is a prefix of the tree of
    size n (1 <= m <= n; empty when m == n)."""
    _check_count(n, "tree size")
    _check_count(m, "old tree size")
    if m == 0:
        raise ValueError("a consistency proof needs an old tree size of at least 1")
    if m > n:
        raise ValueError(f"old tree size {m} is larger than the tree size {n}")
    return _range_hashes(_consistency_ranges(n, m), read)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -------------------------------------


def _check_hash(h: object, what: str) -> None:
    if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{what} is not an integer")
    if value < 0:
        raise ProofError(f"{what} is negative ({value})")
    return value


def _check_proof(proof: Iterable[bytes]) -> list[bytes]:
    hashes = list(proof)
    for i, h in enumerate(hashes):
        _check_hash(h, f"proof hash {i}")
    return [bytes(h) for h in hashes]


def root_from_inclusion_proof(n: int, index: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that an inclusion proof of leaf hash `leaf` at `index` in a tree of size
    n leads to; raises ProofError if the proof has the wrong number of hashes."""
    n = _check_size(n, "tree size")
    index = _check_size(index, "leaf index")
    _check_hash(leaf, "leaf hash")
    hashes = _check_proof(proof)
    if index >= n:
        raise ProofError(f"leaf index {index} is not in a tree of size {n}")
    fn, sn = index, n - 1
    r = bytes(leaf)
    for p in hashes:
        if sn == 0:
            raise ProofError(f"the inclusion proof has too many hashes ({len(hashes)})")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the inclusion proof has too few hashes ({len(hashes)})")
    return r


def verify_inclusion(n: int, root: bytes, index: int, leaf_hash: bytes, proof: Sequence[bytes]) -> None:
    """Check that `proof` proves leaf hash `leaf_hash` is leaf `index` of the tree of size
    n whose root is `root`; raises ProofError if not."""
    _check_hash(root, "root")
    if root_from_inclusion_proof(n, index, leaf_hash, proof) != bytes(root):
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root of tree size {n}")


def verify_consistency(n: int, root_n: bytes, m: int, root_m: bytes, proof: Sequence[bytes]) -> None:
    """Check that `proof` proves the tree of size m with root `root_m` is a prefix of the
    tree of size n with root `root_n`; raises ProofError if not."""
    n = _check_size(n, "tree size")
    m = _check_size(m, "old tree size")
    _check_hash(root_n, "root")
    _check_hash(root_m, "old root")
    hashes = _check_proof(proof)
    if m == 0:
        raise ProofError("a consistency proof needs an old tree size of at least 1")
    if m > n:
        raise ProofError(f"old tree size {m} is larger than the tree size {n}")
    if m == n:
        if hashes:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if bytes(root_m) != bytes(root_n):
            raise ProofError(f"two different roots for tree size {n}")
        return
    if not hashes:
        raise ProofError("the consistency proof is empty")
    count = len(hashes)
    if m & (m - 1) == 0:  # the old tree is a complete subtree: the proof starts above it
        hashes = [bytes(root_m), *hashes]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = hashes[0]
    for c in hashes[1:]:
        if sn == 0:
            raise ProofError(f"the consistency proof has too many hashes ({count})")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the consistency proof has too few hashes ({count})")
    if fr != bytes(root_m):
        raise ProofError(f"the consistency proof does not lead to the old root of tree size {m}")
    if sr != bytes(root_n):
        raise ProofError(f"the consistency proof does not lead to the root of tree size {n}")


# --- in memory -------------------------------------------------------------------------


class MemoryTree:
    """A tree kept in a list of stored hashes (for tests and offline recomputation)."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.size = 0

    def read(self, indexes: Sequence[int]) -> list[bytes]:
        """The HashReader over this tree's stored hashes."""
        out = []
        for index in indexes:
            if not 0 <= index < len(self.hashes):
                raise IndexError(f"no stored hash {index} in a tree of size {self.size}")
            out.append(self.hashes[index])
        return out

    def append(self, leaf_data: bytes) -> int:
        """Append a leaf holding `leaf_data`; returns its index."""
        self.hashes.extend(stored_hashes_for(self.size, leaf_data, self.read))
        self.size += 1
        return self.size - 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append many leaves at once (`stored_hashes_for_many`)."""
        self.hashes.extend(stored_hashes_for_many(self.size, leaves, self.read))
        self.size += len(leaves)

    def leaf_hash(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise IndexError(f"no leaf {index} in a tree of size {self.size}")
        return self.hashes[stored_hash_index(0, index)]

    def root(self, size: int | None = None) -> bytes:
        """The root of the first `size` leaves (all of them by default)."""
        return tree_hash(self.size if size is None else self._size(size), self.read)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self.size if size is None else self._size(size), index, self.read)

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        return consistency_proof(self.size if size is None else self._size(size), old_size, self.read)

    def _size(self, size: int) -> int:
        if size > self.size:
            raise ValueError(f"tree size {size} is larger than the tree ({self.size} leaves)")
        return size
