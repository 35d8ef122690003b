"""`ledger serve --web` and `ledger demo --web`: the web server beside the other services,
as an operator starts them (subprocesses, real HTTP, SIGTERM to stop)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from ledger.cli.main import cli
from ledger.scenario import scenario_path

LEDGER = str(Path(sys.executable).parent / "ledger")
PAIR = 'data-pair="busan-cn-general-licences busan-us-affiliates-rule-suspension"'


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return {**env, "COLUMNS": "100"}


def _read_until(process: subprocess.Popen[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in {''.join(seen)!r}")


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(f"{base}/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("never ready")


def test_demo_web_serves_the_busan_timeline_and_cleans_up() -> None:
    process = subprocess.Popen(
        [LEDGER, "demo", "--web", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        home = Path(_read_until(process, r"ledger home\s+(\S+)\s+\(temporary\)").group(1))
        url = _read_until(process, r"(http://127\.0\.0\.1:\d+/commitments\S+)").group(1)
        assert url.endswith(
            "/commitments?agreement=busan-2025&as_of=2025-11-14&known_at=2025-11-14"
        )
        page = httpx.get(url, headers={"accept": "text/html"})
        assert page.status_code == 200 and PAIR in page.text
        base = url.split("/commitments")[0]
        report = httpx.get(f"{base}/api/asymmetry?as_of=2025-11-14&known_at=2025-11-14").json()
        assert any(p["state"] == "one-sided" for p in report["pairs"])
        assert home.exists()  # kept while it is served
    finally:
        code = _stop(process)
    assert code == 0, process.stderr.read() if process.stderr else ""
    assert not home.exists()  # the temporary ledger goes with the server


def test_serve_web_runs_beside_the_relay_and_the_projector(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path), "import", "--backfill", str(scenario_path())]
    )
    assert result.exit_code == 0, result.output
    process = subprocess.Popen(
        [LEDGER, "--home", str(tmp_path), "serve", "--web", "--web-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        base = _read_until(process, r"^Web (http://127\.0\.0\.1:\d+)/").group(1)
        _wait_ready(base)  # the projector caught the views up
        body = httpx.get(f"{base}/api/licences?as_of=2025-12-05&known_at=2025-12-05").json()
        assert len(body["licences"]) == 3
        assert httpx.post(f"{base}/api/licences").status_code == 405  # read-only
    finally:
        code = _stop(process)
    out = process.stdout.read() if process.stdout else ""
    assert code == 0 and "Stopped." in out


def test_serve_web_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [LEDGER, "--home", str(tmp_path), "serve", "--web", "--web-host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: --host 0.0.0.0 is not a loopback address: give --token or LEDGER_WEB_TOKEN "
        "(clients then send Authorization: Bearer TOKEN)"
    ]
    assert done.stdout == ""  # nothing started: no NATS line


def test_web_stops_cleanly_and_a_taken_port_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path), "import", "--backfill", str(scenario_path())]
    )
    assert result.exit_code == 0, result.output
    process = subprocess.Popen(
        [LEDGER, "--home", str(tmp_path), "web", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        base = _read_until(process, r"^Serving (http://127\.0\.0\.1:(\d+))/").group(1)
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        port = base.rsplit(":", 1)[1]
        taken = subprocess.run(
            [LEDGER, "--home", str(tmp_path), "web", "--port", port],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        assert taken.returncode == 1
        assert re.fullmatch(rf"Error: cannot listen on 127\.0\.0\.1:{port}: .+\n", taken.stderr), (
            taken.stderr
        )
    finally:
        code = _stop(process)
    assert code == 0
    assert process.stdout is not None and process.stdout.read().strip() == "Stopped."
