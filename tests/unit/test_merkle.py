"""ledger.merkle against an independent implementation of RFC 9162 section 2.1.

The reference functions below are the RFC's recursive definitions written out plainly
(MTH, PATH, PROOF/SUBPROOF), over lists of leaf data, with no shared code: roots,
inclusion paths and consistency proofs must agree for every tree size 1-64, every leaf
and every pair of sizes.
"""

from __future__ import annotations

import hashlib

import pytest

from ledger import merkle


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


DATA = [f'{{"event":{i},"x":"{"y" * (i % 7)}"}}'.encode() for i in range(64)]
LEAVES = [merkle.leaf_hash(x) for x in DATA]
SIZES = range(1, 65)


def test_hashes_are_rfc_9162_prefixed_sha256() -> None:
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = LEAVES[0], LEAVES[1]
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.root([]) == merkle.EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert merkle.leaf_hashes(DATA[:3]) == LEAVES[:3]


@pytest.mark.parametrize("n", SIZES)
def test_roots(n: int) -> None:
    expected = ref_mth(DATA[:n])
    assert merkle.root(LEAVES[:n]) == expected
    one_by_one = merkle.Frontier()
    for leaf in LEAVES[:n]:
        one_by_one.append(leaf)
    assert one_by_one.root() == expected
    assert one_by_one.size == n
    tree = merkle.MemoryTree(LEAVES[:n])
    assert tree.root() == expected
    restored = merkle.Frontier.from_bytes(one_by_one.to_bytes())
    assert restored.root() == expected and restored.size == n


@pytest.mark.parametrize("n", SIZES)
def test_inclusion_proofs(n: int) -> None:
    tree = merkle.MemoryTree(LEAVES[:n])
    root = ref_mth(DATA[:n])
    for m in range(n):
        path = merkle.inclusion_proof(tree, m, n)
        assert path == ref_path(m, DATA[:n])
        merkle.verify_inclusion(m, n, LEAVES[m], path, root)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(m, n, LEAVES[(m + 1) % 64], path, root)
        if path:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(m, n, LEAVES[m], path[:-1], root)
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(m, n, LEAVES[m], [*path, path[0]], root)
            bad = list(path)
            bad[-1] = merkle.leaf_hash(b"forged")
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(m, n, LEAVES[m], bad, root)


@pytest.mark.parametrize("n", SIZES)
def test_consistency_proofs(n: int) -> None:
    tree = merkle.MemoryTree(LEAVES[:n])
    new_root = ref_mth(DATA[:n])
    for m in range(0, n + 1):
        path = merkle.consistency_proof(tree, m, n)
        assert path == ([] if m == 0 else ref_proof(m, DATA[:n]))
        old_root = ref_mth(DATA[:m])
        merkle.verify_consistency(m, n, old_root, new_root, path)
        if 0 < m < n:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(m, n, ref_mth(DATA[1 : m + 1]), new_root, path)
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(m, n, old_root, ref_mth(DATA[1 : n + 1]), path)
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(m, n, old_root, new_root, path[:-1])
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(m, n, old_root, new_root, [*path, path[0]])


def test_extend_matches_append_and_reports_every_stored_node() -> None:
    for start in range(0, 40):
        for count in (1, 2, 3, 7, 8, 16, 24, 33):
            if start + count > 64:
                continue
            for min_level in (0, 2):
                seen: dict[tuple[int, int], bytes] = {}

                def sink(level: int, index: int, h: bytes, seen: dict = seen) -> None:  # type: ignore[type-arg]
                    assert (level, index) not in seen
                    seen[(level, index)] = h

                frontier = merkle.Frontier()
                frontier.extend(LEAVES[:start])
                frontier.on_node, frontier.min_level = sink, min_level
                frontier.extend(LEAVES[start : start + count])
                n = start + count
                assert frontier.root() == ref_mth(DATA[:n])
                tree = merkle.MemoryTree(LEAVES[:n])
                expected = {
                    (level, i): h
                    for level, row in enumerate(tree.levels)
                    for i, h in enumerate(row)
                    if level >= min_level and (i + 1) << level > start
                }
                assert seen == expected


def test_extend_reports_whole_levels_to_on_nodes_as_on_node_would_one_by_one() -> None:
    """``on_nodes`` (a verify's sink) hears exactly the nodes ``on_node`` alone hears."""
    for start in range(0, 40):
        for count in (1, 3, 8, 16, 24, 33):
            if start + count > 64:
                continue
            for min_level in (0, 2):
                single: list[tuple[int, int, bytes]] = []
                split: list[tuple[int, int, bytes]] = []

                def one(level: int, index: int, h: bytes, out: list = split) -> None:  # type: ignore[type-arg]
                    out.append((level, index, h))

                def many(level: int, first: int, hashes: list[bytes], out: list = split) -> None:  # type: ignore[type-arg]
                    out.extend((level, first + j, h) for j, h in enumerate(hashes))

                def alone(level: int, index: int, h: bytes, out: list = single) -> None:  # type: ignore[type-arg]
                    out.append((level, index, h))

                for frontier in (
                    merkle.Frontier(on_node=alone, min_level=min_level),
                    merkle.Frontier(on_node=one, on_nodes=many, min_level=min_level),
                ):
                    frontier.extend(LEAVES[:start])
                    frontier.extend(LEAVES[start : start + count])
                    assert frontier.root() == ref_mth(DATA[: start + count])
                assert sorted(split) == sorted(single)
                assert len(split) == len(set(split))


def test_frontier_rejects_malformed_state() -> None:
    with pytest.raises(ValueError):
        merkle.Frontier(3, [LEAVES[0]])
    with pytest.raises(ValueError):
        merkle.Frontier.from_bytes(b"\x00" * 7)
    with pytest.raises(ValueError):
        merkle.Frontier.from_bytes((5).to_bytes(8, "big") + LEAVES[0])


def test_proof_arguments_out_of_range() -> None:
    tree = merkle.MemoryTree(LEAVES[:5])
    with pytest.raises(ValueError):
        merkle.inclusion_proof(tree, 5, 5)
    with pytest.raises(ValueError):
        merkle.consistency_proof(tree, 6, 5)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(5, 5, LEAVES[0], [], merkle.root(LEAVES[:5]))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(6, 5, b"", b"", [])
    with pytest.raises(merkle.ProofError):  # equal sizes, different roots
        merkle.verify_consistency(3, 3, LEAVES[0], LEAVES[1], [])
