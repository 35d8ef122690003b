"""The permanent fuzz test over every input path (issue 16 part B).

Events are drawn from the published input JSON Schema (``ledger schema --input``) by a
small strategy builder below, then often mutated the way careless or hostile input
arrives: trailing newlines and carriage returns, bidi overrides, zero-width and blank
text, control characters, spreadsheet formulas, quantities with huge exponents, dates at
the calendar's ends, wrong JSON types, duplicate keys, oversized lists.  They go through
append, import, import --backfill, retract, apply, check and the views' options.

The invariant, whatever the input: exit 0, 1 or 2; no traceback; at most a short error;
and the ledger's event count unchanged unless the exit is 0.

The budget is fixed (``LEDGER_FUZZ_EXAMPLES`` examples per path, 20 by default) so CI
time stays modest; under CI the examples are derandomized (the same every run), locally
they differ from run to run.  Commands run in process (click's CliRunner) for speed; a
few run as real processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import events as ev
from ledger import schemas
from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from tests import factory as f

EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "20"))
BUDGET = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # one ledger on purpose: state builds up
    ],
)

# --- strategies from the JSON Schema ----------------------------------------------------

KNOWN_IDS = ["jl-mag", "buyer", "GL-1", "busan-2025", "c1", "cn-ann-46", "cl1", "1C902.a"]
"""Ids the seeded ledger knows, so that some drawn events pass the rules too."""

HOSTILE_TEXT = [
    "acme\n",
    "US\n",
    "x\r\n",
    "\r",
    "ac\u202eme",
    "\u2066x\u2069",
    "\u200b\u200d",
    "   ",
    "\t",
    "\x1b[31mred",
    "k\x00g",
    "\x85",
    '=HYPERLINK("http://evil.example","x")',
    "@SUM(A1)",
    "-2+3",
    "\ufeffbom",
    "Cafe\u0301",
    "1E+100000000",
    "-1E+100000000000",
    "1e-999999999",
    "9999-12-31",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "2025-02-30",
    "now",
    "x" * 5000,
    "",
]
HOSTILE_VALUES: list[Any] = [5, -5, 0, None, True, [], {}, 1e308, 10**40, "1E+1000000000"]


def _times() -> st.SearchStrategy[str]:
    normal = st.datetimes(
        min_value=__import__("datetime").datetime(2020, 1, 1),
        max_value=__import__("datetime").datetime(2030, 12, 31),
    ).map(lambda t: t.isoformat(timespec="seconds") + "Z")
    edges = st.sampled_from(
        ["9999-12-31T23:59:59Z", "9998-06-01T00:00:00Z", "0001-01-01T00:00:00Z",
         "9999-12-31T23:00:00-05:00", "2025-11-10T13:01:00+08:00"]
    )  # fmt: skip
    return st.one_of(normal, edges)


def _dates() -> st.SearchStrategy[str]:
    normal = st.dates(
        min_value=__import__("datetime").date(2020, 1, 1),
        max_value=__import__("datetime").date(2030, 12, 31),
    ).map(lambda d: d.isoformat())
    return st.one_of(normal, st.sampled_from(["9999-12-31", "9998-06-01", "0001-01-01"]))


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    fmt = node.get("format")
    if fmt == "date-time":
        return _times()
    if fmt == "date":
        return _dates()
    if fmt == "uuid":
        return st.uuids().map(str)
    limit = node.get("maxLength", 40)
    pattern = node.get("pattern")
    if pattern == ev.ID_PATTERN:
        drawn = st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= limit)
        return st.one_of(st.sampled_from(KNOWN_IDS), drawn)
    if pattern == ev.CODE_PATTERN:
        codes = st.sampled_from(["CN", "US", "DE", "EU"])
        return st.one_of(codes, st.from_regex(pattern, fullmatch=True))
    if pattern is not None:
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= limit)
    return st.text(max_size=min(limit, 40))


def from_schema(node: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against ``node`` (as far as the schema says; the rules may still
    refuse them: unknown references, windows that end before they start...)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return st.deferred(lambda: from_schema(defs[name], defs))
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        return st.one_of([from_schema({**node, **o, "anyOf": None}, defs) for o in options])
    kind = node.get("type")
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return st.integers(min_value=node.get("minimum"), max_value=node.get("maximum", 10**6))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        low = node.get("minItems", 0)
        return st.lists(
            from_schema(node.get("items", {}), defs), min_size=low, max_size=min(low + 2, 4)
        )
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs) for k, v in properties.items() if k in required},
            optional={k: from_schema(v, defs) for k, v in properties.items() if k not in required},
        )
    return st.none()


INPUT_SCHEMA = schemas.input_schema()
EVENT_OBJECTS = from_schema({"anyOf": INPUT_SCHEMA["anyOf"]}, INPUT_SCHEMA["$defs"])
VALID_OBJECTS = st.sampled_from(
    [f.party("fuzz-p"), f.vetted("buyer"), f.usage(), f.licence("GL-2"), f.pledge("c2"),
     f.agreement("a2"), f.measure("m2"), f.licence_event("LicenceSuspended")]
)  # fmt: skip


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _leaves(inner, (*path, index))
    if path:
        yield path


def _set(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for step in path[:-1]:
        value = value[step]
    value[path[-1]] = new


@st.composite
def mutated_lines(draw: st.DrawFn, backfill: bool = False) -> str:
    """One JSON line: a drawn event, perhaps mutated; sometimes not even JSON."""
    obj = draw(st.one_of(EVENT_OBJECTS, VALID_OBJECTS))
    obj = json.loads(json.dumps(obj))
    if backfill:
        obj["recorded_at"] = draw(st.one_of(_times(), st.sampled_from(HOSTILE_TEXT)))
    how = draw(st.sampled_from(["none", "text", "value", "drop", "type", "dup", "list", "raw"]))
    paths = list(_leaves(obj))
    if how == "text" and paths:
        _set(obj, draw(st.sampled_from(paths)), draw(st.sampled_from(HOSTILE_TEXT)))
    elif how == "value" and paths:
        _set(obj, draw(st.sampled_from(paths)), draw(st.sampled_from(HOSTILE_VALUES)))
    elif how == "drop" and obj:
        obj.pop(draw(st.sampled_from(sorted(obj))))
    elif how == "type":
        obj["type"] = draw(st.sampled_from([5, None, "Nope", "Event", ["LicenceGranted"]]))
    elif how == "list":
        obj["sources"] = [f.SRC] * draw(st.sampled_from([0, 50, 51, 400]))
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    if how == "dup" and obj:
        key = draw(st.sampled_from(sorted(obj)))
        text = "{" + json.dumps(key) + ": " + json.dumps("other") + ", " + text[1:]
    elif how == "raw":
        text = draw(st.sampled_from(["", "{", "[]", "null", '"x"', "{}", '{"type":', "\ufeff{}"]))
    return text


HOSTILE_OPTION = st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(KNOWN_IDS))
TIME_OPTION = st.one_of(_times(), _dates(), st.sampled_from(HOSTILE_TEXT))

# --- the invariant ----------------------------------------------------------------------


class Fuzzed:
    """One ledger that every example of a path writes to, and the invariant's check."""

    def __init__(self, home: Path):
        self.env = {"LEDGER_HOME": str(home), "LEDGER_ACTOR": "fuzz"}
        seed = [*f.licensed_world(), f.agreement(), f.pledge("c1"), f.measure()]
        done = self.invoke("import", "-", input="".join(json.dumps(e) + "\n" for e in seed))
        assert done.exit_code == 0, done.output
        self.app = Ledger(Settings.from_env(self.env))

    def invoke(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=self.env)

    def count(self) -> int:
        return self.app.head()

    def check(self, *args: str, input: str | None = None) -> Result:
        before = self.count()
        result = self.invoke(*args, input=input)
        shown = f"{[a[:100] for a in args]!r} input={input!r:.300}\n{result.output[:1000]}"
        assert result.exit_code in (0, 1, 2), shown
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{shown}\n{result.exception!r}"
        )
        assert "Traceback" not in result.output, shown
        if result.exit_code != 0:
            assert self.count() == before, f"appended on exit {result.exit_code}: {shown}"
            lines = result.stderr.strip().splitlines()
            # One error line (click's usage errors add the usage and a hint around it).
            errors = [x for x in lines if x.startswith(("Error: ", '{"error"'))]
            assert len(errors) == 1, shown
            assert len(result.stderr) < 5000, shown
        return result


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[Fuzzed]:
    ledger = Fuzzed(tmp_path / "home")
    yield ledger
    ledger.app.close()


