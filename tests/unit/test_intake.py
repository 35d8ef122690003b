"""Intake's own rules and words, as pure unit tests: the recorded-time checks of a
backfill, the messages that name a fault and its field and line, and the line reader.
(They pin the behaviour the parser must keep when it is made faster, and kill the
mutants of ``ledger/intake.py``: see docs/mutation.md.)"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from ledger import events as ev
from ledger.errors import InputError, RuleViolation
from ledger.intake import Submission, check_backfilled_time, parse_json
from tests import factory as f

NOW = dt.datetime(2025, 12, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
TICK = dt.timedelta(microseconds=1)


def backfilled(recorded: dt.datetime, line: int | None = 7) -> Submission:
    obj = {**f.party("acme"), "recorded_at": recorded.isoformat()}
    return parse_json(json.dumps(obj), line=line, actor="tester", now=NOW, backfill=True)


def check(
    recorded: dt.datetime,
    *,
    latest: dt.datetime | None = None,
    previous: dt.datetime | None = None,
    line: int | None = 7,
) -> dt.datetime:
    return check_backfilled_time(
        backfilled(recorded, line), now=NOW, latest=latest, previous=previous
    )


def refused(recorded: dt.datetime, **kw: Any) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        check(recorded, **kw)
    return caught.value


# --- backfilled recorded times -----------------------------------------------------------


def test_a_backfilled_time_at_the_ledgers_clock_or_at_its_bounds_is_accepted() -> None:
    """Every bound is inclusive: now itself, the latest recorded time itself, the previous
    line's time itself (equal recorded times are allowed)."""
    assert check(NOW) == NOW
    assert check(NOW - HOUR, latest=NOW - HOUR, previous=NOW - HOUR) == NOW - HOUR
    assert check(NOW - HOUR, latest=None, previous=None) == NOW - HOUR
    assert check(NOW - HOUR, latest=NOW - 2 * HOUR, previous=NOW - 3 * HOUR) == NOW - HOUR


def test_a_backfilled_time_after_the_ledgers_clock_is_refused() -> None:
    error = refused(NOW + TICK, latest=NOW - HOUR, previous=NOW - HOUR)
    assert (error.rule, error.field, error.line) == (
        "backfill-recorded-in-future",
        "recorded_at",
        7,
    )
    assert error.message == "recorded time 2025-12-01T12:00:00.000001Z is in the future"


def test_a_backfilled_time_before_the_ledgers_latest_is_refused() -> None:
    error = refused(NOW - HOUR - TICK, latest=NOW - HOUR, previous=None, line=3)
    assert (error.rule, error.field, error.line) == ("backfill-before-ledger", "recorded_at", 3)
    assert error.message == (
        "recorded time 2025-12-01T10:59:59.999999Z is earlier than the latest recorded time "
        "already in the ledger (2025-12-01T11:00:00Z); the known-at axis cannot be rewritten"
    )


def test_a_backfilled_time_before_the_previous_lines_is_refused() -> None:
    error = refused(NOW - HOUR - TICK, latest=NOW - 2 * HOUR, previous=NOW - HOUR, line=4)
    assert (error.rule, error.field, error.line) == (
        "backfill-recorded-decreases",
        "recorded_at",
        4,
    )
    assert error.message == (
        "recorded time 2025-12-01T10:59:59.999999Z is earlier than the previous line's "
        "2025-12-01T11:00:00Z; recorded times must never decrease"
    )


def test_the_ledgers_latest_is_checked_before_the_previous_line() -> None:
    error = refused(NOW - 3 * HOUR, latest=NOW - HOUR, previous=NOW - 2 * HOUR)
    assert error.rule == "backfill-before-ledger"


def test_the_future_is_checked_first() -> None:
    error = refused(NOW + HOUR, latest=NOW + 2 * HOUR, previous=NOW + 2 * HOUR)
    assert error.rule == "backfill-recorded-in-future"


