"""``gc_paused``: bulk work runs without collector passes, and leaves none owed behind."""

from __future__ import annotations

import gc

from ledger.app import gc_paused


def test_a_pause_leaves_the_collector_on_with_nothing_owed() -> None:
    passes: list[int] = []

    def count_passes(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    assert gc.isenabled()
    gc.callbacks.append(count_passes)
    try:
        with gc_paused():
            assert not gc.isenabled()
            kept = [[] for _ in range(50_000)]  # survivors, as a listing's rows are
        # Re-enabling alone would leave ~50,000 young allocations counted, so this next
        # allocation would start a pass scanning every one of them.
        more = [[], []]
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(count_passes)
    assert passes == []
    assert len(kept) + len(more) == 50_002


def test_nested_pauses_resume_once_at_the_outermost() -> None:
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_pause_already_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_garbage_cycles_made_during_a_pause_are_still_collected() -> None:
    class Node:
        other: Node

    with gc_paused():
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
    assert gc.collect() >= 2
