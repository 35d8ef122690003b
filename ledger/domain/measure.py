"""Measures (control rules) and their clauses: state, fold step, rules, and when a
clause applies to an export.

A clause is in force from its effective time unless suspended (windows that may begin
before it takes effect, end on their own or by ``SuspensionEnded``) or revoked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from ledger import events as ev
from ledger.domain.facts import Check, Facts, day, require, window
from ledger.domain.items import item_matches
from ledger.errors import RuleViolation
from ledger.times import through_text


@dataclass
class Suspension:
    event_id: UUID
    start: dt.datetime
    until: dt.datetime | None
    instrument: str
    ended_at: dt.datetime | None = None
    ended_event_id: UUID | None = None

    @property
    def end(self) -> dt.datetime | None:
        """Exclusive end of the window (None: open-ended)."""
        ends = [x for x in (self.until, self.ended_at) if x is not None]
        return min(ends) if ends else None

    def covers(self, t: dt.datetime) -> bool:
        end = self.end
        return self.start <= t and (end is None or t < end)

    def overlaps(self, start: dt.datetime, until: dt.datetime | None) -> bool:
        end = self.end
        return (end is None or start < end) and (until is None or self.start < until)


@dataclass
class ClauseState:
    clause: ev.Clause
    suspensions: list[Suspension] = field(default_factory=list)
    revoked_at: dt.datetime | None = None
    revoked_event_id: UUID | None = None

    def suspension_at(self, t: dt.datetime) -> Suspension | None:
        for s in self.suspensions:
            if s.covers(t):
                return s
        return None

    def status_at(self, t: dt.datetime) -> str:
        """in-force | suspended | not-yet-effective | revoked."""
        if self.revoked_at is not None and self.revoked_at <= t:
            return "revoked"
        if self.suspension_at(t) is not None:
            return "suspended"
        if t < self.clause.effective_at:
            return "not-yet-effective"
        return "in-force"


@dataclass
class MeasureState:
    measure_id: str
    issuer: str
    title: str
    instrument: str
    published_at: dt.datetime
    clauses: dict[str, ClauseState]
    event_ids: list[UUID] = field(default_factory=list)

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.ClauseSuspended):
            clause = self.clauses.get(e.clause_id)
            if clause is not None:
                clause.suspensions.append(
                    Suspension(e.event_id, e.effective_at, e.until, e.instrument)
                )
        elif isinstance(e, ev.SuspensionEnded):
            clause = self.clauses.get(e.clause_id)
            if clause is not None:
                current = clause.suspension_at(e.effective_at)
                if current is not None:
                    current.ended_at = e.effective_at
                    current.ended_event_id = e.event_id
        elif isinstance(e, ev.MeasureRevoked):
            for clause_id in e.clause_ids or tuple(self.clauses):
                clause = self.clauses.get(clause_id)
                if clause is not None and clause.revoked_at is None:
                    clause.revoked_at = e.effective_at
                    clause.revoked_event_id = e.event_id


def new_measure(e: ev.MeasurePublished) -> MeasureState:
    return MeasureState(
        measure_id=e.entity_id,
        issuer=e.issuer,
        title=e.title,
        instrument=e.instrument,
        published_at=e.effective_at,
        clauses={c.clause_id: ClauseState(c) for c in e.clauses},
        event_ids=[e.event_id],
    )


# --- which exports a clause applies to --------------------------------------------------


class ClauseScope(Protocol):
    """What a clause matches (``ev.Clause`` and the views' clause record both have it)."""

    @property
    def items(self) -> tuple[str, ...]: ...
    @property
    def destinations(self) -> tuple[str, ...]: ...
    @property
    def end_user_classes(self) -> tuple[str, ...]: ...


def clause_applies(clause: ClauseScope, item: str, destination: str, end_user_class: str) -> bool:
    """The clause matches the export: its item patterns cover the item (see
    ``ledger.domain.items``), its destinations include the destination and its end-user
    classes the end user's; an empty list matches everything."""
    return (
        (not clause.items or any(item_matches(p, item) for p in clause.items))
        and (not clause.destinations or destination in clause.destinations)
        and (not clause.end_user_classes or end_user_class in clause.end_user_classes)
    )


# --- rules ------------------------------------------------------------------------------


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


def _clause(facts: Facts, e: ev.Event, clause_id: str, field: str) -> ClauseState:
    measure = require(facts, "measure", e.entity_id, "entity_id", MeasureState)
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
    window(e.effective_at, e.until, "until")
    if clause.revoked_at is not None and clause.revoked_at <= e.effective_at:
        raise RuleViolation(
            "clause-revoked",
            f"clause '{e.clause_id}' was revoked on {day(clause.revoked_at)}",
            field="clause_id",
        )
    for existing in clause.suspensions:
        if existing.overlaps(e.effective_at, e.until):
            raise RuleViolation(
                "overlapping-suspension",
                f"clause '{e.clause_id}' is already suspended from {day(existing.start)} "
                f"{through_text(existing.end)} (event {existing.event_id}); windows of one "
                "clause cannot overlap",
                field="effective_at",
            )


def _suspension_ended(e: ev.SuspensionEnded, facts: Facts) -> None:
    clause = _clause(facts, e, e.clause_id, "clause_id")
    if clause.suspension_at(e.effective_at) is None:
        raise RuleViolation(
            "no-suspension-in-force",
            f"clause '{e.clause_id}' is not suspended on {day(e.effective_at)}",
            field="effective_at",
        )


def _measure_revoked(e: ev.MeasureRevoked, facts: Facts) -> None:
    measure = require(facts, "measure", e.entity_id, "entity_id", MeasureState)
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


CHECKS: dict[type[ev.Event], Check] = {
    ev.MeasurePublished: _measure_published,
    ev.ClauseSuspended: _clause_suspended,
    ev.SuspensionEnded: _suspension_ended,
    ev.MeasureRevoked: _measure_revoked,
}
