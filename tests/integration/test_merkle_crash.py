"""Writers killed with SIGKILL in the middle of appends: tree, checkpoint and events stay
in step (``verify`` passes and the latest checkpoint signs every stored event)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledger import audit
from ledger.app import Ledger
from ledger.checkpoint import open_checkpoint
from tests.nats_fixtures import subprocess_env

pytestmark = pytest.mark.slow

WRITER = """
import itertools, random, sys
from ledger.app import Ledger
from ledger.config import Settings
from tests import factory

app = Ledger(Settings.from_env())
rng = random.Random(int(sys.argv[1]))
print("ready", flush=True)
for n in itertools.count():
    size = rng.choice([1, 3, 17, 64, 200])
    app.append_objects([factory.party(f"k{sys.argv[1]}-{n}-{i}") for i in range(size)])
"""


def test_sigkill_during_appends_leaves_tree_checkpoint_and_events_in_step(
    backend: Any, tmp_path: Path
) -> None:
    seed = int(os.environ.get("LEDGER_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"seed {seed} (rerun with LEDGER_TEST_SEED={seed})")
    env = backend.env()
    child_env = subprocess_env(env)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for run in range(4):
        writers = [
            subprocess.Popen(
                [sys.executable, str(script), str(run * 10 + w)],
                env=child_env,
                stdout=subprocess.PIPE,
            )
            for w in range(2)  # two writers at once: their batches interleave
        ]
        try:
            for proc in writers:
                assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.2, 1.5))
        finally:  # (a writer that failed to start must not leave the other appending)
            for proc in writers:
                proc.kill()
                proc.wait()
        app = Ledger(backend.settings(env))
        try:
            key = app.signing_key().verifier
            report = audit.verify(app, key=key)
            stored = app.index.count_events()
            assert report.events == stored > 0
            note = audit.latest_checkpoint(app)
            assert note is not None
            assert open_checkpoint(note, key).size == stored
            assert report.unsigned_after is None
        finally:
            app.close()
