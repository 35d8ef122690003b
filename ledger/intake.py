"""Turning operator input (JSON objects, JSONL lines) into typed events.

The operator supplies the fact; the ledger supplies the rest:

- ``event_id``: generated (UUIDv7, time-ordered) when absent; supply it to make re-sends
  idempotent.
- ``effective_at``: now when absent.  Bare dates follow the rules in ``ledger.times``.
- ``actor``: the configured actor when absent.
- ``recorded_at``: always set by the ledger; present in input only with ``--backfill``.
- ``entity_kind``: implied by the event type; for ``EventRetracted`` taken from the
  retracted event.

Every problem becomes an ``InputError`` naming the field (and, for a batch, the line).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Literal
from uuid import UUID

import msgspec

from ledger import events as ev
from ledger.errors import ConflictError, InputError, RuleViolation
from ledger.store.codec import NEUTRAL_STAMPS, content_hash, encode_event
from ledger.times import (
    CALENDAR_RANGE,
    TimeParseError,
    event_time_text,
    is_bare_date,
    within_calendar,
)

RetractionResolver = Callable[[UUID], tuple[str, str] | None]

_json_decoder = msgspec.json.Decoder()
_TYPE_NAMES = ", ".join(sorted(ev.EVENT_TYPES_BY_NAME))


class Submission(msgspec.Struct, gc=False):
    """One parsed event awaiting append.

    Holds only acyclic values, so it opts out of the cyclic garbage collector like the
    events do: a bulk import holds one per line, and every collector pass would scan them.
    """

    event: ev.Event
    line: int | None
    content_hash: bytes
    effective_defaulted: bool
    recorded_supplied: bool
    payload: bytes | None = None
    """The event's compact JSON as parsed (``encode_event(event)``), when the parser made it;
    the append reuses it instead of encoding the event again."""


def uuid7() -> UUID:
    """A time-ordered UUID (RFC 9562 version 7): index-friendly generated event ids."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return UUID(int=value)


def _normalise_time(
    obj: dict[str, Any], key: str, role: Literal["start", "end"], line: int | None, where: str
) -> None:
    value = obj.get(key)
    # (A bare date is 10 characters: skip longer strings before the pattern.)
    if isinstance(value, str) and len(value) == 10 and is_bare_date(value):
        try:
            obj[key] = event_time_text(value, role)
        except TimeParseError as exc:
            raise InputError(str(exc), field=f"{where}{key}", line=line) from None


def _normalise_times(obj: dict[str, Any], line: int | None) -> None:
    """Bare dates in time fields become instants (start or end of day UTC)."""
    for key in _START_KEYS:
        _normalise_time(obj, key, "start", line, "")
    for key in _END_KEYS:
        if key in obj:
            _normalise_time(obj, key, "end", line, "")
    clauses = obj.get("clauses")
    if isinstance(clauses, list):  # the only nested time field: a clause's effective_at
        for i, clause in enumerate(clauses):
            if isinstance(clause, dict):
                _normalise_time(clause, "effective_at", "start", line, f"clauses[{i}].")


_START_KEYS = tuple(ev.START_TIME_FIELDS)
_END_KEYS = tuple(ev.END_TIME_FIELDS)


_PATTERN_MEANING = {
    ev.ID_PATTERN: "must be visible text without control characters, bidirectional-text "
    "controls or leading/trailing spaces",
    ev.TEXT_PATTERN: "must not be blank, and tab and newline are the only control "
    "characters allowed",
    ev.OPTIONAL_TEXT_PATTERN: "tab and newline are the only control characters allowed",
    ev.CODE_PATTERN: "must be a two-letter country code in capitals (ISO 3166-1, e.g. CN)",
}
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
_PATH_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _value_at(obj: Any, path: str) -> Any:
    """The value at a msgspec error path (``sources[0].reference``) of the input, or None."""
    for name, index in _PATH_STEP.findall(path):
        if name and isinstance(obj, dict):
            obj = obj.get(name)
        elif index and isinstance(obj, list) and int(index) < len(obj):
            obj = obj[int(index)]
        else:
            return None
    return obj


