"""The embedded server admits only the ledger's roles: the relay writes, readers read.

A real nats-server per test, started as ``ledger serve`` starts it (``embedded_server``).
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.config import Settings
from ledger.nats_auth import ROLES, embedded_server, seed_file
from ledger.nats_server import EmbeddedNats
from ledger.relay import Relay
from tests.conftest import Backend
from tests.nats_fixtures import append_parties, store_log

pytestmark = pytest.mark.nats


@pytest.fixture
def home_settings(backend: Backend) -> Settings:
    """The backend's settings without LEDGER_NATS_URL: the home's embedded server."""
    env = {k: v for k, v in backend.env().items() if k != "LEDGER_NATS_URL"}
    return Settings.from_env(env)


@pytest.fixture
def secured(home_settings: Settings) -> Iterator[EmbeddedNats]:
    server = embedded_server(home_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _connect(url: str, errors: list[str], **options: Any) -> Any:
    from ledger import stream as st

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await st.connect(url, error_cb=on_error, **options)


def test_the_seeds_are_private_and_the_server_config_holds_public_keys_only(
    home_settings: Settings, secured: EmbeddedNats
) -> None:
    directory = home_settings.home / "nats-auth"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    config = secured.config_file.read_text()
    for role in ROLES:
        path = seed_file(home_settings.home, role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        seed = path.read_text().strip()
        assert seed.startswith("SU")
        assert seed not in config
    assert config.count('"nkey": "U') == len(ROLES)
    # A restart keeps the same keys: clients holding a seed still get in.
    before = {role: seed_file(home_settings.home, role).read_text() for role in ROLES}
    secured.stop()
    again = embedded_server(home_settings)
    again.start()
    try:
        assert {role: seed_file(home_settings.home, role).read_text() for role in ROLES} == before
    finally:
        again.stop()


def test_a_reader_is_refused_publishing_purging_and_deleting(
    home_settings: Settings, secured: EmbeddedNats
) -> None:
    """The forgeries of issue 11 with a subscriber's (or the projector's) credentials:
    the server refuses them, and the stream keeps exactly the relay's events."""
    from ledger.stream import PROJECTOR_CONSUMER

    app = Ledger(home_settings)
    try:
        append_parties(app, 5)
        assert Relay(app, secured.url).run_once().published == 5

        async def attempt(role: str) -> list[str]:
            errors: list[str] = []
            nc = await _connect(secured.url, errors, **home_settings.nats_options(role))  # type: ignore[arg-type]
            js, jsm = nc.jetstream(timeout=1), nc.jsm(timeout=1)
            forged = {"Nats-Msg-Id": "forged", "Ledger-Position": "6"}
            tries: list[Any] = [
                lambda: js.publish("ledger.licence.LicenceGranted.GL", b"{}", headers=forged),
                lambda: jsm.purge_stream("LEDGER"),
                lambda: jsm.delete_msg("LEDGER", 1),
                lambda: jsm.delete_stream("LEDGER"),
                lambda: jsm.update_stream(name="LEDGER", subjects=["ledger.>", "other.>"]),
            ]
            if role == "subscriber":
                tries.append(lambda: jsm.delete_consumer("LEDGER", PROJECTOR_CONSUMER))
            for request in tries:
                # Refused: the server answers with an asynchronous -ERR, the request none.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(request(), 30)
            # Still allowed: reading the stream.
            assert (await jsm.stream_info("LEDGER")).state.messages == 5
            await nc.close()
            return errors

        for role in ("subscriber", "projector"):
            errors = asyncio.run(attempt(role))
            # (nats-py lower-cases the server's message)
            refused = [e.lower() for e in errors if "permissions violation for publish" in e]
            assert any('"ledger.licence.licencegranted.gl"' in e for e in refused), errors
            assert any("stream.purge.ledger" in e for e in refused), errors
            assert any("stream.delete.ledger" in e for e in refused), errors
            assert any("stream.msg.delete.ledger" in e for e in refused), errors
            assert any("stream.update.ledger" in e for e in refused), errors
            if role == "subscriber":
                assert any("consumer.delete.ledger.ledger-views" in e for e in refused), errors

        # Nothing was forged, purged or deleted.
        async def read() -> list[Any]:
            import nats

            nc = await nats.connect(secured.url, **home_settings.nats_options("relay"))
            info = await nc.jsm().stream_info("LEDGER")
            msgs = [await nc.jsm().get_msg("LEDGER", s) for s in range(1, info.state.last_seq + 1)]
            await nc.close()
            return msgs

        stored = asyncio.run(read())
        assert [(int(m.headers["Ledger-Position"]), m.headers["Nats-Msg-Id"]) for m in stored] == (
            store_log(app)
        )
    finally:
        app.close()


