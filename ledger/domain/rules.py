"""Invariants: what cannot be a fact.  Pure functions over state, no I/O.

The ledger records facts and rejects only what cannot be one (DESIGN.md): unknown
references, impossible values, transitions that cannot happen, duplicates.  A rule is
checked against the ledger's *current* knowledge of the entities involved, as of the new
event's effective time.  Conflicts that arise from knowledge recorded later are accepted
and reported by projections as findings.

``check(event, facts)`` raises ``RuleViolation(rule, message, field=...)``; each rule has a
stable kebab-case name that tests and operators can rely on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol, TypeVar

from ledger import events as ev
from ledger.domain import state as st
from ledger.errors import RuleViolation
from ledger.times import add_months, short

GENERAL_LICENCE_MAX_MONTHS = 36
SINGLE_LICENCE_MAX_MONTHS = 12

NOUN = {
    "agreement": ("agreement", "reached"),
    "commitment": ("commitment", "pledged"),
    "measure": ("measure", "published"),
    "party": ("party", "registered"),
    "licence": ("licence", "granted"),
    "application": ("application", "submitted"),
}


class Facts(Protocol):
    """What the rules may ask of the ledger: current knowledge of entities."""

    def events(self, kind: str, entity_id: str) -> Sequence[ev.Event]:
        """Every event recorded for the entity (recorded order), retractions included."""
        ...

    def state(self, kind: str, entity_id: str, as_of: dt.datetime | None) -> st.State | None:
        """The entity's state as of ``as_of`` (None: all effective times), known now."""
        ...


S = TypeVar("S")


def _day(t: dt.datetime | None) -> str:
    return short(t)


def _require(facts: Facts, kind: str, entity_id: str, field: str, cls: type[S]) -> S:
    state = facts.state(kind, entity_id, None)
    if state is None:
        noun, verb = NOUN[kind]
        raise RuleViolation(
            "unknown-reference", f"{noun} '{entity_id}' was never {verb}", field=field
        )
    assert isinstance(state, cls)
    return state


def _window(start: dt.datetime, end: dt.datetime | None, field: str) -> None:
    if end is not None and end <= start:
        raise RuleViolation(
            "window-ends-before-start",
            f"ends at {_day(end)}, not after its start {_day(start)}",
            field=field,
        )


MAX_QUANTITY = Decimal(10) ** 15
QUANTITY_DECIMALS = 9


def check_quantity(value: Decimal, field: str) -> None:
    """A quantity the ledger can record: positive, below 10^15, at most 9 decimal places
    (``ledger check`` asks it of a request too, so it refuses what ``apply`` would)."""
    # Echoed in plain decimal notation (1e3 reads back as 1000, not Decimal's 1E+3).
    if not value.is_finite() or value <= 0:
        raise RuleViolation(
            "positive-quantity", f"must be greater than 0, got {value:f}", field=field
        )
    # Bounded so that caps and the sums of shipments stay exact in decimal arithmetic
    # (24 significant digits at most, within the default 28-digit context).
    exponent = value.as_tuple().exponent
    if value >= MAX_QUANTITY or (isinstance(exponent, int) and exponent < -QUANTITY_DECIMALS):
        raise RuleViolation(
            "quantity-precision",
            f"{value:f} is out of range: quantities are below 10^15 with at most "
            f"{QUANTITY_DECIMALS} decimal places",
            field=field,
        )


# --- per-type checks --------------------------------------------------------------------


def _agreement_extended(e: ev.AgreementExtended, facts: Facts) -> None:
    agreement = _require(facts, "agreement", e.entity_id, "entity_id", st.AgreementState)
    if agreement.valid_until is not None and e.valid_until <= agreement.valid_until:
        raise RuleViolation(
            "extension-must-extend",
            f"{_day(e.valid_until)} does not extend the current end {_day(agreement.valid_until)}",
            field="valid_until",
        )


