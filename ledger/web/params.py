"""Query parameters of the HTTP API, read as the CLI reads its options.

Each error is an ``InputError`` naming the parameter (``field``), answered with 400.  A
bare date means what it means on the CLI: the end of that day UTC as a query bound; a
``known_at`` still to come is now (the answer says which K it used).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from ledger.errors import InputError

MAX_QUERY_BYTES = 4096
"""A longer query string is refused (414) before anything is parsed."""

MAX_VALUES = 50
"""At most this many values of one repeatable parameter (ids, types, filters)."""

MAX_TEXT = 200
"""At most this many characters in one value (ids, names, free text)."""


def time_bound(name: str, value: str | None) -> dt.datetime | None:
    """``as_of`` / ``known_at``: ISO-8601, a bare date = the end of that day UTC, or now."""
    from ledger.times import TimeParseError, now, parse_query_time

    if value is None or value == "":
        return None
    try:
        parsed = parse_query_time(text(name, value))
    except TimeParseError as exc:
        raise InputError(str(exc), field=name) from None
    if name == "known_at":
        # The ledger cannot know yet what it will know: a K still to come is now.
        return min(parsed, now())
    return parsed


def text(name: str, value: str | None) -> str:
    if value is None:
        raise InputError("is required", field=name)
    if len(value) > MAX_TEXT:
        raise InputError(f"longer than {MAX_TEXT} characters", field=name)
    return value


def optional_text(name: str, value: str | None) -> str | None:
    return None if value is None or value == "" else text(name, value)


def texts(name: str, values: Sequence[str] | None) -> list[str] | None:
    """A repeatable parameter (``licence=A&licence=B``); ``None`` when not given."""
    if not values:
        return None
    if len(values) > MAX_VALUES:
        raise InputError(f"at most {MAX_VALUES} values", field=name)
    return [text(name, v) for v in values]


def choice(name: str, value: str | None, choices: Iterable[str]) -> str | None:
    if value is None or value == "":
        return None
    allowed = list(choices)
    if value not in allowed:
        raise InputError(f"'{value[:MAX_TEXT]}' is not one of {', '.join(allowed)}", field=name)
    return value


def flag(name: str, value: str | None) -> bool:
    if value is None or value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    raise InputError(f"'{value[:MAX_TEXT]}' is not true or false", field=name)


def integer(name: str, value: str | None, *, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"'{value[:MAX_TEXT]}' is not a whole number", field=name) from None
    if not low <= number <= high:
        raise InputError(f"{number} is not in the range {low} to {high}", field=name)
    return number
