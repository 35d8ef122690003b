"""Hostile input through the CLI's writing and deciding commands (issue 16 part B): each
case is one clear line on stderr, exit 1 or 2, no traceback, nothing appended."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from tests import factory as f
from tests.conftest import Backend

Run = Callable[..., Result]


@pytest.fixture
def run(sqlite_backend: Backend) -> Run:
    env = sqlite_backend.env()

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env)

    return invoke


def events(run: Run) -> int:
    done = run("log", "--include-retracted", "-o", "jsonl")
    assert done.exit_code == 0, done.output
    return len(done.output.splitlines())


def refused(result: Result, code: int, text: str) -> str:
    """The one line a refusal prints (checked: exit code, no traceback, short)."""
    assert result.exit_code == code, (result.exit_code, result.output[:500])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: ") and text in first, first
    assert len(result.stderr) < 2000, len(result.stderr)
    return first


def world(run: Run, *extra: dict) -> None:
    batch = "".join(json.dumps(e) + "\n" for e in [*f.licensed_world(), *extra])
    done = run("import", "-", input=batch)
    assert done.exit_code == 0, done.output


REQUEST = [
    "--exporter", "jl-mag", "--end-user", "buyer", "--item", "1C902.a",
    "--destination", "DE", "--end-use", "EV motors", "--as-of", "2025-12-15",
]  # fmt: skip


@pytest.mark.parametrize("quantity", ["1E+100000000", "-1E+100000000000", "1e-999999999"])
def test_huge_quantity_exponents_are_refused_by_every_path(run: Run, quantity: str) -> None:
    world(run)
    before = events(run)
    message = f"'{quantity}' is out of range: quantities are below 10^15"
    refused(run("check", *REQUEST, "--quantity", quantity), 2, message)
    refused(run("apply", *REQUEST, "--quantity", quantity), 2, message)
    usage = json.dumps(f.usage(quantity=quantity))
    refused(run("append", usage), 2, message)
    refused(run("import", "-", input=usage + "\n"), 2, f"line 1: quantity: {message}")
    capped = f.licence("GL-2", items=[{"item": "x", "cap": quantity}])
    refused(run("append", json.dumps(capped)), 2, f"items[0].cap: {message}")
    assert events(run) == before


def test_licences_in_the_last_years_of_the_calendar(run: Run) -> None:
    """The 12/36-month limit of a licence from 9998/9999 lies past the calendar's end."""
    late = {"effective_at": "9999-01-01T00:00:00Z"}
    world(run, {**f.vetted("buyer"), **late})
    general = f.licence("GL-9", effective_at="9999-06-01T00:00:00Z", valid_until="9999-12-01")
    assert run("append", json.dumps(general)).exit_code == 0
    single = f.licence(
        "SL-9",
        licence_type="single",
        effective_at="9998-06-01T00:00:00Z",
        valid_until="9999-12-01T00:00:00Z",
    )
    before = events(run)
    refused(
        run("append", json.dumps(single)),
        1,
        "so through 9999-05-31 at the latest, not through 9999-11-30",
    )
    assert events(run) == before


def test_an_application_id_with_a_trailing_newline_is_refused(run: Run) -> None:
    world(run)
    before = events(run)
    refused(
        run("apply", *REQUEST, "--quantity", "5", "--id", "APP-1\n"),
        2,
        "--id: contains the control character U+000A",
    )
    assert events(run) == before


def test_import_refuses_ambiguous_and_oversized_lines_naming_them(run: Run, tmp_path: Path) -> None:
    world(run)
    before = events(run)
    good = json.dumps(f.party("p1"))
    duplicate = good[:-1] + ', "entity_id": "p2"}'
    refused(
        run("import", "-", input=f"{good}\n{duplicate}\n"),
        2,
        "line 2: the key 'entity_id' appears twice in one object",
    )
    typed = json.dumps({**f.party("p3"), "type": 5})
    refused(
        run("import", "-", input=f"{good}\n{typed}\n"),
        2,
        "line 2: type: type must be a string naming an event type, not the number 5",
    )
    huge = tmp_path / "huge.jsonl"
    sources = [{**f.SRC, "note": "n" * 3000}] * 50
    notes = [{"item": f"i{i}", "cap": "1", "description": "d" * 3000} for i in range(300)]
    with huge.open("w") as out:
        out.write(good + "\n")
        out.write(json.dumps({**f.licence("GL-big", items=notes), "sources": sources}) + "\n")
    refused(run("import", str(huge)), 2, "line 2: the event is ")
    assert events(run) == before