def test_a_backfilled_time_keeps_its_offset_in_the_message() -> None:
    tz = dt.timezone(dt.timedelta(hours=8))
    error = refused((NOW + HOUR).astimezone(tz), line=None)
    assert error.line is None
    assert error.message == "recorded time 2025-12-01T21:00:00+08:00 is in the future"


# --- the words of a refusal: field, line and message ---------------------------------------

LINE = 5


def refusal(data: Any, **kw: Any) -> InputError:
    """The refusal of ``data`` (a JSON-able object, or the text itself) parsed as line 5."""
    text = data if isinstance(data, bytes | str) else json.dumps(data)
    with pytest.raises(InputError) as caught:
        parse_json(text, line=LINE, actor="tester", now=NOW, **kw)
    return caught.value


def said(error: InputError) -> tuple[str | None, str, int | None]:
    return error.field, error.message, error.line


@pytest.mark.parametrize(
    ("obj", "field", "message"),
    [
        (
            {k: v for k, v in f.party("acme").items() if k != "name"},
            "name",
            "required field is missing",
        ),
        (
            {**f.party("acme"), "sources": [{k: v for k, v in f.SRC.items() if k != "reference"}]},
            "sources[0].reference",
            "required field is missing",
        ),
        (
            {**f.party("acme"), "colour": "red"},
            "colour",
            "unknown field (not part of this event type; see `ledger schema`)",
        ),
        (
            {**f.party("acme"), "sources": [{**f.SRC, "colour": "red"}]},
            "sources[0].colour",
            "unknown field (not part of this event type; see `ledger schema`)",
        ),
        (
            {**f.party("acme"), "effective_at": "2025-01-01T10:00:00"},
            "effective_at",
            "Expected `datetime` with a timezone component (add 'Z' or an offset such as +08:00)",
        ),
        (
            {**f.party("acme"), "effective_at": "2025-13-01T10:00:00Z"},
            "effective_at",
            "Invalid RFC3339 encoded datetime "
            "(use e.g. 2025-11-10, 2025-11-10T13:01:00+08:00 or 2025-11-10T05:01:00Z)",
        ),
        (
            {**f.party("acme"), "schema_version": 0},
            "schema_version",
            "must be a positive whole number",
        ),
        ({**f.party("acme"), "entity_id": 5}, "entity_id", "must be a string, not a whole number"),
        # An enum's message echoes the value: the field is found after the last marker.
        (
            {**f.party("acme"), "sources": [{**f.SRC, "status": "a - at `$b"}]},
            "sources[0].status",
            "Invalid enum value 'a - at `$b'",
        ),
    ],
)
def test_a_malformed_field_is_named_with_its_line_in_words(
    obj: Any, field: str, message: str
) -> None:
    assert said(refusal(obj)) == (field, message, LINE)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        # The C1 controls run from U+007F to U+009F inclusive; U+00A0 is a blank, not one.
        ({"entity_id": "a\x7f"}, "entity_id", "contains the control character U+007F"),
        ({"entity_id": "a\x9f"}, "entity_id", "contains the control character U+009F"),
        ({"entity_id": "acme\n"}, "entity_id", "contains the control character U+000A"),
        ({"name": "\u00a0"}, "name", "must not be blank"),
        # Tab is skipped in free text; the control character after it is still found.
        (
            {"name": "\tAc\x1bme"},
            "name",
            "contains the control character U+001B; tab and newline are the only ones allowed",
        ),
        (
            {"entity_id": "ac\u202eme"},
            "entity_id",
            "contains U+202E, a bidirectional-text control (it changes the order in which "
            "the text is shown)",
        ),
        (
            {"entity_id": "\ufeffacme"},
            "entity_id",
            "must not begin or end with a space or an invisible character",
        ),
        (
            {"country": "de"},
            "country",
            "must be a two-letter country code in capitals (ISO 3166-1, e.g. CN)",
        ),
    ],
)
def test_the_character_that_breaks_a_text_field_is_named(
    change: dict[str, Any], field: str, message: str
) -> None:
    assert said(refusal({**f.party("acme"), **change})) == (field, message, LINE)


