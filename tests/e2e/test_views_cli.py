"""The view commands end to end: licences, commitments, asymmetry, measures, end-users,
findings, check and apply, in every output format, with their exit codes.

The history is the hand-checked one of ``test_projections.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from tests import factory as f
from tests.conftest import Backend
from tests.integration.test_projections import record_scenario

LEDGER = str(Path(sys.executable).parent / "ledger")
WIDTH = 100


@pytest.fixture
def env(backend: Backend) -> dict[str, str]:
    env = {**backend.env(), "COLUMNS": str(WIDTH)}
    app = Ledger(backend.settings(env))
    try:
        record_scenario(app)
    finally:
        app.close()
    return env


@pytest.fixture
def run(env: dict[str, str]) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def fits(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= WIDTH, line


def body(result: Result) -> dict:
    return json.loads(ok(result))


def test_licences_in_every_format(run: Callable[..., Result]) -> None:
    when = ["--as-of", "2025-12-11", "--known-at", "2025-12-13"]
    table = ok(run("licences", *when))
    fits(table)
    assert "As of 2025-12-11T23:59:59Z, as known at 2025-12-13T23:59:59Z." in table
    [row] = [line for line in table.splitlines() if line.startswith("GL-1")]
    assert "withdrawn" in row and "jl-mag" in row and "1C902.a 650 kg" in row
    data = body(run("licences", *when, "-o", "json"))
    assert data["source"] == "views"
    [lic] = data["licences"]
    assert lic["status"] == "withdrawn"
    assert lic["items"] == [
        {"item": "1C902.a", "cap": "1000", "used": "350", "remaining": "650", "unit": "kg"}
    ]
    rows = list(csv.DictReader(io.StringIO(ok(run("licences", *when, "-o", "csv")))))
    assert [(r["licence_id"], r["item"], r["cap"], r["used"], r["remaining"]) for r in rows] == [
        ("GL-1", "1C902.a", "1000", "350", "650")
    ]
    folded = body(run("licences", *when, "-o", "json", "--fold"))
    assert folded["source"] == "events"
    assert folded["licences"] == data["licences"]


def test_licence_filters_and_empty_answers(run: Callable[..., Result]) -> None:
    assert body(run("licences", "--status", "active", "-o", "json"))["licences"] == []
    before = run("licences", "--as-of", "2025-12-01")
    assert before.exit_code == 0 and "No licences match." in before.output
    assert [
        r["licence_id"]
        for r in body(
            run("licences", "--exporter", "jl-mag", "--as-of", "2025-12-05", "-o", "json")
        )["licences"]
    ] == ["GL-1"]
    bad = run("licences", "--as-of", "yesterday")
    assert bad.exit_code == 2 and "is not an ISO-8601 time" in bad.output


@pytest.mark.parametrize(
    ("command", "option", "kind", "known"),
    [
        ("licences", "--licence", "licence", "GL-1"),
        ("end-users", "--party", "party", "acme"),
        ("measures", "--measure", "measure", "M1"),
        ("commitments", "--agreement", "agreement", "busan"),
        ("asymmetry", "--agreement", "agreement", "busan"),
    ],
)
def test_unknown_ids_are_noted_on_stderr(
    run: Callable[..., Result], command: str, option: str, kind: str, known: str
) -> None:
    when = ["--as-of", "2025-12-31", "--known-at", "2025-12-31"]
    result = run(command, option, "nope-1", *when)
    assert result.exit_code == 0
    assert f"Note: no {kind} 'nope-1' is known as of 2025-12-31T23:59:59Z" in result.stderr
    assert "Note:" not in run(command, option, known, *when).stderr


def test_commitments_and_asymmetry(run: Callable[..., Result]) -> None:
    when = ["--as-of", "2025-11-20", "--known-at", "2025-12-31"]
    table = ok(run("commitments", *when))
    fits(table)
    assert "c-claim" in table and "unilateral" in table
    rows = {
        c["commitment_id"]: c for c in body(run("commitments", *when, "-o", "json"))["commitments"]
    }
    assert rows["c-us"]["status"] == "implemented" and rows["c-cn"]["pending"] is True
    report = ok(run("asymmetry", *when))
    fits(report)
    [pair_line] = [line for line in report.splitlines() if line.startswith("c-us ")]
    assert pair_line.split() == [
        *("c-us", "US", "2025-11-10", "c-cn", "pledged"),
        *("10", "days", "21"),  # 11-10 to 11-20: 10 calendar days (JSON keeps the hours)
    ]
    data = body(run("asymmetry", *when, "-o", "json"))
    assert [p["party"] for p in data["parties"]] == ["CN", "US"]
    assert data["pairs"][0]["one_sided_days"] == 10
    pairs = list(csv.DictReader(io.StringIO(ok(run("asymmetry", *when, "--pairs", "-o", "csv")))))
    assert pairs[0]["pair"] == "c-cn <-> c-us" and pairs[0]["one_sided_days"] == "10"
    parties = list(csv.DictReader(io.StringIO(ok(run("asymmetry", *when, "-o", "csv")))))
    assert {p["party"]: p["pending"] for p in parties} == {"CN": "2", "US": "0"}


def test_measures_and_end_users(run: Callable[..., Result]) -> None:
    table = ok(run("measures", "--as-of", "2025-11-20", "--known-at", "2025-12-31"))
    fits(table)
    [cl1] = [line for line in table.splitlines() if line.startswith("M1") and " cl1 " in line]
    assert "suspended" in cl1 and "through 2026-11-09" in cl1
    clauses = body(run("measures", "--status", "in-force", "--as-of", "2025-11-20", "-o", "json"))
    assert [(c["measure_id"], c["clause_id"]) for c in clauses["clauses"]] == [("M1", "cl2")]
    users = ok(run("end-users", "--as-of", "2025-12-21", "--known-at", "2025-12-21"))
    fits(users)
    [bolt] = [line for line in users.splitlines() if line.startswith("bolt")]
    assert "military" in bolt and "MEU list" in bolt
    assert "jl-mag" not in users  # an exporter, not an end user
    everyone = body(run("end-users", "--all-roles", "-o", "json"))
    assert {p["party_id"] for p in everyone["parties"]} == {"acme", "bolt", "jl-mag"}


def test_findings(run: Callable[..., Result]) -> None:
    when = ["--as-of", "2025-12-31", "--known-at", "2025-12-31"]
    table = ok(run("findings", *when))
    fits(table)
    data = body(run("findings", *when, "-o", "json"))
    kinds = sorted({f["kind"] for f in data["findings"]})
    assert kinds == [
        "commitment-overdue",
        "late-implementation",
        "late-usage",
        "licensed-end-user-listed",
        "unilateral-claim",
    ]
    late = body(run("findings", *when, "--kind", "late-usage", "-o", "json"))["findings"]
    assert len(late) == 1 and len(late[0]["events"]) == 2
    rows = list(csv.DictReader(io.StringIO(ok(run("findings", *when, "-o", "csv")))))
    assert len(rows) == len(data["findings"])
    assert "No findings" not in table
    quiet = run("findings", "--as-of", "2025-10-01", "--known-at", "2025-10-01")
    assert quiet.exit_code == 0 and "No findings." in quiet.stderr
    assert "No findings" not in quiet.stdout and "As of 2025-10-01" in quiet.stdout


def test_check_is_read_only_and_explains(run: Callable[..., Result], env: dict[str, str]) -> None:
    args = [
        "check",
        "--exporter",
        "jl-mag",
        "--end-user",
        "acme",
        "--item",
        "1C902.a",
        "--quantity",
        "100",
        "--destination",
        "US",
        "--end-use",
        "EV motors",
    ]
    text = ok(run(*args, "--as-of", "2025-12-04", "--known-at", "2025-12-04"))
    assert "APPROVED" in text and "covered by licence GL-1" in text
    assert "M2/lr  licence-required" in text
    assert "End user acme: vetting approved by MOFCOM" in text
    tonnes = ok(run(*args, "--unit", "t", "--as-of", "2025-12-04", "--known-at", "2025-12-04"))
    assert "REJECTED: 100 t of 1C902.a" in tonnes  # GL-1 caps 1C902 in kg: no conversion
    assert "GL-1: caps 1C902.a in kg, not t" in tonnes
    # A quantity given in exponent form reads back as people write it (not 1E+3).
    at = ("--as-of", "2025-12-04", "--known-at", "2025-12-04")
    exponent = ok(run(*[("1e3" if a == "100" else a) for a in args], *at))
    assert "APPROVED: 1,000 kg of 1C902.a" in exponent, exponent
    data = body(run(*args, "--as-of", "2025-12-09", "-o", "json"))
    assert data["decision"]["outcome"] == "rejected"
    assert data["decision"]["fired_clauses"][0]["clause_id"] == "lr"
    app = Ledger(settings_of(env))
    try:
        assert not [e for e in app.log() if e.event.type.startswith("Application")]
    finally:
        app.close()
    assert run(*args[:-2], "--as-of", "2025-12-04").exit_code == 2  # --end-use missing
    bad_quantity = run(*[a if a != "100" else "-3" for a in args])
    assert bad_quantity.exit_code == 2 and "--quantity" in bad_quantity.output
    bad_dest = run(*[a if a != "US" else "usa" for a in args])
    assert bad_dest.exit_code == 2
    assert "--destination: 'usa' is not a country code" in bad_dest.stderr
    blank_use = run(*[a if a != "EV motors" else "  " for a in args], "-o", "json")
    assert blank_use.exit_code == 2
    assert json.loads(blank_use.stderr)["field"] == "--end-use"


def request_args(**changes: str) -> list[str]:
    """check/apply options for a request GL-1 covers on 2025-12-04, with ``changes``
    (``end_user="x"`` sets ``--end-user x``)."""
    options = {
        "exporter": "jl-mag",
        "end_user": "acme",
        "item": "1C902.a",
        "quantity": "5",
        "destination": "US",
        "end_use": "EV motors",
        "as_of": "2025-12-04",
        **changes,
    }
    return [part for k, v in options.items() for part in ("--" + k.replace("_", "-"), v)]


@pytest.mark.parametrize(
    ("option", "value", "code", "message"),
    [
        ("--quantity", "100.0000000001", 1, "[rule: quantity-precision]"),
        ("--quantity", "1e15", 1, "[rule: quantity-precision]"),
        ("--quantity", "1000000000000000", 1, "[rule: quantity-precision]"),
        ("--exporter", "", 2, "must not be empty"),
        ("--end-user", "  ", 2, "must not begin or end with a space or an invisible"),
        ("--item", "", 2, "must not be empty"),
        ("--licence", "", 2, "must not be empty"),
        ("--end-use", " ", 2, "must not be blank"),
    ],
)
def test_check_refuses_the_requests_apply_refuses(
    run: Callable[..., Result], option: str, value: str, code: int, message: str
) -> None:
    """check answered requests apply cannot record (a quantity with more than 9 decimal
    places or of 10^15 or more, an empty --exporter, --item or --licence, a padded
    --end-user, a blank --end-use): both refuse them alike, same message and exit code
    (1 for the quantity rule, 2 for malformed names)."""
    args = request_args(**{option[2:].replace("-", "_"): value})
    checked = run("check", *args)
    applied = run("apply", "--id", "APP-N", *args)
    assert (checked.exit_code, applied.exit_code) == (code, code), checked.output
    first = checked.stderr.splitlines()[0]
    assert first == applied.stderr.splitlines()[0]
    assert first.startswith(f"Error: {option}: ") and message in first, first
    assert json.loads(run("check", *args, "-o", "json").stderr)["field"] == option


def test_the_finest_quantity_is_checked_and_applied(run: Callable[..., Result]) -> None:
    finest = request_args(quantity="0.000000001")
    assert ok(run("check", *finest)) and ok(run("apply", "--id", "APP-F", *finest))


def settings_of(env: dict[str, str]) -> Any:
    from ledger.config import Settings

    return Settings.from_env(env)


def test_apply_records_application_and_decision(
    run: Callable[..., Result], env: dict[str, str]
) -> None:
    args = [
        "apply",
        "--id",
        "APP-1",
        "--exporter",
        "jl-mag",
        "--end-user",
        "acme",
        "--item",
        "1C902.a",
        "--quantity",
        "100",
        "--destination",
        "US",
        "--end-use",
        "EV motors",
        "--as-of",
        "2025-12-09",
    ]
    data = body(run(*args, "-o", "json"))
    assert data["application_id"] == "APP-1"
    assert data["decision"]["outcome"] == "rejected"  # GL-1 was withdrawn on 12-08
    assert data["append"]["appended"] == 2
    app = Ledger(settings_of(env))
    try:
        submitted, decided = [e.event for e in app.log(entity_kind="application")]
        assert submitted.type == "ApplicationSubmitted" and decided.type == "ApplicationDecided"
        assert submitted.recorded_at == decided.recorded_at  # one batch
        assert decided.outcome == "rejected"
        assert [(c.measure_id, c.clause_id) for c in decided.fired_clauses] == [("M2", "lr")]
        assert decided.end_user_status.startswith("vetting approved")
        assert any("none covers it" in r for r in decided.reasons)
        assert submitted.effective_at.isoformat() == "2025-12-09T00:00:00+00:00"
    finally:
        app.close()
    again = run(*args)
    assert again.exit_code == 1
    assert "--id: " in again.stderr and "line 1" not in again.stderr
    assert "duplicate-entity" in again.stderr and "Nothing was appended." in again.stderr
    unknown = run(*[a if a != "jl-mag" else "nobody" for a in args], "--id", "APP-9")
    assert unknown.exit_code == 1 and unknown.stderr.startswith("Error: --exporter: ")
    blank_use = run(*[a if a != "EV motors" else " " for a in args], "--id", "APP-7")
    assert blank_use.exit_code == 2
    assert blank_use.stderr.startswith("Error: --end-use: must not be blank")
    for empty in ("", "  "):  # "" made up an id and recorded the application under it
        no_id = run(*args, "--id", empty, "-o", "json")
        assert no_id.exit_code == 2, no_id.output
        assert json.loads(no_id.stderr)["field"] == "--id"
    future = run(*[a if a != "2025-12-09" else "2999-01-01" for a in args], "--id", "APP-8")
    assert future.exit_code == 2 and "--as-of: an application cannot be dated in the future" in (
        future.stderr
    )
    # Nothing a refused apply tried is in the store.
    app = Ledger(settings_of(env))
    try:
        assert [e.event.entity_id for e in app.log(entity_kind="application")] == ["APP-1"] * 2
    finally:
        app.close()
    approved = ok(run(*[a if a != "APP-1" else "APP-2" for a in args][:-1], "2025-12-04"))
    assert "Recorded application APP-2" in approved and "APPROVED" in approved


def test_help_has_examples(run: Callable[..., Result]) -> None:
    for command in (
        "licences",
        "commitments",
        "asymmetry",
        "measures",
        "end-users",
        "findings",
        "check",
        "apply",
        "project",
    ):
        text = ok(run(command, "--help"))
        assert "Examples:" in text, command


def test_console_script_end_to_end(env: dict[str, str]) -> None:
    merged = {**os.environ, **env}
    out = subprocess.run(
        [LEDGER, "licences", "--as-of", "2025-12-11", "--known-at", "2025-12-16", "-o", "json"],
        env=merged,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [lic] = json.loads(out.stdout)["licences"]
    assert lic["items"][0]["used"] == "250"


def test_a_known_at_still_to_come_is_now_and_the_answer_says_which(
    run: Callable[..., Result], env: dict[str, str]
) -> None:
    """A future K cannot be answered yet: it is the query's now, noted on stderr and given
    in the JSON, so the same question asked again with that K gets the same answer after
    more events are recorded."""
    future = run("end-users", "--all-roles", "--known-at", "2099-01-01", "-o", "json")
    assert future.exit_code == 0, future.output
    assert "--known-at 2099-01-01 has not happened yet" in future.stderr
    first = json.loads(future.stdout)
    assert first["known_at"] < "2099"
    assert body(run("end-users", "--all-roles", "-o", "json"))["known_at"] is not None

    app = Ledger(Settings.from_env(env))
    try:
        app.append_objects([{**f.party("late-comer"), "effective_at": "2025-01-01"}])
    finally:
        app.close()
    again = body(run("end-users", "--all-roles", "--known-at", first["known_at"], "-o", "json"))
    assert again["parties"] == first["parties"]
    now = body(run("end-users", "--all-roles", "-o", "json"))
    assert "late-comer" in [p["party_id"] for p in now["parties"]]
