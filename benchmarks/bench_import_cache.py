"""The import's working set, simulated: reloads of each eviction policy on a file's trace.

    python benchmarks/bench_import_cache.py FILE [--budget-mb 24] [--chunk 2000]
    python benchmarks/bench_import_cache.py --generate 200000 --budget-mb 2.4

The trace is what ``ledger import`` touches: per chunk of lines, the entity keys its
events name (``references``, each once, in the order the chunk first names them, as
``_Import._chunk`` computes them; the benchmark files' rules ask of no other entity).
Each policy holds entities at the working set's estimates (``LEAN_BYTES``,
``LEAN_LICENCE_BYTES``) within ``WORKSPACE_BYTES``, trimmed after each chunk, and counts
the entities loaded again after they were evicted (a reload: ~57 us each in the import):

- *main*: the policy before (those not touched again since they were loaded first, then
  the others, each least recently used first, down to three quarters of the budget);
- *LRU*: least recently used first, down to three quarters of the budget;
- *retention*: the import's ``_Retention`` itself (ghosts counted in the budget);
- *OPT*: Belady's - after each chunk, those next touched furthest ahead go, down to the
  whole budget: no policy that trims after each chunk reloads fewer (to within the two
  sizes' difference).

``--generate N`` simulates ``bench_import.generate``'s N-event file without writing it.
"""

from __future__ import annotations

import argparse
import heapq
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from ledger import events as ev
from ledger.domain.aggregate import _REFERENCE_FIELDS
from ledger.importing import (
    CHUNK_LINES,
    LEAN_BYTES,
    LEAN_LICENCE_BYTES,
    WORKSPACE_BYTES,
    _Retention,
)

Trace = list[list[str]]


def _keys_of(obj: dict[str, object], kinds: dict[str, str]) -> list[str]:
    keys = [f"{kinds[str(obj['type'])]}:{obj['entity_id']}"]
    for name, kind, many in _REFERENCE_FIELDS:
        value = obj.get(name)
        if many and isinstance(value, list):
            keys.extend(f"{kind}:{v}" for v in value)
        elif isinstance(value, str):
            keys.append(f"{kind}:{value}")
    return keys


def _chunks(objs: Iterator[dict[str, object]], chunk: int) -> Trace:
    kinds = {
        t.__name__: next(f.default for f in msgspec.structs.fields(t) if f.name == "entity_kind")
        for t in ev.EVENT_TYPES
    }
    trace: Trace = []
    block: dict[str, None] = {}
    lines = 0
    for obj in objs:
        block.update(dict.fromkeys(_keys_of(obj, kinds)))
        lines += 1
        if lines == chunk:
            trace.append(list(block))
            block, lines = {}, 0
    if block:
        trace.append(list(block))
    return trace


def trace_of_file(path: Path, chunk: int) -> Trace:
    def objs() -> Iterator[dict[str, object]]:
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    return _chunks(objs(), chunk)


