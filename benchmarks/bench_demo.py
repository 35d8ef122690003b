"""The demo end to end, against the CLI's own start-up in the same run.

    python benchmarks/bench_demo.py [--repeat 5]

Runs ``ledger demo -o json`` (the whole 2025 scenario: import, relay to an embedded
nats-server, subscriber, every question) ``--repeat`` times and ``ledger --version`` as
many times, alternately, in fresh processes.  Prints the p50 wall time of each, the demo's
own reported seconds, and demo / start-up.  (Tests assert what the demo answers, not how
fast: this is where its speed is watched.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ledger = shutil.which("ledger") or sys.exit("`ledger` is not on PATH (pip install -e .)")
    demo_wall: list[float] = []
    demo_own: list[float] = []
    startup: list[float] = []
    for _ in range(args.repeat):
        seconds, out = timed([ledger, "demo", "-o", "json"])
        demo_wall.append(seconds)
        demo_own.append(float(json.loads(out)["seconds"]))
        startup.append(timed([ledger, "--version"])[0])
    p50 = statistics.median
    print(f"ledger --version (start-up)  p50 {p50(startup) * 1000:8.1f} ms")
    print(f"ledger demo (wall)           p50 {p50(demo_wall) * 1000:8.1f} ms")
    print(f"ledger demo (its own timer)  p50 {p50(demo_own) * 1000:8.1f} ms")
    print(f"demo / start-up              {p50(demo_wall) / p50(startup):8.1f}x")


if __name__ == "__main__":
    main()
