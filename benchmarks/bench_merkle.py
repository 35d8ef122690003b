"""The Merkle tree's costs, as ratios against baselines measured in the same run.

    python benchmarks/bench_merkle.py [--events 100000] [--repeat 3] [--proofs 200]

On a realistic JSONL batch (``bench_import.generate``: parties, vetting, licences and
mostly shipments), in one process:

- **import with / without the tree**: ``ledger import`` of the file into a fresh SQLite
  ledger, alternately with the tree (as shipped) and without it (the recorder's tree
  hooks replaced by the no-op ones of ``EventIndex``).  Target: with >= 0.9x without.
- **verify / plain hash loop**: ``ledger verify`` (``audit.verify``: every leaf
  recomputed and checked against the stored tree, nodes, frontiers, checkpoints) against
  reading the same event rows in position order and SHA-256-hashing each payload in one
  Python loop, in alternating rounds (each round's ratio printed), with the floor: the
  loop plus the interior hashes alone (a verify hashes n - 1 nodes besides the n leaves).
  Target: >= 0.5x.
- **prove**: ``audit.prove`` of ``--proofs`` random events, in process: p50 and p95.
  Target: p50 < 5 ms at 1M events.

With ``--scale N`` (e.g. 1000000) it also measures verify and prove at N events without
importing them (an import of 1M events takes long): the generated lines are written
straight into a fresh ledger's events table, then the tree is built over them as for a
ledger from before the tree (``audit.build_tree``, timed: the upgrade's speed), then
verify, the plain loop and prove as above.

The best of ``--repeat`` runs is reported for each timing (the least disturbed); for
verify, also every round's ratio, their median and the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import generate


def import_once(path: Path, workdir: Path, *, tree: bool) -> tuple[float, Path]:
    from ledger.app import Ledger, gc_paused
    from ledger.config import Settings
    from ledger.intake import iter_lines
    from ledger.store.index import EventIndex

    home = workdir / f"home-{uuid.uuid4().hex}"
    app = Ledger(Settings.from_env({"LEDGER_HOME": str(home), "LEDGER_ACTOR": "bench"}))
    if not tree:
        recorder = app.recorder
        recorder.after_insert = EventIndex.after_insert.__get__(recorder)  # type: ignore[method-assign]
        recorder.before_commit = EventIndex.before_commit.__get__(recorder)  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        with path.open("rb") as f, gc_paused():
            submissions = app.parse_lines(iter_lines(f))
            result = app.append(submissions)
        elapsed = time.perf_counter() - started
        assert len(result.appended) == len(submissions)
        return elapsed, home
    finally:
        app.close()


def plain_hash_loop(db: Path) -> float:
    """Read every event's payload in position order and SHA-256 it: the floor of a verify."""
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    try:
        sha = hashlib.sha256
        count = 0
        for (state,) in conn.execute("SELECT state FROM stored_events ORDER BY rowid"):
            sha(state).digest()
            count += 1
    finally:
        conn.close()
    assert count > 0
    return time.perf_counter() - started


def interior_floor(db: Path) -> float:
    """The interior hashes alone: the leaf hashes of every event (computed first, not
    timed) folded into the tree in pages as a verify does (``Frontier.extend``).  A
    verify does the loop's work (read, one SHA-256 per event) plus these n - 1 hashes of
    65 bytes; ``loop / (loop + this)`` is the ratio a verify could reach with nothing
    else to do."""
    from ledger import merkle
    from ledger.audit import VERIFY_PAGE

    conn = sqlite3.connect(db)
    try:
        leaves = merkle.leaf_hashes(
            state for (state,) in conn.execute("SELECT state FROM stored_events ORDER BY rowid")
        )
    finally:
        conn.close()
    frontier = merkle.Frontier(on_node=lambda *_: None, on_nodes=lambda *_: None, min_level=4)
    started = time.perf_counter()
    for i in range(0, len(leaves), VERIFY_PAGE):
        frontier.extend(leaves[i : i + VERIFY_PAGE])
    return time.perf_counter() - started


def verify_rounds(home: Path, events: int, repeat: int) -> None:
    """``repeat`` rounds of: the plain loop, ``verify``, the interior hashes alone; each
    round's ratio is printed (the machine is shared: their spread is the noise)."""
    db = home / "ledger.db"
    verify: list[float] = []
    plain: list[float] = []
    floor: list[float] = []
    for _ in range(repeat):
        plain.append(plain_hash_loop(db))
        verify.append(verify_once(home))
        floor.append(interior_floor(db))
    ratios = sorted(p / v for p, v in zip(plain, verify, strict=True))
    ceilings = sorted(p / (p + f) for p, f in zip(plain, floor, strict=True))
    print(
        f"verify   {events / min(verify):>10,.0f} ev/s   read+SHA-256 loop "
        f"{events / min(plain):>10,.0f} ev/s   ratio {min(plain) / min(verify):.3f} best of "
        f"{repeat} ({min(verify):.1f} s against {min(plain):.1f} s; target >= 0.5)"
    )
    print(
        f"         per round: {' '.join(f'{r:.2f}' for r in ratios)} (median "
        f"{statistics.median(ratios):.2f}); the loop plus the interior hashes alone "
        f"(a verify's floor) would be {statistics.median(ceilings):.2f}; load average "
        f"{os.getloadavg()[0]:.1f}"
    )


