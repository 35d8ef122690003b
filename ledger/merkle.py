"""The log as an RFC 9162 Merkle tree (section 2.1): hashes, roots, proofs. Pure code.

Leaf *i* is ``leaf_hash(bytes)`` of the *i*-th event (0-based) in the store's global
order, where ``bytes`` is the event's exact JSON line (as ``ledger log --order recorded
--include-retracted -o jsonl`` prints it and as NATS carries it, without the newline).
Interior nodes are ``node_hash(left, right)``.  The tree of ``n`` leaves splits at the
largest power of two below ``n`` (RFC 9162 2.1.1), so every left subtree is *perfect*:
``2**level`` leaves starting at ``index * 2**level``.  A tree is fully described by those
perfect subtrees; everything here asks for them through ``NodeSource.node(level, index)``.

API (all hashes are 32-byte ``bytes``):

- ``leaf_hash``, ``node_hash``, ``EMPTY_ROOT``, ``root(leaf_hashes)``.
- ``Frontier``: the roots of the perfect subtrees that make up a tree of ``size`` leaves
  (at most one per bit of ``size``).  Appending is O(log n) and needs nothing else;
  ``root()`` is the tree's root.  What a verifying consumer keeps while it reads the log.
- ``MemoryTree``: a whole tree in memory (a ``NodeSource``), for tests and small logs.
- ``inclusion_proof``, ``consistency_proof``: RFC 9162 2.1.3.1 / 2.1.4.1 paths, reading
  nodes from any ``NodeSource`` (the store answers with O(log n) node reads).
- ``verify_inclusion``, ``verify_consistency``: RFC 9162 2.1.3.2 / 2.1.4.2; they raise
  ``ProofError`` saying what does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 9162: the hash of the empty string)."""

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof does not verify (or is malformed): the message says why."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf (one event's exact JSON bytes)."""
    h = _sha256(b"\x00")
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def leaf_hashes(payloads: Iterable[bytes]) -> list[bytes]:
    """``leaf_hash`` of each payload (one list comprehension: the hot loop of a verify)."""
    sha = _sha256
    return [sha(b"\x00" + p).digest() for p in payloads]


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree given its ``2**k`` leaf (or node) hashes."""
    level = list(hashes)
    while len(level) > 1:
        level = [
            _sha256(b"\x01" + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=True)
        ]
    return level[0]


def root(hashes: Sequence[bytes]) -> bytes:
    """The root of the tree with these leaf hashes (RFC 9162 MTH)."""
    frontier = Frontier()
    frontier.extend(hashes)
    return frontier.root()


def largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


NodeSink = Callable[[int, int, bytes], None]
"""Called with ``(level, index, hash)`` for each perfect subtree a ``Frontier`` completes."""
NodesSink = Callable[[int, int, list[bytes]], None]
"""Called with ``(level, first index, hashes)`` for a run of subtrees of one level that
``Frontier.extend`` completes at once (one call, not one per node: a verify's hot path)."""


class Frontier:
    """The compact state of a tree: the roots of its perfect subtrees, left to right.

    ``hashes[j]`` is the root of the subtree of ``2**levels[j]`` leaves; the levels are
    the set bits of ``size``, highest first.  ``root()`` folds them right to left, which
    is RFC 9162's MTH.  ``on_node`` (optional) hears every perfect subtree completed at
    ``min_level`` or above, in order of completion (per level, in index order): the store
    writes those nodes so that proofs need O(log n) reads.  With ``on_nodes`` as well,
    ``extend`` reports each level of an aligned block in one ``on_nodes`` call instead
    (``on_node`` still hears the nodes completed one at a time).
    """

    __slots__ = ("hashes", "min_level", "on_node", "on_nodes", "size")

    def __init__(
        self,
        size: int = 0,
        hashes: Sequence[bytes] = (),
        *,
        on_node: NodeSink | None = None,
        min_level: int = 0,
        on_nodes: NodesSink | None = None,
    ):
        if len(hashes) != size.bit_count() or size < 0:
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} frontier hashes")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("frontier hashes are 32 bytes")
        self.size = size
        self.hashes = list(hashes)
        self.on_node = on_node
        self.min_level = min_level
        self.on_nodes = on_nodes

    @property
    def levels(self) -> list[int]:
        """The level of each hash in ``hashes`` (the set bits of ``size``, highest first)."""
        return [b for b in range(self.size.bit_length() - 1, -1, -1) if self.size >> b & 1]

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (O(log n) node hashes, amortised 1)."""
        self._push(leaf, 0)

    def _push(self, h: bytes, level: int) -> None:
        # A subtree of 2**level leaves joins the right edge; equal-sized neighbours merge.
        hashes, size, on_node = self.hashes, self.size, self.on_node
        added = 1 << level
        index = size >> level
        if on_node is not None and level >= self.min_level:
            on_node(level, index, h)
        while size >> level & 1:
            h = _sha256(b"\x01" + hashes.pop() + h).digest()
            level += 1
            index >>= 1
            if on_node is not None and level >= self.min_level:
                on_node(level, index, h)
        self.size = size + added
        hashes.append(h)

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Add many leaf hashes; aligned blocks are reduced pairwise (fewer Python steps)."""
        i, n = 0, len(leaves)
        while i < n:
            # The largest block that keeps size aligned and fits in what is left.
            size = self.size
            align = (size & -size) if size else 1 << 62
            block = min(align, 1 << ((n - i).bit_length() - 1))
            if block == 1:
                self._push(leaves[i], 0)
                i += 1
                continue
            level_hashes = list(leaves[i : i + block])
            level = 0
            base = size  # leaf index of the block's first leaf
            on_node, on_nodes = self.on_node, self.on_nodes
            if on_node is not None and self.min_level == 0:
                if on_nodes is not None:
                    on_nodes(0, base, level_hashes)
                else:
                    for j, h in enumerate(level_hashes):
                        on_node(0, base + j, h)
            while len(level_hashes) > 1:
                level_hashes = [
                    _sha256(b"\x01" + a + b).digest()
                    for a, b in zip(level_hashes[::2], level_hashes[1::2], strict=True)
                ]
                level += 1
                if on_node is not None and level >= self.min_level and len(level_hashes) > 1:
                    first = base >> level
                    if on_nodes is not None:
                        on_nodes(level, first, level_hashes)
                    else:
                        for j, h in enumerate(level_hashes):
                            on_node(level, first + j, h)
            self._push(level_hashes[0], level)  # reports the block's root and any merges
            i += block

    def root(self) -> bytes:
        """The root of the tree (``EMPTY_ROOT`` for size 0)."""
        hashes = self.hashes
        if not hashes:
            return EMPTY_ROOT
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h

    def to_bytes(self) -> bytes:
        """The size (8 bytes, big-endian) and the hashes, concatenated."""
        return self.size.to_bytes(8, "big") + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        if len(data) < 8:
            raise ValueError("a frontier is at least 8 bytes")
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        if len(body) != HASH_SIZE * size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} hashes")
        return cls(size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)])