def test_readers_read_and_strangers_are_turned_away(
    home_settings: Settings, secured: EmbeddedNats
) -> None:
    from ledger import stream as st
    from ledger.subscriber import subscribe

    app = Ledger(home_settings)
    try:
        append_parties(app, 7)
        Relay(app, secured.url).run_once()

        async def receive() -> list[int]:
            got: list[int] = []
            async with subscribe(secured.url, settings=home_settings, durable="audit") as sub:
                while len(got) < 7:
                    delivery = await sub.next_delivery(30)
                    assert delivery is not None
                    got.append(delivery.position)
            return got

        assert asyncio.run(receive()) == [p for p, _ in store_log(app)]

        async def stranger(**options: Any) -> None:
            await st.connect(secured.url, **options)

        with pytest.raises(st.NatsRefused, match="refused the connection"):
            asyncio.run(stranger())
        with pytest.raises(st.NatsRefused):
            asyncio.run(stranger(user="relay", password="guess"))
    finally:
        app.close()


def test_the_home_seeds_are_not_offered_to_a_configured_server(
    home_settings: Settings, tmp_path: Path
) -> None:
    embedded_server(home_settings)  # generates the seeds
    assert "nkeys_seed" in home_settings.nats_options("relay")
    elsewhere = Settings.from_env(
        {"LEDGER_HOME": str(home_settings.home), "LEDGER_NATS_URL": "nats://127.0.0.1:4222"}
    )
    assert elsewhere.nats_options("relay") == {}
    seed = tmp_path / "relay.nk"
    seed.write_text(seed_file(home_settings.home, "relay").read_text())
    configured = Settings.from_env(
        {
            "LEDGER_HOME": str(home_settings.home),
            "LEDGER_NATS_URL": "nats://127.0.0.1:4222",
            "LEDGER_NATS_NKEY_SEED": str(seed),
        }
    )
    assert configured.nats_options("relay") == {"nkeys_seed": str(seed)}


def test_the_projector_reads_the_stream_with_its_own_role(
    home_settings: Settings, secured: EmbeddedNats
) -> None:
    """``ledger project --source nats`` on a served home: the projector role's permissions
    are enough to create its durable consumer, fetch and ack (and the relay's url file
    is how it finds the server)."""
    import threading

    from ledger.projections.runner import run

    home_settings.nats_url_file.write_text(secured.url + "\n")
    app = Ledger(home_settings)
    try:
        append_parties(app, 12)
        Relay(app, secured.url).run_once()
        result = run(home_settings, threading.Event(), source="nats", once=True)
        assert result.position == app.head() == 12
    finally:
        app.close()


def _service(home_settings: Settings, name: str) -> Settings:
    """The settings a downstream service runs with: its own seed, the home's server."""
    from ledger.nats_auth import service_seed_file

    env = {
        "LEDGER_HOME": str(home_settings.home),
        "LEDGER_NATS_NKEY_SEED": str(service_seed_file(home_settings.home, name)),
    }
    if home_settings.database_url:
        env["LEDGER_DATABASE_URL"] = home_settings.database_url
    return Settings.from_env(env)


