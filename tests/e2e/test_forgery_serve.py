"""Issue 11's forgeries replayed against a running `ledger serve` (embedded NATS with its
roles, the projector fed from NATS): a reader's key and no key are refused by the server;
with the relay's key leaked, the forged licence is published, and then the verifying
watch does not print it, the projector does not apply it (the views keep the real cap),
and the relay stops at it with one line (serve exits 1) instead of skipping the real
event at that position.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from ledger.relay import iter_notifications, outgoing_message
from tests import factory as f
from tests.conftest import Backend
from tests.nats_fixtures import WAIT_SECONDS, subprocess_env, wait_until

pytestmark = pytest.mark.nats


def _forged_licence(app: Ledger) -> tuple[str, bytes, dict[str, str]]:
    """The stored LicenceGranted (position 4) with cap 900000 and a military buyer, as the
    next event (position 5, leaf 4), as a forger with a copy of the stream would make it."""
    n = next(iter_notifications(app, 3))
    message = outgoing_message("ledger", n, app.msgspec_mapper.payload(n.state), 3)
    body = json.loads(message.payload)
    body["items"][0]["cap"] = "900000"
    body["end_users"] = [*body["end_users"], "pla-unit"]
    body["event_id"] = "0193aaaa-0000-7000-8000-000000000005"
    headers = {
        **message.headers,
        "Nats-Msg-Id": body["event_id"],
        "Ledger-Position": "5",
        "Ledger-Leaf": "4",
    }
    return message.subject, json.dumps(body, separators=(",", ":")).encode(), headers


def _publish(
    url: str, subject: str, payload: bytes, headers: dict[str, str], **options: Any
) -> list[str]:
    """Publish through JetStream; the server's asynchronous errors (refusals)."""
    from ledger import stream as st

    errors: list[str] = []

    async def go() -> None:
        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        nc = await st.connect(url, error_cb=on_error, **options)
        try:
            await nc.jetstream(timeout=2).publish(subject, payload, headers=headers)
        except TimeoutError:
            pass  # refused: no answer
        finally:
            await nc.close()

    asyncio.run(go())
    return errors


def _verified(env: dict[str, str], key: str, *args: str, timeout: float) -> list[int] | None:
    """The positions a verifying watch prints (None when it fails: no stream yet)."""
    result = CliRunner().invoke(
        cli,
        ["watch", "--verify", "--key", key, "-o", "json", "--timeout", str(timeout), *args],
        env=env,
    )
    if result.exit_code != 0:
        return None
    return [json.loads(line)["position"] for line in result.stdout.splitlines()]


def _caps(env: dict[str, str]) -> str:
    result = CliRunner().invoke(cli, ["licences", "-o", "json"], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_forgeries_against_a_running_serve(backend: Backend, tmp_path: Path) -> None:
    from ledger import stream as st

    env = {k: v for k, v in backend.env().items() if k != "LEDGER_NATS_URL"}
    env["LEDGER_PROJECTOR_SOURCE"] = "nats"
    settings = Settings.from_env(env)
    app = Ledger(settings)
    app.append_objects([f.exporter(), f.party("buyer"), f.vetted(), f.licence()])
    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "serve"],
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        text=True,
    )
    try:
        assert serve.stdout is not None
        url = serve.stdout.readline().strip().removeprefix("NATS ")
        # The forgery must come after serve's relay has published the four events and
        # their signed checkpoint: until then a verifying watch gets fewer (or no stream).
        # (The licences command is no such wait: it catches the views up from the store.)
        key = app.signing_key().verifier.text()
        first_four = ("--all", "--limit", "4")
        wait_until(
            lambda: _verified(env, key, *first_four, timeout=2) == [1, 2, 3, 4],
            "the relay's four events and their checkpoint",
        )
        subject, forged, headers = _forged_licence(app)

        # A subscriber's key (from the home, as `ledger watch` uses it): refused.
        refused = _publish(url, subject, forged, headers, **settings.nats_options("subscriber"))
        assert any("permissions violation for publish" in e for e in refused), refused
        # No key at all: not even a connection.
        with pytest.raises(st.NatsRefused):
            _publish(url, subject, forged, headers)

        # The relay's key, leaked: the server takes the forged licence.
        assert _publish(url, subject, forged, headers, **settings.nats_options("relay")) == []
        # The four real events still come through a verifying watch; the forged fifth,
        # which no signed checkpoint covers, never does (the idle timeout only ends that
        # watch: slowness can make it print less, never the forgery).
        assert _verified(env, key, *first_four, timeout=WAIT_SECONDS) == [1, 2, 3, 4]
        assert _verified(env, key, "--from-position", "5", timeout=5) == []

        # The real next event: the relay finds the forgery at the stream's head and stops.
        app.append_objects([f.usage(quantity="100")])
        out, _ = serve.communicate(timeout=WAIT_SECONDS)
        assert serve.returncode == 1, out
        text = log.read_text()
        assert "claims position 5" in text and "Traceback" not in text
        # The projector applied the store's events only: the real cap, no military buyer
        # (it holds the forged message for a signed checkpoint, which never covers it).
        caps = _caps(env)
        assert "900000" not in caps and "pla-unit" not in caps
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        app.close()
