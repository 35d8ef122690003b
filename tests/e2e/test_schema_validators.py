"""The published JSON Schemas as a strict validator sees them (ajv 2020-12 in strict mode,
with ajv-formats, from npm): they compile, stored events validate against `ledger schema`,
what operators write validates against `ledger schema --input`, and a quantity that is
not a number does not."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from ledger.events import EVENT_TYPES
from ledger.scenario import scenario_path
from tests import factory as f
from tests.conftest import Backend
from tests.node_tools import AJV, npm_tools

VALIDATE = r"""
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;
const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = {compiled: {}, results: []};
const validators = {};
for (const [name, schema] of Object.entries(job.schemas)) {
  const ajv = new Ajv2020({strict: true, allErrors: true});
  addFormats(ajv);
  try {
    validators[name] = ajv.compile(schema);
    out.compiled[name] = "ok";
  } catch (e) {
    out.compiled[name] = String(e.message);
  }
}
for (const [name, doc] of job.checks) {
  const validate = validators[name];
  out.results.push(validate ? validate(doc) : null);
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def ajv(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Any]]:
    root = npm_tools("ajv", AJV)
    work = tmp_path_factory.mktemp("ajv")
    script = work / "validate.cjs"
    script.write_text(VALIDATE)

    def run(schemas: dict[str, Any], checks: list[tuple[str, Any]]) -> dict[str, Any]:
        job = work / "job.json"
        job.write_text(json.dumps({"schemas": schemas, "checks": checks}))
        proc = subprocess.run(
            ["node", str(script), str(job)],
            env={**os.environ, "NODE_PATH": str(root / "node_modules")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    return run


@pytest.fixture
def run(sqlite_backend: Backend) -> Callable[..., Result]:
    env = sqlite_backend.env()

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env)

    return invoke


def _schema(run: Callable[..., Result], *args: str) -> Any:
    result = run("schema", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _input_lines() -> list[dict[str, Any]]:
    """What operators write: the shipped scenario without its recorded times (every kind
    of fact, given times with offsets) and the test factory's events (bare dates, no
    event_id or actor)."""
    lines = []
    for text in scenario_path().read_text().splitlines():
        event = json.loads(text)
        del event["recorded_at"]
        lines.append(event)
    parties = {"exporter": "t-exporter", "end_users": ["t-buyer"]}
    world = [
        f.exporter("t-exporter"),
        f.party("t-buyer"),
        f.vetted("t-buyer"),
        f.licence("T-GL-1", **parties),
        f.usage("T-GL-1", end_user="t-buyer"),
        f.licence_event("LicenceSuspended", "T-GL-1"),
        f.agreement("t-agreement"),
        f.pledge("t-c1", agreement_id="t-agreement"),
        f.measure("t-measure"),
        f.suspended("t-measure"),
        f.application("T-APP-1", exporter="t-exporter", end_user="t-buyer"),
    ]
    return lines + world


def test_every_schema_compiles_in_strict_mode(
    run: Callable[..., Result], ajv: Callable[..., dict[str, Any]]
) -> None:
    """No OpenAPI `discriminator`, no unknown `decimal` format, an $id on each."""
    schemas = {"event": _schema(run), "input": _schema(run, "--input")}
    for cls in EVENT_TYPES:
        schemas[cls.__name__] = _schema(run, "--type", cls.__name__)
    for name, schema in schemas.items():
        assert schema["$id"].startswith("urn:export-control-ledger:schema:"), name
    answer = ajv(schemas, [])
    assert answer["compiled"] == {name: "ok" for name in schemas}
    ids = [schema["$id"] for schema in schemas.values()]
    assert len(set(ids)) == len(ids)


def test_stored_and_written_events_validate_against_their_schemas(
    run: Callable[..., Result], ajv: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    written = _input_lines()
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(e) + "\n" for e in written))
    imported = run("import", str(batch))
    assert imported.exit_code == 0, imported.output  # importable indeed
    stored = [
        json.loads(line)
        for line in run("log", "-o", "jsonl", "--include-retracted").output.splitlines()
    ]
    assert len(stored) == len(written)
    schemas = {"event": _schema(run), "input": _schema(run, "--input")}
    checks = [("input", e) for e in written] + [("event", e) for e in stored]
    answer = ajv(schemas, checks)
    assert answer["results"] == [True] * len(checks)
    # ...and each only against its own: input has no recorded_at, a stored event has one.
    crossed = ajv(schemas, [("event", written[-1]), ("input", stored[0])])
    assert crossed["results"] == [False, False]


def test_a_quantity_must_be_a_number(
    run: Callable[..., Result], ajv: Callable[..., dict[str, Any]]
) -> None:
    schemas = {"event": _schema(run), "input": _schema(run, "--input")}

    def grant(cap: str) -> dict[str, Any]:
        return f.licence(items=[{"item": "1C902.a", "cap": cap, "unit": "kg"}])

    good = ["1000", "2500.5", "1E+3", "0.125", "+7"]
    bad = ["lots", "", "1,000", "1 000", "NaN", "12kg", "0x10"]
    answer = ajv(schemas, [("input", grant(cap)) for cap in good + bad])
    assert answer["results"] == [True] * len(good) + [False] * len(bad)


def test_enums_have_titles_for_code_generators(run: Callable[..., Result]) -> None:
    untitled: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "enum" in node and "title" not in node:
                untitled.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    for args in ([], ["--input"], ["--asyncapi"]):
        walk(_schema(run, *args), " ".join(args) or "event")
    # (AsyncAPI's channel parameters are not schemas: code generators make no types of them.)
    assert [p for p in untitled if "/channels/events/parameters/" not in p] == []
    licence = _schema(run, "--type", "LicenceGranted")
    granted = licence["$defs"]["LicenceGranted"]["properties"]
    assert granted["licence_type"]["title"] == "LicenceGrantedLicenceType"