def _which_character(value: object, pattern: str) -> str | None:
    """The character that broke a text pattern, in words (None: nothing specific)."""
    if not isinstance(value, str) or pattern == ev.CODE_PATTERN:
        return None
    free_text = pattern in (ev.TEXT_PATTERN, ev.OPTIONAL_TEXT_PATTERN)
    for char in value:
        code = ord(char)
        if free_text and char in "\t\n":
            continue
        if code < 0x20 or 0x7F <= code <= 0x9F:
            allowed = "; tab and newline are the only ones allowed" if free_text else ""
            return f"contains the control character U+{code:04X}{allowed}"
        if char in _BIDI_CONTROLS and pattern == ev.ID_PATTERN:
            return (
                f"contains U+{code:04X}, a bidirectional-text control (it changes the order "
                "in which the text is shown)"
            )
    if pattern == ev.ID_PATTERN and value:
        return "must not begin or end with a space or an invisible character"
    if pattern == ev.TEXT_PATTERN:
        return "must not be blank"
    return None


def validation_error(exc: msgspec.ValidationError, line: int | None, obj: Any = None) -> InputError:
    """msgspec's validation error as an ``InputError`` naming the field, in words."""
    text = str(exc)
    field: str | None = None
    if " - at `$" in text:
        # The last marker: an echoed value (an enum's, say) may hold the same words.
        text, _, path = text.rpartition(" - at `$")
        field = path.rstrip("`").lstrip(".") or None
    if "matching regex" in text:
        pattern = text.split("matching regex", 1)[1].strip(" '").replace("\\\\", "\\")
        specific = _which_character(_value_at(obj, field or ""), pattern)
        text = specific or _PATTERN_MEANING.get(pattern, f"does not match {pattern}")
    elif text.startswith("Expected `array` of length <= "):
        limit = text.rsplit(" ", 1)[1]
        text = f"too many entries: at most {limit}"
    elif text == "Invalid decimal string":
        given = ev.echo(_value_at(obj, field or ""))
        text = f"'{given}' is not a decimal number (digits, an optional point and exponent)"
    elif text == "Expected `int` >= 1":
        text = "must be a positive whole number"
    elif text == "Expected `str` of length >= 1":  # msgspec's words for ""
        text = "must not be empty"
    elif text == "Expected `array` of length >= 1":
        text = "must not be empty: give at least one"
    elif "datetime` with a timezone" in text:
        text += " (add 'Z' or an offset such as +08:00)"
    elif text.startswith("Invalid RFC3339"):
        text += " (use e.g. 2025-11-10, 2025-11-10T13:01:00+08:00 or 2025-11-10T05:01:00Z)"
    elif text.startswith("Object missing required field"):
        missing = text.split("`")[1] if "`" in text else None
        if missing:
            field = f"{field}.{missing}" if field else missing
            text = "required field is missing"
    elif text.startswith("Object contains unknown field"):
        unknown = text.split("`")[1] if "`" in text else None
        if unknown:
            field = f"{field}.{unknown}" if field else unknown
            text = "unknown field (not part of this event type; see `ledger schema`)"
    elif text.startswith("Expected `str` of length <= "):
        text = f"too long: at most {text.rsplit(' ', 1)[1]} characters"
    elif text == "Invalid UUID":
        given = ev.echo(_value_at(obj, field or ""))
        text = f"'{given}' is not a UUID (e.g. \"{UUID_EXAMPLE}\")"
    elif (
        (wrong := _WRONG_TYPE.fullmatch(text))
        and wrong[2] in _JSON_WORDS
        and (expected := _expected(wrong[1]))
    ):
        text = f"must be {expected}, not {_JSON_WORDS[wrong[2]]}"
    return InputError(text, field=field, line=line)


