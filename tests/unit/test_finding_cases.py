"""The findings an auditor sees, case by case: what each detects, where its boundaries
fall (an instant equal to a bound, equal recorded times, an exclusive end) and its exact
wording.  Pure: records and events are built in memory (no services).

The findings of a recorded history, on both stores, are in tests/integration; these pin
what mutation testing found no unit test looked at (see docs/mutation.md).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.app import LogEntry
from ledger.domain.claim import ClaimState, new_claim
from ledger.projections import records as rec
from ledger.projections.findings import (
    Finding,
    claim_findings,
    commitment_findings,
    late_usage,
    listed_end_users,
    misaligned_commitment_ends,
    misaligned_suspension_ends,
    rests_on_reports,
)
from ledger.projections.query import Resolved, Segment
from ledger.times import to_us
from tests import factory as f
from tests.unit.test_rules import Ledgerless


def at(text: str) -> dt.datetime:
    """An instant: a date is its midnight UTC."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def uid(n: int) -> UUID:
    return UUID(int=n)


GRANT, USAGE, CAUSE, LISTING, CLASSIFIED = uid(1), uid(2), uid(3), uid(4), uid(5)
US = 1  # one microsecond, in the segments' unit


def test_a_finding_as_json() -> None:
    finding = Finding("late-usage", "licence:L", at("2026-03-05"), "s", (USAGE, "x"), {"a": 1})
    assert finding.to_dict() == {
        "kind": "late-usage",
        "subject": "licence:L",
        "at": at("2026-03-05"),
        "summary": "s",
        "events": [str(USAGE), "x"],
        "details": {"a": 1},
    }
    assert Finding("k", "s", None, "", ()).to_dict()["details"] == {}


# --- late usage ---------------------------------------------------------------------------


def licence_record(lid: str = "L", **kw: Any) -> rec.LicenceRecord:
    base: dict[str, Any] = {
        "licence_id": lid,
        "licence_type": "general",
        "issuer": "CN",
        "exporter": "jl",
        "end_users": ("bolt",),
        "destinations": ("DE",),
        "items": (rec.ItemUse("1C902.a", Decimal(1000), Decimal(0), "kg"),),
        "valid_from": at("2025-12-01"),
        "valid_until": at("2026-12-02"),
        "granted_event": GRANT,
    }
    return rec.LicenceRecord(**{**base, **kw})


def used(status: str, **kw: Any) -> rec.LateUsage:
    base: dict[str, Any] = {
        "usage_event": USAGE,
        "shipment_id": "S-1",
        "shipped_at": at("2026-03-05T10:00"),
        "recorded_at": at("2026-03-06"),
        "item": "1C902.a",
        "quantity": Decimal("100.5"),
        "licence_status": status,
    }
    return rec.LateUsage(**{**base, **kw})


def late(*usages: rec.LateUsage, lid: str = "L") -> Resolved:
    return Resolved(lid, licence_record(lid, late_usage=usages), "withdrawn")


def test_a_shipment_after_a_withdrawal_recorded_later_names_both_and_the_lag() -> None:
    u = used(
        "withdrawn",
        since=at("2026-03-01"),
        cause_event=CAUSE,
        cause_recorded_at=at("2026-03-08T03:00"),
    )
    [finding] = late_usage([late(u)])
    assert finding == Finding(
        kind="late-usage",
        subject="licence:L",
        at=at("2026-03-05T10:00"),
        summary=(
            "shipment S-1 (100.5 of 1C902.a) on 2026-03-05 under licence L, withdrawn since "
            "2026-03-01; the withdrawn status was recorded 2 days 3 h after the shipment"
        ),
        events=(USAGE, CAUSE),
        details={
            "licence_status": "withdrawn",
            "shipment_id": "S-1",
            "shipped_at": at("2026-03-05T10:00"),
            "usage_recorded_at": at("2026-03-06"),
            "cause_recorded_at": at("2026-03-08T03:00"),
            "since": at("2026-03-01"),
        },
    )


@pytest.mark.parametrize(
    "cause_recorded_at",
    [at("2026-03-06"), at("2026-03-05T23:59")],  # recorded with the shipment, or before
)
def test_a_cause_recorded_no_later_than_the_shipment_is_no_lag(
    cause_recorded_at: dt.datetime,
) -> None:
    u = used(
        "suspended", since=at("2026-03-01"), cause_event=CAUSE, cause_recorded_at=cause_recorded_at
    )
    [finding] = late_usage([late(u)])
    assert finding.summary.endswith("under licence L, suspended since 2026-03-01")


def test_an_expired_licence_names_its_last_valid_day() -> None:
    [finding] = late_usage([late(used("expired", since=at("2026-12-02")))])
    assert finding.summary.endswith("under licence L, expired at the end of 2026-12-01")
    assert finding.events == (USAGE,)