def test_a_named_service_owns_its_durable_consumer(
    home_settings: Settings, secured: EmbeddedNats
) -> None:
    """Issue 11: readers "may only read and create their own consumers".  Two services
    added while the server runs (it reloads): neither, nor the shared subscriber key, may
    delete, update, fetch from, ack on or inspect the other's durable consumer; each
    reads through its own; a removed service is turned away."""
    from ledger import stream as st
    from ledger.nats_auth import (
        add_service,
        reload_embedded_server,
        remove_service,
        service_seed_file,
    )
    from ledger.subscriber import subscribe

    add_service(home_settings.home, "billing")
    add_service(home_settings.home, "audit")
    assert reload_embedded_server(home_settings) == secured.pid
    billing, audit = _service(home_settings, "billing"), _service(home_settings, "audit")

    app = Ledger(home_settings)
    try:
        append_parties(app, 5)
        Relay(app, secured.url).run_once()

        async def receive(settings: Settings, durable: str | None, n: int) -> list[int]:
            got: list[int] = []
            async with subscribe(secured.url, settings=settings, durable=durable) as sub:
                while len(got) < n:
                    delivery = await sub.next_delivery(30)
                    assert delivery is not None
                    got.append(delivery.position)
                    # Two acked; the rest handed back (redelivered at once, not after ack_wait).
                    await (delivery.ack() if len(got) <= 2 else delivery.nak())
            return got

        # Each service reads through its own durable, and through an ephemeral consumer.
        assert asyncio.run(receive(billing, "billing", 5)) == [1, 2, 3, 4, 5]
        assert asyncio.run(receive(audit, "audit", 5)) == [1, 2, 3, 4, 5]
        assert asyncio.run(receive(audit, None, 5)) == [1, 2, 3, 4, 5]

        async def intrude(settings: Settings, victim: str) -> list[str]:
            from nats.js.api import ConsumerConfig

            errors: list[str] = []
            nc = await _connect(secured.url, errors, **settings.nats_options("subscriber"))
            jsm = nc.jsm(timeout=1)
            tries: list[Any] = [
                lambda: jsm.delete_consumer("LEDGER", victim),
                lambda: jsm.consumer_info("LEDGER", victim),
                lambda: jsm.add_consumer(
                    "LEDGER", ConsumerConfig(durable_name=victim, description="hijack")
                ),
                lambda: jsm.add_consumer(
                    "LEDGER", ConsumerConfig(name=victim, description="hijack")
                ),
                lambda: nc.request(f"$JS.API.CONSUMER.MSG.NEXT.LEDGER.{victim}", b"1", timeout=1),
                lambda: nc.request(f"$JS.ACK.LEDGER.{victim}.1.3.3.0.0", b"+ACK", timeout=1),
            ]
            for request in tries:
                with pytest.raises((TimeoutError, Exception)):
                    await asyncio.wait_for(request(), 30)
            await asyncio.sleep(0.2)  # the server's -ERR lines arrive asynchronously
            await nc.close()
            return [e.lower() for e in errors if "permissions violation for publish" in e]

        from ledger.stream import PROJECTOR_CONSUMER

        for intruder, victim in (
            (audit, "billing"),
            (home_settings, "billing"),  # the shared subscriber key
            (billing, "audit"),
            (billing, PROJECTOR_CONSUMER),
        ):
            refused = asyncio.run(intrude(intruder, victim))
            v = victim.lower()
            for what in (
                f"consumer.delete.ledger.{v}",
                f"consumer.info.ledger.{v}",
                f"consumer.durable.create.ledger.{v}",
                f"consumer.create.ledger.{v}",
                f"consumer.msg.next.ledger.{v}",
                f"$js.ack.ledger.{v}.",
            ):
                assert any(what in e for e in refused), (intruder.home, victim, what, refused)

        # Nothing was taken from billing's consumer: it resumes after its two acks.
        assert asyncio.run(receive(billing, "billing", 3)) == [3, 4, 5]

        # A removed service is turned away at once (the running server reloaded).
        kept = home_settings.home / "audit-seed-kept-by-the-service.nk"
        kept.write_bytes(service_seed_file(home_settings.home, "audit").read_bytes())
        remove_service(home_settings.home, "audit")
        assert reload_embedded_server(home_settings) == secured.pid
        with pytest.raises(st.NatsRefused):
            asyncio.run(st.connect(secured.url, nkeys_seed=str(kept)))
        # billing is still admitted (3 and 4 were acked above, 5 handed back).
        assert asyncio.run(receive(billing, "billing", 1)) == [5]
    finally:
        app.close()


