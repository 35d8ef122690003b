"""Invariants: what cannot be a fact.  Pure functions over state, no I/O.

``check(event, facts)`` raises ``RuleViolation(rule, message, field=...)``; each rule
has a stable kebab-case name that tests and operators can rely on.  The rules of each
entity's events live with its state (the ``CHECKS`` of ``commitment``, ``measure``,
``party``, ``licence``, ``application``); here are the rules every event obeys (a cited
source, no second creation, nothing before its entity's creation) and retractions.
"""

from __future__ import annotations

from uuid import UUID

from ledger import events as ev
from ledger.domain import application, claim, commitment, licence, measure, party
from ledger.domain.facts import NOUN, Check, Facts, day
from ledger.domain.visibility import visible
from ledger.errors import RuleViolation

__all__ = ["Facts", "check"]


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


CHECKS: dict[type[ev.Event], Check] = {
    **commitment.CHECKS,
    **measure.CHECKS,
    **party.CHECKS,
    **licence.CHECKS,
    **application.CHECKS,
    **claim.CHECKS,
    ev.EventRetracted: _retracted,
}


def check(e: ev.Event, facts: Facts) -> UUID | None:
    """Raise ``RuleViolation`` if ``e`` cannot be a fact given what the ledger knows.

    The id of the recorded event ``e`` only repeats (a shipment recorded again with the
    same details, ``licence.recorded_shipment``: nothing to append), else None."""
    if type(e) is ev.LicenceUsageRecorded:
        repeated = licence.recorded_shipment(e, facts)
        if repeated is not None:
            return repeated
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
    checker = CHECKS.get(type(e))
    if checker is not None:
        checker(e, facts)
    return None


def _not_before_creation(e: ev.Event, facts: Facts) -> None:
    """An event cannot take effect on an entity before the entity came to be: the fold
    would have nothing to apply it to."""
    if facts.state(e.entity_kind, e.entity_id, None) is None:
        return  # unknown entity: the type's own check names the reference
    if facts.state(e.entity_kind, e.entity_id, e.effective_at) is not None:
        return
    created = min(
        (x.effective_at for x in visible(facts.events(e.entity_kind, e.entity_id)) if x.CREATES),
        default=None,
    )
    noun, verb = NOUN[e.entity_kind]
    raise RuleViolation(
        "before-creation",
        f"{noun} '{e.entity_id}' was {verb} with effect from {day(created)}; "
        f"this event cannot take effect before that ({day(e.effective_at)})",
        field="effective_at",
    )
