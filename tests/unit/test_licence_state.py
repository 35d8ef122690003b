"""The licence's folded state and rules, case by case, where mutation testing found gaps.

Each case pins a behaviour that a one-line change to ``ledger.domain.licence`` would
break while every other unit test still passed (see docs/mutation.md).  Pure: no services.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ledger import events as ev
from ledger.domain import state as st
from ledger.domain.licence import covers, inactive_since, same_shipment
from ledger.errors import RuleViolation
from tests import factory as f
from tests.unit.test_rules import Ledgerless, single

JAN_20 = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)


def licence_state(ledger: Ledgerless, lid: str = "GL-1") -> st.LicenceState:
    state = ledger.facts.state("licence", lid, None)
    assert isinstance(state, st.LicenceState)
    return state


@pytest.mark.parametrize("terminal", ["LicenceWithdrawn", "LicenceSurrendered"])
def test_the_cause_of_a_terminal_status_is_the_event_that_ended_the_licence(
    terminal: str,
) -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    suspension, ending = ledger.append(
        f.licence_event("LicenceSuspended"), f.licence_event(terminal)
    )
    licence = licence_state(ledger)
    status = licence.status_at(JAN_20)
    assert (
        status == {"LicenceWithdrawn": "withdrawn", "LicenceSurrendered": "surrendered"}[terminal]
    )
    assert licence.cause_of(status) == ending.event_id
    assert licence.cause_of("suspended") == suspension.event_id


def test_the_cause_of_a_suspension_is_the_suspending_event_and_time_has_no_cause() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    (suspension,) = ledger.append(f.licence_event("LicenceSuspended"))
    licence = licence_state(ledger)
    assert licence.status_at(JAN_20) == "suspended"
    assert licence.cause_of("suspended") == suspension.event_id
    for status in ("active", "expired", "exhausted", "not-yet-valid"):
        assert licence.cause_of(status) is None


def test_an_amendment_may_not_give_a_single_licence_a_second_end_user() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.party("second"), f.vetted("second"), single())
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceAmended", "SL-1", end_users=["buyer", "second"]))
    assert (caught.value.rule, caught.value.field) == ("single-licence-one-end-user", "end_users")


def test_an_amendment_that_changes_nothing_is_refused_and_says_what_it_may_change() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceAmended", items=None))
    assert caught.value.rule == "empty-amendment"
    assert caught.value.message == (
        "an amendment changes at least one of valid_until, end_users, items, destinations"
    )


@pytest.mark.parametrize(
    ("change", "covered"),
    [
        ({}, True),
        ({"quantity": Decimal(1000)}, True),  # the cap, exactly
        ({"quantity": Decimal("1000.001")}, False),
        ({"item": "1C902.b"}, False),
        ({"unit": "t"}, False),
        ({"end_user": "someone-else"}, False),
        ({"destination": "FR"}, False),
        ({"at": dt.datetime(2025, 12, 1, 23, 59, tzinfo=dt.UTC)}, False),  # not yet valid
        ({"at": JAN_20 + dt.timedelta(days=365)}, False),  # expired
    ],
)
def test_covers_answers_for_every_term_of_the_shipment(
    change: dict[str, object], covered: bool
) -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    shipment: dict[str, object] = {
        "item": "1C902.a.1",
        "unit": "kg",
        "quantity": Decimal(10),
        "end_user": "buyer",
        "destination": "DE",
        "at": JAN_20,
        **change,
    }
    assert covers(licence_state(ledger), **shipment) is covered  # type: ignore[arg-type]


def test_covers_counts_the_later_usage_of_the_whole_licence() -> None:
    """As of 20 January 900 kg remain, but a shipment effective later drew them all."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.usage(quantity="100"))
    ledger.append(f.usage(shipment="S-2", quantity="900", effective_at="2026-02-01"))
    as_of, whole = ledger.facts.state("licence", "GL-1", JAN_20), licence_state(ledger)
    assert isinstance(as_of, st.LicenceState)
    shipment = ("1C902.a", "kg", Decimal(1), "buyer", "DE", JAN_20)
    assert covers(as_of, *shipment)
    assert not covers(as_of, *shipment, whole=whole)


