"""Hostile or careless input refused at intake, one clear message each (issue 16 part B):
patterns that mean the same to msgspec and to JSON Schema validators, invisible and
spoofing ids, blank text, control characters, duplicate keys, oversized events and
quantities whose exponent no message could write out."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
import subprocess
import unicodedata
from typing import Any

import pytest

from ledger import events as ev
from ledger.errors import InputError
from ledger.intake import MAX_LINE_BYTES, iter_lines, parse_json
from tests import factory as f

NOW = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)


def parse(obj: Any) -> ev.Event:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return parse_json(data, actor="tester", now=NOW).event


def refused(obj: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        parse(obj)
    return caught.value


def _patterns(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.add(node["pattern"])
        for value in node.values():
            found |= _patterns(value)
    elif isinstance(node, list):
        for value in node:
            found |= _patterns(value)
    return found


def _published_patterns() -> set[str]:
    from ledger import schemas

    documents = [ev.schema()]
    if hasattr(schemas, "input_schema"):
        documents.append(schemas.input_schema())
    return set().union(*(_patterns(d) for d in documents))


SCHEMA_PATTERNS = sorted(_published_patterns())
SAMPLES = {
    ev.ID_PATTERN: "acme GmbH",
    ev.CODE_PATTERN: "US",
    ev.TEXT_PATTERN: "Acme rare earths",
    ev.OPTIONAL_TEXT_PATTERN: "a note",
    ev.DECIMAL_PATTERN: "12.5",
}
ENDINGS = ("\n", "\r\n", "\r")


def _as_ecmascript(pattern: str) -> str:
    """The pattern as ECMAScript reads it (no flags), in Python's syntax: ``^`` and ``$``
    are the start and end of the input only."""
    out = re.sub(r"(?<!\\)\$", r"\\Z", pattern)
    return re.sub(r"(?<![\\\[])\^", r"\\A", out)


def test_the_schema_uses_only_the_documented_patterns() -> None:
    assert set(SCHEMA_PATTERNS) == set(SAMPLES), SCHEMA_PATTERNS


@pytest.mark.parametrize("pattern", SCHEMA_PATTERNS)
def test_each_pattern_means_the_same_to_msgspec_and_to_ecmascript(pattern: str) -> None:
    # \s, \w, \d and \b differ between Python and ECMAScript (U+FEFF, U+001C-U+001F...).
    assert not re.search(r"\\[sSwWdDbB]", pattern), pattern
    sample = SAMPLES[pattern]
    ecmascript = re.compile(_as_ecmascript(pattern))
    candidates = [sample, "", " ", "\t", "\u200b", "a\u202eb", "x\x1b[31m", "a\nb", "a\u0085"]
    candidates += [sample + end for end in ENDINGS] + [end + sample for end in ENDINGS]
    for text in candidates:
        # msgspec matches with re.search, as Python's jsonschema does.
        assert bool(re.search(pattern, text)) == bool(ecmascript.search(text)), repr(text)


@pytest.mark.parametrize("pattern", SCHEMA_PATTERNS)
def test_no_pattern_takes_a_carriage_return_or_a_final_newline_it_does_not_mean(
    pattern: str,
) -> None:
    sample = SAMPLES[pattern]
    free_text = pattern in (ev.TEXT_PATTERN, ev.OPTIONAL_TEXT_PATTERN)
    assert re.search(pattern, sample)
    assert bool(re.search(pattern, sample + "\n")) is free_text  # newlines: text only
    assert not re.search(pattern, sample + "\r\n")
    assert not re.search(pattern, sample + "\r")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_ecmascript_itself_agrees() -> None:
    """The patterns run through a real ECMAScript engine give msgspec's answers."""
    cases = [
        (pattern, text)
        for pattern, sample in SAMPLES.items()
        for text in (sample, *(sample + end for end in ENDINGS), " ", "\u200b", "a\u202eb")
    ]
    script = (
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(cases.map(([p, t]) => new RegExp(p, 'u').test(t))));"
    )
    done = subprocess.run(
        ["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [bool(re.search(p, t)) for p, t in cases]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"entity_id": "acme\n"}, "entity_id", "control character U+000A"),
        ({"entity_id": "acme\r\n"}, "entity_id", "control character U+000D"),
        ({"entity_id": "acme\r"}, "entity_id", "control character U+000D"),
        ({"country": "US\n"}, "country", "two-letter country code"),
        ({"entity_id": "ac\u202eme"}, "entity_id", "U+202E, a bidirectional-text control"),
        ({"entity_id": "acme\u2066"}, "entity_id", "U+2066, a bidirectional-text control"),
        ({"entity_id": "\u200b\u200d"}, "entity_id", "must not begin or end with a space or"),
        ({"entity_id": "\ufeffacme"}, "entity_id", "must not begin or end with a space or"),
        ({"name": "   "}, "name", "must not be blank"),
        ({"name": "\n\t "}, "name", "must not be blank"),
        ({"name": "Ac\x1b[31mme"}, "name", "control character U+001B; tab and newline"),
        ({"name": "Acme\r\nGmbH"}, "name", "control character U+000D"),
        ({"summary": "\x9b31m"}, "summary", "control character U+009B"),
        ({"schema_version": -5}, "schema_version", "must be a positive whole number"),
        ({"schema_version": 0}, "schema_version", "must be a positive whole number"),
    ],
)
def test_hostile_text_is_refused_naming_the_field(
    change: dict[str, Any], field: str, message: str
) -> None:
    error = refused({**f.party("acme"), **change})
    assert error.field == field and message in error.message, (error.field, error.message)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"reference": " ", "publisher": "BIS"}, "sources[0].reference"),
        ({"reference": "Notice 61", "publisher": "\t"}, "sources[0].publisher"),
    ],
)
def test_a_blank_source_is_refused(source: dict[str, str], field: str) -> None:
    error = refused({**f.party("acme"), "sources": [source]})
    assert (error.field, error.message) == (field, "must not be blank")


