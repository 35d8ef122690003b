"""deploy/ for operations: the relay's and the projector's health checks are real `ledger
health` commands that pass when the service is healthy and fail when it is not, and the
documented override that exposes NATS outside the compose network binds to loopback
unless told otherwise."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from ledger.nats_server import EmbeddedNats
from tests import factory as f
from tests.conftest import Backend
from tests.nats_fixtures import nats_server_fixture  # noqa: F401 - the nats_server fixture

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _services(name: str) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text())["services"]
    return services


def _health_command(service: str) -> list[str]:
    check = _services("compose.yaml")[service]["healthcheck"]
    test = check["test"]
    assert test[:3] == ["CMD", "ledger", "health"], test
    return list(test[2:])


@pytest.mark.nats
def test_the_services_health_checks_pass_and_fail_when_they_should(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(Settings.from_env(env))
    try:
        app.append_objects([f.exporter("jl-mag"), f.party("buyer")])
    finally:
        app.close()

    def run(args: list[str], **more: str) -> Any:
        return CliRunner().invoke(cli, args, env={**env, **more})

    relay_check, projector_check = _health_command("relay"), _health_command("projector")
    assert "--max-lag" in relay_check and "nats" in relay_check
    assert "--max-lag" in projector_check and "projector" in projector_check
    # Nothing relayed yet: the stream does not exist, so the relay is not healthy.
    before = run(relay_check)
    assert before.exit_code == 1 and "FAIL  nats" in before.output, before.output
    assert run(["relay", "--once"]).exit_code == 0
    assert run(["project", "--once"]).exit_code == 0
    for check in (relay_check, projector_check):
        result = run(check)
        assert result.exit_code == 0, result.output
    down = run(relay_check, LEDGER_NATS_URL="nats://127.0.0.1:1")
    assert down.exit_code == 1 and "FAIL  nats" in down.output


def test_exposing_nats_is_documented_and_binds_to_loopback_by_default() -> None:
    exposed = _services("compose.expose-nats.yaml")
    base = _services("compose.yaml")
    published = []
    for node in ("nats-1", "nats-2", "nats-3"):
        assert node in base  # overrides only services that exist
        (port,) = exposed[node]["ports"]
        match = re.fullmatch(
            r"\$\{NATS_PUBLISH_ADDRESS:-([^}]*)\}:\$\{[A-Z0-9_]+:-(\d+)\}:(\d+)", port
        )
        assert match, port
        address, host_port, container_port = match.groups()
        assert address == "127.0.0.1"
        env = base[node]["environment"]
        assert container_port == env["NATS_CLIENT_PORT"]
        published.append(int(host_port))
    assert len(set(published)) == 3
    readme = (ROOT / "README.md").read_text()
    assert "deploy/compose.expose-nats.yaml" in readme
    assert "compose.expose-nats.yaml" in (DEPLOY / "compose.yaml").read_text()
