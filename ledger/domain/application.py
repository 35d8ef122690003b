"""Export applications: state, fold step and rules.  The decision itself is taken by
``ledger.projections.decisions`` against the measures, parties and licences in force."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from ledger import events as ev
from ledger.domain.facts import Check, Facts, day, require
from ledger.domain.licence import LicenceState
from ledger.domain.party import PartyState
from ledger.domain.quantities import check_quantity
from ledger.domain.visibility import visible
from ledger.errors import RuleViolation


@dataclass
class ApplicationState:
    application_id: str
    submitted: ev.ApplicationSubmitted
    decision: ev.ApplicationDecided | None = None
    event_ids: list[UUID] = field(default_factory=list)

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.ApplicationDecided):
            self.decision = e


def new_application(e: ev.ApplicationSubmitted) -> ApplicationState:
    return ApplicationState(application_id=e.entity_id, submitted=e, event_ids=[e.event_id])


def _registered_by(facts: Facts, e: ev.ApplicationSubmitted, party_id: str, field: str) -> None:
    """An application names parties registered by its date: before that the ledger knows
    nothing of them there (docs/views.md: `apply` records nothing, `unknown-reference`)."""
    require(facts, "party", party_id, field, PartyState)
    if facts.state("party", party_id, e.effective_at) is not None:
        return
    registered = min(
        (x.effective_at for x in visible(facts.events("party", party_id)) if x.CREATES),
        default=None,
    )
    raise RuleViolation(
        "unknown-reference",
        f"party '{party_id}' was registered with effect from {day(registered)}, after the "
        f"application's date ({day(e.effective_at)})",
        field=field,
    )


def _application_submitted(e: ev.ApplicationSubmitted, facts: Facts) -> None:
    check_quantity(e.quantity, "quantity")
    _registered_by(facts, e, e.exporter, "exporter")
    _registered_by(facts, e, e.end_user, "end_user")
    if e.licence_id is not None:
        require(facts, "licence", e.licence_id, "licence_id", LicenceState)


def _application_decided(e: ev.ApplicationDecided, facts: Facts) -> None:
    application = require(facts, "application", e.entity_id, "entity_id", ApplicationState)
    if application.decision is not None:
        raise RuleViolation(
            "already-decided",
            f"application '{e.entity_id}' was decided on "
            f"{day(application.decision.effective_at)} ({application.decision.outcome})",
            field="entity_id",
        )
    if e.licence_id is not None:
        require(facts, "licence", e.licence_id, "licence_id", LicenceState)


CHECKS: dict[type[ev.Event], Check] = {
    ev.ApplicationSubmitted: _application_submitted,
    ev.ApplicationDecided: _application_decided,
}
