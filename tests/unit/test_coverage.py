"""Whether a licence covers a shipment: one rule for ``ledger check`` and for recording.

``ledger.domain.licence.coverage`` decides it for the append rule of
``LicenceUsageRecorded`` and for the export decision alike.  The cases pin the
semantics (items: prefix at a dot boundary, the most specific item drawn on; units never
converted; caps over the licence's whole life); the property checks that the decision
and the rule agree in both directions over generated histories.  Pure: no services.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

from ledger.domain import rules
from ledger.domain import state as st
from ledger.domain.items import item_matches, most_specific
from ledger.domain.licence import Coverage, Gap, coverage
from ledger.errors import RuleViolation
from ledger.projections import records as rec
from ledger.projections.decisions import Decision, Request, decide
from ledger.projections.query import Resolved
from tests import factory as f
from tests.unit.test_rules import Ledgerless

T0 = dt.datetime(2025, 12, 2, tzinfo=dt.UTC)
END_OF_TIME = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def at(days: int) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def world(*items: tuple[str, str, str], **licence: Any) -> Ledgerless:
    """jl-mag (exporter), buyer (vetted) and GL-1 capping ``items`` (code, cap, unit)."""
    ledger = Ledgerless()
    caps = [{"item": i, "cap": c, "unit": u} for i, c, u in items]
    ledger.append(*f.licensed_world(items=caps, **licence))
    return ledger


def licence_state(ledger: Ledgerless, lid: str = "GL-1") -> st.LicenceState:
    state = ledger.facts.state("licence", lid, None)
    assert isinstance(state, st.LicenceState)
    return state


# --- the item semantics -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "item", "matches"),
    [
        ("1C902", "1C902", True),
        ("1C902", "1C902.a", True),
        ("1C902", "1C902.a.1", True),
        ("1C902.a", "1C902", False),
        ("1C90", "1C902", False),
        ("1C902", "1C9021", False),
        ("1C902.a", "1C902.b", False),
    ],
)
def test_item_patterns_cover_at_a_dot_boundary(pattern: str, item: str, matches: bool) -> None:
    assert item_matches(pattern, item) is matches


def test_the_most_specific_item_is_drawn_on() -> None:
    items = [st.ItemState("1C902", Decimal(1), "kg"), st.ItemState("1C902.a", Decimal(1), "t")]
    assert most_specific(items, "1C902.a.1") is items[1]
    assert most_specific(items, "1C902.b") is items[0]
    assert most_specific(items, "1C903") is None


def test_a_shipment_of_a_sub_item_draws_on_the_licensed_item() -> None:
    """The issue's reproduction, on the append side: GL-1 caps 1C902; 1C902.a is covered."""
    ledger = world(("1C902", "1000", "kg"))
    ledger.append(f.usage(item="1C902.a", quantity="100"))
    assert licence_state(ledger).items["1C902"].used == Decimal(100)
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.usage(shipment="S-2", item="1C902.a.1", quantity="901"))
    assert caught.value.rule == "usage-exceeds-cap"
    assert "remaining 900 kg" in caught.value.message


def test_each_shipment_draws_on_its_most_specific_item() -> None:
    ledger = world(("1C902", "1000", "kg"), ("1C902.a", "10", "kg"))
    ledger.append(f.usage(item="1C902.a.7", quantity="10"), f.usage(shipment="S-2", item="1C902.b"))
    items = licence_state(ledger).items
    assert (items["1C902.a"].used, items["1C902"].used) == (Decimal(10), Decimal(100))
    with pytest.raises(RuleViolation) as caught:  # 1C902.a is used up; 1C902 is not drawn on
        ledger.append(f.usage(shipment="S-3", item="1C902.a", quantity="1"))
    assert caught.value.rule == "usage-exceeds-cap"


@pytest.mark.parametrize("item", ["1C90", "1C9021", "1C902"])
def test_a_code_not_under_a_licensed_item_is_refused(item: str) -> None:
    ledger = world(("1C902.a", "1000", "kg"))
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.usage(item=item))
    assert (caught.value.rule, caught.value.field) == ("item-not-licensed", "item")
    assert caught.value.message == f"licence 'GL-1' does not cover '{item}' (covers: 1C902.a)"


# --- the decision, through the same predicate ------------------------------------------


CONTROL = f.measure(
    "m",
    clauses=[{"clause_id": "c", "effect": "licence-required", "effective_at": "2024-01-01"}],
)


