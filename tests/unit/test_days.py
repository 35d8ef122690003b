"""Days as people count them, in the reading zone's calendar (``ledger.times``): the rule's
examples, and the two properties of issue 15 (pure, no services)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from ledger.times import (
    TimeParseError,
    days_between,
    days_late,
    load_zone,
    local_day,
    parse_query_time,
    reading_in,
    span_days,
    through_day,
)

UTC = dt.UTC
BEIJING = dt.timezone(dt.timedelta(hours=8))
ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Europe/Zurich", "Pacific/Kiritimati")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# --- the documented examples ------------------------------------------------------------


def test_the_examples_of_the_rule() -> None:
    # Due by the end of November (exclusive end 12-01 00:00), done on 12-02: 2 days late;
    # on 12-01, 1 day; before the end, not late.
    due = at("2025-12-01T00:00:00Z")
    assert days_late(due, at("2025-12-02T00:00:00Z")) == 2
    assert days_late(due, at("2025-12-01T23:00:00Z")) == 1
    assert days_late(due, at("2025-11-30T23:59:00Z")) == 0
    # One-sided since 11-10 to 12-02: 22 days (21 days 19 h elapsed).
    assert days_between(at("2025-11-10T05:00:00Z"), at("2025-12-02T00:00:00Z")) == 22
    # In force from 01-03 through 01-14: 12 days, both ends counted.
    assert span_days(at("2025-01-03T00:00:00Z"), at("2025-01-15T00:00:00Z")) == 12
    assert span_days(at("2025-01-03T13:00:00Z"), at("2025-01-03T14:00:00Z")) == 1
    assert span_days(at("2025-01-03T13:00:00Z"), at("2025-01-03T13:00:00Z")) == 0
    # Ann.46 Art.2 suspended "until 27 November 2026" (Beijing): through 11-27 in Beijing.
    end = at("2026-11-28T00:00:00+08:00")
    with reading_in(load_zone("Asia/Shanghai")):
        assert through_day(end) == dt.date(2026, 11, 27)
        assert local_day(at("2025-11-07T00:00:00+08:00")) == dt.date(2025, 11, 7)
    assert local_day(at("2025-11-07T00:00:00+08:00")) == dt.date(2025, 11, 6)  # UTC


def test_a_bare_query_date_is_the_end_of_that_day_in_the_zone() -> None:
    assert parse_query_time("2026-11-27") == at("2026-11-27T23:59:59.999999+00:00")
    with reading_in(load_zone("Asia/Shanghai")):
        assert parse_query_time("2026-11-27") == at("2026-11-27T23:59:59.999999+08:00")
        # A time without an offset is read in the zone too; one with an offset is kept.
        assert parse_query_time("2026-11-27T12:00") == at("2026-11-27T12:00:00+08:00")
        assert parse_query_time("2026-11-27T12:00Z") == at("2026-11-27T12:00:00+00:00")
    with reading_in(load_zone("America/New_York")):  # EST in November
        assert parse_query_time("2026-11-09") == at("2026-11-09T23:59:59.999999-05:00")
    # A day whose midnight a DST change skips still ends exactly one microsecond before
    # the next day's start (America/Havana moves 00:00 -> 01:00 on 2025-03-09).
    with reading_in(load_zone("America/Havana")):
        end = parse_query_time("2025-03-08")
        assert end + dt.timedelta(microseconds=1) == dt.datetime(
            2025, 3, 9, 1, tzinfo=zoneinfo.ZoneInfo("America/Havana")
        )


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "", "x" * 65, "Asia/"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(TimeParseError):
        load_zone(name)


# --- the properties of issue 15 -----------------------------------------------------------

instants = hs.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1), timezones=hs.just(UTC)
)
offsets = hs.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)


@given(instants, instants, offsets, offsets, hs.sampled_from(ZONES))
def test_a_day_count_does_not_depend_on_the_offsets_written(
    a: dt.datetime, b: dt.datetime, oa: dt.timezone, ob: dt.timezone, zone: str
) -> None:
    start, end = min(a, b), max(a, b)
    with reading_in(load_zone(zone)):
        for count in (days_between, days_late, span_days):
            assert count(start, end) == count(start.astimezone(oa), end.astimezone(ob))


@given(instants, offsets, hs.sampled_from(ZONES))
def test_the_through_day_holds_the_last_instant_before_the_end(
    end: dt.datetime, written: dt.timezone, zone: str
) -> None:
    tz = load_zone(zone)
    last = end - dt.timedelta(microseconds=1)
    with reading_in(tz):
        day = through_day(end.astimezone(written))
    # The day's own bounds, built in the zone: the last instant falls inside them.
    day_start = dt.datetime.combine(day, dt.time(), tz).astimezone(UTC)
    next_start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(UTC)
    assert day_start <= last < next_start
    assert day == last.astimezone(tz).date()


def test_a_span_counts_the_days_of_the_reading_zone_at_both_ends() -> None:
    """Two hours across Shanghai's midnight (not UTC's) touch two of its days; three hours
    after that midnight touch one, though they began on the previous UTC day."""
    with reading_in(load_zone("Asia/Shanghai")):
        assert span_days(at("2025-11-06T15:00:00Z"), at("2025-11-06T17:00:00Z")) == 2
        assert span_days(at("2025-11-06T17:00:00Z"), at("2025-11-06T20:00:00Z")) == 1