def test_an_exhausted_licence_has_no_since_and_no_cause() -> None:
    [finding] = late_usage([late(used("exhausted"))])
    assert finding.summary == (
        "shipment S-1 (100.5 of 1C902.a) on 2026-03-05 under licence L, exhausted"
    )
    assert finding.events == (USAGE,)
    assert finding.details["since"] is None and finding.details["cause_recorded_at"] is None


def test_every_late_shipment_of_every_licence_is_a_finding_in_order() -> None:
    found = late_usage(
        [
            late(
                used("exhausted", shipment_id="S-2"), used("exhausted", shipment_id="S-3"), lid="B"
            ),
            Resolved("C", licence_record("C"), "active"),
            late(used("exhausted"), lid="A"),
        ]
    )
    assert [(x.subject, x.details["shipment_id"]) for x in found] == [
        ("licence:B", "S-2"),
        ("licence:B", "S-3"),
        ("licence:A", "S-1"),
    ]


# --- licensed end users on a list ---------------------------------------------------------

END = rec.INFINITY
T = at("2026-06-01")


def party_record(pid: str = "bolt", **kw: Any) -> rec.PartyRecord:
    base: dict[str, Any] = {
        "party_id": pid,
        "name": pid,
        "country": "DE",
        "roles": ("end-user",),
        "registered_at": at("2025-01-01"),
        "registered_event": uid(9),
    }
    return rec.PartyRecord(**{**base, **kw})


def on_list(
    name: str = "MEU", kind: str = "military-end-user", since: str = "2026-01-10"
) -> rec.ListingRecord:
    return rec.ListingRecord(
        list_name=name, list_kind=kind, authority="MOFCOM", listed_at=at(since), event_id=LISTING
    )


def seg(record: Any, start: int, stop: int = END, entity_id: str = "x") -> Segment:
    return Segment(entity_id, start, stop, record, ())


def listed_from(
    when: dt.datetime, pid: str = "bolt", listing: rec.ListingRecord | None = None
) -> list[Segment]:
    """A party unlisted until ``when``, then on a military end-user list."""
    listing = listing or on_list(since=when.date().isoformat())
    return [
        seg(party_record(pid), to_us(at("2025-01-01")), to_us(when)),
        seg(party_record(pid, listings=(listing,)), to_us(when)),
    ]


def granted(**kw: Any) -> list[Segment]:
    """A licence's history: granted on 2025-12-01, unchanged since."""
    return [seg(licence_record(**kw), to_us(at("2025-12-01")))]


def test_an_end_user_listed_while_the_licence_names_it_is_a_finding() -> None:
    [finding] = listed_end_users({"L": granted()}, {"bolt": listed_from(at("2026-01-10"))}, T)
    assert finding == Finding(
        kind="licensed-end-user-listed",
        subject="licence:L",
        at=at("2026-01-10"),
        summary=(
            "licence L names end user bolt, on MEU (military-end-user) since 2026-01-10, "
            "from 2026-01-10, while the licence named it and was valid (from 2025-12-01)"
        ),
        events=(GRANT, LISTING),
        details={"end_user": "bolt", "from": at("2026-01-10")},
    )


def test_listed_before_the_licence_counts_from_the_licence_terms_start() -> None:
    """The grant was recorded effective 2025-12-05 with terms from 2025-12-01: the end
    user, listed since 2025, is a finding from the terms' start."""
    history = [seg(licence_record(), to_us(at("2025-12-05")))]
    [finding] = listed_end_users({"L": history}, {"bolt": listed_from(at("2025-06-01"))}, T)
    assert finding.at == at("2025-12-01")


@pytest.mark.parametrize(
    ("listed", "found"),
    [
        (at("2026-12-02"), False),  # listed at the licence's exclusive end
        (at("2026-12-02") - dt.timedelta(microseconds=1), True),  # its last instant
    ],
)
def test_a_listing_at_the_end_of_validity(listed: dt.datetime, found: bool) -> None:
    result = listed_end_users({"L": granted()}, {"bolt": listed_from(listed)}, at("2027-01-01"))
    assert [x.at for x in result] == ([listed] if found else [])


@pytest.mark.parametrize(
    ("listed", "found"),
    [(T, True), (T + dt.timedelta(microseconds=1), False)],  # at T counts, after T not yet
)
def test_a_listing_at_the_as_of_time(listed: dt.datetime, found: bool) -> None:
    result = listed_end_users({"L": granted()}, {"bolt": listed_from(listed)}, T)
    assert [x.at for x in result] == ([listed] if found else [])


@pytest.mark.parametrize("ended", ["withdrawn_at", "surrendered_at"])
def test_a_listing_after_the_licence_ended_is_no_finding(ended: str) -> None:
    history = granted(**{ended: at("2026-01-10")})
    assert listed_end_users({"L": history}, {"bolt": listed_from(at("2026-01-10"))}, T) == []
    before = listed_end_users(
        {"L": history}, {"bolt": listed_from(at("2026-01-10") - dt.timedelta(microseconds=1))}, T
    )
    assert len(before) == 1


