"""`ledger relay/watch/status/serve` and `ledger schema --asyncapi`, end to end."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from ledger.nats_server import EmbeddedNats
from ledger.relay import Relay
from tests import factory as f
from tests.conftest import Backend
from tests.nats_fixtures import (
    WAIT_SECONDS,
    append_parties,
    nats_server_fixture,  # noqa: F401 - the nats_server fixture
    purge_stream,
    run_ledger,
    store_log,
    stream_messages,
    subprocess_env,
    wait_until,
)

pytestmark = pytest.mark.nats

HANG_GUARD = ("--timeout", str(WAIT_SECONDS))
"""Ends a watch only if the expected events never come (``--limit N`` ends it normally)."""


class Cli:
    """The CLI in process against one isolated ledger."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, **extra_env: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={**self.env, **extra_env})

    def ledger(self) -> Ledger:
        return Ledger(Settings.from_env(self.env))


@pytest.fixture
def run(backend: Backend, nats_server: EmbeddedNats) -> Cli:
    return Cli({**backend.env(), "LEDGER_NATS_URL": nats_server.url})


def _append(run: Cli, n: int) -> Ledger:
    app = run.ledger()
    append_parties(app, n)
    return app


def test_relay_once_then_status(run: Cli) -> None:
    app = _append(run, 25)
    try:
        done = run("relay", "--once")
        assert done.exit_code == 0, done.output
        assert "Published 25 event(s) to stream LEDGER; the stream is at position 25." in (
            done.output
        )
        status = run("status", "-o", "json")
        assert status.exit_code == 0, status.output
        body = json.loads(status.output)
        assert body["store"]["head"] == 25
        assert body["relay"]["tracked_position"] == 25
        assert body["stream"]["messages"] == 25 and body["stream"]["last_position"] == 25
        assert (body["published_position"], body["lag"]) == (25, 0)
        assert body["published_from"] == "stream"

        append_parties(app, 3)
        lagging = json.loads(run("status", "-o", "json").output)
        assert (lagging["published_position"], lagging["lag"]) == (25, 3)
        again = run("relay", "--once", "-o", "json")
        assert again.exit_code == 0, again.output
        assert json.loads(again.output)["published"] == 3
        table = run("status")
        assert table.exit_code == 0, table.output
        assert "lag        0" in table.output
        assert "LEDGER at nats://127.0.0.1:" in table.output
        assert json.loads(run("status", "-o", "json").output)["gap"] is None

        # The stream loses what was published: status says so, and how to refill it.
        purge_stream(run.env["LEDGER_NATS_URL"])
        purged = run("status", "-o", "json")
        assert purged.exit_code == 1, purged.output
        body = json.loads(purged.output)
        assert body["gap"] == {"from": 1, "to": 28}
        assert (body["published_position"], body["lag"]) == (0, 28)
        text = run("status").output
        assert "gap        positions 1-28 were published" in text
        assert "--republish-from 1" in text
    finally:
        app.close()


def test_long_running_relay_stops_cleanly_on_sigterm(
    backend: Backend, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = backend.env()
    app = Ledger(Settings.from_env(env))
    append_parties(app, 300)
    log = tmp_path / "relay.log"
    relay = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "relay"],
        env=subprocess_env(env, LEDGER_NATS_URL=nats_server.url),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        run = Cli({**env, "LEDGER_NATS_URL": nats_server.url})

        def published() -> int:
            return int(json.loads(run("status", "-o", "json").output)["published_position"])

        wait_until(lambda: published() == app.head(), "the backlog published")
        append_parties(app, 5)  # still following the store
        wait_until(lambda: published() == app.head(), "new events published")
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(WAIT_SECONDS) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    text = log.read_text()
    assert "relay stopped: 305 event(s) published, stream at position" in text, text
    status = json.loads(run("status", "-o", "json").output)
    assert status["relay"]["tracked_position"] == app.head() == status["published_position"]
    app.close()


