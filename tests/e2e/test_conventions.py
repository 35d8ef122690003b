"""Conventions operators and integrators expect (issue 16 part D): the same output formats
everywhere, tidy CSV, the global --home honoured by the demo."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from ledger.cli.common import OUTPUT_FORMATS
from ledger.cli.main import COMMANDS, cli
from tests import factory as f
from tests.conftest import Backend

LEDGER = str(Path(sys.executable).parent / "ledger")

VIEWS = ["licences", "commitments", "asymmetry", "measures", "end-users", "findings"]


@pytest.fixture
def run(sqlite_backend: Backend) -> Callable[..., Result]:
    env = {**sqlite_backend.env(), "COLUMNS": "100"}

    def invoke(*args: str, input: str | None = None, **more_env: str) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env={**env, **more_env})

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def _output_choices(name: str) -> list[str] | None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    for param in command.params:
        if param.name == "output":
            assert isinstance(param.type, click.Choice)
            return list(param.type.choices)
    return None


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_output_option_uses_the_shared_names(name: str) -> None:
    """table|json|jsonl|csv in that order (plus cloudevents for a stream); the plain
    format is never called `text`, and its default is table."""
    choices = _output_choices(name)
    if choices is None:
        return
    assert "text" not in choices
    assert choices[0] == "table"
    known = [c for c in choices if c in OUTPUT_FORMATS]
    assert known == [c for c in OUTPUT_FORMATS if c in choices]
    assert set(choices) - set(OUTPUT_FORMATS) <= {"cloudevents"}


def test_every_command_but_the_servers_offers_json() -> None:
    """As the README says: -o json for scripts (schema had no -o: `schema -o json` was a
    usage error, and `schema --types` a text table only)."""
    servers = {"serve", "web"}  # long-running: they print URLs, not answers
    for name in COMMANDS:
        if name in servers:
            continue
        command = cli.get_command(click.Context(cli), name)
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                assert "json" in (_choices_of(sub) or []), f"{name} {sub.name}"
        else:
            assert "json" in (_output_choices(name) or []), name


def _choices_of(command: click.Command) -> list[str] | None:
    for param in command.params:
        if param.name == "output" and isinstance(param.type, click.Choice):
            return list(param.type.choices)
    return None


def test_schema_lists_types_as_json(run: Callable[..., Result]) -> None:
    listed = json.loads(ok(run("schema", "--types", "-o", "json")))
    assert listed[0] == {
        "type": "AgreementReached",
        "kind": "agreement",
        "description": "Parties reached an arrangement (e.g. the Busan arrangement of 2025-10-30).",
    }
    retracted = next(t for t in listed if t["type"] == "EventRetracted")
    assert retracted["kind"] is None  # the kind of the retracted event
    refused = run("schema", "--type", "Nope", "-o", "json")
    assert refused.exit_code == 2
    assert json.loads(refused.stderr)["field"] == "--type"
    assert (
        json.loads(ok(run("schema", "-o", "json")))["$id"] == json.loads(ok(run("schema")))["$id"]
    )


def test_views_and_log_offer_every_format() -> None:
    for name in [*VIEWS, "log"]:
        assert _output_choices(name) == list(OUTPUT_FORMATS), name


def test_text_is_a_hidden_alias_of_table(run: Callable[..., Result]) -> None:
    ok(run("append", "-o", "text", json.dumps(f.party("x"))))
    assert ok(run("log", "-o", "text")) == ok(run("log", "-o", "table"))
    assert ok(run("end-users", "--output", "text")) == ok(run("end-users"))
    help_text = ok(run("append", "--help"))
    assert "[table|json]" in help_text and "text" not in help_text.split("--output")[1]


def _world(run: Callable[..., Result]) -> None:
    events = [
        *f.licensed_world(
            items=[
                {"item": "1C902.a", "cap": "1250000", "unit": "kg"},
                {"item": "1C905.a", "cap": "2500.5", "unit": "kg"},
            ]
        ),
        f.usage(quantity="1000"),
        f.pledge("c1"),
    ]
    ok(run("import", "-", input="".join(json.dumps(e) + "\n" for e in [f.agreement(), *events])))


def test_licence_csv_is_tidy(run: Callable[..., Result]) -> None:
    """One row per licence item, quantities as plain numbers (no thousands separators,
    no unit in the cell) that a spreadsheet or pandas reads as numbers."""
    _world(run)
    csv_text = ok(run("licences", "--as-of", "2025-12-20", "-o", "csv"))
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [
        (r["licence_id"], r["item"], r["unit"], r["cap"], r["used"], r["remaining"]) for r in rows
    ] == [
        ("GL-1", "1C902.a", "kg", "1250000", "1000", "1249000"),
        ("GL-1", "1C905.a", "kg", "2500.5", "0", "2500.5"),
    ]
    for r in rows:
        for column in ("cap", "used", "remaining"):
            float(r[column])  # a plain number
    assert rows[0]["end_users"] == "buyer" and rows[0]["status"] == "active"


@pytest.mark.parametrize("view", VIEWS)
def test_views_print_jsonl_rows(run: Callable[..., Result], view: str) -> None:
    """-o jsonl: one object per line, the rows -o json wraps in its document."""
    _world(run)
    document = json.loads(ok(run(view, "-o", "json")))
    lines = [json.loads(line) for line in ok(run(view, "-o", "jsonl")).splitlines()]
    key = {
        "licences": "licences",
        "commitments": "commitments",
        "asymmetry": "parties",
        "measures": "clauses",
        "end-users": "parties",
        "findings": "findings",
    }[view]
    # as_of/known_at default to now, read at each run: compare the rows only.
    assert lines == document[key]
    if view == "asymmetry":
        pairs = [json.loads(x) for x in ok(run(view, "--pairs", "-o", "jsonl")).splitlines()]
        assert pairs == document["pairs"]


def test_log_csv_has_one_row_per_event(run: Callable[..., Result]) -> None:
    _world(run)
    events = json.loads(ok(run("log", "-o", "json", "--order", "recorded")))
    rows = list(csv.DictReader(io.StringIO(ok(run("log", "-o", "csv", "--order", "recorded")))))
    assert [int(r["position"]) for r in rows] == [e["position"] for e in events]
    assert [r["event_id"] for r in rows] == [e["event"]["event_id"] for e in events]
    assert [r["type"] for r in rows] == [e["event"]["type"] for e in events]
    assert rows[0]["entity_kind"] == "agreement" and rows[0]["retracted"] == "false"
    assert rows[0]["recorded_at"] == events[0]["event"]["recorded_at"]
    limited = list(csv.DictReader(io.StringIO(ok(run("log", "-o", "csv", "--limit", "2")))))
    assert len(limited) == 2


def test_show_jsonl_is_the_event_as_log_exports_it(run: Callable[..., Result]) -> None:
    _world(run)
    first = ok(run("log", "-o", "jsonl", "--order", "recorded", "--limit", "1"))
    event_id = json.loads(first)["event_id"]
    assert ok(run("show", event_id, "-o", "jsonl")) == first


def test_demo_honours_the_global_home(tmp_path: Path) -> None:
    """`ledger --home DIR demo` keeps the demo's ledger in DIR, as `demo --home DIR` does;
    LEDGER_HOME from the environment is still ignored (it names the user's ledger)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["HOME"] = str(tmp_path / "user")
    home = tmp_path / "kept"
    proc = subprocess.run(
        [LEDGER, "--home", str(home), "demo", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["home"] == str(home)
    assert (home / "ledger.db").exists()
    mine = tmp_path / "mine"
    proc = subprocess.run(
        [LEDGER, "demo", "-o", "json"],
        env={**env, "LEDGER_HOME": str(mine)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not mine.exists()


# --- colour -------------------------------------------------------------------------------

ESC = "\x1b["


def _stderr_of(args: list[str], env: dict[str, str], *, tty: bool) -> str:
    """The command's stderr, written to a pseudo-terminal when ``tty``."""
    import os
    import pty

    if not tty:
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        return proc.stderr
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the follower side closed: the process is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=60)
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    ("options", "no_color", "tty", "coloured"),
    [
        ([], None, True, True),  # auto on a terminal
        ([], None, False, False),  # auto into a pipe or file
        ([], "1", True, False),  # NO_COLOR
        ([], "", True, True),  # NO_COLOR set but empty: ignored, as no-color.org says
        (["--color", "never"], None, True, False),
        (["--color", "always"], None, False, True),
        (["--color", "always"], "1", False, True),  # an explicit flag beats NO_COLOR
        (["--colour", "auto"], None, False, False),
    ],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(
    tmp_path: Path, options: list[str], no_color: str | None, tty: bool, coloured: bool
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    if no_color is not None:
        env["NO_COLOR"] = no_color
    missing = str(tmp_path / "no-ledger-here")
    err = _stderr_of([LEDGER, *options, "--home", missing, "log"], env, tty=tty)
    assert "no ledger at" in err
    assert (ESC in err) is coloured, repr(err)


# --- import --dry-run ---------------------------------------------------------------------


def _count(run: Callable[..., Result]) -> int:
    result = run("log", "-o", "jsonl", "--include-retracted")
    return len(result.output.splitlines()) if result.exit_code == 0 else 0


def test_import_dry_run_checks_everything_and_appends_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    env = backend.env()

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    import uuid

    world = [{**e, "event_id": str(uuid.uuid4())} for e in [f.agreement(), *f.licensed_world()]]
    world.append(f.usage())
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(e) + "\n" for e in world))
    checked = run("import", "--dry-run", str(batch))
    assert checked.exit_code == 0, checked.output
    assert "6 would be appended. Nothing was appended." in checked.output
    if backend.name == "sqlite":  # no ledger created by a dry run
        assert not Path(env["LEDGER_HOME"]).exists()
    assert _count(run) == 0
    ok(run("import", str(batch)))
    assert _count(run) == 6
    # A rule broken on the last line (a second shipment beyond the cap), checked against
    # what is stored: exit 1, the line named, nothing appended.
    more = tmp_path / "more.jsonl"
    more.write_text(
        json.dumps(f.usage(shipment="S-2", quantity="100"))
        + "\n"
        + json.dumps(f.usage(shipment="S-3", quantity="5000"))
        + "\n"
    )
    refused = run("import", "--dry-run", str(more))
    assert refused.exit_code == 1 and "line 2" in refused.output, refused.output
    assert "Nothing was appended." in refused.output
    body = json.loads(ok(run("import", "--dry-run", "-o", "json", str(batch))))
    # (The usage has no event_id: a new one, but the same shipment id: a duplicate too.)
    assert body["dry_run"] is True and body["would_append"] == 0 and body["duplicates"] == 6
    more.write_text(json.dumps(f.usage(shipment="S-2", quantity="100")) + "\n")
    body = json.loads(ok(run("import", "--dry-run", "-o", "json", str(more))))
    assert body["would_append"] == 1 and body["appended"] == 0
    assert [e["status"] for e in body["events"]] == ["valid"]
    assert _count(run) == 6


# --- shell completion ---------------------------------------------------------------------


def _complete(env: dict[str, str], words: str) -> list[str]:
    """What `ledger` offers for the last word of ``words`` (click's bash protocol, the one
    the generated completion script speaks)."""
    import os

    parts = words.split(" ")
    proc = subprocess.run(
        [LEDGER],
        env={
            **os.environ,
            **env,
            "_LEDGER_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line]


def test_completion_offers_types_kinds_ids_and_filters(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    env = sqlite_backend.env()
    # No ledger yet: ids complete to nothing, and completing creates no ledger.
    assert _complete(env, "ledger licences --licence G") == []
    assert not Path(env["LEDGER_HOME"]).exists()
    batch = [*f.licensed_world("GL-1"), f.licence("GL-2"), f.licence("XL-9"), f.measure()]
    result = CliRunner().invoke(
        cli, ["import", "-"], input="".join(json.dumps(e) + "\n" for e in batch), env=env
    )
    assert result.exit_code == 0, result.output
    assert _complete(env, "ledger log --type LicenceS") == [
        "LicenceSuspended",
        "LicenceSurrendered",
    ]
    assert _complete(env, "ledger schema --type AgreementR") == ["AgreementReached"]
    assert _complete(env, "ledger log --kind li") == ["licence"]
    assert _complete(env, "ledger log --entity li") == ["licence:"]
    assert _complete(env, "ledger log --entity licence:G") == ["licence:GL-1", "licence:GL-2"]
    assert _complete(env, "ledger licences --licence G") == ["GL-1", "GL-2"]
    assert _complete(env, "ledger licences --exporter jl") == ["jl-mag"]
    assert _complete(env, "ledger end-users --party b") == ["buyer"]
    assert _complete(env, "ledger measures --measure cn") == ["cn-ann-46"]
    assert _complete(env, "ledger check --end-user bu") == ["buyer"]
    assert _complete(env, "ledger findings --kind late") == ["late-usage", "late-implementation"]
    assert _complete(env, "ledger watch -f licence:X") == ["licence:XL-9"]
    assert _complete(env, "ledger watch --filter LicenceGranted@licence:GL-2") == [
        "LicenceGranted@licence:GL-2"
    ]
    offered = _complete(env, "ledger watch -f me")
    assert offered[:2] == ["measure", "measure:"]
    assert "MeasurePublished" not in offered  # types start with a capital: "Me" offers them
    assert "MeasurePublished" in _complete(env, "ledger watch -f Me")
    # The global --home on the line being completed names the ledger.
    other = {"LEDGER_HOME": str(tmp_path / "elsewhere")}
    assert _complete(other, "ledger licences --licence G") == []
    assert _complete(other, f"ledger --home {env['LEDGER_HOME']} licences --licence G") == [
        "GL-1",
        "GL-2",
    ]


# --- operations: status and health --------------------------------------------------------


def test_status_shows_the_projector_beside_the_relay(run: Callable[..., Result]) -> None:
    _world(run)
    before = json.loads(run("status", "-o", "json").output)  # exit 1: no NATS configured
    head = before["store"]["head"]
    none = {"malformed": 0, "refused": 0}  # stream messages the NATS projector did not apply
    assert before["projector"] == {
        "tracked_position": 0,
        "lag": head,
        "rejected": none,
        "purged": 0,  # times the stream's head was purged of events it needed
    }
    ok(run("project", "--once"))
    after = run("status")
    assert f"projector  views at position {head}, lag 0" in after.output
    assert json.loads(run("status", "-o", "json").output)["projector"] == {
        "tracked_position": head,
        "lag": 0,
        "rejected": none,
        "purged": 0,
    }


def test_health_exit_code_serves_as_a_health_check(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    missing = CliRunner().invoke(cli, ["health"], env={"LEDGER_HOME": str(tmp_path / "none")})
    assert missing.exit_code == 1 and missing.output.startswith("FAIL  store"), missing.output
    _world(run)
    healthy = run("health")
    assert healthy.exit_code == 0 and healthy.output.startswith("ok    store"), healthy.output
    # Nothing relayed or projected yet: behind by every event.
    lagging = run("health", "--max-lag", "2")
    assert lagging.exit_code == 1, lagging.output
    assert "FAIL  relay" in lagging.output and "FAIL  projector" in lagging.output
    ok(run("project", "--once"))
    body = json.loads(run("health", "--check", "projector", "--max-lag", "0", "-o", "json").output)
    assert body["healthy"] is True and [c["check"] for c in body["checks"]] == ["projector"]
    nats = run("health", "--check", "nats", LEDGER_NATS_URL="nats://127.0.0.1:1")
    assert nats.exit_code == 1 and "FAIL  nats" in nats.output and "unreachable" in nats.output


@pytest.mark.parametrize(
    "args",
    [
        ["log", "--entity", ""],
        ["log", "--party", " "],
        ["licences", "--exporter", ""],
        ["licences", "--licence", ""],
        ["licences", "--end-user", ""],
        ["commitments", "--agreement", ""],
        ["commitments", "--party", ""],
        ["asymmetry", "--agreement", ""],
        ["measures", "--measure", ""],
        ["end-users", "--party", "x", "--party", ""],
    ],
)
def test_an_empty_filter_is_a_usage_error(run: Callable[..., Result], args: list[str]) -> None:
    """`--entity "$ID"` with ID unset listed every event; the views' empty filters matched
    nothing; a script's empty variable went unseen either way."""
    ok(run("append", json.dumps(f.party("x"))))
    refused = run(*args, "-o", "json")
    assert refused.exit_code == 2, refused.output
    error = json.loads(refused.stderr)
    assert error["field"] == args[-2] and error["message"].endswith("must not be empty")


def test_an_entity_kind_without_an_id_is_a_usage_error(run: Callable[..., Result]) -> None:
    ok(run("append", json.dumps(f.party("x"))))
    refused = run("log", "--entity", "party:")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == "Error: --entity: 'party:' names no id: give party:ID"
    assert "party:x" in ok(run("log", "--entity", "party:x"))