AMENDMENT_REFUSALS = [
    # (case, amendment fields, rule, field, message)
    (
        "end user vetted only after the amendment",
        {"end_users": ["late", "buyer"], "items": None},
        "end-user-not-vetted",
        "end_users[0]",
        "end user 'late' is not vetted-approved on 2026-01-05 (has never been vetted)",
    ),
    (
        "no destination",
        {"destinations": [], "items": None},
        "no-destination",
        "destinations",
        "a licence needs a destination",
    ),
    ("no item", {"items": []}, "no-item", "items", "a licence needs an item"),
    (
        "an item twice",
        {"items": [{"item": "1C902.a", "cap": "1", "unit": "kg"}] * 2},
        "duplicate-item",
        "items[1].item",
        "item '1C902.a' appears twice",
    ),
]


@pytest.mark.parametrize(
    ("fields", "rule", "field", "message"),
    [case[1:] for case in AMENDMENT_REFUSALS],
    ids=[case[0] for case in AMENDMENT_REFUSALS],
)
def test_an_amendment_is_refused_with_its_rule_field_and_message(
    fields: dict[str, object], rule: str, field: str, message: str
) -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.party("late"), f.vetted("late", effective_at="2026-02-01"))
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceAmended", **fields))
    assert (caught.value.rule, caught.value.field, caught.value.message) == (rule, field, message)


SUSPENSION_REFUSALS = [
    # (case, setup after the licensed world, offending event, rule, field, message)
    (
        "a suspension ending when it starts",
        [],
        f.licence_event(
            "LicenceSuspended", until="2026-01-09"
        ),  # through the 9th: ends as it starts
        "window-ends-before-start",
        "until",
        "ends at the end of 2026-01-09, not after its start 2026-01-10",
    ),
    (
        "suspend a suspended licence",
        [f.licence_event("LicenceSuspended")],
        f.licence_event("LicenceSuspended", effective_at="2026-01-20"),
        "already-suspended",
        "effective_at",
        "licence 'GL-1' is already suspended since 2026-01-10",
    ),
    (
        "suspend an expired licence",
        [],
        f.licence_event("LicenceSuspended", effective_at="2026-12-10"),
        "licence-expired",
        "effective_at",
        # valid until 2026-12-01: stored as the next midnight, last valid on the 1st
        "licence 'GL-1' expired at the end of 2026-12-01",
    ),
    (
        "reinstate a licence that is not suspended",
        [],
        f.licence_event("LicenceReinstated"),
        "not-suspended",
        "effective_at",
        "licence 'GL-1' is not suspended on 2026-02-01",
    ),
]


@pytest.mark.parametrize(
    ("setup", "event", "rule", "field", "message"),
    [case[1:] for case in SUSPENSION_REFUSALS],
    ids=[case[0] for case in SUSPENSION_REFUSALS],
)
def test_a_suspension_or_reinstatement_is_refused_with_its_dates(
    setup: list[dict], event: dict, rule: str, field: str, message: str
) -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), *setup)
    with pytest.raises(RuleViolation) as caught:
        ledger.append(event)
    assert (caught.value.rule, caught.value.field, caught.value.message) == (rule, field, message)


def test_a_suspension_may_last_one_day() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.licence_event("LicenceSuspended", until="2026-01-10"))
    licence = licence_state(ledger)
    assert licence.status_at(dt.datetime(2026, 1, 9, 23, 59, tzinfo=dt.UTC)) == "active"
    assert licence.status_at(dt.datetime(2026, 1, 10, tzinfo=dt.UTC)) == "suspended"  # its instant
    assert licence.status_at(dt.datetime(2026, 1, 10, 23, 59, tzinfo=dt.UTC)) == "suspended"
    assert licence.status_at(dt.datetime(2026, 1, 11, tzinfo=dt.UTC)) == "active"


