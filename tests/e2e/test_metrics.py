"""Prometheus /metrics of `ledger serve` (relay and projector in one process) and of
`ledger project`: positions, lag, published and applied events, errors, poison messages;
on loopback unless another address is chosen."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from tests.conftest import Backend
from tests.nats_fixtures import WAIT_SECONDS, append_parties, subprocess_env, wait_until

pytestmark = pytest.mark.nats


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _metrics_url(log: Path) -> str:
    found: list[str] = []

    def announced() -> bool:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Metrics at "):
                found.append(line.removeprefix("Metrics at ").strip())
                return True
        return False

    wait_until(announced, "the metrics URL on stderr")
    return found[0]


def test_serve_exports_positions_lag_and_counters(backend: Backend, tmp_path: Path) -> None:
    env = backend.env()
    settings = Settings.from_env(env)
    child_env = subprocess_env(env)
    child_env.pop("LEDGER_NATS_URL", None)
    app = Ledger(settings)
    append_parties(app, 30)
    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--metrics-port", "0"],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        url = _metrics_url(log)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), url
        append_parties(app, 12)
        head = app.head()

        def caught_up() -> bool:
            m = scrape(url)
            return (
                m.get("ledger_relay_lag_positions") == 0
                and m.get("ledger_projector_lag_positions") == 0
            )

        wait_until(caught_up, "relay and projector caught up in /metrics")
        m = scrape(url)
        assert m["ledger_store_head_position"] == head
        assert m["ledger_relay_position"] == head
        assert m["ledger_projector_position"] == head
        assert m["ledger_relay_published_events_total"] == 42
        assert m["ledger_projector_applied_events_total"] == 42
        assert m["ledger_relay_errors_total"] == 0
        assert m["ledger_projector_errors_total"] == 0
        assert m["ledger_projector_poison_messages_total"] == 0
        assert m["ledger_metrics_store_errors_total"] == 0
    finally:
        app.close()
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=WAIT_SECONDS)
    assert serve.returncode == 0, log.read_text()


def test_project_exports_its_metrics_and_a_busy_port_is_one_line(
    backend: Backend, tmp_path: Path
) -> None:
    env = backend.env()
    app = Ledger(Settings.from_env(env))
    append_parties(app, 5)
    app.close()
    log = tmp_path / "project.log"
    project = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "project", "--metrics-port", "0"],
        env=subprocess_env(env),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        url = _metrics_url(log)
        wait_until(lambda: scrape(url).get("ledger_projector_lag_positions") == 0, "lag 0")
        m = scrape(url)
        assert m["ledger_projector_applied_events_total"] == 5
        assert "ledger_relay_published_events_total" not in m  # no relay in this process
        assert m["ledger_relay_lag_positions"] == 5  # nothing relayed: read from the store
    finally:
        project.send_signal(signal.SIGTERM)
        project.wait(timeout=WAIT_SECONDS)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["project", "--once", "--metrics-port", str(port)], env=env
        )
    assert result.exit_code == 2, result.output
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