def test_an_end_user_dropped_by_an_amendment_before_its_listing_is_no_finding() -> None:
    amended = to_us(at("2026-01-05"))
    history = [
        seg(licence_record(), to_us(at("2025-12-01")), amended),
        seg(licence_record(end_users=("acme",)), amended),
    ]
    assert listed_end_users({"L": history}, {"bolt": listed_from(at("2026-01-10"))}, T) == []
    # Listed while it was still named: a finding, though the amendment dropped it since.
    [finding] = listed_end_users({"L": history}, {"bolt": listed_from(at("2026-01-04"))}, T)
    assert finding.at == at("2026-01-04")


def test_an_end_user_added_by_an_amendment_counts_from_the_amendment() -> None:
    amended = to_us(at("2026-02-01"))
    history = [
        seg(licence_record(end_users=("acme",)), to_us(at("2025-12-01")), amended),
        seg(licence_record(end_users=("acme", "bolt")), amended),
    ]
    [finding] = listed_end_users({"L": history}, {"bolt": listed_from(at("2026-01-10"))}, T)
    assert finding.at == at("2026-02-01")
    assert "from 2026-02-01, while the licence named it and was valid (from 2025-12-01)" in (
        finding.summary
    )


def test_the_earliest_date_across_the_licence_history_is_kept() -> None:
    """Listed before the grant and named throughout: from the terms' start, not from the
    amendment's."""
    amended = to_us(at("2026-01-05"))
    history = [
        seg(licence_record(), to_us(at("2025-12-01")), amended),
        seg(licence_record(valid_until=at("2027-01-01")), amended),
    ]
    [finding] = listed_end_users({"L": history}, {"bolt": listed_from(at("2025-06-01"))}, T)
    assert finding.at == at("2025-12-01")


def test_a_restricted_list_and_a_military_classification_count_other_lists_do_not() -> None:
    parties = {
        "a": [seg(party_record("a", listings=(on_list("Watch", "watch"),)), 0)],
        "b": [
            seg(
                party_record(
                    "b", listings=(on_list("Watch", "watch"), on_list("EL", "restricted"))
                ),
                0,
            )
        ],
        "c": [
            seg(
                party_record("c", classification="military", classification_event=CLASSIFIED),
                0,
            )
        ],
        "d": [seg(party_record("d", classification="civil", classification_event=CLASSIFIED), 0)],
    }
    found = listed_end_users({"L": granted(end_users=("d", "c", "b", "a"))}, parties, T)
    assert [(x.details["end_user"], x.events) for x in found] == [
        ("b", (GRANT, LISTING)),
        ("c", (GRANT, CLASSIFIED)),
    ]
    assert ", on EL (restricted) since 2026-01-10, " in found[0].summary
    assert "licence L names end user c, classified military, from 2025-12-01" in found[1].summary


def test_a_military_classification_with_no_event_cites_the_licence_alone() -> None:
    parties = {"c": [seg(party_record("c", classification="military"), 0)]}
    [finding] = listed_end_users({"L": granted(end_users=("c",))}, parties, T)
    assert finding.events == (GRANT,)


def test_licences_are_reported_in_id_order_and_an_unknown_end_user_is_skipped() -> None:
    parties = {"bolt": listed_from(at("2026-01-10"))}
    found = listed_end_users(
        {"Z": granted(licence_id="Z"), "A": granted(licence_id="A", end_users=("ghost", "bolt"))},
        parties,
        T,
    )
    assert [x.subject for x in found] == ["licence:A", "licence:Z"]


# --- commitments --------------------------------------------------------------------------

DUE = at("2025-12-01")  # due by the end of 30 November


def commitment(
    cid: str,
    status: str,
    *,
    obligor: str = "CN",
    beneficiary: str = "US",
    current: UUID | None = None,
    implementations: tuple[tuple[str, str | None, int], ...] = (),
    **kw: Any,
) -> Resolved:
    base: dict[str, Any] = {
        "commitment_id": cid,
        "agreement_id": "busan",
        "obligor": obligor,
        "beneficiary": beneficiary,
        "asserted_by": (obligor,),
        "category": "export-controls",
        "description": cid,
        "pledged_at": at("2025-11-01"),
        "pledge_event": uid(100 + len(cid)),
        "implementations": tuple(
            rec.ImplementationRecord(
                event_id=uid(n),
                at=at(start),
                extent="full",
                instrument="I",
                until=None if until is None else at(until),
            )
            for start, until, n in implementations
        ),
    }
    return Resolved(cid, rec.CommitmentRecord(**{**base, **kw}), (status, current))


AGREEMENT = Resolved(
    "busan",
    rec.AgreementRecord(
        agreement_id="busan",
        title="Busan",
        parties=("US", "CN"),
        reached_at=at("2025-10-30"),
        reached_event=uid(50),
    ),
    "in-force",
)