def _expected(names: str) -> str | None:
    """msgspec's expected type (``str``, ``uuid``, ``date | null``) in words, or None."""
    words = [_JSON_WORDS.get(name) or _VALUE_WORDS.get(name) for name in names.split(" | ")]
    if not all(words):
        return None
    return " or ".join(w for w in words if w)


UUID_EXAMPLE = "0190f3a1-7c2e-7d4a-9b1e-3f5a6c7d8e9f"
_WRONG_TYPE = re.compile(r"Expected `(\w+(?: \| \w+)*)`, got `(\w+)`")
_VALUE_WORDS = {
    "uuid": f'a UUID in a string (e.g. "{UUID_EXAMPLE}")',
    "datetime": 'a time in a string (e.g. "2025-11-10", "2025-11-10T13:01:00+08:00" or '
    '"2025-11-10T05:01:00Z")',
    "date": 'a date in a string (e.g. "2025-11-07")',
}
"""The types JSON has no word for, as the input must give them (times, dates and ids are
strings; messages said 'Expected `uuid`, got `int`')."""
_JSON_WORDS = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "array": "an array",
    "object": "an object",
}
"""msgspec's names of JSON's types, in JSON's words (messages said 'Expected `str`, got
`int`' and 'Expected `str` of length <= 200')."""


def parse_object(
    obj: Any,
    *,
    line: int | None = None,
    actor: str,
    now: dt.datetime,
    backfill: bool = False,
    resolve_retracted: RetractionResolver | None = None,
    owned: bool = False,
    ascii_only: bool = False,
) -> Submission:
    """Validate one decoded JSON object as an event, filling in the ledger's fields.

    ``owned=True`` lets the parser fill in the object in place (it was decoded for us);
    otherwise the caller's object is left untouched.  ``ascii_only`` says the object was
    decoded from ASCII text (so its ids need no Unicode normalisation).
    """
    if not isinstance(obj, dict):
        hint = (
            " (a batch is one event per line: see `ledger import`)" if isinstance(obj, list) else ""
        )
        raise InputError(
            f"expected a JSON object describing one event, got {_json_kind(obj)}{hint}",
            line=line,
        )
    type_name = obj.get("type")
    if type_name is None:
        raise InputError(f"missing event type; one of: {_TYPE_NAMES}", field="type", line=line)
    if not isinstance(type_name, str):
        raise InputError(
            f"type must be a string naming an event type, not {_json_kind(type_name)}; "
            f"one of: {_TYPE_NAMES}",
            field="type",
            line=line,
        )
    cls = ev.EVENT_TYPES_BY_NAME.get(type_name)
    if cls is None:
        raise InputError(
            f"unknown event type '{ev.echo(type_name)}'; known types: {_TYPE_NAMES}",
            field="type",
            line=line,
        )
    recorded_supplied = "recorded_at" in obj
    if recorded_supplied and not backfill:
        raise InputError(
            "the recorded time is set by the ledger; remove it "
            "(to migrate an existing record with its times, use `ledger import --backfill`)",
            field="recorded_at",
            line=line,
        )
    if backfill and not recorded_supplied:
        raise InputError(
            "--backfill takes each event's recorded time from the input; it is missing",
            field="recorded_at",
            line=line,
        )
    if recorded_supplied:
        recorded = obj.get("recorded_at")
        if isinstance(recorded, str) and is_bare_date(recorded):
            raise InputError(
                "a recorded time needs a time of day and an offset, not a bare date",
                field="recorded_at",
                line=line,
            )
    schema_version = obj.get("schema_version", 1)
    if isinstance(schema_version, int) and schema_version > cls.SCHEMA_VERSION:
        raise InputError(
            f"schema version {schema_version} is newer than this ledger understands "
            f"({cls.SCHEMA_VERSION}); upgrade the ledger",
            field="schema_version",
            line=line,
        )
    if not owned:
        obj = _json_decoder.decode(msgspec.json.encode(obj))
        ascii_only = False
    _normalise_times(obj, line)
    if not ascii_only:
        _normalise_ids(obj, _ID_FIELDS[cls])
    effective_defaulted = "effective_at" not in obj
    if effective_defaulted:
        obj["effective_at"] = now
    if "event_id" not in obj:
        obj["event_id"] = str(uuid7())
    if "actor" not in obj:
        obj["actor"] = actor
    if not recorded_supplied:
        obj["recorded_at"] = now
    if cls is ev.EventRetracted and ("entity_kind" not in obj or "entity_id" not in obj):
        _fill_retracted_entity(obj, line, resolve_retracted)
    try:
        event: ev.Event = msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, line, obj) from None
    if isinstance(event, ev.EventRetracted) and event.entity_kind == "":
        raise InputError("entity_kind is required", field="entity_kind", line=line)
    _check_quantities(event, obj, line)
    _check_instants(event, line)
    return _submission(event, line, effective_defaulted, recorded_supplied)