@pytest.mark.parametrize(
    ("given", "kind"),
    [(True, "a boolean"), ([], "an array"), ({}, "an object"), (1.5, "the number 1.5")],
)
def test_a_type_that_is_not_a_string_is_named_in_jsons_words(given: object, kind: str) -> None:
    error = refusal({**f.party("acme"), "type": given})
    assert error.message.startswith(f"type must be a string naming an event type, not {kind}; ")
    assert (error.field, error.line) == ("type", LINE)


def test_a_value_at_a_path_that_is_not_in_the_input_is_none() -> None:
    from ledger.intake import _value_at

    obj = {"items": [{"cap": "1"}], "name": "x"}
    assert _value_at(obj, "items[0].cap") == "1"
    assert _value_at(obj, "items[1].cap") is None  # one past the end
    assert _value_at(obj, "name[0]") is None  # an index into text
    assert _value_at(obj, "items.cap") is None  # a name into a list
    assert _value_at(obj, "") == obj


END = "9999-12-31T23:00:00-05:00"
RANGE = "times fall between 0001-01-02 and 9999-12-30 (UTC)"


@pytest.mark.parametrize(
    ("obj", "field", "value"),
    [
        ({**f.party("acme"), "effective_at": END}, "effective_at", END),
        (
            {**f.party("acme"), "effective_at": "0001-01-01T01:00:00+05:00"},
            "effective_at",
            "0001-01-01T01:00:00+05:00",
        ),
        (f.licence(valid_until=END), "valid_until", END),
        (
            f.measure(clauses=[{**f.measure()["clauses"][0], "effective_at": END}]),
            "clauses[0].effective_at",
            END,
        ),
    ],
)
def test_an_instant_near_an_end_of_the_calendar_is_refused(
    obj: Any, field: str, value: str
) -> None:
    message = f"{value} is too close to an end of the calendar: {RANGE}"
    assert said(refusal(obj)) == (field, message, LINE)


def test_a_quantity_out_of_range_is_refused_on_its_line() -> None:
    error = refusal(f.usage(quantity="1E+100000000000"))
    assert said(error) == (
        "quantity",
        "'1E+100000000000' is out of range: quantities are below 10^15 with at most 9 "
        "decimal places",
        LINE,
    )


# --- malformed text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"type": ', "malformed JSON: Input data was truncated"),
        ('{"type": ', "malformed JSON: Input data was truncated"),
        (b'{"type": "\xff"}', "malformed JSON: the text is not valid UTF-8"),
        ('{"type": "\ud800"}', "malformed JSON: the text is not valid UTF-8"),
        (
            b'\xef\xbb\xbf{"type": "PartyRegistered"}',
            "malformed JSON: a byte-order mark (BOM) is allowed only at the start of the input",
        ),
        (
            '\ufeff{"type": "PartyRegistered"}',
            "malformed JSON: a byte-order mark (BOM) is allowed only at the start of the input",
        ),
        (b"[" * 100_000, "malformed JSON: nested too deeply"),
    ],
)
def test_malformed_json_is_refused_on_its_line_in_words(data: bytes | str, message: str) -> None:
    assert said(refusal(data)) == (None, message, LINE)


def test_text_as_long_as_a_line_may_be_is_read_and_one_byte_more_is_refused() -> None:
    from ledger.intake import MAX_LINE_BYTES

    event = json.dumps(f.party("acme")).encode()
    padded = event + b" " * (MAX_LINE_BYTES - len(event))
    for data in (padded, padded.decode()):
        assert parse_json(data, line=LINE, actor="tester", now=NOW).event.entity_id == "acme"
    assert said(refusal(padded + b" ")) == (
        None,
        "the input is 2,097,153 bytes; an event is at most 524,288 bytes "
        "(and its line at most 2,097,152)",
        LINE,
    )