def _commitment_pledged(e: ev.CommitmentPledged, facts: Facts) -> None:
    agreement = _require(facts, "agreement", e.agreement_id, "agreement_id", st.AgreementState)
    if e.obligor == e.beneficiary:
        raise RuleViolation(
            "obligor-is-beneficiary",
            f"obligor and beneficiary are both {e.obligor}",
            field="beneficiary",
        )
    for name in ("obligor", "beneficiary"):
        party = getattr(e, name)
        if party not in agreement.parties:
            raise RuleViolation(
                "party-not-in-agreement",
                f"{party} is not a party to agreement '{e.agreement_id}' "
                f"({', '.join(agreement.parties)})",
                field=name,
            )
    for i, party in enumerate(e.asserted_by):
        if party not in agreement.parties:
            raise RuleViolation(
                "party-not-in-agreement",
                f"{party} is not a party to agreement '{e.agreement_id}'",
                field=f"asserted_by[{i}]",
            )
    for i, other in enumerate(e.reciprocates):
        field = f"reciprocates[{i}]"
        if other == e.entity_id:
            raise RuleViolation(
                "reciprocates-itself", "a commitment cannot reciprocate itself", field=field
            )
        _require(facts, "commitment", other, field, st.CommitmentState)


def _commitment_acknowledged(e: ev.CommitmentAcknowledged, facts: Facts) -> None:
    c = _require(facts, "commitment", e.entity_id, "entity_id", st.CommitmentState)
    if e.party != c.obligor:
        raise RuleViolation(
            "acknowledged-by-obligor",
            f"only the obligor {c.obligor} can acknowledge its own pledge, not {e.party}",
            field="party",
        )
    if c.obligor in c.asserted_by or c.acknowledged_at is not None:
        raise RuleViolation(
            "already-acknowledged",
            f"commitment '{e.entity_id}' is already asserted or acknowledged by {c.obligor}",
            field="entity_id",
        )


def _commitment_implemented(e: ev.CommitmentImplemented, facts: Facts) -> None:
    _require(facts, "commitment", e.entity_id, "entity_id", st.CommitmentState)
    _window(e.effective_at, e.in_force_until, "in_force_until")


def _commitment_ended(e: ev.CommitmentReversed | ev.CommitmentLapsed, facts: Facts) -> None:
    _require(facts, "commitment", e.entity_id, "entity_id", st.CommitmentState)
    c = facts.state("commitment", e.entity_id, e.effective_at)
    if not isinstance(c, st.CommitmentState):
        raise RuleViolation(
            "not-yet-pledged",
            f"commitment '{e.entity_id}' is not pledged until after {_day(e.effective_at)}",
            field="effective_at",
        )
    status = c.status_at(e.effective_at)
    if status in ("reversed", "lapsed"):
        raise RuleViolation(
            "already-ended",
            f"commitment '{e.entity_id}' already {status} on {_day(c.ended_at)}",
            field="entity_id",
        )
    if isinstance(e, ev.CommitmentLapsed) and status in ("implemented", "partially-implemented"):
        raise RuleViolation(
            "lapse-while-implemented",
            f"commitment '{e.entity_id}' is {status} on {_day(e.effective_at)}; "
            "record a reversal instead",
            field="effective_at",
        )


def _measure_published(e: ev.MeasurePublished, facts: Facts) -> None:
    seen: set[str] = set()
    for i, clause in enumerate(e.clauses):
        if clause.clause_id in seen:
            raise RuleViolation(
                "duplicate-clause",
                f"clause '{clause.clause_id}' appears twice",
                field=f"clauses[{i}].clause_id",
            )
        seen.add(clause.clause_id)


def _clause(facts: Facts, e: ev.Event, clause_id: str, field: str) -> st.ClauseState:
    measure = _require(facts, "measure", e.entity_id, "entity_id", st.MeasureState)
    clause = measure.clauses.get(clause_id)
    if clause is None:
        raise RuleViolation(
            "unknown-reference",
            f"measure '{e.entity_id}' has no clause '{clause_id}' "
            f"(clauses: {', '.join(measure.clauses)})",
            field=field,
        )
    return clause


def _clause_suspended(e: ev.ClauseSuspended, facts: Facts) -> None:
    clause = _clause(facts, e, e.clause_id, "clause_id")
    _window(e.effective_at, e.until, "until")
    if clause.revoked_at is not None and clause.revoked_at <= e.effective_at:
        raise RuleViolation(
            "clause-revoked",
            f"clause '{e.clause_id}' was revoked on {_day(clause.revoked_at)}",
            field="clause_id",
        )
    for existing in clause.suspensions:
        if existing.overlaps(e.effective_at, e.until):
            end = _day(existing.end) if existing.end else "open-ended"
            raise RuleViolation(
                "overlapping-suspension",
                f"clause '{e.clause_id}' is already suspended from {_day(existing.start)} "
                f"to {end} (event {existing.event_id}); windows of one clause cannot overlap",
                field="effective_at",
            )


