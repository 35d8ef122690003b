"""The subscriber client against a real nats-server, on SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from ledger import Delivery, SubscriberError, subscribe
from ledger import events as ev
from ledger.app import Ledger
from ledger.nats_server import EmbeddedNats
from ledger.relay import Relay
from ledger.store.codec import decode_event
from tests import factory as f
from tests.nats_fixtures import (
    WAIT_SECONDS,
    append_parties,
    nats_server_fixture,  # noqa: F401 - the nats_server fixture
    store_log,
    subprocess_env,
)

pytestmark = pytest.mark.nats

UTC = dt.UTC


def publish(app: Ledger, url: str) -> None:
    Relay(app, url).run_once()


def stored_events(app: Ledger) -> list[tuple[int, ev.Event]]:
    out = []
    for n in app.recorder.select_notifications(start=1, limit=10**6):
        out.append((n.id, decode_event(app.msgspec_mapper.payload(n.state), n.topic)))
    return out


async def drain(sub: Any, expected: int) -> list[Delivery]:
    """Deliveries until ``expected`` arrived (bounded wait; the caller checks the content)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while len(got) < expected and time.monotonic() < deadline:
        d = await sub.next_delivery(1.0)
        if d is not None:
            got.append(d)
    return got


def test_durable_subscriber_stopped_mid_stream_resumes_with_no_loss_and_no_skip(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    append_parties(app, 300)
    publish(app, nats_server.url)

    async def first_part() -> list[tuple[int, str]]:
        seen = []
        async with subscribe(nats_server.url, settings=app.settings, durable="billing") as sub:
            async for event in sub:
                assert isinstance(event, ev.PartyRegistered)
                assert sub.current is not None
                seen.append((sub.current.position, str(event.event_id)))
                if len(seen) == 120:
                    break  # the 120th was handled: acknowledged as the block exits
        return seen

    async def second_part(expected: int) -> tuple[list[tuple[int, str]], int]:
        async with subscribe(nats_server.url, settings=app.settings, durable="billing") as sub:
            assert not sub.created
            got = await drain(sub, expected)
            pending = await sub.pending()
        return [(d.position, str(d.event.event_id)) for d in got], pending

    first = asyncio.run(first_part())
    append_parties(app, 50)  # and more arrive while the subscriber is away
    publish(app, nats_server.url)
    second, pending = asyncio.run(second_part(230))
    assert first + second == [(p, i) for p, i in store_log(app)]
    assert pending == 0


def test_a_failing_handler_gets_the_event_again(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    append_parties(app, 40)
    publish(app, nats_server.url)
    log = [p for p, _ in store_log(app)]

    async def run() -> tuple[list[int], list[Delivery]]:
        handled: list[int] = []

        def handler(d: Delivery) -> None:
            if d.position == log[9]:
                raise RuntimeError("handler crashed")
            handled.append(d.position)

        with pytest.raises(RuntimeError, match="handler crashed"):
            async with subscribe(nats_server.url, settings=app.settings, durable="h") as sub:
                await sub.consume(handler)
        async with subscribe(nats_server.url, settings=app.settings, durable="h") as sub:
            rest = await drain(sub, len(log) - 9)
        return handled, rest

    handled, rest = asyncio.run(run())
    assert handled == log[:9]
    assert [d.position for d in rest] == log[9:]
    assert rest[0].redelivered


SUBSCRIBER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from ledger import subscribe

    async def main():
        async with subscribe(sys.argv[1], durable="crashy", ack_wait=1.0, batch=20) as sub:
            async for event in sub:
                print(sub.current.position, flush=True)   # "handled"

    asyncio.run(main())
    """
)


def test_a_killed_subscriber_process_resumes_with_no_loss(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, backend: Any
) -> None:
    env = backend.env()
    app = make_ledger(env)
    append_parties(app, 400)
    publish(app, nats_server.url)
    log = [p for p, _ in store_log(app)]
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER_SCRIPT, nats_server.url],
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
    )
    handled: list[int] = []
    try:
        assert proc.stdout is not None
        while len(handled) < 150:
            line = proc.stdout.readline()
            assert line, "the subscriber process ended early"
            handled.append(int(line))
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.stdout is not None
    handled += [int(line) for line in proc.stdout.read().split()]  # printed before the kill
    assert handled == log[: len(handled)]

    async def resume() -> list[int]:
        seen: list[int] = []
        async with subscribe(nats_server.url, settings=app.settings, durable="crashy") as sub:
            deadline = time.monotonic() + WAIT_SECONDS
            while (not seen or seen[-1] != log[-1]) and time.monotonic() < deadline:
                d = await sub.next_delivery(1.0)
                if d is not None:
                    seen.append(d.position)
        return seen

    resumed = asyncio.run(resume())
    # At least once: the resumed run starts at or before the first unhandled event, then
    # continues in order to the end without skipping anything.
    assert resumed[0] <= log[len(handled)]
    start = log.index(resumed[0])
    assert resumed == log[start:]


def test_a_subscriber_carries_on_through_a_nats_restart(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """NATS stops mid-stream (acks in flight are lost) and restarts; the open subscription
    continues: every event once, in order (redeliveries of handled events are skipped)."""
    app = make_ledger()
    append_parties(app, 100)
    publish(app, nats_server.url)

    async def run() -> tuple[list[int], int]:
        seen: list[int] = []
        sub = subscribe(nats_server.url, settings=app.settings, durable="r", ack_wait=2.0)
        async with sub:
            while len(seen) < 50:
                d = await sub.next_delivery(1.0)
                if d is not None:
                    seen.append(d.position)
            nats_server.stop()
            while (d := await sub.next_delivery(0.5)) is not None:  # fetched before the stop
                seen.append(d.position)
            nats_server.start()
            append_parties(app, 20)
            await asyncio.to_thread(publish, app, nats_server.url)
            expected = store_log(app)[-1][0]
            deadline = time.monotonic() + WAIT_SECONDS
            while seen[-1] != expected and time.monotonic() < deadline:
                d = await sub.next_delivery(1.0)
                if d is not None:
                    seen.append(d.position)
        return seen, sub.skipped

    seen, skipped = asyncio.run(run())
    assert seen == [p for p, _ in store_log(app)]
    # The path this test is about: handled events came again after the restart (their
    # acks were lost with the server's state) and were skipped, not handed out twice.
    assert skipped > 0


def test_start_at_a_recorded_time_or_a_position(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    base = dt.datetime(2025, 11, 1, tzinfo=UTC)
    offsets = [0, 10, 10, 25, 40, 40, 40, 90]  # minutes; equal times share a batch slot
    objects = [
        {**f.party(f"t.{i}"), "recorded_at": (base + dt.timedelta(minutes=m)).isoformat()}
        for i, m in enumerate(offsets)
    ]
    app.append_objects(objects, backfill=True)
    publish(app, nats_server.url)
    log = store_log(app)
    positions = [p for p, _ in log]

    async def first_position(start: Any) -> int | None:
        async with subscribe(nats_server.url, settings=app.settings, start=start) as sub:
            d = await sub.next_delivery(1.0)
            return None if d is None else d.position

    beijing = dt.timezone(dt.timedelta(hours=8))
    cases = [
        (base - dt.timedelta(days=1), positions[0]),
        (base, positions[0]),
        (base + dt.timedelta(minutes=10), positions[1]),  # first of two at that time
        (base + dt.timedelta(minutes=10, microseconds=1), positions[3]),
        ((base + dt.timedelta(minutes=40)).astimezone(beijing), positions[4]),
        (base + dt.timedelta(minutes=41), positions[7]),
        (base + dt.timedelta(minutes=90), positions[7]),
    ]
    for since, expected in cases:
        assert asyncio.run(first_position(since)) == expected, since
    for p in positions:
        assert asyncio.run(first_position(p)) == p
    assert asyncio.run(first_position(positions[-1] + 1)) is None
    assert asyncio.run(first_position(base + dt.timedelta(days=1))) is None

    async def later_only(start: Any) -> list[int]:
        async with subscribe(nats_server.url, settings=app.settings, start=start) as sub:
            assert await sub.pending() == 0
            append_parties(app, 3)
            await asyncio.to_thread(publish, app, nats_server.url)
            return [d.position for d in await drain(sub, 3)]

    # Nothing recorded at or after a future time yet: starts with what comes next.
    assert asyncio.run(later_only(dt.datetime.now(UTC))) == [p for p, _ in store_log(app)][-3:]
    assert asyncio.run(later_only("new")) == [p for p, _ in store_log(app)][-3:]


def test_events_published_while_the_start_is_looked_up_are_delivered(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, monkeypatch: Any
) -> None:
    """Starting at a position not in the stream yet, events the relay publishes just after
    the look-up are delivered: the start comes from the look-up itself.  (It used to ask
    the stream for its last sequence again and start after that, skipping them.)"""
    from ledger import stream as st

    app = make_ledger()
    append_parties(app, 3)
    publish(app, nats_server.url)
    head = app.head()
    look_up = st.seq_for_position

    async def look_up_then_publish(jsm: Any, stream: str, position: int) -> int:
        seq = await look_up(jsm, stream, position)
        append_parties(app, 2, tag="late")
        await asyncio.to_thread(publish, app, nats_server.url)
        return seq

    monkeypatch.setattr(st, "seq_for_position", look_up_then_publish)

    async def delivered() -> list[int]:
        async with subscribe(nats_server.url, settings=app.settings, start=head + 1) as sub:
            return [d.position for d in await drain(sub, 2)]

    assert asyncio.run(delivered()) == [p for p, _ in store_log(app)][-2:]


ODD_IDS = ["GL.1", "GL 1", "GL*1", "GL>1", "GL%1", "北方.1", "GL-1"]


def test_filters_select_exactly_the_matching_events(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    app.append_objects([f.exporter("jl-mag"), f.party("buyer"), f.vetted("buyer")])
    for lid in ODD_IDS:
        app.append_objects([f.licence(lid)])
    app.append_objects([f.party(pid, roles=("end-user",)) for pid in ODD_IDS])
    app.append_objects([f.vetted(pid) for pid in ODD_IDS[:3]])
    app.append_objects([f.usage("GL.1", "S-1"), f.usage("GL 1", "S-1"), f.usage("GL.1", "S-2")])
    wrong = app.append_objects([f.usage("GL*1", "S-9")]).outcomes[0].event_id
    app.retract(wrong, "typed the wrong licence")
    publish(app, nats_server.url)
    events = stored_events(app)

    def expect(pred: Callable[[ev.Event], bool]) -> list[int]:
        return [p for p, e in events if pred(e)]

    cases: list[tuple[list[str], list[int]]] = [
        (["licence:GL.1"], expect(lambda e: e.entity == "licence:GL.1")),
        (["licence:GL*1"], expect(lambda e: e.entity == "licence:GL*1")),
        (["*:GL 1"], expect(lambda e: e.entity_id == "GL 1")),
        (["party:北方.1"], expect(lambda e: e.entity == "party:北方.1")),
        (["party:GL%1"], expect(lambda e: e.entity == "party:GL%1")),
        (["licence"], expect(lambda e: e.entity_kind == "licence")),
        (["LicenceGranted"], expect(lambda e: e.type == "LicenceGranted")),
        (["EventRetracted"], expect(lambda e: e.type == "EventRetracted")),
        (
            ["LicenceUsageRecorded@licence:GL.1"],
            expect(lambda e: e.type == "LicenceUsageRecorded" and e.entity_id == "GL.1"),
        ),
        (
            ["PartyVetted", "licence:GL>1"],
            expect(lambda e: e.type == "PartyVetted" or e.entity == "licence:GL>1"),
        ),
        (["ledger.party.*.GL-1"], expect(lambda e: e.entity == "party:GL-1")),
        (["ledger.*.PartyRegistered.>"], expect(lambda e: e.type == "PartyRegistered")),
    ]

    async def run(filters: list[str], expected: int) -> tuple[list[int], int]:
        async with subscribe(nats_server.url, settings=app.settings, filters=filters) as sub:
            got = await drain(sub, expected)
            for d in got:
                assert d.entity == d.event.entity
            return [d.position for d in got], await sub.pending()

    for filters, expected in cases:
        assert expected, filters
        got, pending = asyncio.run(run(filters, len(expected)))
        assert (got, pending) == (expected, 0), filters


def test_a_durable_with_other_filters_is_refused(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    append_parties(app, 2)
    publish(app, nats_server.url)

    async def run() -> None:
        async with subscribe(
            nats_server.url, settings=app.settings, durable="d", filters=["licence"]
        ):
            pass
        with pytest.raises(SubscriberError, match="exists with filters"):
            async with subscribe(
                nats_server.url, settings=app.settings, durable="d", filters=["party"]
            ):
                pass

    asyncio.run(run())


def test_subscribe_explains_a_missing_stream_or_server(tmp_path: Any, nats_server: Any) -> None:
    from ledger.config import Settings
    from ledger.stream import NatsUnavailable

    settings = Settings.from_env({"LEDGER_HOME": str(tmp_path / "h")})
    with pytest.raises(SubscriberError, match="no NATS server configured"):
        subscribe(settings=settings)

    async def run(url: str) -> None:
        async with subscribe(url, settings=settings):
            pass

    with pytest.raises(SubscriberError, match="stream LEDGER does not exist"):
        asyncio.run(run(nats_server.url))
    with pytest.raises(NatsUnavailable, match=r"no NATS server at nats://127\.0\.0\.1:1 "):
        asyncio.run(run("nats://127.0.0.1:1"))


@pytest.mark.parametrize(
    "name", ["a/b", "a\\b", "a.b", "a*", "a>", "a b", "tab\there", "bell\x07", "", "d" * 256]
)
def test_a_durable_name_jetstream_cannot_use_is_refused_before_connecting(name: str) -> None:
    from ledger.subscriber import DurableNameError

    with pytest.raises(DurableNameError) as refused:
        subscribe("nats://127.0.0.1:1", stream="LEDGER", subject_prefix="ledger", durable=name)
    assert isinstance(refused.value, ValueError)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("filters", "text"),
    [
        (["licence", "licence:GL-1"], "'licence' already selects every event 'licence:GL-1' does"),
        (["LicenceGranted", "LicenceGranted"], "are the same filter"),
    ],
)
def test_filters_jetstream_would_refuse_are_refused_before_connecting(
    filters: list[str], text: str
) -> None:
    """A library caller learns it from subscribe() itself, not from the server later."""
    from ledger.subjects import SubjectError

    with pytest.raises(SubjectError, match=text) as refused:
        subscribe("nats://127.0.0.1:1", stream="LEDGER", subject_prefix="ledger", filters=filters)
    assert isinstance(refused.value, ValueError)


def test_the_longest_durable_name_and_non_ascii_names_work(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    append_parties(app, 3)
    publish(app, nats_server.url)

    async def first_position(durable: str) -> int | None:
        async with subscribe(nats_server.url, settings=app.settings, durable=durable) as sub:
            d = await sub.next_delivery(WAIT_SECONDS)
            return None if d is None else d.position

    for name in ("d" * 255, "prüfung-审计"):
        assert asyncio.run(first_position(name)) == store_log(app)[0][0], name


def test_a_redelivery_of_an_event_still_being_handled_is_not_acked_away(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """With auto_ack=False a later event can be acked before an earlier one.  When
    JetStream redelivers the earlier one (its ack_wait passed) it is handed out again, not
    taken for a repeat of an acknowledged event and acked: that ack used to lose it when its
    handler then failed and nakked it."""
    app = make_ledger()
    append_parties(app, 3)
    publish(app, nats_server.url)
    positions = [p for p, _ in store_log(app)]

    async def scenario() -> list[int]:
        async with subscribe(
            nats_server.url, settings=app.settings, auto_ack=False, ack_wait=1.0, batch=3
        ) as sub:
            first = await sub.next_delivery(5.0)
            second = await sub.next_delivery(5.0)
            assert first is not None and second is not None
            await second.ack()  # the first one's handler is still at work
            again = await sub.next_delivery(5.0)  # the third, then the first redelivered
            seen = [again.position] if again is not None else []
            redelivered = await sub.next_delivery(5.0)
            if redelivered is not None:
                seen.append(redelivered.position)
                await redelivered.nak()
            await first.nak()
            return seen

    assert asyncio.run(scenario()) == [positions[2], positions[0]]


@pytest.mark.parametrize("case", ["plain", "verifying", "holding"])
def test_next_delivery_returns_by_its_timeout(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, case: str
) -> None:
    """``next_delivery(timeout)`` returns None by ``timeout`` (within scheduling slack),
    also when the timeout, or the time left after a whole fetch, is shorter than 50 ms
    (the old code fetched for 50 ms at least) and while a verifying subscriber holds
    events no checkpoint covers yet (the old code waited for a checkpoint hint, then
    fetched for as long again)."""
    from tests.integration.test_forgery import _flood

    app = make_ledger()
    append_parties(app, 3)
    publish(app, nats_server.url)
    options: dict[str, Any] = {"fetch_timeout": 0.2}
    if case != "plain":
        options.update(verify=True, verifier_key=app.signing_key().verifier)
    if case == "holding":
        _flood(nats_server.url, app, 5)  # forged: held, no checkpoint will cover them
    slack = 0.025

    async def go() -> list[tuple[float, float]]:
        late = []
        async with subscribe(nats_server.url, settings=app.settings, **options) as sub:
            assert [(await sub.next_delivery(WAIT_SECONDS)) is not None for _ in range(3)] == [
                True
            ] * 3
            for timeout in (0.01, 0.201, 0.401, 0.201):
                started = time.monotonic()
                assert await sub.next_delivery(timeout) is None
                overrun = time.monotonic() - started - timeout
                if overrun > slack:
                    late.append((timeout, round(overrun, 3)))
            assert sub.held == (5 if case == "holding" else 0)
        return late

    assert asyncio.run(go()) == []