def test_a_duplicate_key_is_refused_on_its_line() -> None:
    line = json.dumps(f.party("acme"))[:-1] + ', "entity_id": "bob"}'
    assert said(refusal(line)) == (
        None,
        "the key 'entity_id' appears twice in one object; a fact must be unambiguous",
        LINE,
    )


def test_an_event_exactly_at_the_size_limit_is_accepted_and_one_byte_more_is_refused() -> None:
    from ledger import events as ev

    note = "n" * 3000

    def sized(full: int, last: int) -> dict[str, Any]:
        items = [{"item": f"i{i}", "cap": "1", "description": note} for i in range(full)]
        return f.licence(items=[*items, {"item": "last", "cap": "1", "description": "d" * last}])

    def size(obj: dict[str, Any]) -> int:
        return len(parse_json(json.dumps(obj), actor="tester", now=NOW).payload or b"")

    per_item = size(sized(1, 1)) - size(sized(0, 1))
    full = (ev.MAX_EVENT_BYTES - size(sized(0, 1))) // per_item  # the last one fits the rest
    last = 1 + ev.MAX_EVENT_BYTES - size(sized(full, 1))
    assert size(sized(full, last)) == ev.MAX_EVENT_BYTES
    error = refusal(sized(full, last + 1))
    assert said(error) == (
        None,
        f"the event is {ev.MAX_EVENT_BYTES + 1:,} bytes as stored; an event is at most "
        f"{ev.MAX_EVENT_BYTES:,} bytes (NATS refuses messages over 1 MiB)",
        LINE,
    )


# --- what a submission carries -------------------------------------------------------------


def test_a_submission_carries_its_line_hash_payload_and_what_was_supplied() -> None:
    from ledger.store.codec import content_hash, encode_event

    fact = json.dumps({**f.party("acme"), "event_id": TARGET})
    s = parse_json(fact, line=LINE, actor="tester", now=NOW)
    assert s.line == LINE
    assert s.content_hash == content_hash(s.event)
    assert len(s.content_hash) == 16
    assert s.payload == encode_event(s.event)
    assert s.recorded_supplied is False
    assert s.effective_defaulted is False
    assert (s.event.recorded_at, s.event.actor) == (NOW, "tester")
    # The hash leaves out the ledger's stamps: the same fact by another actor, later.
    later = parse_json(fact, actor="other", now=NOW + HOUR)
    assert later.content_hash == s.content_hash
    b = backfilled(NOW - HOUR)
    assert (b.recorded_supplied, b.event.recorded_at) == (True, NOW - HOUR)
    assert b.content_hash == content_hash(b.event)


def test_a_backfill_is_passed_on_by_the_text_parser() -> None:
    obj = {**f.party("acme"), "recorded_at": "2025-11-01T00:00:00Z"}
    s = parse_json(json.dumps(obj), actor="tester", now=NOW, backfill=True)
    assert s.event.recorded_at == dt.datetime(2025, 11, 1, tzinfo=dt.UTC)


# --- retractions ---------------------------------------------------------------------------

TARGET = "0190d5c2-0000-7000-8000-000000000000"


def retraction(**kw: Any) -> dict[str, Any]:
    return {"type": "EventRetracted", "reason": "entered twice", "sources": [f.SRC], **kw}


def test_a_retraction_takes_its_entity_from_the_retracted_event() -> None:
    from uuid import UUID

    asked: list[UUID] = []

    def resolve(event_id: UUID) -> tuple[str, str] | None:
        asked.append(event_id)
        return ("party", "acme")

    s = parse_json(
        json.dumps(retraction(retracted_event_id=TARGET)),
        actor="tester",
        now=NOW,
        resolve_retracted=resolve,
    )
    assert (s.event.entity_kind, s.event.entity_id) == ("party", "acme")
    assert asked == [UUID(TARGET)]


