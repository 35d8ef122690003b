"""The relay killed with SIGKILL at random points, 20 times: every event exactly once, in order."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.nats_server import EmbeddedNats
from ledger.relay import Relay
from tests.nats_fixtures import (
    append_parties,
    assert_stream_matches_store,
    nats_server_fixture,  # noqa: F401 - the nats_server fixture
    relay_command,
    stream_count,
    subprocess_env,
)

pytestmark = [pytest.mark.nats, pytest.mark.slow]

RUNS = 20


async def _kill_when_stream_reaches(
    proc: subprocess.Popen[bytes], url: str, threshold: int, deadline: float
) -> int:
    """SIGKILL the relay as soon as the stream holds ``threshold`` messages."""
    import nats

    nc = await nats.connect(url, allow_reconnect=False)
    try:
        jsm = nc.jsm()
        count = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                count = (await jsm.stream_info("LEDGER")).state.messages
            except Exception:  # the stream may not exist yet
                count = 0
            if count >= threshold:
                break
            await asyncio.sleep(0.001)
        proc.kill()
        return count
    finally:
        await nc.close()


def test_relay_killed_at_random_points_publishes_every_event_exactly_once(
    backend: Any, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    seed = int(os.environ.get("LEDGER_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"seed {seed} (rerun with LEDGER_TEST_SEED={seed})")
    env = backend.env()
    url = nats_server.url
    # A tiny duplicate window: exactly-once must not rest on JetStream's de-duplication.
    child_env = subprocess_env(env, LEDGER_NATS_URL=url, LEDGER_DUPLICATE_WINDOW="0.2s")
    app = Ledger(backend.settings(env))
    log_file = tmp_path / "relay.log"
    mid_publish = 0
    total = 0
    try:
        for run in range(RUNS):
            appended = rng.randint(200, 1200)
            append_parties(app, appended, tag=f"r{run}")
            total += appended
            before = stream_count(url)
            pending = total - before
            args = [
                "--batch-size",
                str(rng.choice([20, 100, 1000])),
                "--max-in-flight",
                str(rng.choice([5, 100, 4000])),
                "--poll-interval",
                "0.01",
            ]
            with log_file.open("ab") as log:
                proc = subprocess.Popen(
                    relay_command() + args,
                    env=child_env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                try:
                    if run % 2:
                        # At a random moment: starting up, connecting, publishing or idle.
                        time.sleep(rng.uniform(0.0, 1.2))
                        proc.kill()
                        at = stream_count(url)
                    else:
                        # As the stream passes a random point of this run's backlog.
                        threshold = before + rng.randint(1, max(1, pending - 1))
                        at = asyncio.run(
                            _kill_when_stream_reaches(proc, url, threshold, time.monotonic() + 60)
                        )
                finally:
                    proc.kill()
                    proc.wait(30)
            assert proc.returncode == -9, f"run {run}: the relay exited on its own"
            if before < at < before + pending:
                mid_publish += 1
        print(f"{mid_publish} of {RUNS} kills landed while the backlog was being published")
        # The point of the test: some kills must hit the relay while it publishes (half the
        # runs kill it as the stream passes a point inside the backlog).
        assert mid_publish >= 1, f"no kill landed mid-publish (seed {seed})"

        # A last relay finishes the backlog; then the stream must equal the log.
        Relay(app, url).run_once()
        assert_stream_matches_store(url, app)
        assert stream_count(url) == total
    finally:
        app.close()