@pytest.mark.parametrize(
    ("ending", "rule", "message"),
    [
        ("LicenceWithdrawn", "licence-withdrawn", "licence 'GL-1' was withdrawn on 2026-03-01"),
        (
            "LicenceSurrendered",
            "licence-surrendered",
            "licence 'GL-1' was surrendered on 2026-03-01",
        ),
    ],
)
def test_an_ended_licence_refuses_further_changes_and_says_when_it_ended(
    ending: str, rule: str, message: str
) -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.licence_event(ending))
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceSuspended", effective_at="2026-03-05"))
    assert (caught.value.rule, caught.value.field, caught.value.message) == (
        rule,
        "entity_id",
        message,
    )


def test_inactive_since_is_the_time_each_status_began() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.licence_event("LicenceSuspended"))
    licence = licence_state(ledger)
    assert inactive_since(licence, "expired") == licence.valid_until
    assert inactive_since(licence, "not-yet-valid") == licence.valid_from
    assert inactive_since(licence, "suspended") == dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    assert inactive_since(licence, "withdrawn") is None  # not withdrawn
    assert inactive_since(licence, "active") is None


def test_an_amendment_may_lower_a_cap_to_exactly_what_was_shipped_not_below() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.usage(quantity="100"))
    lowered = [{"item": "1C902.a", "cap": "99.999", "unit": "kg"}]
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceAmended", items=lowered))
    assert (caught.value.rule, caught.value.field) == ("cap-below-usage", "items[0].cap")
    ledger.append(
        f.licence_event("LicenceAmended", items=[{"item": "1C902.a", "cap": "100", "unit": "kg"}])
    )
    assert licence_state(ledger).status_at(JAN_20) == "exhausted"


def test_an_amendment_may_add_an_item_with_a_cap_below_one_unit() -> None:
    """A new item has shipped nothing, so any positive cap is above its usage."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    items = [
        {"item": "1C902.a", "cap": "1000", "unit": "kg"},
        {"item": "1C903", "cap": "0.5", "unit": "kg"},
    ]
    ledger.append(f.licence_event("LicenceAmended", items=items))
    assert licence_state(ledger).items["1C903"].cap == Decimal("0.5")


def test_an_expired_licence_is_refused_with_its_last_valid_day() -> None:
    """'valid until 2026-12-01' is stored as 2026-12-02T00:00Z (an exclusive end): the
    refusal names the 1st, the licence's last day, not the stored instant's date."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.usage(effective_at="2026-12-02"))
    assert caught.value.message.startswith(
        "licence 'GL-1' is expired at the end of 2026-12-01; no shipment on 2026-12-02"
    )
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceSuspended", effective_at="2026-12-02"))
    assert caught.value.message == "licence 'GL-1' expired at the end of 2026-12-01"


def test_an_end_off_midnight_is_named_exactly_in_the_reading_zone() -> None:
    """In Beijing days 2026-12-02T00:00Z is 08:00 on the 2nd: not a day's end, so the
    refusal gives the instant, in Beijing time."""
    from ledger.times import load_zone, reading_in

    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    with (
        reading_in(load_zone("Asia/Shanghai")),
        pytest.raises(RuleViolation) as caught,
    ):
        ledger.append(f.licence_event("LicenceSuspended", effective_at="2026-12-03"))
    assert caught.value.message == "licence 'GL-1' expired at 2026-12-02T08:00+08:00"


def test_a_validity_over_the_limit_names_last_days() -> None:
    """From 2 Dec 2025 a general licence may run 36 months: through 1 Dec 2028."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world()[:3])
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence(valid_until="2028-12-05"))
    assert caught.value.message == (
        "a general licence may be valid for at most 36 months: valid from 2025-12-02, "
        "so through 2028-12-01 at the latest, not through 2028-12-05"
    )


def test_a_validity_of_exactly_the_limit_is_accepted() -> None:
    """Through 1 Dec 2028 (the stored end 2 Dec 2028 00:00, exactly 36 months after the
    start) is the longest a general licence from 2 Dec 2025 may run."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world()[:3])
    (grant,) = ledger.append(f.licence(valid_until="2028-12-01"))
    assert isinstance(grant, ev.LicenceGranted)
    assert grant.valid_until == dt.datetime(2028, 12, 2, tzinfo=dt.UTC)


