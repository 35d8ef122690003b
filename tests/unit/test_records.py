"""The view records of ``ledger.projections.records``, case by case (pure: no services).

The folds behind these records are tested through the ledger in tests/integration; these
pin the record logic itself at its edges (an instant equal to a bound, a span that meets
the next one, a shipment at the instant a licence is suspended, equal effective times)
so that mutation testing can judge it against the unit tests alone (docs/mutation.md).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import pytest

from ledger import events as ev
from ledger.domain import state as st
from ledger.intake import parse_object
from ledger.projections import records as rec
from ledger.times import EPOCH, to_us
from tests import factory as f

UTC = dt.UTC


def at(day: str, hour: int = 0) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def us(day: str, hour: int = 0) -> int:
    return to_us(at(day, hour))


def event(obj: dict[str, Any], recorded: str = "2026-11-01") -> ev.Event:
    """One event as the ledger would write it, recorded at ``recorded`` (no rules run:
    the record logic must also fold histories the rules saw in another order)."""
    return parse_object(obj, actor="test", now=at(recorded)).event


def licence_state(
    valid_from: str = "2026-01-01",
    valid_until: str = "2026-12-01",
    *,
    suspended: tuple[str, str | None] | None = None,
    withdrawn: str | None = None,
    surrendered: str | None = None,
) -> st.LicenceState:
    return st.LicenceState(
        licence_id="GL-1",
        licence_type="general",
        issuer="CN",
        exporter="jl-mag",
        end_users=("buyer",),
        items={"1C902.a": st.ItemState("1C902.a", Decimal(1000), "kg")},
        destinations=("DE",),
        valid_from=at(valid_from),
        valid_until=at(valid_until),
        granted_event_id=UUID(int=1),
        suspended_from=None if suspended is None else at(suspended[0]),
        suspended_until=None if suspended is None or suspended[1] is None else at(suspended[1]),
        withdrawn_at=None if withdrawn is None else at(withdrawn),
        surrendered_at=None if surrendered is None else at(surrendered),
    )


def span(a: str, b: str | None) -> rec.Span:
    return (at(a), None if b is None else at(b))


# --- small parts ------------------------------------------------------------------------


def test_an_items_remaining_quantity_is_its_cap_less_what_was_used() -> None:
    assert rec.ItemUse("1C902.a", Decimal(1000), Decimal(250), "kg").remaining == Decimal(750)


def test_a_licence_records_items_as_coverage_reads_them() -> None:
    items = (
        rec.ItemUse("1C902", Decimal(10), Decimal(0), "kg"),
        rec.ItemUse("1C902.a", Decimal(5), Decimal(1), "kg"),
    )
    record = msgspec.structs.replace(licence_record(), items=items)
    assert record.licensed_items() == items
    assert record.licensed_item("1C902.a.1") == items[1]  # the most specific prefix
    assert record.licensed_item("1C902.b") == items[0]
    assert record.licensed_item("2B001") is None
    assert record.item_named("1C902") == items[0]
    assert record.item_named("1C902.a") == items[1]
    assert record.item_named("1C902.a.1") is None  # named exactly, not by prefix


def licence_record() -> rec.LicenceRecord:
    record = rec.static_record(rec.fold_visible([event(f.licence())]))
    assert isinstance(record, rec.LicenceRecord)
    return record


def test_what_a_listing_filters_an_entity_by() -> None:
    licence = rec.fold_visible([event(f.licence(exporter="jl-mag"))])
    commitment = rec.fold_visible([event(f.pledge("c1", agreement_id="busan-2025"))])
    party = rec.fold_visible([event(f.party("buyer"))])
    assert rec.ref_of(licence.state) == "jl-mag"
    assert rec.ref_of(rec.static_record(licence)) == "jl-mag"
    assert rec.ref_of(commitment.state) == "busan-2025"
    assert rec.ref_of(rec.static_record(commitment)) == "busan-2025"
    assert rec.ref_of(party.state) is None
    assert rec.ref_of(rec.static_record(party)) is None


# --- a licence's active and suspended spans ---------------------------------------------


@pytest.mark.parametrize(
    ("state", "start", "stop", "active", "suspended"),
    [
        # Validity alone; the window's start before it and after it.
        (licence_state(), "2025-01-01", None, [span("2026-01-01", "2026-12-01")], []),
        (licence_state(), "2026-03-01", None, [span("2026-03-01", "2026-12-01")], []),
        # A stop inside the validity ends the span there; one after it changes nothing.
        (licence_state(), "2025-01-01", "2026-05-01", [span("2026-01-01", "2026-05-01")], []),
        (licence_state(), "2025-01-01", "2027-01-01", [span("2026-01-01", "2026-12-01")], []),
        # A window that ends exactly where the validity starts, or starts where it ends.
        (licence_state(), "2025-01-01", "2026-01-01", [], []),
        (licence_state(), "2026-12-01", None, [], []),
        # Withdrawal and surrender end it early; after its validity they change nothing.
        (
            licence_state(withdrawn="2026-04-01"),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-04-01")],
            [],
        ),
        (
            licence_state(surrendered="2026-05-01"),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-05-01")],
            [],
        ),
        (
            licence_state(withdrawn="2026-04-01", surrendered="2026-02-01"),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-04-01")],  # the withdrawal is read first
            [],
        ),
        (
            licence_state(withdrawn="2027-04-01"),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-12-01")],
            [],
        ),
        (licence_state(withdrawn="2026-01-01"), "2025-01-01", None, [], []),
        # A suspension inside, open-ended, ending, running past the window's stop.
        (
            licence_state(suspended=("2026-03-01", None)),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-03-01")],
            [span("2026-03-01", "2026-12-01")],
        ),
        (
            licence_state(suspended=("2026-03-01", "2026-04-01")),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-03-01"), span("2026-04-01", "2026-12-01")],
            [span("2026-03-01", "2026-04-01")],
        ),
        (
            licence_state(suspended=("2026-03-01", "2026-04-01")),
            "2025-01-01",
            "2026-03-15",
            [span("2026-01-01", "2026-03-01")],
            [span("2026-03-01", "2026-03-15")],
        ),
        (
            licence_state(suspended=("2026-03-01", "2027-04-01")),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-03-01")],
            [span("2026-03-01", "2026-12-01")],
        ),
        # A suspension begun before the window: cut from the window's start.
        (
            licence_state(suspended=("2025-06-01", "2026-02-01")),
            "2025-01-01",
            None,
            [span("2026-02-01", "2026-12-01")],
            [span("2026-01-01", "2026-02-01")],
        ),
        # One that ended exactly where the window starts, or before it: nothing cut.
        (
            licence_state(suspended=("2025-06-01", "2026-01-01")),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-12-01")],
            [],
        ),
        (
            licence_state(suspended=("2025-06-01", "2025-09-01")),
            "2025-01-01",
            None,
            [span("2026-01-01", "2026-12-01")],
            [],
        ),
        # One that begins exactly where the window stops: nothing cut either.
        (
            licence_state(suspended=("2026-05-01", None)),
            "2025-01-01",
            "2026-05-01",
            [span("2026-01-01", "2026-05-01")],
            [],
        ),
        # A suspension starting with the validity: no active span before it.
        (
            licence_state(suspended=("2026-01-01", "2026-02-01")),
            "2025-01-01",
            None,
            [span("2026-02-01", "2026-12-01")],
            [span("2026-01-01", "2026-02-01")],
        ),
    ],
)
def test_licence_periods(
    state: st.LicenceState,
    start: str,
    stop: str | None,
    active: list[rec.Span],
    suspended: list[rec.Span],
) -> None:
    assert rec.licence_periods(state, at(start), None if stop is None else at(stop)) == (
        active,
        suspended,
    )


def test_spans_that_meet_are_joined_and_the_others_kept() -> None:
    spans = [span("2026-01-01", "2026-02-01"), span("2026-02-01", "2026-03-01")]
    spans += [span("2026-03-02", "2026-04-01"), span("2026-04-01", None)]
    assert rec._joined(spans) == (span("2026-01-01", "2026-03-01"), span("2026-03-02", None))
    assert rec._joined([]) == ()
    assert rec._joined([span("2026-01-01", "2026-02-01")]) == (span("2026-01-01", "2026-02-01"),)


def test_the_settled_past_of_a_licence() -> None:
    past = rec.LicencePast(at("2026-01-01"))
    suspended = licence_state(suspended=("2026-02-01", None))
    past.settle(suspended, at("2026-01-01"))  # at its own start: nothing to settle
    assert (past.since, past.active, past.suspended) == (at("2026-01-01"), [], [])
    past.settle(suspended, at("2026-03-01"))
    assert past.since == at("2026-03-01")
    assert past.active == [span("2026-01-01", "2026-02-01")]
    assert past.suspended == [span("2026-02-01", "2026-03-01")]
    past.settle(suspended, at("2026-02-15"))  # before its settled end: no change
    assert past.since == at("2026-03-01")
    assert past.suspended == [span("2026-02-01", "2026-03-01")]
    # Settled again while still suspended: the spans add up (joined only by ``spans``).
    again = rec.LicencePast(at("2026-01-01"))
    again.settle(suspended, at("2026-03-01"))
    again.settle(suspended, at("2026-03-15"))
    assert again.suspended == [span("2026-02-01", "2026-03-01"), span("2026-03-01", "2026-03-15")]
    assert again.active == [span("2026-01-01", "2026-02-01")]
    assert again.spans(suspended)[1] == (span("2026-02-01", "2026-12-01"),)
    # Reinstated on 1 March: the suspension settled before it joins nothing, the active
    # span from then on follows the current state.
    reinstated = licence_state()
    assert past.spans(reinstated) == (
        (span("2026-01-01", "2026-02-01"), span("2026-03-01", "2026-12-01")),
        (span("2026-02-01", "2026-03-01"),),
    )
    # Still suspended: the settled suspension and the scheduled one are one span.
    assert past.spans(suspended) == (
        (span("2026-01-01", "2026-02-01"),),
        (span("2026-02-01", "2026-12-01"),),
    )


# --- folding with findings --------------------------------------------------------------


def test_a_shipment_where_the_licence_was_not_in_force_is_noted_with_its_cause() -> None:
    granted = event(f.licence(), recorded="2025-12-01")
    suspension = event(f.licence_event("LicenceSuspended"), recorded="2026-01-20")
    before = event(f.usage(shipment="S-1", effective_at="2026-01-09"), recorded="2026-01-09")
    # Shipped at the very instant the suspension took effect, recorded before it was known.
    during = event(
        f.usage(shipment="S-2", quantity="30", effective_at="2026-01-10"), recorded="2026-01-12"
    )
    folded = rec.fold_visible([granted, before, suspension, during])
    assert folded.late_usage == [
        rec.LateUsage(
            usage_event=during.event_id,
            shipment_id="S-2",
            shipped_at=at("2026-01-10"),
            recorded_at=at("2026-01-12"),
            item="1C902.a",
            quantity=Decimal(30),
            licence_status="suspended",
            since=at("2026-01-10"),
            cause_event=suspension.event_id,
            cause_recorded_at=at("2026-01-20"),
        )
    ]
    assert folded.causes == {suspension.event_id: suspension}
    state = folded.state
    assert isinstance(state, st.LicenceState)
    assert state.shipment_count == 2
    assert state.items["1C902.a"].used == Decimal(130)  # a late shipment still draws


@pytest.mark.parametrize(
    ("terminal", "status"),
    [("LicenceWithdrawn", "withdrawn"), ("LicenceSurrendered", "surrendered")],
)
def test_a_shipment_after_the_licence_ended_names_the_ending(terminal: str, status: str) -> None:
    granted = event(f.licence(), recorded="2025-12-01")
    ending = event(f.licence_event(terminal), recorded="2026-03-05")
    late = event(f.usage(effective_at="2026-03-01"), recorded="2026-03-02")
    folded = rec.fold_visible([granted, ending, late])
    [noted] = folded.late_usage
    assert (noted.licence_status, noted.since) == (status, at("2026-03-01"))
    assert (noted.cause_event, noted.cause_recorded_at) == (ending.event_id, at("2026-03-05"))
    assert folded.causes == {ending.event_id: ending}


def test_a_shipment_before_validity_or_after_expiry_has_no_cause_event() -> None:
    granted = event(f.licence(), recorded="2025-11-01")
    early = event(f.usage(shipment="S-1", effective_at="2025-12-01"), recorded="2025-12-01")
    # valid_until 2026-12-01 ends at 2026-12-02T00:00: a shipment at that instant is late.
    expired = event(f.usage(shipment="S-2", effective_at="2026-12-02"), recorded="2026-12-02")
    folded = rec.fold_visible([early, granted, expired])  # early: before the creation
    assert [x.shipment_id for x in folded.late_usage] == ["S-2"]
    [noted] = folded.late_usage
    assert (noted.licence_status, noted.since) == ("expired", at("2026-12-02"))
    assert (noted.cause_event, noted.cause_recorded_at) == (None, None)
    ahead = rec.fold_visible(
        [granted, event(f.usage(effective_at="2025-12-01T23:59:59Z"), recorded="2026-01-01")]
    )
    [noted] = ahead.late_usage
    assert (noted.licence_status, noted.since) == ("not-yet-valid", at("2025-12-02"))


def test_a_shipment_at_the_first_instant_of_validity_is_in_force() -> None:
    granted = event(f.licence(), recorded="2025-11-01")
    first = event(f.usage(effective_at="2025-12-02"), recorded="2025-12-02")
    assert rec.fold_visible([granted, first]).late_usage == []


def test_a_status_the_caller_knows_is_taken_as_given() -> None:
    granted = event(f.licence(), recorded="2025-11-01")
    shipment = event(f.usage(effective_at="2026-01-05"), recorded="2026-01-05")
    folded = rec.fold_visible([granted])
    folded.step(shipment, status="exhausted")
    [noted] = folded.late_usage
    assert (noted.licence_status, noted.since, noted.cause_event) == ("exhausted", None, None)
    folded = rec.fold_visible([granted])
    folded.step(shipment, status="active")
    assert folded.late_usage == []
    assert isinstance(folded.state, st.LicenceState)
    assert folded.state.shipment_count == 1


def test_the_fold_settles_the_licences_past_at_each_change_of_terms() -> None:
    granted = event(f.licence())
    suspension = event(f.licence_event("LicenceSuspended"))
    reinstated = event(f.licence_event("LicenceReinstated"))
    folded = rec.fold_visible([granted, suspension, reinstated])
    assert folded.past is not None
    assert folded.past.since == at("2026-02-01")
    assert folded.past.active == [span("2025-12-02", "2026-01-10")]
    assert folded.past.suspended == [span("2026-01-10", "2026-02-01")]
    record = rec.static_record(folded)
    assert isinstance(record, rec.LicenceRecord)
    assert record.active_spans == (
        span("2025-12-02", "2026-01-10"),
        span("2026-02-01", "2026-12-02"),
    )
    assert record.suspended_spans == (span("2026-01-10", "2026-02-01"),)


def test_only_a_licence_has_a_past_and_late_usage() -> None:
    folded = rec.fold_visible([event(f.party("buyer")), event(f.vetted("buyer"))])
    assert (folded.past, folded.late_usage, folded.causes) == (None, [], {})
    assert isinstance(folded.state, st.PartyState)
    assert folded.state.vetting == "approved"
    assert rec.fold_visible([]).state is None
    assert rec.static_record(rec.fold_visible([])) is None


# --- static records ---------------------------------------------------------------------


def test_a_licences_record_shows_every_event_it_folded() -> None:
    granted = event(
        f.licence(
            items=[
                {"item": "1C902.a", "cap": "1000", "unit": "kg"},
                {"item": "2B001", "cap": "5", "unit": "pcs"},
            ],
            end_users=["buyer", "other"],
            destinations=["DE", "FR"],
        )
    )
    suspension = event(f.licence_event("LicenceSuspended", until="2026-01-20"))
    shipment = event(f.usage(quantity="40"))
    withdrawn = event(f.licence_event("LicenceWithdrawn"))
    late = event(f.usage(shipment="S-2", quantity="1", item="2B001", effective_at="2026-04-01"))
    folded = rec.fold_visible([granted, shipment, suspension, withdrawn, late])
    record = rec.static_record(folded)
    assert record == rec.LicenceRecord(
        licence_id="GL-1",
        licence_type="general",
        issuer="CN",
        exporter="jl-mag",
        end_users=("buyer", "other"),
        destinations=("DE", "FR"),
        items=(
            rec.ItemUse("1C902.a", Decimal(1000), Decimal(40), "kg"),
            rec.ItemUse("2B001", Decimal(5), Decimal(1), "pcs"),
        ),
        valid_from=at("2025-12-02"),
        valid_until=at("2026-12-02"),
        granted_event=granted.event_id,
        suspended_from=at("2026-01-10"),
        suspended_until=at("2026-01-21"),
        suspension_event=suspension.event_id,
        withdrawn_at=at("2026-03-01"),
        surrendered_at=None,
        terminal_event=withdrawn.event_id,
        shipments=2,
        late_usage=tuple(folded.late_usage),
        active_spans=(span("2025-12-02", "2026-01-10"), span("2026-01-21", "2026-03-01")),
        suspended_spans=(span("2026-01-10", "2026-01-21"),),
    )
    assert [x.usage_event for x in record.late_usage] == [late.event_id]
    surrendered = rec.static_record(
        rec.fold_visible([granted, event(f.licence_event("LicenceSurrendered"))])
    )
    assert isinstance(surrendered, rec.LicenceRecord)
    assert surrendered.surrendered_at == at("2026-03-01")
    assert surrendered.withdrawn_at is None


def test_a_licence_folded_without_its_past_has_no_spans() -> None:
    folded = rec.fold_visible([event(f.licence())])
    folded.past = None
    record = rec.static_record(folded)
    assert isinstance(record, rec.LicenceRecord)
    assert (record.active_spans, record.suspended_spans) == ((), ())


def test_applications_and_claims_have_no_view_record() -> None:
    folded = rec.fold_visible([event(f.application())])
    assert isinstance(folded.state, st.ApplicationState)
    assert rec.static_record(folded) is None
    assert rec.next_record(None, folded, event(f.application())) is None


def records_along(events: list[ev.Event]) -> list[rec.Record | None]:
    """``next_record`` after each event, from the previous one.  On a second fold, each
    shipment onto a licence with a record goes through ``shipped`` instead, its status
    at the shipment given, as the projector folds one in effective order."""
    folded, record, out = rec.Folded(), None, []
    fast, fast_record = rec.Folded(), None
    for e in events:
        if isinstance(e, ev.LicenceUsageRecorded) and fast_record is not None:
            assert isinstance(fast.state, st.LicenceState)
            status = fast.state.status_at(e.effective_at)
            fast_record = rec.shipped(fast_record, fast, e, status)
        else:
            fast.step(e)
            fast_record = rec.next_record(fast_record, fast, e)
        folded.step(e)
        record = rec.next_record(record, folded, e)
        out.append(record)
        # The shortcuts give exactly what the full rebuild gives.
        assert record == rec.static_record(folded)
        assert fast_record == record
        assert fast.late_usage == folded.late_usage
    return out


def test_a_shipment_updates_the_one_item_it_drew_on() -> None:
    granted = event(
        f.licence(
            items=[
                {"item": "1C902", "cap": "1000", "unit": "kg"},
                {"item": "1C902.a", "cap": "50", "unit": "kg"},
                {"item": "2B001", "cap": "5", "unit": "pcs"},
            ]
        )
    )
    out = records_along(
        [
            granted,
            event(f.usage(shipment="S-1", item="1C902.a.1", quantity="10")),
            event(f.usage(shipment="S-2", item="1C902.b", quantity="7")),
            event(f.usage(shipment="S-3", item="2B001", quantity="2")),
            event(f.usage(shipment="S-4", item="3A001", quantity="2")),  # not licensed
            event(f.usage(shipment="S-5", item="1C902", quantity="1", effective_at="2027-01-01")),
        ]
    )
    last = out[-1]
    assert isinstance(last, rec.LicenceRecord)
    assert last.items == (
        rec.ItemUse("1C902", Decimal(1000), Decimal(8), "kg"),
        rec.ItemUse("1C902.a", Decimal(50), Decimal(10), "kg"),
        rec.ItemUse("2B001", Decimal(5), Decimal(2), "pcs"),
    )
    assert last.shipments == 5
    assert [x.shipment_id for x in last.late_usage] == ["S-5"]


@pytest.mark.parametrize("first", ["1C902.a", "1C902.b"])
def test_a_shipment_under_a_licence_of_two_items(first: str) -> None:
    items = [
        {"item": first, "cap": "50", "unit": "kg"},
        {"item": "1C902.x", "cap": "9", "unit": "g"},
    ]
    out = records_along(
        [
            event(f.licence(items=items)),
            event(f.usage(shipment="S-1", item=first, quantity="10")),
            event(f.usage(shipment="S-2", item="1C902.x", quantity="1")),
        ]
    )
    last = out[-1]
    assert isinstance(last, rec.LicenceRecord)
    assert last.items == (
        rec.ItemUse(first, Decimal(50), Decimal(10), "kg"),
        rec.ItemUse("1C902.x", Decimal(9), Decimal(1), "g"),
    )


def test_a_shipment_under_a_licence_of_one_item() -> None:
    out = records_along(
        [
            event(f.licence()),
            event(f.usage(shipment="S-1", quantity="10")),
            event(f.usage(shipment="S-2", item="2B001", quantity="3")),  # not licensed
            event(f.licence_event("LicenceSuspended")),
            event(f.usage(shipment="S-3", quantity="5", effective_at="2026-01-11")),
        ]
    )
    assert [r.items if isinstance(r, rec.LicenceRecord) else None for r in out] == [
        (rec.ItemUse("1C902.a", Decimal(1000), Decimal(0), "kg"),),
        (rec.ItemUse("1C902.a", Decimal(1000), Decimal(10), "kg"),),
        (rec.ItemUse("1C902.a", Decimal(1000), Decimal(10), "kg"),),
        (rec.ItemUse("1C902.a", Decimal(1000), Decimal(10), "kg"),),
        (rec.ItemUse("1C902.a", Decimal(1000), Decimal(15), "kg"),),
    ]
    assert [r.shipments if isinstance(r, rec.LicenceRecord) else None for r in out] == [
        0,
        1,
        2,
        2,
        3,
    ]


def test_a_shipment_keeps_the_previous_records_late_usage_unless_it_is_late() -> None:
    granted = event(f.licence())
    folded = rec.fold_visible([granted])
    previous = rec.static_record(folded)
    assert isinstance(previous, rec.LicenceRecord)
    shipment = event(f.usage())
    folded.step(shipment)
    record = rec.next_record(previous, folded, shipment)
    assert isinstance(record, rec.LicenceRecord)
    assert record.late_usage is previous.late_usage
    assert record.granted_event == previous.granted_event
    # Another kind of record before it: rebuilt, not patched.
    party = rec.static_record(rec.fold_visible([event(f.party("buyer"))]))
    again = rec.next_record(party, folded, shipment)
    assert again == rec.static_record(folded)


# --- the timeline of time-driven statuses -----------------------------------------------


def test_a_licences_timeline() -> None:
    folded = rec.fold_visible(
        [event(f.licence()), event(f.licence_event("LicenceSuspended", until="2026-01-20"))]
    )
    state = folded.state
    assert state is not None
    assert rec._breakpoints(state) == [
        at("2025-12-02"),
        at("2026-12-02"),
        at("2026-01-10"),
        at("2026-01-21"),
    ]
    assert rec.timeline(state) == (
        (rec.ORIGIN, "not-yet-valid"),
        (us("2025-12-02"), "active"),
        (us("2026-01-10"), "suspended"),
        (us("2026-01-21"), "active"),
        (us("2026-12-02"), "expired"),
    )
    assert rec.dynamic(state, at("2026-01-10")) == "suspended"
    assert rec.dynamic(state, at("2026-01-21")) == "active"


def test_a_withdrawn_licences_timeline_is_one_value() -> None:
    state = rec.fold_visible([event(f.licence()), event(f.licence_event("LicenceWithdrawn"))]).state
    assert state is not None
    assert rec.timeline(state) == ((rec.ORIGIN, "withdrawn"),)


def test_a_partys_timeline() -> None:
    vetted = rec.fold_visible(
        [event(f.party("buyer")), event(f.vetted("buyer", valid_until="2026-05-31"))]
    ).state
    assert vetted is not None
    assert rec._breakpoints(vetted) == [at("2026-06-01")]
    assert rec.timeline(vetted) == ((rec.ORIGIN, "approved"), (us("2026-06-01"), "expired"))
    assert rec.dynamic(vetted, at("2026-06-01") - dt.timedelta(microseconds=1)) == "approved"
    # No breakpoint: its value at the epoch holds for ever.
    unvetted = rec.fold_visible([event(f.party("other"))]).state
    assert unvetted is not None
    assert rec._breakpoints(unvetted) == []
    assert rec.timeline(unvetted) == ((rec.ORIGIN, "not-vetted"),)


def test_an_agreements_timeline() -> None:
    state = rec.fold_visible([event(f.agreement())]).state
    assert state is not None
    assert rec._breakpoints(state) == [at("2025-10-30"), at("2026-11-10")]
    assert rec.timeline(state) == (
        (rec.ORIGIN, "not-yet-reached"),
        (us("2025-10-30"), "in-force"),
        (us("2026-11-10"), "expired"),
    )


def test_a_commitments_timeline() -> None:
    events = [
        event(f.pledge("c1", due_by="2025-11-30")),
        event(f.implemented("c1", extent="partial", in_force_until="2025-11-19")),
        event(f.implemented("c1", effective_at="2025-11-25")),
    ]
    events.append(
        event(
            {
                "type": "CommitmentReversed",
                "entity_id": "c1",
                "sources": [f.SRC],
                "reason": "retaliation",
                "effective_at": "2026-02-01",
            }
        )
    )
    state = rec.fold_visible(events).state
    assert isinstance(state, st.CommitmentState)
    first, second = (i.event_id for i in state.implementations)
    assert rec._breakpoints(state) == [
        at("2025-12-01"),
        at("2026-02-01"),
        at("2025-11-10"),
        at("2025-11-20"),
        at("2025-11-25"),
    ]
    assert rec.timeline(state) == (
        (rec.ORIGIN, ["pledged", None]),
        (us("2025-11-10"), ["partially-implemented", str(first)]),
        (us("2025-11-20"), ["implementation-ended", None]),
        (us("2025-11-25"), ["implemented", str(second)]),
        (us("2026-02-01"), ["reversed", None]),
    )


def test_an_unimplemented_commitment_falls_overdue_at_its_due_instant() -> None:
    state = rec.fold_visible([event(f.pledge("c1", due_by="2025-11-30"))]).state
    assert state is not None
    assert rec.timeline(state) == (
        (rec.ORIGIN, ["pledged", None]),
        (us("2025-12-01"), ["overdue", None]),
    )


def test_a_measures_timeline_one_value_per_clause() -> None:
    events = [
        event(f.measure()),
        event(f.suspended(effective_at="2025-11-10", until="2026-11-27")),
        event(
            {
                "type": "MeasureRevoked",
                "entity_id": "cn-ann-46",
                "sources": [f.SRC],
                "clause_ids": ["cl1"],
                "reason": "lifted",
                "effective_at": "2026-03-01",
            }
        ),
    ]
    state = rec.fold_visible(events).state
    assert isinstance(state, st.MeasureState)
    suspension = events[1].event_id
    assert rec._breakpoints(state) == [
        at("2024-12-03"),
        at("2026-03-01"),
        at("2024-12-03"),
        at("2025-11-10"),
        at("2026-11-28"),
    ]
    end = at("2026-11-28").isoformat()
    assert rec.timeline(state) == (
        (rec.ORIGIN, [["not-yet-effective", None, None], ["not-yet-effective", None, None]]),
        (us("2024-12-03"), [["in-force", None, None], ["in-force", None, None]]),
        (us("2025-11-10"), [["in-force", None, None], ["suspended", str(suspension), end]]),
        (us("2026-03-01"), [["revoked", None, None], ["suspended", str(suspension), end]]),
        (us("2026-11-28"), [["revoked", None, None], ["in-force", None, None]]),
    )


def test_an_open_ended_clause_suspension_has_no_end_in_the_timeline() -> None:
    events = [event(f.measure()), event(f.suspended(effective_at="2025-11-10", until=None))]
    state = rec.fold_visible(events).state
    assert state is not None
    assert rec.dynamic(state, at("2030-01-01")) == [
        ["in-force", None, None],
        ["suspended", str(events[1].event_id), None],
    ]


def test_other_states_have_no_time_driven_part() -> None:
    state = rec.fold_visible([event(f.application())]).state
    assert state is not None
    assert rec._breakpoints(state) == []
    assert rec.dynamic(state, at("2026-01-01")) is None
    assert rec.timeline(state) == ((rec.ORIGIN, None),)
    assert rec.timeline_key(state) is None


def test_a_timeline_starts_with_the_value_just_before_its_first_breakpoint() -> None:
    # Valid from the epoch's own instant: the value before it is read 1 µs earlier.
    state = licence_state("1970-01-01", "1970-01-02")
    assert rec.timeline(state) == (
        (rec.ORIGIN, "not-yet-valid"),
        (0, "active"),
        (us("1970-01-02"), "expired"),
    )
    assert rec._iso(None) is None
    assert rec._iso(at("2026-01-01")) == "2026-01-01T00:00:00+00:00"
    assert at("1970-01-01") == EPOCH


def test_a_licences_timeline_key_names_every_input_of_its_status() -> None:
    state = licence_state(suspended=("2026-02-01", "2026-03-01"), withdrawn="2026-04-01")
    assert rec.timeline_key(state) == (
        at("2026-01-01"),
        at("2026-12-01"),
        at("2026-02-01"),
        at("2026-03-01"),
        at("2026-04-01"),
        None,
        False,
    )
    state.items["1C902.a"].used = Decimal(1000)
    key = rec.timeline_key(state)
    assert key is not None
    assert key[-1] is True
    party = rec.fold_visible([event(f.party("buyer"))]).state
    assert party is not None
    assert rec.timeline_key(party) is None


def test_resolve_picks_the_value_in_force_at_an_instant() -> None:
    tl = ((rec.ORIGIN, "a"), (10, "b"), (20, "c"))
    assert [rec.resolve(tl, t) for t in (-(2**62), 0, 9, 10, 11, 19, 20, 2**62)] == [
        "a",
        "a",
        "a",
        "b",
        "b",
        "b",
        "c",
        "c",
    ]
    assert rec.resolve(((5, "only"),), 0) == "only"  # before the first entry: the first


# --- encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", rec.VIEW_KINDS)
def test_records_and_timelines_decode_as_they_were_encoded(kind: str) -> None:
    entity = {
        "licence": [f.licence(), f.usage(), f.licence_event("LicenceSuspended")],
        "party": [f.party("buyer"), f.vetted("buyer"), f.listed("buyer")],
        "measure": [f.measure(), f.suspended()],
        "commitment": [f.pledge("c1"), f.implemented("c1")],
        "agreement": [f.agreement()],
    }[kind]
    folded = rec.fold_visible([event(x) for x in entity])
    record = rec.static_record(folded)
    assert type(record) is rec.RECORD_TYPES[kind]
    data = rec.encode(record)
    assert rec.decode_record(kind, data) == record
    assert rec.decoder(kind)(data) == record
    assert folded.state is not None
    tl = rec.timeline(folded.state)
    assert rec.decode_timeline(rec.encode(tl)) == tl
    assert rec.timeline_decoder()(rec.encode(tl)) == tl


def test_kind_codes() -> None:
    assert rec.KIND_CODE == {
        "licence": 1,
        "party": 2,
        "measure": 3,
        "commitment": 4,
        "agreement": 5,
    }


# --- segments of current knowledge ------------------------------------------------------


def decoded(segments: list[rec.Segment], kind: str) -> list[tuple[int, int, Any, Any]]:
    return [
        (s.vf, s.vt, rec.decode_record(kind, s.static), rec.decode_timeline(s.timeline))
        for s in segments
    ]


def test_segments_of_a_licence_over_valid_time() -> None:
    granted = event(f.licence(), recorded="2025-12-01")
    shipment = event(f.usage(), recorded="2025-12-10")
    suspension = event(f.licence_event("LicenceSuspended"), recorded="2026-01-20")
    out = rec.segments([granted, shipment, suspension])
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-12-02"), us("2025-12-10")),
        (us("2025-12-10"), us("2026-01-10")),
        (us("2026-01-10"), rec.INFINITY),
    ]
    records = decoded(out, "licence")
    assert [r[2].shipments for r in records] == [0, 1, 1]
    assert [r[2].suspended_from for r in records] == [None, None, at("2026-01-10")]
    assert records[0][3] == (
        (rec.ORIGIN, "not-yet-valid"),
        (us("2025-12-02"), "active"),
        (us("2026-12-02"), "expired"),
    )
    # As known before the suspension was recorded: two segments, the last open.
    known = rec.segments([granted, shipment, suspension], known_at=at("2026-01-19"))
    assert [(s.vf, s.vt) for s in known] == [
        (us("2025-12-02"), us("2025-12-10")),
        (us("2025-12-10"), rec.INFINITY),
    ]
    # Recorded exactly at K: known at K.
    assert len(rec.segments([granted, shipment, suspension], known_at=at("2026-01-20"))) == 3


def test_events_at_the_same_effective_time_make_one_segment() -> None:
    granted = event(f.licence())
    s1 = event(f.usage(shipment="S-1"))
    s2 = event(f.usage(shipment="S-2", quantity="5"))
    out = rec.segments([granted, s1, s2])
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-12-02"), us("2025-12-10")),
        (us("2025-12-10"), rec.INFINITY),
    ]
    assert decoded(out, "licence")[1][2].items[0].used == Decimal(105)


def test_an_event_that_changes_no_record_starts_no_segment() -> None:
    # A vetting that expires: its record changes; a repeat of the same outcome at a later
    # time changes the vetted date, so only events that change nothing merge.
    party = event(f.party("buyer"))
    acknowledged = [
        event(f.pledge("c1")),
        event(
            {
                "type": "CommitmentAcknowledged",
                "entity_id": "c1",
                "sources": [f.SRC],
                "party": "CN",
                "effective_at": "2025-11-05",
            }
        ),
    ]
    assert len(rec.segments([party])) == 1
    out = rec.segments(acknowledged)
    # The pledge is asserted by its obligor: acknowledging it changes the date shown.
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-11-01"), us("2025-11-05")),
        (us("2025-11-05"), rec.INFINITY),
    ]


def test_segments_merge_when_the_record_is_unchanged() -> None:
    granted = event(f.licence())
    shipment = event(f.usage())
    folded = rec.fold_visible([granted, shipment])
    # The same events, each folded twice as far as the record can tell: a reinstatement
    # with no suspension in force changes nothing.
    reinstated = event(f.licence_event("LicenceReinstated", effective_at="2026-02-01"))
    out, complete = rec.fold_segments([granted, shipment, reinstated])
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-12-02"), us("2025-12-10")),
        (us("2025-12-10"), rec.INFINITY),
    ]
    # A change after the unchanged record still starts its segment.
    later = event(f.usage(shipment="S-2", effective_at="2026-03-01"))
    out, _ = rec.fold_segments([granted, shipment, reinstated, later])
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-12-02"), us("2025-12-10")),
        (us("2025-12-10"), us("2026-03-01")),
        (us("2026-03-01"), rec.INFINITY),
    ]
    assert rec.static_record(complete) == msgspec.structs.replace(
        rec.static_record(folded), active_spans=((at("2025-12-02"), at("2026-12-02")),)
    )


def test_events_before_the_creation_start_no_segment() -> None:
    early = event(f.usage(effective_at="2025-11-01"))
    granted = event(f.licence())
    out, _ = rec.fold_segments([early, granted])
    assert [(s.vf, s.vt) for s in out] == [(us("2025-12-02"), rec.INFINITY)]


def test_segments_from_a_given_instant() -> None:
    granted = event(f.licence())
    s1 = event(f.usage(shipment="S-1"))
    s2 = event(f.usage(shipment="S-2", effective_at="2026-01-05"))
    seen = [granted, s1, s2]
    # From the instant of the first shipment: that shipment is folded into the first one.
    out, folded = rec.fold_segments(seen, since=us("2025-12-10"))
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-12-10"), us("2026-01-05")),
        (us("2026-01-05"), rec.INFINITY),
    ]
    assert [r[2].shipments for r in decoded(out, "licence")] == [1, 2]
    assert decoded(out, "licence")[0][3] == rec.timeline(rec.fold_visible([granted, s1]).state)  # type: ignore[arg-type]
    assert isinstance(folded.state, st.LicenceState)
    assert folded.state.shipment_count == 2
    # From 1 µs before it: it starts a segment of its own.
    out, _ = rec.fold_segments(seen, since=us("2025-12-10") - 1)
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-12-10") - 1, us("2025-12-10")),
        (us("2025-12-10"), us("2026-01-05")),
        (us("2026-01-05"), rec.INFINITY),
    ]
    # From after every event: one open segment holding them all.
    out, _ = rec.fold_segments(seen, since=us("2026-06-01"))
    assert [(s.vf, s.vt) for s in out] == [(us("2026-06-01"), rec.INFINITY)]
    assert decoded(out, "licence")[0][2].shipments == 2
    # From before the entity existed: nothing until it does.
    out, _ = rec.fold_segments(seen, since=us("2025-01-01"))
    assert [(s.vf, s.vt) for s in out] == [
        (us("2025-12-02"), us("2025-12-10")),
        (us("2025-12-10"), us("2026-01-05")),
        (us("2026-01-05"), rec.INFINITY),
    ]


def test_the_fresh_fold_answer_for_one_entity() -> None:
    granted = event(f.licence(), recorded="2025-12-01")
    suspension = event(f.licence_event("LicenceSuspended"), recorded="2026-01-20")
    events = [granted, suspension]
    record, status = rec.record_at(events, at("2026-01-10"), None) or (None, None)
    assert isinstance(record, rec.LicenceRecord)
    assert (record.suspended_from, status) == (at("2026-01-10"), "suspended")
    record, status = rec.record_at(events, at("2026-01-10"), at("2026-01-19")) or (None, None)
    assert isinstance(record, rec.LicenceRecord)
    assert (record.suspended_from, status) == (None, "active")
    record, status = rec.record_at(
        events, at("2026-01-10") - dt.timedelta(microseconds=1), None
    ) or (None, None)
    assert isinstance(record, rec.LicenceRecord)
    assert (record.suspended_from, status) == (None, "active")
    assert rec.record_at(events, at("2025-12-01"), None) is None


def test_the_defaults_a_record_leaves_out_are_set_when_the_state_says_otherwise() -> None:
    military = rec.static_record(
        rec.fold_visible([event(f.party("x")), event(f.classified("x", "military"))])
    )
    assert isinstance(military, rec.PartyRecord)
    assert (military.military, military.end_user_class) == (True, "military")
    clause = {
        "clause_id": "cl1",
        "effect": "prohibited",
        "destinations": ["US"],
        "effective_at": "2024-12-03",
        "description": "no exports to US military users",
    }
    measure = rec.static_record(rec.fold_visible([event(f.measure(clauses=[clause]))]))
    assert isinstance(measure, rec.MeasureRecord)
    assert measure.clauses[0].description == "no exports to US military users"
    claimed = rec.static_record(rec.fold_visible([event(f.pledge("c1", asserted_by=["US"]))]))
    assert isinstance(claimed, rec.CommitmentRecord)
    assert claimed.unilateral is True
    agreement = rec.static_record(rec.fold_visible([event(f.agreement(extendable=True))]))
    assert isinstance(agreement, rec.AgreementRecord)
    assert agreement.extendable is True


def test_a_clause_revoked_while_suspended_shows_no_suspension() -> None:
    events = [
        event(f.measure()),
        event(f.suspended(effective_at="2025-11-10", until=None)),
        event(
            {
                "type": "MeasureRevoked",
                "entity_id": "cn-ann-46",
                "sources": [f.SRC],
                "reason": "lifted",
                "effective_at": "2026-03-01",
            }
        ),
    ]
    state = rec.fold_visible(events).state
    assert state is not None
    assert rec.dynamic(state, at("2026-03-01")) == [["revoked", None, None]] * 2
    assert rec.dynamic(state, at("2026-03-01") - dt.timedelta(microseconds=1)) == [
        ["in-force", None, None],
        ["suspended", str(events[1].event_id), None],
    ]
