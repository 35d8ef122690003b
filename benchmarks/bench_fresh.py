"""Fresh by default: append (by another process) -> subscriber latency, with and without
the relay's commit hints, in one run.

    python benchmarks/bench_fresh.py [--rate 200] [--seconds 10] [--repeat 2] [--postgres URL]

An embedded nats-server and a ledger (SQLite in a temporary home, or a fresh schema of
``--postgres``); a relay with its default settings runs in a thread of this process, a
subscriber (``ledger.subscribe``, from the next position) receives here, and a *separate process*
appends single events at ``--rate`` per second (one ``Ledger.append_objects`` call each,
as ``ledger append`` does).  Per event: (received here) - (the appender's clock just
before its append call), both ``time.monotonic()`` (one clock for every process on
Linux); it is also split where the relay starts publishing the event (commit -> relay
publishes, relay publishes -> received), the first part again at the relay's read of the
log in a worker thread (commit -> read starts, the read, read -> publishing; "commit ->
read starts" is negative for an event found by a read begun before its append
returned).  Alternately ``--repeat`` times:

- **raw nats** (the baseline): raw nats-py, a core publish (and flush) of a ~400-byte
  message from another process at the same rate to a plain subscription here;
- **hints**: the relay as shipped (``wake_on_commit=True``): it reads the log when the
  store hints at a commit, polling every 50 ms as the fallback;
- **polling**: the same relay with ``wake_on_commit=False``: polling every 50 ms only
  (what the relay did before the hints).

Prints p50 / p99 / max for each (target: hints p99 < 20 ms at 200 events/s).

With ``--verify`` the subscriber is ``subscribe(verify=True)`` (an event is handed out
once its signed checkpoint, published by the relay after the event, verifies), and the
modes compare the subscriber's side, the relay as shipped in both:

- **verify hints**: as shipped: it wakes when a checkpoint is published (a core
  subscription to the checkpoint subject), polling every 50 ms as the fallback;
- **verify polling**: ``Subscription.wake_on_checkpoint = False``: polling the checkpoint
  stream every 50 ms only (what it did before the hints).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APPENDER = r"""
import sys, time, uuid
from ledger.app import Ledger
rate, total, tag, log = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
app = Ledger()
# The times go to a file, not a pipe: nobody reads a pipe until the run is over, and a
# full pipe (~1,000 lines) would block the appender mid-run.
out = open(log, "w")
source = {"reference": "https://example.org/latency", "publisher": "bench"}
sys.stdin.readline()  # the subscriber is ready
interval = 1.0 / rate
next_at = time.monotonic()
for i in range(total):
    next_at += interval
    event_id = str(uuid.UUID(f"{tag}{i:012x}"))
    started = time.monotonic()
    app.append_objects([{
        "type": "PartyRegistered", "event_id": event_id, "entity_id": f"lat-{tag}-{i}",
        "name": f"Latency {i}", "country": "DE", "roles": ["end-user"],
        "effective_at": "2025-01-01", "sources": [source],
    }])
    print(event_id, started, time.monotonic(), file=out)
    time.sleep(max(0.0, next_at - time.monotonic()))
out.close()
app.close()
"""


RAW_PUBLISHER = r"""
import asyncio, sys, time
import nats
url, subject, rate, total = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
padding = b"x" * 400  # about an event's payload

async def main():
    nc = await nats.connect(url)
    sys.stdin.readline()  # the receiver is ready
    interval = 1.0 / rate
    next_at = time.monotonic()
    for i in range(total):
        next_at += interval
        await nc.publish(subject, f"{i} {time.monotonic()!r} ".encode() + padding)
        await nc.flush()
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await nc.drain()