def test_a_retraction_of_an_unknown_or_malformed_event_id_is_refused() -> None:
    error = refusal(retraction(retracted_event_id="nope"))
    assert said(error) == ("retracted_event_id", "'nope' is not an event id (UUID)", LINE)
    for kw in ({}, {"resolve_retracted": lambda _id: None}):
        with pytest.raises(RuleViolation) as caught:
            parse_json(
                json.dumps(retraction(retracted_event_id=TARGET)),
                line=LINE,
                actor="tester",
                now=NOW,
                **kw,  # type: ignore[arg-type]
            )
        assert said(caught.value) == (  # type: ignore[arg-type]
            "retracted_event_id",
            f"no event {TARGET} is recorded; nothing to retract",
            LINE,
        )
        assert caught.value.rule == "unknown-reference"


# --- the line reader -----------------------------------------------------------------------


def test_lines_are_numbered_from_one_skipping_blank_ones_and_a_leading_bom() -> None:
    import io

    from ledger.intake import iter_lines

    stream = io.BytesIO(b'\xef\xbb\xbf{"a": 1}\n\n  \r\n {"b": 2} \n{"c": 3}')
    assert list(iter_lines(stream)) == [(1, b'{"a": 1}'), (4, b'{"b": 2}'), (5, b'{"c": 3}')]


def test_a_line_as_long_as_allowed_is_read_with_or_without_its_newline() -> None:
    import io

    from ledger.intake import MAX_LINE_BYTES, iter_lines

    line = b" " * (MAX_LINE_BYTES - 1) + b"x"
    assert list(iter_lines(io.BytesIO(line + b"\n" + line))) == [(1, b"x"), (2, b"x")]
    with pytest.raises(InputError) as caught:
        list(iter_lines(io.BytesIO(b"\n" + line + b"y")))
    assert said(caught.value) == (
        None,
        "the input is over 2,097,152 bytes; an event is at most 524,288 bytes "
        "(and its line at most 2,097,152)",
        2,
    )


def test_the_id_fields_are_those_with_the_id_pattern() -> None:
    """The map that says which strings are ids (normalised to NFC), rebuilt from the
    event types: a licence's exporter and end users and its items' patterns, a
    measure's clause ids, never free text."""
    from ledger import events as ev
    from ledger.intake import _ID_FIELDS, _build_id_fields

    built = _build_id_fields()
    assert built == _ID_FIELDS
    assert set(built) == set(ev.EVENT_TYPES)
    party = built[ev.PartyRegistered]
    assert party["entity_id"] is True and "name" not in party
    licence = built[ev.LicenceGranted]
    assert licence["exporter"] is True and licence["end_users"] is True
    assert built[ev.MeasurePublished]["clauses"]["clause_id"] is True


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({**f.party("acme"), "effective_at": "2025-02-30"}, "effective_at"),
        (f.licence(valid_until="2025-02-30"), "valid_until"),
        (
            f.measure(clauses=[{**f.measure()["clauses"][0], "effective_at": "2025-02-30"}]),
            "clauses[0].effective_at",
        ),
    ],
)
def test_a_bare_date_that_is_no_date_is_refused_naming_the_field(obj: Any, field: str) -> None:
    message = "'2025-02-30' is not a date (day is out of range for month)"
    assert said(refusal(obj)) == (field, message, LINE)


@pytest.mark.parametrize(
    ("given", "got"),
    [
        ([f.party("acme")], "an array (a batch is one event per line: see `ledger import`)"),
        ('"acme"', 'the string "acme"'),  # (text: the JSON string "acme")
        (5, "the number 5"),
        (None, "null"),  # they said Python's names: list, str, int, NoneType
    ],
)
def test_input_that_is_not_an_object_is_refused_saying_what_it_is(given: Any, got: str) -> None:
    assert said(refusal(given)) == (
        None,
        f"expected a JSON object describing one event, got {got}",
        LINE,
    )