def resolved(ledger: Ledgerless, kind: str, entity_id: str, as_of: dt.datetime) -> Any:
    entity = ledger.facts.entities.get(f"{kind}:{entity_id}")
    found = rec.record_at(entity.events, as_of, None) if entity is not None else None
    return None if found is None else Resolved(entity_id, *found)


def check(ledger: Ledgerless, request: Request) -> Decision:
    """``ledger check`` on a ledger without a store: the views' records of a fresh fold."""
    licence_ids = [
        key.split(":", 1)[1] for key in ledger.facts.entities if key.startswith("licence:")
    ]
    licences = [resolved(ledger, "licence", i, request.date) for i in sorted(licence_ids)]
    lifetime = [resolved(ledger, "licence", i, END_OF_TIME) for i in licence_ids]
    return decide(
        request,
        [r for r in [resolved(ledger, "measure", "m", request.date)] if r is not None],
        resolved(ledger, "party", request.end_user, request.date),
        resolved(ledger, "party", request.exporter, request.date),
        [r for r in licences if r is not None],
        {r.entity_id: r.record for r in lifetime if r is not None},
    )


def request(
    item: str = "1C902.a",
    quantity: str = "100",
    *,
    unit: str = "kg",
    days: int = 8,
    end_user: str = "buyer",
    destination: str = "DE",
    licence_id: str | None = None,
) -> Request:
    return Request(
        exporter="jl-mag",
        end_user=end_user,
        item=item,
        quantity=Decimal(quantity),
        unit=unit,
        destination=destination,
        end_use="motors",
        date=at(days),
        licence_id=licence_id,
    )


def test_check_approves_what_recording_accepts_for_a_sub_item() -> None:
    ledger = world(("1C902", "1000", "kg"))
    ledger.append(CONTROL)
    decision = check(ledger, request("1C902.a"))
    assert (decision.outcome, decision.licence_id) == ("approved", "GL-1")
    assert "covered by licence GL-1 (1,000 kg remaining)" in decision.reasons[0]
    ledger.append(f.usage(item="1C902.a", quantity="100"))


def test_check_refuses_another_unit_units_are_never_converted() -> None:
    ledger = world(("1C902", "1000", "kg"))
    ledger.append(CONTROL)
    decision = check(ledger, request("1C902.a", unit="t"))
    assert decision.outcome == "rejected"
    assert "GL-1: caps 1C902.a in kg, not t (units are not converted)" in decision.reasons[0]


def test_check_counts_shipments_effective_later_against_the_cap() -> None:
    """A shipment dated after D already used the cap: recording one at D would exceed it,
    so check on D refuses it too."""
    ledger = world(("1C902.a", "1000", "kg"))
    ledger.append(CONTROL, f.usage(quantity="950", effective_at=at(60).isoformat()))
    decision = check(ledger, request(quantity="100", days=8))
    assert decision.outcome == "rejected"
    assert "GL-1: only 50 kg of 1C902.a remain" in decision.reasons[0]
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.usage(shipment="S-2", quantity="100", effective_at=at(8).isoformat()))
    assert caught.value.rule == "usage-exceeds-cap"


# --- the property: check and recording agree, both ways --------------------------------

CODES = ("1C902", "1C902.a", "1C902.a.1", "1C902.b", "1C90", "8505.11")
PATTERNS = ("1C902", "1C902.a", "8505")
PEOPLE = ("buyer", "other")
PLACES = ("DE", "US")

licence_items = st_.dictionaries(
    st_.sampled_from(PATTERNS),
    st_.tuples(st_.integers(1, 300), st_.sampled_from(("kg", "t"))),
    min_size=1,
    max_size=3,
)
licences = st_.tuples(
    st_.sampled_from(("general", "single")),
    licence_items,
    st_.lists(st_.sampled_from(PEOPLE), min_size=1, max_size=2, unique=True),
    st_.lists(st_.sampled_from(PLACES), min_size=1, max_size=2, unique=True),
)
shipment = st_.tuples(
    st_.sampled_from(CODES),
    st_.integers(1, 200),
    st_.sampled_from(PEOPLE),
    st_.sampled_from(PLACES),
)
operation = st_.tuples(
    st_.sampled_from(("usage", "usage", "usage", "suspend", "reinstate", "withdraw", "amend")),
    st_.sampled_from(("GL-1", "GL-2")),
    st_.integers(-5, 200),
    shipment,
    licence_items,
)