def _suspension_ended(e: ev.SuspensionEnded, facts: Facts) -> None:
    clause = _clause(facts, e, e.clause_id, "clause_id")
    if clause.suspension_at(e.effective_at) is None:
        raise RuleViolation(
            "no-suspension-in-force",
            f"clause '{e.clause_id}' is not suspended on {_day(e.effective_at)}",
            field="effective_at",
        )


def _measure_revoked(e: ev.MeasureRevoked, facts: Facts) -> None:
    measure = _require(facts, "measure", e.entity_id, "entity_id", st.MeasureState)
    targets = e.clause_ids or tuple(measure.clauses)
    for i, clause_id in enumerate(e.clause_ids):
        _clause(facts, e, clause_id, f"clause_ids[{i}]")
    live = [c for c in targets if measure.clauses[c].revoked_at is None]
    if not live:
        raise RuleViolation(
            "already-revoked",
            f"{'clauses ' + ', '.join(targets) if e.clause_ids else 'every clause'} of "
            f"measure '{e.entity_id}' already revoked",
            field="clause_ids",
        )


def _party_vetted(e: ev.PartyVetted, facts: Facts) -> None:
    _require(facts, "party", e.entity_id, "entity_id", st.PartyState)
    _window(e.effective_at, e.valid_until, "valid_until")


def _party_listed(e: ev.PartyListed, facts: Facts) -> None:
    _require(facts, "party", e.entity_id, "entity_id", st.PartyState)
    party = facts.state("party", e.entity_id, e.effective_at)
    if isinstance(party, st.PartyState) and e.list_name in party.listings:
        since = party.listings[e.list_name].listed_at
        raise RuleViolation(
            "already-listed",
            f"party '{e.entity_id}' is already on '{e.list_name}' since {_day(since)}",
            field="list_name",
        )


def _party_delisted(e: ev.PartyDelisted, facts: Facts) -> None:
    _require(facts, "party", e.entity_id, "entity_id", st.PartyState)
    party = facts.state("party", e.entity_id, e.effective_at)
    if not isinstance(party, st.PartyState) or e.list_name not in party.listings:
        raise RuleViolation(
            "not-listed",
            f"party '{e.entity_id}' is not on '{e.list_name}' on {_day(e.effective_at)}",
            field="list_name",
        )


def _party_exists(e: ev.Event, facts: Facts) -> None:
    _require(facts, "party", e.entity_id, "entity_id", st.PartyState)


def _check_end_users(facts: Facts, end_users: Sequence[str], at: dt.datetime, field: str) -> None:
    for i, party_id in enumerate(end_users):
        name = f"{field}[{i}]"
        _require(facts, "party", party_id, name, st.PartyState)
        party = facts.state("party", party_id, at)
        if not isinstance(party, st.PartyState):
            raise RuleViolation(
                "end-user-not-vetted",
                f"end user '{party_id}' is not registered on {_day(at)}",
                field=name,
            )
        if party.is_military():
            raise RuleViolation(
                "end-user-military",
                f"end user '{party_id}' is listed or classified as military on {_day(at)}",
                field=name,
            )
        vetting = party.vetting_at(at)
        if vetting != "approved":
            detail = {
                "not-vetted": "has never been vetted",
                "rejected": "was rejected at vetting",
                "expired": f"vetting expired on {_day(party.vetting_until)}",
            }[vetting]
            raise RuleViolation(
                "end-user-not-vetted",
                f"end user '{party_id}' is not vetted-approved on {_day(at)} ({detail})",
                field=name,
            )


def _check_validity(licence_type: str, start: dt.datetime, until: dt.datetime) -> None:
    _window(start, until, "valid_until")
    months = GENERAL_LICENCE_MAX_MONTHS if licence_type == "general" else SINGLE_LICENCE_MAX_MONTHS
    limit = add_months(start, months)
    if until > limit:
        raise RuleViolation(
            f"{licence_type}-licence-max-{months}-months",
            f"a {licence_type} licence may be valid for at most {months} months: "
            f"valid from {_day(start)}, so until {_day(limit)} at the latest, not {_day(until)}",
            field="valid_until",
        )


