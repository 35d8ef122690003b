"""A verifying subscriber against a plain one, on the same stream, in one run.

    python benchmarks/bench_subscriber_verify.py [--events 50000] [--batch 1000] [--repeat 3]

Fills a SQLite ledger in a temporary directory with ``--events`` PartyRegistered events
appended ``--batch`` at a time (one signed checkpoint per append batch), relays them to an
embedded nats-server (JetStream, file storage), then, alternately and ``--repeat`` times,
reads the whole stream from the beginning with ``subscribe()`` (an ephemeral consumer,
each event acknowledged) and with ``subscribe(verify=True)`` (the Merkle tree recomputed
from the messages, every checkpoint's signature checked, events handed out once a
checkpoint covers them).  Prints events/s, the best of the repeats for each, and the
ratio verifying / plain (target >= 0.7).

    python benchmarks/bench_subscriber_verify.py --latency 1000 [--rate 200] [--repeat 3]

measures instead how long a verified event waits once its checkpoint is out: a ledger of
``--latency`` single-event append batches (one checkpoint each); this process publishes,
as the relay does, each event and then its checkpoint at ``--rate`` per second to a
fresh stream, and a ``subscribe(verify=True)`` in the same process notes when it hands
the event out.  Latency: handed out - just before the checkpoint's publish.  Alternately
``--repeat`` times: **hints** (as shipped: it wakes when a checkpoint is published) and
**polling** (``Subscription.wake_on_checkpoint = False``: the checkpoint stream read
every 50 ms only, as before).  Prints p50 / p99 / max and the process's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOURCE = {
    "reference": "https://example.org/bench",
    "publisher": "bench",
    "published_on": "2025-11-07",
    "status": "reported",
}


async def consume(url: str, app: Any, total: int, verify: bool) -> float:
    from ledger.subscriber import subscribe

    key = app.signing_key().verifier if verify else None
    started = time.perf_counter()
    received = 0
    async with subscribe(
        url, settings=app.settings, batch=1000, verify=verify, verifier_key=key
    ) as sub:
        while received < total:
            delivery = await sub.next_delivery(30)
            if delivery is None:
                raise SystemExit(f"stalled after {received} events")
            received += 1
    return time.perf_counter() - started


async def latency_run(
    url: str, app: Any, rate: float, hints: bool, tag: str
) -> tuple[list[float], float]:
    """(sorted latencies in seconds, CPU seconds) of one run on a fresh stream."""
    from ledger import stream as st
    from ledger.bus_verify import (
        checkpoint_messages,
        checkpoint_subject,
        ensure_checkpoint_stream,
        leaf_indexes,
    )
    from ledger.relay import iter_notifications, outgoing_message
    from ledger.subscriber import subscribe

    stream, prefix = f"LAT{tag}", f"lat{tag.lower()}"
    notifications = list(iter_notifications(app, 0))
    leaves = leaf_indexes(app, [n.id for n in notifications])
    plan = []
    for n in notifications:
        message = outgoing_message(prefix, n, app.msgspec_mapper.payload(n.state), leaves[n.id])
        checkpoints = checkpoint_messages(app, stream, leaves[n.id], n.id)
        plan.append((n.id, message, checkpoints))
    nc = await st.connect(url, name="bench-latency")
    jsm, js = nc.jsm(), nc.jetstream()
    await st.ensure_stream(jsm, stream, prefix)
    await ensure_checkpoint_stream(jsm, stream, prefix)
    stamped: dict[int, float] = {}
    delivered: dict[int, float] = {}
    subscription = subscribe(
        url,
        settings=app.settings,
        stream=stream,
        subject_prefix=prefix,
        verify=True,
        verifier_key=app.signing_key().verifier,
    )
    subscription.wake_on_checkpoint = hints

    async def publish() -> None:
        interval, next_at = 1.0 / rate, time.monotonic()
        for position, message, checkpoints in plan:
            next_at += interval
            await js.publish(message.subject, message.payload, headers=message.headers)
            for _, payload, headers in checkpoints:
                stamped[position] = time.monotonic()
                await js.publish(checkpoint_subject(prefix, stream), payload, headers=headers)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    cpu = time.process_time()
    async with subscription as sub:
        publisher = asyncio.create_task(publish())
        while len(delivered) < len(plan):
            delivery = await sub.next_delivery(30)
            if delivery is None:
                raise SystemExit(f"stalled after {len(delivered)} events")
            delivered[delivery.position] = time.monotonic()
        await publisher
    cpu = time.process_time() - cpu
    await nc.close()
    return sorted(delivered[p] - stamped[p] for p in delivered), cpu


def _party(i: int) -> dict[str, object]:
    return {
        "type": "PartyRegistered",
        "entity_id": f"p{i}",
        "name": f"Party {i}",
        "country": "DE",
        "roles": ["exporter"],
        "effective_at": "2025-12-01",
        "sources": [SOURCE],
    }


@contextlib.contextmanager
def _ledger_and_nats(prefix: str) -> Iterator[tuple[Any, str]]:
    """A temporary ledger and an embedded nats-server: (the ledger, the server's URL)."""
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.nats_server import EmbeddedNats

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        home = Path(tmp)
        app = Ledger(Settings.from_env({"LEDGER_HOME": str(home), "LEDGER_ACTOR": "bench"}))
        server = EmbeddedNats(home / "nats")
        url = server.start()
        try:
            yield app, url
        finally:
            server.stop()
            app.close()


def latency_main(args: argparse.Namespace) -> None:
    with _ledger_and_nats("bench-verify-latency-") as (app, url):
        for i in range(args.latency):  # one append batch (one checkpoint) each
            app.append_objects([_party(i)])
        print(f"{args.latency} events, each with its checkpoint, at {args.rate:.0f}/s")
        for i in range(args.repeat):
            for mode in ("hints", "polling"):
                values, cpu = asyncio.run(
                    latency_run(url, app, args.rate, mode == "hints", f"{mode[0].upper()}{i}")
                )

                def q(f: float, values: list[float] = values) -> float:
                    return values[min(len(values) - 1, int(f * len(values)))] * 1e3

                print(
                    f"  run {i + 1} {mode:8s} checkpoint out -> handed out: p50 {q(0.5):6.1f}"
                    f"  p99 {q(0.99):6.1f}  max {values[-1] * 1e3:6.1f} ms;  CPU {cpu:.2f} s"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=int, metavar="N", help="Measure latency on N events.")
    parser.add_argument("--rate", type=float, default=200.0, help="With --latency: events/s.")
    args = parser.parse_args()
    if args.latency:
        latency_main(args)
        return

    from ledger.relay import Relay

    with _ledger_and_nats("bench-verify-") as (app, url):
        for start in range(0, args.events, args.batch):
            count = min(args.batch, args.events - start)
            app.append_objects([_party(start + i) for i in range(count)])
        Relay(app, url).run_once()
        plain: list[float] = []
        verifying: list[float] = []
        for i in range(args.repeat):
            plain.append(asyncio.run(consume(url, app, args.events, False)))
            verifying.append(asyncio.run(consume(url, app, args.events, True)))
            print(
                f"  run {i + 1}: plain {args.events / plain[-1]:,.0f}/s  "
                f"verifying {args.events / verifying[-1]:,.0f}/s"
            )
        plain_rate, verify_rate = args.events / min(plain), args.events / min(verifying)
        print(f"\nbest of {args.repeat} ({args.events} events, append batches of {args.batch}):")
        print(f"  subscribe()             {plain_rate:>10,.0f} events/s")
        print(f"  subscribe(verify=True)  {verify_rate:>10,.0f} events/s")
        print(f"  verifying / plain = {verify_rate / plain_rate:.2f} (target >= 0.7)")


if __name__ == "__main__":
    main()