@BUDGET
@given(line=mutated_lines())
def test_append(fuzzed: Fuzzed, line: str) -> None:
    fuzzed.check("append", line)


@BUDGET
@given(lines=st.lists(mutated_lines(), min_size=1, max_size=3))
def test_import(fuzzed: Fuzzed, lines: list[str]) -> None:
    fuzzed.check("import", "-", input="\n".join(lines) + "\n")


@BUDGET
@given(lines=st.lists(mutated_lines(backfill=True), min_size=1, max_size=3))
def test_import_backfill(fuzzed: Fuzzed, lines: list[str]) -> None:
    fuzzed.check("import", "--backfill", "-", input="\n".join(lines) + "\n")


@BUDGET
@given(
    target=st.one_of(st.uuids().map(str), st.sampled_from(HOSTILE_TEXT)),
    reason=HOSTILE_OPTION,
    source=st.none() | HOSTILE_OPTION,
    publisher=st.none() | HOSTILE_OPTION,
    stored=st.booleans(),
)
def test_retract(
    fuzzed: Fuzzed,
    target: str,
    reason: str,
    source: str | None,
    publisher: str | None,
    stored: bool,
) -> None:
    if stored:  # a real event id, so the retraction can succeed
        log = json.loads(fuzzed.invoke("log", "-o", "json", "--limit", "3").output)
        target = log[-1]["event"]["event_id"]
    args = ["retract", target, "--reason", reason]
    if source is not None:
        args += ["--source", source]
    if publisher is not None:
        args += ["--publisher", publisher]
    fuzzed.check(*args)