def test_relay_refuses_to_publish_past_a_gap_in_the_stream(
    run: Cli, nats_server: EmbeddedNats
) -> None:

    import nats

    app = _append(run, 5)
    try:
        assert run("relay", "--once").exit_code == 0

        async def delete() -> None:
            nc = await nats.connect(nats_server.url)
            await nc.jsm().delete_stream("LEDGER")
            await nc.close()

        asyncio.run(delete())
        append_parties(app, 2)
        refused = run("relay", "--once")
        assert refused.exit_code == 1
        lines = refused.output.strip().splitlines()
        assert len(lines) == 1, refused.output
        assert "position(s) 1-5 are no longer in the stream" in lines[0]
        assert "--republish-from 1`" in lines[0] and "--republish-from 6`" in lines[0]
        refill = run("relay", "--once", "--republish-from", "1")
        assert refill.exit_code == 0, refill.output
        assert "Published 7 event(s)" in refill.output
    finally:
        app.close()


def test_relay_and_status_without_nats(backend: Backend) -> None:
    cli_ = Cli(backend.env())
    app = _append(cli_, 2)
    app.close()
    no_url = cli_("relay", "--once")
    assert no_url.exit_code == 1
    assert "no NATS server configured" in no_url.output
    status = cli_("status")
    assert status.exit_code == 1
    assert "no NATS configured" in status.output and "lag        2" in status.output
    assert "published  position 0 (the relay's tracked position; the stream could not be read)" in (
        status.output
    )
    down = cli_("relay", "--once", "--give-up-after", "0.5", LEDGER_NATS_URL="nats://127.0.0.1:1")
    assert down.exit_code == 1
    assert "gave up" in down.output and "nats://127.0.0.1:1" in down.output
    unreachable = cli_("status", "-o", "json", LEDGER_NATS_URL="nats://127.0.0.1:1")
    assert unreachable.exit_code == 1
    body = json.loads(unreachable.output)
    assert body["stream"]["reachable"] is False
    assert (body["published_position"], body["published_from"], body["lag"]) == (0, "relay", 2)


def _tables(config: Settings) -> set[str]:
    """The tables of a ledger's database (its schema on PostgreSQL)."""
    from urllib.parse import parse_qs, urlparse

    if config.backend == "sqlite":
        import sqlite3

        with sqlite3.connect(config.sqlite_path) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {name for (name,) in rows}
    import psycopg

    schema = parse_qs(urlparse(config.database_url).query)["schema"][0]
    url = config.database_url.split("?", 1)[0]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
        return {name for (name,) in rows}