def test_service_names_are_checked_before_they_reach_the_server_configuration(
    home_settings: Settings,
) -> None:
    from ledger.nats_auth import AccessError, add_service, services
    from ledger.stream import PROJECTOR_CONSUMER

    for bad in ("", "a.b", "a>", "*", "a b", "a\nb", "é", "x" * 65, "../x", PROJECTOR_CONSUMER):
        with pytest.raises(AccessError):
            add_service(home_settings.home, bad)
    assert services(home_settings.home) == {}
    path, key, created = add_service(home_settings.home, "svc-1_A")
    assert created and key.startswith("U")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert add_service(home_settings.home, "svc-1_A") == (path, key, False)
    # A stray file in the directory is not taken for a service.
    (path.parent / "not a name.nk").write_text("junk")
    assert services(home_settings.home) == {"svc-1_A": key}


def test_an_altered_copy_published_with_the_relays_key_is_refused_at_its_exact_position(
    home_settings: Settings, secured: EmbeddedNats
) -> None:
    """With the relay's key leaked, a forger purges the stream and republishes it with
    one licence altered in place (same leaf index; the relay's signed checkpoints left as
    they are).  A verifying subscriber, with the subscriber's key, refuses it naming that
    exact message, not just the batch it is in."""
    import json

    from ledger.bus_verify import BusVerificationError
    from ledger.subscriber import subscribe
    from tests import factory as f

    app = Ledger(home_settings)
    try:
        app.append_objects([f.exporter(), f.party("buyer"), f.vetted()])
        app.append_objects([f.party("other"), f.licence(), f.usage(quantity="100")])
        assert Relay(app, secured.url).run_once().published == 6  # licence: position 5

        async def forge() -> None:
            nc = await _connect(secured.url, [], **home_settings.nats_options("relay"))  # type: ignore[arg-type]
            jsm, js = nc.jsm(), nc.jetstream()
            msgs = [await jsm.get_msg("LEDGER", s) for s in range(1, 7)]
            await jsm.purge_stream("LEDGER")
            for m in msgs:
                payload = m.data
                headers = {
                    k: v for k, v in (m.headers or {}).items() if not k.startswith("Nats-Expected")
                }
                if headers["Ledger-Position"] == "5":
                    body = json.loads(payload)
                    body["items"][0]["cap"] = "900000"
                    payload = json.dumps(body, separators=(",", ":")).encode()
                headers["Nats-Msg-Id"] = "forged-" + headers["Nats-Msg-Id"]
                await js.publish(m.subject, payload, headers=headers)
            await nc.close()

        asyncio.run(forge())

        async def read() -> list[int]:
            seen: list[int] = []
            async with subscribe(
                secured.url,
                settings=home_settings,
                verify=True,
                verifier_key=app.signing_key().verifier,
            ) as sub:
                while (delivery := await sub.next_delivery(30)) is not None:
                    seen.append(delivery.position)
            return seen

        with pytest.raises(BusVerificationError) as refused:
            asyncio.run(read())
        assert (refused.value.position, refused.value.leaf) == (5, 4)
        assert "the message at position 5 (leaf 4) is not the event the signed tree of size 6" in (
            str(refused.value)
        )
    finally:
        app.close()


@pytest.mark.parametrize(("role", "hints"), [("subscriber", True), ("projector", False)])
def test_a_verifying_subscriber_polls_where_the_server_refuses_checkpoint_hints(
    home_settings: Settings, secured: EmbeddedNats, role: str, hints: bool
) -> None:
    """The subscriber role may subscribe to the checkpoint subject (the wake-up); a role
    that may not (the projector's, here) is refused, which the subscriber notices when it
    opens (the server's refusal names the subject in lower case) and polls instead,
    delivering the same events."""
    from ledger.stream import PROJECTOR_CONSUMER
    from ledger.subscriber import subscribe

    app = Ledger(home_settings)
    try:
        append_parties(app, 3)
        Relay(app, secured.url).run_once()

        async def receive() -> tuple[list[int], bool]:
            got: list[int] = []
            async with subscribe(
                secured.url,
                settings=home_settings,
                durable=PROJECTOR_CONSUMER if role == "projector" else "audit",
                verify=True,
                verifier_key=app.signing_key().verifier,
                nats_options=home_settings.nats_options(role),  # type: ignore[arg-type]
            ) as sub:
                while len(got) < 3:
                    delivery = await sub.next_delivery(30)
                    assert delivery is not None
                    got.append(delivery.position)
                return got, sub.checkpoint_hints

        assert asyncio.run(receive()) == ([1, 2, 3], hints)
    finally:
        app.close()
