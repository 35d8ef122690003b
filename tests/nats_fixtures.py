"""NATS fixtures and helpers: a private nats-server per test, stream inspection, event batches.

Import the fixture into a test module (``from tests.nats_fixtures import nats_server_fixture``);
tests then ask for ``nats_server``.
Each server listens on a free 127.0.0.1 port with its own JetStream directory under the
test's tmp_path, and is stopped after the test even when it fails.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.nats_server import EmbeddedNats
from ledger.stream import parse_position
from tests import factory as f

WAIT_SECONDS = 60.0
"""Upper bound for waiting on asynchronous outcomes (never a timing assertion)."""


@pytest.fixture(name="nats_server")
def nats_server_fixture(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A nats-server with JetStream on a free port, stopped after the test."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    subject: str
    msg_id: str
    position: int
    headers: dict[str, str]
    data: bytes


async def _read_stream(url: str, stream: str) -> list[StoredMessage]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url.split(","), connect_timeout=5)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        total = info.state.last_seq
        if total == 0:
            return []
        consumer = await js.add_consumer(
            stream,
            ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=30,
            ),
        )
        sub = await js.pull_subscribe_bind(consumer=consumer.name, stream=stream)
        out: list[StoredMessage] = []
        while not out or out[-1].seq < total:
            for m in await sub.fetch(1000, timeout=10):
                h = dict(m.headers or {})
                out.append(
                    StoredMessage(
                        m.metadata.sequence.stream,
                        m.subject,
                        h.get("Nats-Msg-Id", ""),
                        parse_position(h.get("Ledger-Position")) or 0,
                        h,
                        m.data,
                    )
                )
        await js.delete_consumer(stream, consumer.name)
        return out
    finally:
        await nc.close()


def stream_messages(url: str, stream: str = "LEDGER") -> list[StoredMessage]:
    """Every message in the stream, in sequence order (``url``: one, or a cluster's list)."""
    return asyncio.run(_read_stream(url, stream))


def stream_info(url: str, stream: str = "LEDGER") -> Any:
    """The stream's JetStream ``StreamInfo`` (config, state, cluster)."""

    async def get() -> Any:
        import nats

        nc = await nats.connect(url.split(","), connect_timeout=5)
        try:
            return await nc.jsm().stream_info(stream)
        finally:
            await nc.close()

    return asyncio.run(get())


async def _count(url: str, stream: str) -> int:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    try:
        try:
            return (await nc.jsm().stream_info(stream)).state.messages
        except NotFoundError:
            return 0
    finally:
        await nc.close()


def stream_count(url: str, stream: str = "LEDGER") -> int:
    return asyncio.run(_count(url, stream))


def purge_stream(url: str, stream: str = "LEDGER") -> None:
    """Empty the stream (its messages, not its memory of message ids: see the relay)."""

    async def purge() -> None:
        import nats

        nc = await nats.connect(url)
        try:
            await nc.jsm().purge_stream(stream)
        finally:
            await nc.close()

    asyncio.run(purge())


def store_log(app: Ledger) -> list[tuple[int, str]]:
    """(position, event id) of every stored event, in position order."""
    import msgspec

    class Id(msgspec.Struct):
        event_id: str

    from ledger.relay import iter_notifications

    decoder = msgspec.json.Decoder(Id)
    payload = app.msgspec_mapper.payload
    return [(n.id, decoder.decode(payload(n.state)).event_id) for n in iter_notifications(app)]


def assert_stream_matches_store(url: str, app: Ledger, stream: str = "LEDGER") -> None:
    """The stream holds every stored event exactly once, in position order, and nothing else."""
    messages = stream_messages(url, stream)
    expected = store_log(app)
    got = [(m.position, m.msg_id) for m in messages]
    ids = [m.msg_id for m in messages]
    assert len(ids) == len(set(ids)), "an event is in the stream twice"
    assert got == expected


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


_counter = iter(range(10**9))


def party_batch(n: int, *, tag: str = "p") -> list[dict[str, Any]]:
    """``n`` PartyRegistered events with unique ids containing dots and spaces."""
    return [f.party(f"{tag}.{next(_counter)} co", roles=("exporter",)) for _ in range(n)]


def append_parties(app: Ledger, n: int, *, chunk: int = 1000, tag: str = "p") -> None:
    for start in range(0, n, chunk):
        app.append_objects(party_batch(min(chunk, n - start), tag=tag))


def relay_command() -> list[str]:
    """``ledger relay`` run by this test's Python (the venv's console script)."""
    return [sys.executable, "-m", "ledger.cli.main", "relay"]


def run_ledger(
    env: dict[str, str], *args: str, timeout: float = WAIT_SECONDS
) -> subprocess.CompletedProcess[str]:
    """``ledger ARGS`` in a subprocess with a ledger's variables; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", *args],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def subprocess_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """The test's environment plus a ledger's variables (for ``ledger`` subprocesses)."""
    merged = {**os.environ, **env, **extra}
    merged.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    return merged
