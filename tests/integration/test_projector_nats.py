"""The projector fed from the NATS stream gives the same views as fed from the store.

A private nats-server per test; the ledger's relay publishes the store's events (payload
as stored, ``Ledger-Position`` etc. in the headers); the projector consumes them through a
durable pull consumer and tracks ``Ledger-Position`` like the store path does.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.config import Settings
from ledger.nats_server import EmbeddedNats
from ledger.projections import api
from ledger.projections.query import Views
from ledger.projections.runner import run
from ledger.projections.stores import view_store
from ledger.relay import Relay
from tests.conftest import Backend
from tests.integration.test_projections import q, record_scenario
from tests.integration.test_projector import expected_used, record_history, shipments, used_now
from tests.nats_fixtures import nats_server_fixture  # noqa: F401

PROBES = [
    ("2025-12-04", "2025-12-11"),
    ("2025-12-11", "2025-12-13"),
    ("2025-12-11", "2025-12-16"),
    ("2025-12-31", "2025-12-31"),
    ("2026-01-02", "2025-12-19"),
    ("2025-11-20", "2025-11-06"),
]


def nats_settings(backend: Backend, nats_server: EmbeddedNats) -> Settings:
    """The backend's settings with this test's NATS server."""
    return backend.settings({**backend.env(), "LEDGER_NATS_URL": nats_server.url})


def snapshot(app: Ledger) -> list[Any]:
    v = Views(app, mode="stored")
    out: list[Any] = []
    for as_of, known_at in PROBES:
        t, k = q(as_of), q(known_at)
        out.append(
            (
                [v.records(kind, t, k) for kind in ("licence", "party", "measure", "commitment")],
                [f.to_dict() for f in api.all_findings(v, t, k)],
                api.asymmetry(v, t, k),
            )
        )
    return out


def test_views_from_nats_equal_views_from_the_store(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    settings = nats_settings(backend, nats_server)
    app = Ledger(settings)
    try:
        record_scenario(app)  # backdated events and a retraction
        Relay(app, nats_server.url).run_once()
        stop = threading.Event()

        from_nats = run(settings, stop, source="nats", once=True)
        assert from_nats.position == app.head()
        nats_views = snapshot(app)
        counts = view_store(app).row_counts()

        from_store = run(settings, stop, source="store", once=True, rebuild=True)
        assert from_store.position == app.head()
        assert snapshot(app) == nats_views
        assert view_store(app).row_counts() == counts

        fold = Views(app, mode="fold")
        for (as_of, known_at), (records, _, _) in zip(PROBES, nats_views, strict=True):
            t, k = q(as_of), q(known_at)
            assert records == [
                fold.records(kind, t, k) for kind in ("licence", "party", "measure", "commitment")
            ]

        # Rebuilding from NATS with the durable consumer already at the end: the tracked
        # position is the truth, so the consumer is repositioned and everything replayed.
        again = run(settings, stop, source="nats", once=True, rebuild=True)
        assert again.position == app.head()
        assert snapshot(app) == nats_views
    finally:
        app.close()


def test_nats_projector_follows_and_resumes(backend: Backend, nats_server: EmbeddedNats) -> None:
    settings = nats_settings(backend, nats_server)
    app = Ledger(settings)
    try:
        record_history(app, batches=2, per_batch=200)
        relay = Relay(app, nats_server.url)
        relay.run_once()
        stop = threading.Event()
        first = run(settings, stop, source="nats", once=True)
        assert first.position == app.head()

        # More events while the projector is down: it resumes after its tracked position.
        app.append_objects(shipments(400, 200))
        relay.run_once()
        second = run(settings, stop, source="nats", once=True)
        assert second.position == app.head()
        assert second.applied == 200

        # Following: new events arrive through the stream while it runs.
        errors: list[BaseException] = []

        def follow() -> None:
            try:
                run(settings, stop, source="nats")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        worker = threading.Thread(target=follow, daemon=True)
        worker.start()
        try:
            app.append_objects(shipments(600, 150))
            relay.run_once()
            store = view_store(app)
            deadline = dt.datetime.now() + dt.timedelta(seconds=120)
            while store.position() < app.head():
                assert not errors, errors
                assert dt.datetime.now() < deadline, "the NATS projector did not catch up"
                threading.Event().wait(0.05)
        finally:
            stop.set()
            worker.join(timeout=60)
        assert not errors, errors
        used = {
            r["licence_id"]: int(r["items"][0]["used"])
            for r in api.licences(Views(app, mode="stored"), None, None)
        }
        assert used == expected_used(750)
    finally:
        app.close()


def test_events_published_while_the_projector_looks_up_its_start_are_applied(
    backend: Backend, nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caught up, the projector looks up where to resume (the next position is not in the
    stream yet); events the relay publishes just then are applied, not skipped.  It used
    to read the stream's last sequence again and start after it: the views then stayed
    behind until some later event revealed the gap (the follow test hung on it)."""
    import asyncio

    from ledger import stream as st

    settings = nats_settings(backend, nats_server)
    app = Ledger(settings)
    try:
        record_history(app, batches=1, per_batch=60)
        relay = Relay(app, nats_server.url)
        relay.run_once()
        stop = threading.Event()
        assert run(settings, stop, source="nats", once=True).position == app.head()
        look_up = st.seq_for_position
        published: list[Any] = []

        async def look_up_then_publish(jsm: Any, stream: str, position: int) -> int:
            seq = await look_up(jsm, stream, position)
            if not published:
                app.append_objects(shipments(60, 30))
                published.append(await asyncio.to_thread(relay.run_once))
            return seq

        monkeypatch.setattr(st, "seq_for_position", look_up_then_publish)
        assert run(settings, stop, source="nats", once=True).position == app.head()
        assert used_now(app, "stored") == expected_used(90)
    finally:
        app.close()