def test_an_overdue_commitment_says_by_how_many_days() -> None:
    c = commitment("C1", "overdue", due_by=DUE)
    [finding] = commitment_findings([c], [AGREEMENT], at("2025-12-03T12:00"))
    assert finding == Finding(
        kind="commitment-overdue",
        subject="commitment:C1",
        at=DUE,
        summary="CN's commitment C1 was due by 2025-11-30 and is overdue by 3 days",
        events=(c.record.pledge_event,),
        details={"due_by": DUE, "status": "overdue", "days_overdue": 3, "hours_overdue": 60.0},
    )


def test_overdue_on_the_deadlines_last_day_says_the_hours() -> None:
    due = at("2025-12-01T12:00")
    [finding] = commitment_findings(
        [commitment("C1", "overdue", due_by=due)], [], at("2025-12-01T15:00")
    )
    assert finding.summary.endswith("was due by 2025-12-01 and is overdue by 3 h, on its last day")
    assert finding.details["days_overdue"] == 0


def test_a_pending_commitment_not_yet_overdue_is_no_finding() -> None:
    assert (
        commitment_findings([commitment("C1", "pledged", due_by=DUE)], [], at("2025-11-30")) == []
    )


def test_an_implementation_after_the_deadline_is_late() -> None:
    c = commitment(
        "C1", "implemented", due_by=DUE, implementations=(("2025-12-02T06:00", None, 7),)
    )
    [finding] = commitment_findings([c], [], at("2025-12-10"))
    assert finding == Finding(
        kind="late-implementation",
        subject="commitment:C1",
        at=at("2025-12-02T06:00"),
        summary="CN implemented C1 on 2025-12-02, missing the deadline (2025-11-30) by 2 days",
        events=(c.record.pledge_event, uid(7)),
        details={
            "due_by": DUE,
            "implemented_at": at("2025-12-02T06:00"),
            "days_late": 2,
            "hours_late": 30.0,
        },
    )


@pytest.mark.parametrize("done", ["2025-12-01T00:00", "2025-11-20"])  # at the deadline, before
def test_an_implementation_by_the_deadline_is_not_late(done: str) -> None:
    c = commitment("C1", "implemented", due_by=DUE, implementations=((done, None, 7),))
    assert commitment_findings([c], [], at("2025-12-10")) == []


def test_an_implementation_with_no_deadline_is_never_late() -> None:
    c = commitment("C1", "implemented", implementations=(("2025-12-02", None, 7),))
    assert commitment_findings([c], [], at("2025-12-10")) == []


def test_a_pledge_asserted_only_by_the_other_side() -> None:
    c = commitment("C1", "pledged", asserted_by=("US", "EU"), unilateral=True)
    [finding] = commitment_findings([c], [], at("2025-12-10"))
    assert finding == Finding(
        kind="unilateral-claim",
        subject="commitment:C1",
        at=at("2025-11-01"),
        summary="C1 (CN to US) is asserted only by US, EU and was never acknowledged by CN",
        events=(c.record.pledge_event,),
        details={"asserted_by": ["US", "EU"]},
    )


def reciprocal(
    first: tuple[str, str | None, int] | None,
    other: tuple[str, str | None, int] | None,
    *,
    current: tuple[UUID | None, UUID | None] = (None, None),
    status: tuple[str, str] | None = None,
) -> list[Resolved]:
    """CN's C1 and the US's C2, each reciprocating the other, implemented as given."""
    statuses = status or tuple("implemented" if x else "pledged" for x in (first, other))
    return [
        commitment(
            "C1",
            statuses[0],
            current=current[0],
            reciprocates=("C2",),
            implementations=(first,) if first else (),
        ),
        commitment(
            "C2",
            statuses[1],
            obligor="US",
            beneficiary="CN",
            current=current[1],
            reciprocates=("C1",),
            implementations=(other,) if other else (),
        ),
    ]


def test_a_reciprocal_pair_implemented_on_one_side_only() -> None:
    pair = reciprocal(("2025-11-10", None, 7), None, current=(uid(7), None))
    [finding] = commitment_findings(pair, [AGREEMENT], at("2025-12-02T12:00"))
    assert finding == Finding(
        kind="one-sided-implementation",
        subject="commitment:C2",
        at=at("2025-11-10"),
        summary=(
            "CN's C1 is implemented; US's reciprocal C2 is pledged: one-sided since "
            "2025-11-10, for 22 days"
        ),
        events=(uid(7), pair[1].record.pledge_event),
        details={
            "one_sided_days": 22,
            "one_sided_hours": 540.0,
            "one_sided_since": at("2025-11-10"),
            "days_from_agreement": 33,
            "other_status": "pledged",
        },
    )


