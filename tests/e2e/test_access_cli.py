"""``ledger access``: a downstream service's own key, admitted by a running server at once.

The command runs in a subprocess against a ledger home whose embedded server (started as
``ledger serve`` starts it) is running; the service then connects with the seed it was given.
"""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.nats_auth import embedded_server
from tests.conftest import Backend
from tests.nats_fixtures import run_ledger

pytestmark = pytest.mark.nats


def _ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_ledger(env, *args, timeout=120)


@pytest.fixture
def home_env(backend: Backend) -> dict[str, str]:
    return {k: v for k, v in backend.env().items() if k != "LEDGER_NATS_URL"}


def test_access_add_list_remove_on_a_running_server(home_env: dict[str, str]) -> None:
    from ledger import stream as st

    settings = Settings.from_env(home_env)
    server = embedded_server(settings)
    server.start()
    try:
        added = _ledger(home_env, "access", "add", "billing", "-o", "json")
        assert added.returncode == 0, added.stderr
        body = json.loads(added.stdout)
        assert body["service"] == "billing" and body["created"] is True
        assert body["durable"] == "billing"
        assert body["reloaded_pid"] == server.pid
        seed = Path(body["seed_file"])
        assert stat.S_IMODE(seed.stat().st_mode) == 0o600
        assert body["public_key"] in server.config_file.read_text()
        assert seed.read_text().strip() not in server.config_file.read_text()
        assert body["nats_user"]["nkey"] == body["public_key"]

        # The service gets in with its seed, at once (no restart).
        async def connect() -> None:
            nc = await st.connect(server.url, nkeys_seed=str(seed))
            info = await nc.jsm().account_info()
            assert info is not None
            await nc.close()

        asyncio.run(connect())

        again = _ledger(home_env, "access", "add", "billing")
        assert again.returncode == 0, again.stderr
        assert "Kept service 'billing'" in again.stdout
        assert f"(pid {server.pid}) reloaded" in again.stdout

        listed = _ledger(home_env, "access", "list", "-o", "json")
        assert [row["service"] for row in json.loads(listed.stdout)] == ["billing"]
        table = _ledger(home_env, "access", "list")
        assert table.stdout.split() == ["billing", body["public_key"]]

        removed = _ledger(home_env, "access", "remove", "billing", "-o", "json")
        assert json.loads(removed.stdout) == {
            "service": "billing",
            "removed": True,
            "reloaded_pid": server.pid,
        }
        assert body["public_key"] not in server.config_file.read_text()
        assert not seed.exists()
        assert _ledger(home_env, "access", "list").stdout.startswith("No named services")
    finally:
        server.stop()


def test_access_without_a_running_server_and_bad_names(home_env: dict[str, str]) -> None:
    added = _ledger(home_env, "access", "add", "feed")
    assert added.returncode == 0, added.stderr
    assert "No embedded NATS server is running here" in added.stdout
    # The next start admits it.
    server = embedded_server(Settings.from_env(home_env))
    server.start()
    try:
        key = json.loads(_ledger(home_env, "access", "list", "-o", "json").stdout)[0]
        assert key["public_key"] in server.config_file.read_text()
    finally:
        server.stop()

    for bad in ("a.b", "ledger-views", "x" * 65, "a b", ""):
        result = _ledger(home_env, "access", "add", bad, "-o", "json")
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        error = json.loads(result.stderr)
        assert error["field"] == "NAME", error
    unknown = _ledger(home_env, "access", "remove", "nobody")
    assert unknown.returncode == 2
    assert "no service named 'nobody'" in unknown.stderr
