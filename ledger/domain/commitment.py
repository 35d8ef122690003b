"""Agreements and the commitments pledged under them: state, fold step and rules.

A commitment is pledged, implemented (fully or partly, over a window), then possibly
reversed or lapsed; overdue is derived from its due date by ``status_at``.  A pledge
asserted only by the other side, never acknowledged by the obligor, is *unilateral*.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from uuid import UUID

from ledger import events as ev
from ledger.domain.facts import Check, Facts, day, require, window
from ledger.errors import RuleViolation
from ledger.times import through_text

# --- agreements -------------------------------------------------------------------------


@dataclass
class AgreementState:
    agreement_id: str
    title: str
    parties: tuple[str, ...]
    reached_at: dt.datetime
    valid_until: dt.datetime | None
    extendable: bool
    event_ids: list[UUID] = field(default_factory=list)

    def status_at(self, t: dt.datetime) -> str:
        if t < self.reached_at:
            return "not-yet-reached"
        if self.valid_until is not None and t >= self.valid_until:
            return "expired"
        return "in-force"

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.AgreementExtended):
            self.valid_until = e.valid_until


def new_agreement(e: ev.AgreementReached) -> AgreementState:
    return AgreementState(
        agreement_id=e.entity_id,
        title=e.title,
        parties=e.parties,
        reached_at=e.effective_at,
        valid_until=e.valid_until,
        extendable=e.extendable,
        event_ids=[e.event_id],
    )


# --- commitments ------------------------------------------------------------------------


@dataclass
class Implementation:
    event_id: UUID
    at: dt.datetime
    extent: str
    instrument: str
    until: dt.datetime | None

    def in_force_at(self, t: dt.datetime) -> bool:
        return self.at <= t and (self.until is None or t < self.until)


@dataclass
class CommitmentState:
    commitment_id: str
    agreement_id: str
    obligor: str
    beneficiary: str
    asserted_by: tuple[str, ...]
    category: str
    description: str
    due_by: dt.datetime | None
    reciprocates: tuple[str, ...]
    pledged_at: dt.datetime
    pledge_event_id: UUID
    acknowledged_at: dt.datetime | None = None
    implementations: list[Implementation] = field(default_factory=list)
    ended_at: dt.datetime | None = None
    """When the pledge was reversed or lapsed."""
    end_kind: str | None = None
    """'reversed' or 'lapsed'."""
    end_event_id: UUID | None = None
    event_ids: list[UUID] = field(default_factory=list)

    @property
    def unilateral(self) -> bool:
        """Asserted only by the other side and never acknowledged by the obligor."""
        return self.obligor not in self.asserted_by and self.acknowledged_at is None

    def _undone(self, impl: Implementation, t: dt.datetime) -> bool:
        """An implementation is undone at t by a reversal/lapse after it and at/before t."""
        return self.ended_at is not None and impl.at <= self.ended_at <= t

    def current_implementation(self, t: dt.datetime) -> Implementation | None:
        """The latest implementation in force at t and not undone by then."""
        live = [i for i in self.implementations if i.in_force_at(t) and not self._undone(i, t)]
        return live[-1] if live else None

    def first_implemented_at(self) -> dt.datetime | None:
        return self.implementations[0].at if self.implementations else None

    def status_at(self, t: dt.datetime) -> str:
        """pledged | overdue | implemented | partially-implemented | implementation-ended |
        reversed | lapsed."""
        current = self.current_implementation(t)
        if current is not None:
            return "implemented" if current.extent == "full" else "partially-implemented"
        if self.end_kind is not None and self.ended_at is not None and self.ended_at <= t:
            return self.end_kind
        if any(i.at <= t for i in self.implementations):
            return "implementation-ended"
        if self.due_by is not None and t >= self.due_by:
            return "overdue"
        return "pledged"

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.CommitmentAcknowledged):
            self.acknowledged_at = e.effective_at
        elif isinstance(e, ev.CommitmentImplemented):
            self.implementations.append(
                Implementation(e.event_id, e.effective_at, e.extent, e.instrument, e.in_force_until)
            )
        elif isinstance(e, ev.CommitmentReversed | ev.CommitmentLapsed):
            self.ended_at = e.effective_at
            self.end_kind = "reversed" if isinstance(e, ev.CommitmentReversed) else "lapsed"
            self.end_event_id = e.event_id


def new_commitment(e: ev.CommitmentPledged) -> CommitmentState:
    return CommitmentState(
        commitment_id=e.entity_id,
        agreement_id=e.agreement_id,
        obligor=e.obligor,
        beneficiary=e.beneficiary,
        asserted_by=e.asserted_by,
        category=e.category,
        description=e.description,
        due_by=e.due_by,
        reciprocates=e.reciprocates,
        pledged_at=e.effective_at,
        pledge_event_id=e.event_id,
        event_ids=[e.event_id],
    )


# --- rules ------------------------------------------------------------------------------


def _agreement_extended(e: ev.AgreementExtended, facts: Facts) -> None:
    agreement = require(facts, "agreement", e.entity_id, "entity_id", AgreementState)
    if agreement.valid_until is not None and e.valid_until <= agreement.valid_until:
        raise RuleViolation(
            "extension-must-extend",
            f"{through_text(e.valid_until)} does not extend the current end "
            f"({through_text(agreement.valid_until)})",
            field="valid_until",
        )


def _commitment_pledged(e: ev.CommitmentPledged, facts: Facts) -> None:
    agreement = require(facts, "agreement", e.agreement_id, "agreement_id", AgreementState)
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
        name = f"reciprocates[{i}]"
        if other == e.entity_id:
            raise RuleViolation(
                "reciprocates-itself", "a commitment cannot reciprocate itself", field=name
            )
        require(facts, "commitment", other, name, CommitmentState)


def _commitment_acknowledged(e: ev.CommitmentAcknowledged, facts: Facts) -> None:
    c = require(facts, "commitment", e.entity_id, "entity_id", CommitmentState)
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
    require(facts, "commitment", e.entity_id, "entity_id", CommitmentState)
    window(e.effective_at, e.in_force_until, "in_force_until")


def _commitment_ended(e: ev.CommitmentReversed | ev.CommitmentLapsed, facts: Facts) -> None:
    require(facts, "commitment", e.entity_id, "entity_id", CommitmentState)
    c = facts.state("commitment", e.entity_id, e.effective_at)
    if not isinstance(c, CommitmentState):
        raise RuleViolation(
            "not-yet-pledged",
            f"commitment '{e.entity_id}' is not pledged until after {day(e.effective_at)}",
            field="effective_at",
        )
    status = c.status_at(e.effective_at)
    if status in ("reversed", "lapsed"):
        raise RuleViolation(
            "already-ended",
            f"commitment '{e.entity_id}' already {status} on {day(c.ended_at)}",
            field="entity_id",
        )
    if isinstance(e, ev.CommitmentLapsed) and status in ("implemented", "partially-implemented"):
        raise RuleViolation(
            "lapse-while-implemented",
            f"commitment '{e.entity_id}' is {status} on {day(e.effective_at)}; "
            "record a reversal instead",
            field="effective_at",
        )


CHECKS: dict[type[ev.Event], Check] = {
    ev.AgreementExtended: _agreement_extended,
    ev.CommitmentPledged: _commitment_pledged,
    ev.CommitmentAcknowledged: _commitment_acknowledged,
    ev.CommitmentImplemented: _commitment_implemented,
    ev.CommitmentReversed: _commitment_ended,
    ev.CommitmentLapsed: _commitment_ended,
}