def test_a_one_sided_pair_cites_the_implementation_in_force_else_the_first() -> None:
    c1 = commitment(
        "C1",
        "implemented",
        current=uid(8),
        reciprocates=("C2",),
        implementations=(("2025-11-10", "2025-11-20", 7), ("2025-11-20", None, 8)),
    )
    c2 = commitment("C2", "pledged", obligor="US", beneficiary="CN", reciprocates=("C1",))
    [finding] = commitment_findings([c1, c2], [], at("2025-12-02"))
    assert finding.events[0] == uid(8)
    no_current = Resolved("C1", c1.record, ("implemented", None))
    [finding] = commitment_findings([no_current, c2], [], at("2025-12-02"))
    assert finding.events[0] == uid(7)


@pytest.mark.parametrize(
    ("first", "other"),
    [
        (("2025-11-10", None, 7), ("2025-11-12", None, 8)),  # both implemented
        (None, None),  # neither
    ],
)
def test_a_pair_not_one_sided_is_no_finding(first: Any, other: Any) -> None:
    pair = reciprocal(first, other, current=(uid(7), uid(8)))
    assert commitment_findings(pair, [AGREEMENT], at("2025-12-02")) == []


# --- ends that do not line up -------------------------------------------------------------


def both_in_force(end_1: str | None, end_2: str | None) -> list[Resolved]:
    return reciprocal(("2025-11-10", end_1, 7), ("2025-11-12", end_2, 8), current=(uid(7), uid(8)))


def test_reciprocal_implementations_ending_on_different_days() -> None:
    pair = both_in_force("2026-11-13", "2026-11-10")
    [finding] = misaligned_commitment_ends(pair, [AGREEMENT], at("2025-12-02"))
    assert finding == Finding(
        kind="misaligned-ends",
        subject="commitment:C2",
        at=at("2026-11-10"),
        summary=(
            "US's C2 is in force through 2026-11-09, its reciprocal CN's C1 through "
            "2026-11-12: 3 days apart"
        ),
        events=(uid(7), uid(8)),
        details={
            "ends": {"C1": at("2026-11-13"), "C2": at("2026-11-10")},
            "commitments": ["C1", "C2"],
            "gap_days": 3,
            "gap_hours": 72.0,
        },
    )


def test_one_implementation_with_an_end_and_one_without() -> None:
    for ends in ((None, "2026-11-10"), ("2026-11-10", None)):
        [finding] = misaligned_commitment_ends(both_in_force(*ends), [], at("2025-12-02"))
        ended = "C1" if ends[0] else "C2"
        assert finding.subject == f"commitment:{ended}" and finding.at == at("2026-11-10")
        assert finding.summary.endswith("with no end: one has no end")
        assert "is in force through 2026-11-09, its reciprocal" in finding.summary
        assert (finding.details["gap_days"], finding.details["gap_hours"]) == (None, None)


@pytest.mark.parametrize(
    "ends",
    [
        ("2026-11-10", "2026-11-10"),  # the same instant
        ("2026-11-10T05:00", "2026-11-10T09:00"),  # the same last day
        (None, None),
    ],
)
def test_ends_on_the_same_day_are_aligned(ends: tuple[str | None, str | None]) -> None:
    assert misaligned_commitment_ends(both_in_force(*ends), [], at("2025-12-02")) == []


def test_ends_one_day_apart_by_a_few_hours_are_misaligned() -> None:
    [finding] = misaligned_commitment_ends(
        both_in_force("2026-11-10T00:00", "2026-11-10T09:00"), [], at("2025-12-02")
    )
    assert finding.summary.endswith(": 1 day apart")
    assert (finding.details["gap_days"], finding.details["gap_hours"]) == (1, 9.0)


@pytest.mark.parametrize(
    ("as_of", "found"),
    [
        ("2025-11-12", True),  # the second side takes effect at T
        ("2025-11-11T23:59", False),  # not yet
        ("2026-11-10", False),  # one side ended exactly at T
        ("2026-11-09T23:59", True),
    ],
)
def test_ends_are_compared_only_while_both_sides_are_in_force(as_of: str, found: bool) -> None:
    pair = both_in_force("2026-11-13", "2026-11-10")
    assert len(misaligned_commitment_ends(pair, [], at(as_of))) == found


def test_a_side_with_no_implementation_event_in_force_is_not_cited() -> None:
    pair = reciprocal(
        ("2025-11-10", "2026-11-13", 7), ("2025-11-12", "2026-11-10", 8), current=(uid(7), None)
    )
    [finding] = misaligned_commitment_ends(pair, [], at("2025-12-02"))
    assert finding.events == (uid(7),)


# --- suspensions that lapse piecemeal -----------------------------------------------------