def _check_items(items: Sequence[ev.LicenceItem], field: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.item in seen:
            raise RuleViolation(
                "duplicate-item", f"item '{item.item}' appears twice", field=f"{field}[{i}].item"
            )
        seen.add(item.item)
        check_quantity(item.cap, f"{field}[{i}].cap")


def _single_end_user(licence_type: str, end_users: Sequence[str]) -> None:
    if licence_type == "single" and len(end_users) != 1:
        raise RuleViolation(
            "single-licence-one-end-user",
            f"a single licence names exactly one end user, got {len(end_users)}",
            field="end_users",
        )


def _licence_granted(e: ev.LicenceGranted, facts: Facts) -> None:
    _check_validity(e.licence_type, e.effective_at, e.valid_until)
    _single_end_user(e.licence_type, e.end_users)
    if len(set(e.end_users)) != len(e.end_users):
        raise RuleViolation("duplicate-end-user", "an end user appears twice", field="end_users")
    _check_items(e.items, "items")
    _require(facts, "party", e.exporter, "exporter", st.PartyState)
    _check_end_users(facts, e.end_users, e.effective_at, "end_users")


def _licence_at(facts: Facts, e: ev.Event, whole: st.LicenceState | None = None) -> st.LicenceState:
    if whole is None:
        whole = _require(facts, "licence", e.entity_id, "entity_id", st.LicenceState)
    licence = facts.state("licence", e.entity_id, e.effective_at)
    if not isinstance(licence, st.LicenceState):
        raise RuleViolation(
            "licence-not-yet-valid",
            f"licence '{e.entity_id}' is valid only from {_day(whole.valid_from)}",
            field="effective_at",
        )
    return licence


def _not_terminated(licence: st.LicenceState, e: ev.Event) -> None:
    if licence.withdrawn_at is not None:
        raise RuleViolation(
            "licence-withdrawn",
            f"licence '{licence.licence_id}' was withdrawn on {_day(licence.withdrawn_at)}",
            field="entity_id",
        )
    if licence.surrendered_at is not None:
        raise RuleViolation(
            "licence-surrendered",
            f"licence '{licence.licence_id}' was surrendered on {_day(licence.surrendered_at)}",
            field="entity_id",
        )


def _licence_amended(e: ev.LicenceAmended, facts: Facts) -> None:
    licence = _licence_at(facts, e)
    _not_terminated(licence, e)
    if e.valid_until is None and e.end_users is None and e.items is None and e.destinations is None:
        raise RuleViolation(
            "empty-amendment",
            "an amendment changes at least one of valid_until, end_users, items, destinations",
            field="valid_until",
        )
    if e.valid_until is not None:
        _check_validity(licence.licence_type, licence.valid_from, e.valid_until)
    if e.end_users is not None:
        _single_end_user(licence.licence_type, e.end_users)
        added = [u for u in e.end_users if u not in licence.end_users]
        _check_end_users(facts, added, e.effective_at, "end_users")
    if e.destinations is not None and not e.destinations:
        raise RuleViolation("no-destination", "a licence needs a destination", field="destinations")
    if e.items is not None:
        if not e.items:
            raise RuleViolation("no-item", "a licence needs an item", field="items")
        _check_items(e.items, "items")
        whole = facts.state("licence", e.entity_id, None)
        assert isinstance(whole, st.LicenceState)
        for i, item in enumerate(e.items):
            used = whole.items[item.item].used if item.item in whole.items else Decimal(0)
            if item.cap < used:
                raise RuleViolation(
                    "cap-below-usage",
                    f"cap {item.cap} {item.unit} of '{item.item}' is below the {used} "
                    "already shipped",
                    field=f"items[{i}].cap",
                )


def _licence_suspended(e: ev.LicenceSuspended, facts: Facts) -> None:
    licence = _licence_at(facts, e)
    _not_terminated(licence, e)
    _window(e.effective_at, e.until, "until")
    status = licence.status_at(e.effective_at)
    if status == "suspended":
        raise RuleViolation(
            "already-suspended",
            f"licence '{e.entity_id}' is already suspended since {_day(licence.suspended_from)}",
            field="effective_at",
        )
    if status == "expired":
        raise RuleViolation(
            "licence-expired",
            f"licence '{e.entity_id}' expired on {_day(licence.valid_until)}",
            field="effective_at",
        )


def _licence_reinstated(e: ev.LicenceReinstated, facts: Facts) -> None:
    licence = _licence_at(facts, e)
    _not_terminated(licence, e)
    if not licence.is_suspended_at(e.effective_at):
        raise RuleViolation(
            "not-suspended",
            f"licence '{e.entity_id}' is not suspended on {_day(e.effective_at)}",
            field="effective_at",
        )


def _licence_terminated(e: ev.LicenceWithdrawn | ev.LicenceSurrendered, facts: Facts) -> None:
    licence = _licence_at(facts, e)
    _not_terminated(licence, e)


def same_shipment(a: ev.LicenceUsageRecorded, b: ev.LicenceUsageRecorded) -> bool:
    """Two usage records describe the same shipment (idempotent re-recording)."""
    return (
        a.shipment_id == b.shipment_id
        and a.item == b.item
        and a.quantity == b.quantity
        and a.end_user == b.end_user
        and a.destination == b.destination
        and a.effective_at == b.effective_at
    )


def _usage_recorded(e: ev.LicenceUsageRecorded, facts: Facts) -> None:
    whole = _require(facts, "licence", e.entity_id, "entity_id", st.LicenceState)
    previous = whole.shipments.get(e.shipment_id)
    if previous is not None:
        raise RuleViolation(
            "duplicate-shipment",
            f"shipment '{e.shipment_id}' is already recorded on licence '{e.entity_id}' "
            f"(event {previous.event_id}) with different details",
            field="shipment_id",
        )
    check_quantity(e.quantity, "quantity")
    licence = _licence_at(facts, e, whole)
    status = licence.status_at(e.effective_at)
    if status != "active":
        when = {
            "withdrawn": licence.withdrawn_at,
            "surrendered": licence.surrendered_at,
            "expired": licence.valid_until,
            "suspended": licence.suspended_from,
        }.get(status)
        since = f" since {_day(when)}" if when else ""
        raise RuleViolation(
            f"licence-{status}",
            f"licence '{e.entity_id}' is {status}{since}; no shipment on "
            f"{_day(e.effective_at)} can be recorded under it",
            field="effective_at",
        )
    item = licence.items.get(e.item)
    if item is None:
        raise RuleViolation(
            "item-not-licensed",
            f"licence '{e.entity_id}' does not cover '{e.item}' "
            f"(covers: {', '.join(licence.items)})",
            field="item",
        )
    if e.end_user not in licence.end_users:
        raise RuleViolation(
            "end-user-not-licensed",
            f"licence '{e.entity_id}' does not name end user '{e.end_user}'",
            field="end_user",
        )
    if e.destination not in licence.destinations:
        raise RuleViolation(
            "destination-not-licensed",
            f"licence '{e.entity_id}' does not cover destination {e.destination}",
            field="destination",
        )
    # Caps deplete over the licence's whole life: check both the state at the shipment
    # and the total including shipments recorded with later effective times.
    remaining = min(
        item.remaining, whole.items[e.item].remaining if e.item in whole.items else item.remaining
    )
    if e.quantity > remaining:
        raise RuleViolation(
            "usage-exceeds-cap",
            f"quantity {e.quantity} {item.unit} of '{e.item}' exceeds the remaining "
            f"{remaining} {item.unit} (cap {item.cap})",
            field="quantity",
        )


def _application_submitted(e: ev.ApplicationSubmitted, facts: Facts) -> None:
    check_quantity(e.quantity, "quantity")
    _require(facts, "party", e.exporter, "exporter", st.PartyState)
    _require(facts, "party", e.end_user, "end_user", st.PartyState)
    if e.licence_id is not None:
        _require(facts, "licence", e.licence_id, "licence_id", st.LicenceState)


def _application_decided(e: ev.ApplicationDecided, facts: Facts) -> None:
    application = _require(facts, "application", e.entity_id, "entity_id", st.ApplicationState)
    if application.decision is not None:
        raise RuleViolation(
            "already-decided",
            f"application '{e.entity_id}' was decided on "
            f"{_day(application.decision.effective_at)} ({application.decision.outcome})",
            field="entity_id",
        )
    if e.licence_id is not None:
        _require(facts, "licence", e.licence_id, "licence_id", st.LicenceState)


def _retracted(e: ev.EventRetracted, facts: Facts) -> None:
    history = facts.events(e.entity_kind, e.entity_id)
    target = next((x for x in history if x.event_id == e.retracted_event_id), None)
    if target is None:
        raise RuleViolation(
            "unknown-reference",
            f"no event {e.retracted_event_id} on {e.entity_kind} '{e.entity_id}'",
            field="retracted_event_id",
        )
    if isinstance(target, ev.EventRetracted):
        raise RuleViolation(
            "cannot-retract-retraction",
            "a retraction cannot be retracted; append the corrected fact instead",
            field="retracted_event_id",
        )
    for x in history:
        if isinstance(x, ev.EventRetracted) and x.retracted_event_id == e.retracted_event_id:
            raise RuleViolation(
                "already-retracted",
                f"event {e.retracted_event_id} was already retracted (event {x.event_id})",
                field="retracted_event_id",
            )


_CHECKS: dict[type[ev.Event], Callable[..., None]] = {
    ev.AgreementExtended: _agreement_extended,
    ev.CommitmentPledged: _commitment_pledged,
    ev.CommitmentAcknowledged: _commitment_acknowledged,
    ev.CommitmentImplemented: _commitment_implemented,
    ev.CommitmentReversed: _commitment_ended,
    ev.CommitmentLapsed: _commitment_ended,
    ev.MeasurePublished: _measure_published,
    ev.ClauseSuspended: _clause_suspended,
    ev.SuspensionEnded: _suspension_ended,
    ev.MeasureRevoked: _measure_revoked,
    ev.PartyVetted: _party_vetted,
    ev.PartyClassified: _party_exists,
    ev.PartyListed: _party_listed,
    ev.PartyDelisted: _party_delisted,
    ev.LicenceGranted: _licence_granted,
    ev.LicenceAmended: _licence_amended,
    ev.LicenceSuspended: _licence_suspended,
    ev.LicenceReinstated: _licence_reinstated,
    ev.LicenceWithdrawn: _licence_terminated,
    ev.LicenceSurrendered: _licence_terminated,
    ev.LicenceUsageRecorded: _usage_recorded,
    ev.ApplicationSubmitted: _application_submitted,
    ev.ApplicationDecided: _application_decided,
    ev.EventRetracted: _retracted,
}


def check(e: ev.Event, facts: Facts) -> None:
    """Raise ``RuleViolation`` if ``e`` cannot be a fact given what the ledger knows."""
    if e.NEEDS_SOURCE and not e.sources:
        raise RuleViolation(
            "source-required",
            f"{e.type} is a fact about the world and must cite at least one source",
            field="sources",
        )
    if e.CREATES:
        existing = facts.state(e.entity_kind, e.entity_id, None)
        if existing is not None:
            noun, verb = NOUN[e.entity_kind]
            raise RuleViolation(
                "duplicate-entity",
                f"{noun} '{e.entity_id}' was already {verb}; use a new id or amend it",
                field="entity_id",
            )
    elif type(e) is not ev.EventRetracted and e.entity_kind != "licence":
        _not_before_creation(e, facts)  # (licences say "licence-not-yet-valid" themselves)
    checker = _CHECKS.get(type(e))
    if checker is not None:
        checker(e, facts)


def _not_before_creation(e: ev.Event, facts: Facts) -> None:
    """An event cannot take effect on an entity before the entity came to be: the fold
    would have nothing to apply it to."""
    if facts.state(e.entity_kind, e.entity_id, None) is None:
        return  # unknown entity: the type's own check names the reference
    if facts.state(e.entity_kind, e.entity_id, e.effective_at) is not None:
        return
    created = min(
        (x.effective_at for x in st.visible(facts.events(e.entity_kind, e.entity_id)) if x.CREATES),
        default=None,
    )
    noun, verb = NOUN[e.entity_kind]
    raise RuleViolation(
        "before-creation",
        f"{noun} '{e.entity_id}' was {verb} with effect from {_day(created)}; "
        f"this event cannot take effect before that ({_day(e.effective_at)})",
        field="effective_at",
    )