_INSTANT_FIELDS = ("effective_at", "recorded_at", *sorted(ev.END_TIME_FIELDS))
_INSTANTS_OF: dict[type[ev.Event], tuple[str, ...]] = {
    cls: tuple(name for name in _INSTANT_FIELDS if name in cls.__struct_fields__)
    for cls in ev.EVENT_TYPES
}
"""The instant fields each event type has (asked per event: no ``getattr`` of absent ones)."""
_WITH_CLAUSES = frozenset(cls for cls in ev.EVENT_TYPES if "clauses" in cls.__struct_fields__)
_WITH_QUANTITY = frozenset(cls for cls in ev.EVENT_TYPES if "quantity" in cls.__struct_fields__)
_WITH_ITEMS = frozenset(cls for cls in ev.EVENT_TYPES if "items" in cls.__struct_fields__)


def _check_instants(event: ev.Event, line: int | None) -> None:
    """Refuse instants so near an end of the calendar that showing them in another zone
    would fall off it (9999-12-31T23:00-05:00 is in year 10000 in UTC)."""
    cls = type(event)
    for name in _INSTANTS_OF.get(cls) or _INSTANT_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, dt.datetime) and not within_calendar(value):
            raise InputError(
                f"{value.isoformat()} is too close to an end of the calendar: {CALENDAR_RANGE}",
                field=name,
                line=line,
            )
    if cls not in _WITH_CLAUSES and cls in _INSTANTS_OF:
        return
    for i, clause in enumerate(getattr(event, "clauses", None) or ()):
        if isinstance(clause, ev.Clause) and not within_calendar(clause.effective_at):
            raise InputError(
                f"{clause.effective_at.isoformat()} is too close to an end of the calendar: "
                f"{CALENDAR_RANGE}",
                field=f"clauses[{i}].effective_at",
                line=line,
            )


