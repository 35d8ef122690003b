"""What the import's working set keeps (``ledger.importing._Retention``), driven as
``_ImportWorkspace.trim`` drives it, on entities of the lean party size: a cycle through
more entities than the budget holds keeps a steady part held, a cycle that stops gives
way to the next one, and the memory of evicted keys stays the size it started at."""

from __future__ import annotations

from ledger.importing import LEAN_BYTES, _Retention

ENTITIES = 300
PER_CHUNK = 30
BUDGET = 150 * LEAN_BYTES
"""Half the cycle: each entity's turn comes every 10 chunks."""


def _run(retention: _Retention, held: dict[str, int], chunks: list[list[str]]) -> list[int]:
    """Each chunk's entities not held (loaded), as ``trim`` keeps the budget after it."""
    misses: list[int] = []
    for keys in chunks:
        retention.touch(keys, lambda key: key if key in held else None)
        missing = [k for k in keys if k not in held]
        held.update(dict.fromkeys(missing, LEAN_BYTES))
        misses.append(len(missing))
        total = sum(held.values()) + retention.ghost_bytes
        retention.admit(BUDGET - BUDGET // 20 - retention.ghost_bytes)
        assert retention.kept_bytes <= BUDGET - BUDGET // 20 - retention.ghost_bytes
        if total > BUDGET:
            untouched = [k for k in held if k not in retention]
            for key in retention.evict(untouched, total, BUDGET * 3 // 4, BUDGET, held.get):
                del held[key]
        assert sum(held.values()) + retention.ghost_bytes <= BUDGET
    return misses


def _cycle(name: str, turns: int) -> list[list[str]]:
    keys = [f"party:{name}-{n}" for n in range(ENTITIES)]
    return [keys[i : i + PER_CHUNK] for _ in range(turns) for i in range(0, ENTITIES, PER_CHUNK)]


def test_a_cycle_larger_than_the_budget_is_mostly_found_held() -> None:
    """Least recently used would load all 300 at every turn; here about the half that
    does not fit is loaded (no policy loads fewer than 300 - 150 a turn)."""
    retention, held = _Retention(2 * BUDGET // LEAN_BYTES), {}  # type: ignore[var-annotated]
    misses = _run(retention, held, _cycle("a", 20))
    last_turns = sum(misses[-50:]) / 5
    assert last_turns < 0.6 * ENTITIES, last_turns
    assert len(retention.ghosts.crc) == len(retention.ghosts.older_at) == retention.ghosts.size


def test_a_cycle_that_stops_gives_way_to_the_next() -> None:
    """The kept entities of a cycle that is over are idle longer than the new cycle's
    entities take to come back: they give way, and the new cycle is held as the old one
    was."""
    retention, held = _Retention(2 * BUDGET // LEAN_BYTES), {}  # type: ignore[var-annotated]
    first = _run(retention, held, _cycle("a", 20))
    second = _run(retention, held, _cycle("b", 20))
    assert sum(second[-50:]) <= sum(first[-50:]) * 1.1, (second[-50:], first[-50:])
    assert not any(key.startswith("party:a-") for key in retention.kept)
    assert len(retention.ghosts.crc) == len(retention.ghosts.older_at) == retention.ghosts.size
