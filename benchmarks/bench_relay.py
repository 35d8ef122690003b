"""Relay throughput against raw nats-py publishes of the same payloads, and end-to-end latency.

    python benchmarks/bench_relay.py [--events 50000] [--repeat 3] [--postgres URL]
                                     [--rate 200] [--seconds 10] [--poll-interval 0.05]

Everything runs against its own embedded nats-server (JetStream, file storage) in a
temporary directory.  A ledger is filled with a realistic batch (parties, vetting,
licences, mostly shipments; the generator of ``bench_import.py``), then, alternately and
``--repeat`` times, each into a fresh stream:

- **raw**: ``js.publish_async`` of the very payloads the relay publishes, on the same
  subjects, with ``Nats-Msg-Id`` only, then ``publish_async_completed()`` — the floor cost
  of getting those bytes acknowledged by JetStream with nats-py.  Measured a second time
  with the relay's full header set (``raw+headers``) for reference.
- **relay**: ``Relay.run_once()`` from the store: read the notification log in batches,
  build subjects and headers, publish pipelined, wait for every ack, record the position.
  Measured a second time with ``fast_publish=False`` (headers through ``nc.publish``
  instead of pre-built frames) for reference.

Prints events/s, the best of the repeats for each, and relay / raw (target >= 80%).

Then the **latency** from append to subscriber at a steady rate: one thread appends single
events (``--rate`` per second for ``--seconds``) while a relay runs (polling the store every
``--poll-interval`` seconds once caught up) and a subscriber receives them; prints p50 and
p99 of (received - append started).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _bench_import() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_import", ROOT / "benchmarks" / "bench_import.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_ledger(workdir: Path, postgres: str | None) -> Any:
    from ledger.app import Ledger
    from ledger.config import Settings

    env = {"LEDGER_HOME": str(workdir / "home"), "LEDGER_ACTOR": "bench"}
    if postgres:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in postgres else "?"
        env["LEDGER_DATABASE_URL"] = f"{postgres}{sep}schema={schema}"
    return Ledger(Settings.from_env(env))


def drop_schema(app: Any, postgres: str | None) -> None:
    if not postgres:
        return
    import psycopg

    schema = app.factory.datastore.schema
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def fill(app: Any, events: int, workdir: Path) -> None:
    jsonl = workdir / "events.jsonl"
    _bench_import().generate(jsonl, events)
    batch: list[Any] = []
    for line in jsonl.open("rb"):
        batch.append(json.loads(line))
        if len(batch) == 5000:
            app.append_objects(batch)
            batch = []
    if batch:
        app.append_objects(batch)


def outgoing(app: Any) -> list[Any]:
    """Every event as the relay would publish it (subject suffix, payload, headers)."""
    from ledger.relay import iter_notifications, outgoing_message

    payload = app.msgspec_mapper.payload
    return [outgoing_message("x", n, payload(n.state)) for n in iter_notifications(app)]


async def raw_publish(url: str, messages: list[Any], stream: str, all_headers: bool) -> float:
    import nats
    from nats.js.api import StorageType, StreamConfig

    nc = await nats.connect(url, pending_size=8 * 1024 * 1024)
    js = nc.jetstream()
    prefix = stream.lower()
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"{prefix}.>"], storage=StorageType.FILE)
    )
    subjects = [prefix + m.subject[1:] for m in messages]  # "x.kind.Type.id" -> "<prefix>...."
    headers = [dict(m.headers) if all_headers else {"Nats-Msg-Id": m.event_id} for m in messages]
    started = time.perf_counter()
    for subject, m, h in zip(subjects, messages, headers, strict=True):
        await js.publish_async(subject, m.payload, headers=h)
    await js.publish_async_completed()
    elapsed = time.perf_counter() - started
    info = await js.stream_info(stream)
    assert info.state.messages == len(messages), info.state
    await js.delete_stream(stream)
    await nc.close()
    return elapsed


def relay_publish(app: Any, url: str, stream: str, fast_publish: bool = True) -> float:
    from ledger.relay import Relay

    relay = Relay(app, url, stream=stream, subject_prefix=stream.lower(), fast_publish=fast_publish)
    started = time.perf_counter()
    stats = relay.run_once()
    elapsed = time.perf_counter() - started
    assert stats.published == app.index.count_events(), stats

    async def delete() -> None:
        import nats

        nc = await nats.connect(url)
        await nc.jsm().delete_stream(stream)
        await nc.close()

    asyncio.run(delete())
    return elapsed


def latency(app: Any, url: str, rate: float, seconds: float, poll_interval: float) -> list[float]:
    """Seconds from append start to subscriber receipt, per event, at a steady rate."""
    from ledger import subscribe
    from ledger.relay import Relay

    stream = "LATENCY"
    prefix = "lat"
    relay = Relay(app, url, stream=stream, subject_prefix=prefix, poll_interval=poll_interval)
    relay.run_once()  # the backlog: latency is measured on new events only
    stop = threading.Event()
    relay_thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    relay_thread.start()
    started_at: dict[str, float] = {}
    received_at: dict[str, float] = {}
    total = int(rate * seconds)
    source = {"reference": "https://example.org/latency", "publisher": "bench"}

    def append() -> None:
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for i in range(total):
            next_at += interval
            event_id = str(uuid.uuid4())
            started_at[event_id] = time.perf_counter()
            app.append_objects(
                [
                    {
                        "type": "PartyRegistered",
                        "event_id": event_id,
                        "entity_id": f"lat-{i}",
                        "name": f"Latency {i}",
                        "country": "DE",
                        "roles": ["end-user"],
                        "effective_at": "2025-01-01",
                        "sources": [source],
                    }
                ]
            )
            time.sleep(max(0.0, next_at - time.perf_counter()))

    async def receive(ready: threading.Event) -> None:
        async with subscribe(
            url, settings=app.settings, stream=stream, subject_prefix=prefix, start="new"
        ) as sub:
            ready.set()
            deadline = time.monotonic() + seconds + 60
            while len(received_at) < total and time.monotonic() < deadline:
                delivery = await sub.next_delivery(1.0)
                if delivery is not None:
                    received_at[str(delivery.event.event_id)] = time.perf_counter()

    ready = threading.Event()
    appender = threading.Thread(target=lambda: (ready.wait(), append()), daemon=True)
    appender.start()
    asyncio.run(receive(ready))
    appender.join()
    stop.set()
    relay_thread.join(30)
    missing = total - len(received_at)
    if missing:
        print(f"  warning: {missing} event(s) not received", file=sys.stderr)
    return sorted(received_at[k] - started_at[k] for k in received_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="Use this PostgreSQL (fresh schema).")
    parser.add_argument("--rate", type=float, default=200.0, help="Appends per second.")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    args = parser.parse_args()

    from ledger.nats_server import EmbeddedNats

    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        workdir = Path(tmp)
        app = open_ledger(workdir, args.postgres)
        server = EmbeddedNats(workdir / "nats")
        url = server.start()
        try:
            print(f"filling a ledger with {args.events} events ({app.settings.backend}) ...")
            fill(app, args.events, workdir)
            messages = outgoing(app)
            size = statistics.mean(len(m.payload) for m in messages)
            print(f"{len(messages)} events, mean payload {size:.0f} bytes; nats-server at {url}")
            raw: list[float] = []
            raw_headers: list[float] = []
            relay: list[float] = []
            relay_generic: list[float] = []
            for i in range(args.repeat):
                raw.append(asyncio.run(raw_publish(url, messages, f"RAW{i}", False)))
                raw_headers.append(asyncio.run(raw_publish(url, messages, f"RAWH{i}", True)))
                relay.append(relay_publish(app, url, f"RELAY{i}"))
                relay_generic.append(relay_publish(app, url, f"RELAYG{i}", fast_publish=False))
                print(
                    f"  run {i + 1}: raw {len(messages) / raw[-1]:,.0f}/s  "
                    f"raw+headers {len(messages) / raw_headers[-1]:,.0f}/s  "
                    f"relay {len(messages) / relay[-1]:,.0f}/s  "
                    f"relay via nc.publish {len(messages) / relay_generic[-1]:,.0f}/s"
                )
            n = len(messages)
            raw_rate, raw_h_rate, relay_rate = n / min(raw), n / min(raw_headers), n / min(relay)
            generic_rate = n / min(relay_generic)
            print()
            print(f"throughput, best of {args.repeat} ({n} events, store {app.settings.backend}):")
            print(f"  raw js.publish_async, Nats-Msg-Id only     {raw_rate:>10,.0f} events/s")
            print(f"  raw js.publish_async, the relay's headers  {raw_h_rate:>10,.0f} events/s")
            print(f"  relay, store -> acked in JetStream         {relay_rate:>10,.0f} events/s")
            print(f"  relay publishing with nc.publish instead   {generic_rate:>10,.0f} events/s")
            print(
                f"  relay / raw = {relay_rate / raw_rate:.0%} (target >= 80%); "
                f"relay / raw+headers = {relay_rate / raw_h_rate:.0%}"
            )
            print()
            print(
                f"latency append -> subscriber at {args.rate:g} events/s for {args.seconds:g}s "
                f"(relay poll interval {args.poll_interval:g}s) ..."
            )
            samples = latency(app, url, args.rate, args.seconds, args.poll_interval)
            if samples:
                p50 = samples[len(samples) // 2] * 1000
                p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
                print(f"  {len(samples)} events: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        finally:
            server.stop()
            drop_schema(app, args.postgres)
            app.close()


if __name__ == "__main__":
    main()