def suspending(
    mid: str,
    *ends: tuple[str, str | None, str | None],
    issuer: str = "CN",
    instrument: str = "Ann.70",
    start: str = "2025-11-10",
    event: int = 60,
) -> Resolved:
    """A measure whose clauses c0, c1, ... are suspended by ``instrument`` from ``start``
    to (until, ended_at) each."""
    clauses = tuple(
        rec.ClauseRecord(
            clause_id=f"c{i}",
            effect="prohibited",
            effective_at=at("2025-01-01"),
            suspensions=(
                rec.SuspensionRecord(
                    event_id=uid(event + i),
                    start=at(start),
                    until=None if until is None else at(until),
                    ended_at=None if ended is None else at(ended),
                    instrument=instrument,
                ),
            ),
        )
        for i, (until, ended, *_) in enumerate(ends)
    )
    record = rec.MeasureRecord(
        measure_id=mid,
        issuer=issuer,
        title=mid,
        instrument="i",
        published_at=at("2025-01-01"),
        published_event=uid(1),
        clauses=clauses,
    )
    return Resolved(mid, record, None)


def test_one_instrument_suspending_to_different_ends_lists_each_group() -> None:
    measures = [
        suspending("m2", ("2026-11-11", None, None), event=70),
        suspending("m1", ("2026-11-14", None, None), ("2026-11-11", None, None)),
    ]
    [finding] = misaligned_suspension_ends(measures, at("2025-12-01"))
    assert finding == Finding(
        kind="misaligned-ends",
        subject="instrument:Ann.70",
        at=at("2025-11-10"),
        summary=(
            "CN's Ann.70 suspends clauses to different ends: m1/c0 through 2026-11-13; "
            "m1/c1, m2/c0 through 2026-11-10 (3 days apart)"
        ),
        events=(uid(70), uid(60), uid(61)),
        details={
            "instrument": "Ann.70",
            "ends": {
                "m2/c0": at("2026-11-11"),
                "m1/c0": at("2026-11-14"),
                "m1/c1": at("2026-11-11"),
            },
            "gap_days": 3,
        },
    )


def test_a_suspension_ended_early_ends_there() -> None:
    measures = [suspending("m1", ("2026-11-14", "2026-11-11", None), ("2026-11-11", None, None))]
    assert misaligned_suspension_ends(measures, at("2025-12-01")) == []


def test_one_suspension_with_no_end_is_named_and_no_gap_given() -> None:
    measures = [suspending("m1", ("2026-11-11", None, None), (None, None, None))]
    [finding] = misaligned_suspension_ends(measures, at("2025-12-01"))
    assert finding.summary == (
        "CN's Ann.70 suspends clauses to different ends: m1/c0 through 2026-11-10; "
        "m1/c1 through no end"
    )
    assert finding.details["gap_days"] is None


def test_one_event_suspending_two_clauses_is_cited_once_and_the_earliest_start_is_the_time() -> (
    None
):
    a = suspending("m1", ("2026-11-11", None, None), start="2025-11-12", event=60)
    b = suspending("m2", ("2026-11-14", None, None), start="2025-11-10", event=60)
    [finding] = misaligned_suspension_ends([a, b], at("2025-12-01"))
    assert finding.events == (uid(60),) and finding.at == at("2025-11-10")


@pytest.mark.parametrize(
    ("as_of", "found"),
    [
        ("2025-11-10", True),  # suspended at T exactly
        ("2025-11-09T23:59", False),  # not yet
        ("2026-11-11", False),  # the first suspension ended at T: the other runs alone
        ("2026-11-10T23:59", True),
    ],
)
def test_suspensions_are_compared_while_both_are_in_effect(as_of: str, found: bool) -> None:
    measures = [suspending("m1", ("2026-11-11", None, None), ("2026-11-14", None, None))]
    assert len(misaligned_suspension_ends(measures, at(as_of))) == found


def test_different_instruments_or_issuers_or_none_are_not_compared() -> None:
    measures = [
        suspending("m1", ("2026-11-11", None, None)),
        suspending("m2", ("2026-11-14", None, None), instrument="Ann.71"),
        suspending("m3", ("2026-11-17", None, None), issuer="US"),
        suspending("m4", ("2026-11-17", None, None), ("2026-11-20", None, None), instrument=""),
    ]
    assert misaligned_suspension_ends(measures, at("2025-12-01")) == []


def test_findings_of_several_instruments_in_issuer_then_instrument_order() -> None:
    def two(mid: str, issuer: str, instrument: str) -> Resolved:
        return suspending(
            mid,
            ("2026-11-11", None, None),
            ("2026-11-12", None, None),
            issuer=issuer,
            instrument=instrument,
        )

    found = misaligned_suspension_ends(
        [two("a", "US", "A"), two("b", "CN", "B"), two("c", "CN", "A")], at("2025-12-01")
    )
    assert [x.subject for x in found] == ["instrument:A", "instrument:B", "instrument:A"]
    assert [x.summary.split("'s")[0] for x in found] == ["CN", "CN", "US"]
    assert found[0].summary.endswith("(1 day apart)")


# --- facts resting on reports -------------------------------------------------------------


