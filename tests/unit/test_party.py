"""Parties: what their events fold into, what makes an end user licensable, and the
exact messages of their rules (``ledger.domain.party``).  Pure: no services."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger.domain.party import PartyState
from ledger.errors import RuleViolation
from ledger.projections import records as rec
from tests import factory as f
from tests.unit.test_rules import Ledgerless


def utc(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def rejection(setup: list[dict], bad: dict) -> RuleViolation:
    ledger = Ledgerless()
    ledger.append(*setup)
    with pytest.raises(RuleViolation) as caught:
        ledger.append(bad)
    return caught.value


def test_a_partys_record_shows_every_event_it_folded() -> None:
    """Who vetted it and until when, its classification and its lists, each with the
    event that says so, as the views show them."""
    ledger = Ledgerless()
    events = ledger.append(
        f.party("acme", country="FR", roles=("end-user", "consignee")),
        f.vetted("acme", authority="BAFA", effective_at="2025-03-01", valid_until="2027-03-01"),
        f.classified("acme", "military-affiliated", effective_at="2025-04-01"),
        f.listed("acme", "Entity List", "restricted", authority="BIS", effective_at="2025-05-01"),
        f.listed("acme", "Watch", "military-end-user", effective_at="2025-05-02"),
        f.delisted("acme", "Watch", effective_at="2025-05-03"),
    )
    registered, vetting, classification, listing = events[:4]
    record = rec.static_record(rec.fold_visible(events))
    assert record == rec.PartyRecord(
        party_id="acme",
        name="Acme",
        country="FR",
        roles=("end-user", "consignee"),
        registered_at=utc("2025-01-01"),
        registered_event=registered.event_id,
        vetting="approved",
        vetting_authority="BAFA",
        vetted_at=utc("2025-03-01"),
        vetting_until=utc("2027-03-02"),  # the end of the day written
        vetting_event=vetting.event_id,
        classification="military-affiliated",
        classification_event=classification.event_id,
        listings=(
            rec.ListingRecord(
                list_name="Entity List",
                list_kind="restricted",
                authority="BIS",
                listed_at=utc("2025-05-01"),
                event_id=listing.event_id,
            ),
        ),
        end_user_class="military-affiliated",
        military=False,
    )
    state = rec.fold_visible(events).state
    assert isinstance(state, PartyState)
    assert state.event_ids == [e.event_id for e in events]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], "civil"),
        ([f.classified("x", "military-affiliated")], "military-affiliated"),
        ([f.classified("x", "military")], "military"),
        ([f.listed("x")], "military"),
        ([f.classified("x", "military-affiliated"), f.listed("x")], "military"),
    ],
)
def test_end_user_class(events: list[dict], expected: str) -> None:
    """Civil unless classified otherwise; military when on a military end-user list."""
    ledger = Ledgerless()
    state = rec.fold_visible(ledger.append(f.party("x"), *events)).state
    assert isinstance(state, PartyState)
    assert state.end_user_class() == expected


def test_vetting_expires_at_the_instant_it_is_valid_until() -> None:
    """``valid_until`` is exclusive: a licence granted at that instant names an end user
    whose vetting has expired."""
    # A bare end date is the end of that day: valid until 2025-12-02T00:00Z.
    setup = [f.exporter(), f.party("buyer"), f.vetted("buyer", valid_until="2025-12-01")]
    error = rejection(setup, f.licence(effective_at="2025-12-02"))
    assert (error.rule, error.field) == ("end-user-not-vetted", "end_users[0]")
    assert error.message == (
        "end user 'buyer' is not vetted-approved on 2025-12-02 "
        "(vetting expired at the end of 2025-12-01)"
    )
    Ledgerless().append(*setup, f.licence(effective_at="2025-12-01T23:59:59Z"))


@pytest.mark.parametrize(
    ("setup", "bad", "rule", "field", "message"),
    [
        pytest.param(
            [
                f.exporter(),
                f.party("buyer", effective_at="2026-01-01"),
                f.vetted("buyer", effective_at="2026-01-02"),
            ],
            f.licence(),
            "end-user-not-vetted",
            "end_users[0]",
            "end user 'buyer' is not registered on 2025-12-02",
            id="end user registered only later",
        ),
        pytest.param(
            [f.exporter(), f.party("buyer"), f.vetted("buyer"), f.classified("buyer")],
            f.licence(),
            "end-user-military",
            "end_users[0]",
            "end user 'buyer' is listed or classified as military on 2025-12-02",
            id="end user military",
        ),
        pytest.param(
            [f.exporter(), f.party("buyer"), f.vetted("buyer", "rejected")],
            f.licence(),
            "end-user-not-vetted",
            "end_users[0]",
            "end user 'buyer' is not vetted-approved on 2025-12-02 (was rejected at vetting)",
            id="end user rejected",
        ),
        pytest.param(
            [],
            f.vetted("x"),
            "unknown-reference",
            "entity_id",
            "party 'x' was never registered",
            id="vetting an unknown party",
        ),
        pytest.param(
            [f.party("x")],
            f.vetted("x", effective_at="2025-06-01", valid_until="2025-05-31"),
            "window-ends-before-start",
            "valid_until",
            "ends at the end of 2025-05-31, not after its start 2025-06-01",
            id="vetting valid until its start",
        ),
        pytest.param(
            [],
            f.classified("x"),
            "unknown-reference",
            "entity_id",
            "party 'x' was never registered",
            id="classifying an unknown party",
        ),
        pytest.param(
            [],
            f.listed("x"),
            "unknown-reference",
            "entity_id",
            "party 'x' was never registered",
            id="listing an unknown party",
        ),
        pytest.param(
            [f.party("x"), f.listed("x", effective_at="2025-02-03")],
            f.listed("x", effective_at="2025-07-01"),
            "already-listed",
            "list_name",
            "party 'x' is already on 'CN military end users' since 2025-02-03",
            id="listed twice",
        ),
        pytest.param(
            [],
            f.delisted("x"),
            "unknown-reference",
            "entity_id",
            "party 'x' was never registered",
            id="delisting an unknown party",
        ),
        pytest.param(
            [f.party("x"), f.listed("x", effective_at="2025-10-01")],
            f.delisted("x", effective_at="2025-09-01"),
            "not-listed",
            "list_name",
            "party 'x' is not on 'CN military end users' on 2025-09-01",
            id="delisted before the listing takes effect",
        ),
    ],
)
def test_party_rule_messages(
    setup: list[dict], bad: dict, rule: str, field: str, message: str
) -> None:
    error = rejection(setup, bad)
    assert (error.rule, error.field, error.message) == (rule, field, message)


def test_listing_and_delisting_are_judged_at_their_effective_time() -> None:
    """A party listed from October may be listed again with effect from June (a fact
    about June), and delisted after October."""
    ledger = Ledgerless()
    ledger.append(f.party("x"), f.listed("x", effective_at="2025-10-01"))
    ledger.append(f.listed("x", effective_at="2025-06-01", list_name="Other"))
    ledger.append(f.delisted("x", effective_at="2025-11-01"))
    state = ledger.facts.state("party", "x", None)
    assert isinstance(state, PartyState)
    assert list(state.listings) == ["Other"]


def test_retracting_a_listing_after_its_delisting() -> None:
    """The delisting then folds with nothing to remove: the party is on no list."""
    ledger = Ledgerless()
    listing = ledger.append(f.party("x"), f.listed("x"), f.delisted("x"))[1]
    ledger.append(
        {
            "type": "EventRetracted",
            "retracted_event_id": str(listing.event_id),
            "reason": "wrong party",
        }
    )
    state = ledger.facts.state("party", "x", None)
    assert isinstance(state, PartyState)
    assert state.listings == {}
    assert not state.is_military()


def test_a_listing_while_already_on_the_list_is_refused_though_a_later_delisting_exists() -> None:
    """Listed in February, delisted in September: a listing in June is refused, judged
    by the party's lists in June, not by its latest state."""
    error = rejection(
        [
            f.party("x"),
            f.listed("x", effective_at="2025-02-03"),
            f.delisted("x", effective_at="2025-09-01"),
        ],
        f.listed("x", effective_at="2025-06-01"),
    )
    assert (error.rule, error.field, error.message) == (
        "already-listed",
        "list_name",
        "party 'x' is already on 'CN military end users' since 2025-02-03",
    )