def _json_kind(value: object) -> str:
    """What a decoded JSON value is, in JSON's words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {ev.echo(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return f'the string "{ev.echo(value)}"'
    return "null" if value is None else type(value).__name__


def _check_quantities(event: ev.Event, obj: dict[str, Any], line: int | None) -> None:
    """Refuse quantities whose exponent no message could echo in positional notation."""
    cls = type(event)
    if cls in _INSTANTS_OF and cls not in _WITH_QUANTITY and cls not in _WITH_ITEMS:
        return  # (an event type without quantities)
    quantity = getattr(event, "quantity", None)
    if isinstance(quantity, Decimal):
        given = obj.get("quantity")
        problem = ev.quantity_syntax_error(given) or ev.quantity_scale_error(quantity, given)
        if problem:
            raise InputError(problem, field="quantity", line=line)
    items = getattr(event, "items", None)
    for i, item in enumerate(items or ()):
        if isinstance(item, ev.LicenceItem):
            given = _value_at(obj, f"items[{i}].cap")
            problem = ev.quantity_syntax_error(given) or ev.quantity_scale_error(item.cap, given)
            if problem:
                raise InputError(problem, field=f"items[{i}].cap", line=line)


# --- ids in Unicode normal form C -----------------------------------------------------------

IdFields = dict[str, Any]
"""Where a type's ids are: field name -> ``True`` (an id), or the same map for the items
of a list or the fields of a nested struct."""


def _id_fields_of(node: Any) -> Any:
    from msgspec import inspect as mi

    if isinstance(node, mi.Metadata):
        return _id_fields_of(node.type)
    if isinstance(node, mi.StrType):
        return True if node.pattern == ev.ID_PATTERN else None
    if isinstance(node, mi.VarTupleType | mi.ListType):
        return _id_fields_of(node.item_type)
    if isinstance(node, mi.UnionType):
        for option in node.types:
            found = _id_fields_of(option)
            if found:
                return found
        return None
    if isinstance(node, mi.StructType):
        fields = {f.encode_name: _id_fields_of(f.type) for f in node.fields}
        return {name: found for name, found in fields.items() if found} or None
    return None


def _normalise_ids(value: Any, where: Any) -> Any:
    """``value`` with the ids that ``where`` points at in NFC (dicts changed in place)."""
    if isinstance(value, list):
        return [_normalise_ids(item, where) for item in value]
    if where is True:
        if isinstance(value, str) and not unicodedata.is_normalized("NFC", value):
            return unicodedata.normalize("NFC", value)
        return value
    if isinstance(value, dict) and isinstance(where, dict):
        for name, inner in where.items():
            if name in value:
                value[name] = _normalise_ids(value[name], inner)
    return value


def _build_id_fields() -> dict[type[ev.Event], IdFields]:
    from msgspec import inspect as mi

    out: dict[type[ev.Event], IdFields] = {}
    for cls in ev.EVENT_TYPES:
        info = mi.type_info(cls)
        out[cls] = _id_fields_of(info) or {} if isinstance(info, mi.StructType) else {}
    return out


_ID_FIELDS = _build_id_fields()


def _submission(
    event: ev.Event, line: int | None, effective_defaulted: bool, recorded_supplied: bool
) -> Submission:
    """A submission with its content hash, computed from the event's one encoding."""
    payload = encode_event(event)
    if len(payload) > ev.MAX_EVENT_BYTES:
        raise InputError(
            f"the event is {len(payload):,} bytes as stored; an event is at most "
            f"{ev.MAX_EVENT_BYTES:,} bytes (NATS refuses messages over 1 MiB)",
            line=line,
        )
    # The hash covers the encoding with the ledger's stamps neutral (see ``content_hash``);
    # they sit side by side in the envelope (and a quote inside a string value is always
    # escaped), so blanking them in the bytes equals encoding a copy with neutral stamps.
    stamps = _stamps(event.recorded_at, event.actor)
    neutral = payload.replace(stamps, NEUTRAL_STAMPS, 1)
    if neutral != payload:
        digest = hashlib.blake2b(neutral, digest_size=16).digest()
    else:
        digest = content_hash(event)
    return Submission(event, line, digest, effective_defaulted, recorded_supplied, payload)


_encoder_encode = msgspec.json.Encoder().encode
_last_stamps: tuple[dt.datetime, str, bytes] | None = None


def _stamps(recorded_at: dt.datetime, actor: str) -> bytes:
    """The encoded stamps of an event; a batch shares one time and actor, so the last
    result is kept (identity check: no hashing of aware datetimes)."""
    global _last_stamps
    last = _last_stamps
    if last is not None and last[0] is recorded_at and last[1] is actor:
        return last[2]
    stamps = b'"recorded_at":%s,"actor":%s' % (
        _encoder_encode(recorded_at),
        _encoder_encode(actor),
    )
    _last_stamps = (recorded_at, actor, stamps)
    return stamps