def test_units_refuse_control_characters() -> None:
    items = [{"item": "1C902.a", "cap": "10", "unit": "k\x00g"}]
    error = refused(f.licence(items=items))
    assert error.field == "items[0].unit" and "U+0000" in error.message


def test_free_text_keeps_tab_and_newline() -> None:
    event = parse({**f.party("acme"), "summary": "line one\n\tline two\n"})
    assert event.summary == "line one\n\tline two\n"


def test_ids_are_stored_in_normal_form_c() -> None:
    decomposed = "Cafe\u0301"
    party = parse({**f.party(decomposed)})
    assert party.entity_id == "Caf\u00e9" == unicodedata.normalize("NFC", decomposed)
    licence = parse(f.licence(exporter="Jl\u0301", end_users=["Bu\u0308yer"]))
    assert isinstance(licence, ev.LicenceGranted)
    assert (licence.exporter, licence.end_users) == ("J\u013a", ("B\u00fcyer",))
    measure = parse(f.measure(clauses=[{**f.measure()["clauses"][0], "clause_id": "c\u0327"}]))
    assert isinstance(measure, ev.MeasurePublished)
    assert measure.clauses[0].clause_id == "\u00e7"
    # Free text is kept as written.
    assert parse(f.party("x", name="Cafe\u0301")).name == "Cafe\u0301"  # type: ignore[attr-defined]


def test_duplicate_keys_are_refused_naming_the_key() -> None:
    line = json.dumps(f.party("acme"))[:-1] + ', "entity_id": "bob"}'
    error = refused(line.encode())
    assert "the key 'entity_id' appears twice" in error.message
    nested = json.dumps(f.party("acme")).replace(
        '"publisher": "MOFCOM"', '"publisher": "MOFCOM", "publisher": "BIS"'
    )
    assert "the key 'publisher' appears twice" in refused(nested.encode()).message
    # An escaped colon cannot hide one; colons inside values are no duplicates.
    escaped = line.replace('"bob"', '"b\\u003ab"')
    assert "the key 'entity_id' appears twice" in refused(escaped.encode()).message
    fine = {**f.party("acme"), "summary": 'a "key": and more: colons', "name": "x\\u003a"}
    assert parse(fine).entity_id == "acme"