def test_ids_of_an_owned_object_are_put_in_normal_form_c() -> None:
    """The default for a decoded object handed over (``owned``) is to normalise its ids:
    only the text parser knows when the input was ASCII."""
    from ledger.intake import parse_object

    s = parse_object(f.party("Cafe\u0301"), actor="tester", now=NOW, owned=True)
    assert s.event.entity_id == "Caf\u00e9"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (f.usage(quantity="1E+100000000000"), "quantity"),
        (f.licence(items=[{"item": "x", "cap": "1E+100000000000", "unit": "kg"}]), "items[0].cap"),
    ],
)
def test_a_quantity_out_of_range_is_refused_naming_field_and_line(obj: Any, field: str) -> None:
    error = refusal(obj)
    assert (error.field, error.line) == (field, LINE)
    assert error.message.startswith("'1E+100000000000' is out of range")


def test_generated_event_ids_hold_the_time_in_ms_and_74_random_bits() -> None:
    """RFC 9562 version 7: 48 bits of Unix time in ms, version 7, 12 random bits, variant
    10, 62 random bits.  (Each random bit is 0 in all 200 ids with odds 2^-200.)"""
    import time

    from ledger.intake import uuid7

    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(200)]
    after = time.time_ns() // 1_000_000
    assert all(before <= u.int >> 80 <= after for u in ids)
    assert all(u.version == 7 and (u.int >> 62) & 0b11 == 0b10 for u in ids)
    rand_a = [(u.int >> 64) & 0xFFF for u in ids]
    rand_b = [u.int & ((1 << 62) - 1) for u in ids]
    for bit in range(12):
        assert any(r >> bit & 1 for r in rand_a), bit
    for bit in range(62):
        assert any(r >> bit & 1 for r in rand_b), bit
    assert len(set(rand_b)) == len(ids)


TYPES = ", ".join(sorted(ev.EVENT_TYPES_BY_NAME))


@pytest.mark.parametrize(
    ("obj", "kw", "field", "message"),
    [
        (
            {k: v for k, v in f.party("acme").items() if k != "type"},
            {},
            "type",
            f"missing event type; one of: {TYPES}",
        ),
        (
            {**f.party("acme"), "type": "Nope"},
            {},
            "type",
            f"unknown event type 'Nope'; known types: {TYPES}",
        ),
        (
            {**f.party("acme"), "recorded_at": "2025-01-01T00:00:00Z"},
            {},
            "recorded_at",
            "the recorded time is set by the ledger; remove it (to migrate an existing record "
            "with its times, use `ledger import --backfill`)",
        ),
        (
            f.party("acme"),
            {"backfill": True},
            "recorded_at",
            "--backfill takes each event's recorded time from the input; it is missing",
        ),
        (
            {**f.party("acme"), "recorded_at": "2025-01-01"},
            {"backfill": True},
            "recorded_at",
            "a recorded time needs a time of day and an offset, not a bare date",
        ),
        (
            {**f.party("acme"), "schema_version": 99},
            {},
            "schema_version",
            "schema version 99 is newer than this ledger understands (1); upgrade the ledger",
        ),
    ],
)
def test_the_envelope_is_checked_naming_field_and_line(
    obj: Any, kw: dict[str, Any], field: str, message: str
) -> None:
    assert said(refusal(obj, **kw)) == (field, message, LINE)


def test_an_id_that_is_not_text_is_refused_before_it_is_normalised() -> None:
    from ledger.intake import parse_object

    with pytest.raises(InputError) as caught:
        parse_object({**f.party("acme"), "entity_id": 5}, line=LINE, actor="tester", now=NOW)
    assert said(caught.value) == ("entity_id", "must be a string, not a whole number", LINE)


def test_a_generated_id_holds_the_exact_millisecond_even_an_odd_one() -> None:
    import time

    from ledger.intake import uuid7

    for _ in range(100_000):
        before = time.time_ns() // 1_000_000
        u = uuid7()
        if before % 2 and time.time_ns() // 1_000_000 == before:
            assert u.int >> 80 == before
            return
    pytest.fail("no odd millisecond seen")