def source(publisher: str, status: str) -> dict[str, str]:
    return {**f.SRC, "publisher": publisher, "status": status}


def entry(obj: dict[str, Any]) -> LogEntry:
    return LogEntry(1, Ledgerless().event(obj), False)


def test_a_fact_on_reported_sources_only() -> None:
    e = entry(
        f.party(
            "x",
            sources=[
                source("Reuters", "reported"),
                source("Example", "illustrative"),
                source("Reuters", "reported"),
                source("Caixin", "claim"),
            ],
        )
    )
    [finding] = rests_on_reports([e])
    assert finding.kind == "rests-on-reports" and finding.subject == "party:x"
    assert finding.at == at("2025-01-01") and finding.events == (e.event.event_id,)
    assert finding.summary == (
        "PartyRegistered x rests on reported sources only, no official text: Reuters; Caixin"
    )
    assert finding.details["event_type"] == "PartyRegistered"
    assert finding.details["standing"] == "reported"
    assert finding.details["sources"][1] == {
        "publisher": "Example",
        "reference": "https://example.org/notice",
        "published_on": dt.date(2025, 11, 7),
        "status": "illustrative",
    }
    assert len(finding.details["sources"]) == 4


def test_a_claim_is_not_a_fact_resting_on_reports() -> None:
    claim = entry(claim_reported())
    fact = entry(f.party("y", sources=[source("Caixin", "claim")]))
    assert [x.subject for x in rests_on_reports([claim, fact])] == ["party:y"]
    assert "rests on claim sources only" in rests_on_reports([fact])[0].summary


# --- claims -------------------------------------------------------------------------------


def claim_reported(**kw: Any) -> dict[str, Any]:
    base = {
        "type": "ClaimReported",
        "entity_id": "CL-1",
        "claimant": "MOFCOM spokesperson",
        "says": "Gallium controls will be lifted.",
        "about": ["measure:cn-ann-46", "party:x"],
        "takes_effect_at": "2025-11-09T00:00:00Z",
        "effective_at": "2025-11-01",
        "sources": [
            source("Reuters", "claim"),
            source("Caixin", "reported"),
            source("Reuters", "claim"),
        ],
    }
    return {k: v for k, v in {**base, **kw}.items() if v is not None}


def claim(resolution: dict[str, Any] | None = None, **kw: Any) -> ClaimState:
    ledger = Ledgerless()
    state = new_claim(ledger.event(claim_reported(**kw)))  # type: ignore[arg-type]
    if resolution is not None:
        state.apply(
            ledger.event(
                {
                    "type": "ClaimResolved",
                    "entity_id": "CL-1",
                    "evidence": ["measure:cn-ann-72", "measure:cn-ann-73"],
                    "reason": "the suspension was published",
                    "effective_at": "2025-11-12",
                    "sources": [f.SRC],
                    **resolution,
                }
            )
        )
    return state


ROWS = {
    "measure:cn-ann-46": [
        {"clause_id": "cl1", "status": "in-force", "never_in_force": False},
        {"clause_id": "cl2", "status": "suspended", "never_in_force": True},
    ]
}


def test_an_unverified_claim_set_against_what_the_ledger_holds() -> None:
    c = claim()
    [finding] = claim_findings([c], ROWS, at("2025-11-20"))
    assert finding == Finding(
        kind="unverified-claim",
        subject="claim:CL-1",
        at=at("2025-11-01"),
        summary=(
            "unverified claim (Reuters, Caixin): MOFCOM spokesperson: Gallium controls will be "
            "lifted, said to take effect 2025-11-09; the ledger holds measure:cn-ann-46 on "
            "2025-11-09: cl1 in-force, cl2 suspended (never in force)"
        ),
        events=(c.reported.event_id,),
        details={
            "claimant": "MOFCOM spokesperson",
            "says": "Gallium controls will be lifted.",
            "about": ["measure:cn-ann-46", "party:x"],
            "takes_effect_at": at("2025-11-09"),
            "reported_by": ["Reuters", "Caixin"],
            "held": {"measure:cn-ann-46": ROWS["measure:cn-ann-46"]},
        },
    )


@pytest.mark.parametrize(
    ("as_of", "on"),
    [
        ("2025-11-09", "2025-11-09"),  # said to take effect at T exactly
        ("2025-11-08T23:59", "2025-11-08"),  # not yet: what holds at T
    ],
)
def test_a_claim_is_set_against_the_day_it_takes_effect_once_reached(as_of: str, on: str) -> None:
    [finding] = claim_findings([claim()], ROWS, at(as_of))
    assert f"the ledger holds measure:cn-ann-46 on {on}: " in finding.summary


