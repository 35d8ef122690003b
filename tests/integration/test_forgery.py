"""Forged, altered and junk messages on the stream (issue 11, "Why"): as someone holding
the relay's credential could publish them (the test's server has no authorization; see
test_nats_auth for the refusals without it).

The relay does not take the stream's word for where it is; the subscriber and the NATS
projector never hand out or apply what is not a ledger event, and report it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.nats_server import EmbeddedNats
from ledger.projections.query import Views
from ledger.projections.runner import run
from ledger.relay import Relay, RelayError, iter_notifications, outgoing_message
from ledger.times import parse_query_time
from tests import factory as f
from tests.conftest import Backend
from tests.nats_fixtures import (
    append_parties,
    nats_server_fixture,  # noqa: F401 - the nats_server fixture
    store_log,
    stream_messages,
)

pytestmark = pytest.mark.nats


def publish(url: str, subject: str, payload: bytes, headers: dict[str, str] | None) -> None:
    """One message into the stream, acknowledged by JetStream (as a forger would)."""

    async def go() -> None:
        import nats

        nc = await nats.connect(url)
        try:
            ack = await nc.jetstream().publish(subject, payload, headers=headers)
            assert not ack.duplicate
        finally:
            await nc.close()

    asyncio.run(go())


def publish_as_relay(url: str, app: Ledger, after: int) -> None:
    """The store's events after ``after``, published exactly as the relay does (to put
    genuine events after junk, which the relay itself refuses to resume after)."""
    from ledger.bus_verify import leaf_indexes

    notifications = list(iter_notifications(app, after))
    leaves = leaf_indexes(app, [n.id for n in notifications])
    for n in notifications:
        payload = app.msgspec_mapper.payload(n.state)
        message = outgoing_message("ledger", n, payload, leaves.get(n.id))
        publish(url, message.subject, message.payload, message.headers)


def publish_checkpoints_as_relay(url: str, app: Ledger, after_size: int, upto: int) -> None:
    """The checkpoint messages the relay publishes once it has published the events up
    to position ``upto``, its last checkpoint being of size ``after_size``."""
    from ledger.bus_verify import checkpoint_messages

    for _, payload, headers in checkpoint_messages(app, "LEDGER", after_size, upto):
        publish(url, "ledger-checkpoint.LEDGER", payload, headers)


def stored_event(app: Ledger, position: int) -> tuple[bytes, dict[str, str], str]:
    n = next(iter_notifications(app, position - 1))
    message = outgoing_message("ledger", n, app.msgspec_mapper.payload(n.state))
    return message.payload, message.headers, message.subject


def forged_licence(app: Ledger, position: int, *, cap: str) -> tuple[str, bytes, dict[str, str]]:
    """A copy of the stored LicenceGranted at ``position`` with another cap (same id)."""
    payload, headers, subject = stored_event(app, position)
    body = json.loads(payload)
    assert body["type"] == "LicenceGranted"
    body["items"][0]["cap"] = cap
    body["end_users"] = [*body["end_users"], "forged-military-buyer"]
    forged = json.dumps(body, separators=(",", ":")).encode()
    return subject, forged, {**headers, "Nats-Msg-Id": f"forged-{position}"}


JUNK: list[tuple[str, bytes, dict[str, str] | None]] = [
    ("ledger.party.PartyRegistered.x", b'{"not": "an event"}', None),
    (
        "ledger.party.PartyRegistered.x",
        b"\xff\xfe junk",
        {"Ledger-Position": "12abc", "Ledger-Event-Type": "PartyRegistered"},
    ),
    (
        "ledger.party.PartyRegistered.x",
        b"[1, 2, 3]",
        {"Ledger-Position": "3", "Ledger-Event-Type": "PartyRegistered"},
    ),
    (
        "ledger.party.PartyRegistered.x",
        b"{}",
        {"Ledger-Position": "9" * 40, "Ledger-Event-Type": "NoSuchType"},
    ),
]


# --- the relay ------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["head+1", "10^9"])
def test_the_relay_stops_at_a_forged_position_instead_of_skipping_or_stalling(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, claim: str
) -> None:
    app = make_ledger()
    append_parties(app, 5)
    Relay(app, nats_server.url).run_once()
    position = app.head() + 1 if claim == "head+1" else 10**9
    payload, headers, subject = stored_event(app, 5)
    forged_headers = {**headers, "Nats-Msg-Id": "forged", "Ledger-Position": str(position)}
    publish(nats_server.url, subject, payload, forged_headers)
    append_parties(app, 3)  # the real event at head+1 and two more

    for _ in range(2):  # and again: it neither skips the real events nor goes quiet
        with pytest.raises(RelayError) as refused:
            Relay(app, nats_server.url).run_once()
        message = str(refused.value)
        assert f"(seq 6) claims position {position}, event forged" in message
        if claim == "head+1":
            assert f"but the store's event there is {store_log(app)[5][1]}" in message
        else:
            assert "but the store has no event at that position (its head is 8)" in message
        assert "It was not published by this ledger's relay" in message
    assert len(stream_messages(nats_server.url)) == 6


def test_the_relay_stops_at_an_altered_copy_of_its_last_event(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """Same event id, same position, other bytes: the leaf hash differs."""
    import time

    app = make_ledger()
    app.append_objects([f.exporter(), f.party("buyer"), f.vetted(), f.licence()])
    Relay(app, nats_server.url, duplicate_window=1).run_once()
    subject, forged, headers = forged_licence(app, 4, cap="900000")
    time.sleep(1.5)  # past the duplicate window: JetStream stores the same id again
    publish(nats_server.url, subject, forged, {**headers, "Nats-Msg-Id": store_log(app)[3][1]})
    with pytest.raises(RelayError, match=r"its payload differs from the stored event's"):
        Relay(app, nats_server.url, duplicate_window=1).run_once()


# --- the subscriber ---------------------------------------------------------------------------


def test_the_subscriber_rejects_junk_reports_it_and_hands_out_every_event(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    from ledger.subscriber import Rejected, subscribe

    app = make_ledger()
    append_parties(app, 3)
    Relay(app, nats_server.url).run_once()
    for subject, payload, headers in JUNK:
        publish(nats_server.url, subject, payload, headers)
    append_parties(app, 3)
    publish_as_relay(nats_server.url, app, 3)
    reported: list[Rejected] = []

    async def receive() -> tuple[list[int], int]:
        positions: list[int] = []
        async with subscribe(
            nats_server.url, settings=app.settings, on_rejected=reported.append
        ) as sub:
            while len(positions) < 6:
                delivery = await sub.next_delivery(30)
                assert delivery is not None
                positions.append(delivery.position)
            assert await sub.next_delivery(0.5) is None
            return positions, sub.rejected

    positions, rejected = asyncio.run(receive())
    assert positions == [1, 2, 3, 4, 5, 6]
    assert rejected == len(JUNK)
    assert [r.stream_seq for r in reported] == [4, 5, 6, 7]
    reasons = [r.reason for r in reported]
    assert reasons[0] == "no Ledger-Event-Type or Ledger-Position header"
    assert reasons[1] == "Ledger-Position '12abc' is not a position"
    assert reasons[2].startswith("the payload is not a PartyRegistered event: ")
    assert reasons[3] == f"Ledger-Position {'9' * 40!r} is not a position"
    # Terminated, not acked and forgotten: they are still in the stream, for inspection.
    assert len(stream_messages(nats_server.url)) == 6 + len(JUNK)


# --- the NATS projector -----------------------------------------------------------------------


def test_the_nats_projector_applies_only_the_stores_events(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """Junk, a forged licence at head+1, an altered copy of a real one: none is applied,
    each is reported, and the views equal the fold of the store."""
    settings = backend.settings({**backend.env(), "LEDGER_NATS_URL": nats_server.url})
    app = Ledger(settings)
    try:
        app.append_objects([f.exporter(), f.party("buyer"), f.vetted(), f.licence()])
        Relay(app, nats_server.url).run_once()
        for subject, payload, headers in JUNK:
            publish(nats_server.url, subject, payload, headers)
        subject, forged, headers = forged_licence(app, 4, cap="900000")
        publish(
            nats_server.url,
            subject,
            forged,
            {**headers, "Ledger-Position": "5", "Nats-Msg-Id": "forged-head+1"},
        )
        publish(nats_server.url, subject, forged, headers)  # claims position 4
        app.append_objects([f.usage(quantity="100")])
        publish_as_relay(nats_server.url, app, 4)
        publish_checkpoints_as_relay(nats_server.url, app, 4, 5)

        result = run(settings, threading.Event(), source="nats", once=True)
        assert result.position == app.head() == 5
        assert result.rejected == len(JUNK) + 2

        stored, fold = Views(app, mode="stored"), Views(app, mode="fold")

        now = parse_query_time("2026-01-01")
        licences = stored.records("licence", now, now)
        assert licences == fold.records("licence", now, now)
        text = json.dumps(licences, default=str)
        assert "900000" not in text and "forged-military-buyer" not in text
    finally:
        app.close()


def test_status_reports_a_forged_head_and_no_lag(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    from click.testing import CliRunner

    from ledger.cli.main import cli

    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(backend.settings(env))
    try:
        append_parties(app, 4)
        Relay(app, nats_server.url).run_once()
        payload, headers, subject = stored_event(app, 4)
        forged = {**headers, "Nats-Msg-Id": "forged", "Ledger-Position": str(10**9)}
        publish(nats_server.url, subject, payload, forged)
        result = CliRunner().invoke(cli, ["status", "-o", "json"], env=env)
        assert result.exit_code == 1, result.output
        body = json.loads(result.output)
        assert body["stream"]["reachable"] is True
        assert body["lag"] is None
        assert body["forged"]["seq"] == 5
        assert "claims position 1000000000" in body["forged"]["problem"]
        assert body["published_position"] == 4

        publish(nats_server.url, subject, b"junk", {"Ledger-Position": "x"})
        table = CliRunner().invoke(cli, ["status"], env=env)
        assert table.exit_code == 1, table.output
        assert "unreachable" not in table.output
        assert "lag        unknown" in table.output
        assert "seq 6 (subject " in table.output and "Ledger-Position 'x'" in table.output
        assert "Traceback" not in table.output
    finally:
        app.close()


def test_watch_and_project_report_junk_without_a_traceback(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    from click.testing import CliRunner

    from ledger.cli.main import cli

    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(backend.settings(env))
    try:
        append_parties(app, 2)
        Relay(app, nats_server.url).run_once()
        for subject, payload, headers in JUNK:
            publish(nats_server.url, subject, payload, headers)
        append_parties(app, 2)
        publish_as_relay(nats_server.url, app, 2)
        publish_checkpoints_as_relay(nats_server.url, app, 2, 4)

        watched = CliRunner().invoke(
            cli, ["watch", "--all", "--limit", "4", "--timeout", "60", "-o", "json"], env=env
        )
        assert watched.exit_code == 0, watched.output
        assert "Traceback" not in watched.output
        lines = [json.loads(x) for x in watched.stdout.splitlines()]
        assert [x["position"] for x in lines] == [1, 2, 3, 4]
        warnings = [json.loads(x) for x in watched.stderr.splitlines()]
        assert [w["stream_seq"] for w in warnings] == [3, 4, 5, 6]
        assert warnings[1]["reason"] == "Ledger-Position '12abc' is not a position"

        table = CliRunner().invoke(cli, ["watch", "--all", "--limit", "4"], env=env)
        assert table.exit_code == 0, table.output
        assert table.stderr.count("Warning: skipped a message that is not a ledger event") == 4

        projected = CliRunner().invoke(
            cli, ["project", "--source", "nats", "--once", "-o", "json"], env=env
        )
        assert projected.exit_code == 0, projected.output
        assert "Traceback" not in projected.output
        body = json.loads(projected.stdout)
        assert (body["position"], body["rejected"]) == (4, len(JUNK))
        # Counted where `ledger status` reads them, after the run has ended.
        status = CliRunner().invoke(cli, ["status", "-o", "json"], env=env)
        rejected = json.loads(status.stdout)["projector"]["rejected"]
        assert rejected == {"malformed": len(JUNK), "refused": 0}
        table = CliRunner().invoke(cli, ["status"], env=env)
        assert "rejected   0 stream message(s) refused as not in the signed tree, 4 malformed" in (
            table.output
        )
    finally:
        app.close()


def _republish(url: str, forgery: str) -> None:
    """As a forger holding the relay's key: purge the stream and publish it again with
    the licence at position 5 (leaf 4) altered in place, swapped with the next event,
    left out, or with a forged copy (leaf 4 too) inserted before it."""

    async def go() -> None:
        import nats

        nc = await nats.connect(url)
        jsm, js = nc.jsm(), nc.jetstream()
        info = await jsm.stream_info("LEDGER")
        msgs = [await jsm.get_msg("LEDGER", s) for s in range(1, info.state.last_seq + 1)]
        await jsm.purge_stream("LEDGER")
        out: list[tuple[str, bytes, dict[str, str]]] = []
        for m in msgs:
            headers = {k: v for k, v in m.headers.items() if not k.startswith("Nats-Expected")}
            headers["Nats-Msg-Id"] = f"again-{m.seq}"
            out.append((m.subject, m.data, headers))
        i = next(i for i, (_, _, h) in enumerate(out) if h["Ledger-Position"] == "5")
        subject, payload, headers = out[i]
        body = json.loads(payload)
        body["items"][0]["cap"] = "900000"
        forged = (subject, json.dumps(body, separators=(",", ":")).encode(), headers)
        if forgery == "altered":
            out[i] = forged
        elif forgery == "reordered":
            out[i], out[i + 1] = out[i + 1], out[i]
        elif forgery == "missing":
            del out[i]
        else:
            out.insert(i, (forged[0], forged[1], {**headers, "Nats-Msg-Id": "forged"}))
        for subject, payload, headers in out:
            await js.publish(subject, payload, headers=headers)
        await nc.close()

    asyncio.run(go())


@pytest.mark.parametrize("forgery", ["altered", "reordered", "missing", "inserted"])
def test_the_nats_projector_refuses_what_the_signed_tree_does_not_hold(
    backend: Backend, nats_server: EmbeddedNats, forgery: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages with the relay's headers and leaf indexes, as only the relay's key could
    publish them: the projector verifies them against the tree and the signed
    checkpoints, refuses the one that does not belong (naming its position), never
    applies it, and the views equal the fold of the store."""
    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    settings = backend.settings(env)
    app = Ledger(settings)
    try:
        app.append_objects([f.exporter(), f.party("buyer"), f.vetted()])
        app.append_objects([f.party("other"), f.licence(), f.usage(quantity="100")])
        Relay(app, nats_server.url).run_once()
        _republish(nats_server.url, forgery)

        from click.testing import CliRunner

        from ledger.cli.main import cli

        with caplog.at_level("ERROR", logger="ledger.projector"):
            projected = CliRunner().invoke(cli, ["project", "--source", "nats", "--once"], env=env)
        assert projected.exit_code == 0, projected.output
        assert "Views at position 6 " in projected.stdout and app.head() == 6
        assert "1 stream message(s) were not applied: 1 refused as not in the signed tree" in (
            projected.stderr
        )
        refusal = {
            "altered": "the message at position 5 (leaf 4) is not the event the signed tree",
            "reordered": "the message at position 6 is leaf 5, but leaf 4 comes next",
            "missing": "the message at position 6 is leaf 5, but leaf 4 comes next",
            "inserted": "the message at position 5 is leaf 4, but leaf 5 comes next",
        }[forgery]
        assert refusal in caplog.text
        status = CliRunner().invoke(cli, ["status", "-o", "json"], env=env)
        assert status.stdout, status.output
        rejected = json.loads(status.stdout)["projector"]["rejected"]
        assert rejected == {"malformed": 0, "refused": 1}

        stored, fold = Views(app, mode="stored"), Views(app, mode="fold")
        now = parse_query_time("2026-01-01")
        for kind in ("licence", "party"):
            assert stored.records(kind, now, now) == fold.records(kind, now, now)
        text = json.dumps(stored.records("licence", now, now), default=str)
        assert "900000" not in text
    finally:
        app.close()


