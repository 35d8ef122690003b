"""Time parsing shared by event intake and queries.

The two rules of DESIGN.md:

- As an *effective time* (the start of a fact), a bare date means the start of that day
  UTC; as an exclusive *end* (``valid_until``, ``until``...), a bare date means through
  the end of that day, i.e. the next midnight UTC.
- As a *query bound* (``--as-of``, ``--known-at``), a bare date means the end of that day
  UTC (the last microsecond), and the bound is inclusive.

Times with an offset are kept exactly as given.  A time without an offset is an error in
an event (a stored fact must not depend on a reader's zone) and UTC in a query bound.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Literal

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
END_OF_DAY = dt.timedelta(days=1) - dt.timedelta(microseconds=1)


class TimeParseError(ValueError):
    pass


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def is_bare_date(text: str) -> bool:
    """YYYY-MM-DD exactly (a real date or not: ``parse_date`` says which)."""
    return bool(_BARE_DATE.fullmatch(text))


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise TimeParseError(f"'{text}' is not a date ({exc})") from None


def event_time_text(text: str, role: Literal["start", "end"]) -> str:
    """Normalise a bare date in an event field to an RFC 3339 instant (start/end role).

    Raises ``TimeParseError`` for a date that does not exist (2025-02-30) or whose end
    falls outside the calendar (9999-12-31 as an end).
    """
    if not is_bare_date(text):
        return text
    day = parse_date(text)
    if role == "end":
        try:
            day = day + dt.timedelta(days=1)
        except OverflowError:
            raise TimeParseError(f"'{text}' is the last representable day") from None
    return f"{day.isoformat()}T00:00:00Z"


def parse_query_time(text: str) -> dt.datetime:
    """Parse an ``--as-of``/``--known-at`` bound (inclusive; bare date = end of day UTC)."""
    text = text.strip()
    if text.lower() == "now":
        return now()
    if is_bare_date(text):
        day = parse_date(text)
        return dt.datetime.combine(day, dt.time(), UTC) + END_OF_DAY
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise TimeParseError(
            f"'{text}' is not an ISO-8601 time; use e.g. 2025-11-14, "
            "2025-11-14T12:00:00Z or 2025-11-10T13:01:00+08:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def parse_event_time(text: str, role: Literal["start", "end"] = "start") -> dt.datetime:
    """Parse a time for an event field (bare date per role; offset required otherwise)."""
    normalised = event_time_text(text.strip(), role)
    try:
        value = dt.datetime.fromisoformat(normalised)
    except ValueError:
        raise TimeParseError(f"'{text}' is not an ISO-8601 time") from None
    if value.tzinfo is None:
        raise TimeParseError(f"'{text}' has no UTC offset; add 'Z' or an offset such as +08:00")
    return value


def to_us(value: dt.datetime) -> int:
    """Microseconds since the epoch (UTC) of an aware datetime: the stored sort key."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


END_OF_TIME = dt.datetime.max.replace(tzinfo=UTC)
START_OF_TIME = dt.datetime.min.replace(tzinfo=UTC)


def add_months(value: dt.datetime, months: int) -> dt.datetime:
    """Calendar month arithmetic, clamping the day (Jan 31 + 1 month = Feb 28/29).

    The calendar ends at 9999-12-31 (and starts at 0001-01-01): a result beyond it is
    the calendar's last (first) instant, so a limit 36 months after 9998-06-01 is no
    limit at all rather than an error.
    """
    month_index = value.month - 1 + months
    year = value.year + month_index // 12
    month = month_index % 12 + 1
    if year > dt.MAXYEAR:
        return END_OF_TIME
    if year < dt.MINYEAR:
        return START_OF_TIME
    return value.replace(year=year, month=month, day=min(value.day, _days_in_month(year, month)))


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def iso(value: dt.datetime | None) -> str:
    """Render an instant the way it was given (offset kept); UTC as 'Z'."""
    if value is None:
        return ""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def iso_seconds(value: dt.datetime | None) -> str:
    """Like ``iso`` but to the second (for tables)."""
    if value is None:
        return ""
    text = value.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def short(value: dt.datetime | None) -> str:
    """Compact display that keeps the instant exact: the date alone at local midnight
    (with its offset unless UTC), else the time to the minute or second."""
    if value is None:
        return ""
    offset = value.utcoffset() or dt.timedelta(0)
    zone = "Z" if offset == dt.timedelta(0) else value.isoformat()[-6:]
    if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
        return value.date().isoformat() + ("" if zone == "Z" else zone)
    spec = "minutes" if value.second == 0 and value.microsecond == 0 else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + zone
