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
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.nats_server import EmbeddedNats
    from ledger.relay import Relay

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        home = Path(tmp)
        app = Ledger(Settings.from_env({"LEDGER_HOME": str(home), "LEDGER_ACTOR": "bench"}))
        server = EmbeddedNats(home / "nats")
        url = server.start()
        try:
            for start in range(0, args.events, args.batch):
                count = min(args.batch, args.events - start)
                app.append_objects(
                    [
                        {
                            "type": "PartyRegistered",
                            "entity_id": f"p{start + i}",
                            "name": f"Party {start + i}",
                            "country": "DE",
                            "roles": ["exporter"],
                            "effective_at": "2025-12-01",
                            "sources": [SOURCE],
                        }
                        for i in range(count)
                    ]
                )
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
            print(
                f"\nbest of {args.repeat} ({args.events} events, append batches of {args.batch}):"
            )
            print(f"  subscribe()             {plain_rate:>10,.0f} events/s")
            print(f"  subscribe(verify=True)  {verify_rate:>10,.0f} events/s")
            print(f"  verifying / plain = {verify_rate / plain_rate:.2f} (target >= 0.7)")
        finally:
            server.stop()
            app.close()


if __name__ == "__main__":
    main()