def _fill_retracted_entity(
    obj: dict[str, Any], line: int | None, resolve: RetractionResolver | None
) -> None:
    raw = obj.get("retracted_event_id")
    try:
        target = UUID(str(raw))
    except ValueError:
        raise InputError(
            f"'{ev.echo(raw)}' is not an event id (UUID)", field="retracted_event_id", line=line
        ) from None
    found = resolve(target) if resolve is not None else None
    if found is None:
        raise RuleViolation(
            "unknown-reference",
            f"no event {target} is recorded; nothing to retract",
            field="retracted_event_id",
            line=line,
        )
    obj.setdefault("entity_kind", found[0])
    obj.setdefault("entity_id", found[1])


def parse_json(
    data: bytes | str,
    *,
    line: int | None = None,
    actor: str,
    now: dt.datetime,
    backfill: bool = False,
    resolve_retracted: RetractionResolver | None = None,
) -> Submission:
    """Parse one event from JSON text."""
    if len(data) > MAX_LINE_BYTES:
        raise InputError(_too_long(len(data)), line=line)
    try:
        obj = _json_decoder.decode(data)
    except msgspec.DecodeError as exc:
        # Worded here, not by msgspec: its wording of the same fault changes between releases.
        if isinstance(data, bytes) and not _is_utf8(data):
            raise InputError("malformed JSON: the text is not valid UTF-8", line=line) from None
        if _starts_with_bom(data):
            raise InputError(
                "malformed JSON: a byte-order mark (BOM) is allowed only at the start of the input",
                line=line,
            ) from None
        raise InputError(f"malformed JSON: {exc}", line=line) from None
    except UnicodeError:
        raise InputError("malformed JSON: the text is not valid UTF-8", line=line) from None
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply", line=line) from None
    raw = data.encode() if isinstance(data, str) else data
    escaped = b"\\u" in raw
    if not _keys_unique(raw, obj, escaped):
        duplicate = _duplicate_key(raw)
        if duplicate is not None:
            raise InputError(
                f"the key '{ev.echo(duplicate)}' appears twice in one object; "
                "a fact must be unambiguous",
                line=line,
            )
    return parse_object(
        obj,
        line=line,
        actor=actor,
        now=now,
        backfill=backfill,
        resolve_retracted=resolve_retracted,
        owned=True,
        # (ASCII text may still spell other characters as \u escapes.)
        ascii_only=not escaped and raw.isascii(),
    )


MAX_LINE_BYTES = 4 * ev.MAX_EVENT_BYTES
"""Longer input is refused before it is decoded (room for whitespace around an event)."""


def _too_long(size: int | None) -> str:
    told = f"is {size:,} bytes" if size is not None else f"is over {MAX_LINE_BYTES:,} bytes"
    return (
        f"the input {told}; an event is at most {ev.MAX_EVENT_BYTES:,} bytes "
        f"(and its line at most {MAX_LINE_BYTES:,})"
    )


_encode = msgspec.json.encode


def _keys_unique(raw: bytes, obj: Any, escaped: bool) -> bool:
    """Whether no JSON object in ``raw`` repeated a key (decoding kept the last value).

    Cheap and exact for text without escaped colons: every key-value pair has one colon
    outside strings, and the colons inside strings survive decoding; the compact
    re-encoding has one colon per kept pair and the same colons inside strings.  A
    dropped pair takes its colon (and any in its value) with it.  When the counts differ,
    or a colon was escaped (``\\u003a``), the caller looks closer."""
    if escaped and b"\\u003" in raw:
        return False
    return raw.count(b":") == _encode(obj).count(b":")


