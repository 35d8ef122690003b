"""The CLI end to end: `ledger append/import/log/retract/show/schema` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from tests import factory as f
from tests.conftest import Backend

LEDGER = str(Path(sys.executable).parent / "ledger")


@pytest.fixture
def run(backend: Backend) -> Callable[..., Result]:
    """Invoke the CLI in process against an isolated ledger on the backend."""
    env = backend.env()

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env)

    return invoke


@pytest.fixture
def run_sqlite(sqlite_backend: Backend) -> Callable[..., Result]:
    env = sqlite_backend.env()

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env)

    return invoke


def jsonl(events: list[dict]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_append_from_argument_and_stdin(run: Callable[..., Result]) -> None:
    done = run("append", json.dumps(f.exporter()))
    assert done.exit_code == 0, done.output
    assert "Appended PartyRegistered on party:jl-mag at position 1" in done.output
    piped = run("append", "--output", "json", input=json.dumps(f.party("buyer")))
    assert piped.exit_code == 0, piped.output
    body = json.loads(piped.output)
    assert body["appended"] == 1 and body["events"][0]["position"] == 2


def test_append_errors_and_exit_codes(run_sqlite: Callable[..., Result]) -> None:
    malformed = run_sqlite("append", '{"type": "PartyRegistered",')
    assert malformed.exit_code == 2
    assert "malformed JSON" in malformed.output
    assert "Nothing was appended." in malformed.output
    wrong_type = run_sqlite("append", json.dumps({**f.party("x"), "roles": "exporter"}))
    assert wrong_type.exit_code == 2
    assert "roles: must be an array, not a string" in wrong_type.output
    unknown_field = run_sqlite("append", json.dumps({**f.party("x"), "colour": "red"}))
    assert unknown_field.exit_code == 2 and "colour: unknown field" in unknown_field.output
    missing = run_sqlite(
        "append", json.dumps({k: v for k, v in f.party("x").items() if k != "country"})
    )
    assert missing.exit_code == 2 and "country: required field is missing" in missing.output
    naive = run_sqlite("append", json.dumps(f.party("x", effective_at="2025-01-01T10:00:00")))
    assert naive.exit_code == 2 and "add 'Z' or an offset" in naive.output
    recorded = run_sqlite(
        "append", json.dumps({**f.party("x"), "recorded_at": "2025-01-01T00:00:00Z"})
    )
    assert (
        recorded.exit_code == 2
        and "recorded_at: the recorded time is set by the ledger" in recorded.output
    )
    rule = run_sqlite("append", json.dumps(f.usage()))
    assert rule.exit_code == 1
    assert "licence 'GL-1' was never granted [rule: unknown-reference]" in rule.output
    as_json = run_sqlite("append", "-o", "json", json.dumps(f.usage()))
    assert as_json.exit_code == 1
    error = json.loads(as_json.stderr if hasattr(as_json, "stderr") else as_json.output)
    assert error["rule"] == "unknown-reference" and error["field"] == "entity_id"
    # Nothing appended, and in this new home nothing created either.
    nothing = run_sqlite("log", "-o", "json")
    assert nothing.exit_code == 2 and "no ledger at" in nothing.output


def test_import_summary_and_reimport(run: Callable[..., Result], tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [
        {**e, "event_id": f"00000000-0000-4000-8000-{i:012d}"}
        for i, e in enumerate([*f.licensed_world(), f.usage()])
    ]
    path.write_text(jsonl(events) + "\n")  # a trailing blank line is fine
    first = run("import", str(path))
    assert first.exit_code == 0, first.output
    assert "Appended 5 event(s)" in first.output and "positions 1-5" in first.output
    again = run("import", str(path), "--output", "json")
    assert again.exit_code == 0, again.output
    body = json.loads(again.output)
    assert body["appended"] == 0 and body["duplicates"] == 5
    assert [e["position"] for e in body["events"]] == [1, 2, 3, 4, 5]


def test_bad_last_line_of_ten_thousand_appends_nothing(backend: Backend, tmp_path: Path) -> None:
    """All or nothing, checked with the real command in a subprocess, on both backends."""
    env = {**os.environ, **backend.env()}
    good = [f.exporter()] + [f.party(f"p{i}") for i in range(9_999 - 1)]
    cases = {
        "malformed": ('{"type": "PartyRegistered", "entity_id": ', 2, "malformed JSON"),
        "rule": (json.dumps(f.party("p5")), 1, "[rule: duplicate-entity]"),
        "deep": ('{"a":' * 3000 + "1" + "}" * 3000, 2, "malformed JSON: nested too deeply"),
    }
    for name, (last, code, text) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(jsonl(good) + last + "\n")
        proc = subprocess.run(
            [LEDGER, "import", str(path)], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == code, proc.stderr
        assert "line 10000" in proc.stderr and text in proc.stderr, proc.stderr
        assert "Nothing was appended." in proc.stderr
        log = subprocess.run(
            [LEDGER, "log", "-o", "jsonl"], env=env, capture_output=True, text=True, timeout=60
        )
        if backend.name == "sqlite":  # a new home: a first import that fails creates nothing
            assert log.returncode == 2 and "no ledger at" in log.stderr, log.stderr
        else:
            assert log.returncode == 0 and log.stdout == ""


def test_backfill(run_sqlite: Callable[..., Result], tmp_path: Path) -> None:
    def write(name: str, times: list[str]) -> str:
        path = tmp_path / name
        path.write_text(
            jsonl([{**f.party(f"{name}-{i}"), "recorded_at": t} for i, t in enumerate(times)])
        )
        return str(path)

    refused = run_sqlite("import", write("plain.jsonl", ["2025-01-01T00:00:00Z"]))
    assert refused.exit_code == 2 and "--backfill" in refused.output
    decreasing = run_sqlite(
        "import", "--backfill", write("dec.jsonl", ["2025-02-01T00:00:00Z", "2025-01-01T00:00:00Z"])
    )
    assert decreasing.exit_code == 1
    assert "line 2: recorded_at:" in decreasing.output
    assert "[rule: backfill-recorded-decreases]" in decreasing.output
    future = run_sqlite("import", "--backfill", write("future.jsonl", ["2999-01-01T00:00:00Z"]))
    assert future.exit_code == 1 and "backfill-recorded-in-future" in future.output
    ok = run_sqlite(
        "import",
        "--backfill",
        write(
            "ok.jsonl",
            ["2025-01-01T12:00:00Z", "2025-01-01T12:00:00Z", "2025-03-01T09:30:00+08:00"],
        ),
    )
    assert ok.exit_code == 0, ok.output
    log = json.loads(run_sqlite("log", "-o", "json", "--order", "recorded").output)
    assert [e["event"]["recorded_at"] for e in log] == [
        "2025-01-01T12:00:00Z",
        "2025-01-01T12:00:00Z",
        "2025-03-01T09:30:00+08:00",
    ]
    earlier = run_sqlite("import", "--backfill", write("early.jsonl", ["2025-02-01T00:00:00Z"]))
    assert earlier.exit_code == 1 and "backfill-before-ledger" in earlier.output
    known = json.loads(run_sqlite("log", "-o", "json", "--known-at", "2025-01-31").output)
    assert [e["event"]["entity_id"] for e in known] == ["ok.jsonl-0", "ok.jsonl-1"]


def test_log_retract_show(run: Callable[..., Result]) -> None:
    appended = json.loads(run("append", "-o", "json", json.dumps(f.party("x"))).output)
    event_id = appended["events"][0]["event_id"]
    table = run("log")
    assert table.exit_code == 0 and "party:x" in table.output and "PartyRegistered" in table.output
    assert all(len(line) <= 100 for line in table.output.splitlines())
    retracted = run("retract", event_id, "--reason", "registered twice by mistake")
    assert retracted.exit_code == 0, retracted.output
    assert f"Retracted {event_id} (party:x)" in retracted.output
    after = run("log").output
    assert "EventRetracted" in after and "PartyRegistered" not in after
    hidden = json.loads(run("log", "-o", "json", "--type", "PartyRegistered").output)
    assert hidden == []
    shown = json.loads(
        run("log", "-o", "json", "--type", "PartyRegistered", "--include-retracted").output
    )
    assert shown[0]["retracted"] is True
    show = json.loads(run("show", event_id, "-o", "json").output)
    assert show["retracted"] is True and show["event"]["entity_id"] == "x"
    assert run("show", "not-a-uuid").exit_code == 2
    bad_time = run("log", "--as-of", "yesterday-ish")
    assert bad_time.exit_code == 2 and "not an ISO-8601 time" in bad_time.output
    jsonl_out = run("log", "-o", "jsonl", "--include-retracted").output.splitlines()
    assert [json.loads(line)["type"] for line in jsonl_out] == ["PartyRegistered", "EventRetracted"]


def _recorded(run: Callable[..., Result]) -> str:
    """The id of a freshly appended event, to retract."""
    appended = run("append", "-o", "json", json.dumps(f.party(f"p{uuid.uuid4().hex[:6]}")))
    return str(json.loads(appended.output)["events"][0]["event_id"])


def test_retract_publisher_needs_source(run_sqlite: Callable[..., Result]) -> None:
    """--publisher is a detail of --source: alone it was dropped without a word."""
    event_id = _recorded(run_sqlite)
    alone = run_sqlite("retract", event_id, "--reason", "typo", "--publisher", "BIS")
    assert alone.exit_code == 2, alone.output
    assert alone.stderr.splitlines() == [
        "Error: --publisher: needs --source (the reference it published)",
        "Nothing was appended.",
    ]
    as_json = run_sqlite(
        "retract", event_id, "--reason", "typo", "--publisher", "BIS", "-o", "json"
    )
    assert as_json.exit_code == 2 and json.loads(as_json.stderr)["field"] == "--publisher"
    assert "EventRetracted" not in run_sqlite("log", "-o", "jsonl").output
    done = run_sqlite(
        "retract", event_id, "--reason", "typo", "--source", "https://x.org/n", "--publisher", "BIS"
    )
    assert done.exit_code == 0, done.output
    [retraction] = json.loads(run_sqlite("log", "-o", "json", "--type", "EventRetracted").output)
    assert retraction["event"]["sources"][0]["publisher"] == "BIS"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (["--reason", "   "], "--reason"),
        (["--reason", "\t\n"], "--reason"),
        (["--reason", "typo", "--source", " "], "--source"),
        (["--reason", "typo", "--source", ""], "--source"),  # was: no source, silently
        (["--reason", "typo", "--source", "https://x.org/n", "--publisher", "  "], "--publisher"),
    ],
)
def test_retract_refuses_blank_text(
    run_sqlite: Callable[..., Result], options: list[str], field: str
) -> None:
    event_id = _recorded(run_sqlite)
    blank = run_sqlite("retract", event_id, *options)
    assert blank.exit_code == 2, blank.output
    assert blank.stderr.splitlines() == [
        f"Error: {field}: must not be blank",
        "Nothing was appended.",
    ]
    as_json = json.loads(run_sqlite("retract", event_id, *options, "-o", "json").stderr)
    assert as_json == {
        "error": "InputError",
        "message": "must not be blank",
        "field": field,
        "line": None,
    }
    assert "EventRetracted" not in run_sqlite("log", "-o", "jsonl").output


def test_schema(run_sqlite: Callable[..., Result]) -> None:
    body = json.loads(run_sqlite("schema").output)
    assert body["$id"] == "urn:export-control-ledger:schema:event"
    assert len(body["anyOf"]) == 28  # 26 + ClaimReported, ClaimResolved
    one = json.loads(run_sqlite("schema", "--type", "LicenceGranted").output)
    assert "valid_until" in json.dumps(one)
    listing = run_sqlite("schema", "--types").output.splitlines()
    assert len(listing) == 28 and listing[0].startswith("AgreementReached")


@pytest.mark.parametrize(
    ("options", "text"),
    [
        (["--type", "LicenceGranted", "--types"], "--types: choose one of --type, --types"),
        (["--types", "--asyncapi"], "--asyncapi: choose one of --types, --asyncapi"),
        (
            ["--asyncapi", "--type", "LicenceGranted"],
            "--asyncapi: choose one of --type, --asyncapi",
        ),
        (["--type", ""], "--type: unknown event type ''"),  # printed every type's schema
    ],
)
def test_schema_options_that_cannot_be_combined(
    run_sqlite: Callable[..., Result], options: list[str], text: str
) -> None:
    """--type, --types and --asyncapi each print one document; a combination printed one
    of them and ignored the rest."""
    result = run_sqlite("schema", *options)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr == f"Error: {text}\n"


@pytest.mark.parametrize("command", ["append", "import", "log", "retract", "show", "schema"])
def test_every_command_has_help_with_examples(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_cli_starts_fast_without_heavy_imports() -> None:
    """`ledger --help` must not import the store, the domain or database drivers."""
    code = (
        "import sys; from cli.main import cli; "
        "from click.testing import CliRunner; CliRunner().invoke(cli, ['--help']); "
        "heavy = [m for m in ('eventsourcing', 'psycopg', 'nats', 'ledger.app') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_export_and_backfill_reimport_reproduce_the_record(tmp_path: Path) -> None:
    """`log --order recorded --include-retracted -o jsonl` + `import --backfill` is a
    lossless copy: same events, times, positions; retractions included."""
    from ledger.scenario import scenario_path

    first = {"LEDGER_HOME": str(tmp_path / "a")}
    second = {"LEDGER_HOME": str(tmp_path / "b")}
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["import", "--backfill", str(scenario_path())], env=first).exit_code == 0
    )
    export = ["log", "--order", "recorded", "--include-retracted", "-o", "jsonl"]
    dump = runner.invoke(cli, export, env=first).output
    path = tmp_path / "record.jsonl"
    path.write_text(dump)
    assert "EventRetracted" in dump
    copied = runner.invoke(cli, ["import", "--backfill", str(path)], env=second)
    assert copied.exit_code == 0, copied.output
    assert runner.invoke(cli, export, env=second).output == dump
    positions = ["log", "-o", "json", "--include-retracted"]
    assert [e["position"] for e in json.loads(runner.invoke(cli, positions, env=first).output)] == [
        e["position"] for e in json.loads(runner.invoke(cli, positions, env=second).output)
    ]


BAD_APPENDS = [
    # (case, event JSON bytes, exit code, text in the one-line error)
    (
        "impossible date",
        {**f.party("x"), "effective_at": "2025-13-45"},
        2,
        "effective_at: '2025-13-45' is not a date",
    ),
    (
        "end past the calendar",
        f.licence(valid_until="9999-12-31"),
        2,
        "valid_until: '9999-12-31' is the last representable day",
    ),
    (
        "date with a newline",
        {**f.party("x"), "effective_at": "2025-01-01\n"},
        2,
        "effective_at: Invalid RFC3339",
    ),
    (
        "control character in an id",
        f.party("b\u0000x"),
        2,
        "entity_id: contains the control character U+0000",
    ),
    ("NUL in text", f.party("x", name="X\u0000"), 2, "name: contains the control character U+0000"),
    ("lower-case country", f.party("x", country="de"), 2, "country: must be a two-letter"),
    ("a batch given to append", [f.party("x")], 2, "see `ledger import`"),
    (
        "empty event id",
        {**f.party("x"), "event_id": ""},
        2,
        "event_id: '' is not a UUID (e.g. \"0190f3a1-",
    ),
]


@pytest.mark.parametrize(
    ("event", "code", "text"), [pytest.param(*c[1:], id=c[0]) for c in BAD_APPENDS]
)
def test_bad_input_is_one_clear_line_and_appends_nothing(
    run_sqlite: Callable[..., Result], event: object, code: int, text: str
) -> None:
    result = run_sqlite("append", json.dumps(event))
    assert result.exit_code == code, result.output
    first, *rest = result.stderr.splitlines()
    assert text in first and first.startswith("Error: "), first
    assert rest == ["Nothing was appended."]
    nothing = run_sqlite("log", "-o", "jsonl")  # a new home: nothing created either
    assert nothing.exit_code == 2 and "no ledger at" in nothing.output


def test_log_limit_stops_reading_cleanly(sqlite_backend: Backend) -> None:
    """--limit below the number of matches: the rest of the query is closed with the
    store, not left to complain on stderr when the process exits."""
    env = {**os.environ, **sqlite_backend.env()}
    events = jsonl([f.exporter()] + [f.party(f"p{i}") for i in range(5)])
    assert subprocess.run([LEDGER, "import", "-"], input=events, env=env, text=True).returncode == 0
    proc = subprocess.run(
        [LEDGER, "log", "--limit", "2", "-o", "jsonl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert len(proc.stdout.splitlines()) == 2


def test_bytes_that_are_not_utf8(sqlite_backend: Backend, tmp_path: Path) -> None:
    env = {**os.environ, **sqlite_backend.env()}
    piped = subprocess.run(
        [LEDGER, "append"], input=b'{"type": "caf\xe9"}', env=env, capture_output=True, timeout=60
    )
    assert piped.returncode == 2 and b"not valid UTF-8" in piped.stderr
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"type": "PartyRegistered", "entity_id": "caf\xe9"}\n')
    imported = subprocess.run(
        [LEDGER, "import", str(path)], env=env, capture_output=True, timeout=60
    )
    assert (
        imported.returncode == 2
        and b"line 1: malformed JSON: the text is not valid UTF-8" in imported.stderr
    )


BOM = b"\xef\xbb\xbf"


def test_a_byte_order_mark_opening_the_input_is_dropped(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    """Editors on Windows save UTF-8 with a BOM: at the very start of an import file or of
    append's stdin it is not part of the JSON (it was 'invalid character (byte 0)')."""
    env = {**os.environ, **sqlite_backend.env()}

    def ledger(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([LEDGER, *args], input=data, env=env, capture_output=True, timeout=60)

    piped = ledger("append", data=BOM + json.dumps(f.party("a")).encode())
    assert piped.returncode == 0, piped.stderr
    path = tmp_path / "bom.jsonl"
    path.write_bytes(BOM + jsonl([f.party("b"), f.party("c")]).encode())
    imported = ledger("import", str(path))
    assert imported.returncode == 0, imported.stderr
    assert ledger("import", "-", data=BOM + jsonl([f.party("d")]).encode()).returncode == 0
    stored = ledger("log", "-o", "jsonl").stdout.decode().splitlines()
    assert [json.loads(line)["entity_id"] for line in stored] == ["a", "b", "c", "d"]

    # Anywhere else it is still malformed, and said so.
    later = tmp_path / "later.jsonl"
    later.write_bytes(jsonl([f.party("e")]).encode() + BOM + jsonl([f.party("f")]).encode())
    refused = ledger("import", str(later))
    assert refused.returncode == 2
    assert b"line 2: malformed JSON: a byte-order mark (BOM) is allowed only at the start" in (
        refused.stderr
    )
    after_space = ledger("append", data=b" " + BOM + json.dumps(f.party("g")).encode())
    assert after_space.returncode == 2 and b"byte-order mark" in after_space.stderr
    twice = ledger("append", data=BOM + BOM + json.dumps(f.party("h")).encode())
    assert twice.returncode == 2 and b"byte-order mark" in twice.stderr
    assert len(ledger("log", "-o", "jsonl").stdout.splitlines()) == 4


def test_files_homes_and_references_that_do_not_exist(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["import", str(tmp_path / "nope.jsonl")], env={"LEDGER_HOME": str(tmp_path / "h")}
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "afile").write_text("")
    bad_home = runner.invoke(
        cli,
        ["append", json.dumps(f.party("x"))],
        env={"LEDGER_HOME": str(tmp_path / "afile" / "sub")},
    )
    assert bad_home.exit_code == 2
    assert "cannot use" in bad_home.stderr and "Not a directory" in bad_home.stderr
    # Commands that only read do not create a ledger where none is (a mistyped --home).
    for args in (["log"], ["licences"], ["findings"], ["status"], ["show", str(uuid.uuid4())]):
        typo = runner.invoke(cli, args, env={"LEDGER_HOME": str(tmp_path / "typo")})
        assert typo.exit_code == 2, (args, typo.output)
        assert typo.stderr.startswith(f"Error: no ledger at {tmp_path / 'typo' / 'ledger.db'}")
    assert not (tmp_path / "typo").exists()
    unknown = runner.invoke(
        cli,
        ["retract", "01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e", "--reason", "x"],
        env={"LEDGER_HOME": str(tmp_path / "h")},
    )
    assert unknown.exit_code == 1 and "[rule: unknown-reference]" in unknown.stderr


def test_a_relative_home_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}}
    done = subprocess.run(
        [LEDGER, "--home", "./rel", "append", json.dumps(f.party("x"))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rel" / "ledger.db").exists()
    log = subprocess.run(
        [LEDGER, "--home", "./rel", "log", "-o", "jsonl"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"entity_id":"x"' in log.stdout


@pytest.mark.parametrize(
    ("args", "field", "text"),
    [
        (["log", "-o", "json", "--limit", "abc"], "--limit", "'abc' is not a valid integer"),
        (["log", "--output=jsonl", "--nope"], "--nope", "No such option '--nope'"),
        (["licences", "-ojson", "--as-of", "nonsense"], "--as-of", "is not an ISO-8601 time"),
        (["licences", "-o", "json", "--status", "bogus"], "--status", "'bogus' is not one of"),
    ],
)
def test_usage_errors_are_json_when_json_is_asked_for(
    run_sqlite: Callable[..., Result], args: list[str], field: str, text: str
) -> None:
    """A script asking for JSON gets click's own errors (bad option values, unknown
    options) as the ledger's JSON errors too; they were plain text."""
    result = run_sqlite(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert error["error"] == "UsageError" and error["field"] == field
    assert text in error["message"]


def test_usage_errors_stay_text_without_json_and_json_runs_still_work(
    run_sqlite: Callable[..., Result],
) -> None:
    text = run_sqlite("log", "--limit", "abc")
    assert text.exit_code == 2 and "Error: Invalid value for '--limit'" in text.stderr
    assert run_sqlite("append", json.dumps(f.party("x"))).exit_code == 0
    ok = run_sqlite("log", "-o", "json")
    assert ok.exit_code == 0 and len(json.loads(ok.stdout)) == 1
    assert run_sqlite("log", "-o", "json", "--help").exit_code == 0


def test_a_first_write_that_fails_leaves_no_ledger_behind(tmp_path: Path) -> None:
    """A failed first append, import, retract into a new home (malformed input, a rule,
    a bad line at the end of a file) creates nothing, not even the directories: the next
    command finds no ledger ("no ledger at"), and the first write that succeeds makes
    the ledger and its key, with the LEDGER_ORIGIN given then."""
    from tests.nats_fixtures import run_ledger

    home = tmp_path / "new" / "home"
    env = {"LEDGER_HOME": str(home)}
    party = json.dumps(f.party("a"))
    malformed = run_ledger(env, "append", '{"type": "LicenceGranted"}')
    assert malformed.returncode == 2, malformed.stderr
    assert "Nothing was appended" in malformed.stderr
    rule = run_ledger(env, "append", json.dumps(f.licence()))
    assert rule.returncode == 1 and "[rule: unknown-reference]" in rule.stderr
    retract = run_ledger(env, "retract", str(uuid.uuid4()), "--reason", "x")
    assert retract.returncode == 1 and "[rule: unknown-reference]" in retract.stderr
    batch = tmp_path / "batch.jsonl"
    batch.write_text(f"{party}\n{json.dumps(f.party('b'))}\n{{not json\n")
    bad_line = run_ledger(env, "import", str(batch))
    assert bad_line.returncode == 2 and "line 3" in bad_line.stderr
    assert not (tmp_path / "new").exists()
    nothing = run_ledger(env, "log")
    assert nothing.returncode == 2 and nothing.stderr.startswith("Error: no ledger at")

    # A home directory the user made stays, empty.
    home.mkdir(parents=True)
    assert run_ledger(env, "append", json.dumps(f.licence())).returncode == 1
    assert home.exists() and list(home.iterdir()) == []

    # The private directory of a first write killed midway goes with the next one.
    (home / ".ledger.db-new-999999999-abc").mkdir()
    batch.write_text(f"{party}\n{json.dumps(f.party('b'))}\n")
    imported = run_ledger({**env, "LEDGER_ORIGIN": "example.org/edges"}, "import", str(batch))
    assert imported.returncode == 0, imported.stderr
    assert sorted(p.name for p in home.iterdir()) == [
        "ledger.db",
        "ledger.db-commit",
        "signing.key",
    ]
    verified = run_ledger(env, "verify")
    assert verified.returncode == 0, verified.stderr
    assert "2 events match" in verified.stdout and "example.org/edges+" in verified.stdout


def test_a_first_write_gives_way_to_a_ledger_made_meanwhile(tmp_path: Path) -> None:
    """A ledger made in the same new home meanwhile by something other than a first
    write (the library): it is the one there; the first write fails, nothing appended,
    and replaces nothing."""
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.errors import StoreError
    from ledger.store.home import first_write
    from tests.nats_fixtures import run_ledger

    home = tmp_path / "home"
    env = {"LEDGER_HOME": str(home)}
    with (
        pytest.raises(StoreError, match="another process created"),
        first_write(Settings.from_env(env)) as private,
    ):
        app = Ledger(private)
        try:
            app.append_objects([f.party("mine")])
        finally:
            app.close()
        theirs = Ledger(Settings.from_env(env))
        try:
            theirs.append_objects([f.party("theirs")])
        finally:
            theirs.close()
    log = run_ledger(env, "log", "-o", "jsonl")
    assert [json.loads(line)["entity_id"] for line in log.stdout.splitlines()] == ["theirs"]
    assert run_ledger(env, "verify").returncode == 0
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []


def test_first_writes_to_one_new_home_take_turns(tmp_path: Path) -> None:
    """A first `ledger append` while another first write into the same new home is under
    way waits for it, then appends to the ledger it made: both events are there (it
    used to make its own ledger, so one of the two failed)."""
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.store.home import first_write
    from tests.nats_fixtures import run_ledger

    home = tmp_path / "home"
    env = {"LEDGER_HOME": str(home)}
    with first_write(Settings.from_env(env)) as private:
        app = Ledger(private)
        try:
            app.append_objects([f.party("first")])
        finally:
            app.close()
        other = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli.main", "append", json.dumps(f.party("second"))],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # It waits for this first write's lock (without the lock it made its own
        # ledger and finished, and this one's link then failed).
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(timeout=10)
    _, err = other.communicate(timeout=120)
    assert other.returncode == 0, err
    log = run_ledger(env, "log", "-o", "jsonl")
    assert [json.loads(line)["entity_id"] for line in log.stdout.splitlines()] == [
        "first",
        "second",
    ]
    assert run_ledger(env, "verify").returncode == 0
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []
