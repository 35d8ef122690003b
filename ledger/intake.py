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
import secrets
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal
from uuid import UUID

import msgspec

from ledger import events as ev
from ledger.errors import InputError, RuleViolation
from ledger.store.codec import NEUTRAL_STAMPS, content_hash, encode_event
from ledger.times import TimeParseError, event_time_text, is_bare_date

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
    ev.ID_PATTERN: "must be text without control characters or leading/trailing spaces",
    ev.NO_NUL: "must not contain NUL characters",
    ev.CODE_PATTERN: "must be a two-letter country code in capitals (ISO 3166-1, e.g. CN)",
}


def validation_error(exc: msgspec.ValidationError, line: int | None) -> InputError:
    """msgspec's validation error as an ``InputError`` naming the field, in words."""
    text = str(exc)
    field: str | None = None
    if " - at `$" in text:
        text, _, path = text.partition(" - at `$")
        field = path.rstrip("`").lstrip(".") or None
    if "matching regex" in text:
        pattern = text.split("matching regex", 1)[1].strip(" '")
        text = _PATTERN_MEANING.get(pattern.replace("\\\\", "\\"), f"does not match {pattern}")
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
    return InputError(text, field=field, line=line)


def parse_object(
    obj: Any,
    *,
    line: int | None = None,
    actor: str,
    now: dt.datetime,
    backfill: bool = False,
    resolve_retracted: RetractionResolver | None = None,
    owned: bool = False,
) -> Submission:
    """Validate one decoded JSON object as an event, filling in the ledger's fields.

    ``owned=True`` lets the parser fill in the object in place (it was decoded for us);
    otherwise the caller's object is left untouched.
    """
    if not isinstance(obj, dict):
        hint = (
            " (a batch is one event per line: see `ledger import`)" if isinstance(obj, list) else ""
        )
        raise InputError(
            f"expected a JSON object describing one event, got {type(obj).__name__}{hint}",
            line=line,
        )
    type_name = obj.get("type")
    if not isinstance(type_name, str):
        raise InputError(f"missing event type; one of: {_TYPE_NAMES}", field="type", line=line)
    cls = ev.EVENT_TYPES_BY_NAME.get(type_name)
    if cls is None:
        raise InputError(
            f"unknown event type '{type_name}'; known types: {_TYPE_NAMES}",
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
    _normalise_times(obj, line)
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
        raise validation_error(exc, line) from None
    if isinstance(event, ev.EventRetracted) and event.entity_kind == "":
        raise InputError("entity_kind is required", field="entity_kind", line=line)
    return _submission(event, line, effective_defaulted, recorded_supplied)


def _submission(
    event: ev.Event, line: int | None, effective_defaulted: bool, recorded_supplied: bool
) -> Submission:
    """A submission with its content hash, computed from the event's one encoding."""
    payload = encode_event(event)
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
            f"'{raw}' is not an event id (UUID)", field="retracted_event_id", line=line
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
    return parse_object(
        obj,
        line=line,
        actor=actor,
        now=now,
        backfill=backfill,
        resolve_retracted=resolve_retracted,
        owned=True,
    )


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


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a JSONL stream with their 1-based line numbers; a byte-order
    mark opening the stream is dropped."""
    lines = enumerate(stream, start=1)
    for number, raw in lines:  # the first line only: the loop below takes the rest
        stripped = strip_bom(raw).strip()
        if stripped:
            yield number, stripped
        break
    for number, raw in lines:
        stripped = raw.strip()
        if stripped:
            yield number, stripped