def verify_once(home: Path) -> float:
    from ledger import audit
    from ledger.app import Ledger
    from ledger.config import Settings

    app = Ledger(Settings.from_env({"LEDGER_HOME": str(home)}))
    try:
        key = app.signing_key().verifier
        started = time.perf_counter()
        audit.verify(app, key=key)
        return time.perf_counter() - started
    finally:
        app.close()


def prove_times(home: Path, proofs: int) -> list[float]:
    from ledger import audit
    from ledger.app import Ledger
    from ledger.config import Settings

    app = Ledger(Settings.from_env({"LEDGER_HOME": str(home)}))
    try:
        key = app.signing_key().verifier
        conn = sqlite3.connect(home / "ledger.db")
        try:
            ids = [
                uuid.UUID(bytes=r[0])
                for r in conn.execute("SELECT event_id FROM stored_events_index")
            ]
        finally:
            conn.close()
        rng = random.Random(7)
        times = []
        for event_id in rng.sample(ids, min(proofs, len(ids))):
            started = time.perf_counter()
            audit.prove(app, event_id, key=key)
            times.append(time.perf_counter() - started)
        return times
    finally:
        app.close()


def raw_ledger(path: Path, workdir: Path, events: int) -> Path:
    """A ledger whose events table holds ``events`` generated lines, with synthetic index
    rows (an event id each, for ``prove``), and no tree."""
    from ledger.app import Ledger
    from ledger.config import Settings

    home = workdir / f"scale-{uuid.uuid4().hex}"
    Ledger(Settings.from_env({"LEDGER_HOME": str(home)})).close()  # the tables
    lines = [line for line in path.read_bytes().splitlines() if line]
    conn = sqlite3.connect(home / "ledger.db")
    try:
        with conn:
            conn.executemany(
                "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
                "VALUES (?, 1, 'PartyRegistered', ?)",
                ((f"bench:{i}", lines[i % len(lines)]) for i in range(events)),
            )
            conn.executemany(
                "INSERT INTO stored_events_index VALUES (?, ?, 'PartyRegistered', 'bench', ?, "
                "0, 0, x'00', NULL, 1)",
                ((i + 1, uuid.uuid4().bytes, str(i)) for i in range(events)),
            )
    finally:
        conn.close()
    return home


def scale(events: int, workdir: Path, repeat: int, proofs: int) -> None:
    from ledger import audit
    from ledger.app import Ledger
    from ledger.config import Settings

    path = workdir / "scale.jsonl"
    generate(path, min(events, 200_000))
    home = raw_ledger(path, workdir, events)
    app = Ledger(Settings.from_env({"LEDGER_HOME": str(home)}))
    try:
        started = time.perf_counter()
        built = audit.build_tree(app)
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    print(
        f"at {events:,} events: tree built over {built:,} stored events in {elapsed:.1f} s "
        f"({built / elapsed:,.0f} ev/s, chunks of {audit.BUILD_CHUNK:,})"
    )
    verify_rounds(home, events, repeat)
    times = prove_times(home, proofs)
    print(
        f"prove    p50 {statistics.median(times) * 1000:.2f} ms   "
        f"p95 {sorted(times)[int(len(times) * 0.95) - 1] * 1000:.2f} ms   "
        f"({len(times)} proofs; target p50 < 5 ms at 1M)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument("--scale", type=int, default=0, help="also verify/prove at N events")
    parser.add_argument("--scale-only", action="store_true", help="only the --scale part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-merkle-") as tmp:
        workdir = Path(tmp)
        if args.scale:
            scale(args.scale, workdir, args.repeat, args.proofs)
            if args.scale_only:
                return
        path = workdir / "batch.jsonl"
        total = generate(path, args.events)
        print(f"{total:,} events")
        with_tree: list[float] = []
        without: list[float] = []
        home: Path | None = None
        for _ in range(args.repeat):
            t, _ = import_once(path, workdir, tree=False)
            without.append(t)
            t, home = import_once(path, workdir, tree=True)
            with_tree.append(t)
        best_with, best_without = min(with_tree), min(without)
        print(
            f"import   with tree {total / best_with:>10,.0f} ev/s   without "
            f"{total / best_without:>10,.0f} ev/s   ratio {best_without / best_with:.3f} "
            "(target >= 0.9)"
        )
        assert home is not None
        verify_rounds(home, total, args.repeat)
        times = prove_times(home, args.proofs)
        print(
            f"prove    p50 {statistics.median(times) * 1000:.2f} ms   "
            f"p95 {sorted(times)[int(len(times) * 0.95) - 1] * 1000:.2f} ms   "
            f"({len(times)} proofs; target p50 < 5 ms at 1M)"
        )


if __name__ == "__main__":
    main()