asyncio.run(main())
"""


def measure_raw(url: str, rate: float, seconds: float) -> list[float]:
    """The baseline: raw nats-py, a core publish (and flush) from another process at the
    same rate to a plain subscription here; latencies in seconds, sorted."""
    import nats

    subject = f"fresh.raw.{uuid.uuid4().hex[:8]}"
    total = int(rate * seconds)
    latencies: list[float] = []

    async def receive() -> None:
        nc = await nats.connect(url)
        done = asyncio.Event()

        async def on_message(msg: Any) -> None:
            latencies.append(time.monotonic() - float(msg.data.split(b" ", 2)[1]))
            if len(latencies) >= total:
                done.set()

        await nc.subscribe(subject, cb=on_message)
        await nc.flush()
        proc = subprocess.Popen(
            [sys.executable, "-c", RAW_PUBLISHER, url, subject, str(rate), str(total)],
            stdin=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), seconds + 60)
        await nc.close()
        proc.wait(timeout=60)

    asyncio.run(receive())
    return sorted(latencies)


def open_env(workdir: Path, postgres: str | None) -> dict[str, str]:
    env = {"LEDGER_HOME": str(workdir / "home"), "LEDGER_ACTOR": "bench"}
    if postgres:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in postgres else "?"
        env["LEDGER_DATABASE_URL"] = f"{postgres}{sep}schema={schema}"
    return env


def measure(
    app: Any,
    env: dict[str, str],
    url: str,
    rate: float,
    seconds: float,
    hints: bool,
    verify: str | None = None,
) -> dict[str, list[float]]:
    """Latencies in seconds, each list sorted: from append start, from append return
    (the commit), commit -> the relay publishes, the relay publishes -> received here."""
    from ledger import subscribe
    from ledger.relay import Relay

    published_at: dict[int, float] = {}
    read_at: dict[int, tuple[float, float]] = {}
    acked_at: dict[int, float] = {}

    class StampingRelay(Relay):
        """The relay as shipped, noting when it reads each position (start, end: in a
        worker thread), starts publishing it, and gets its ack."""

        def _read(self, after: int) -> Any:
            started = time.monotonic()
            batch = super()._read(after)
            ended = time.monotonic()
            for notification in batch:
                read_at[notification.id] = (started, ended)
            return batch

        async def _publish_batch(self, session: Any, batch: Any) -> None:
            now = time.monotonic()
            for notification in batch:
                published_at[notification.id] = now
            await super()._publish_batch(session, batch)

        async def _on_ack(self, msg: Any) -> None:
            acked_at.setdefault(int(msg.subject.rsplit(".", 1)[1]), time.monotonic())
            await super()._on_ack(msg)

    stream = f"FRESH{uuid.uuid4().hex[:6].upper()}"
    prefix = f"fresh{uuid.uuid4().hex[:6]}"
    relay = StampingRelay(app, url, stream=stream, subject_prefix=prefix, wake_on_commit=hints)
    relay.run_once()  # the stream exists and the backlog is out: only new events count
    stop = threading.Event()
    relay_thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    relay_thread.start()
    total = int(rate * seconds)
    tag = uuid.uuid4().hex[:20]
    times = Path(env["LEDGER_HOME"]).parent / f"appended-{tag}.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(rate), str(total), tag, str(times)],
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        text=True,
    )
    received_at: dict[str, float] = {}
    position_of: dict[str, int] = {}

    async def receive() -> None:
        subscription = subscribe(
            url,
            settings=app.settings,
            stream=stream,
            subject_prefix=prefix,
            start=app.head() + 1,  # every new event ("new" may miss the first ones)
            verify=verify is not None,
            verifier_key=app.signing_key().verifier if verify else None,
        )
        subscription.wake_on_checkpoint = verify == "hints"
        async with subscription as sub:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            deadline = time.monotonic() + seconds + 60
            while len(received_at) < total and time.monotonic() < deadline:
                delivery = await sub.next_delivery(1.0)
                if delivery is not None:
                    received_at[str(delivery.event.event_id)] = time.monotonic()
                    position_of[str(delivery.event.event_id)] = delivery.position

    asyncio.run(receive())
    proc.communicate(timeout=60)
    out = times.read_text()
    stop.set()
    relay_thread.join(30)
    segments: dict[str, list[float]] = {
        "start": [],
        "commit": [],
        "to relay": [],
        "to read": [],
        "read": [],
        "read back": [],
        "bus": [],
        "ack": [],
    }
    for line in out.splitlines():
        event_id, started, returned = line.split()
        got = received_at.get(event_id)
        if got is not None:
            segments["start"].append(got - float(started))
            segments["commit"].append(got - float(returned))
            position = position_of[event_id]
            published = published_at.get(position)
            if published is not None:
                segments["to relay"].append(published - float(returned))
                segments["bus"].append(got - published)
                if position in read_at:
                    read_start, read_end = read_at[position]
                    segments["to read"].append(read_start - float(returned))
                    segments["read"].append(read_end - read_start)
                    segments["read back"].append(published - read_end)
                if position in acked_at:
                    segments["ack"].append(acked_at[position] - published)
    missing = total - len(segments["start"])
    if missing:
        print(
            f"  warning: {missing} event(s) not matched ({len(out.splitlines())} appended,"
            f" {len(received_at)} received)",
            file=sys.stderr,
        )
    return {name: sorted(values) for name, values in segments.items()}


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="Appends per second.")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--postgres", metavar="URL", help="Use this PostgreSQL (fresh schema).")
    parser.add_argument(
        "--verify", action="store_true", help="A verifying subscriber: checkpoint hints or not."
    )
    args = parser.parse_args()
    modes = ("verify hints", "verify polling") if args.verify else ("hints", "polling")

    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.nats_server import EmbeddedNats

    with tempfile.TemporaryDirectory(prefix="bench-fresh-") as tmp:
        workdir = Path(tmp)
        env = open_env(workdir, args.postgres)
        app = Ledger(Settings.from_env(env))
        server = EmbeddedNats(workdir / "nats")
        url = server.start()
        results: dict[str, list[dict[str, list[float]]]] = {"raw nats": []}
        results.update({mode: [] for mode in modes})
        try:
            print(
                f"{app.settings.backend}: appends from another process at {args.rate:.0f}/s "
                f"for {args.seconds:.0f} s; nats-server at {url}"
            )
            for _ in range(args.repeat):
                raw = measure_raw(url, args.rate, args.seconds)
                results["raw nats"].append({"publish": raw})
                for mode in modes:
                    verify = mode.split()[1] if args.verify else None
                    results[mode].append(
                        measure(app, env, url, args.rate, args.seconds, mode != "polling", verify)
                    )
        finally:
            app.close()
            server.stop()
            if args.postgres:  # the schema this run made, not left in a shared database
                import psycopg

                schema = env["LEDGER_DATABASE_URL"].rsplit("schema=", 1)[1]
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

        def ms(values: list[float]) -> str:
            if not values:
                return "-"
            return (
                f"p50 {quantile(values, 0.5) * 1e3:5.1f}  p99 {quantile(values, 0.99) * 1e3:6.1f}"
                f"  max {values[-1] * 1e3:6.1f} ms"
            )

        print("latency to the subscriber (raw nats: publish -> receive), n per run:")
        for mode, runs in results.items():
            for n, run in enumerate(runs, start=1):
                first = next(iter(run.values()))
                print(f"  {mode:14s} run {n} (n={len(first)}):")
                for name, values in run.items():
                    label = {
                        "publish": "publish -> received",
                        "start": "from append start",
                        "commit": "from commit",
                        "to relay": "  commit -> relay publishes",
                        "to read": "    commit -> read starts",
                        "read": "    read (worker thread)",
                        "read back": "    read -> publishing",
                        "bus": "  relay publishes -> received",
                        "ack": "    (not waited for) -> ack",
                    }[name]
                    print(f"    {label:30s} {ms(values)}")
        print(
            json.dumps(
                {
                    m: [{k: quantile(v, 0.99) for k, v in r.items() if v} for r in runs]
                    for m, runs in results.items()
                }
            )
        )


if __name__ == "__main__":
    main()