def test_a_uuid_or_a_time_given_as_a_number_is_refused_in_words(run: Run) -> None:
    """`ledger append` and `ledger import` (with the line) say what an event id or a time
    must be, with an example, not msgspec's 'Expected `uuid`, got `int`'."""
    world(run)
    before = events(run)
    uuid_words = 'must be a UUID in a string (e.g. "0190f3a1-7c2e-7d4a-9b1e-3f5a6c7d8e9f")'
    time_words = 'must be a time in a string (e.g. "2025-11-10", '
    numbered = json.dumps({**f.party("p1"), "event_id": 123})
    first = refused(run("append", numbered), 2, f"event_id: {uuid_words}, not a whole number")
    assert "Expected" not in first
    timed = json.dumps({**f.party("p1"), "effective_at": 1762732800})
    refused(run("append", input=timed), 2, f"effective_at: {time_words}")
    good = json.dumps(f.party("p2"))
    first = refused(
        run("import", "-", input=f"{good}\n{good.replace('p2', 'p3')}\n{timed}\n"),
        2,
        f"line 3: effective_at: {time_words}",
    )
    assert first.endswith("not a whole number") and "Expected" not in first
    refused(
        run("import", "-", input=f"{good}\n{numbered}\n"),
        2,
        f"line 2: event_id: {uuid_words}, not a whole number",
    )
    assert events(run) == before


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(run: Run) -> None:
    """OWASP CSV injection: cells starting with = + - @ tab or CR get a leading apostrophe
    in every CSV the CLI writes; plain numbers stay numbers."""
    import csv
    import io

    names = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1)", "+1-2", "-2+3", "\t=1+1"]
    batch = [f.party(f"p{i}", name=name) for i, name in enumerate(names)]
    done = run("import", "-", input="".join(json.dumps(e) + "\n" for e in batch))
    assert done.exit_code == 0, done.output
    table = run("end-users", "-o", "csv")
    assert table.exit_code == 0, table.output
    rows = list(csv.DictReader(io.StringIO(table.output)))
    name_column = next(c for c in rows[0] if c in ("name", "party_name"))
    assert sorted(r[name_column] for r in rows) == sorted("'" + n for n in names)
    log = run("log", "-o", "csv")
    cells = [cell for row in csv.reader(io.StringIO(log.output)) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert not [c for c in cells if c.startswith("-") and not c.lstrip("-").isdigit()]
    from ledger.cli.common import csv_safe

    assert [csv_safe(v) for v in ("-5", "-0.25", "+3", "12", "-", "-x")] == [
        "-5", "-0.25", "+3", "12", "'-", "'-x",
    ]  # fmt: skip


def _read_only_runs(home: Path, commands: list[list[str]], tmp_path: Path) -> list[Any]:
    """Run each command against ``home`` made read-only: a read-only bind mount when we
    are root (who may write anything permissions forbid), else permissions."""
    import os
    import shlex
    import shutil
    import subprocess
    import sys

    ledger = str(Path(sys.executable).parent / "ledger")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    if os.geteuid() != 0:
        (home / "ledger.db").chmod(0o444)
        home.chmod(0o555)
        try:
            return [
                subprocess.run(
                    [ledger, *c], env={**env, "LEDGER_HOME": str(home)},
                    capture_output=True, text=True, timeout=120,
                )
                for c in commands
            ]  # fmt: skip
        finally:
            home.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only home as root")
    mount = tmp_path / "read-only"
    mount.mkdir()
    results = []
    for c in commands:
        script = (
            f"mount --bind {shlex.quote(str(home))} {shlex.quote(str(mount))} && "
            f"mount -o remount,ro,bind {shlex.quote(str(mount))} && "
            f"touch {shlex.quote(str(mount))}/probe 2>/dev/null && exit 99; "
            f"exec {shlex.join([ledger, *c])}"
        )
        results.append(
            subprocess.run(
                ["unshare", "-m", "sh", "-c", script],
                env={**env, "LEDGER_HOME": str(mount)},
                capture_output=True, text=True, timeout=120,
            )
        )  # fmt: skip
        assert results[-1].returncode != 99, "the mount was writable"
    return results


def test_a_read_only_home_still_answers_reads(sqlite_backend: Backend, tmp_path: Path) -> None:
    """The README: a database that cannot be written is answered by folding; writes fail
    with one line and append nothing."""
    home = Path(sqlite_backend.env()["LEDGER_HOME"])
    env = {"LEDGER_HOME": str(home)}
    batch = "".join(json.dumps(e) + "\n" for e in f.licensed_world())
    assert CliRunner().invoke(cli, ["import", "-"], input=batch, env=env).exit_code == 0
    assert CliRunner().invoke(cli, ["project", "--once"], env=env).exit_code == 0
    party = json.dumps(f.party("late"))
    log, licences, check, append = _read_only_runs(
        home,
        [
            ["log", "-o", "jsonl"],
            ["licences", "-o", "json"],
            ["check", *REQUEST, "--quantity", "5"],
            ["append", party],
        ],
        tmp_path,
    )
    assert log.returncode == 0, log.stderr
    assert len(log.stdout.splitlines()) == 4
    assert licences.returncode == 0, licences.stderr
    assert [r["licence_id"] for r in json.loads(licences.stdout)["licences"]] == ["GL-1"]
    assert check.returncode == 0 and "\nAPPROVED: 5 kg" in check.stdout, check.stderr
    assert append.returncode == 1
    assert append.stderr.splitlines()[0] == (
        "Error: the store failed: attempt to write a readonly database"
    )
    assert "Traceback" not in log.stderr + licences.stderr + check.stderr + append.stderr
    after = CliRunner().invoke(cli, ["log", "-o", "jsonl"], env=env)
    assert len(after.output.splitlines()) == 4


def test_times_at_the_ends_of_the_calendar(run: Run) -> None:
    """An instant that falls off the calendar once shown in UTC or another zone
    (9999-12-31T23:00-05:00 is in year 10000 in UTC) is refused in events; as a query
    bound it means everything up to (or from) the calendar's end."""
    world(run)
    before = events(run)
    late = f.party("late", effective_at="9999-12-31T23:00:00-05:00")
    refused(run("append", json.dumps(late)), 2, "effective_at: 9999-12-31T23:00:00-05:00 is too")
    early = run("apply", *REQUEST[:-2], "--quantity", "5", "--as-of", "0001-01-01T00:00:00+05:00")
    assert early.exit_code == 2 and "Traceback" not in early.output
    assert "'0001-01-01T00:00:00+05:00' is too close to an end of the calendar" in early.stderr
    assert events(run) == before
    for bound in ("9999-12-31T23:59:59-05:00", "9999-12-31", "0001-01-01T00:00:00+05:00"):
        for view in (["licences"], ["end-users", "--fold"], ["log"]):
            shown = run(*view, "--as-of", bound, "--known-at", bound, "-o", "json")
            assert shown.exit_code == 0, (view, bound, shown.output[-500:])
    shown = run("check", *REQUEST[:-2], "--quantity", "5", "--as-of", "9999-12-31T23:59:59-05:00")
    assert shown.exit_code == 0 and "Traceback" not in shown.output


def test_apply_before_the_exporter_was_registered_records_nothing(run: Run) -> None:
    """As the README says: an application names parties registered by its date
    (unknown-reference, exit 1), where check answers 'rejected'."""
    world(run)  # the exporter and the buyer are registered with effect from 2025-01-01
    before = events(run)
    early = [*REQUEST[:-2], "--quantity", "5", "--as-of", "2024-06-01"]
    checked = run("check", *early)
    assert checked.exit_code == 0 and "REJECTED" in checked.output, checked.output
    first = refused(run("apply", *early), 1, "--exporter: party 'jl-mag' was registered")
    assert "[rule: unknown-reference]" in first
    assert events(run) == before
    submitted = {
        "type": "ApplicationSubmitted", "entity_id": "APP-early", "exporter": "jl-mag",
        "end_user": "buyer", "item": "1C902.a", "quantity": "5", "destination": "DE",
        "end_use": "EV motors", "effective_at": "2024-06-01",
    }  # fmt: skip
    refused(run("append", json.dumps(submitted)), 1, "exporter: party 'jl-mag' was registered")
    assert events(run) == before