def test_an_amendment_adding_end_users_names_the_index_in_the_whole_list() -> None:
    """The licence names 'buyer'; an amendment to ['buyer', 'stranger'] is refused for
    end_users[1], the stranger's place in the list the operator wrote."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    with pytest.raises(RuleViolation) as caught:
        ledger.append(
            f.licence_event("LicenceAmended", items=None, end_users=["buyer", "stranger"])
        )
    assert (caught.value.rule, caught.value.field) == ("unknown-reference", "end_users[1]")
    ledger.append(f.party("late"), f.vetted("late", effective_at="2026-02-01"))
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceAmended", items=None, end_users=["late", "buyer"]))
    assert (caught.value.rule, caught.value.field) == ("end-user-not-vetted", "end_users[0]")
    with pytest.raises(RuleViolation) as caught:
        ledger.append(
            f.licence_event("LicenceAmended", items=None, end_users=["buyer", "buyer2", "late"])
        )
    assert caught.value.field == "end_users[1]"


def test_late_usage_after_a_shortened_validity_names_the_last_valid_day() -> None:
    """A shipment on 1 June 2026, then an amendment (recorded later) ending the licence
    'valid until 2026-05-31': the finding says it expired at the end of 31 May."""
    from ledger.projections import findings
    from ledger.projections import records as rec
    from ledger.projections.query import Resolved

    ledger = Ledgerless()
    events = ledger.append(
        *f.licensed_world(),
        f.usage(effective_at="2026-06-01"),
        f.licence_event("LicenceAmended", items=None, valid_until="2026-05-31"),
    )
    licence = [e for e in events if e.entity_kind == "licence"]
    as_of = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    found = rec.record_at(licence, as_of, None)
    assert found is not None
    [late] = findings.late_usage([Resolved("GL-1", *found)])
    assert "1C902.a) on 2026-06-01 under licence GL-1, expired at the end of 2026-05-31" in (
        late.summary
    ), late.summary


USAGE_DETAILS = {
    "shipment_id": "S-2",
    "item": "1C902.b",
    "quantity": "101",
    "end_user": "buyer2",
    "destination": "FR",
    "effective_at": "2025-12-11",
}


def test_a_usage_recorded_again_with_the_same_details_is_the_same_shipment() -> None:
    """The idempotent re-recording of a shipment: another event (its own id, recorded
    again) with every detail equal, the quantity written with other trailing zeros."""
    ledger = Ledgerless()
    first = ledger.event(f.usage())
    again = ledger.event(f.usage(quantity="100.00"))
    assert first.event_id != again.event_id
    assert isinstance(first, ev.LicenceUsageRecorded)
    assert isinstance(again, ev.LicenceUsageRecorded)
    assert same_shipment(first, again) and same_shipment(again, first)


@pytest.mark.parametrize("detail", sorted(USAGE_DETAILS))
def test_a_usage_differing_in_one_detail_is_not_the_same_shipment(detail: str) -> None:
    ledger = Ledgerless()
    first = ledger.event(f.usage())
    other = ledger.event(f.usage(**{detail: USAGE_DETAILS[detail]}))
    assert isinstance(first, ev.LicenceUsageRecorded)
    assert isinstance(other, ev.LicenceUsageRecorded)
    assert not same_shipment(first, other)
    assert not same_shipment(other, first)


@pytest.mark.parametrize("change", ["LicenceAmended", "LicenceSuspended", "LicenceWithdrawn"])
def test_a_change_to_a_licence_never_granted_is_refused_naming_its_id(change: str) -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world()[:3])
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event(change))
    assert (caught.value.rule, caught.value.field) == ("unknown-reference", "entity_id")
    assert caught.value.message == "licence 'GL-1' was never granted"


def test_a_change_effective_before_the_licence_starts_names_its_first_day() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence_event("LicenceSuspended", effective_at="2025-11-20"))
    assert (caught.value.rule, caught.value.field) == ("licence-not-yet-valid", "effective_at")
    assert caught.value.message == "licence 'GL-1' is valid only from 2025-12-02"


def test_a_licence_naming_an_end_user_twice_is_refused() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world()[:3])
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.licence(end_users=["buyer", "buyer"]))
    assert (caught.value.rule, caught.value.field) == ("duplicate-end-user", "end_users")
    assert caught.value.message == "an end user appears twice"


def test_a_suspended_licence_is_reinstated_and_active_again() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world(), f.licence_event("LicenceSuspended"))
    assert licence_state(ledger).status_at(JAN_20) == "suspended"
    ledger.append(f.licence_event("LicenceReinstated"))
    assert licence_state(ledger).status_at(dt.datetime(2026, 2, 2, tzinfo=dt.UTC)) == "active"


def test_an_amendment_keeps_an_end_user_whose_vetting_lapsed_since_the_grant() -> None:
    """An end user the licence already names is not vetted again: 'buyer', vetted until
    2026-01-01, stays on a licence amended in March to add a newly vetted end user."""
    ledger = Ledgerless()
    ledger.append(
        f.exporter(),
        f.party("buyer"),
        f.vetted("buyer", valid_until="2026-01-01"),
        f.licence(),
        f.party("buyer2"),
        f.vetted("buyer2"),
    )
    ledger.append(
        f.licence_event(
            "LicenceAmended", items=None, end_users=["buyer", "buyer2"], effective_at="2026-03-01"
        )
    )
    assert licence_state(ledger).end_users == ("buyer", "buyer2")


def test_a_refused_shipment_names_what_remains_as_the_cap_in_force_at_its_time_reads() -> None:
    """An amendment in March restates the cap as 1000.0 kg (the same quantity): a February
    shipment over what remains is refused with the remainder of the cap in force in
    February, as that cap was written: "900 kg", not "900.0 kg"."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    ledger.append(f.usage(quantity="100", effective_at="2026-01-10"))
    restated = [{"item": "1C902.a", "cap": "1000.0", "unit": "kg"}]
    ledger.append(f.licence_event("LicenceAmended", items=restated, effective_at="2026-03-01"))
    with pytest.raises(RuleViolation) as caught:
        ledger.append(f.usage(shipment="S-2", quantity="950", effective_at="2026-02-01"))
    assert (caught.value.rule, caught.value.field, caught.value.message) == (
        "usage-exceeds-cap",
        "quantity",
        "quantity 950 kg of '1C902.a' exceeds the remaining 900 kg (cap 1000)",
    )


