"""HTTP API benchmark: ``ledger web`` over loopback against the in-process call it wraps.

    python benchmarks/bench_web.py [--events 1000000] [--home DIR] [--queries 200]
                                   [--concurrent 8] [--seconds 10]

1. **Build** (or reuse) the benchmark ledger (``bench_ledger``: the ``ledger_history`` of
   ``bench_projections.py``, ~12,500 licences at 1M, mostly shipments under them, loaded by
   ``ledger import --backfill`` and ``ledger project --rebuild``), cached under
   ``~/.cache/ledger-bench/`` (or ``--home``) between runs.
2. **Serve** it: ``ledger web --no-projector`` in a process of its own on a free loopback
   port (so the client below does not share its interpreter).
3. **Latency at random (T, K)**, one keep-alive client: ``/api/licences?exporter=...``
   (targets p50 < 20 ms) and the full listing ``/api/licences`` (p50 < 100 ms), each
   next to the in-process baseline measured in the same run: the same answer built and
   encoded by ``ledger.projections.answers`` without HTTP.
4. **Throughput**: requests/s of the exporter query from ``--concurrent`` clients (threads,
   one keep-alive connection each) for ``--seconds``, against the in-process call's
   calls/s on one thread.
5. **Beside full listings**: the exporter query's and ``/healthz``'s latency while another
   client keeps asking for the full listing (does one big answer hold up the others?).

Machines are noisy: compare the ratios, not the absolute numbers, across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ledger import ensure
from bench_projections import percentiles, spans

from ledger.app import Ledger
from ledger.config import Settings
from ledger.times import from_us, iso


def serve(home: Path) -> tuple[subprocess.Popen[str], str]:
    ledger = Path(sys.executable).parent / "ledger"
    env = {**os.environ, "LEDGER_HOME": str(home)}
    env.pop("LEDGER_DATABASE_URL", None)
    process = subprocess.Popen(
        [str(ledger), "web", "--port", "0", "--no-projector"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"ledger web did not start: {line!r}")
    return process, match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--home", type=Path, help="the ledger's home [default: under ~/.cache/ledger-bench]"
    )
    parser.add_argument("--queries", type=int, default=200, help="requests per latency kind")
    parser.add_argument("--concurrent", type=int, default=8, help="clients for throughput")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput run length")
    args = parser.parse_args()

    import httpx

    from ledger.projections import answers
    from ledger.projections.query import Views

    print(f"The benchmark ledger of ~{args.events:,} events (built once, then cached) ...")
    home = ensure(args.events, args.seed, args.home)
    env = {"LEDGER_HOME": str(home), "LEDGER_ACTOR": "bench"}
    app = Ledger(Settings.from_env(env))
    process = None
    results: dict[str, Any] = {}
    try:
        print(f"The ledger in {home}: {app.head():,} events", flush=True)
        v = Views(app, mode="auto")
        started = time.perf_counter()
        applied = v.catch_up()
        print(f"Views caught up ({applied:,} events, {time.perf_counter() - started:.1f} s)")
        results["events"] = app.head()
        bounds = spans(app)
        e0, e1, r0, r1 = bounds
        rng = random.Random(args.seed)
        everything = v.records("licence", None, None)
        exporters = sorted({r.record.exporter for r in everything})
        print(f"{len(everything):,} licences of {len(exporters):,} exporters", flush=True)

        def when() -> tuple[Any, Any]:
            return from_us(rng.randrange(e0, e1)), from_us(rng.randrange(r0, r1 + 1))

        process, base = serve(home)
        print(f"ledger web at {base}", flush=True)
        client = httpx.Client(base_url=base, timeout=60)
        client.get("/api/asymmetry").raise_for_status()  # warm: modules, connections

        def http_exporter() -> int:
            t, k = when()
            r = client.get(
                "/api/licences",
                params={"exporter": rng.choice(exporters), "as_of": iso(t), "known_at": iso(k)},
            )
            r.raise_for_status()
            return len(r.content)

        def http_all() -> int:
            t, k = when()
            r = client.get("/api/licences", params={"as_of": iso(t), "known_at": iso(k)})
            r.raise_for_status()
            return len(r.content)

        def local_exporter() -> int:
            t, k = when()
            body = answers.licences(v, t, k, exporter=rng.choice(exporters))
            return len(answers.encode(body))

        def local_all() -> int:
            t, k = when()
            return len(answers.encode(answers.licences(v, t, k)))

        def healthz() -> int:
            r = client.get("/healthz")
            r.raise_for_status()
            return len(r.content)

        def timed(run: Any, n: int) -> tuple[float, float, float]:
            samples, sizes = [], []
            for _ in range(n):
                started = time.perf_counter()
                sizes.append(run())
                samples.append((time.perf_counter() - started) * 1000)
            p50, p99 = percentiles(samples)
            return p50, p99, statistics.mean(sizes)

        results["latency_ms"] = {}
        for name, run, n, target in (
            ("in-process exporter", local_exporter, args.queries, None),
            ("HTTP exporter", http_exporter, args.queries, 20),
            ("in-process all", local_all, max(20, args.queries // 4), None),
            ("HTTP all", http_all, max(20, args.queries // 4), 100),
            ("HTTP /healthz", healthz, args.queries, None),
        ):
            p50, p99, size = timed(run, n)
            goal = f"; target p50 < {target} ms" if target else ""
            print(
                f"{name:<20}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  ({size / 1024:,.1f} KiB{goal})",
                flush=True,
            )
            results["latency_ms"][name] = {"p50": p50, "p99": p99, "bytes": size}

        # Throughput: the exporter query, one thread in process vs N HTTP clients.
        deadline = time.perf_counter() + args.seconds
        calls = 0
        while time.perf_counter() < deadline:
            local_exporter()
            calls += 1
        local_rate = calls / args.seconds
        done = [0] * args.concurrent

        def worker(i: int) -> None:
            own = random.Random(i)
            with httpx.Client(base_url=base, timeout=60) as c:
                while time.perf_counter() < stop_at:
                    t = from_us(own.randrange(e0, e1))
                    k = from_us(own.randrange(r0, r1 + 1))
                    c.get(
                        "/api/licences",
                        params={
                            "exporter": own.choice(exporters),
                            "as_of": iso(t),
                            "known_at": iso(k),
                        },
                    ).raise_for_status()
                    done[i] += 1

        stop_at = time.perf_counter() + args.seconds
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrent)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        http_rate = sum(done) / args.seconds
        print(
            f"throughput exporter : {http_rate:,.0f} requests/s over HTTP with "
            f"{args.concurrent} clients; {local_rate:,.0f} calls/s in process (one thread): "
            f"{http_rate / local_rate:.0%}"
        )
        results["throughput"] = {
            "http_rps": http_rate,
            "clients": args.concurrent,
            "in_process_per_s": local_rate,
            "ratio": http_rate / local_rate,
        }

        # Head-of-line blocking: small requests while another client keeps asking for the
        # full listing (the server's concurrency, not its speed).
        listing = threading.Event()

        def big_listings() -> None:
            own = random.Random(99)
            with httpx.Client(base_url=base, timeout=60) as c:
                while not listing.is_set():
                    t = from_us(own.randrange(e0, e1))
                    k = from_us(own.randrange(r0, r1 + 1))
                    c.get("/api/licences", params={"as_of": iso(t), "known_at": iso(k)})

        background = threading.Thread(target=big_listings)
        background.start()
        try:
            time.sleep(0.5)
            results["beside_full_listings_ms"] = {}
            for name, run in (("exporter", http_exporter), ("healthz", healthz)):
                p50, p99, _ = timed(run, max(20, args.queries // 2))
                print(
                    f"{name + ' beside listings':<28}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms",
                    flush=True,
                )
                results["beside_full_listings_ms"][name] = {"p50": p50, "p99": p99}
        finally:
            listing.set()
            background.join()
        print(json.dumps(results))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        app.close()


if __name__ == "__main__":
    main()