REQUEST_OPTIONS = ("--exporter", "--end-user", "--item", "--quantity", "--unit",
                   "--destination", "--end-use", "--licence", "--as-of")  # fmt: skip
GOOD_REQUEST = {"--exporter": "jl-mag", "--end-user": "buyer", "--item": "1C902.a",
                "--quantity": "5", "--destination": "DE", "--end-use": "EV motors",
                "--as-of": "2025-12-15"}  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> list[str]:
    options = dict(GOOD_REQUEST)
    for option in draw(st.lists(st.sampled_from(REQUEST_OPTIONS), max_size=3, unique=True)):
        options[option] = draw(TIME_OPTION if option == "--as-of" else HOSTILE_OPTION)
    return [part for pair in options.items() for part in pair]


@BUDGET
@given(request=requests(), application_id=st.none() | HOSTILE_OPTION)
def test_apply(fuzzed: Fuzzed, request: list[str], application_id: str | None) -> None:
    extra = [] if application_id is None else ["--id", application_id]
    fuzzed.check("apply", *request, *extra)


@BUDGET
@given(request=requests(), known_at=st.none() | TIME_OPTION)
def test_check(fuzzed: Fuzzed, request: list[str], known_at: str | None) -> None:
    extra = [] if known_at is None else ["--known-at", known_at]
    fuzzed.check("check", *request, *extra)


VIEW_FILTERS = {
    "log": ["--entity", "--party", "--type"],
    "licences": ["--licence", "--exporter", "--end-user"],
    "commitments": ["--agreement", "--party"],
    "asymmetry": ["--agreement"],
    "measures": ["--measure"],
    "end-users": ["--party"],
    "findings": [],
}


@BUDGET
@given(
    view=st.sampled_from(sorted(VIEW_FILTERS)),
    as_of=st.none() | TIME_OPTION,
    known_at=st.none() | TIME_OPTION,
    value=HOSTILE_OPTION,
    use_filter=st.booleans(),
    output=st.sampled_from(["table", "json", "csv"]),
    fold=st.booleans(),
    data=st.data(),
)
def test_view_options(
    fuzzed: Fuzzed,
    view: str,
    as_of: str | None,
    known_at: str | None,
    value: str,
    use_filter: bool,
    output: str,
    fold: bool,
    data: st.DataObject,
) -> None:
    args = [view, "-o", output]
    if as_of is not None:
        args += ["--as-of", as_of]
    if known_at is not None:
        args += ["--known-at", known_at]
    if use_filter and VIEW_FILTERS[view]:
        args += [data.draw(st.sampled_from(VIEW_FILTERS[view])), value]
    if fold and view != "log":
        args.append("--fold")
    fuzzed.check(*args)


# --- a few as real processes ------------------------------------------------------------

PROCESS_CASES: list[tuple[list[str], str | None]] = [
    (["append", '{"type": 5}'], None),
    (["append", json.dumps(f.usage(quantity="1E+1000000000"))], None),
    (["import", "-"], json.dumps(f.party("a"))[:-1] + ', "entity_id": "b"}\n'),
    (["licences", "--as-of", "9999-12-31T23:59:59-05:00"], None),
    (["check", *[p for pair in GOOD_REQUEST.items() for p in pair][:-2],
      "--as-of", "0001-01-01T00:00:00+05:00"], None),
]  # fmt: skip


@pytest.mark.parametrize(("args", "stdin"), PROCESS_CASES)
def test_as_a_real_process(tmp_path: Path, args: list[str], stdin: str | None) -> None:
    ledger = str(Path(sys.executable).parent / "ledger")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_HOME"] = str(tmp_path / "home")
    seed = "".join(json.dumps(e) + "\n" for e in f.licensed_world())
    subprocess.run([ledger, "import", "-"], input=seed, env=env, text=True, check=True)
    count: Callable[[], int] = lambda: len(  # noqa: E731
        subprocess.run(
            [ledger, "log", "-o", "jsonl"], env=env, text=True, capture_output=True, check=True
        ).stdout.splitlines()
    )
    before = count()
    done = subprocess.run(
        [ledger, *args], input=stdin, env=env, text=True, capture_output=True, timeout=120
    )
    assert done.returncode in (0, 1, 2), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode != 0:
        assert done.stderr.startswith("Error: ") and len(done.stderr) < 2000, done.stderr
        assert count() == before