def build(spec_licences: list[Any], ops: list[Any]) -> Ledgerless:
    ledger = Ledgerless()
    ledger.append(
        f.exporter(),
        *[p for person in PEOPLE for p in (f.party(person), f.vetted(person))],
        CONTROL,
    )
    for n, (kind, items, end_users, destinations) in enumerate(spec_licences, start=1):
        caps = [{"item": i, "cap": str(c), "unit": u} for i, (c, u) in items.items()]
        if kind == "single":
            end_users = end_users[:1]
        until = "2026-06-01" if kind == "single" else "2026-12-01"
        grant = f.licence(
            f"GL-{n}",
            licence_type=kind,
            items=caps,
            end_users=end_users,
            destinations=destinations,
            valid_until=until,
        )
        ledger.append(grant)
    for n, (op, lid, day, (code, qty, person, place), items) in enumerate(ops):
        when = (at(day) + dt.timedelta(minutes=n)).isoformat()
        obj: dict[str, Any]
        if op == "usage":
            obj = f.usage(
                lid,
                shipment=f"S-{n}",
                item=code,
                quantity=str(qty),
                end_user=person,
                destination=place,
                effective_at=when,
            )
        elif op == "amend":
            caps = [{"item": i, "cap": str(c + 200), "unit": u} for i, (c, u) in items.items()]
            obj = f.licence_event("LicenceAmended", lid, items=caps, effective_at=when)
        else:
            name = {
                "suspend": "LicenceSuspended",
                "reinstate": "LicenceReinstated",
                "withdraw": "LicenceWithdrawn",
            }[op]
            obj = f.licence_event(name, lid, effective_at=when)
        with contextlib.suppress(RuleViolation):  # the ledger is what the rules accepted
            ledger.append(obj)
    return ledger


def recording(ledger: Ledgerless, lid: str, r: Request) -> RuleViolation | None:
    """What the rules say to recording the requested shipment under ``lid`` (None: yes)."""
    usage = ledger.event(
        f.usage(
            lid,
            shipment="S-asked",
            item=r.item,
            quantity=str(r.quantity),
            end_user=r.end_user,
            destination=r.destination,
            effective_at=r.date.isoformat(),
        )
    )
    try:
        rules.check(usage, ledger.facts)
    except RuleViolation as exc:
        return exc
    return None


# At least 300 (cheap, and the edges need that many), more under a bigger profile, but
# the `dev` profile's count in the quick loop and under mutation testing.
EXAMPLES = settings.default.max_examples
if EXAMPLES >= 200:
    EXAMPLES = max(300, EXAMPLES)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st_.lists(licences, min_size=1, max_size=2),
    st_.lists(operation, max_size=12),
    shipment,
    st_.integers(-10, 400),
    st_.sampled_from(("kg", "t")),
)
def test_check_and_recording_agree(
    spec_licences: list[Any],
    ops: list[Any],
    asked: tuple[str, int, str, str],
    day: int,
    unit: str,
) -> None:
    """If check approves citing L, recording the shipment under L is accepted; and if
    recording it under L is accepted, check (for L, in L's unit) approves it."""
    ledger = build(spec_licences, ops)
    code, qty, person, place = asked
    base = request(code, str(qty), unit=unit, days=day, end_user=person, destination=place)
    base = Request(**{**vars(base), "date": base.date + dt.timedelta(hours=12)})

    decision = check(ledger, base)
    if decision.outcome == "approved":
        assert decision.licence_id is not None, decision.reasons
        refused = recording(ledger, decision.licence_id, base)
        assert refused is None, (decision.reasons, str(refused))

    for n in range(1, len(spec_licences) + 1):
        lid = f"GL-{n}"
        refused = recording(ledger, lid, base)
        licence = ledger.facts.state("licence", lid, base.date)
        drawn = licence.licensed_item(code) if isinstance(licence, st.LicenceState) else None
        in_unit = Request(
            **{**vars(base), "licence_id": lid, "unit": drawn.unit if drawn else unit}
        )
        for_licence = check(ledger, in_unit)
        approved = for_licence.outcome == "approved" and for_licence.licence_id == lid
        assert approved is (refused is None), (for_licence.reasons, str(refused))


# --- every gap, exactly -----------------------------------------------------------------


