"""Time parsing shared by event intake and queries, and the calendar days shown.

The two rules of time (docs/concepts.md):

- As an *effective time* (the start of a fact), a bare date means the start of that day
  UTC; as an exclusive *end* (``valid_until``, ``until``...), a bare date means through
  the end of that day, i.e. the next midnight UTC.  Events do not depend on a reader's
  zone.
- As a *query bound* (``--as-of``, ``--known-at``), a bare date means the end of that day
  in the reading zone (``--tz``, default UTC; the last microsecond), and the bound is
  inclusive.  A query time without an offset is read in that zone too.

Times with an offset are kept exactly as given.  A time without an offset is an error in
an event (a stored fact must not depend on a reader's zone).

**Days are counted as people count them, in the reading zone's calendar** (``--tz``):

- the *day* of an instant is its date in that zone: 2025-11-07T00:00+08:00 is
  2025-11-07 in Asia/Shanghai and 2025-11-06 in UTC;
- the *through-day* of an exclusive end E is the day containing E minus one microsecond:
  ``until 2026-11-28T00:00+08:00`` is "through 2026-11-27" in Beijing (and in UTC, where
  E is 2026-11-27T16:00Z);
- *late by* N days: due by D (its through-day) and done on D+N: due 2025-11-30, done
  2025-12-02 is 2 days late (done on 2025-12-01, 1 day); done after the deadline but on
  its last day in the reading zone is 0 days late (JSON keeps the hours);
- a *stretch* (one-sided since S, to U) counts the days from S's day to U's day: since
  2025-11-10 to 2025-12-02 is 22 days;
- a *span in force* [start, end) counts the days it touches, both ends included: from
  2025-01-03 through 2025-01-14 is 12 days.

The same instants written with other offsets give the same counts: only the reading zone
changes them.  JSON keeps the exact instants (and hours) beside the day counts.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
END_OF_DAY = dt.timedelta(days=1) - dt.timedelta(microseconds=1)


class TimeParseError(ValueError):
    pass


# --- the reading zone ---------------------------------------------------------------------

_READING_ZONE: ContextVar[dt.tzinfo] = ContextVar("reading_zone", default=UTC)
MAX_ZONE_NAME = 64


def load_zone(name: str) -> dt.tzinfo:
    """An IANA zone by name (``Asia/Shanghai``, ``America/New_York``, ``UTC``)."""
    name = name.strip()
    if name.upper() in ("UTC", "Z"):
        return UTC
    if not name or len(name) > MAX_ZONE_NAME:
        raise TimeParseError(f"'{name[:MAX_ZONE_NAME]}' is not a time zone name")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeParseError(
            f"unknown time zone '{name}'; use an IANA name such as Asia/Shanghai, "
            "America/New_York or UTC"
        ) from None


def reading_zone() -> dt.tzinfo:
    """The zone whose calendar bare query dates and every day shown follow."""
    return _READING_ZONE.get()


def zone_name(zone: dt.tzinfo | None = None) -> str:
    zone = zone or reading_zone()
    return "UTC" if zone is UTC else str(zone)


def start_reading_in(zone: dt.tzinfo) -> Callable[[], None]:
    """Read and show days in ``zone`` from now on; returns what undoes it."""
    token = _READING_ZONE.set(zone)
    return lambda: _READING_ZONE.reset(token)


@contextmanager
def reading_in(zone: dt.tzinfo) -> Iterator[dt.tzinfo]:
    """Read and show days in ``zone`` within the block."""
    token = _READING_ZONE.set(zone)
    try:
        yield zone
    finally:
        _READING_ZONE.reset(token)


def local_day(value: dt.datetime) -> dt.date:
    """The day of an instant in the reading zone."""
    return value.astimezone(reading_zone()).date()


_MICROSECOND = dt.timedelta(microseconds=1)


def through_day(end: dt.datetime) -> dt.date:
    """The last day an exclusive end covers: the day containing ``end`` minus 1 µs."""
    return local_day(end - _MICROSECOND)


def _at_local_midnight(t: dt.datetime) -> bool:
    local = t.astimezone(reading_zone())
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


def end_text(end: dt.datetime) -> str:
    """When an exclusive end falls, for a message: "the end of D" (D the last day it
    covers) when it is a midnight of the reading zone, else the exact instant.  A licence
    "valid until 2026-12-01" is stored to end at 2026-12-02T00:00Z; it expired "at the end
    of 2026-12-01", never "on 2026-12-02"."""
    if _at_local_midnight(end):
        return f"the end of {through_day(end).isoformat()}"
    return short(end.astimezone(reading_zone()))


def through_text(end: dt.datetime | None) -> str:
    """An exclusive end as a range's close, for a message or a table: "through D" (the
    last day it covers) at a midnight of the reading zone, else "until" the exact
    instant; "open-ended" for None."""
    if end is None:
        return "open-ended"
    if _at_local_midnight(end):
        return f"through {through_day(end).isoformat()}"
    return f"until {end.isoformat()}"