def trace_of_generated(total: int, chunk: int) -> Trace:
    """``bench_import.generate(path, total)``'s keys, without its file."""
    licences, end_users = max(1, total // 100), max(1, total // 50)

    def objs() -> Iterator[dict[str, object]]:
        yield {"type": "PartyRegistered", "entity_id": "exporter-0"}
        for u in range(end_users):
            yield {"type": "PartyRegistered", "entity_id": f"buyer-{u}"}
            yield {"type": "PartyVetted", "entity_id": f"buyer-{u}"}
        for n in range(licences):
            yield {"type": "LicenceGranted", "entity_id": f"GL-{n}", "exporter": "exporter-0",
                   "end_users": [f"buyer-{n % end_users}"]}  # fmt: skip
        for s in range(total - 1 - 2 * end_users - licences):
            n = s % licences
            yield {"type": "LicenceUsageRecorded", "entity_id": f"GL-{n}",
                   "end_user": f"buyer-{n % end_users}"}  # fmt: skip

    return _chunks(objs(), chunk)


def size(key: str) -> int:
    return LEAN_LICENCE_BYTES if key.startswith("licence:") else LEAN_BYTES


class Count:
    def __init__(self) -> None:
        self.reloads = {"licence": 0, "party": 0}
        self.seen: set[str] = set()
        self.peak = 0

    def miss(self, key: str) -> None:
        if key in self.seen:
            kind = key.split(":", 1)[0]
            self.reloads[kind] = self.reloads.get(kind, 0) + 1
        else:
            self.seen.add(key)


def main_policy(trace: Trace, budget: int) -> Count:
    count, held, used = Count(), {}, {}  # type: ignore[var-annotated]
    total = 0
    for keys in trace:
        for key in keys:
            was = used.pop(key, None)
            used[key] = was is not None and key in held
            if key not in held:
                count.miss(key)
                held[key] = size(key)
                total += held[key]
        count.peak = max(count.peak, total)
        if total <= budget:
            continue
        target = budget * 3 // 4
        order = [k for k, kept in used.items() if not kept] + [
            k for k, kept in used.items() if kept
        ]
        for key in order:
            if total <= target:
                break
            total -= held.pop(key)
            del used[key]
    return count


def lru_policy(trace: Trace, budget: int) -> Count:
    count, held = Count(), {}  # type: ignore[var-annotated]
    total = 0
    for keys in trace:
        for key in keys:
            if key in held:
                held[key] = held.pop(key)
            else:
                count.miss(key)
                held[key] = size(key)
                total += held[key]
        count.peak = max(count.peak, total)
        if total > budget:
            target = budget * 3 // 4
            for key in list(held):
                if total <= target:
                    break
                total -= held.pop(key)
    return count


def retention_policy(trace: Trace, budget: int) -> Count:
    """``_Retention`` as ``_ImportWorkspace.trim`` uses it (every entity lean)."""
    count, held = Count(), {}  # type: ignore[var-annotated]
    retention = _Retention(2 * budget // LEAN_BYTES)
    total = retention.ghost_bytes
    for keys in trace:
        retention.touch(keys, lambda key: key if key in held else None)
        for key in keys:
            if key not in held:
                count.miss(key)
                held[key] = size(key)
                total += held[key]
        count.peak = max(count.peak, total)
        retention.admit(budget - budget // 20 - retention.ghost_bytes)
        if total <= budget:
            continue
        untouched = [k for k in held if k not in retention]
        for key in retention.evict(untouched, total, budget * 3 // 4, budget, held.get):
            total -= held.pop(key)
    return count


def opt_policy(trace: Trace, budget: int) -> Count:
    """Belady's: after each chunk, drop those next touched furthest ahead (never: first)."""
    nxt: list[list[int]] = [[] for _ in trace]
    later: dict[str, int] = {}
    never = len(trace) + 1
    for c in range(len(trace) - 1, -1, -1):
        nxt[c] = [later.get(k, never) for k in trace[c]]
        for k in trace[c]:
            later[k] = c
    count, held = Count(), {}  # type: ignore[var-annotated]
    next_use: dict[str, int] = {}
    heap: list[tuple[int, str]] = []  # (-next use, key), stale entries skipped
    total = 0
    for c, keys in enumerate(trace):
        for key, n in zip(keys, nxt[c], strict=True):
            if key not in held:
                count.miss(key)
                held[key] = size(key)
                total += held[key]
            next_use[key] = n
            heapq.heappush(heap, (-n, key))
        count.peak = max(count.peak, total)
        while total > budget and heap:
            n, key = heapq.heappop(heap)
            if key in held and next_use.get(key) == -n:
                total -= held.pop(key)
                del next_use[key]
    return count


POLICIES: dict[str, Callable[[Trace, int], Count]] = {
    "main": main_policy,
    "LRU": lru_policy,
    "retention": retention_policy,
    "OPT": opt_policy,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--generate", type=int, metavar="N")
    parser.add_argument("--budget-mb", type=float, default=WORKSPACE_BYTES / (1 << 20))
    parser.add_argument("--chunk", type=int, default=CHUNK_LINES)
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    if args.generate:
        trace, name = trace_of_generated(args.generate, args.chunk), f"generate({args.generate})"
    elif args.file:
        trace, name = trace_of_file(args.file, args.chunk), str(args.file)
    else:
        parser.error("a FILE or --generate N")
    policies = args.policies.split(",")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policy {', '.join(unknown)}: choose from {', '.join(POLICIES)}")
    budget = int(args.budget_mb * (1 << 20))
    touches = sum(map(len, trace))
    distinct = len({k for keys in trace for k in keys})
    print(
        f"{name}: {len(trace)} chunks, {touches:,} touches of {distinct:,} entities; "
        f"budget {budget / (1 << 20):g} MiB"
    )
    print(f"{'policy':<10} {'reloads':>10} {'licences':>10} {'parties':>10} {'per touch':>9}  s")
    for policy in policies:
        started = time.process_time()
        count = POLICIES[policy](trace, budget)
        spent = time.process_time() - started
        reloads = sum(count.reloads.values())
        print(
            f"{policy:<10} {reloads:>10,} {count.reloads['licence']:>10,} "
            f"{count.reloads['party']:>10,} {reloads / touches:>9.3f}  {spent:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