def covering(
    status: str = "active",
    *,
    item: str = "1C902.a",
    unit: str | None = None,
    quantity: str = "10",
    end_user: str = "buyer",
    destination: str = "DE",
    later_usage: str | None = None,
) -> Coverage:
    """GL-1 (1,000 kg of 1C902.a and 5 kg of 1C902.b, buyer, DE; valid from 2025-12-02)
    as of 2025-12-05 in ``status``; ``later_usage``: a shipment of 1C902.a on 2026-02-01."""
    ledger = world(("1C902.a", "1000", "kg"), ("1C902.b", "5", "kg"))
    if later_usage is not None:
        ledger.append(f.usage(quantity=later_usage, effective_at="2026-02-01"))
    whole = licence_state(ledger)
    licence = ledger.facts.state("licence", "GL-1", at(3))
    assert isinstance(licence, st.LicenceState)
    return coverage(
        licence, status, at(3), item, unit, Decimal(quantity), end_user, destination, whole
    )


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        (
            "not-yet-valid",
            "licence 'GL-1' is not-yet-valid; no shipment on 2025-12-05 can be recorded under it",
            "not-yet-valid on 2025-12-05",
        ),
        (
            "expired",
            "licence 'GL-1' is expired at the end of 2026-12-01; no shipment on 2025-12-05 "
            "can be recorded under it",
            "expired on 2025-12-05",
        ),
        (
            "withdrawn",
            "licence 'GL-1' is withdrawn; no shipment on 2025-12-05 can be recorded under it",
            "withdrawn on 2025-12-05",
        ),
    ],
)
def test_a_licence_not_active_is_refused_naming_its_status(
    status: str, message: str, reason: str
) -> None:
    """Not yet valid names no day (the licence starts later; its start is not a day it
    has been so since); a status with no time known names none either."""
    found = coverage_gap(covering(status))
    assert found == Gap(f"licence-{status}", "effective_at", message, reason)


def coverage_gap(found: Coverage) -> Gap:
    assert found.gap is not None and not found.covered
    return found.gap


def test_an_item_not_licensed_is_refused_naming_the_items_covered() -> None:
    found = covering(item="gallium")
    assert (found.item, found.remaining) == (None, None)
    assert coverage_gap(found) == Gap(
        "item-not-licensed",
        "item",
        "licence 'GL-1' does not cover 'gallium' (covers: 1C902.a, 1C902.b)",
        "does not cover gallium",
    )


@pytest.mark.parametrize(
    ("terms", "rule", "field", "message", "reason"),
    [
        (
            {"unit": "t"},
            "unit-not-licensed",
            "unit",
            "licence 'GL-1' caps '1C902.a' in kg, not t (units are not converted)",
            "caps 1C902.a in kg, not t (units are not converted)",
        ),
        (
            {"end_user": "other"},
            "end-user-not-licensed",
            "end_user",
            "licence 'GL-1' does not name end user 'other'",
            "does not name end user other",
        ),
        (
            {"destination": "FR"},
            "destination-not-licensed",
            "destination",
            "licence 'GL-1' does not cover destination FR",
            "does not cover destination FR",
        ),
    ],
)
def test_a_term_not_licensed_is_refused_naming_the_item_drawn_on(
    terms: dict[str, str], rule: str, field: str, message: str, reason: str
) -> None:
    found = covering(**terms)
    assert coverage_gap(found) == Gap(rule, field, message, reason)
    assert found.item is not None and (found.item.item, found.remaining) == ("1C902.a", None)


def test_what_remains_is_the_least_of_then_and_over_the_whole_life() -> None:
    """A later shipment of 990 kg leaves 10 kg over the licence's life: 10 kg may be
    shipped now (what remains then is 1,000 kg), 11 kg may not."""
    exact = covering(quantity="10", later_usage="990")
    assert exact.covered and exact.gap is None
    assert exact.item is not None and exact.item.item == "1C902.a"
    assert exact.remaining == Decimal("10")
    over = covering(quantity="11", later_usage="990")
    assert over.remaining == Decimal("10")
    assert over.item is not None and over.item.item == "1C902.a"
    assert coverage_gap(over) == Gap(
        "usage-exceeds-cap",
        "quantity",
        "quantity 11 kg of '1C902.a' exceeds the remaining 10 kg (cap 1000)",
        "only 10 kg of 1C902.a remain",
    )
    # Without a later shipment the cap then is what remains.
    assert covering(quantity="1000").remaining == Decimal("1000")
