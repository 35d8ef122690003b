"""Where a views rebuild's CPU goes, phase by phase, against the raw read+decode loop.

    python benchmarks/bench_rebuild_phases.py HOME [--budget default|unlimited|MB]
        [--limit N] [--profile FILE] [--memory]

Rebuilds the views of the SQLite ledger in HOME (drops them first: use a copy) with the
same loop as ``runner.catch_up`` (pages of ``read_stored``, ``decode_stored``,
``prefetch``, ``process``, ``flush(background=True)`` into the writer process), timing
each phase of the projector's main thread with ``time.thread_time`` and the writer
process from ``getrusage(RUSAGE_CHILDREN)`` once it has exited; then the raw loop (read
and typed decode of every stored row, ``bench_scale``'s baseline) in the same process.
Prints µs a position of each phase, the projector alone and both processes as a ratio
of the raw loop's CPU, wall time, the load average, and the cache's counters.

``--profile FILE`` writes a cProfile of the projector's main thread (phases slower
under it; for where, not how much).  ``--memory`` samples the projector's and the
writer's RssAnon every 100,000 positions and prints them with the peak.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import os
import resource
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any


def _bench_scale() -> Any:
    """bench_scale.py, for its raw read+decode loop (the same baseline in both)."""
    spec = importlib.util.spec_from_file_location(
        "bench_scale", Path(__file__).resolve().parent / "bench_scale.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _types() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


def _attribute(first: tuple[tracemalloc.Snapshot, Counter[str]], projector: Any) -> None:
    """What grew since ``first``: tracemalloc by line, gc-tracked objects by type."""
    projector.wait()
    snapshot = tracemalloc.take_snapshot()
    before, types = first
    print(
        f"traced {sum(s.size for s in before.statistics('filename')) / 2**20:.1f} -> "
        f"{sum(s.size for s in snapshot.statistics('filename')) / 2**20:.1f} MiB"
    )
    for stat in snapshot.compare_to(before, "lineno")[:25]:
        print(f"  {stat.size_diff / 1024:>+9.0f} KiB {stat.count_diff:>+8} {stat.traceback}")
    grown = _types() - types
    print("gc objects grown by type:", ", ".join(f"{k} {v:+}" for k, v in grown.most_common(15)))
    print(f"cache {len(projector.cache):,} entities, {projector.cached_bytes / 1e6:.1f} MB counted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--budget", default="default")
    parser.add_argument("--limit", type=int, default=None, help="stop at this position")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw loop")
    parser.add_argument(
        "--attribute",
        type=int,
        default=0,
        metavar="POSITION",
        help="tracemalloc and gc's objects by type at POSITION and at the end, diffed",
    )
    args = parser.parse_args()
    os.environ["LEDGER_HOME"] = str(args.home)
    os.environ.setdefault("LEDGER_ACTOR", "bench")
    os.environ["LEDGER_PROJECTOR_CACHE"] = "" if args.budget == "default" else args.budget

    from ledger.app import gc_paused
    from ledger.config import Settings
    from ledger.projections import runner
    from ledger.projections.projector import cache_budget
    from ledger.projections.stores import view_store
    from ledger.projections.writer import ProcessWriter
    from ledger.store.codec import decode_stored

    started_at = time.strftime("%H:%M:%S", time.gmtime())
    load_before = os.getloadavg()
    settings = Settings.from_env(dict(os.environ))
    app = runner.open_app(settings)
    store = view_store(app)
    store.reset()
    projector = runner.new_projector(app, store, budget=cache_budget())
    writer = projector.writer = ProcessWriter(app.settings)
    loads = [0, 0, 0.0]  # calls, entities, thread time (the events decoded lazily later)
    load_history = projector._load_history

    def counted_load(keys: Any, upto: int) -> Any:
        t = time.thread_time()
        found = load_history(keys, upto)
        loads[0] += 1
        loads[1] += len(keys)
        loads[2] += time.thread_time() - t
        return found

    projector._load_history = counted_load
    inner: dict[str, float] = {}

    def timed(obj: Any, name: str, label: str) -> None:
        """Time ``obj.name`` (an instance attribute shadowing the method)."""
        method = getattr(obj, name)
        inner[label] = 0.0

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                inner[label] += time.thread_time() - t

        setattr(obj, name, wrapper)

    timed(projector, "_evict", "evict (with spill writes)")
    timed(projector._spill, "put", "spill writes")
    timed(projector._spill, "take", "spill reads")
    timed(writer, "submit", "submit (encoding)")
    target = app.head() if args.limit is None else args.limit
    phases = dict.fromkeys(("read", "decode", "prefetch", "apply", "hand-off", "wait"), 0.0)
    payload = None if app.stores_plain_json else app.payload
    skip = tuple(runner.SKIPPED_TOPICS)
    batch = runner.batch_events()
    samples: list[tuple[int, int, int]] = []
    next_sample = 100_000
    peak = (0, 0)
    profiler = cProfile.Profile() if args.profile else None
    first: tuple[tracemalloc.Snapshot, Counter[str]] | None = None
    if args.attribute:
        tracemalloc.start(3)
    clock = time.thread_time
    wall0, cpu0 = time.perf_counter(), clock()
    if profiler is not None:
        profiler.enable()
    with gc_paused():
        while projector.applied_position < target:
            t0 = clock()
            rows = app.read_stored(
                projector.applied_position,
                min(runner.PAGE, batch),
                stop=target,
                skip_types=skip,
            )
            t1 = clock()
            if not rows:
                break
            items = [
                (position, decode_stored(payload(state) if payload else state, topic))
                for position, topic, state in rows
                if state is not None
            ]
            t2 = clock()
            projector.prefetch(f"{e.entity_kind}:{e.entity_id}" for _, e in items)
            t3 = clock()
            projector.process(items, flush=False, upto=rows[-1][0])
            t4 = clock()
            phases["read"] += t1 - t0
            phases["decode"] += t2 - t1
            phases["prefetch"] += t3 - t2
            phases["apply"] += t4 - t3
            if projector.pending_events >= batch or (projector.applied_position >= target):
                w0 = clock()
                projector.wait()
                w1 = clock()
                projector.flush(background=True)
                phases["wait"] += w1 - w0
                phases["hand-off"] += clock() - w1
            if args.attribute and first is None and projector.applied_position >= args.attribute:
                projector.wait()
                first = (tracemalloc.take_snapshot(), _types())
            if args.memory and projector.applied_position >= next_sample:
                sample = (projector.applied_position, _anon_kib(os.getpid()), _anon_kib(writer.pid))
                samples.append(sample)
                peak = (max(peak[0], sample[1]), max(peak[1], sample[2]))
                next_sample += 100_000
        projector.wait()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.profile))
    wall = time.perf_counter() - wall0
    if first is not None:
        _attribute(first, projector)
    cpu = clock() - cpu0
    end_anon = _anon_kib(os.getpid())
    projector.writer = None
    writer.close()
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    positions = projector.position
    evicted, reloaded, replayed = projector.evicted, projector.reloaded, projector.replayed
    spill = projector._spill
    untrimmed = projector.untrimmed
    app.close()

    raw_cpu = raw_wall = 0.0
    raw_rows = 0
    if not args.no_raw:
        raw_rows, raw_wall, raw_cpu = _bench_scale()._raw_read_decode(dict(os.environ), target)

    us = 1e6 / positions
    print(
        f"{started_at}-{time.strftime('%H:%M:%S', time.gmtime())} UTC, load "
        f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}, budget {args.budget}, "
        f"{positions:,} positions"
    )
    print(
        "projector µs/position: "
        + " / ".join(f"{k} {v * us:.2f}" for k, v in phases.items())
        + f" = {cpu * us:.2f} (main thread)"
    )
    print("of which: " + " / ".join(f"{k} {v * us:.2f}" for k, v in inner.items()))
    writer_cpu = child.ru_utime + child.ru_stime
    print(
        f"writer µs/position: {writer_cpu * us:.2f} "
        f"(user {child.ru_utime * us:.2f} + sys {child.ru_stime * us:.2f})"
    )
    print(f"wall {wall:.1f} s = {positions / wall:,.0f} positions/s")
    if raw_rows:
        raw_us = raw_cpu * 1e6 / raw_rows
        wall_ratio = raw_wall / wall * positions / raw_rows
        print(
            f"raw loop: {raw_us:.2f} µs CPU/position, {raw_rows / raw_wall:,.0f} positions/s wall; "
            f"projector alone {raw_us / (cpu * us):.1%} of raw, both processes "
            f"{raw_us / ((cpu + writer_cpu) * us):.1%}, wall {wall_ratio:.1%}"
        )
    print(
        f"evicted {evicted:,}, reloaded {reloaded:,} (replayed {replayed:,}), "
        f"spill file {spill.file_bytes / 2**20:.1f} MiB, {spill.compactions} compactions; "
        f"untrimmed {untrimmed:,}; histories read {loads[0]:,} times ({loads[1]:,} entities, "
        f"{loads[2]:.2f} s)"
    )
    if samples:
        print("position  projector MiB  writer MiB")
        for position, p, w in samples:
            print(f"{position:>9,} {p / 1024:>14.1f} {w / 1024:>11.1f}")
        print(
            f"peak projector {peak[0] / 1024:.1f} MiB, writer {peak[1] / 1024:.1f} MiB; "
            f"projector at the end {end_anon / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    main()