class NodeSource(Protocol):
    """Anything that can give the root of a perfect subtree of the tree."""

    def node(self, level: int, index: int) -> bytes:
        """The root of the ``2**level`` leaves starting at leaf ``index * 2**level``."""
        ...


def subtree_hash(source: NodeSource, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, where ``start`` is a multiple of the largest power
    of two not above ``end - start`` (true of every range an RFC 9162 proof names)."""
    n = end - start
    if n <= 0:
        raise ValueError("an empty range has no subtree hash")
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        if start % n:
            raise ValueError(f"[{start}, {end}) is not an aligned subtree")
        return source.node(level, start >> level)
    k = largest_power_of_two_below(n)
    return node_hash(subtree_hash(source, start, start + k), subtree_hash(source, start + k, end))


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162
    2.1.3.1), leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            path.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(source, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(source: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the tree of
    ``new_size`` leaves (RFC 9162 2.1.4.1), leaf-side first."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    path: list[bytes] = []
    # SUBPROOF(m, D[start:end], b), unrolled; nodes are collected root-side first.
    m, start, end, whole = old_size, 0, new_size, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                path.append(subtree_hash(source, start, end))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            path.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(source, start, start + k))
            m -= k
            start += k
            whole = False
    path.reverse()
    return path


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` proves leaf ``index`` belongs to (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
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
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise ``ProofError`` unless ``path`` proves leaf ``index`` is in the tree of
    ``size`` leaves whose root is ``expected_root``."""
    if root_from_inclusion(index, size, leaf, path) != expected_root:
        raise ProofError(f"leaf {index} is not in the tree of size {size} with that root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """Raise ``ProofError`` unless ``path`` proves that the tree of ``old_size`` leaves
    with ``old_root`` is a prefix of the tree of ``new_size`` leaves with ``new_root``
    (RFC 9162 2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {old_size} is larger than size {new_size}")
    if old_size == new_size:
        if path:
            raise ProofError("a proof between equal sizes is empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {old_size}")
        return
    if old_size == 0:
        if path:
            raise ProofError("a proof from the empty tree is empty")
        return
    if not path:
        raise ProofError("the consistency proof is empty")
    nodes = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than needed")
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
        raise ProofError("the consistency proof is shorter than needed")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the old root (size {old_size})")
    if sr != new_root:
        raise ProofError(f"the proof does not lead to the new root (size {new_size})")


class MemoryTree:
    """A whole tree in memory: every perfect subtree's root, by level (a ``NodeSource``)."""

    def __init__(self, leaves: Iterable[bytes] = ()):
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            row = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(row[-2], row[-1]))
            level += 1

    def node(self, level: int, index: int) -> bytes:
        try:
            return self.levels[level][index]
        except IndexError:
            raise ValueError(f"no complete subtree at level {level}, index {index}") from None

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return EMPTY_ROOT if size == 0 else subtree_hash(self, 0, size)
