"""`ledger watch -o cloudevents`: the documented mapping of ledger events onto CloudEvents
attributes, checked against the stored events and read back by the official CloudEvents
SDK for JavaScript (from npm), which validates every attribute strictly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from ledger.nats_server import EmbeddedNats
from tests import factory as f
from tests.conftest import Backend
from tests.nats_fixtures import nats_server_fixture  # noqa: F401 - the nats_server fixture
from tests.node_tools import npm_tools

pytestmark = pytest.mark.nats

CLOUDEVENTS_SDK = {"cloudevents": "10.0.0"}

READ_BACK = r"""
const fs = require("fs");
const { CloudEvent } = require("cloudevents");
const out = [];
for (const line of fs.readFileSync(process.argv[2], "utf8").split("\n")) {
  if (!line.trim()) continue;
  const event = new CloudEvent(JSON.parse(line), true);  // strict: validates every attribute
  out.push({id: event.id, type: event.type, source: event.source, subject: event.subject,
            time: event.time, position: event.ledgerposition, data: event.data});
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture
def env(backend: Backend, nats_server: EmbeddedNats) -> dict[str, str]:
    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(Settings.from_env(env))
    try:
        app.append_objects([f.exporter("jl-mag"), f.party("buyer"), f.vetted("buyer")])
        app.append_objects([f.licence("GL.1")])
    finally:
        app.close()
    return env


def _run(env: dict[str, str], *args: str) -> str:
    result: Result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_watch_prints_cloudevents_with_the_documented_mapping(
    env: dict[str, str], tmp_path: Path
) -> None:
    _run(env, "relay", "--once")
    lines = _run(env, "watch", "--all", "--limit", "4", "--timeout", "20", "-o", "cloudevents")
    events = [json.loads(line) for line in lines.splitlines()]
    stored = json.loads(_run(env, "log", "-o", "json", "--order", "recorded"))
    assert len(events) == len(stored) == 4
    for cloud, entry in zip(events, stored, strict=True):
        event = entry["event"]
        assert cloud["specversion"] == "1.0"
        assert cloud["id"] == event["event_id"]
        assert cloud["source"] == "urn:export-control-ledger:stream:LEDGER"
        assert cloud["type"] == "ledger." + event["type"]
        assert cloud["time"] == event["recorded_at"]
        assert cloud["subject"] == f"{event['entity_kind']}:{event['entity_id']}"
        assert cloud["datacontenttype"] == "application/json"
        assert cloud["dataschema"] == "urn:export-control-ledger:schema:event:" + event["type"]
        assert cloud["effectiveat"] == event["effective_at"]
        assert cloud["ledgerposition"] == entry["position"]
        assert cloud["data"] == event
    # The same events through `watch -o jsonl` are the data, byte for byte.
    raw = _run(env, "watch", "--all", "--limit", "4", "--timeout", "20", "-o", "jsonl")
    assert [json.loads(line) for line in raw.splitlines()] == [e["data"] for e in events]

    root = npm_tools("cloudevents-sdk", CLOUDEVENTS_SDK)
    script = tmp_path / "read.cjs"
    script.write_text(READ_BACK)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(lines)
    proc = subprocess.run(
        ["node", str(script), str(feed)],
        env={**os.environ, "NODE_PATH": str(root / "node_modules")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    read = json.loads(proc.stdout)
    assert [r["id"] for r in read] == [e["id"] for e in events]
    assert [r["position"] for r in read] == [e["ledgerposition"] for e in events]
    assert read[3]["subject"] == "licence:GL.1" and read[3]["data"]["entity_id"] == "GL.1"


def test_watch_json_and_log_json_agree_on_position_and_event(env: dict[str, str]) -> None:
    """The documented difference: both give "position" and the stored "event"; watch adds
    the stream's fields instead of "retracted", one object per line."""
    _run(env, "relay", "--once")
    watched = [
        json.loads(line)
        for line in _run(
            env, "watch", "--all", "--limit", "4", "--timeout", "20", "-o", "json"
        ).splitlines()
    ]
    logged = json.loads(_run(env, "log", "-o", "json", "--order", "recorded"))
    assert [(w["position"], w["event"]) for w in watched] == [
        (entry["position"], entry["event"]) for entry in logged
    ]
    assert set(watched[0]) - {"position", "event"} == {"stream_seq", "subject", "redelivered"}
    assert set(logged[0]) - {"position", "event"} == {"retracted"}