class _DuplicateKey(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _duplicate_key(raw: bytes) -> str | None:
    """The first key repeated within one object of ``raw`` (valid JSON), or None."""
    try:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey as exc:
        return str(exc.args[0])
    except (ValueError, RecursionError):  # msgspec read it; the standard library could not
        return None
    return None


UTF8_BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte-order mark some editors (Notepad, Excel) write at the start of a file."""


def strip_bom(data: bytes) -> bytes:
    """``data`` without a byte-order mark at its very start (anywhere else it stays, and
    is malformed JSON)."""
    return data.removeprefix(UTF8_BOM)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _starts_with_bom(data: bytes | str) -> bool:
    return data.startswith(UTF8_BOM) if isinstance(data, bytes) else data.startswith("\ufeff")


def _bounded_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream's lines, refusing one longer than ``MAX_LINE_BYTES`` without reading it
    whole (a 1 GB line is not held in memory to be refused)."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise InputError(_too_long(None), line=number)
        yield raw


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a JSONL stream with their 1-based line numbers; a byte-order
    mark opening the stream is dropped."""
    lines = enumerate(_bounded_lines(stream), start=1)
    for number, raw in lines:  # the first line only: the loop below takes the rest
        stripped = strip_bom(raw).strip()
        if stripped:
            yield number, stripped
        break
    for number, raw in lines:
        stripped = raw.strip()
        if stripped:
            yield number, stripped


def check_backfilled_time(
    s: Submission,
    *,
    now: dt.datetime,
    latest: dt.datetime | None,
    previous: dt.datetime | None,
) -> dt.datetime:
    """A backfilled event's recorded time, checked against the ledger's clock (``now``),
    its latest recorded time and the previous new line's: the known-at axis only grows.
    Returns the time, the next line's ``previous``.  (The one rule for ``append`` and the
    streaming import alike.)"""
    from ledger.times import iso

    recorded = s.event.recorded_at
    if recorded > now:
        raise RuleViolation(
            "backfill-recorded-in-future",
            f"recorded time {iso(recorded)} is in the future",
            field="recorded_at",
            line=s.line,
        )
    if latest is not None and recorded < latest:
        raise RuleViolation(
            "backfill-before-ledger",
            f"recorded time {iso(recorded)} is earlier than the latest recorded time "
            f"already in the ledger ({iso(latest)}); the known-at axis cannot be rewritten",
            field="recorded_at",
            line=s.line,
        )
    if previous is not None and recorded < previous:
        raise RuleViolation(
            "backfill-recorded-decreases",
            f"recorded time {iso(recorded)} is earlier than the previous line's "
            f"{iso(previous)}; recorded times must never decrease",
            field="recorded_at",
            line=s.line,
        )
    return recorded


if TYPE_CHECKING:
    from ledger.store.index import IndexEntry


def check_resent(
    s: Submission, entry: IndexEntry, stored_event: Callable[[UUID], ev.Event | None]
) -> None:
    """An event id already in the ledger may be sent again (idempotency) only with the
    content stored under it; a send that left ``effective_at`` to the ledger also matches
    when all but the ledger's stamps and that time agree (a retry is effective later).
    ``stored_event`` reads the stored event, only for that case.  (The one rule for
    ``append`` and the streaming import alike.)"""
    if entry.content_hash == s.content_hash:
        return
    if s.effective_defaulted:
        stored = stored_event(entry.event_id)
        if stored is not None and content_hash(stored, without_effective=True) == content_hash(
            s.event, without_effective=True
        ):
            return
    raise ConflictError(
        "event-id-reused",
        f"event {s.event.event_id} is already recorded (position {entry.position}, "
        f"{entry.event_type} on {entry.entity_kind}:{entry.entity_id}) with "
        "different content",
        field="event_id",
        line=s.line,
    )


def check_repeated(s: Submission, first_hash: bytes, first_line: int | None) -> None:
    """An event id that appears twice in one batch (or file) must carry the same content
    both times: the second is then a duplicate of the first."""
    if first_hash == s.content_hash:
        return
    raise ConflictError(
        "event-id-reused",
        f"event {s.event.event_id} appears twice in the batch with different content"
        + (f" (first on line {first_line})" if first_line else ""),
        field="event_id",
        line=s.line,
    )