def test_the_nats_projector_applies_nothing_a_signed_checkpoint_does_not_cover(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """The store's own bytes, with the right leaf index, but no checkpoint covering them
    yet: held, not applied; applied once the checkpoint is published."""
    settings = backend.settings({**backend.env(), "LEDGER_NATS_URL": nats_server.url})
    app = Ledger(settings)
    try:
        append_parties(app, 3)
        Relay(app, nats_server.url).run_once()
        append_parties(app, 2)
        publish_as_relay(nats_server.url, app, 3)  # the events, not their checkpoint
        assert run(settings, threading.Event(), source="nats", once=True).position == 3
        publish_checkpoints_as_relay(nats_server.url, app, 3, 5)
        assert run(settings, threading.Event(), source="nats", once=True).position == 5
    finally:
        app.close()


# --- verifying consumers: the Merkle tree on the bus ------------------------------------------


def _verifying(url: str, app: Ledger, **options: object) -> Any:
    """A verifying subscriber pinned to ``app``'s key."""
    from ledger.subscriber import subscribe

    return subscribe(  # type: ignore[arg-type]
        url, settings=app.settings, verify=True, verifier_key=app.signing_key().verifier, **options
    )


async def _verified_positions(
    url: str, app: Ledger, expected: int, **options: object
) -> tuple[list[int], object]:
    positions: list[int] = []
    async with _verifying(url, app, **options) as sub:
        while len(positions) < expected:
            delivery = await sub.next_delivery(30)
            assert delivery is not None, positions
            positions.append(delivery.position)
        return positions, sub.verified_position


def test_a_verifying_subscriber_recomputes_the_tree_from_any_start(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    app = make_ledger()
    for _ in range(4):  # four append batches: four signed checkpoints
        append_parties(app, 7)
    Relay(app, nats_server.url).run_once()
    messages = stream_messages(nats_server.url)
    assert [int(m.headers["Ledger-Leaf"]) for m in messages] == list(range(28))

    everything, verified = asyncio.run(_verified_positions(nats_server.url, app, 28))
    assert everything == [p for p, _ in store_log(app)] and verified == 28
    # Mid-stream (in the middle of a batch): primed from the checkpoint before it.
    middle, _ = asyncio.run(_verified_positions(nats_server.url, app, 28 - 17, start=18))
    assert middle == list(range(18, 29))
    append_parties(app, 3)
    Relay(app, nats_server.url).run_once()
    later, _ = asyncio.run(_verified_positions(nats_server.url, app, 3, start=29))
    assert later == [29, 30, 31]


@pytest.mark.parametrize("forgery", ["altered", "inserted", "missing"])
def test_a_verifying_subscriber_refuses_what_does_not_belong(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, forgery: str
) -> None:
    """As someone holding the relay's credential: a licence with another cap in place of
    the real one, a forged one inserted before it, or the real one left out."""
    from ledger.bus_verify import BusVerificationError

    app = make_ledger()
    app.append_objects([f.exporter(), f.party("buyer"), f.vetted()])
    Relay(app, nats_server.url).run_once()
    app.append_objects([f.licence(), f.usage(quantity="100")])  # positions 4, 5
    subject, forged, headers = forged_licence(app, 4, cap="900000")
    leaf = {**headers, "Ledger-Leaf": "3"}
    if forgery == "altered":
        publish(nats_server.url, subject, forged, leaf)
    elif forgery == "inserted":
        publish(nats_server.url, subject, forged, {**leaf, "Nats-Msg-Id": "inserted"})
        publish_as_relay(nats_server.url, app, 3)
    if forgery != "inserted":
        publish_as_relay(nats_server.url, app, 4)
    publish_checkpoints_as_relay(nats_server.url, app, 3, 5)  # the second batch's
    with pytest.raises(BusVerificationError) as refused:
        asyncio.run(_verified_positions(nats_server.url, app, 5))
    message = str(refused.value)
    if forgery == "altered":
        # Exactly which message: the relay published the leaf hashes with the checkpoint.
        assert "the message at position 4 (leaf 3) is not the event the signed tree of size 5" in (
            message
        )
        assert refused.value.position == 4 and refused.value.leaf == 3
    elif forgery == "inserted":
        assert "position 4 is leaf 3, but leaf 4 comes next" in message
    else:
        assert "position 5 is leaf 4, but leaf 3 comes next: leaves missing" in message


def test_watch_verify_prints_only_verified_events_and_refuses_a_forgery_on_one_line(
    backend: Backend, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from ledger.cli.main import cli

    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(backend.settings(env))
    try:
        app.append_objects([f.exporter(), f.party("buyer"), f.vetted()])
        Relay(app, nats_server.url).run_once()
        key_file = tmp_path / "ledger.pub"
        key_file.write_text(app.signing_key().verifier.text() + "\n")
        args = ["watch", "--all", "--verify", "--limit", "3", "--timeout", "60", "-o", "json"]
        good = CliRunner().invoke(cli, [*args, "--key", str(key_file)], env=env)
        assert good.exit_code == 0, good.output
        assert [json.loads(x)["position"] for x in good.stdout.splitlines()] == [1, 2, 3]
        home_key = CliRunner().invoke(cli, args, env=env)  # the home's own key
        assert home_key.exit_code == 0, home_key.output

        app.append_objects([f.licence()])
        subject, forged, headers = forged_licence(app, 4, cap="900000")
        publish(nats_server.url, subject, forged, {**headers, "Ledger-Leaf": "3"})
        publish_checkpoints_as_relay(nats_server.url, app, 3, 4)
        refused = CliRunner().invoke(
            cli, ["watch", "--from-position", "4", "--verify", "--timeout", "30"], env=env
        )
        assert refused.exit_code == 1, refused.output
        assert "Traceback" not in refused.output
        assert "the message at position 4 (leaf 3) is not the event the signed tree" in (
            refused.stderr
        )
        assert refused.stdout.count("LicenceGranted") == 0

        usage = CliRunner().invoke(cli, ["watch", "--verify", "-f", "licence"], env=env)
        assert usage.exit_code == 2 and "takes no --filter" in usage.output
    finally:
        app.close()


def test_a_batch_too_large_for_one_message_is_still_located_exactly(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """An append batch of more leaves than a checkpoint message carries: the relay
    publishes its leaf hashes in messages of their own before its checkpoint.  A verifying
    subscriber starts mid-stream past them, and names the one altered message of such a
    batch republished by a forger."""
    from ledger.bus_verify import LEAVES, LEAVES_INLINE, BusVerificationError

    app = make_ledger()
    append_parties(app, 3)
    append_parties(app, LEAVES_INLINE + 500, chunk=10_000)  # one batch: leaves 3..1526
    Relay(app, nats_server.url).run_once()
    checkpoints = stream_messages(nats_server.url, "LEDGER_CHECKPOINTS")
    assert [(m.headers.get(LEAVES), m.headers.get("Ledger-Tree-Size")) for m in checkpoints] == [
        (None, "3"),
        ("3", None),
        (str(3 + LEAVES_INLINE), None),
        (None, str(LEAVES_INLINE + 503)),
    ]
    head = LEAVES_INLINE + 503
    tail, _ = asyncio.run(_verified_positions(nats_server.url, app, head - 999, start=1000))
    assert tail == list(range(1000, head + 1))

    async def republish_with_one_altered(position: int) -> None:
        import nats

        nc = await nats.connect(nats_server.url)
        jsm, js = nc.jsm(), nc.jetstream()
        msgs = [await jsm.get_msg("LEDGER", s) for s in range(1, head + 1)]
        await jsm.purge_stream("LEDGER")
        for m in msgs:
            payload = m.data
            if m.headers["Ledger-Position"] == str(position):
                body = json.loads(payload)
                body["name"] = "Forged Holdings"
                payload = json.dumps(body, separators=(",", ":")).encode()
            headers = {k: v for k, v in m.headers.items() if not k.startswith("Nats-Expected")}
            await js.publish(m.subject, payload, headers={**headers, "Nats-Msg-Id": f"f{m.seq}"})
        await nc.close()

    asyncio.run(republish_with_one_altered(1200))
    with pytest.raises(BusVerificationError) as refused:
        asyncio.run(_verified_positions(nats_server.url, app, head))
    assert (refused.value.position, refused.value.leaf) == (1200, 1199)


def test_the_nats_projector_needs_the_ledgers_key_and_never_makes_one(
    postgres_backend: Backend, nats_server: EmbeddedNats
) -> None:
    """A projector in another home on the same PostgreSQL ledger, without
    LEDGER_SIGNING_KEY: it says so instead of making a key of its own (which would
    verify no checkpoint, and refuse every message)."""
    from click.testing import CliRunner

    from ledger.cli.main import cli

    env = {**postgres_backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(postgres_backend.settings(env))
    try:
        append_parties(app, 3)
        Relay(app, nats_server.url).run_once()
        elsewhere = Path(env["LEDGER_HOME"]).parent / "projector-home"
        projector_env = {**env, "LEDGER_HOME": str(elsewhere)}
        refused = CliRunner().invoke(
            cli, ["project", "--source", "nats", "--once"], env=projector_env
        )
        assert refused.exit_code != 0
        assert "LEDGER_SIGNING_KEY" in refused.output and "Traceback" not in refused.output
        assert not (elsewhere / "signing.key").exists()
        key_file = Path(env["LEDGER_HOME"]) / "signing.key"
        pinned = {**projector_env, "LEDGER_SIGNING_KEY": str(key_file)}
        projected = CliRunner().invoke(
            cli, ["project", "--source", "nats", "--once", "-o", "json"], env=pinned
        )
        assert projected.exit_code == 0, projected.output
        assert json.loads(projected.stdout)["position"] == 3
    finally:
        app.close()


def test_a_flood_of_leaves_messages_is_counted_not_kept(
    backend: Backend, make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """Whoever holds the relay's key can publish any number of ``Ledger-Leaves`` messages
    to the checkpoint stream: a verifying subscriber reads past them holding none (its
    memory does not grow with them), counts and logs them, and the next genuine
    checkpoint still verifies; so does the NATS projector's."""
    import tracemalloc

    from ledger.bus_verify import LEAVES, LEAVES_INLINE

    app = make_ledger({**backend.env(), "LEDGER_NATS_URL": nats_server.url})
    append_parties(app, 3)
    Relay(app, nats_server.url).run_once()
    aligned = [(str(3 + i * LEAVES_INLINE), bytes(32 * LEAVES_INLINE)) for i in range(160)]
    junk = [("abc", bytes(32)), ("0", bytes(32)), ("4", bytes(32)), ("3", bytes(33))] * 10
    flood = aligned + junk

    async def go() -> tuple[list[int], int, int, int]:
        import nats

        async with _verifying(nats_server.url, app) as sub:
            for _ in range(3):
                assert await sub.next_delivery(30) is not None
            before = tracemalloc.get_traced_memory()[0]
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            for n, (first, hashes) in enumerate(flood):
                headers = {LEAVES: first, "Nats-Msg-Id": f"flood-{n}"}
                await js.publish("ledger-checkpoint.LEDGER", hashes, headers=headers)
            await nc.close()
            append_parties(app, 3)
            await asyncio.to_thread(Relay(app, nats_server.url).run_once)
            positions = []
            for _ in range(3):
                delivery = await sub.next_delivery(30)
                assert delivery is not None
                positions.append(delivery.position)
            grown = tracemalloc.get_traced_memory()[0] - before
            return positions, sub.verified_position, sub.ignored_leaves, grown

    tracemalloc.start()
    try:
        positions, verified, ignored, grown = asyncio.run(go())
    finally:
        tracemalloc.stop()
    assert positions == [4, 5, 6] and verified == 6
    assert ignored == len(flood)
    flooded = sum(len(hashes) for _, hashes in flood)  # 5 MiB
    assert grown < flooded / 8, (grown, flooded)
    assert run(app.settings, threading.Event(), source="nats", once=True).position == 6


async def _keep_only_the_last(url: str, stream: str, messages: int) -> int:
    """Give the stream a ``max_msgs`` limit: JetStream drops its oldest messages (as
    ``max_age`` or ``max_bytes`` would).  The stream's first sequence after that."""
    from ledger import stream as st

    nc = await st.connect(url, name="test-stream-limits")
    try:
        jsm = nc.jsm()
        config = (await jsm.stream_info(stream)).config
        config.max_msgs = messages
        await jsm.update_stream(config)
        return int((await jsm.stream_info(stream)).state.first_seq)
    finally:
        await nc.close()


@pytest.mark.parametrize("batch", ["inline", "leaves-messages"])
def test_a_verifying_subscriber_starts_on_a_stream_whose_head_its_limits_dropped(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, batch: str
) -> None:
    """A stream with limits (here max_msgs) has dropped its first messages, and its
    first one is in the middle of an append batch: the leaves in between are in no
    message any more.  A verifying subscriber takes their hashes from those the relay
    published for the batch's checkpoint, trusted only as the checkpoint's signed root
    verifies them with the messages received: from the beginning, for a durable that had
    read some of the dropped messages, and as the limits go on dropping."""
    from ledger.bus_verify import LEAVES_INLINE

    app = make_ledger()
    append_parties(app, 6)  # checkpoint of size 6
    size = 12 if batch == "inline" else 6 + LEAVES_INLINE + 500
    append_parties(app, size - 6, chunk=10_000)  # one batch: leaves 6..size-1
    Relay(app, nats_server.url).run_once()

    async def durable_reads(count: int) -> None:
        await _verified_positions(nats_server.url, app, count, durable="desk")

    asyncio.run(durable_reads(3))  # acknowledged up to position 3; resumes at 4
    kept = size - 8 if batch == "inline" else size - 1200
    first_seq = asyncio.run(_keep_only_the_last(nats_server.url, "LEDGER", kept))
    assert first_seq == size - kept + 1  # leaf first_seq - 1 is the first left
    positions, verified = asyncio.run(_verified_positions(nats_server.url, app, kept))
    assert positions == list(range(first_seq, size + 1)) and verified == size
    resumed, _ = asyncio.run(_verified_positions(nats_server.url, app, kept, durable="desk"))
    assert resumed == positions
    append_parties(app, 3)
    Relay(app, nats_server.url).run_once()
    later, verified = asyncio.run(_verified_positions(nats_server.url, app, kept))
    assert later == list(range(size + 4 - kept, size + 4)) and verified == size + 3


def test_forged_hashes_for_a_dropped_head_release_nothing(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """Whoever holds the relay's key publishes other hashes for the dropped leaves
    before the relay's: they do not add up to the signed root, so nothing is handed
    out, and the error says what was forged."""
    from ledger.bus_verify import LEAVES, LEAVES_INLINE, BusVerificationError

    app = make_ledger()
    append_parties(app, 6)
    Relay(app, nats_server.url).run_once()
    publish(
        nats_server.url,
        "ledger-checkpoint.LEDGER",
        bytes(32 * LEAVES_INLINE),
        {LEAVES: "6", "Nats-Msg-Id": "forged-leaves"},
    )
    append_parties(app, LEAVES_INLINE + 10, chunk=10_000)
    Relay(app, nats_server.url).run_once()
    asyncio.run(_keep_only_the_last(nats_server.url, "LEDGER", 100))
    released: list[int] = []

    async def go() -> None:
        async with _verifying(nats_server.url, app) as sub:
            while (delivery := await sub.next_delivery(30)) is not None:
                released.append(delivery.position)

    with pytest.raises(BusVerificationError) as refused:
        asyncio.run(go())
    assert released == []
    assert "forged Ledger-Leaves messages" in str(refused.value)


# --- how many unverified events a verifying subscriber holds --------------------------------


def _flood(url: str, app: Ledger, count: int) -> None:
    """``count`` forged events after the stored ones, with consecutive leaf indexes (as
    whoever holds the relay's key could publish them): no checkpoint will cover them."""
    head = app.head()
    payload, headers, subject = stored_event(app, head)

    async def flood() -> None:
        import nats

        nc = await nats.connect(url)
        js = nc.jetstream()
        for i in range(count):
            forged = {**headers, "Nats-Msg-Id": f"forged-{i}", "Ledger-Position": str(head + 1 + i)}
            await js.publish(subject, payload, headers={**forged, "Ledger-Leaf": str(head + i)})
        await nc.close()

    asyncio.run(flood())


def _consumer_counts(url: str, consumer: str) -> tuple[int, int]:
    """(messages delivered and not acknowledged, messages not yet delivered)."""

    async def go() -> tuple[int, int]:
        import nats

        nc = await nats.connect(url)
        try:
            info = await nc.jsm().consumer_info("LEDGER", consumer)
            return info.num_ack_pending, info.num_pending
        finally:
            await nc.close()

    return asyncio.run(go())


def test_a_flood_of_forged_events_is_held_no_further_than_max_pending(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """Whoever holds the relay's key publishes forged events with consecutive leaf
    indexes: no checkpoint will ever cover them.  A verifying subscriber holds at most
    ``max_pending`` and fetches no more; the rest stay in the stream."""

    app = make_ledger()
    append_parties(app, 3)
    Relay(app, nats_server.url).run_once()
    _flood(nats_server.url, app, 300)

    async def go() -> tuple[list[int], int, int, int]:
        async with _verifying(nats_server.url, app, max_pending=50, batch=10) as sub:
            positions = []
            while (delivery := await sub.next_delivery(3)) is not None:
                positions.append(delivery.position)
            info = await sub.info()
            return positions, info.num_ack_pending, info.num_pending, sub.held

    positions, held, left, counted = asyncio.run(go())
    assert positions == [1, 2, 3]
    assert held == 50 and left == 250 and counted == 50


def test_the_nats_projector_holds_a_flood_of_forged_events_no_further_than_max_pending(
    backend: Backend, nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    """The same flood before the NATS projector: it holds at most
    LEDGER_VERIFY_MAX_PENDING messages (the subscriber's bound, one rule), fetches no
    more, says so, and applies the store's events up to the last verified one."""
    from ledger.stream import PROJECTOR_CONSUMER

    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url, "LEDGER_VERIFY_MAX_PENDING": "50"}
    settings = backend.settings(env)
    app = Ledger(settings)
    try:
        append_parties(app, 3)
        Relay(app, nats_server.url).run_once()
        _flood(nats_server.url, app, 300)
        with caplog.at_level("WARNING", logger="ledger.projector"):
            result = run(settings, threading.Event(), source="nats", once=True)
        assert result.position == 3
        assert _consumer_counts(nats_server.url, PROJECTOR_CONSUMER) == (50, 250)
        assert result.held == 50
        assert "at most LEDGER_VERIFY_MAX_PENDING are held" in caplog.text
    finally:
        app.close()


# --- a consumer stalled at its bound says so -------------------------------------------------


def test_a_verifying_subscriber_stalled_at_max_pending_raises_after_its_stall_timeout(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    """A downstream service whose verifying subscriber stops delivering because no
    checkpoint comes must find out: the stall shows (``stalled_since``, ``held``) and,
    after ``stall_timeout`` seconds at the bound, the next ``next_delivery`` raises
    ``SubscriberStalled`` (logged at error level) saying what happened and what to check,
    instead of returning nothing for ever."""
    from ledger.subscriber import SubscriberError, SubscriberStalled

    app = make_ledger()
    append_parties(app, 3)
    Relay(app, nats_server.url).run_once()
    _flood(nats_server.url, app, 100)
    subscriptions: list[Any] = []

    async def go() -> None:
        async with _verifying(
            nats_server.url, app, max_pending=20, batch=10, stall_timeout=1.0
        ) as sub:
            subscriptions.append(sub)
            assert sub.stalled_since is None
            for _ in range(30):  # ~30 s at most (the old code returned None for ever)
                await sub.next_delivery(1)

    with (
        caplog.at_level("WARNING", logger="ledger.subscriber"),
        pytest.raises(SubscriberStalled) as stalled,
    ):
        asyncio.run(go())
    assert isinstance(stalled.value, SubscriberError)
    [sub] = subscriptions
    assert sub.stalled_since is not None and sub.held == 20
    message = str(stalled.value)
    assert "held 20 events of LEDGER past position 3" in message
    assert "no signed checkpoint covers them" in message and "ledger status" in message
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors and "held 20 events" in errors[0].getMessage()


def test_the_nats_projector_stalled_at_max_pending_stops_with_an_error(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """Following the stream (not --once), the projector at its bound raises after
    LEDGER_VERIFY_STALL_TIMEOUT (``serve`` logs it and starts over; ``ledger project``
    exits 1 with the message), rather than wait silently."""
    from ledger.bus_verify import HoldStalled

    env = {
        **backend.env(),
        "LEDGER_NATS_URL": nats_server.url,
        "LEDGER_VERIFY_MAX_PENDING": "20",
        "LEDGER_VERIFY_STALL_TIMEOUT": "1s",
    }
    settings = backend.settings(env)
    app = Ledger(settings)
    stop = threading.Event()
    guard = threading.Timer(60, stop.set)  # the old code followed for ever
    guard.start()
    try:
        append_parties(app, 3)
        Relay(app, nats_server.url).run_once()
        _flood(nats_server.url, app, 100)
        with pytest.raises(HoldStalled) as stalled:
            run(settings, stop, source="nats")
        assert "the NATS projector has held 20 events of LEDGER past position 3" in str(
            stalled.value
        )
    finally:
        guard.cancel()
        app.close()


# --- a hold shows to operators: metrics and `ledger status` -----------------------------------


def _status(env: dict[str, str], *args: str) -> Any:
    from click.testing import CliRunner

    from ledger.cli.main import cli

    return CliRunner().invoke(cli, ["status", *args], env=env)


def test_the_nats_projectors_hold_shows_in_its_metrics_and_in_status(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """Held messages and the oldest one's age are gauges of the projector's metrics, and
    `ledger status` (table and JSON) names the projector's consumer holding them, STALLED
    once nothing was acknowledged for LEDGER_VERIFY_STALL_TIMEOUT."""
    import time

    from prometheus_client import CollectorRegistry

    from ledger.metrics import LedgerCollector
    from ledger.stream import PROJECTOR_CONSUMER

    env = {
        **backend.env(),
        "LEDGER_NATS_URL": nats_server.url,
        "LEDGER_VERIFY_MAX_PENDING": "50",
        "LEDGER_VERIFY_STALL_TIMEOUT": "2s",
    }
    settings = backend.settings(env)
    app = Ledger(settings)
    collector = LedgerCollector(settings)
    try:
        append_parties(app, 3)
        Relay(app, nats_server.url).run_once()
        quiet = _status(env, "-o", "json")
        assert quiet.exit_code == 0, quiet.output
        assert json.loads(quiet.output)["holding"] == []
        _flood(nats_server.url, app, 300)
        result = run(settings, threading.Event(), source="nats", once=True)
        assert result.held == 50 and result.held_since is not None
        registry = CollectorRegistry()
        collector.projector = result
        registry.register(collector)
        time.sleep(0.2)
        assert registry.get_sample_value("ledger_projector_held_messages") == 50
        age = registry.get_sample_value("ledger_projector_oldest_held_seconds")
        assert age is not None and 0.2 <= age < 30

        body = json.loads(_status(env, "-o", "json").output)
        [hold] = body["holding"]
        assert hold["consumer"] == PROJECTOR_CONSUMER and hold["projector"] is True
        assert hold["unacknowledged"] == 50 and hold["stalled"] is False
        assert 0 <= hold["seconds_since_ack"] < 30
        time.sleep(2.1)
        table = _status(env)  # (exit code 1: the flood is the stream's head, forged)
        assert "Traceback" not in table.output
        [line] = [x for x in table.output.splitlines() if x.startswith("holding")]
        assert f"{PROJECTOR_CONSUMER} (the NATS projector): 50 message(s) held" in line
        assert "STALLED (longer than LEDGER_VERIFY_STALL_TIMEOUT, 2 s)" in line
        assert json.loads(_status(env, "-o", "json").output)["holding"][0]["stalled"] is True
    finally:
        collector.close()
        app.close()


def test_a_verifying_subscribers_hold_shows_in_its_metrics_and_in_status(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """A service with a verifying subscriber stuck short of a checkpoint can see it:
    ``held``/``held_since``, the gauges of ``SubscriptionCollector``, and a line for its
    consumer in `ledger status` while it holds them."""
    from prometheus_client import CollectorRegistry

    from ledger.metrics import SubscriptionCollector

    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(backend.settings(env))
    try:
        append_parties(app, 3)
        Relay(app, nats_server.url).run_once()
        _flood(nats_server.url, app, 100)

        async def go() -> tuple[list[int], float | None, float | None, Any]:
            async with _verifying(
                nats_server.url, app, durable="audit", max_pending=20, batch=10
            ) as sub:
                assert sub.held_since is None
                positions = []
                while (delivery := await sub.next_delivery(1)) is not None:
                    positions.append(delivery.position)
                assert positions == [1, 2, 3] and sub.held == 20
                assert sub.held_since is not None
                registry = CollectorRegistry()
                registry.register(SubscriptionCollector(sub))
                labels = {"consumer": "audit"}
                held = registry.get_sample_value("ledger_subscriber_held_messages", labels)
                age = registry.get_sample_value("ledger_subscriber_oldest_held_seconds", labels)
                status = await asyncio.to_thread(_status, env, "-o", "json")
                return positions, held, age, status

        _, held, age, status = asyncio.run(go())
        assert held == 20 and age is not None and 0.5 <= age < 30
        assert "Traceback" not in status.output
        [hold] = json.loads(status.output)["holding"]
        assert hold["consumer"] == "audit" and hold["projector"] is False
        assert hold["unacknowledged"] == 20 and hold["stalled"] is False
    finally:
        app.close()


# --- a verifying subscriber wakes on a published checkpoint -----------------------------------


def test_a_verifying_subscriber_wakes_when_a_checkpoint_is_published(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats
) -> None:
    """With the fallback poll of the checkpoint stream once a minute, events held for
    their checkpoint are handed out soon after it is published (10 s: a generous bound,
    a behaviour, not a benchmark): the subscription to the checkpoint subject wakes the
    subscriber, from the first checkpoint after it opened.  Without the wake-up the
    event comes a minute later."""
    url = nats_server.url
    app = make_ledger()
    append_parties(app, 3)
    Relay(app, url).run_once()

    async def go() -> list[int]:
        sub = _verifying(url, app, fetch_timeout=60)
        sub.poll_interval = 60.0
        async with sub:
            positions = []
            for _ in range(3):
                delivery = await sub.next_delivery(10)
                assert delivery is not None, positions
                positions.append(delivery.position)
            append_parties(app, 2)
            await asyncio.to_thread(publish_as_relay, url, app, 3)  # the events alone
            assert await sub.next_delivery(1) is None
            assert sub.held == 2  # received, waiting for their checkpoint

            async def checkpoint_later() -> None:
                await asyncio.sleep(1)  # while the subscriber waits
                await asyncio.to_thread(publish_checkpoints_as_relay, url, app, 3, 5)

            publishing = asyncio.create_task(checkpoint_later())
            try:
                # (Not next_delivery(10): it reads the checkpoint stream once more at
                # its deadline, and that read would find the checkpoint without a hint.)
                delivery = await asyncio.wait_for(sub.next_delivery(), 10)
            except TimeoutError:
                raise AssertionError("not woken by the published checkpoint") from None
            finally:
                await publishing
            positions.append(delivery.position)
            return positions

    assert asyncio.run(go()) == [1, 2, 3, 4]


def test_a_large_append_batch_is_signed_at_every_checkpoint_interval(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One append of 2,500 events (an import's batch of a million, scaled down with
    CHECKPOINT_EVERY; on PostgreSQL written in chunks of 2,000, the first one signed
    inside): checkpoints at every multiple of the interval and at its end, so a
    verifying subscriber that holds at most the interval verifies it all."""
    from ledger.bus_verify import TREE_SIZE
    from ledger.store import tree

    monkeypatch.setattr(tree, "CHECKPOINT_EVERY", 1000)
    app = make_ledger()
    append_parties(app, 3)
    append_parties(app, 2500, chunk=10_000)
    Relay(app, nats_server.url).run_once()
    checkpoints = stream_messages(nats_server.url, "LEDGER_CHECKPOINTS")
    sizes = [m.headers[TREE_SIZE] for m in checkpoints if TREE_SIZE in m.headers]
    assert sizes == ["3", "1000", "2000", "2503"]
    positions, verified = asyncio.run(
        _verified_positions(nats_server.url, app, 2503, max_pending=1000)
    )
    assert positions == list(range(1, 2504)) and verified == 2503


def test_a_record_from_before_the_interval_names_the_bound_it_needs(
    make_ledger: Callable[..., Ledger], nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch signed only at its end (written before checkpoints were signed at every
    interval): a subscriber at its bound says which LEDGER_VERIFY_MAX_PENDING verifies
    it, and with that it does."""
    from ledger.store import tree
    from ledger.subscriber import SubscriberError

    app = make_ledger()
    append_parties(app, 3)
    monkeypatch.setattr(tree, "CHECKPOINT_EVERY", 10**9)  # as before the interval
    append_parties(app, 300, chunk=10_000)
    Relay(app, nats_server.url).run_once()
    with pytest.raises(SubscriberError) as refused:
        asyncio.run(_verified_positions(nats_server.url, app, 303, max_pending=100, batch=10))
    assert "LEDGER_VERIFY_MAX_PENDING" in str(refused.value)
    assert "at least 300" in str(refused.value)
    positions, _ = asyncio.run(_verified_positions(nats_server.url, app, 303, max_pending=300))
    assert positions == list(range(1, 304))