def test_a_type_that_is_not_a_string_is_named_so() -> None:
    error = refused({**f.party("acme"), "type": 5})
    assert error.field == "type"
    assert error.message.startswith(
        "type must be a string naming an event type, not the number 5; one of: "
    )
    assert refused({**f.party("acme"), "type": None}).message.startswith("missing event type")


@pytest.mark.parametrize(
    ("build", "field", "limit"),
    [
        (lambda n: {**f.party("acme"), "sources": [f.SRC] * n}, "sources", ev.MAX_SOURCES),
        (lambda n: f.licence(end_users=[f"eu-{i}" for i in range(n)]), "end_users", 1000),
        (
            lambda n: f.licence(items=[{"item": f"i{i}", "cap": "1"} for i in range(n)]),
            "items",
            1000,
        ),
    ],
)
def test_list_lengths_are_capped(build: Any, field: str, limit: int) -> None:
    parse(build(limit))
    error = refused(build(limit + 1))
    assert (error.field, error.message) == (field, f"too many entries: at most {limit}")


def test_an_event_larger_than_the_limit_is_refused_with_the_limit() -> None:
    note = "n" * 3900
    sources = [{**f.SRC, "note": note}] * ev.MAX_SOURCES  # 50 x ~4 KB: fits
    parse({**f.party("acme"), "sources": sources})
    big = f.licence(items=[{"item": f"i{i}", "cap": "1", "description": note} for i in range(200)])
    error = refused(big)
    assert error.message.startswith("the event is ")
    assert f"an event is at most {ev.MAX_EVENT_BYTES:,} bytes" in error.message
    assert ev.MAX_EVENT_BYTES < 1024 * 1024  # NATS's default max_payload


def test_an_overlong_line_is_refused_before_it_is_read_whole() -> None:
    stream = io.BytesIO(b'{"type": "x"}\n' + b" " * (MAX_LINE_BYTES + 10) + b"\n")
    lines = iter_lines(stream)
    assert next(lines)[0] == 1
    with pytest.raises(InputError) as caught:
        next(lines)
    assert caught.value.line == 2 and "bytes" in caught.value.message
    assert stream.tell() <= len(b'{"type": "x"}\n') + MAX_LINE_BYTES + 1


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (" 12.5", "' 12.5' is not a decimal number"),
        ("12.5\n", "'12.5\n' is not a decimal number"),
        ("1_000", "'1_000' is not a decimal number"),
        ("\u0661\u0662", "is not a decimal number"),
        ("lots", "'lots' is not a decimal number"),
        (12.5, 'write quantities as decimal text, e.g. "12.5"'),
    ],
)
def test_quantities_are_decimal_text_as_the_schema_says(given: object, message: str) -> None:
    """msgspec's Decimal takes padded text, underscores and other scripts' digits; the
    published schema does not, and neither does intake."""
    error = refused(f.usage(quantity=given))
    assert error.field == "quantity" and message in error.message, error.message
    cap = refused(f.licence(items=[{"item": "x", "cap": given}]))
    assert cap.field == "items[0].cap" and message in cap.message
    assert parse(f.usage(quantity="1E+3")).quantity == 1000  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("given", "field"),
    [("1E+100000000000", "quantity"), ("-1e+1000000000", "quantity"), ("1E-99999", "quantity")],
)
def test_quantities_are_refused_by_exponent_echoing_the_input(given: str, field: str) -> None:
    error = refused(f.usage(quantity=given))
    assert error.field == field
    assert error.message == (
        f"'{given}' is out of range: quantities are below 10^15 with at most 9 decimal places"
    )
    cap = refused(f.licence(items=[{"item": "x", "cap": "9" * 60 + "E+999999999"}]))
    assert cap.field == "items[0].cap" and cap.message.startswith("'" + "9" * 40 + "…'")