def days_late(due_by: dt.datetime, done: dt.datetime) -> int:
    """Calendar days from a deadline's through-day to the day it was met (0 if on time)."""
    if done < due_by:
        return 0
    return max(0, (local_day(done) - through_day(due_by)).days)


def days_between(start: dt.datetime, end: dt.datetime) -> int:
    """Calendar days from ``start``'s day to ``end``'s day (a stretch; 0 if not after)."""
    return max(0, (local_day(end) - local_day(start)).days)


def span_days(start: dt.datetime, end: dt.datetime) -> int:
    """Days a span [start, end) touches, both ends included (0 for an empty span)."""
    if end <= start:
        return 0
    zone = _READING_ZONE.get()  # once: listings count thousands of spans
    return ((end - _MICROSECOND).astimezone(zone).date() - start.astimezone(zone).date()).days + 1


def hours(start: dt.datetime, end: dt.datetime) -> float:
    """Exact elapsed hours (two decimals), for JSON beside a day count."""
    return round((end - start).total_seconds() / 3600, 2)


def count_days(n: int) -> str:
    return f"{n} day{'' if n == 1 else 's'}"


def _echo(text: str) -> str:
    """Input quoted back in a message, cut short."""
    return text if len(text) <= 40 else text[:40] + "…"


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def is_bare_date(text: str) -> bool:
    """YYYY-MM-DD exactly (a real date or not: ``parse_date`` says which)."""
    return bool(_BARE_DATE.fullmatch(text))


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise TimeParseError(f"'{_echo(text)}' is not a date ({exc})") from None


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
            raise TimeParseError(f"'{_echo(text)}' is the last representable day") from None
    return f"{day.isoformat()}T00:00:00Z"


EARLIEST = dt.datetime(1, 1, 2, tzinfo=UTC)
LATEST = dt.datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC)
"""The instants the ledger takes: a day inside each end of the calendar, so that an
instant shown in any zone (offsets are less than a day) is still a date."""
CALENDAR_RANGE = "times fall between 0001-01-02 and 9999-12-30 (UTC)"


def within_calendar(value: dt.datetime) -> bool:
    """Whether an aware instant lies in ``EARLIEST``..``LATEST`` (compared, not converted:
    converting 9999-12-31T23:00-05:00 to UTC overflows)."""
    return EARLIEST <= value <= LATEST


def _clamped(value: dt.datetime) -> dt.datetime:
    """A query bound beyond the calendar's ends asks for everything up to (from) them."""
    if value > LATEST:
        return LATEST
    if value < EARLIEST:
        return EARLIEST
    return value


def parse_query_time(text: str) -> dt.datetime:
    """Parse an ``--as-of``/``--known-at`` bound (inclusive; a bare date is the end of that
    day in the reading zone, a time without an offset is read in it)."""
    text = text.strip()
    if text.lower() == "now":
        return now()
    zone = reading_zone()
    if is_bare_date(text):
        day = parse_date(text)
        try:
            next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
            # Through UTC: wall-clock arithmetic in a zone would skip a DST change at midnight.
            return _clamped(next_midnight.astimezone(UTC) - dt.timedelta(microseconds=1))
        except OverflowError:
            return LATEST if day.year == dt.MAXYEAR else EARLIEST
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise TimeParseError(
            f"'{_echo(text)}' is not an ISO-8601 time; use e.g. 2025-11-14, "
            "2025-11-14T12:00:00Z or 2025-11-10T13:01:00+08:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return _clamped(value)


def parse_event_time(text: str, role: Literal["start", "end"] = "start") -> dt.datetime:
    """Parse a time for an event field (bare date per role; offset required otherwise)."""
    normalised = event_time_text(text.strip(), role)
    try:
        value = dt.datetime.fromisoformat(normalised)
    except ValueError:
        raise TimeParseError(f"'{_echo(text)}' is not an ISO-8601 time") from None
    if value.tzinfo is None:
        raise TimeParseError(
            f"'{_echo(text)}' has no UTC offset; add 'Z' or an offset such as +08:00"
        )
    if not within_calendar(value):
        raise TimeParseError(
            f"'{_echo(text)}' is too close to an end of the calendar: {CALENDAR_RANGE}"
        )
    return value


_MICROSECOND = dt.timedelta(microseconds=1)


def to_us(value: dt.datetime) -> int:
    """Microseconds since the epoch (UTC) of an aware datetime: the stored sort key.

    One exact ``timedelta // timedelta`` (floored, like the instants before the epoch
    need): half the time of adding up the delta's days, seconds and microseconds, and a
    rebuild converts two instants per event."""
    return (value - EPOCH) // _MICROSECOND


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