def test_ids_of_an_object_not_owned_are_put_in_normal_form_c_on_a_copy() -> None:
    from ledger.intake import parse_object

    given = f.party("Cafe\u0301")
    s = parse_object(given, actor="tester", now=NOW)
    assert s.event.entity_id == "Caf\u00e9"
    assert given["entity_id"] == "Cafe\u0301"  # the caller's object is left as it was


def test_an_actor_given_in_the_input_is_kept() -> None:
    s = parse_json(json.dumps({**f.party("acme"), "actor": "alice"}), actor="tester", now=NOW)
    assert s.event.actor == "alice"


def test_a_retraction_naming_its_entity_is_not_resolved() -> None:
    obj = retraction(retracted_event_id=TARGET, entity_kind="party", entity_id="acme")
    s = parse_json(json.dumps(obj), actor="tester", now=NOW)  # no resolver: none needed
    assert (s.event.entity_kind, s.event.entity_id) == ("party", "acme")


@pytest.mark.parametrize("given", [{"entity_kind": "party"}, {"entity_id": "acme"}])
def test_a_retraction_naming_half_its_entity_is_completed_from_the_retracted_event(
    given: dict[str, str],
) -> None:
    obj = retraction(retracted_event_id=TARGET, **given)
    s = parse_json(
        json.dumps(obj), actor="tester", now=NOW, resolve_retracted=lambda _: ("party", "acme")
    )
    assert (s.event.entity_kind, s.event.entity_id) == ("party", "acme")


def test_a_retraction_with_an_empty_entity_kind_is_refused() -> None:
    obj = retraction(retracted_event_id=TARGET, entity_kind="", entity_id="acme")
    assert said(refusal(obj)) == ("entity_kind", "Invalid enum value ''", LINE)


@pytest.mark.parametrize(
    ("changed", "field", "message"),
    [
        ({"entity_id": ""}, "entity_id", "must not be empty"),
        ({"name": ""}, "name", "must not be empty"),
        ({"roles": []}, "roles", "must not be empty: give at least one"),
    ],
)
def test_empty_text_and_lists_are_refused_in_words(
    changed: dict[str, Any], field: str, message: str
) -> None:
    """They said msgspec's 'Expected `str` of length >= 1' and 'Expected `array` of
    length >= 1'."""
    assert said(refusal({**f.party("acme"), **changed})) == (field, message, LINE)


# --- the survivors of mutation testing on 3 Dec (docs/mutation.md) -------------------------


def test_the_first_stamps_of_a_process_are_encoded_not_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stamps cache starts empty in a new process: the first event encodes its
    stamps (it failed on an empty cache: ``None[0]``)."""
    from ledger import intake

    monkeypatch.setattr(intake, "_last_stamps", None)
    s = parse_json(json.dumps(f.party("acme")), actor="tester", now=NOW)
    assert b'"actor":"tester"' in s.payload and s.event.recorded_at == NOW


def test_the_stamps_cache_keeps_the_last_result_for_the_same_time_and_actor_only() -> None:
    """A batch shares one recorded time and actor, so the last encoding is kept and
    handed out again (the same bytes object); another time, or another actor, is
    encoded afresh, never served the last one's stamps."""
    from ledger.intake import _stamps

    later = NOW + HOUR
    actor = "tester"
    first = _stamps(NOW, actor)
    assert first == b'"recorded_at":"2025-12-01T12:00:00Z","actor":"tester"'
    assert _stamps(NOW, actor) is first
    assert _stamps(later, actor) == b'"recorded_at":"2025-12-01T13:00:00Z","actor":"tester"'
    assert _stamps(later, "alice") == b'"recorded_at":"2025-12-01T13:00:00Z","actor":"alice"'
    assert _stamps(NOW, "alice") == b'"recorded_at":"2025-12-01T12:00:00Z","actor":"alice"'