def test_status_reads_the_tracked_position_without_creating_tables(run: Cli) -> None:
    app = _append(run, 2)
    app.close()
    config = Settings.from_env(run.env)
    before = _tables(config)
    assert not any("tracking" in t for t in before), before
    status = run("status", "-o", "json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["relay"]["tracked_position"] == 0
    assert _tables(config) == before  # no DDL for a read
    assert run("relay", "--once").exit_code == 0
    assert json.loads(run("status", "-o", "json").output)["relay"]["tracked_position"] == 2


def test_status_and_watch_explain_a_url_left_by_a_serve_that_is_gone(backend: Backend) -> None:
    env = backend.env()
    config = Settings.from_env(env)
    Ledger(config).close()  # an existing (empty) ledger
    config.home.mkdir(parents=True, exist_ok=True)
    config.nats_url_file.write_text("nats://127.0.0.1:1\n")  # as a killed serve leaves it
    cli_ = Cli(env)
    status = cli_("status")
    assert status.exit_code == 1
    assert f"that URL comes from {config.nats_url_file}" in status.output
    assert "`ledger serve` that is no longer running" in status.output
    watch = cli_("watch", "--all", "--limit", "1")
    assert watch.exit_code == 1
    assert "`ledger serve` that is no longer running" in watch.output
    assert len(watch.output.strip().splitlines()) == 1


def test_watch_prints_the_stored_events(run: Cli) -> None:
    app = run.ledger()
    try:
        app.append_objects([f.exporter("jl-mag"), f.party("buyer"), f.vetted("buyer")])
        app.append_objects([f.licence("GL.1"), f.licence("GL.2")])
        app.append_objects([f.usage("GL.1", "S-1")])
        assert run("relay", "--once").exit_code == 0
        log = store_log(app)
        payloads = [
            app.msgspec_mapper.payload(n.state).decode()
            for n in app.recorder.select_notifications(start=1, limit=100)
        ]

        raw = run("watch", "--all", "--limit", "6", "-o", "jsonl")
        assert raw.exit_code == 0, raw.output
        assert raw.output.splitlines() == payloads

        one = run("watch", "--all", "--limit", "2", *HANG_GUARD, "-o", "json", "-f", "licence:GL.1")
        assert one.exit_code == 0, one.output
        rows = [json.loads(line) for line in one.output.splitlines()]
        assert [r["position"] for r in rows] == [log[3][0], log[5][0]]
        assert rows[0]["subject"] == "ledger.licence.LicenceGranted.GL%2E1"
        assert rows[1]["event"]["type"] == "LicenceUsageRecorded"

        table = run("watch", "--from-position", "4", "--limit", "2")
        assert table.exit_code == 0, table.output
        lines = table.output.splitlines()
        assert lines[0].split()[:4] == ["pos", "recorded", "type", "entity"]
        assert "LicenceGranted" in lines[2] and "licence:GL.1" in lines[2]
        assert "licence:GL.2" in lines[3]

        first = run("watch", "--durable", "audit", "--all", "--limit", "2", "-o", "jsonl")
        rest = run("watch", "--durable", "audit", "--limit", "4", *HANG_GUARD, "-o", "jsonl")
        assert first.exit_code == rest.exit_code == 0, first.output + rest.output
        assert first.output.splitlines() + rest.output.splitlines() == payloads
    finally:
        app.close()


def test_watch_since_a_date_starts_at_that_day(run: Cli) -> None:
    app = run.ledger()
    try:
        app.append_objects(
            [
                {**f.party("old"), "recorded_at": "2025-11-13T23:59:59Z"},
                {**f.party("new"), "recorded_at": "2025-11-14T00:00:00Z"},
                {**f.party("newer"), "recorded_at": "2025-11-14T09:00:00+08:00"},
            ],
            backfill=True,
        )
        assert run("relay", "--once").exit_code == 0
        since = run("watch", "--since", "2025-11-14", "--limit", "2", *HANG_GUARD, "-o", "json")
        assert since.exit_code == 0, since.output
        ids = [json.loads(line)["event"]["entity_id"] for line in since.output.splitlines()]
        assert ids == ["new", "newer"]
        later = run(
            "watch", "--since", "2025-11-14T00:00:01Z", "--limit", "1", *HANG_GUARD, "-o", "json"
        )
        assert [json.loads(x)["event"]["entity_id"] for x in later.output.splitlines()] == ["newer"]
    finally:
        app.close()


def test_watch_rejects_bad_options(run: Cli) -> None:
    bad_filter = run("watch", "-f", "ship:1")
    assert bad_filter.exit_code == 2
    assert "unknown entity kind 'ship'" in bad_filter.output
    both = run("watch", "--all", "--from-position", "3")
    assert both.exit_code == 2
    assert "choose one of --from-position, --all" in both.output
    bad_time = run("watch", "--since", "yesterday")
    assert bad_time.exit_code == 2
    no_stream = run("watch", "--all", "--timeout", "1")
    assert no_stream.exit_code == 1
    assert "stream LEDGER does not exist" in no_stream.output


@pytest.mark.parametrize(
    ("filters", "text"),
    [
        (["licence", "licence"], "'licence' and 'licence' are the same filter (ledger.licence.>)"),
        (
            ["LicenceGranted", "licence"],
            "'licence' already selects every event 'LicenceGranted' does (ledger.licence.> "
            "covers ledger.licence.LicenceGranted.*): JetStream refuses a filter that covers "
            "another; drop 'LicenceGranted'",
        ),
        (["party:x", "*:x"], "'*:x' already selects every event 'party:x' does"),
        (["licence:GL-1", "LicenceGranted@licence:GL-1"], "drop 'LicenceGranted@licence:GL-1'"),
    ],
    ids=["twice", "kind-covers-type", "any-kind-covers-one", "entity-covers-type-on-it"],
)
def test_watch_refuses_a_filter_covering_another_before_connecting(
    run: Cli, filters: list[str], text: str
) -> None:
    """JetStream refused these once connected (exit 1, 'consumer subject filters cannot
    overlap'); the subjects show it at once (exit 2, naming the filter to drop)."""
    args = [a for f in filters for a in ("-f", f)]
    nowhere = {"LEDGER_NATS_URL": "nats://127.0.0.1:1"}
    refused = run("watch", "--all", "--timeout", "1", *args, **nowhere)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("Error: --filter: '") and text in refused.stderr
    as_json = json.loads(run("watch", "--all", *args, "-o", "json", **nowhere).stderr)
    assert as_json["error"] == "InputError" and as_json["field"] == "--filter"


def test_watch_takes_filters_that_only_intersect(run: Cli) -> None:
    """Filters that can match the same event without one covering the other are JetStream's
    to accept: they are not refused up front, and each event comes once."""
    app = _append(run, 3)
    try:
        assert run("relay", "--once").exit_code == 0
        first = next(iter(app.log())).event.entity_id
        both = run(
            "watch", "--all", "-f", "PartyRegistered", "-f", f"*:{first}", "--limit", "3",
            *HANG_GUARD, "-o", "json",
        )  # fmt: skip
        assert both.exit_code == 0, both.output
        seen = [json.loads(line)["position"] for line in both.output.splitlines()]
        assert seen == [1, 2, 3]
    finally:
        app.close()


@pytest.mark.parametrize("name", ["a/b", "a.b", "x" * 300])
def test_watch_rejects_a_durable_name_jetstream_cannot_use(run: Cli, name: str) -> None:
    bad = run("watch", "--durable", name, "--limit", "1")
    assert bad.exit_code == 2, bad.output
    assert bad.output.startswith("Error: --durable: durable name"), bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_watch_reports_a_jetstream_refusal_on_one_line(run: Cli, nats_server: EmbeddedNats) -> None:
    """The stream allows one consumer and has it: creating the watch's consumer fails."""

    import nats
    from nats.js.api import ConsumerConfig, StreamConfig

    async def prepare() -> None:
        nc = await nats.connect(nats_server.url)
        jsm = nc.jsm()
        await jsm.add_stream(StreamConfig(name="LEDGER", subjects=["ledger.>"], max_consumers=1))
        await jsm.add_consumer("LEDGER", ConsumerConfig(durable_name="the-only-one"))
        await nc.close()

    asyncio.run(prepare())
    refused = run("watch", "--all", "--limit", "1")
    assert refused.exit_code == 1, refused.output
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.output, refused.output
    assert lines[0].startswith("Error: JetStream refused the subscription: "), lines[0]
    assert "maximum consumers" in lines[0]


def test_schema_asyncapi_documents_subjects_headers_and_payloads(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    done = CliRunner().invoke(
        cli, ["schema", "--asyncapi"], env={"LEDGER_SUBJECT_PREFIX": "acme", "LEDGER_HOME": home}
    )
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert doc["asyncapi"] == "3.0.0"
    # No NATS configured: a placeholder the reader fills in, not a made-up address.
    server = doc["servers"]["ledger"]
    assert server["host"] == "{host}" and "host" in server["variables"]
    configured = CliRunner().invoke(
        cli,
        ["schema", "--asyncapi"],
        env={"LEDGER_HOME": home, "LEDGER_NATS_URL": "nats://nats-1:4222,nats://nats-2:4222"},
    )
    server = json.loads(configured.output)["servers"]["ledger"]
    assert server["host"] == "nats-1:4222" and "variables" not in server
    assert "nats://nats-2:4222" in server["description"]
    # --home given to the command line (not the environment): its serve's recorded URL.
    served = tmp_path / "served"
    served.mkdir()
    (served / "nats.url").write_text("nats://127.0.0.1:45999\n")
    by_option = CliRunner().invoke(
        cli, ["--home", str(served), "schema", "--asyncapi"], env={"LEDGER_HOME": home}
    )
    assert json.loads(by_option.output)["servers"]["ledger"]["host"] == "127.0.0.1:45999"
    channel = doc["channels"]["events"]
    assert channel["address"] == "acme.{entityKind}.{eventType}.{entityId}"
    from ledger.events import EVENT_TYPES

    names = {cls.__name__ for cls in EVENT_TYPES}
    assert set(channel["messages"]) == names == set(doc["components"]["messages"])
    assert set(channel["parameters"]["eventType"]["enum"]) == names

    def resolve(ref: str) -> Any:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert resolve(ref) is not None, ref
    granted = doc["components"]["messages"]["LicenceGranted"]
    assert resolve(granted["payload"]["$ref"])["properties"]["type"]["enum"] == ["LicenceGranted"]
    headers = resolve(granted["headers"]["$ref"])
    assert {"Nats-Msg-Id", "Ledger-Position", "Ledger-Entity"} <= set(headers["required"])


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def test_serve_runs_embedded_nats_and_the_relay(backend: Backend, tmp_path: Path) -> None:
    env = backend.env()
    settings = Settings.from_env(env)
    child_env = subprocess_env(env)
    child_env.pop("LEDGER_NATS_URL", None)
    app = Ledger(settings)
    append_parties(app, 40)
    serve = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--no-projector"],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "serve.log").open("wb"),
        text=True,
    )
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline().strip()
        assert first.startswith("NATS nats://127.0.0.1:"), first
        url = first.removeprefix("NATS ")
        assert settings.nats_url_file.read_text().strip() == url
        run = Cli(env)  # finds the server through $LEDGER_HOME/nats.url

        append_parties(app, 10)

        def caught_up() -> bool:
            status = run("status", "-o", "json")
            assert status.exit_code in (0, 1), status.output
            body = json.loads(status.output)
            assert "lag" in body, body
            return bool(body["lag"] == 0)

        wait_until(caught_up, "lag 0")
        watched = run("watch", "--all", "--limit", "50", "-o", "json")
        assert watched.exit_code == 0, watched.output
        assert [json.loads(x)["position"] for x in watched.output.splitlines()] == [
            p for p, _ in store_log(app)
        ]

        second = subprocess.run(
            [sys.executable, "-m", "ledger.cli.main", "serve"],
            env=child_env,
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
        )
        assert second.returncode == 1
        assert (
            f"another `ledger serve` is running on {settings.home} (pid {serve.pid}, NATS {url})"
            in second.stderr
        )
        assert "Traceback" not in second.stderr
        # The first one is untouched: its URL file, and its server still answers.
        assert settings.nats_url_file.read_text().strip() == url
        assert json.loads(run("status", "-o", "json").output)["stream"]["reachable"]

        serve.send_signal(signal.SIGTERM)
        out, _ = serve.communicate(timeout=WAIT_SECONDS)
        assert serve.returncode == 0, out
        assert "Stopped." in out
        assert not settings.nats_url_file.exists()
        assert not _port_open(url)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        app.close()


def _serve(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[str]:
    """``ledger serve`` in its own process group (so the test can signal the group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        text=True,
        start_new_session=True,
    )


def test_ctrl_c_on_serve_drains_the_relay_before_stopping_nats(
    backend: Backend, tmp_path: Path
) -> None:
    """Ctrl-C signals the terminal's whole process group; the embedded server must not
    get it (it would stop before the relay drained): serve stops it after the relay."""
    import os

    env = backend.env()
    settings = Settings.from_env(env)
    child_env = subprocess_env(env)
    child_env.pop("LEDGER_NATS_URL", None)
    app = Ledger(settings)
    append_parties(app, 20)
    log = tmp_path / "serve.log"
    serve = _serve(child_env, log, "--no-projector")
    try:
        assert serve.stdout is not None
        url = serve.stdout.readline().strip().removeprefix("NATS ")
        run = Cli(env)
        wait_until(lambda: json.loads(run("status", "-o", "json").output)["lag"] == 0, "lag 0")
        append_parties(app, 3000)  # a backlog being published when Ctrl-C comes
        os.killpg(serve.pid, signal.SIGINT)
        out, _ = serve.communicate(timeout=WAIT_SECONDS)
        assert serve.returncode == 0, out + log.read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    text = log.read_text()
    assert "received SIGINT; stopping" in text, text
    assert "relay stopped:" in text, text
    server_log = (settings.home / "nats" / "nats-server.log").read_text()
    assert 'Trapped "terminated" signal' in server_log  # stopped by serve (SIGTERM) ...
    assert 'Trapped "interrupt" signal' not in server_log  # ... not by the Ctrl-C
    assert not settings.nats_url_file.exists()
    assert not _port_open(url)
    # The relay recorded what it had published: the position in the stream.
    with EmbeddedNats(settings.home / "nats") as server:
        published = stream_messages(server.url)
        tracked = Relay(app, server.url).tracked_position()
        assert published and tracked == published[-1].position
        assert [(m.position, m.msg_id) for m in published] == store_log(app)[: len(published)]
    app.close()


def test_serve_stops_with_the_relays_error_on_one_line(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    """The relay refuses to publish past a gap in the stream: serve must not keep running
    without it; it exits 1 with the relay's reason as one line."""

    import nats

    env = {**backend.env(), "LEDGER_NATS_URL": nats_server.url}
    app = Ledger(Settings.from_env(env))
    append_parties(app, 5)
    Relay(app, nats_server.url).run_once()

    async def delete() -> None:
        nc = await nats.connect(nats_server.url)
        await nc.jsm().delete_stream("LEDGER")
        await nc.close()

    asyncio.run(delete())
    serve = subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--no-projector"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    app.close()
    assert serve.returncode == 1, serve.stdout + serve.stderr
    errors = [line for line in serve.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, serve.stderr
    assert errors[0].startswith("Error: relay: stream LEDGER ends at position 0")
    assert "--republish-from 1`" in errors[0]
    assert "Traceback" not in serve.stderr


def test_serve_reports_a_nats_server_that_cannot_start_on_one_line(
    backend: Backend, tmp_path: Path
) -> None:
    env = backend.env()
    settings = Settings.from_env(env)
    store = settings.home / "nats"
    store.mkdir(parents=True)
    (store / "jetstream").write_text("not a directory")  # JetStream cannot use its store
    child_env = subprocess_env(env)
    child_env.pop("LEDGER_NATS_URL", None)
    serve = subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--no-projector"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert serve.returncode == 1, serve.stdout + serve.stderr
    errors = [line for line in serve.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in serve.stderr, serve.stderr
    assert errors[0].startswith("Error: could not start the embedded NATS server: nats-server")
    assert str(store / "nats-server.log") in errors[0]
    assert not settings.nats_url_file.exists()


@pytest.mark.parametrize("bad", ["nats://127.0.0.1:99999", "nats://", "http://127.0.0.1:4222"])
def test_a_nats_url_that_cannot_be_a_server_is_a_configuration_error(
    sqlite_backend: Backend, bad: str
) -> None:
    """Exit 2 with one line at once: a mistyped URL is not an outage to retry."""
    env = {**sqlite_backend.env(), "LEDGER_NATS_URL": bad}
    cli_ = Cli(env)
    cli_.ledger().close()  # an existing (empty) ledger
    for args in (
        ["status"],
        ["relay", "--once"],
        ["watch", "--all", "--timeout", "1"],
        ["project", "--once", "--source", "nats"],
    ):
        done = cli_(*args)
        assert done.exit_code == 2, (args, done.output)
        assert "is not a NATS server URL" in done.output, (args, done.output)
        assert len(done.output.strip().splitlines()) == 1, (args, done.output)
    serve = run_ledger(env, "serve")
    assert serve.returncode == 2, serve.stderr
    assert serve.stderr.strip().splitlines() == [
        next(line for line in serve.stderr.splitlines() if "is not a NATS server URL" in line)
    ]


def test_a_postgres_url_with_an_impossible_port_is_a_configuration_error(tmp_path: Path) -> None:
    done = Cli(
        {"LEDGER_HOME": str(tmp_path), "LEDGER_DATABASE_URL": "postgresql://127.0.0.1:99999/x"}
    )("log")
    assert done.exit_code == 2, done.output
    assert done.output.strip() == "Error: LEDGER_DATABASE_URL: Port out of range 0-65535"
