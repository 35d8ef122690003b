"""Agreements and commitments (``ledger.domain.commitment``): what their events fold
into, a commitment's status at the edges, and each rule's exact message.
Pure: no services."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ledger.domain.commitment import AgreementState, CommitmentState
from ledger.errors import RuleViolation
from ledger.projections import records as rec
from tests import factory as f
from tests.unit.test_rules import Ledgerless

SECOND = dt.timedelta(seconds=1)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def event(type_: str, entity_id: str, **kw: Any) -> dict[str, Any]:
    return {"type": type_, "entity_id": entity_id, "sources": [f.SRC], **kw}


def extended(valid_until: str, **kw: Any) -> dict[str, Any]:
    base = {"valid_until": valid_until, "effective_at": "2026-06-01"}
    return event("AgreementExtended", "busan-2025", **{**base, **kw})


def acknowledged(cid: str, party: str = "CN", **kw: Any) -> dict[str, Any]:
    base = {"party": party, "effective_at": "2025-11-03"}
    return event("CommitmentAcknowledged", cid, **{**base, **kw})


def ended(kind: str, cid: str, **kw: Any) -> dict[str, Any]:
    base = {"reason": "withdrawn", "effective_at": "2026-01-01"}
    return event(kind, cid, **{**base, **kw})


def test_an_agreements_record_and_status() -> None:
    ledger = Ledgerless()
    events = ledger.append(
        f.agreement(extendable=False), extended("2027-11-09"), extended("2028-11-09")
    )
    record = rec.static_record(rec.fold_visible(events))
    assert record == rec.AgreementRecord(
        agreement_id="busan-2025",
        title="Busan arrangement",
        parties=("US", "CN"),
        reached_at=utc("2025-10-30"),
        reached_event=events[0].event_id,
        valid_until=utc("2028-11-10"),  # the end of the day written
        extendable=False,
    )
    state = rec.fold_visible(events).state
    assert isinstance(state, AgreementState)
    assert state.event_ids == [e.event_id for e in events]
    assert state.status_at(utc("2025-10-30") - SECOND) == "not-yet-reached"
    assert state.status_at(utc("2025-10-30")) == "in-force"
    assert state.status_at(utc("2028-11-10") - SECOND) == "in-force"
    assert state.status_at(utc("2028-11-10")) == "expired"


def test_an_open_ended_agreement_never_expires_and_may_be_given_an_end() -> None:
    ledger = Ledgerless()
    ledger.append(f.agreement(valid_until=None))
    state = ledger.facts.state("agreement", "busan-2025", None)
    assert isinstance(state, AgreementState)
    assert state.status_at(utc("2999-01-01")) == "in-force"
    ledger.append(extended("2030-01-01"))


def test_a_commitments_record_shows_every_event_it_folded() -> None:
    ledger = Ledgerless()
    ledger.append(f.agreement(), f.pledge("c0", obligor="US", beneficiary="CN"))
    events = ledger.append(
        f.pledge(
            "c1",
            asserted_by=["US"],
            due_by="2025-12-31",
            reciprocates=["c0"],
            category="tariffs",
        ),
        acknowledged("c1"),
        f.implemented("c1", extent="partial", instrument="A 1", in_force_until="2025-11-30"),
        f.implemented("c1", effective_at="2025-12-05", instrument="A 2"),
        ended("CommitmentReversed", "c1"),
    )
    pledge, _, partial, full, reversal = events
    record = rec.static_record(rec.fold_visible(events))
    assert record == rec.CommitmentRecord(
        commitment_id="c1",
        agreement_id="busan-2025",
        obligor="CN",
        beneficiary="US",
        asserted_by=("US",),
        category="tariffs",
        description="pledge c1",
        pledged_at=utc("2025-11-01"),
        pledge_event=pledge.event_id,
        due_by=utc("2026-01-01"),
        reciprocates=("c0",),
        acknowledged_at=utc("2025-11-03"),
        unilateral=False,
        implementations=(
            rec.ImplementationRecord(
                event_id=partial.event_id,
                at=utc("2025-11-10"),
                extent="partial",
                instrument="A 1",
                until=utc("2025-12-01"),
            ),
            rec.ImplementationRecord(
                event_id=full.event_id, at=utc("2025-12-05"), extent="full", instrument="A 2"
            ),
        ),
        ended_at=utc("2026-01-01"),
        end_kind="reversed",
        end_event=reversal.event_id,
    )
    state = rec.fold_visible(events).state
    assert isinstance(state, CommitmentState)
    assert state.event_ids == [e.event_id for e in events]
    assert state.first_implemented_at() == utc("2025-11-10")
    assert state.status_at(utc("2025-11-01")) == "pledged"
    statuses = [
        ("2025-11-10", "partially-implemented"),
        ("2025-12-01", "implementation-ended"),  # the partial window is over
        ("2025-12-05", "implemented"),
        ("2026-01-01", "reversed"),
    ]
    for day, status in statuses:
        assert state.status_at(utc(day) - SECOND) != status, day
        assert state.status_at(utc(day)) == status, day


def test_unilateral_until_the_obligor_acknowledges() -> None:
    ledger = Ledgerless()
    ledger.append(f.agreement(), f.pledge("c1", asserted_by=["US"]))
    state = ledger.facts.state("commitment", "c1", None)
    assert isinstance(state, CommitmentState) and state.unilateral
    assert state.first_implemented_at() is None
    ledger.append(acknowledged("c1"))
    state = ledger.facts.state("commitment", "c1", None)
    assert isinstance(state, CommitmentState) and not state.unilateral


def test_overdue_from_the_instant_due_and_lapsed() -> None:
    ledger = Ledgerless()
    ledger.append(f.agreement(), f.pledge("c1", due_by="2025-12-31"))
    ledger.append(ended("CommitmentLapsed", "c1", effective_at="2026-02-01"))
    state = ledger.facts.state("commitment", "c1", None)
    assert isinstance(state, CommitmentState)
    assert state.status_at(utc("2026-01-01") - SECOND) == "pledged"
    assert state.status_at(utc("2026-01-01")) == "overdue"
    assert state.status_at(utc("2026-02-01")) == "lapsed"


def test_a_reversal_undoes_implementations_up_to_its_own_instant() -> None:
    """Implementations taking effect before or at the reversal's instant are undone by
    it; one after it is in force again."""
    ledger = Ledgerless()
    ledger.append(f.agreement(), f.pledge("c1"), f.implemented("c1"))
    ledger.append(ended("CommitmentReversed", "c1", effective_at="2025-12-01"))
    ledger.append(f.implemented("c1", effective_at="2025-12-01"))
    ledger.append(f.implemented("c1", effective_at="2025-12-02"))
    state = ledger.facts.state("commitment", "c1", None)
    assert isinstance(state, CommitmentState)
    assert state.status_at(utc("2025-12-01") - SECOND) == "implemented"
    assert state.status_at(utc("2025-12-01")) == "reversed"
    assert state.status_at(utc("2025-12-02")) == "implemented"


@pytest.mark.parametrize(
    ("setup", "bad", "expected"),
    [
        pytest.param(
            [f.agreement()],
            extended("2026-11-09"),
            (
                "extension-must-extend",
                "valid_until",
                "through 2026-11-09 does not extend the current end (through 2026-11-09)",
            ),
            id="extension to the same end",
        ),
        pytest.param(
            [],
            extended("2026-11-09"),
            ("unknown-reference", "entity_id", "agreement 'busan-2025' was never reached"),
            id="extending an unknown agreement",
        ),
        pytest.param(
            [f.agreement()],
            f.pledge("c1", beneficiary="CN"),
            ("obligor-is-beneficiary", "beneficiary", "obligor and beneficiary are both CN"),
            id="obligor is beneficiary",
        ),
        pytest.param(
            [f.agreement()],
            f.pledge("c1", obligor="EU"),
            (
                "party-not-in-agreement",
                "obligor",
                "EU is not a party to agreement 'busan-2025' (US, CN)",
            ),
            id="obligor not a party",
        ),
        pytest.param(
            [f.agreement()],
            f.pledge("c1", beneficiary="EU"),
            (
                "party-not-in-agreement",
                "beneficiary",
                "EU is not a party to agreement 'busan-2025' (US, CN)",
            ),
            id="beneficiary not a party",
        ),
        pytest.param(
            [f.agreement()],
            f.pledge("c1", asserted_by=["CN", "EU"]),
            (
                "party-not-in-agreement",
                "asserted_by[1]",
                "EU is not a party to agreement 'busan-2025'",
            ),
            id="asserted by a non-party",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c0")],
            f.pledge("c1", reciprocates=["c0", "c1"]),
            (
                "reciprocates-itself",
                "reciprocates[1]",
                "a commitment cannot reciprocate itself",
            ),
            id="reciprocates itself",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c0")],
            f.pledge("c1", reciprocates=["c0", "c9"]),
            ("unknown-reference", "reciprocates[1]", "commitment 'c9' was never pledged"),
            id="reciprocates an unknown commitment",
        ),
        pytest.param(
            [],
            acknowledged("c1"),
            ("unknown-reference", "entity_id", "commitment 'c1' was never pledged"),
            id="acknowledging an unknown commitment",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1", asserted_by=["US"])],
            acknowledged("c1", party="US"),
            (
                "acknowledged-by-obligor",
                "party",
                "only the obligor CN can acknowledge its own pledge, not US",
            ),
            id="acknowledged by the beneficiary",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1")],
            acknowledged("c1"),
            (
                "already-acknowledged",
                "entity_id",
                "commitment 'c1' is already asserted or acknowledged by CN",
            ),
            id="acknowledging one's own assertion",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1", asserted_by=["US"]), acknowledged("c1")],
            acknowledged("c1", effective_at="2025-11-04"),
            (
                "already-acknowledged",
                "entity_id",
                "commitment 'c1' is already asserted or acknowledged by CN",
            ),
            id="acknowledged twice",
        ),
        pytest.param(
            [],
            f.implemented("c1"),
            ("unknown-reference", "entity_id", "commitment 'c1' was never pledged"),
            id="implementing an unknown commitment",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1")],
            f.implemented("c1", in_force_until="2025-11-09"),
            (
                "window-ends-before-start",
                "in_force_until",
                "ends at the end of 2025-11-09, not after its start 2025-11-10",
            ),
            id="implementation ending at its start",
        ),
        pytest.param(
            [],
            ended("CommitmentReversed", "c1"),
            ("unknown-reference", "entity_id", "commitment 'c1' was never pledged"),
            id="reversing an unknown commitment",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1", effective_at="2026-02-01")],
            ended("CommitmentLapsed", "c1", effective_at="2026-01-01"),
            (
                "before-creation",
                "effective_at",
                "commitment 'c1' was pledged with effect from 2026-02-01; this event "
                "cannot take effect before that (2026-01-01)",
            ),
            id="lapsed before the pledge",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1"), ended("CommitmentReversed", "c1")],
            ended("CommitmentLapsed", "c1", effective_at="2026-01-01"),
            ("already-ended", "entity_id", "commitment 'c1' already reversed on 2026-01-01"),
            id="lapsed at the instant of its reversal",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1"), ended("CommitmentLapsed", "c1")],
            ended("CommitmentLapsed", "c1", effective_at="2026-03-01"),
            ("already-ended", "entity_id", "commitment 'c1' already lapsed on 2026-01-01"),
            id="lapsed twice",
        ),
        pytest.param(
            [f.agreement(), f.pledge("c1"), f.implemented("c1", extent="partial")],
            ended("CommitmentLapsed", "c1"),
            (
                "lapse-while-implemented",
                "effective_at",
                "commitment 'c1' is partially-implemented on 2026-01-01; record a reversal instead",
            ),
            id="lapse while implemented",
        ),
    ],
)
def test_commitment_rules(setup: list[dict], bad: dict, expected: tuple[str, str, str]) -> None:
    ledger = Ledgerless()
    ledger.append(*setup)
    with pytest.raises(RuleViolation) as caught:
        ledger.append(bad)
    assert (caught.value.rule, caught.value.field, caught.value.message) == expected


def test_a_reversal_while_implemented_and_a_lapse_before_a_later_reversal() -> None:
    ledger = Ledgerless()
    ledger.append(f.agreement(), f.pledge("c1"), f.implemented("c1"))
    ledger.append(ended("CommitmentReversed", "c1"))
    ledger.append(f.pledge("c2"), ended("CommitmentReversed", "c2", effective_at="2026-03-01"))
    ledger.append(ended("CommitmentLapsed", "c2", effective_at="2026-02-01"))


def test_an_ending_between_a_lapse_and_a_later_reversal_is_refused_as_already_lapsed() -> None:
    """The lapse (recorded after the later reversal) governs the days between them."""
    ledger = Ledgerless()
    ledger.append(f.agreement(), f.pledge("c2"))
    ledger.append(ended("CommitmentReversed", "c2", effective_at="2026-03-01"))
    ledger.append(ended("CommitmentLapsed", "c2", effective_at="2026-02-01"))
    with pytest.raises(RuleViolation) as caught:
        ledger.append(ended("CommitmentReversed", "c2", effective_at="2026-02-15"))
    assert (caught.value.rule, caught.value.field, caught.value.message) == (
        "already-ended",
        "entity_id",
        "commitment 'c2' already lapsed on 2026-02-01",
    )