@pytest.mark.parametrize(
    ("given", "got"),
    [(("acme",), "tuple"), (frozenset(), "frozenset"), (b"{}", "bytes")],
)
def test_a_python_caller_passing_what_json_cannot_hold_is_told_its_type(
    given: Any, got: str
) -> None:
    """``parse_object`` takes any Python value (``append_objects``): one that no JSON
    decodes to is named by its Python type (not 'NoneType'), as the object and as the
    type."""
    from ledger.intake import parse_object

    with pytest.raises(InputError) as caught:
        parse_object(given, line=LINE, actor="tester", now=NOW)
    assert caught.value.message == f"expected a JSON object describing one event, got {got}"
    with pytest.raises(InputError) as caught:
        parse_object({**f.party("acme"), "type": given}, line=LINE, actor="tester", now=NOW)
    assert caught.value.message.startswith(
        f"type must be a string naming an event type, not {got};"
    )


@pytest.mark.parametrize("text", ["Object missing required field", "Object contains unknown field"])
def test_a_validation_message_without_a_field_name_is_kept_as_it_is(text: str) -> None:
    """msgspec names the missing or unknown field in backticks; a message without one
    (another msgspec's wording) is passed on as it is, not a crash."""
    import msgspec

    from ledger.intake import validation_error

    error = validation_error(msgspec.ValidationError(text), LINE)
    assert said(error) == (None, text, LINE)
    nested = validation_error(msgspec.ValidationError(f"{text} - at `$.sources[0]`"), LINE)
    assert said(nested) == ("sources[0]", text, LINE)


UUID_WORDS = 'must be a UUID in a string (e.g. "0190f3a1-7c2e-7d4a-9b1e-3f5a6c7d8e9f")'
TIME_WORDS = (
    'must be a time in a string (e.g. "2025-11-10", "2025-11-10T13:01:00+08:00" or '
    '"2025-11-10T05:01:00Z")'
)


@pytest.mark.parametrize(
    ("changed", "field", "message"),
    [
        ({"event_id": 5}, "event_id", f"{UUID_WORDS}, not a whole number"),
        ({"event_id": 5.5}, "event_id", f"{UUID_WORDS}, not a number"),
        ({"event_id": None}, "event_id", f"{UUID_WORDS}, not null"),
        (
            {"event_id": "nope"},
            "event_id",
            """'nope' is not a UUID (e.g. "0190f3a1-7c2e-7d4a-9b1e-3f5a6c7d8e9f")""",
        ),
        ({"effective_at": 5}, "effective_at", f"{TIME_WORDS}, not a whole number"),
        ({"effective_at": 1.7e9}, "effective_at", f"{TIME_WORDS}, not a number"),
        ({"effective_at": True}, "effective_at", f"{TIME_WORDS}, not true or false"),
        ({"effective_at": [2025]}, "effective_at", f"{TIME_WORDS}, not an array"),
        (
            {"sources": [{**f.SRC, "published_on": 20251107}]},
            "sources[0].published_on",
            'must be a date in a string (e.g. "2025-11-07") or null, not a whole number',
        ),
    ],
)
def test_a_uuid_or_a_time_of_the_wrong_json_type_is_refused_in_words(
    changed: dict[str, Any], field: str, message: str
) -> None:
    """A UUID, a time or a date given as a number (or any other JSON type than a string)
    is refused like other wrong types: the field, what it must be with an example, what
    was given (the old messages were msgspec's 'Expected `uuid`, got `int`')."""
    assert said(refusal({**f.party("acme"), **changed})) == (field, message, LINE)


@pytest.mark.parametrize(
    "text", ["Expected `uuid`, got `decimal`", "Expected `uuid | Struct`, got `int`"]
)
def test_a_wrong_type_msgspec_has_other_words_for_keeps_them(text: str) -> None:
    """Only types with words here are put in words; others keep msgspec's message."""
    import msgspec

    from ledger.intake import validation_error

    error = validation_error(msgspec.ValidationError(f"{text} - at `$.event_id`"), LINE)
    assert said(error) == ("event_id", text, LINE)
