"""NATS credentials never reach the output: status (text and JSON), the relay's output and
log lines, and schema --asyncapi, as database passwords already did not."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from ledger.nats_server import EmbeddedNats
from ledger.relay import Relay, RelayError
from tests.conftest import Backend
from tests.nats_fixtures import append_parties, nats_server_fixture  # noqa: F401

pytestmark = pytest.mark.nats

SECRET = "s3cret-Pa55"


def _with_password(url: str) -> str:
    """The server's URL with credentials (a server without auth accepts and ignores them)."""
    return url.replace("nats://", f"nats://alice:{SECRET}@", 1)


def test_status_masks_the_nats_password(backend: Backend, nats_server: EmbeddedNats) -> None:
    env = {**backend.env(), "LEDGER_NATS_URL": _with_password(nats_server.url)}
    app = Ledger(Settings.from_env(env))
    append_parties(app, 2)
    app.close()
    runner = CliRunner()
    assert runner.invoke(cli, ["relay", "--once"], env=env).exit_code == 0
    relayed = runner.invoke(cli, ["relay", "--once", "-o", "json"], env=env)
    assert relayed.exit_code == 0, relayed.output
    assert SECRET not in relayed.output and "alice:***@" in json.loads(relayed.output)["url"]
    for args in (["status"], ["status", "-o", "json"]):
        shown = runner.invoke(cli, args, env=env)
        assert shown.exit_code == 0, shown.output
        assert SECRET not in shown.output and "alice:***@127.0.0.1:" in shown.output
    down = {**env, "LEDGER_NATS_URL": f"nats://alice:{SECRET}@127.0.0.1:1"}
    for args in (["status"], ["status", "-o", "json"], ["relay", "--once", "--give-up-after", "0"]):
        failed = runner.invoke(cli, args, env=down)
        assert failed.exit_code == 1, failed.output
        assert SECRET not in failed.output and "alice:***@127.0.0.1:1" in failed.output


def test_relay_log_lines_mask_the_nats_password(
    backend: Backend, nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    app = Ledger(backend.settings())
    try:
        append_parties(app, 2)
        with caplog.at_level(logging.INFO, logger="ledger"):
            Relay(app, _with_password(nats_server.url)).run_once()
            with pytest.raises(RelayError) as failed:
                Relay(app, f"nats://alice:{SECRET}@127.0.0.1:1").run_once(give_up_after=0.3)
    finally:
        app.close()
    assert SECRET not in str(failed.value)
    logged = caplog.text
    assert "relay: connected to nats://alice:***@127.0.0.1:" in logged
    assert "retrying in" in logged and "nats://alice:***@127.0.0.1:1" in logged
    assert SECRET not in logged


def test_asyncapi_server_description_masks_passwords(tmp_path: Path) -> None:
    url = f"nats://alice:{SECRET}@nats-1:4222,nats://{SECRET}@nats-2:4222"
    done = CliRunner().invoke(
        cli,
        ["schema", "--asyncapi"],
        env={"LEDGER_HOME": str(tmp_path), "LEDGER_NATS_URL": url},
    )
    assert done.exit_code == 0, done.output
    assert SECRET not in done.output
    server = json.loads(done.output)["servers"]["ledger"]
    assert server["host"] == "nats-1:4222"
    assert "nats://alice:***@nats-1:4222" in server["description"]
    assert "nats://***@nats-2:4222" in server["description"]