def test_a_claim_with_no_date_and_nothing_held() -> None:
    c = claim(takes_effect_at=None, says="Talks went well")
    [finding] = claim_findings([c], {}, at("2025-11-20"))
    assert (
        finding.summary
        == "unverified claim (Reuters, Caixin): MOFCOM spokesperson: Talks went well"
    )
    assert finding.details["held"] == {}
    [dated] = claim_findings([claim(takes_effect_at=None)], ROWS, at("2025-11-20"))
    assert "; the ledger holds measure:cn-ann-46 on 2025-11-20: cl1" in dated.summary


def test_a_contradicted_claim_cites_the_evidence() -> None:
    c = claim({"outcome": "contradicted"})
    [finding] = claim_findings([c], ROWS, at("2025-11-12"))
    assert c.resolution is not None
    assert finding == Finding(
        kind="claim-contradicted",
        subject="claim:CL-1",
        at=at("2025-11-12"),
        summary=(
            "claim (Reuters, Caixin) that Gallium controls will be lifted was contradicted on "
            "2025-11-12 by measure:cn-ann-72, measure:cn-ann-73: the suspension was published"
        ),
        events=(c.reported.event_id, c.resolution.event_id),
        details={
            "claimant": "MOFCOM spokesperson",
            "says": "Gallium controls will be lifted.",
            "evidence": ["measure:cn-ann-72", "measure:cn-ann-73"],
            "reason": "the suspension was published",
        },
    )


def test_a_claim_resolved_after_t_is_still_unverified_and_a_confirmed_one_is_no_finding() -> None:
    [before] = claim_findings([claim({"outcome": "contradicted"})], {}, at("2025-11-11T23:59"))
    assert before.kind == "unverified-claim"
    assert claim_findings([claim({"outcome": "confirmed"})], {}, at("2025-11-20")) == []


# --- one case past another (a skipped pair, group or reference does not end the loop) -----


def test_a_pair_not_one_sided_does_not_hide_the_next_pair() -> None:
    both = reciprocal(("2025-11-10", None, 7), ("2025-11-12", None, 8), current=(uid(7), uid(8)))
    one = [
        commitment(
            "C3",
            "implemented",
            current=uid(9),
            reciprocates=("C4",),
            implementations=(("2025-11-10", None, 9),),
        ),
        commitment("C4", "pledged", obligor="US", beneficiary="CN", reciprocates=("C3",)),
    ]
    found = commitment_findings([*both, *one], [AGREEMENT], at("2025-12-02"))
    assert [(x.kind, x.subject) for x in found] == [("one-sided-implementation", "commitment:C4")]


@pytest.mark.parametrize(
    "aligned", [("2026-11-10", "2026-11-10"), ("2026-11-10T05:00", "2026-11-10T09:00")]
)
def test_an_aligned_pair_does_not_hide_the_next_pair(aligned: tuple[str, str]) -> None:
    first = both_in_force(*aligned)
    second = [
        commitment(
            "C3",
            "implemented",
            current=uid(9),
            reciprocates=("C4",),
            implementations=(("2025-11-10", "2026-11-13", 9),),
        ),
        commitment(
            "C4",
            "implemented",
            obligor="US",
            beneficiary="CN",
            current=uid(10),
            reciprocates=("C3",),
            implementations=(("2025-11-12", "2026-11-10", 10),),
        ),
    ]
    found = misaligned_commitment_ends([*first, *second], [], at("2025-12-02"))
    assert [x.subject for x in found] == ["commitment:C4"]


def test_an_aligned_instrument_does_not_hide_the_next() -> None:
    aligned = suspending(
        "a", ("2026-11-11", None, None), ("2026-11-11", None, None), instrument="A"
    )
    apart = suspending("b", ("2026-11-11", None, None), ("2026-11-12", None, None), instrument="B")
    found = misaligned_suspension_ends([aligned, apart], at("2025-12-01"))
    assert [x.subject for x in found] == ["instrument:B"]


def test_every_measure_a_claim_is_about_is_held_even_after_one_the_ledger_lacks() -> None:
    rows = {
        **ROWS,
        "measure:cn-ann-47": [{"clause_id": "k", "status": "revoked", "never_in_force": False}],
    }
    c = claim(about=["party:x", "measure:cn-ann-46", "measure:cn-ann-47"])
    [finding] = claim_findings([c], rows, at("2025-11-20"))
    assert finding.summary.endswith(
        "; the ledger holds measure:cn-ann-46 on 2025-11-09: cl1 in-force, cl2 suspended "
        "(never in force); measure:cn-ann-47 on 2025-11-09: k revoked"
    )


def test_what_a_claim_says_loses_its_full_stop_only() -> None:
    c = claim(says="Controls on item X.")
    [finding] = claim_findings([c], {}, at("2025-11-01"))
    assert "MOFCOM spokesperson: Controls on item X, said to take effect" in finding.summary
    c = claim({"outcome": "contradicted"}, says="Controls on item X.")
    [finding] = claim_findings([c], {}, at("2025-11-20"))
    assert "that Controls on item X was contradicted" in finding.summary