def test_an_amendment_replaces_the_destinations_and_the_items_keeping_what_was_used() -> None:
    """After 100 kg shipped, an amendment to ship to FR (not DE) and to add an item: the
    licensed item keeps its 100 kg used, the new one starts at nothing used, in its unit."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    ledger.append(f.usage(quantity="100", effective_at="2026-01-10"))
    items = [
        {"item": "1C902.a", "cap": "1000", "unit": "kg"},
        {"item": "1C902.b", "cap": "50", "unit": "t"},
    ]
    ledger.append(
        f.licence_event(
            "LicenceAmended", items=items, destinations=["FR"], effective_at="2026-02-01"
        )
    )
    state = licence_state(ledger)
    assert state.destinations == ("FR",)
    assert [(i.item, i.cap, i.unit, i.used) for i in state.licensed_items()] == [
        ("1C902.a", Decimal(1000), "kg", Decimal(100)),
        ("1C902.b", Decimal(50), "t", Decimal(0)),
    ]


def test_the_first_end_of_a_licence_stands_when_a_backdated_one_arrives_later() -> None:
    """Withdrawn on 1 April, then a surrender dated 1 March recorded: the licence was
    surrendered on 1 March and never withdrawn."""
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    ledger.append(f.licence_event("LicenceWithdrawn", effective_at="2026-04-01"))
    ledger.append(f.licence_event("LicenceSurrendered", effective_at="2026-03-01"))
    state = licence_state(ledger)
    assert state.surrendered_at == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert state.withdrawn_at is None
