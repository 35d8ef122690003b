"""The auditors' views of ``ledger.projections.views``, from resolved records (pure: no
services).

Each case gives the records as of T and asserts the exact rows, at the edges the module's
docstring defines: an instant equal to a bound, a stretch that meets the next, both sides
of a pair implemented at the same instant, a side that implemented and then reversed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.projections import records as rec
from ledger.projections import views as v
from ledger.projections.query import Resolved
from ledger.times import reading_in

US1 = dt.timedelta(microseconds=1)
E = [UUID(int=i) for i in range(1, 20)]


def at(day: str, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00+00:00")


def span(a: str, b: str | None) -> rec.Span:
    return (at(a), None if b is None else at(b))


# --- days and durations -----------------------------------------------------------------


def test_an_instants_day_and_an_exclusive_ends_last_day() -> None:
    assert v.day(None) == ""
    assert v.day(at("2026-11-27", 23)) == "2026-11-27"
    assert v.last_day(None) == ""
    assert v.last_day(at("2026-11-28")) == "2026-11-27"
    assert v.last_day(at("2026-11-28") + US1) == "2026-11-28"
    with reading_in(dt.timezone(dt.timedelta(hours=8))):
        assert v.day(at("2026-11-27", 16)) == "2026-11-28"
        assert v.last_day(at("2026-11-27", 16)) == "2026-11-27"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0 min"),
        (0, "0 min"),
        (59, "0 min"),
        (60, "1 min"),
        (35 * 60, "35 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3600 + 60 * 30, "1 h"),
        (12 * 3600, "12 h"),
        (86399, "23 h"),
        (86400, "1 day"),
        (86400 + 1800, "1 day"),
        (86400 + 3600, "1 day 1 h"),
        (2 * 86400, "2 days"),
        (4 * 86400 + 18 * 3600, "4 days 18 h"),
    ],
)
def test_duration(seconds: int, text: str) -> None:
    start = at("2026-01-01")
    assert v.duration(start, start + dt.timedelta(seconds=seconds)) == text


# --- implemented stretches --------------------------------------------------------------


def impl(
    at_: str, until: str | None = None, extent: str = "full", n: int = 0
) -> rec.ImplementationRecord:
    return rec.ImplementationRecord(
        event_id=E[n],
        at=at(at_),
        extent=extent,
        instrument="i",
        until=None if until is None else at(until),
    )


def commitment(
    cid: str = "c1",
    *implementations: rec.ImplementationRecord,
    ended_at: str | None = None,
    **kw: Any,
) -> rec.CommitmentRecord:
    base: dict[str, Any] = {
        "commitment_id": cid,
        "agreement_id": "busan-2025",
        "obligor": "CN",
        "beneficiary": "US",
        "asserted_by": ("CN",),
        "category": "export-controls",
        "description": f"pledge {cid}",
        "pledged_at": at("2025-11-01"),
        "pledge_event": E[0],
    }
    return rec.CommitmentRecord(
        **{**base, **kw},
        implementations=implementations,
        ended_at=None if ended_at is None else at(ended_at),
    )


@pytest.mark.parametrize(
    ("implementations", "ended_at", "spans"),
    [
        ((), None, []),
        ((impl("2025-11-10"),), None, [span("2025-11-10", None)]),
        ((impl("2025-11-10", "2025-11-20"),), None, [span("2025-11-10", "2025-11-20")]),
        # A reversal after an implementation ends it there; one before it, not.
        ((impl("2025-11-10"),), "2025-12-01", [span("2025-11-10", "2025-12-01")]),
        ((impl("2025-11-10", "2025-11-20"),), "2025-12-01", [span("2025-11-10", "2025-11-20")]),
        ((impl("2025-11-10", "2025-12-20"),), "2025-12-01", [span("2025-11-10", "2025-12-01")]),
        ((impl("2025-11-10"),), "2025-11-05", [span("2025-11-10", None)]),
        # Reversed at the implementation's own instant: it was never in force.
        ((impl("2025-11-10"),), "2025-11-10", []),
        # ... and one after it still counts.
        ((impl("2025-11-10"), impl("2025-11-12")), "2025-11-10", [span("2025-11-12", None)]),
        ((impl("2025-11-10", "2025-11-10"), impl("2025-11-12")), None, [span("2025-11-12", None)]),
        # An implementation ending where it starts is no stretch.
        ((impl("2025-11-10", "2025-11-10"),), None, []),
        # Overlapping, meeting, and apart; given out of order.
        (
            (impl("2025-11-15", "2025-11-30"), impl("2025-11-10", "2025-11-20")),
            None,
            [span("2025-11-10", "2025-11-30")],
        ),
        (
            (impl("2025-11-10", "2025-11-30"), impl("2025-11-15", "2025-11-20")),
            None,
            [span("2025-11-10", "2025-11-30")],
        ),
        (
            (impl("2025-11-10", "2025-11-20"), impl("2025-11-20", "2025-11-30")),
            None,
            [span("2025-11-10", "2025-11-30")],
        ),
        (
            (impl("2025-11-10", "2025-11-20"), impl("2025-11-21", "2025-11-30")),
            None,
            [span("2025-11-10", "2025-11-20"), span("2025-11-21", "2025-11-30")],
        ),
        ((impl("2025-11-10"), impl("2025-11-15", "2025-11-20")), None, [span("2025-11-10", None)]),
        ((impl("2025-11-10", "2025-11-20"), impl("2025-11-15")), None, [span("2025-11-10", None)]),
    ],
)
def test_implemented_spans(
    implementations: tuple[rec.ImplementationRecord, ...],
    ended_at: str | None,
    spans: list[rec.Span],
) -> None:
    assert v.implemented_spans(commitment("c1", *implementations, ended_at=ended_at)) == spans


def test_the_stretch_in_force_and_the_last_one_ended() -> None:
    spans = [span("2025-11-10", "2025-11-20"), span("2025-11-25", None)]
    assert v._stretch_start(spans, at("2025-11-10") - US1) is None
    assert v._stretch_start(spans, at("2025-11-10")) == at("2025-11-10")
    assert v._stretch_start(spans, at("2025-11-20") - US1) == at("2025-11-10")
    assert v._stretch_start(spans, at("2025-11-20")) is None
    assert v._stretch_start(spans, at("2026-05-01")) == at("2025-11-25")
    assert v._last_end(spans, at("2025-11-20") - US1) is None
    assert v._last_end(spans, at("2025-11-20")) == at("2025-11-20")
    two = [span("2025-11-01", "2025-11-05"), span("2025-11-10", "2025-11-20")]
    assert v._last_end(two, at("2025-12-01")) == at("2025-11-20")
    assert v._last_end(list(reversed(two)), at("2025-12-01")) == at("2025-11-20")


# --- licences ---------------------------------------------------------------------------


def licence(lid: str = "GL-1", **kw: Any) -> rec.LicenceRecord:
    base: dict[str, Any] = {
        "licence_id": lid,
        "licence_type": "general",
        "issuer": "CN",
        "exporter": "jl-mag",
        "end_users": ("buyer",),
        "destinations": ("DE",),
        "items": (rec.ItemUse("1C902.a", Decimal(1000), Decimal(250), "kg"),),
        "valid_from": at("2026-01-01"),
        "valid_until": at("2026-12-01"),
        "granted_event": E[1],
        "active_spans": (span("2026-01-01", "2026-02-01"), span("2026-03-01", "2026-12-01")),
        "suspended_spans": (span("2026-02-01", "2026-03-01"),),
    }
    return rec.LicenceRecord(**{**base, **kw})


def test_a_licence_row() -> None:
    record = licence(
        suspended_from=at("2026-02-01"),
        suspended_until=at("2026-03-01"),
        suspension_event=E[2],
        withdrawn_at=at("2026-06-01"),
        terminal_event=E[3],
        shipments=4,
        late_usage=(
            rec.LateUsage(
                usage_event=E[4],
                shipment_id="S-1",
                shipped_at=at("2026-02-02"),
                recorded_at=at("2026-02-03"),
                item="1C902.a",
                quantity=Decimal(1),
                licence_status="suspended",
            ),
        ),
    )
    as_of = at("2026-02-15")
    row = v.licence_row(Resolved("GL-1", record, "suspended"), as_of)
    assert row == {
        "licence_id": "GL-1",
        "status": "suspended",
        "licence_type": "general",
        "issuer": "CN",
        "exporter": "jl-mag",
        "end_users": ["buyer"],
        "destinations": ["DE"],
        "valid_from": at("2026-01-01"),
        "valid_until": at("2026-12-01"),
        "suspended_from": at("2026-02-01"),
        "suspended_until": at("2026-03-01"),
        "withdrawn_at": at("2026-06-01"),
        "surrendered_at": None,
        "items": [
            {
                "item": "1C902.a",
                "cap": Decimal(1000),
                "used": Decimal(250),
                "remaining": Decimal(750),
                "unit": "kg",
            }
        ],
        "active_spans": [{"start": at("2026-01-01"), "end": at("2026-02-01"), "days": 31}],
        "suspended_spans": [{"start": at("2026-02-01"), "end": at("2026-03-01"), "days": 15}],
        "shipments": 4,
        "late_usage": 1,
        "granted_event": E[1],
        "status_event": E[3],  # the terminal event before the suspension
    }
    assert v.total_remaining(row) == Decimal(750)
    suspended_only = v.licence_row(
        Resolved("GL-1", licence(suspension_event=E[2]), "active"), as_of
    )
    assert suspended_only["status_event"] == E[2]
    assert v.licence_row(Resolved("GL-1", licence(), "active"), as_of)["status_event"] is None


def test_total_remaining_adds_every_item() -> None:
    row = {"items": [{"remaining": Decimal("1.5")}, {"remaining": Decimal(2)}]}
    assert v.total_remaining(row) == Decimal("3.5")
    nothing = v.total_remaining({"items": []})
    assert (nothing, type(nothing)) == (Decimal(0), Decimal)  # a Decimal, never the int 0


def test_licences_filtered_by_status_exporter_and_end_user() -> None:
    resolved = [
        Resolved("GL-1", licence("GL-1"), "active"),
        Resolved("GL-2", licence("GL-2", exporter="other"), "active"),
        Resolved("GL-3", licence("GL-3", end_users=("buyer", "second")), "expired"),
    ]
    as_of = at("2026-06-01")

    def ids(**kw: Any) -> list[str]:
        return [row["licence_id"] for row in v.licences(resolved, as_of, **kw)]

    assert ids() == ["GL-1", "GL-2", "GL-3"]
    assert ids(status="active") == ["GL-1", "GL-2"]
    assert ids(exporter="jl-mag") == ["GL-1", "GL-3"]
    assert ids(end_user="second") == ["GL-3"]
    assert ids(status="active", exporter="jl-mag") == ["GL-1"]
    assert ids(status="expired", end_user="buyer") == ["GL-3"]
    assert ids(exporter="other", end_user="second") == []
    rows = v.licences(resolved, as_of)
    assert rows[0]["active_spans"] == [
        {"start": at("2026-01-01"), "end": at("2026-02-01"), "days": 31},
        {"start": at("2026-03-01"), "end": at("2026-12-01"), "days": 93},
    ]


def test_spans_as_of_one_instant_are_computed_once_per_distinct_spans() -> None:
    cache = v._SpansAsOf(at("2026-06-01"))
    spans = (span("2026-01-01", None),)
    first = cache[spans]
    assert first == [{"start": at("2026-01-01"), "end": None, "days": 152}]
    assert cache[spans] is first
    assert cache.as_of == at("2026-06-01")
    assert list(cache) == [spans]


# --- parties ----------------------------------------------------------------------------


def party(pid: str, roles: tuple[str, ...] = ("end-user",), **kw: Any) -> rec.PartyRecord:
    return rec.PartyRecord(
        party_id=pid,
        name=pid.title(),
        country="DE",
        roles=roles,
        registered_at=at("2025-01-01"),
        registered_event=E[5],
        **kw,
    )


def test_a_party_row() -> None:
    record = party(
        "buyer",
        roles=("end-user", "consignee"),
        vetting="approved",
        vetting_authority="MOFCOM",
        vetted_at=at("2025-06-01"),
        vetting_until=at("2026-06-01"),
        vetting_event=E[6],
        classification="military",
        classification_event=E[7],
        listings=(
            rec.ListingRecord(
                list_name="CN military end users",
                list_kind="military-end-user",
                authority="MOFCOM",
                listed_at=at("2025-07-01"),
                event_id=E[8],
            ),
        ),
        end_user_class="military",
        military=True,
    )
    assert v.party_row(Resolved("buyer", record, "expired")) == {
        "party_id": "buyer",
        "name": "Buyer",
        "country": "DE",
        "roles": ["end-user", "consignee"],
        "vetting": "expired",
        "vetting_authority": "MOFCOM",
        "vetted_at": at("2025-06-01"),
        "vetting_until": at("2026-06-01"),
        "classification": "military",
        "end_user_class": "military",
        "military": True,
        "listings": [
            {
                "list_name": "CN military end users",
                "list_kind": "military-end-user",
                "authority": "MOFCOM",
                "listed_at": at("2025-07-01"),
                "event_id": E[8],
            }
        ],
        "vetting_event": E[6],
        "classification_event": E[7],
    }


def test_end_users_are_the_parties_with_that_role_by_default() -> None:
    resolved = [
        Resolved("a", party("a"), "approved"),
        Resolved("b", party("b", roles=("exporter",)), "not-vetted"),
        Resolved("c", party("c", roles=("consignee", "end-user")), "approved"),
    ]
    assert [r["party_id"] for r in v.end_users(resolved)] == ["a", "c"]
    assert [r["party_id"] for r in v.end_users(resolved, role="exporter")] == ["b"]
    assert [r["party_id"] for r in v.end_users(resolved, role=None)] == ["a", "b", "c"]


# --- measures ---------------------------------------------------------------------------


def test_a_suspensions_end_is_the_earlier_of_its_term_and_its_ending() -> None:
    def suspension(until: str | None, ended: str | None) -> rec.SuspensionRecord:
        return rec.SuspensionRecord(
            event_id=E[9],
            start=at("2025-11-10"),
            until=None if until is None else at(until),
            ended_at=None if ended is None else at(ended),
        )

    assert v.suspension_end(suspension(None, None)) is None
    assert v.suspension_end(suspension("2026-11-27", None)) == at("2026-11-27")
    assert v.suspension_end(suspension(None, "2026-02-01")) == at("2026-02-01")
    assert v.suspension_end(suspension("2026-11-27", "2026-02-01")) == at("2026-02-01")
    assert v.suspension_end(suspension("2026-01-27", "2026-02-01")) == at("2026-01-27")


@pytest.mark.parametrize(
    ("whole", "holes", "out"),
    [
        (span("2025-01-01", None), [], [span("2025-01-01", None)]),
        (span("2025-01-01", "2025-03-01"), [], [span("2025-01-01", "2025-03-01")]),
        # A hole inside; one open-ended; one before the start; one after the stop.
        (
            span("2025-01-01", "2025-03-01"),
            [span("2025-01-10", "2025-01-20")],
            [span("2025-01-01", "2025-01-10"), span("2025-01-20", "2025-03-01")],
        ),
        (span("2025-01-01", None), [span("2025-01-10", None)], [span("2025-01-01", "2025-01-10")]),
        (span("2025-01-01", None), [span("2024-12-01", "2024-12-20")], [span("2025-01-01", None)]),
        (
            span("2025-01-01", "2025-03-01"),
            [span("2025-04-01", "2025-04-20")],
            [span("2025-01-01", "2025-03-01")],
        ),
        # Holes that touch the bounds exactly.
        (span("2025-01-01", None), [span("2024-12-01", "2025-01-01")], [span("2025-01-01", None)]),
        (
            span("2025-01-01", "2025-03-01"),
            [span("2025-03-01", "2025-04-01")],
            [span("2025-01-01", "2025-03-01")],
        ),
        (span("2025-01-01", None), [span("2025-01-01", "2025-01-05")], [span("2025-01-05", None)]),
        (
            span("2025-01-01", "2025-03-01"),
            [span("2025-02-01", "2025-03-01")],
            [span("2025-01-01", "2025-02-01")],
        ),
        # Holes out of order, overlapping, one inside another, meeting.
        (
            span("2025-01-01", None),
            [span("2025-02-01", "2025-02-10"), span("2025-01-10", "2025-01-20")],
            [
                span("2025-01-01", "2025-01-10"),
                span("2025-01-20", "2025-02-01"),
                span("2025-02-10", None),
            ],
        ),
        (
            span("2025-01-01", None),
            [span("2025-01-10", "2025-01-30"), span("2025-01-15", "2025-01-20")],
            [span("2025-01-01", "2025-01-10"), span("2025-01-30", None)],
        ),
        (
            span("2025-01-01", None),
            [span("2025-01-10", "2025-01-20"), span("2025-01-20", "2025-01-30")],
            [span("2025-01-01", "2025-01-10"), span("2025-01-30", None)],
        ),
        # A hole before the start, then one inside; two holes starting together.
        (
            span("2025-01-01", None),
            [span("2024-12-01", "2024-12-20"), span("2025-01-10", "2025-01-20")],
            [span("2025-01-01", "2025-01-10"), span("2025-01-20", None)],
        ),
        (
            span("2025-01-01", None),
            [span("2025-01-10", None), span("2025-01-10", "2025-01-20")],
            [span("2025-01-01", "2025-01-10")],
        ),
        # Everything cut.
        (span("2025-01-01", "2025-03-01"), [span("2024-01-01", None)], []),
        (span("2025-01-01", "2025-03-01"), [span("2024-01-01", "2025-03-01")], []),
    ],
)
def test_subtract(whole: rec.Span, holes: list[rec.Span], out: list[rec.Span]) -> None:
    assert v.subtract(whole, holes) == out


def clause(
    clause_id: str = "cl1",
    effective: str = "2025-01-01",
    *suspensions: rec.SuspensionRecord,
    revoked: str | None = None,
) -> rec.ClauseRecord:
    return rec.ClauseRecord(
        clause_id=clause_id,
        effect="prohibited",
        items=("gallium",),
        destinations=("US",),
        end_user_classes=("military",),
        effective_at=at(effective),
        description="no gallium",
        suspensions=suspensions,
        revoked_at=None if revoked is None else at(revoked),
        revoked_event=None if revoked is None else E[10],
    )


def suspension(
    start: str, until: str | None = None, ended: str | None = None
) -> rec.SuspensionRecord:
    return rec.SuspensionRecord(
        event_id=E[11],
        start=at(start),
        until=None if until is None else at(until),
        ended_at=None if ended is None else at(ended),
    )


def test_a_clauses_spans_in_force() -> None:
    assert v.clause_in_force_spans(clause()) == [span("2025-01-01", None)]
    assert v.clause_in_force_spans(clause(revoked="2025-01-01")) == []
    assert v.clause_in_force_spans(clause(revoked="2025-01-02")) == [
        span("2025-01-01", "2025-01-02")
    ]
    # A suspension ended early by SuspensionEnded: cut to its ending, not to its term.
    assert v.clause_in_force_spans(
        clause("cl1", "2025-01-01", suspension("2025-02-01", "2025-12-01", "2025-03-01"))
    ) == [span("2025-01-01", "2025-02-01"), span("2025-03-01", None)]


def test_a_span_ending_just_after_t_is_counted_to_t() -> None:
    # T 1 µs before midnight, the span ending 1 µs after it: counted through T's day only.
    start, as_of = at("2026-01-01"), at("2026-01-05") - US1
    assert v.spans_as_of([(start, at("2026-01-05") + US1)], as_of) == [
        {"start": start, "end": at("2026-01-05") + US1, "days": 4}
    ]


def test_spans_as_of_an_instant() -> None:
    spans = [
        span("2026-01-01", "2026-01-11"),
        span("2026-02-01", "2026-03-01"),
        span("2026-04-01", None),
    ]
    # T at the second span's first instant: it is shown, one day in force.
    assert v.spans_as_of(spans, at("2026-02-01")) == [
        {"start": at("2026-01-01"), "end": at("2026-01-11"), "days": 10},
        {"start": at("2026-02-01"), "end": at("2026-03-01"), "days": 1},
    ]
    # T at the last instant before a span's end: counted to its end; 1 µs later, the same.
    for t in (at("2026-03-01") - US1, at("2026-03-01")):
        assert v.spans_as_of(spans, t)[1] == {
            "start": at("2026-02-01"),
            "end": at("2026-03-01"),
            "days": 28,
        }
    assert v.spans_as_of(spans, at("2026-02-01") - US1) == [
        {"start": at("2026-01-01"), "end": at("2026-01-11"), "days": 10}
    ]
    assert v.spans_as_of(spans, at("2026-05-01", 12))[2] == {
        "start": at("2026-04-01"),
        "end": None,
        "days": 31,
    }


def test_a_span_in_words() -> None:
    closed = {"start": at("2025-01-03"), "end": at("2025-01-15"), "days": 12}
    assert (
        v.span_text(closed, at("2025-02-01")) == "in force 12 days (2025-01-03 \u2013 2025-01-14)"
    )
    # Ending exactly at T: ended.
    assert (
        v.span_text(closed, at("2025-01-15")) == "in force 12 days (2025-01-03 \u2013 2025-01-14)"
    )
    assert v.span_text({**closed, "days": 1}, at("2025-01-15") - US1, "active") == (
        "active 1 day so far (since 2025-01-03, through 2025-01-14)"
    )
    running = {"start": at("2025-01-03"), "end": None, "days": 30}
    assert v.span_text(running, at("2025-02-01"), "suspended") == (
        "suspended 30 days so far (since 2025-01-03)"
    )
    assert v.spans_text([closed, running], at("2025-02-01")) == (
        "in force 12 days (2025-01-03 \u2013 2025-01-14); "
        "in force 30 days so far (since 2025-01-03)"
    )
    assert v.spans_text([], at("2025-02-01")) == ""
    assert v.spans_text([closed], at("2025-02-01"), "suspended") == (
        "suspended 12 days (2025-01-03 \u2013 2025-01-14)"
    )


def test_a_licences_spans_in_words_in_time_order() -> None:
    as_of = at("2026-02-15")
    row = v.licence_row(Resolved("GL-1", licence(), "suspended"), as_of)
    assert v.licence_spans_text(row, as_of) == (
        "active 31 days (2026-01-01 \u2013 2026-01-31); "
        "suspended 15 days so far (since 2026-02-01, through 2026-02-28)"
    )
    later = at("2026-03-02")
    row = v.licence_row(Resolved("GL-1", licence(), "active"), later)
    assert v.licence_spans_text(row, later) == (
        "active 31 days (2026-01-01 \u2013 2026-01-31); "
        "suspended 28 days (2026-02-01 \u2013 2026-02-28); "
        "active 2 days so far (since 2026-03-01, through 2026-11-30)"
    )
    row = v.licence_row(Resolved("GL-1", licence(), "not-yet-valid"), at("2025-12-01"))
    assert v.licence_spans_text(row, at("2025-12-01")) == ""


def measure(*clauses: rec.ClauseRecord, mid: str = "cn-ann-46") -> rec.MeasureRecord:
    return rec.MeasureRecord(
        measure_id=mid,
        issuer="CN",
        title="Export controls",
        instrument="MOFCOM 46/2024",
        published_at=at("2024-12-03"),
        published_event=E[12],
        clauses=clauses,
    )


def test_clause_rows() -> None:
    record = measure(
        clause("cl1", "2025-01-01", revoked="2025-06-01"),
        clause("cl2", "2025-01-01", suspension("2025-03-01", "2025-09-01")),
    )
    until = at("2025-09-01").isoformat()
    dynamic = [["revoked", None, None], ["suspended", str(E[11]), until]]
    rows = v.clause_rows(Resolved("cn-ann-46", record, dynamic), at("2025-07-01"))
    common = {
        "measure_id": "cn-ann-46",
        "issuer": "CN",
        "title": "Export controls",
        "instrument": "MOFCOM 46/2024",
        "effect": "prohibited",
        "items": ["gallium"],
        "destinations": ["US"],
        "end_user_classes": ["military"],
        "effective_at": at("2025-01-01"),
        "never_in_force": False,
        "description": "no gallium",
    }
    assert rows == [
        {
            **common,
            "clause_id": "cl1",
            "status": "revoked",
            "suspended_until": None,
            "suspension_event": None,
            "revoked_at": at("2025-06-01"),
            "revoked_event": E[10],
            "in_force_spans": [{"start": at("2025-01-01"), "end": at("2025-06-01"), "days": 151}],
        },
        {
            **common,
            "clause_id": "cl2",
            "status": "suspended",
            "suspended_until": until,
            "suspension_event": str(E[11]),
            "revoked_at": None,
            "revoked_event": None,
            "in_force_spans": [{"start": at("2025-01-01"), "end": at("2025-03-01"), "days": 59}],
        },
    ]


def test_a_clause_row_needs_one_dynamic_value_per_clause() -> None:
    record = measure(clause("cl1"), clause("cl2"))
    with pytest.raises(ValueError):
        v.clause_rows(Resolved("m", record, [["in-force", None, None]]), at("2025-05-01"))


def test_a_revocation_not_yet_in_force_is_not_shown() -> None:
    record = measure(clause("cl1", "2025-01-01", revoked="2025-06-01"))
    [row] = v.clause_rows(Resolved("m", record, [["in-force", None, None]]), at("2025-05-01"))
    assert (row["revoked_at"], row["revoked_event"]) == (None, None)


@pytest.mark.parametrize(
    ("status", "never"),
    [("suspended", True), ("revoked", True), ("not-yet-effective", False), ("in-force", False)],
)
def test_a_clause_suspended_or_revoked_before_it_took_effect_never_bit(
    status: str, never: bool
) -> None:
    record = measure(clause("cl1", "2025-12-01", suspension("2025-11-07"), revoked="2025-11-20"))
    [row] = v.clause_rows(Resolved("m", record, [[status, None, None]]), at("2025-12-05"))
    assert row["in_force_spans"] == []
    assert row["never_in_force"] is never


def test_a_clause_that_took_effect_and_was_later_suspended_bit() -> None:
    record = measure(clause("cl1", "2025-01-01", suspension("2025-11-07")))
    [row] = v.clause_rows(
        Resolved("m", record, [["suspended", str(E[11]), None]]), at("2025-12-05")
    )
    assert row["never_in_force"] is False


def test_measures_lists_every_clause_of_every_measure_filtered_by_status() -> None:
    resolved = [
        Resolved(
            "m1",
            measure(clause("cl1"), clause("cl2"), mid="m1"),
            [["in-force", None, None], ["revoked", None, None]],
        ),
        Resolved("m2", measure(clause("cl1"), mid="m2"), [["in-force", None, None]]),
    ]
    as_of = at("2025-07-01")
    assert [(r["measure_id"], r["clause_id"]) for r in v.measures(resolved, as_of)] == [
        ("m1", "cl1"),
        ("m1", "cl2"),
        ("m2", "cl1"),
    ]
    assert [
        (r["measure_id"], r["clause_id"]) for r in v.measures(resolved, as_of, status="in-force")
    ] == [
        ("m1", "cl1"),
        ("m2", "cl1"),
    ]


# --- commitments ------------------------------------------------------------------------


def test_a_commitment_row() -> None:
    record = commitment(
        "c1",
        impl("2025-11-10", "2025-11-20", extent="partial", n=13),
        impl("2025-11-25", n=14),
        due_by=at("2025-11-30"),
        reciprocates=("c2",),
        asserted_by=("US",),
        unilateral=True,
    )
    as_of = at("2025-12-01")
    assert v.commitment_row(Resolved("c1", record, ["implemented", str(E[14])]), as_of) == {
        "commitment_id": "c1",
        "agreement_id": "busan-2025",
        "obligor": "CN",
        "beneficiary": "US",
        "category": "export-controls",
        "description": "pledge c1",
        "status": "implemented",
        "implemented": True,
        "pending": False,
        "overdue": False,
        "due_by": at("2025-11-30"),
        "pledged_at": at("2025-11-01"),
        "first_implemented_at": at("2025-11-10"),
        "first_implementation_event": E[13],
        "implementation_event": str(E[14]),
        "implemented_spans": [[at("2025-11-10"), at("2025-11-20")], [at("2025-11-25"), None]],
        "in_force_spans": [
            {"start": at("2025-11-10"), "end": at("2025-11-20"), "days": 10},
            {"start": at("2025-11-25"), "end": None, "days": 7},
        ],
        "ended_at": None,
        "unilateral": True,
        "asserted_by": ["US"],
        "reciprocates": ["c2"],
        "pledge_event": E[0],
    }


@pytest.mark.parametrize(
    ("status", "implemented", "pending", "overdue"),
    [
        ("pledged", False, True, False),
        ("overdue", False, True, True),
        ("implemented", True, False, False),
        ("partially-implemented", True, False, False),
        ("implementation-ended", False, False, False),
        ("reversed", False, False, False),
        ("lapsed", False, False, False),
    ],
)
def test_a_commitments_flags_follow_its_status(
    status: str, implemented: bool, pending: bool, overdue: bool
) -> None:
    row = v.commitment_row(
        Resolved("c1", commitment("c1", ended_at="2026-01-01"), [status, None]), at("2026-02-01")
    )
    assert (row["implemented"], row["pending"], row["overdue"]) == (implemented, pending, overdue)
    assert (row["first_implemented_at"], row["first_implementation_event"]) == (None, None)
    assert row["ended_at"] == at("2026-01-01")


def test_commitments_filtered_by_agreement_and_party() -> None:
    resolved = [
        Resolved("c1", commitment("c1"), ["pledged", None]),
        Resolved("c2", commitment("c2", obligor="US", beneficiary="CN"), ["pledged", None]),
        Resolved(
            "c3",
            commitment("c3", agreement_id="other", obligor="EU", beneficiary="CN"),
            ["pledged", None],
        ),
    ]
    as_of = at("2025-12-01")

    def ids(**kw: Any) -> list[str]:
        return [r["commitment_id"] for r in v.commitments(resolved, as_of, **kw)]

    assert ids() == ["c1", "c2", "c3"]
    assert ids(agreement="busan-2025") == ["c1", "c2"]
    assert ids(party="US") == ["c1", "c2"]  # as obligor or as beneficiary
    assert ids(party="EU") == ["c3"]
    assert ids(agreement="other", party="US") == []
    assert ids(agreement="busan-2025", party="CN") == ["c1", "c2"]


# --- asymmetry --------------------------------------------------------------------------


def rows_of(*records: tuple[rec.CommitmentRecord, str], as_of: dt.datetime) -> list[dict[str, Any]]:
    return [
        v.commitment_row(Resolved(c.commitment_id, c, [status, None]), as_of)
        for c, status in records
    ]


def test_reciprocal_pairs_are_found_once_each() -> None:
    as_of = at("2025-12-01")
    rows = rows_of(
        (commitment("c2", reciprocates=("c1",)), "pledged"),
        (commitment("c1", reciprocates=("c2", "gone")), "pledged"),
        (commitment("c3", reciprocates=("c1",)), "pledged"),
        (commitment("c4"), "pledged"),
        as_of=as_of,
    )
    pairs = [(a["commitment_id"], b["commitment_id"]) for a, b in v._pairs(rows)]
    assert pairs == [("c1", "c2"), ("c1", "c3")]
    # An unknown id first, or a pair already found first: the next ids still count.
    rows = rows_of(
        (commitment("c1", reciprocates=("c2",)), "pledged"),
        (commitment("c2", reciprocates=("c1", "c3")), "pledged"),
        (commitment("c4", reciprocates=("gone", "c3")), "pledged"),
        (commitment("c3"), "pledged"),
        as_of=as_of,
    )
    pairs = [(a["commitment_id"], b["commitment_id"]) for a, b in v._pairs(rows)]
    assert pairs == [("c1", "c2"), ("c2", "c3"), ("c3", "c4")]


AGREED = {"busan-2025": at("2025-10-30")}


def pair(
    a: rec.CommitmentRecord,
    a_status: str,
    b: rec.CommitmentRecord,
    b_status: str,
    as_of: dt.datetime,
) -> dict[str, Any]:
    ra, rb = rows_of((a, a_status), (b, b_status), as_of=as_of)
    return v.pair_row(ra, rb, as_of, AGREED)


def test_a_pair_neither_side_implemented() -> None:
    as_of = at("2025-12-01")
    row = pair(
        commitment("c1"),
        "pledged",
        commitment("c2", obligor="US", beneficiary="CN"),
        "overdue",
        as_of,
    )
    assert row == {
        "agreement_id": "busan-2025",
        "commitments": ["c1", "c2"],
        "obligors": ["CN", "US"],
        "statuses": ["pledged", "overdue"],
        "first_implemented_at": [None, None],
        "implemented_first": None,
        "first_commitment": None,
        "other_commitment": None,
        "other_status": None,
        "state": "neither-implemented",
        "one_sided_since": None,
        "one_sided_until": None,
        "other_pending": False,
        "one_sided_days": None,
        "one_sided_hours": None,
        "one_sided_for": None,
        "days_from_agreement": None,
        "agreement_date": at("2025-10-30"),
    }


def test_a_one_sided_pair() -> None:
    as_of = at("2025-12-02", 12)
    us_side = commitment("c2", obligor="US", beneficiary="CN")
    row = pair(us_side, "pledged", commitment("c1", impl("2025-11-10")), "implemented", as_of)
    assert {
        k: row[k] for k in row if k not in ("obligors", "statuses", "first_implemented_at")
    } == {
        "agreement_id": "busan-2025",
        "commitments": ["c2", "c1"],
        "implemented_first": "CN",
        "first_commitment": "c1",
        "other_commitment": "c2",
        "other_status": "pledged",
        "state": "one-sided",
        "one_sided_since": at("2025-11-10"),
        "one_sided_until": as_of,
        "other_pending": True,
        "one_sided_days": 22,
        "one_sided_hours": 540.0,
        "one_sided_for": "22 days",
        "days_from_agreement": 33,
        "agreement_date": at("2025-10-30"),
    }
    # The implemented side given first: the same answer.
    row2 = pair(commitment("c1", impl("2025-11-10")), "implemented", us_side, "pledged", as_of)
    assert (row2["first_commitment"], row2["other_commitment"]) == ("c1", "c2")
    assert row2["state"] == "one-sided"


def test_a_side_whose_implementation_is_not_in_force_at_t_is_not_live() -> None:
    as_of = at("2025-12-01")
    # Implemented status but no stretch in force at T (the record's spans decide).
    row = pair(
        commitment("c1", impl("2025-11-10", "2025-11-20")),
        "implemented",
        commitment("c2", obligor="US"),
        "pledged",
        as_of,
    )
    assert row["state"] == "neither-implemented"
    # A stretch in force but a status not implemented (e.g. reversed in the meantime).
    row = pair(
        commitment("c1", impl("2025-11-10")),
        "reversed",
        commitment("c2", obligor="US"),
        "pledged",
        as_of,
    )
    assert row["state"] == "neither-implemented"


def test_one_sided_again_from_the_other_sides_last_implementation_ending() -> None:
    as_of = at("2025-12-20")
    row = pair(
        commitment("c1", impl("2025-11-10")),
        "implemented",
        commitment("c2", impl("2025-11-12", "2025-12-01"), obligor="US"),
        "implementation-ended",
        as_of,
    )
    assert (row["state"], row["one_sided_since"], row["one_sided_days"]) == (
        "one-sided",
        at("2025-12-01"),
        19,
    )
    assert row["other_pending"] is False
    # The other side's stretch ended before the live side's began: since its start.
    row = pair(
        commitment("c1", impl("2025-11-10")),
        "implemented",
        commitment("c2", impl("2025-11-01", "2025-11-05"), obligor="US"),
        "implementation-ended",
        as_of,
    )
    assert row["one_sided_since"] == at("2025-11-10")
    # ... or exactly when it began: since then.
    row = pair(
        commitment("c1", impl("2025-11-10")),
        "implemented",
        commitment("c2", impl("2025-11-01", "2025-11-10"), obligor="US"),
        "implementation-ended",
        as_of,
    )
    assert row["one_sided_since"] == at("2025-11-10")


def test_both_implemented_the_first_side_first() -> None:
    as_of = at("2025-12-20")
    row = pair(
        commitment("c1", impl("2025-11-20")),
        "implemented",
        commitment("c2", impl("2025-11-10"), obligor="US"),
        "partially-implemented",
        as_of,
    )
    assert {
        k: row[k] for k in row if k not in ("obligors", "statuses", "first_implemented_at")
    } == {
        "agreement_id": "busan-2025",
        "commitments": ["c1", "c2"],
        "implemented_first": "US",
        "first_commitment": "c2",
        "other_commitment": "c1",
        "other_status": "implemented",
        "state": "both-implemented",
        "one_sided_since": at("2025-11-10"),
        "one_sided_until": at("2025-11-20"),
        "other_pending": False,
        "one_sided_days": 10,
        "one_sided_hours": 240.0,
        "one_sided_for": "10 days",
        "days_from_agreement": 21,
        "agreement_date": at("2025-10-30"),
    }


def test_both_implemented_at_the_same_instant_is_no_asymmetry() -> None:
    as_of = at("2025-12-20")
    row = pair(
        commitment("c2", impl("2025-11-10"), obligor="US"),
        "implemented",
        commitment("c1", impl("2025-11-10")),
        "implemented",
        as_of,
    )
    assert (row["state"], row["implemented_first"]) == ("both-implemented", "both")
    assert (row["first_commitment"], row["other_commitment"]) == ("c1", "c2")  # ties by id
    assert (row["one_sided_days"], row["one_sided_hours"], row["one_sided_for"]) == (
        0,
        0.0,
        "0 days",
    )


def test_both_implemented_after_the_later_side_implemented_reversed_and_again() -> None:
    as_of = at("2026-01-20")
    # US implemented 10 Nov to 1 Dec, then again from 15 Dec; CN from 20 Nov.  The pair
    # was one-sided (CN's) from 1 Dec to 15 Dec: the last stretch's start.
    row = pair(
        commitment("c1", impl("2025-11-20")),
        "implemented",
        commitment(
            "c2", impl("2025-11-10", "2025-12-01", n=1), impl("2025-12-15", n=2), obligor="US"
        ),
        "implemented",
        as_of,
    )
    assert (row["implemented_first"], row["one_sided_since"], row["one_sided_until"]) == (
        "CN",
        at("2025-12-01"),
        at("2025-12-15"),
    )
    assert row["one_sided_days"] == 14
    # The other side's earlier stretch ended before the first side's began: since its start.
    row = pair(
        commitment("c1", impl("2025-11-20")),
        "implemented",
        commitment(
            "c2", impl("2025-11-01", "2025-11-05", n=1), impl("2025-12-15", n=2), obligor="US"
        ),
        "implemented",
        as_of,
    )
    assert row["one_sided_since"] == at("2025-11-20")
    row = pair(
        commitment("c1", impl("2025-11-20")),
        "implemented",
        commitment(
            "c2", impl("2025-11-01", "2025-11-20", n=1), impl("2025-12-15", n=2), obligor="US"
        ),
        "implemented",
        as_of,
    )
    assert row["one_sided_since"] == at("2025-11-20")


def test_a_pair_without_a_known_agreement_date() -> None:
    as_of = at("2025-12-20")
    ra, rb = rows_of(
        (commitment("c1", impl("2025-11-10")), "implemented"),
        (commitment("c2", obligor="US"), "pledged"),
        as_of=as_of,
    )
    row = v.pair_row(ra, rb, as_of, {})
    assert (row["agreement_date"], row["days_from_agreement"]) == (None, None)
    assert row["one_sided_days"] == 40


def test_asymmetry_counts_per_agreement_and_party() -> None:
    as_of = at("2025-12-20")
    records = [
        (commitment("c1", impl("2025-11-10"), reciprocates=("c2",)), ["implemented", str(E[0])]),
        (
            commitment("c2", obligor="US", beneficiary="CN", due_by=at("2025-12-01")),
            ["overdue", None],
        ),
        (commitment("c3", asserted_by=("US",), unilateral=True), ["pledged", None]),
        (commitment("c4", ended_at="2025-12-05"), ["reversed", None]),
        (commitment("c5", ended_at="2025-12-05", obligor="US", beneficiary="CN"), ["lapsed", None]),
        (commitment("c6", agreement_id="geneva", obligor="EU"), ["partially-implemented", None]),
    ]
    resolved = [Resolved(c.commitment_id, c, d) for c, d in records]
    agreements = [
        Resolved(
            "busan-2025",
            rec.AgreementRecord(
                agreement_id="busan-2025",
                title="Busan arrangement",
                parties=("US", "CN"),
                reached_at=at("2025-10-30"),
                reached_event=E[15],
            ),
            "in-force",
        )
    ]
    out = v.asymmetry(resolved, agreements, as_of)
    empty = {name: [] for name in v._COUNTED}
    zero = dict.fromkeys(v._COUNTED, 0)
    assert out["parties"] == [
        {
            "agreement_id": "busan-2025",
            "agreement_title": "Busan arrangement",
            "agreement_status": "in-force",
            "party": "CN",
            "counts": {
                **zero,
                "pledged": 3,
                "implemented": 1,
                "pending": 1,
                "reversed": 1,
                "unilateral_claims": 1,
            },
            **empty,
            "pledged": ["c1", "c3", "c4"],
            "implemented": ["c1"],
            "pending": ["c3"],
            "reversed": ["c4"],
            "unilateral_claims": ["c3"],
        },
        {
            "agreement_id": "busan-2025",
            "agreement_title": "Busan arrangement",
            "agreement_status": "in-force",
            "party": "US",
            "counts": {**zero, "pledged": 2, "pending": 1, "overdue": 1, "lapsed": 1},
            **empty,
            "pledged": ["c2", "c5"],
            "pending": ["c2"],
            "overdue": ["c2"],
            "lapsed": ["c5"],
        },
        {
            "agreement_id": "geneva",
            "agreement_title": None,
            "agreement_status": None,
            "party": "EU",
            "counts": {**zero, "pledged": 1, "implemented": 1},
            **empty,
            "pledged": ["c6"],
            "implemented": ["c6"],
        },
    ]
    [p] = out["pairs"]
    assert (p["commitments"], p["state"], p["one_sided_since"]) == (
        ["c1", "c2"],
        "one-sided",
        at("2025-11-10"),
    )
    assert p["days_from_agreement"] == 51
    assert [r["commitment_id"] for r in out["commitments"]] == ["c1", "c2", "c3", "c4", "c5", "c6"]
    only = v.asymmetry(resolved, agreements, as_of, agreement="geneva")
    assert [x["party"] for x in only["parties"]] == ["EU"]
    assert (only["pairs"], [r["commitment_id"] for r in only["commitments"]]) == ([], ["c6"])


def test_asymmetry_pairs_are_sorted_by_agreement_then_commitments() -> None:
    as_of = at("2025-12-20")
    records = [
        commitment("z1", agreement_id="b", reciprocates=("z2",)),
        commitment("z2", agreement_id="b", obligor="US"),
        commitment("b1", agreement_id="c", reciprocates=("b2",)),
        commitment("b2", agreement_id="c", obligor="US"),
        commitment("a1", agreement_id="b", reciprocates=("a2",)),
        commitment("a2", agreement_id="b", obligor="US"),
    ]
    resolved = [Resolved(c.commitment_id, c, ["pledged", None]) for c in records]
    out = v.asymmetry(resolved, [], as_of)
    assert [p["commitments"] for p in out["pairs"]] == [["a1", "a2"], ["z1", "z2"], ["b1", "b2"]]
    assert [(x["agreement_id"], x["party"]) for x in out["parties"]] == [
        ("b", "CN"),
        ("b", "US"),
        ("c", "CN"),
        ("c", "US"),
    ]
