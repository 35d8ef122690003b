"""The relay against a real nats-server, on SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.nats_server import EmbeddedNats
from ledger.relay import EventTooLarge, Relay, RelayError
from tests import factory as f
from tests.conftest import Backend
from tests.nats_fixtures import (
    append_parties,
    assert_stream_matches_store,
    nats_server_fixture,  # noqa: F401 - the nats_server fixture
    purge_stream,
    store_log,
    stream_count,
    stream_info,
    stream_messages,
    wait_until,
)

pytestmark = pytest.mark.nats


@contextmanager
def running_relay(
    app: Ledger, url: str, relay_class: type[Relay] = Relay, **options: Any
) -> Iterator[Relay]:
    """A relay publishing in a background thread until the block ends."""
    options.setdefault("max_backoff", 0.5)
    options.setdefault("poll_interval", 0.02)
    relay = relay_class(app, url, **options)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            relay.run_forever(stop)
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-relay", daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the relay did not stop"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("fast_publish", [True, False], ids=["frames", "nc.publish"])
def test_publishes_every_event_once_in_order_then_resumes(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, fast_publish: bool
) -> None:
    app = make_ledger()
    app.append_objects([f.exporter("jl-mag"), f.party("buyer"), f.vetted("buyer")])
    app.append_objects([f.licence("GL.1 ext", effective_at="2025-12-02T08:00:00+08:00")])
    append_parties(app, 1500)

    stats = Relay(app, nats_server.url, fast_publish=fast_publish, batch_size=400).run_once()

    assert stats.published == app.head() == len(store_log(app))
    assert_stream_matches_store(nats_server.url, app)
    licence = next(m for m in stream_messages(nats_server.url) if m.position == 4)
    assert licence.subject == "ledger.licence.LicenceGranted.GL%2E1%20ext"
    event = app.get_event(__import__("uuid").UUID(licence.msg_id))
    assert event is not None
    assert licence.data == app.msgspec_mapper.payload(
        app.recorder.select_notifications(start=4, limit=1)[0].state
    )
    expected = {
        "Nats-Msg-Id": str(event.event.event_id),
        "Ledger-Position": "4",
        "Ledger-Event-Type": "LicenceGranted",
        "Ledger-Entity": "licence:GL.1 ext",
        "Ledger-Effective-At": "2025-12-02T08:00:00+08:00",
        # The recorded time exactly as the payload carries it (the ledger sets it).
        "Ledger-Recorded-At": json.loads(licence.data)["recorded_at"],
        "Ledger-Schema-Version": "1",
        "Ledger-Leaf": "3",  # leaves count from 0
    }
    assert {k: licence.headers[k] for k in expected} == expected
    assert (
        dt.datetime.fromisoformat(licence.headers["Ledger-Recorded-At"]) == event.event.recorded_at
    )

    # More events later: a new relay publishes exactly those.
    append_parties(app, 300)
    again = Relay(app, nats_server.url, fast_publish=fast_publish).run_once()
    assert again.published == 300
    assert_stream_matches_store(nats_server.url, app)
    assert Relay(app, nats_server.url).tracked_position() == app.head()
    assert Relay(app, nats_server.url).run_once().published == 0


def test_events_appended_while_nats_is_down_are_published_when_it_starts(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    url = nats_server.url
    nats_server.stop()
    with running_relay(app, url) as relay:
        for _ in range(5):
            append_parties(app, 200)
        wait_until(lambda: len(relay.stats.failures) >= 2, "the relay to retry")
        assert relay.stats.published == 0
        nats_server.start()
        wait_until(lambda: stream_count(url) == 1000, "1000 events in the stream")
        append_parties(app, 100)  # and it keeps going once connected
        wait_until(lambda: stream_count(url) == 1100, "1100 events in the stream")
    assert_stream_matches_store(url, app)


def test_nats_killed_mid_stream_then_restarted(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    url = nats_server.url
    append_parties(app, 3000)
    with running_relay(app, url, batch_size=100, max_in_flight=200) as relay:
        wait_until(lambda: stream_count(url) > 0, "the first events in the stream")
        nats_server.kill()
        append_parties(app, 500)
        wait_until(lambda: len(relay.stats.failures) >= 1, "the relay to notice")
        nats_server.start()
        wait_until(lambda: stream_count(url) == 3500, "all 3500 events in the stream")
    assert_stream_matches_store(url, app)
    assert relay.stats.resyncs >= 2


def test_a_rejected_publish_inside_the_window_leaves_no_gap(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """JetStream refuses one event mid-window; the events behind it must not be stored.

    The stream is created beforehand with a maximum message size that the 31st event
    exceeds, so JetStream rejects exactly that publish while the 30 events after it are
    already in flight.  The chained expectations make those fail too: the stream stays a
    prefix of the log until the limit is lifted, then catches up in order.
    """
    from nats.js.api import StorageType, StreamConfig

    app = make_ledger()
    append_parties(app, 30)
    app.append_objects([f.party("big", name="B" * 3000)])
    append_parties(app, 30)

    async def create_small_stream() -> None:
        import nats

        nc = await nats.connect(nats_server.url)
        await nc.jsm().add_stream(
            StreamConfig(
                name="LEDGER",
                subjects=["ledger.>"],
                storage=StorageType.FILE,
                max_msg_size=2000,
                duplicate_window=120,
            )
        )
        await nc.close()

    async def lift_limit() -> None:
        import nats

        nc = await nats.connect(nats_server.url)
        jsm = nc.jsm()
        info = await jsm.stream_info("LEDGER")
        await jsm.update_stream(info.config.evolve(max_msg_size=-1))
        await nc.close()

    asyncio.run(create_small_stream())
    with running_relay(app, nats_server.url, max_in_flight=1000) as relay:
        wait_until(lambda: len(relay.stats.failures) >= 1, "the rejection")
    assert any("maximum" in reason for reason in relay.stats.failures)
    messages = stream_messages(nats_server.url)
    assert [(m.position, m.msg_id) for m in messages] == store_log(app)[:30]

    asyncio.run(lift_limit())
    assert Relay(app, nats_server.url).run_once().published == 31
    assert_stream_matches_store(nats_server.url, app)


@pytest.mark.parametrize("fast_publish", [True, False], ids=["frames", "nc.publish"])
def test_an_event_over_the_servers_max_payload_stops_the_relay_with_its_name(
    make_ledger: Callable[..., Ledger], tmp_path: Path, fast_publish: bool
) -> None:
    """Sent anyway, the server would drop the connection and the relay would loop on
    "disconnected"; it must stop at once, naming the event, after what precedes it."""
    config = tmp_path / "small.conf"
    config.write_text("max_payload: 2048\n")
    app = make_ledger()
    append_parties(app, 30)
    app.append_objects([f.party("big", name="B" * 3000)])
    append_parties(app, 5)
    big_position, big_id = store_log(app)[30]
    with EmbeddedNats(tmp_path / "nats", extra_args=("-c", str(config))) as server:
        relay = Relay(app, server.url, fast_publish=fast_publish)
        with pytest.raises(EventTooLarge) as refused:
            relay.run_once(give_up_after=5)
        message = str(refused.value)
        assert f"event {big_id} (position {big_position})" in message
        assert "max_payload of 2048 bytes" in message
        assert relay.stats.failures == []
        messages = stream_messages(server.url)
        assert [(m.position, m.msg_id) for m in messages] == store_log(app)[:30]
        assert Relay(app, server.url).tracked_position() == store_log(app)[29][0]


def test_resumes_from_the_stream_when_tracking_lags_behind(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    append_parties(app, 500)
    untracked = Relay(app, nats_server.url)
    # As if killed before recording its position.  This patches a private method: killing
    # a relay at exactly that point from outside is not deterministic (test_relay_crash
    # does it at random points); here the lagging tracking must be certain.
    untracked._track = lambda position: None  # type: ignore[method-assign]
    untracked.run_once()
    assert Relay(app, nats_server.url).tracked_position() == 0
    assert stream_count(nats_server.url) == 500

    append_parties(app, 50)
    stats = Relay(app, nats_server.url).run_once()
    assert stats.published == 50
    assert_stream_matches_store(nats_server.url, app)


def _delete_stream(url: str, stream: str = "LEDGER") -> None:
    async def delete() -> None:
        import nats

        nc = await nats.connect(url)
        try:
            await nc.jsm().delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(delete())


def test_a_stream_that_lost_events_is_not_published_past_the_gap(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """The stream is recreated after 100 events were published: the relay refuses to
    publish the next ones after the hole, so the operator can still refill it."""
    app = make_ledger()
    append_parties(app, 100)
    Relay(app, nats_server.url).run_once()
    _delete_stream(nats_server.url)
    append_parties(app, 7)

    with pytest.raises(RelayError) as refused:
        Relay(app, nats_server.url).run_once()
    message = str(refused.value)
    assert "ends at position 0 but positions up to 100 were published" in message
    assert "position(s) 1-100" in message
    assert "`ledger relay --republish-from 1`" in message
    assert "`ledger relay --republish-from 101`" in message
    assert stream_count(nats_server.url) == 0  # nothing published after the gap
    assert Relay(app, nats_server.url).tracked_position() == 100

    # The operator refills the stream from the start: the missing positions and the new
    # ones are published once, in order; doing it again publishes nothing.
    refill = Relay(app, nats_server.url, republish_from=1).run_once()
    assert refill.published == 107
    assert_stream_matches_store(nats_server.url, app)
    assert Relay(app, nats_server.url, republish_from=1).run_once().published == 0
    append_parties(app, 3)
    assert Relay(app, nats_server.url).run_once().published == 3
    assert_stream_matches_store(nats_server.url, app)


def test_the_operator_can_accept_a_gap_and_continue_after_it(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    append_parties(app, 100)
    Relay(app, nats_server.url).run_once()
    _delete_stream(nats_server.url)
    append_parties(app, 7)

    accepted = Relay(app, nats_server.url, republish_from=101).run_once()
    assert accepted.published == 7
    messages = stream_messages(nats_server.url)
    assert [(m.position, m.msg_id) for m in messages] == store_log(app)[100:]
    # From then on the stream's head is the tracked position: plain relays carry on.
    append_parties(app, 2)
    assert Relay(app, nats_server.url).run_once().published == 2
    messages = stream_messages(nats_server.url)
    assert [(m.position, m.msg_id) for m in messages] == store_log(app)[100:]


def test_a_purge_within_the_duplicate_window_is_refilled_not_acked_as_duplicates(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """After a purge JetStream still remembers the purged ids for its duplicate window and
    answers their re-publish ``duplicate`` without storing them: the relay must not take
    that for "published"; it keeps resynchronising until the window has passed."""
    app = make_ledger()
    append_parties(app, 20)
    Relay(app, nats_server.url, duplicate_window=3).run_once()
    purge_stream(nats_server.url)
    assert stream_count(nats_server.url) == 0
    with running_relay(app, nats_server.url, duplicate_window=3, republish_from=1) as relay:
        wait_until(lambda: stream_count(nats_server.url) == 20, "the purged events refilled")
        assert any("as a duplicate" in reason for reason in relay.stats.failures)
    assert_stream_matches_store(nats_server.url, app)


def test_relay_once_waits_out_the_duplicate_window_rather_than_giving_up(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """``relay --once --republish-from`` right after a purge: the publishes are refused as
    duplicates until the window passes, which is progress deferred, not NATS gone, so a
    shorter give-up time does not end the refill."""
    app = make_ledger()
    append_parties(app, 20)
    Relay(app, nats_server.url, duplicate_window=3).run_once()
    purge_stream(nats_server.url)
    relay = Relay(app, nats_server.url, duplicate_window=3, republish_from=1)
    stats = relay.run_once(give_up_after=0.5)
    assert stats.published == 20
    assert any("as a duplicate" in reason for reason in stats.failures)
    assert_stream_matches_store(nats_server.url, app)


def test_a_foreign_message_at_the_streams_head_stops_the_relay(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """Only the relay may publish to the stream: a message after its last event that is
    not one of them (someone holds the relay's credential) is not resumed after."""
    app = make_ledger()
    append_parties(app, 20)
    Relay(app, nats_server.url).run_once()

    async def publish_foreign() -> None:
        import nats

        nc = await nats.connect(nats_server.url)
        await nc.jetstream().publish("ledger.note.Note.x", b"not an event")
        await nc.close()

    asyncio.run(publish_foreign())
    append_parties(app, 20)
    with pytest.raises(RelayError) as refused:
        Relay(app, nats_server.url).run_once()
    assert str(refused.value).startswith(
        "the last message of stream LEDGER, seq 21 (subject ledger.note.Note.x) carries no "
        "Ledger-Position, so it is not an event published by the ledger's relay. It was not "
        "published by this ledger's relay"
    )
    assert "nats stream rmm LEDGER SEQ" in str(refused.value)
    assert len(stream_messages(nats_server.url)) == 21


def test_stream_configuration_follows_settings(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, backend: Any
) -> None:
    from nats.js.api import StorageType

    env = backend.env()
    app = make_ledger({**env, "LEDGER_STREAM": "AUDIT", "LEDGER_DUPLICATE_WINDOW": "30s"})
    append_parties(app, 3)
    Relay(app, nats_server.url).run_once()
    info = stream_info(nats_server.url, "AUDIT")
    assert info.config.storage == StorageType.FILE
    assert info.config.duplicate_window == 30
    assert info.config.num_replicas == 1
    assert info.config.subjects == ["ledger.>"]

    again = make_ledger({**env, "LEDGER_STREAM": "AUDIT", "LEDGER_DUPLICATE_WINDOW": "2m"})
    Relay(again, nats_server.url).run_once()
    assert stream_info(nats_server.url, "AUDIT").config.duplicate_window == 120
    assert_stream_matches_store(nats_server.url, again, "AUDIT")


def test_a_relay_resyncing_while_another_one_publishes_sees_no_gap(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, monkeypatch: Any
) -> None:
    """Two relays (`ledger relay --once` beside `ledger serve`'s): while B resynchronises,
    A publishes and tracks more.  B used to read the stream's head before the tracked
    position and took A's progress for a gap (RelayError: "positions ... are no longer in
    the stream"), which stops a relay; now it carries on and nothing is published twice."""
    from ledger import stream as st

    app = make_ledger()
    append_parties(app, 20)
    a = Relay(app, nats_server.url)
    a.run_once()
    b = Relay(app, nats_server.url)
    read_head = st.read_head
    published: list[Any] = []
    once = threading.Lock()

    async def read_head_then_the_other_relay_publishes(jsm: Any, stream: str, **kw: Any) -> Any:
        head = await read_head(jsm, stream, **kw)
        if once.acquire(blocking=False):  # only B's first read (A reads the head too)
            append_parties(app, 10, tag="more")
            published.append(await asyncio.to_thread(a.run_once))
        return head

    monkeypatch.setattr(st, "read_head", read_head_then_the_other_relay_publishes)
    b.run_once()
    assert published  # A did publish in the middle of B's resynchronisation
    assert_stream_matches_store(nats_server.url, app)


def test_a_commit_by_another_process_wakes_the_caught_up_relay(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """The relay reads the log as soon as the store hints at a commit (file notification
    on SQLite, NOTIFY on PostgreSQL), not at its next poll: with a poll interval of ten
    minutes, only the hint can bring the events into the stream within the wait."""
    import os
    import subprocess
    import sys

    env = backend.env()
    app = Ledger(backend.settings(env))
    try:
        app.append_objects([f.party("first")])
        with running_relay(app, nats_server.url, poll_interval=600):
            wait_until(lambda: stream_count(nats_server.url) == 1, "the first event")
            time.sleep(0.5)  # caught up: the relay now waits for a hint
            for n in range(3):
                code = (
                    "import json, sys; from ledger.app import Ledger; "
                    "Ledger().append_objects([json.loads(sys.argv[1])])"
                )
                subprocess.run(
                    [sys.executable, "-c", code, json.dumps(f.party(f"other-{n}"))],
                    env={**os.environ, **env},
                    check=True,
                    timeout=60,
                )
                wait_until(
                    lambda n=n: stream_count(nats_server.url) == 2 + n,
                    f"event {2 + n}, appended by another process",
                    timeout=30,
                )
    finally:
        app.close()


class _HeldAcksRelay(Relay):
    """The relay with JetStream's acks to its publishes held back while ``hold`` is set
    (as a slow ack round trip would), then handed in, in order, with the next one."""

    hold = False
    held: list[Any]

    async def _on_ack(self, msg: Any) -> None:
        if not hasattr(self, "held"):
            self.held = []
        if self.hold:
            self.held.append(msg)
            return
        while self.held:
            await super()._on_ack(self.held.pop(0))
        await super()._on_ack(msg)


def test_the_caught_up_relay_publishes_a_commit_without_waiting_for_earlier_acks(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """Once caught up, the relay waits for the next commit, not for the acks of what it
    just published: they come back beside the next publishes (each publish still
    carries its expectation, so exactly once and in order hold).  The old relay drained
    first, so with an ack outstanding the next commit waited for it (here, held back
    for good with a long ack timeout, it never went out)."""
    app = Ledger(backend.settings())
    try:
        app.append_objects([f.party("first")])
        with running_relay(
            app, nats_server.url, relay_class=_HeldAcksRelay, ack_timeout=600
        ) as relay:
            assert isinstance(relay, _HeldAcksRelay)
            wait_until(lambda: relay.stats.published == 1, "the first event acknowledged")
            relay.hold = True
            app.append_objects([f.party("second")])
            wait_until(lambda: len(relay.held) == 1, "the second event's ack (held back)")
            app.append_objects([f.party("third")])
            wait_until(
                lambda: stream_count(nats_server.url) == 3,
                "the third event published while the second's ack is outstanding",
                timeout=30,
            )
            relay.hold = False
            app.append_objects([f.party("fourth")])
            wait_until(lambda: relay.stats.published == 4, "every ack handed in")
            assert relay.stats.failures == []
        assert_stream_matches_store(nats_server.url, app)
    finally:
        app.close()


def test_a_commit_hint_costs_the_caught_up_relay_one_read_of_the_log(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """A commit mark (SQLite) or notification (PostgreSQL) comes once the commit is
    visible: the relay reads the log once for it and publishes, with no read-ahead after
    a short batch and no re-reads at doubling pauses (those are for hints that can come
    early, the write-ahead log's writes; each read costs CPU the next commit waits for).
    The old relay read ten times per commit.  (On PostgreSQL this needs the ledger's own
    channel: on one shared by every schema, other ledgers' commits in the shared test
    database woke the relay too.)"""
    reads: list[int] = []

    class CountingRelay(Relay):
        def _read(self, after: int) -> Any:
            reads.append(after)
            return super()._read(after)

    app = Ledger(backend.settings())
    try:
        app.append_objects([f.party("first")])
        relay = CountingRelay(app, nats_server.url, poll_interval=600, max_backoff=0.5)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: stream_count(nats_server.url) == 1, "the first event")
            # A commit first, so the SQLite watcher has seen a mark (until then the WAL's
            # writes count as early hints).
            app.append_objects([f.party("second")])
            wait_until(lambda: stream_count(nats_server.url) == 2, "the second event")
            for n in range(3):
                time.sleep(0.5)  # past any re-reads (the old relay's ended within 0.26 s)
                before = len(reads)
                app.append_objects([f.party(f"more-{n}")])
                wait_until(lambda n=n: stream_count(nats_server.url) == 3 + n, f"event {3 + n}")
                time.sleep(0.5)
                assert len(reads) - before == 1, reads[before:]
        finally:
            stop.set()
            thread.join(60)
        assert not thread.is_alive()
    finally:
        app.close()


def test_on_sqlite_a_commit_marks_itself_and_followers_wake_on_the_mark(
    sqlite_backend: Backend,
) -> None:
    """Each commit of events opens and closes ``<db>-commit`` once it is visible; a
    follower that has seen such a mark wakes on marks only, no longer on the write-ahead
    log's writes, which come before the commit is visible (a write that marks nothing,
    here a table of another tool, wakes nobody; polling stays the fallback)."""
    import sqlite3

    from ledger.store.wake import COMMIT_MARKER_SUFFIX, mark_commit, watch_appends

    app = Ledger(sqlite_backend.settings())
    database = str(app.settings.sqlite_path)
    marker = Path(database + COMMIT_MARKER_SUFFIX)

    async def follow() -> None:
        wake = asyncio.Event()
        watcher = asyncio.create_task(watch_appends(app, wake))
        try:
            await asyncio.sleep(0.3)  # watching
            await asyncio.to_thread(app.append_objects, [f.party("first")])
            assert marker.exists()
            await asyncio.wait_for(wake.wait(), 30)
            await asyncio.sleep(0.3)  # the WAL's own events of that commit are in
            wake.clear()

            def unmarked_write() -> None:
                with sqlite3.connect(database) as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS other_tool (x)")
                    conn.execute("INSERT INTO other_tool VALUES (1)")

            await asyncio.to_thread(unmarked_write)
            await asyncio.sleep(0.5)
            assert not wake.is_set()
            mark_commit(database)
            await asyncio.wait_for(wake.wait(), 30)
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher

    try:
        asyncio.run(follow())
    finally:
        app.close()


def test_a_slow_tracking_write_does_not_hold_up_publishing(
    postgres_backend: Backend, nats_server: EmbeddedNats
) -> None:
    """The relay records its position beside publishing, not in its way.  Here its
    tracking table is locked against writes (as a durable write is slow under load: an
    fsync, the store's write lock shared with the appenders): events appended meanwhile
    still reach the stream, and the position is recorded once the lock is gone.
    PostgreSQL only: there a lock can hold the tracking write without holding appends."""
    import psycopg

    from tests.conftest import POSTGRES_URL

    url = nats_server.url
    app = Ledger(postgres_backend.settings())
    schema = postgres_backend.schemas[-1]
    try:
        app.append_objects([f.party("first")])
        with running_relay(app, url) as relay:
            wait_until(lambda: relay.tracked_position() == 1, "the first position recorded")
            with psycopg.connect(POSTGRES_URL) as lock:
                table = f'"{schema}".{relay.tracking.tracking_table_name}'  # type: ignore[attr-defined]
                lock.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
                for n in range(3):
                    app.append_objects([f.party(f"later-{n}")])
                    time.sleep(0.6)  # past the tracking interval: the relay records now
                wait_until(
                    lambda: stream_count(url) == 4, "the events appended while tracking waits"
                )
                assert relay.tracked_position() == 1
                lock.rollback()
            wait_until(lambda: relay.tracked_position() == 4, "the position recorded")
    finally:
        app.close()


def test_the_nats_client_still_offers_the_private_calls_the_fast_path_uses(
    nats_server: EmbeddedNats,
) -> None:
    """The relay queues pre-built HPUB frames through nats-py's private ``_send_command``,
    ``_flush_pending`` and ``_flush_queue`` (docs/architecture.md); without them it falls
    back to ``nc.publish``, correct but slower.  This fails when a nats-py release drops
    or renames them, so the pin is not raised unnoticed."""
    import nats

    from ledger.relay import _frame_sender

    async def check() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            assert _frame_sender(nc) is not None
        finally:
            await nc.close()

    asyncio.run(check())


def test_more_checkpoints_than_the_in_flight_window_are_published_in_order(
    sqlite_backend: Backend, nats_server: EmbeddedNats
) -> None:
    """Single-event appends, each its own signed batch: one relay round publishes more
    checkpoints than CHECKPOINTS_IN_FLIGHT, pipelined, and the checkpoint stream holds
    every one, in order; the next round continues after the last."""
    from ledger.relay import CHECKPOINTS_IN_FLIGHT

    app = Ledger(sqlite_backend.settings())
    try:
        batches = CHECKPOINTS_IN_FLIGHT + 20
        for _ in range(batches):
            append_parties(app, 1)
        Relay(app, nats_server.url).run_once()
        sizes = [
            int(m.headers["Ledger-Tree-Size"])
            for m in stream_messages(nats_server.url, "LEDGER_CHECKPOINTS")
        ]
        assert sizes == list(range(1, batches + 1))
        append_parties(app, 1)
        Relay(app, nats_server.url).run_once()
        checkpoints = stream_messages(nats_server.url, "LEDGER_CHECKPOINTS")
        assert [int(m.headers["Ledger-Tree-Size"]) for m in checkpoints[batches:]] == [batches + 1]
    finally:
        app.close()
