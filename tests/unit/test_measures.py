"""Measures and their clauses (``ledger.domain.measure``): what their events fold into,
a clause's status at the edges of its windows, and each rule's exact message.
Pure: no services."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ledger.domain.measure import ClauseState, MeasureState
from ledger.errors import RuleViolation
from ledger.projections import records as rec
from tests import factory as f
from tests.unit.test_rules import Ledgerless


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def ended(clause: str = "cl2", **kw: Any) -> dict[str, Any]:
    base = {"clause_id": clause, "instrument": "MOFCOM 80/2025", "effective_at": "2025-12-01"}
    return {"type": "SuspensionEnded", "entity_id": "cn-ann-46", "sources": [f.SRC], **base, **kw}


def revoked(*clauses: str, **kw: Any) -> dict[str, Any]:
    base = {"clause_ids": list(clauses), "reason": "lifted", "effective_at": "2026-01-01"}
    return {"type": "MeasureRevoked", "entity_id": "cn-ann-46", "sources": [f.SRC], **base, **kw}


def clauses(ledger: Ledgerless) -> dict[str, ClauseState]:
    state = ledger.facts.state("measure", "cn-ann-46", None)
    assert isinstance(state, MeasureState)
    return state.clauses


def refused(setup: list[dict], bad: dict) -> tuple[str, str | None, str]:
    ledger = Ledgerless()
    ledger.append(*setup)
    with pytest.raises(RuleViolation) as caught:
        ledger.append(bad)
    return caught.value.rule, caught.value.field, caught.value.message


def test_a_measures_record_shows_every_event_it_folded() -> None:
    ledger = Ledgerless()
    events = ledger.append(
        f.measure(),
        f.suspended(clause="cl2", effective_at="2025-11-09", until="2026-11-27"),
        f.suspended(clause="cl1", effective_at="2025-11-10", until=None, instrument="Notice 9"),
        ended("cl1", effective_at="2025-12-01"),
        revoked("cl1", effective_at="2026-01-01"),
        revoked(effective_at="2026-02-01"),  # every clause: cl1 stays revoked from January
    )
    published, suspension2, suspension1, end1, revocation1, revocation_all = events
    record = rec.static_record(rec.fold_visible(events))
    assert isinstance(record, rec.MeasureRecord)
    assert record == rec.MeasureRecord(
        measure_id="cn-ann-46",
        issuer="CN",
        title="Export controls to the US",
        instrument="MOFCOM Announcement 46/2024",
        published_at=utc("2024-12-03"),
        published_event=published.event_id,
        clauses=(
            rec.ClauseRecord(
                clause_id="cl1",
                effect="prohibited",
                destinations=("US",),
                end_user_classes=("military",),
                effective_at=utc("2024-12-03"),
                suspensions=(
                    rec.SuspensionRecord(
                        event_id=suspension1.event_id,
                        start=utc("2025-11-10"),
                        until=None,
                        ended_at=utc("2025-12-01"),
                        ended_event=end1.event_id,
                        instrument="Notice 9",
                    ),
                ),
                revoked_at=utc("2026-01-01"),
                revoked_event=revocation1.event_id,
            ),
            rec.ClauseRecord(
                clause_id="cl2",
                effect="denied-in-principle",
                items=("gallium",),
                destinations=("US",),
                effective_at=utc("2024-12-03"),
                suspensions=(
                    rec.SuspensionRecord(
                        event_id=suspension2.event_id,
                        start=utc("2025-11-09"),
                        until=utc("2026-11-28"),  # the end of the day written
                        instrument="MOFCOM Announcement 72/2025",
                    ),
                ),
                revoked_at=utc("2026-02-01"),
                revoked_event=revocation_all.event_id,
            ),
        ),
    )
    state = rec.fold_visible(events).state
    assert isinstance(state, MeasureState)
    assert state.event_ids == [e.event_id for e in events]


def test_a_clauses_status_at_the_edges() -> None:
    """Not yet effective before its effective time, suspended from a window's start up to
    (not including) its end, revoked from the instant of the revocation."""
    ledger = Ledgerless()
    ledger.append(
        f.measure(),
        f.suspended(clause="cl2", effective_at="2025-11-09", until="2025-11-30"),
        revoked("cl2", effective_at="2026-01-01T12:00:00Z"),
    )
    cl2 = clauses(ledger)["cl2"]
    second = dt.timedelta(seconds=1)
    assert cl2.status_at(utc("2024-12-03") - second) == "not-yet-effective"
    assert cl2.status_at(utc("2024-12-03")) == "in-force"
    assert cl2.status_at(utc("2025-11-09") - second) == "in-force"
    assert cl2.status_at(utc("2025-11-09")) == "suspended"
    assert cl2.status_at(utc("2025-12-01") - second) == "suspended"
    assert cl2.status_at(utc("2025-12-01")) == "in-force"
    assert cl2.status_at(utc("2026-01-01T12:00:00") - second) == "in-force"
    assert cl2.status_at(utc("2026-01-01T12:00:00")) == "revoked"


def test_suspension_windows_may_touch_but_not_overlap() -> None:
    ledger = Ledgerless()
    ledger.append(
        f.measure(),
        f.suspended(effective_at="2025-11-09", until="2025-11-30"),  # ends 12-01T00:00
        f.suspended(effective_at="2025-12-01", until="2025-12-31"),  # starts at that end
        f.suspended(effective_at="2025-10-01", until="2025-11-08"),  # ends at the first's start
    )
    assert len(clauses(ledger)["cl2"].suspensions) == 3


@pytest.mark.parametrize(
    ("setup", "bad", "expected"),
    [
        pytest.param(
            [f.measure(), f.suspended(effective_at="2025-11-09", until="2025-11-30")],
            f.suspended(effective_at="2025-10-01", until="2025-11-09"),
            "from 2025-11-09 through 2025-11-30",
            id="ending a day into an existing window",
        ),
        pytest.param(
            [f.measure(), f.suspended(effective_at="2025-11-09", until="2025-11-30")],
            f.suspended(effective_at="2025-11-30", until=None),
            "from 2025-11-09 through 2025-11-30",
            id="open-ended, starting in an existing window",
        ),
        pytest.param(
            [f.measure(), f.suspended(effective_at="2025-11-09", until=None)],
            f.suspended(effective_at="2030-01-01", until="2030-01-02"),
            "from 2025-11-09 open-ended",
            id="after the start of an open-ended window",
        ),
    ],
)
def test_overlapping_suspensions(setup: list[dict], bad: dict, expected: str) -> None:
    ledger = Ledgerless()
    [first] = ledger.append(*setup)[1:]
    with pytest.raises(RuleViolation) as caught:
        ledger.append(bad)
    assert (caught.value.rule, caught.value.field) == ("overlapping-suspension", "effective_at")
    assert caught.value.message == (
        f"clause 'cl2' is already suspended {expected} (event {first.event_id}); "
        "windows of one clause cannot overlap"
    )


def test_ending_a_suspension_ends_the_window_in_force_then() -> None:
    ledger = Ledgerless()
    first, second = ledger.append(
        f.measure(),
        f.suspended(effective_at="2025-11-09", until="2025-11-30"),
        f.suspended(effective_at="2025-12-10", until=None),
    )[1:]
    [end] = ledger.append(ended(effective_at="2025-12-20"))
    windows = clauses(ledger)["cl2"].suspensions
    assert [(w.event_id, w.ended_at, w.ended_event_id) for w in windows] == [
        (first.event_id, None, None),
        (second.event_id, utc("2025-12-20"), end.event_id),
    ]


@pytest.mark.parametrize(
    ("setup", "bad", "expected"),
    [
        pytest.param(
            [f.measure()],
            f.suspended(clause="cl9"),
            (
                "unknown-reference",
                "clause_id",
                "measure 'cn-ann-46' has no clause 'cl9' (clauses: cl1, cl2)",
            ),
            id="suspending an unknown clause",
        ),
        pytest.param(
            [],
            f.suspended(),
            ("unknown-reference", "entity_id", "measure 'cn-ann-46' was never published"),
            id="suspending a clause of an unknown measure",
        ),
        pytest.param(
            [f.measure()],
            f.suspended(effective_at="2025-11-09", until="2025-11-08"),
            (
                "window-ends-before-start",
                "until",
                "ends at the end of 2025-11-08, not after its start 2025-11-09",
            ),
            id="suspension ending at its start",
        ),
        pytest.param(
            [f.measure(), revoked("cl2", effective_at="2025-11-09")],
            f.suspended(effective_at="2025-11-09"),
            ("clause-revoked", "clause_id", "clause 'cl2' was revoked on 2025-11-09"),
            id="suspending a clause at the instant it is revoked",
        ),
        pytest.param(
            [f.measure()],
            ended(clause="cl9"),
            (
                "unknown-reference",
                "clause_id",
                "measure 'cn-ann-46' has no clause 'cl9' (clauses: cl1, cl2)",
            ),
            id="ending a suspension of an unknown clause",
        ),
        pytest.param(
            [f.measure(), f.suspended(effective_at="2025-11-09", until="2025-11-30")],
            ended(effective_at="2025-12-01"),
            (
                "no-suspension-in-force",
                "effective_at",
                "clause 'cl2' is not suspended on 2025-12-01",
            ),
            id="ending a suspension at its own end",
        ),
        pytest.param(
            [],
            revoked(),
            ("unknown-reference", "entity_id", "measure 'cn-ann-46' was never published"),
            id="revoking an unknown measure",
        ),
        pytest.param(
            [f.measure()],
            revoked("cl1", "cl9"),
            (
                "unknown-reference",
                "clause_ids[1]",
                "measure 'cn-ann-46' has no clause 'cl9' (clauses: cl1, cl2)",
            ),
            id="revoking an unknown clause",
        ),
        pytest.param(
            [f.measure(), revoked("cl1", "cl2")],
            revoked("cl1", "cl2", effective_at="2026-02-01"),
            (
                "already-revoked",
                "clause_ids",
                "clauses cl1, cl2 of measure 'cn-ann-46' already revoked",
            ),
            id="revoking revoked clauses",
        ),
        pytest.param(
            [f.measure(), revoked()],
            revoked(effective_at="2026-02-01"),
            (
                "already-revoked",
                "clause_ids",
                "every clause of measure 'cn-ann-46' already revoked",
            ),
            id="revoking a revoked measure",
        ),
    ],
)
def test_measure_rules(setup: list[dict], bad: dict, expected: tuple[str, str, str]) -> None:
    assert refused(setup, bad) == expected


def test_a_suspension_may_begin_before_a_clause_is_revoked() -> None:
    ledger = Ledgerless()
    ledger.append(f.measure(), revoked("cl2", effective_at="2025-11-10"))
    ledger.append(f.suspended(effective_at="2025-11-09", until=None))
