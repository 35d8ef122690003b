"""The benchmark ledger, built fast and cached on disk between runs.

    python benchmarks/bench_ledger.py [--events 1000000] [--seed 7] [--home DIR] [--chunk 100000]

Appending ``ledger_history`` one day at a time through ``Ledger.append`` (what
``bench_projections.build`` does) pays one durable transaction, one recorded time and
one Merkle update per day; on a loaded machine that ran at 130-190 events/s, ~1.5 h for a
million.  This builder writes the same history as JSONL files instead, each event with a
``recorded_at`` at the end of the day it is appended on (so K spans the three years of the
history, as in a real record, and late knowledge is recorded late), and loads them with
the user's own commands: ``ledger import --backfill`` per chunk of ``--chunk`` events
(every line still parsed and checked by every rule), then ``ledger project --rebuild
--once``.  The result is kept under ``~/.cache/ledger-bench/`` (or ``--home``) with a
marker naming what was built, so later runs of any benchmark reuse it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_history import START, daily

CACHE = Path(os.environ.get("LEDGER_BENCH_CACHE", Path.home() / ".cache" / "ledger-bench"))
MARKER = "bench-ledger.json"


def default_home(events: int, seed: int) -> Path:
    return CACHE / f"history-{events}-{seed}"


def write_jsonl(directory: Path, events: int, seed: int, chunk: int) -> list[Path]:
    """The history as JSONL files of about ``chunk`` events each (whole days per file)."""
    files: list[Path] = []
    out = None
    written = 0
    in_file = 0
    for day, batch in daily(events, seed):
        # Appended at the end of the day it is scheduled on, one microsecond apart, so
        # recorded times never decrease and late knowledge is recorded late.
        base = START + dt.timedelta(days=day + 1)
        if out is None or in_file >= chunk:
            if out is not None:
                out.close()
            path = directory / f"history-{len(files):03d}.jsonl"
            files.append(path)
            out = path.open("w")
            in_file = 0
        for i, obj in enumerate(batch):
            recorded = base + dt.timedelta(microseconds=i)
            obj["recorded_at"] = recorded.isoformat().replace("+00:00", "Z")
            out.write(json.dumps(obj, separators=(",", ":")))
            out.write("\n")
        written += len(batch)
        in_file += len(batch)
    if out is not None:
        out.close()
    return files


def ledger_command(home: Path, *args: str) -> None:
    ledger = Path(sys.executable).parent / "ledger"
    env = {**os.environ, "LEDGER_HOME": str(home), "LEDGER_ACTOR": "bench"}
    env.pop("LEDGER_DATABASE_URL", None)
    subprocess.run([str(ledger), *args], env=env, check=True, stdout=subprocess.DEVNULL)


def ensure(events: int, seed: int, home: Path | None = None, chunk: int = 100_000) -> Path:
    """The home of a built (and projected) benchmark ledger; built if not cached."""
    home = home or default_home(events, seed)
    wanted = {"events": events, "seed": seed, "builder": "jsonl-backfill-1"}
    marker = home / MARKER
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return home
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-", dir=home.parent) as tmp:
        files = write_jsonl(Path(tmp), events, seed, chunk)
        print(
            f"  wrote {len(files)} JSONL file(s) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        for n, path in enumerate(files, start=1):
            t0 = time.perf_counter()
            ledger_command(home, "import", "--backfill", "--no-progress", str(path))
            print(
                f"  imported {path.name} ({n}/{len(files)}) in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
    t0 = time.perf_counter()
    ledger_command(home, "project", "--rebuild", "--once")
    print(f"  views rebuilt in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    marker.write_text(json.dumps(wanted))
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--chunk", type=int, default=100_000, help="events per import")
    args = parser.parse_args()
    home = ensure(args.events, args.seed, args.home, args.chunk)
    print(home)


if __name__ == "__main__":
    main()
