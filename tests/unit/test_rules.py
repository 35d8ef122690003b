"""Every invariant, one case each: the rule named, the field named, a clear message.

Rules are pure domain code: each case folds its setup into a ``Workspace`` over an
empty store and checks the offending event against it, as ``Ledger.append`` does (no
services).  That a rejected event appends nothing, and batch line numbers, are in
``tests/integration/test_append_rules.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import pytest

from ledger import events as ev
from ledger.domain import rules
from ledger.domain.aggregate import Workspace
from ledger.errors import RuleViolation
from ledger.intake import parse_object
from tests import factory as f

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


class Ledgerless:
    """Appends to a workspace over an empty store: checked, then folded (no I/O)."""

    def __init__(self) -> None:
        self.facts = Workspace(lambda keys: {})
        self.known: dict[UUID, tuple[str, str]] = {}

    def event(self, obj: dict[str, Any]) -> ev.Event:
        e = parse_object(obj, actor="test", now=NOW, resolve_retracted=self.known.get).event
        self.known[e.event_id] = (e.entity_kind, e.entity_id)
        return e

    def append(self, *objs: dict[str, Any]) -> list[ev.Event]:
        out = []
        for obj in objs:
            e = self.event(obj)
            rules.check(e, self.facts)
            self.facts.add(e)
            out.append(e)
        return out


W = f.licensed_world  # exporter jl-mag, vetted end user buyer, general licence GL-1


def single(lid: str = "SL-1", **kw: Any) -> dict:
    return f.licence(lid, **{"licence_type": "single", "valid_until": "2026-06-01", **kw})


CASES: list[tuple[str, list[dict], dict, str, str, str]] = [
    # (case id, setup, offending event, rule, field, text in message)
    (
        "source required",
        [],
        {**f.party("x"), "sources": []},
        "source-required",
        "sources",
        "must cite at least one source",
    ),
    (
        "duplicate entity",
        [f.party("x")],
        f.party("x"),
        "duplicate-entity",
        "entity_id",
        "party 'x' was already registered",
    ),
    (
        "unknown licence",
        [],
        f.usage("GL-9"),
        "unknown-reference",
        "entity_id",
        "licence 'GL-9' was never granted",
    ),
    (
        "unknown exporter",
        [f.party("buyer"), f.vetted("buyer")],
        f.licence(),
        "unknown-reference",
        "exporter",
        "party 'jl-mag' was never registered",
    ),
    (
        "unknown end user",
        [f.exporter()],
        f.licence(),
        "unknown-reference",
        "end_users[0]",
        "party 'buyer' was never registered",
    ),
    (
        "unknown agreement",
        [],
        f.pledge("c1"),
        "unknown-reference",
        "agreement_id",
        "agreement 'busan-2025' was never reached",
    ),
    (
        "unknown reciprocated commitment",
        [f.agreement()],
        f.pledge("c1", reciprocates=["c9"]),
        "unknown-reference",
        "reciprocates[0]",
        "commitment 'c9' was never pledged",
    ),
    (
        "unknown clause",
        [f.measure()],
        f.suspended(clause="cl9"),
        "unknown-reference",
        "clause_id",
        "has no clause 'cl9'",
    ),
    (
        "general licence over 36 months",
        W()[:3],
        f.licence(valid_until="2028-12-03"),
        "general-licence-max-36-months",
        "valid_until",
        "at most 36 months",
    ),
    (
        "single licence over 12 months",
        W()[:3],
        single(valid_until="2026-12-03"),
        "single-licence-max-12-months",
        "valid_until",
        "at most 12 months",
    ),
    (
        "single licence, two end users",
        [*W()[:3], f.party("b2"), f.vetted("b2")],
        single(end_users=["buyer", "b2"]),
        "single-licence-one-end-user",
        "end_users",
        "exactly one end user, got 2",
    ),
    (
        "end user never vetted",
        [f.exporter(), f.party("buyer")],
        f.licence(),
        "end-user-not-vetted",
        "end_users[0]",
        "has never been vetted",
    ),
    (
        "end user rejected",
        [f.exporter(), f.party("buyer"), f.vetted("buyer", "rejected")],
        f.licence(),
        "end-user-not-vetted",
        "end_users[0]",
        "was rejected at vetting",
    ),
    (
        "end user vetting expired",
        [f.exporter(), f.party("buyer"), f.vetted("buyer", valid_until="2025-11-30")],
        f.licence(),
        "end-user-not-vetted",
        "end_users[0]",
        "vetting expired at the end of 2025-11-30",
    ),
    (
        "end user vetted only later",
        [f.exporter(), f.party("buyer"), f.vetted("buyer", effective_at="2025-12-10")],
        f.licence(),
        "end-user-not-vetted",
        "end_users[0]",
        "not vetted-approved on 2025-12-02",
    ),
    (
        "end user classified military",
        [*W()[:3], f.classified("buyer")],
        f.licence(),
        "end-user-military",
        "end_users[0]",
        "listed or classified as military",
    ),
    (
        "end user on a military list",
        [*W()[:3], f.listed("buyer")],
        f.licence(),
        "end-user-military",
        "end_users[0]",
        "listed or classified as military",
    ),
    (
        "usage after withdrawal",
        [*W(), f.licence_event("LicenceWithdrawn")],
        f.usage(effective_at="2026-03-05"),
        "licence-withdrawn",
        "effective_at",
        "is withdrawn since 2026-03-01; no shipment on 2026-03-05",
    ),
    (
        "usage after surrender",
        [*W(), f.licence_event("LicenceSurrendered")],
        f.usage(effective_at="2026-03-05"),
        "licence-surrendered",
        "effective_at",
        "is surrendered since 2026-03-01",
    ),
    (
        "usage while suspended",
        [*W(), f.licence_event("LicenceSuspended")],
        f.usage(effective_at="2026-01-15"),
        "licence-suspended",
        "effective_at",
        "is suspended since",
    ),
    (
        "usage after expiry",
        W(),
        f.usage(effective_at="2026-12-05"),
        "licence-expired",
        "effective_at",
        "licence 'GL-1' is expired at the end of 2026-12-01; no shipment on 2026-12-05",
    ),
    (
        "usage before validity",
        W(),
        f.usage(effective_at="2025-11-20"),
        "licence-not-yet-valid",
        "effective_at",
        "valid only from",
    ),
    (
        "single licence used up",
        [*W()[:3], single(), f.usage("SL-1", "S-1")],
        f.usage("SL-1", "S-2", effective_at="2025-12-11"),
        "licence-exhausted",
        "effective_at",
        "is exhausted",
    ),
    (
        "usage beyond the cap",
        [*W(), f.usage(quantity="900")],
        f.usage(shipment="S-2", quantity="150", effective_at="2025-12-11"),
        "usage-exceeds-cap",
        "quantity",
        "exceeds the remaining 100 kg",
    ),
    (
        "backdated usage beyond the total cap",
        [*W(), f.usage(quantity="900", effective_at="2025-12-20")],
        f.usage(shipment="S-0", quantity="150", effective_at="2025-12-05"),
        "usage-exceeds-cap",
        "quantity",
        "exceeds the remaining 100 kg",
    ),
    (
        "duplicate shipment id",
        [*W(), f.usage()],
        f.usage(quantity="5"),
        "duplicate-shipment",
        "shipment_id",
        "already recorded on licence 'GL-1'",
    ),
    (
        "item not on licence",
        W(),
        f.usage(item="1C903"),
        "item-not-licensed",
        "item",
        "does not cover '1C903'",
    ),
    (
        "end user not on licence",
        [*W(), f.party("other")],
        f.usage(end_user="other"),
        "end-user-not-licensed",
        "end_user",
        "does not name end user 'other'",
    ),
    (
        "destination not on licence",
        W(),
        f.usage(destination="FR"),
        "destination-not-licensed",
        "destination",
        "does not cover destination FR",
    ),
    (
        "zero quantity",
        W(),
        f.usage(quantity="0"),
        "positive-quantity",
        "quantity",
        "must be greater than 0",
    ),
    (
        "negative quantity in exponent form",
        W(),
        f.usage(quantity="-1e2"),
        "positive-quantity",
        "quantity",
        "must be greater than 0, got -100",
    ),
    (
        "quantity too precise",
        W(),
        f.usage(quantity="0.0000000001"),
        "quantity-precision",
        "quantity",
        "0.0000000001 is out of range: quantities are below 10^15 with at most 9 decimal places",
    ),
    (
        "cap too large",
        W()[:3],
        f.licence(items=[{"item": "x", "cap": "1e15"}]),
        "quantity-precision",
        "items[0].cap",
        "1000000000000000 is out of range: quantities are below 10^15",
    ),
    (
        "vetted before registration",
        [f.party("x", effective_at="2025-01-01")],
        f.vetted("x", effective_at="2024-06-01"),
        "before-creation",
        "effective_at",
        "party 'x' was registered with effect from 2025-01-01",
    ),
    (
        "implemented before pledged",
        [f.agreement(), f.pledge("c1")],
        f.implemented("c1", effective_at="2025-10-31"),
        "before-creation",
        "effective_at",
        "cannot take effect before that (2025-10-31)",
    ),
    (
        "clause suspended before publication",
        [f.measure()],
        f.suspended(effective_at="2024-01-01"),
        "before-creation",
        "effective_at",
        "measure 'cn-ann-46' was published",
    ),
    (
        "zero cap",
        W()[:3],
        f.licence(items=[{"item": "x", "cap": "0"}]),
        "positive-quantity",
        "items[0].cap",
        "must be greater than 0",
    ),
    (
        "duplicate item",
        W()[:3],
        f.licence(items=[{"item": "x", "cap": "1"}, {"item": "x", "cap": "2"}]),
        "duplicate-item",
        "items[1].item",
        "appears twice",
    ),
    (
        "duplicate end user",
        W()[:3],
        f.licence(end_users=["buyer", "buyer"]),
        "duplicate-end-user",
        "end_users",
        "appears twice",
    ),
    (
        "withdraw a withdrawn licence",
        [*W(), f.licence_event("LicenceWithdrawn")],
        f.licence_event("LicenceWithdrawn", effective_at="2026-04-01"),
        "licence-withdrawn",
        "entity_id",
        "was withdrawn on",
    ),
    (
        "reinstate a licence never suspended",
        W(),
        f.licence_event("LicenceReinstated"),
        "not-suspended",
        "effective_at",
        "is not suspended",
    ),
    (
        "suspend a suspended licence",
        [*W(), f.licence_event("LicenceSuspended")],
        f.licence_event("LicenceSuspended", effective_at="2026-01-20"),
        "already-suspended",
        "effective_at",
        "already suspended since",
    ),
    (
        "suspend an expired licence",
        W(),
        f.licence_event("LicenceSuspended", effective_at="2026-12-10"),
        "licence-expired",
        "effective_at",
        "expired at the end of 2026-12-01",
    ),
    (
        "cap amended below usage",
        [*W(), f.usage(quantity="600")],
        f.licence_event("LicenceAmended", items=[{"item": "1C902.a", "cap": "500"}]),
        "cap-below-usage",
        "items[0].cap",
        "below the 600 already shipped",
    ),
    (
        "empty amendment",
        W(),
        f.licence_event("LicenceAmended", items=None),
        "empty-amendment",
        "valid_until",
        "changes at least one",
    ),
    (
        "amendment beyond 36 months",
        W(),
        f.licence_event("LicenceAmended", items=None, valid_until="2029-01-01"),
        "general-licence-max-36-months",
        "valid_until",
        "at most 36 months",
    ),
    (
        "window ends before it starts",
        W()[:3],
        f.licence(effective_at="2025-12-02", valid_until="2025-12-01"),
        "window-ends-before-start",
        "valid_until",
        "not after its start",
    ),
    (
        "overlapping suspensions",
        [f.measure(), f.suspended()],
        f.suspended(effective_at="2026-01-01", until="2027-01-01"),
        "overlapping-suspension",
        "effective_at",
        "already suspended from 2025-11-09",
    ),
    (
        "end a suspension not in force",
        [f.measure()],
        {
            "type": "SuspensionEnded",
            "entity_id": "cn-ann-46",
            "clause_id": "cl2",
            "effective_at": "2025-12-01",
            "sources": [f.SRC],
        },
        "no-suspension-in-force",
        "effective_at",
        "is not suspended on",
    ),
    (
        "suspend a revoked clause",
        [
            f.measure(),
            {
                "type": "MeasureRevoked",
                "entity_id": "cn-ann-46",
                "clause_ids": ["cl2"],
                "reason": "replaced",
                "effective_at": "2025-06-01",
                "sources": [f.SRC],
            },
        ],
        f.suspended(),
        "clause-revoked",
        "clause_id",
        "was revoked on",
    ),
    (
        "revoke twice",
        [
            f.measure(),
            {
                "type": "MeasureRevoked",
                "entity_id": "cn-ann-46",
                "reason": "replaced",
                "effective_at": "2025-06-01",
                "sources": [f.SRC],
            },
        ],
        {
            "type": "MeasureRevoked",
            "entity_id": "cn-ann-46",
            "reason": "again",
            "effective_at": "2025-07-01",
            "sources": [f.SRC],
        },
        "already-revoked",
        "clause_ids",
        "already revoked",
    ),
    (
        "duplicate clause",
        [],
        f.measure(
            clauses=[
                {"clause_id": "a", "effect": "prohibited", "effective_at": "2024-12-03"},
                {"clause_id": "a", "effect": "prohibited", "effective_at": "2024-12-03"},
            ]
        ),
        "duplicate-clause",
        "clauses[1].clause_id",
        "appears twice",
    ),
    (
        "list twice",
        [f.party("x"), f.listed("x")],
        f.listed("x", effective_at="2025-07-01"),
        "already-listed",
        "list_name",
        "already on",
    ),
    (
        "delist when not listed",
        [f.party("x")],
        f.delisted("x"),
        "not-listed",
        "list_name",
        "is not on",
    ),
    (
        "obligor is beneficiary",
        [f.agreement()],
        f.pledge("c1", beneficiary="CN"),
        "obligor-is-beneficiary",
        "beneficiary",
        "both CN",
    ),
    (
        "party not in agreement",
        [f.agreement()],
        f.pledge("c1", beneficiary="EU"),
        "party-not-in-agreement",
        "beneficiary",
        "EU is not a party",
    ),
    (
        "acknowledged by the other side",
        [f.agreement(), f.pledge("c1", asserted_by=["US"])],
        {
            "type": "CommitmentAcknowledged",
            "entity_id": "c1",
            "party": "US",
            "effective_at": "2025-11-05",
            "sources": [f.SRC],
        },
        "acknowledged-by-obligor",
        "party",
        "only the obligor CN",
    ),
    (
        "acknowledged twice",
        [f.agreement(), f.pledge("c1")],
        {
            "type": "CommitmentAcknowledged",
            "entity_id": "c1",
            "party": "CN",
            "effective_at": "2025-11-05",
            "sources": [f.SRC],
        },
        "already-acknowledged",
        "entity_id",
        "already asserted or acknowledged",
    ),
    (
        "reverse twice",
        [
            f.agreement(),
            f.pledge("c1"),
            f.implemented("c1"),
            {
                "type": "CommitmentReversed",
                "entity_id": "c1",
                "reason": "r",
                "effective_at": "2025-12-01",
                "sources": [f.SRC],
            },
        ],
        {
            "type": "CommitmentReversed",
            "entity_id": "c1",
            "reason": "again",
            "effective_at": "2025-12-05",
            "sources": [f.SRC],
        },
        "already-ended",
        "entity_id",
        "already reversed",
    ),
    (
        "lapse while implemented",
        [f.agreement(), f.pledge("c1"), f.implemented("c1")],
        {
            "type": "CommitmentLapsed",
            "entity_id": "c1",
            "reason": "r",
            "effective_at": "2025-12-01",
            "sources": [f.SRC],
        },
        "lapse-while-implemented",
        "effective_at",
        "record a reversal instead",
    ),
    (
        "reciprocates itself",
        [f.agreement()],
        f.pledge("c1", reciprocates=["c1"]),
        "reciprocates-itself",
        "reciprocates[0]",
        "cannot reciprocate itself",
    ),
    (
        "extension that shortens",
        [f.agreement()],
        {
            "type": "AgreementExtended",
            "entity_id": "busan-2025",
            "valid_until": "2026-01-01",
            "effective_at": "2025-12-01",
            "sources": [f.SRC],
        },
        "extension-must-extend",
        "valid_until",
        "through 2026-01-01 does not extend the current end (through 2026-11-09)",
    ),
    (
        "decided twice",
        [
            *W(),
            f.application(),
            {
                "type": "ApplicationDecided",
                "entity_id": "APP-1",
                "outcome": "approved",
                "effective_at": "2025-12-03",
            },
        ],
        {
            "type": "ApplicationDecided",
            "entity_id": "APP-1",
            "outcome": "rejected",
            "effective_at": "2025-12-04",
        },
        "already-decided",
        "entity_id",
        "was decided on",
    ),
]


@pytest.mark.parametrize(
    ("setup", "bad", "rule", "field", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_rule(setup: list[dict], bad: dict, rule: str, field: str, text: str) -> None:
    ledger = Ledgerless()
    ledger.append(*setup)
    with pytest.raises(RuleViolation) as caught:
        ledger.append(bad)
    error = caught.value
    assert error.rule == rule
    assert error.field == field
    assert text in error.message, error.message
    assert f"[rule: {rule}]" in str(error)


def test_the_quantity_rule_never_writes_out_a_huge_exponent() -> None:
    """Intake and --quantity refuse these first; the rule itself stays safe too."""
    from decimal import Decimal

    from ledger.domain.quantities import check_quantity
    from ledger.errors import RuleViolation

    for text, rule in (("1E+1000000000", "quantity-precision"), ("-1E+99", "positive-quantity")):
        with pytest.raises(RuleViolation) as caught:
            check_quantity(Decimal(text), "quantity")
        assert caught.value.rule == rule and len(caught.value.message) < 200
        assert caught.value.message.startswith(f"'{text}' is out of range")


def test_a_shipment_recorded_again_is_asked_about_once_before_the_other_rules() -> None:
    """``rules.check`` answers the shipment id's question itself, once a shipment, before
    any other rule: the same details again give the recorded event's id (nothing to
    append, also without the sources, as the ledger always took a resend), other details
    ``duplicate-shipment`` (the old rule said "with different details" of an identical
    one, and asked after the sources)."""
    world = Ledgerless()
    world.append(*W())
    [first] = world.append(f.usage(shipment="S-1", quantity="10"))
    again = world.event(f.usage(shipment="S-1", quantity="10"))
    assert rules.check(again, world.facts) == first.event_id
    unsourced = world.event({**f.usage(shipment="S-1", quantity="10"), "sources": []})
    assert rules.check(unsourced, world.facts) == first.event_id
    other = world.event({**f.usage(shipment="S-1", quantity="11"), "sources": []})
    with pytest.raises(RuleViolation) as refused:
        rules.check(other, world.facts)
    assert refused.value.rule == "duplicate-shipment"
    assert f"(event {first.event_id}) with different details" in str(refused.value)
    new = world.event(f.usage(shipment="S-2", quantity="10"))
    assert rules.check(new, world.facts) is None