def test_events_missing_from_the_stream_are_read_from_the_store(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """A stream that lost messages (its head purged, one deleted in the middle) does not
    make the projector skip them: the gaps are filled from the store."""
    import asyncio

    from ledger import stream as st

    settings = nats_settings(backend, nats_server)
    app = Ledger(settings)
    try:
        record_history(app, batches=2, per_batch=200)
        Relay(app, nats_server.url).run_once()

        async def lose_messages() -> None:
            nc = await st.connect(nats_server.url, name="test-loses-messages")
            try:
                jsm = nc.jsm()
                for seq in [1, 2, 3, 150, 151, 390]:
                    await jsm.delete_msg(settings.stream, seq)
            finally:
                await nc.close()

        asyncio.run(lose_messages())
        result = run(settings, threading.Event(), source="nats", once=True)
        assert result.position == app.head()
        used = {
            r["licence_id"]: int(r["items"][0]["used"])
            for r in api.licences(Views(app, mode="stored"), None, None)
        }
        assert used == expected_used(400)
    finally:
        app.close()


@pytest.mark.parametrize("fetch_timeout", [0.0002, 0.02])
def test_idle_fetches_that_time_out_or_come_back_empty_are_retried(
    backend: Backend, nats_server: EmbeddedNats, fetch_timeout: float
) -> None:
    """An idle stream's fetches end in every way nats-py has, and the projector fetches
    again each time instead of stopping:

    - asyncio's TimeoutError (not nats-py's) when the server's "no messages" answer lands
      after the fetch's deadline (a busy CI machine): most fetches with a 0.2 ms timeout;
    - an empty list when the pull request expires just before the deadline: ~40% of
      fetches with a 20 ms timeout (with the default 0.5 s, one every few seconds).
    """
    import asyncio
    import time

    from ledger.projections.runner import follow_nats, new_projector

    settings = nats_settings(backend, nats_server)
    app = Ledger(settings)
    failures: list[BaseException] = []
    stop = threading.Event()
    try:
        record_history(app, batches=2, per_batch=200)
        relay = Relay(app, nats_server.url)
        relay.run_once()
        follower = Ledger(settings)  # the projector's own connections, as in `ledger serve`
        projector = new_projector(follower, view_store(follower))

        def follow() -> None:
            try:
                asyncio.run(
                    follow_nats(follower, projector, stop, fetch=50, fetch_timeout=fetch_timeout)
                )
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)
            finally:
                follower.close()

        def caught_up(within: float) -> bool:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline and not failures:
                if projector.position == app.head():
                    return True
                time.sleep(0.02)
            return False

        thread = threading.Thread(target=follow)
        thread.start()
        assert caught_up(30), failures
        time.sleep(1.0)  # idle: only "no messages" answers, most of them late
        app.append_objects(shipments(400, 50))
        relay.run_once()
        assert caught_up(30), failures
        stop.set()
        thread.join(10)
        assert not failures
        assert used_now(app, "stored") == expected_used(450)
    finally:
        stop.set()
        app.close()


def test_a_stream_head_purged_by_its_limits_is_reported_as_purged_not_refused(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """JetStream drops the oldest messages of a stream with limits (here max_msgs, as
    max_age would): a projector that still needed them applies the store's events, and
    `ledger status` reports the purged head apart from the refused (forged) messages."""
    import asyncio
    import json

    from click.testing import CliRunner

    from ledger import stream as st
    from ledger.cli.main import cli
    from tests.nats_fixtures import append_parties

    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    settings = backend.settings(env)
    app = Ledger(settings)
    try:
        append_parties(app, 6)  # two append batches: checkpoints of sizes 6 and 12
        append_parties(app, 6)
        Relay(app, nats_server.url).run_once()

        async def keep_only_the_last(messages: int) -> tuple[int, int]:
            nc = await st.connect(nats_server.url, name="test-stream-limits")
            try:
                jsm = nc.jsm()
                config = (await jsm.stream_info(settings.stream)).config
                config.max_msgs = messages
                await jsm.update_stream(config)
                state = (await jsm.stream_info(settings.stream)).state
                return state.first_seq, state.messages
            finally:
                await nc.close()

        assert asyncio.run(keep_only_the_last(4)) == (9, 4)
        projected = CliRunner().invoke(cli, ["project", "--source", "nats", "--once"], env=env)
        assert projected.exit_code == 0, projected.output
        assert "Views at position 12 " in projected.stdout
        assert "refused" not in projected.stderr
        status = CliRunner().invoke(cli, ["status", "-o", "json"], env=env)
        assert status.exit_code == 0, status.output
        projector = json.loads(status.stdout)["projector"]
        assert projector["rejected"] == {"malformed": 0, "refused": 0}
        assert projector["purged"] == 1
        text = CliRunner().invoke(cli, ["status"], env=env)
        assert "purged     1 time(s)" in text.stdout and "rejected" not in text.stdout
        stored, fold = Views(app, mode="stored"), Views(app, mode="fold")
        assert stored.records("party", None, None) == fold.records("party", None, None)

        # Later events on the limited stream: verified and applied, nothing more counted.
        append_parties(app, 2)
        Relay(app, nats_server.url).run_once()
        assert run(settings, threading.Event(), source="nats", once=True).position == 14
        status = CliRunner().invoke(cli, ["status", "-o", "json"], env=env)
        projector = json.loads(status.stdout)["projector"]
        assert projector["purged"] == 1 and projector["rejected"]["refused"] == 0
    finally:
        app.close()
