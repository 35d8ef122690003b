"""The time rules (docs/concepts.md): bare dates, offsets, query bounds (pure, no services)."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger.intake import parse_object, uuid7
from ledger.times import (
    TimeParseError,
    add_months,
    from_us,
    parse_event_time,
    parse_query_time,
    to_us,
)
from tests import factory as f

UTC = dt.UTC
NOW = dt.datetime(2026, 1, 1, tzinfo=UTC)


def parse(obj: dict):
    return parse_object(obj, actor="t", now=NOW).event


def test_bare_dates_in_events() -> None:
    e = parse(f.licence(effective_at="2025-12-02", valid_until="2026-12-01"))
    assert e.effective_at == dt.datetime(2025, 12, 2, tzinfo=UTC)  # start of the day
    assert e.valid_until == dt.datetime(2026, 12, 2, tzinfo=UTC)  # through the end of it
    m = parse(
        f.measure(
            clauses=[{"clause_id": "a", "effect": "prohibited", "effective_at": "2025-12-01"}]
        )
    )
    assert m.clauses[0].effective_at == dt.datetime(2025, 12, 1, tzinfo=UTC)


def test_offsets_kept_and_naive_rejected() -> None:
    e = parse(f.party("x", effective_at="2025-11-10T13:01:00+08:00"))
    assert e.effective_at.utcoffset() == dt.timedelta(hours=8)
    assert e.effective_at.hour == 13
    with pytest.raises(Exception, match="add 'Z' or an offset"):
        parse(f.party("x", effective_at="2025-11-10T13:01:00"))
    with pytest.raises(TimeParseError, match="no UTC offset"):
        parse_event_time("2025-11-10T13:01:00")


def test_defaults_filled_by_the_ledger() -> None:
    obj = {k: v for k, v in f.party("x").items() if k != "effective_at"}
    s = parse_object(obj, actor="alice", now=NOW)
    assert s.event.effective_at == NOW and s.effective_defaulted
    assert s.event.recorded_at == NOW and s.event.actor == "alice"
    assert s.event.event_id.version == 7
    assert "event_id" not in obj, "the caller's object is left untouched"


def test_query_bounds() -> None:
    assert parse_query_time("2025-11-14") == dt.datetime(
        2025, 11, 14, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert parse_query_time("2025-11-14T12:00:00") == dt.datetime(2025, 11, 14, 12, tzinfo=UTC)
    assert parse_query_time("2025-11-10T13:01+08:00").utcoffset() == dt.timedelta(hours=8)
    with pytest.raises(TimeParseError):
        parse_query_time("14/11/2025")


def test_microsecond_keys_and_months() -> None:
    t = dt.datetime(2025, 11, 10, 13, 1, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert from_us(to_us(t)) == t
    assert to_us(t) == to_us(t.astimezone(UTC))
    assert add_months(dt.datetime(2025, 1, 31, tzinfo=UTC), 1) == dt.datetime(
        2025, 2, 28, tzinfo=UTC
    )
    assert add_months(dt.datetime(2025, 12, 2, tzinfo=UTC), 36) == dt.datetime(
        2028, 12, 2, tzinfo=UTC
    )


def test_microsecond_keys_are_exact_across_the_calendar() -> None:
    # Integer arithmetic end to end: a float on the way would lose the last microseconds
    # of times far from the epoch, and rounding toward zero would misplace those before it.
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    tick = dt.timedelta(microseconds=1)
    assert [to_us(epoch - tick), to_us(epoch), to_us(epoch + tick)] == [-1, 0, 1]
    assert to_us(dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1
    assert to_us(dt.datetime.max.replace(tzinfo=UTC)) == 253_402_300_799_999_999
    assert to_us(dt.datetime.min.replace(tzinfo=UTC)) == -62_135_596_800_000_000
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert to_us(dt.datetime(2025, 11, 10, 13, 1, 0, 7, tzinfo=beijing)) == (1_762_750_860_000_007)


def test_uuid7_is_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in ids)
    assert [u.int >> 80 for u in ids] == sorted(u.int >> 80 for u in ids)


def test_add_months_saturates_at_the_ends_of_the_calendar() -> None:
    """A licence effective in 9998/9999: its 12/36-month limit lies past year 9999, so
    it is the calendar's last instant (no limit), not an error."""
    from ledger.times import END_OF_TIME, START_OF_TIME

    assert add_months(dt.datetime(9998, 6, 1, tzinfo=UTC), 36) == END_OF_TIME
    assert add_months(dt.datetime(9999, 6, 1, tzinfo=UTC), 12) == END_OF_TIME
    assert add_months(dt.datetime(9999, 1, 31, tzinfo=UTC), 11) == dt.datetime(
        9999, 12, 31, tzinfo=UTC
    )
    assert add_months(dt.datetime(1, 2, 1, tzinfo=UTC), -2) == START_OF_TIME
