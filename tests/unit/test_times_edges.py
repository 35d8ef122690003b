"""The edges of ``ledger.times``: the calendar's ends, zone names, the messages users
see for a time they mistyped, and how instants and day counts are written.
Pure: no services."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger import times as t

UTC = dt.UTC
SHANGHAI = t.load_zone("Asia/Shanghai")


def test_zone_names() -> None:
    for name in ("UTC", "utc", "Z", "z", " UTC "):
        assert t.load_zone(name) is UTC
    assert str(t.load_zone("America/New_York")) == "America/New_York"
    assert t.zone_name(UTC) == "UTC"
    assert t.zone_name(SHANGHAI) == "Asia/Shanghai"
    assert t.zone_name() == "UTC"
    undo = t.start_reading_in(SHANGHAI)
    try:
        assert t.zone_name() == "Asia/Shanghai"
        assert t.local_day(dt.datetime(2025, 11, 6, 16, tzinfo=UTC)) == dt.date(2025, 11, 7)
    finally:
        undo()
    assert t.zone_name() == "UTC"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "'' is not a time zone name"),
        ("x" * 65, f"'{'x' * 64}' is not a time zone name"),
        (
            "Mars/Olympus",
            "unknown time zone 'Mars/Olympus'; use an IANA name such as Asia/Shanghai, "
            "America/New_York or UTC",
        ),
    ],
)
def test_bad_zone_names(name: str, message: str) -> None:
    with pytest.raises(t.TimeParseError) as caught:
        t.load_zone(name)
    assert str(caught.value) == message


def test_a_zone_name_of_the_longest_length_is_looked_up() -> None:
    name = "x" * 64
    with pytest.raises(t.TimeParseError, match=r"^unknown time zone"):
        t.load_zone(name)


def test_day_counts() -> None:
    due = dt.datetime(2025, 12, 1, tzinfo=UTC)  # due through 2025-11-30
    assert t.days_late(due, due - dt.timedelta(microseconds=1)) == 0
    assert t.days_late(due, due) == 1  # done on 2025-12-01: a day after the through-day
    assert t.days_late(due, dt.datetime(2025, 12, 2, 12, tzinfo=UTC)) == 2
    # Done after the deadline but on its last day: 0 days late (JSON keeps the hours).
    late_that_day = dt.datetime(2025, 11, 30, 22, tzinfo=UTC)
    assert t.days_late(late_that_day, late_that_day + dt.timedelta(hours=1)) == 0
    start = dt.datetime(2025, 11, 10, tzinfo=UTC)
    assert t.days_between(start, start) == 0
    assert t.days_between(start, start - dt.timedelta(days=3)) == 0
    assert t.days_between(start, dt.datetime(2025, 12, 2, tzinfo=UTC)) == 22
    assert t.through_day(dt.datetime(2025, 12, 1, 0, 0, 0, 1, tzinfo=UTC)) == dt.date(2025, 12, 1)
    assert t.through_day(due) == dt.date(2025, 11, 30)
    assert t.count_days(0) == "0 days"
    assert t.count_days(1) == "1 day"
    assert t.count_days(2) == "2 days"
    assert t.hours(start, start + dt.timedelta(minutes=90)) == 1.5
    assert t.hours(start, start + dt.timedelta(seconds=100)) == 0.03


def test_now_is_aware_utc() -> None:
    assert t.now().tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-11-14 noon", "'2025-11-14 noon' is not an ISO-8601 time"),
        (
            "2025-11-14T12:00:00",
            "'2025-11-14T12:00:00' has no UTC offset; add 'Z' or an offset such as +08:00",
        ),
        (
            "0001-01-01T23:59:59Z",
            "'0001-01-01T23:59:59Z' is too close to an end of the calendar: times fall "
            "between 0001-01-02 and 9999-12-30 (UTC)",
        ),
        ("y" * 50, f"'{'y' * 40}…' is not an ISO-8601 time"),
    ],
)
def test_event_times_refused(text: str, message: str) -> None:
    with pytest.raises(t.TimeParseError) as caught:
        t.parse_event_time(text)
    assert str(caught.value) == message


def test_event_times_at_the_ends_of_the_calendar() -> None:
    assert t.parse_event_time("0001-01-02T00:00:00Z") == t.EARLIEST
    assert t.parse_event_time("9999-12-30T23:59:59.999999Z") == t.LATEST
    assert t.parse_event_time(" 2025-11-14 ") == dt.datetime(2025, 11, 14, tzinfo=UTC)
    assert t.parse_event_time("2025-11-14", "end") == dt.datetime(2025, 11, 15, tzinfo=UTC)
    assert t.within_calendar(t.EARLIEST) and t.within_calendar(t.LATEST)


def test_query_times() -> None:
    assert abs(t.parse_query_time(" NOW ") - t.now()) < dt.timedelta(minutes=1)
    assert t.parse_query_time("0001-01-01") == t.EARLIEST  # clamped
    assert t.parse_query_time("9999-12-31") == t.LATEST
    assert t.parse_query_time("2025-11-14").tzinfo is UTC
    with t.reading_in(SHANGHAI):
        assert t.parse_query_time("2025-11-14") == dt.datetime(
            2025, 11, 14, 15, 59, 59, 999999, tzinfo=UTC
        )
    text = "x" * 41
    with pytest.raises(t.TimeParseError) as caught:
        t.parse_query_time(text)
    assert str(caught.value) == (
        f"'{'x' * 40}…' is not an ISO-8601 time; use e.g. 2025-11-14, "
        "2025-11-14T12:00:00Z or 2025-11-10T13:01:00+08:00"
    )
    with pytest.raises(t.TimeParseError) as caught:
        t.parse_query_time("z" * 40)
    assert str(caught.value).startswith(f"'{'z' * 40}' is not")


def test_months_to_the_first_year() -> None:
    assert t.add_months(dt.datetime(2, 3, 15, tzinfo=UTC), -12) == dt.datetime(1, 3, 15, tzinfo=UTC)
    assert t.add_months(dt.datetime(2025, 1, 31, tzinfo=UTC), 13) == dt.datetime(
        2026, 2, 28, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "iso", "iso_seconds", "short"),
    [
        (None, "", "", ""),
        (
            dt.datetime(2025, 11, 14, tzinfo=UTC),
            "2025-11-14T00:00:00Z",
            "2025-11-14T00:00:00Z",
            "2025-11-14",
        ),
        (
            dt.datetime(2025, 11, 14, 12, 30, 5, 250000, tzinfo=UTC),
            "2025-11-14T12:30:05.250000Z",
            "2025-11-14T12:30:05Z",
            "2025-11-14T12:30:05Z",
        ),
        (
            dt.datetime(2025, 11, 14, 12, 30, 0, 250000, tzinfo=UTC),
            "2025-11-14T12:30:00.250000Z",
            "2025-11-14T12:30:00Z",
            "2025-11-14T12:30:00Z",
        ),
        (
            dt.datetime(2025, 11, 14, 12, 30, tzinfo=SHANGHAI),
            "2025-11-14T12:30:00+08:00",
            "2025-11-14T12:30:00+08:00",
            "2025-11-14T12:30+08:00",
        ),
        (
            dt.datetime(2025, 11, 14, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "2025-11-14T00:00:00-05:00",
            "2025-11-14T00:00:00-05:00",
            "2025-11-14-05:00",
        ),
    ],
)
def test_how_instants_are_written(
    value: dt.datetime | None, iso: str, iso_seconds: str, short: str
) -> None:
    assert (t.iso(value), t.iso_seconds(value), t.short(value)) == (iso, iso_seconds, short)


def test_a_month_added_to_december_is_january_of_the_next_year() -> None:
    december = dt.datetime(2025, 12, 15, tzinfo=UTC)
    assert t.add_months(december, 1) == dt.datetime(2026, 1, 15, tzinfo=UTC)
    assert t.add_months(december, 13) == dt.datetime(2027, 1, 15, tzinfo=UTC)


def test_hours_are_exact_over_a_long_stretch() -> None:
    start = dt.datetime(2025, 11, 1, tzinfo=UTC)
    assert t.hours(start, start + dt.timedelta(hours=100)) == 100.0


def test_the_last_day_of_the_calendar_cannot_be_an_end_and_the_message_names_it() -> None:
    assert t.event_time_text("9999-12-30", "end") == "9999-12-31T00:00:00Z"
    with pytest.raises(t.TimeParseError) as caught:
        t.event_time_text("9999-12-31", "end")
    assert str(caught.value) == "'9999-12-31' is the last representable day"
