"""The projector's spill: what goes in comes back, the latest copy wins, stale copies
are dropped when they outgrow the live ones, and clearing forgets everything."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import pytest

from ledger.store import spill as spill_module
from ledger.store.spill import EntitySpill


@dataclass
class Thing:
    key: str
    body: bytes


def test_what_is_spilled_comes_back_latest_copy_first() -> None:
    spill = EntitySpill()
    assert spill.take(["a"]) == {}
    spill.put([Thing("a", b"1"), Thing("b", b"2" * 5000)])
    spill.put([Thing("a", b"3")])
    assert spill.take(["b", "a", "missing"]) == {
        "a": Thing("a", b"3"),
        "b": Thing("b", b"2" * 5000),
    }
    # A copy stays behind: taken twice, it comes back twice.
    assert spill.take(["a"]) == {"a": Thing("a", b"3")}
    assert spill.spilled == 3
    spill.clear()
    assert spill.take(["a", "b"]) == {}
    spill.put([Thing("c", b"4")])
    assert spill.take(["a", "c"]) == {"c": Thing("c", b"4")}


@pytest.mark.parametrize("batched", [False, True])
def test_stale_copies_are_dropped_once_they_outgrow_the_live_ones(
    monkeypatch, batched: bool
) -> None:
    monkeypatch.setattr(spill_module, "COMPACT_BYTES", 64 * 1024)
    spill = EntitySpill(batched=batched)
    keys = [f"k{i}" for i in range(20)]
    for round_ in range(40):
        spill.put([Thing(k, bytes([round_]) * 1000) for k in keys])
        # Never more than twice the live copies (plus the batch just written).
        assert spill.file_bytes <= max(64 * 1024, 2 * 20 * 1100) + 20 * 1100
    assert spill.compactions > 0
    assert spill.take(keys) == {k: Thing(k, bytes([39]) * 1000) for k in keys}


def test_the_index_keeps_a_few_dozen_bytes_an_entity_besides_its_key() -> None:
    """What the projector keeps for every entity it ever evicted (so it grows with the
    ledger, ~18,800 entities at 1M events): one int an entity in the index, not a tuple of
    two ints (~136 bytes an entity with the dict's share, 3 Dec 2026)."""
    keys = [f"licence:{i:036d}" for i in range(20_000)]
    things = [Thing(key, b"x" * 300) for key in keys]
    spill = EntitySpill(dumps=lambda thing: thing.body, loads=bytes)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        spill.put(things)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / len(keys) < 80
    assert spill.take(keys[-1:]) == {keys[-1]: b"x" * 300}


def test_a_copy_changed_behind_the_process_back_is_refused(tmp_path) -> None:
    """Each copy carries a keyed digest: bytes changed in the file, or a copy read under
    another entity's key, are refused before they are decoded (pickle would run them)."""
    import os

    import pytest

    from ledger.store.spill import SpillTampered

    spill = EntitySpill(dumps=lambda thing: thing.body, loads=bytes, what="test spill")
    spill.put([Thing("a", b"licence a: 10 kg used"), Thing("b", b"licence b: 99 kg used")])
    assert spill.take(["a"]) == {"a": b"licence a: 10 kg used"}
    fd = spill._fd()
    data = os.pread(fd, spill.file_bytes, 0)
    at = data.index(b"10 kg")
    os.pwrite(fd, b"00", at)  # "licence a: 00 kg used"
    with pytest.raises(SpillTampered, match="copy of a in its temporary file was changed"):
        spill.take(["a"])
    assert spill.take(["b"]) == {"b": b"licence b: 99 kg used"}
    # b's copy, byte for byte, put where a's index points: the digest names the key.
    a_at, b_at = spill._where["a"], spill._where["b"]
    spill._where["a"] = b_at
    with pytest.raises(SpillTampered):
        spill.take(["a"])
    spill._where["a"] = a_at


def test_copies_spilled_together_come_back_in_one_read(monkeypatch) -> None:
    """An eviction writes its entities side by side, and the import's next chunk asks for
    many of them at once: with ``batched`` a run of copies close together is one read,
    not one each; a copy changed in the middle of a run is still refused on its own
    digest.  Without it (the projector's), one read a copy."""
    import os

    import pytest

    from ledger.store.spill import SpillTampered

    reads: list[int] = []
    read_all = spill_module._read_all

    def counted(fd: int, length: int, offset: int) -> bytes:
        reads.append(length)
        return read_all(fd, length, offset)

    monkeypatch.setattr(spill_module, "_read_all", counted)
    spill = EntitySpill(dumps=lambda thing: thing.body, loads=bytes, batched=True)
    near = [Thing(f"near-{i}", f"body {i}".encode() * 10) for i in range(50)]
    spill.put(near)
    spill.put([Thing("far", b"f" * (2 * spill_module.READ_GAP))])
    spill.put([Thing("after", b"after")])
    wanted = [t.key for t in near[::2]] + ["after"]
    assert spill.take(wanted) == {
        **{t.key: t.body for t in near[::2]},
        "after": b"after",
    }
    assert len(reads) == 2  # (the 25 near ones in one read; "far" is not read)
    reads.clear()
    assert spill.take(["near-3", "far", "after"]) == {
        "near-3": near[3].body,
        "far": b"f" * (2 * spill_module.READ_GAP),
        "after": b"after",
    }
    assert len(reads) == 1  # (gaps under READ_GAP: one run)
    fd = spill._fd()
    data = os.pread(fd, spill.file_bytes, 0)
    os.pwrite(fd, b"B", data.index(b"body 7"))
    with pytest.raises(SpillTampered, match="copy of near-7"):
        spill.take([t.key for t in near])
    assert spill.take(["near-6", "near-8"]) == {"near-6": near[6].body, "near-8": near[8].body}
    one_each = EntitySpill(dumps=lambda thing: thing.body, loads=bytes)
    one_each.put(near)
    reads.clear()
    assert one_each.take([t.key for t in near[:5]]) == {t.key: t.body for t in near[:5]}
    assert len(reads) == 5


def test_the_copies_kept_longest_are_forgotten_first() -> None:
    """The import bounds its spill's index: past its size, the entities spilled first
    are dropped from it (``oldest``, ``forget``); a copy replaced keeps its place."""
    spill = EntitySpill(dumps=lambda thing: thing.body, loads=bytes)
    spill.put([Thing("a", b"1"), Thing("b", b"2"), Thing("c", b"3")])
    spill.put([Thing("a", b"4")])
    assert spill.oldest(2) == ["a", "b"]
    assert spill.oldest(0) == [] and spill.oldest(-1) == []
    spill.forget(["a", "missing"])
    assert "a" not in spill and len(spill) == 2
    assert spill.take(["a", "b", "c"]) == {"b": b"2", "c": b"3"}
    assert spill.oldest(5) == ["b", "c"]


@pytest.mark.parametrize("batched", [False, True])
def test_a_compaction_that_fails_leaves_nothing_half_moved(monkeypatch, batched: bool) -> None:
    """A compaction with ``batched`` moves the index to the new file as it copies; if
    reading the old file fails midway, no entry may point into the wrong file: the spill
    forgets everything (its users then read the entities from the store) and works on.
    Without it the old file and index stay as they were.  Either way the failure is a
    ``StoreError`` naming the temporary directory."""
    monkeypatch.setattr(spill_module, "COMPACT_BYTES", 4096)
    spill = EntitySpill(dumps=lambda thing: thing.body, loads=bytes, batched=batched)
    keys = [f"k{i}" for i in range(10)]
    spill.put([Thing(k, b"a" * 500) for k in keys])
    spill.put([Thing(k, b"b" * 500) for k in keys])  # (stale = live: not yet)
    assert spill.compactions == 0
    read_all, reads = spill_module._read_all, []

    def failing(fd: int, length: int, offset: int) -> bytes:
        reads.append(offset)
        if len(reads) == 4:
            raise OSError("disk gone")
        return read_all(fd, length, offset)

    monkeypatch.setattr(spill_module, "_read_all", failing)
    from ledger.errors import StoreError

    with pytest.raises(StoreError, match=r"temporary file .* failed: disk gone"):
        spill.put([Thing(k, b"c" * 500) for k in keys])  # (stale > live: compacts)
    monkeypatch.setattr(spill_module, "_read_all", read_all)
    if batched:
        assert len(spill) == 0 and spill.take(keys) == {}
    else:
        assert spill.take(keys) == {k: b"c" * 500 for k in keys}
    spill.put([Thing("k0", b"d")])
    assert spill.take(["k0"]) == {"k0": b"d"}
