"""Per-entity state as pure folds over events (no I/O).

``visible()`` picks the events an observer at (as_of, known_at) can see: recorded at or
before ``known_at``, effective at or before ``as_of``, and not retracted by a retraction
recorded at or before ``known_at``; ordered by effective time (ties: recorded order).

``fold()`` turns those events into the entity's state.  Statuses that move with time
alone (a licence expiring, a suspension running out, a commitment falling overdue) are
derived by ``status_at(t)`` rather than stored, so one fold answers any ``t`` at or after
the last event folded.

The command side (invariants) and the read side (projections) share these folds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger import events as ev

# --- visibility -------------------------------------------------------------------------


def retracted_ids(events: Iterable[ev.Event], known_at: dt.datetime | None) -> set[UUID]:
    return {
        e.retracted_event_id
        for e in events
        if type(e) is ev.EventRetracted and (known_at is None or e.recorded_at <= known_at)
    }


def visible(
    events: Sequence[ev.Event],
    as_of: dt.datetime | None = None,
    known_at: dt.datetime | None = None,
) -> list[ev.Event]:
    """The facts (not retractions) an observer at (as_of, known_at) sees, effective order."""
    gone = retracted_ids(events, known_at)
    out = [
        e
        for e in events
        if (known_at is None or e.recorded_at <= known_at)
        and (as_of is None or e.effective_at <= as_of)
        and not isinstance(e, ev.EventRetracted)
    ]
    if gone:
        out = [e for e in out if e.event_id not in gone]
    out.sort(key=_effective_key)  # stable: equal effective times keep recorded order
    return out


def _effective_key(e: ev.Event) -> dt.datetime:
    return e.effective_at


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


def _new_agreement(e: ev.AgreementReached) -> AgreementState:
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


def _new_commitment(e: ev.CommitmentPledged) -> CommitmentState:
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


# --- measures ---------------------------------------------------------------------------


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


def _new_measure(e: ev.MeasurePublished) -> MeasureState:
    return MeasureState(
        measure_id=e.entity_id,
        issuer=e.issuer,
        title=e.title,
        instrument=e.instrument,
        published_at=e.effective_at,
        clauses={c.clause_id: ClauseState(c) for c in e.clauses},
        event_ids=[e.event_id],
    )


# --- parties ----------------------------------------------------------------------------


@dataclass
class Listing:
    list_name: str
    list_kind: str
    authority: str
    listed_at: dt.datetime
    event_id: UUID


@dataclass
class PartyState:
    party_id: str
    name: str
    country: str
    roles: tuple[str, ...]
    registered_at: dt.datetime
    vetting: str | None = None
    vetting_authority: str | None = None
    vetted_at: dt.datetime | None = None
    vetting_until: dt.datetime | None = None
    vetting_event_id: UUID | None = None
    classification: str | None = None
    classification_event_id: UUID | None = None
    listings: dict[str, Listing] = field(default_factory=dict)
    event_ids: list[UUID] = field(default_factory=list)

    def vetting_at(self, t: dt.datetime) -> str:
        """approved | rejected | expired | not-vetted."""
        if self.vetting is None:
            return "not-vetted"
        if self.vetting_until is not None and t >= self.vetting_until:
            return "expired"
        return self.vetting

    def is_military(self) -> bool:
        """Classified military, or on a military end-user list."""
        return self.classification == "military" or any(
            item.list_kind == "military-end-user" for item in self.listings.values()
        )

    def end_user_class(self) -> str:
        if self.is_military():
            return "military"
        return self.classification or "civil"

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.PartyVetted):
            self.vetting = e.outcome
            self.vetting_authority = e.authority
            self.vetted_at = e.effective_at
            self.vetting_until = e.valid_until
            self.vetting_event_id = e.event_id
        elif isinstance(e, ev.PartyClassified):
            self.classification = e.classification
            self.classification_event_id = e.event_id
        elif isinstance(e, ev.PartyListed):
            self.listings[e.list_name] = Listing(
                e.list_name, e.list_kind, e.authority, e.effective_at, e.event_id
            )
        elif isinstance(e, ev.PartyDelisted):
            self.listings.pop(e.list_name, None)


def _new_party(e: ev.PartyRegistered) -> PartyState:
    return PartyState(
        party_id=e.entity_id,
        name=e.name,
        country=e.country,
        roles=e.roles,
        registered_at=e.effective_at,
        event_ids=[e.event_id],
    )


# --- licences ---------------------------------------------------------------------------


@dataclass
class ItemState:
    item: str
    cap: Decimal
    unit: str
    used: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal:
        return self.cap - self.used


@dataclass
class LicenceState:
    licence_id: str
    licence_type: str
    issuer: str
    exporter: str
    end_users: tuple[str, ...]
    items: dict[str, ItemState]
    destinations: tuple[str, ...]
    valid_from: dt.datetime
    valid_until: dt.datetime
    granted_event_id: UUID
    suspended_from: dt.datetime | None = None
    suspended_until: dt.datetime | None = None
    suspension_event_id: UUID | None = None
    withdrawn_at: dt.datetime | None = None
    surrendered_at: dt.datetime | None = None
    terminal_event_id: UUID | None = None
    shipments: dict[str, ev.LicenceUsageRecorded] = field(default_factory=dict)
    event_ids: list[UUID] = field(default_factory=list)

    def copy(self) -> LicenceState:
        """An independent copy: folding more events into it leaves this one unchanged."""
        return replace(
            self,
            items={k: ItemState(i.item, i.cap, i.unit, i.used) for k, i in self.items.items()},
            shipments=dict(self.shipments),
            event_ids=list(self.event_ids),
        )

    def is_suspended_at(self, t: dt.datetime) -> bool:
        return (
            self.suspended_from is not None
            and self.suspended_from <= t
            and (self.suspended_until is None or t < self.suspended_until)
        )

    def is_exhausted(self) -> bool:
        if self.licence_type == "single":
            return bool(self.shipments)
        for item in self.items.values():  # noqa: SIM110 - a plain loop is faster on the hot path
            if item.cap > item.used:
                return False
        return True

    def status_at(self, t: dt.datetime) -> str:
        """active | suspended | withdrawn | surrendered | expired | exhausted |
        not-yet-valid."""
        if self.withdrawn_at is not None:
            return "withdrawn"
        if self.surrendered_at is not None:
            return "surrendered"
        if t < self.valid_from:
            return "not-yet-valid"
        if t >= self.valid_until:
            return "expired"
        if self.is_suspended_at(t):
            return "suspended"
        if self.is_exhausted():
            return "exhausted"
        return "active"

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.LicenceUsageRecorded):
            self.shipments[e.shipment_id] = e
            item = self.items.get(e.item)
            if item is not None:
                item.used += e.quantity
        elif isinstance(e, ev.LicenceAmended):
            if e.valid_until is not None:
                self.valid_until = e.valid_until
            if e.end_users is not None:
                self.end_users = e.end_users
            if e.destinations is not None:
                self.destinations = e.destinations
            if e.items is not None:
                used = {k: v.used for k, v in self.items.items()}
                self.items = {
                    i.item: ItemState(i.item, i.cap, i.unit, used.get(i.item, Decimal(0)))
                    for i in e.items
                }
        elif isinstance(e, ev.LicenceSuspended):
            self.suspended_from = e.effective_at
            self.suspended_until = e.until
            self.suspension_event_id = e.event_id
        elif isinstance(e, ev.LicenceReinstated):
            self.suspended_from = None
            self.suspended_until = None
            self.suspension_event_id = None
        elif isinstance(e, ev.LicenceWithdrawn):
            self.withdrawn_at = e.effective_at
            self.terminal_event_id = e.event_id
        elif isinstance(e, ev.LicenceSurrendered):
            self.surrendered_at = e.effective_at
            self.terminal_event_id = e.event_id


def _new_licence(e: ev.LicenceGranted) -> LicenceState:
    return LicenceState(
        licence_id=e.entity_id,
        licence_type=e.licence_type,
        issuer=e.issuer,
        exporter=e.exporter,
        end_users=e.end_users,
        items={i.item: ItemState(i.item, i.cap, i.unit) for i in e.items},
        destinations=e.destinations,
        valid_from=e.effective_at,
        valid_until=e.valid_until,
        granted_event_id=e.event_id,
        event_ids=[e.event_id],
    )


# --- export applications ----------------------------------------------------------------


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


def _new_application(e: ev.ApplicationSubmitted) -> ApplicationState:
    return ApplicationState(application_id=e.entity_id, submitted=e, event_ids=[e.event_id])


# --- the fold ---------------------------------------------------------------------------

State = (
    AgreementState | CommitmentState | MeasureState | PartyState | LicenceState | ApplicationState
)

_CREATORS: dict[type[ev.Event], Any] = {
    ev.AgreementReached: _new_agreement,
    ev.CommitmentPledged: _new_commitment,
    ev.MeasurePublished: _new_measure,
    ev.PartyRegistered: _new_party,
    ev.LicenceGranted: _new_licence,
    ev.ApplicationSubmitted: _new_application,
}


def start(e: ev.Event) -> State | None:
    """The state an entity's creating event brings into being (None for other events)."""
    creator = _CREATORS.get(type(e))
    return creator(e) if creator is not None else None


def evolve(state: State | None, e: ev.Event) -> State | None:
    """One step of the fold.  Events before the creating event are ignored (a late
    creation is then replayed in effective order by ``fold``)."""
    if state is None:
        return start(e)
    if type(e) in _CREATORS:
        return state  # a second creation cannot be a fact; rules reject it at append
    state.apply(e)
    return state


def fold(events: Iterable[ev.Event]) -> State | None:
    """Fold already-visible events (effective order) into state."""
    state: State | None = None
    for e in events:
        state = evolve(state, e)
    return state


def state_at(
    events: Sequence[ev.Event],
    as_of: dt.datetime | None = None,
    known_at: dt.datetime | None = None,
) -> State | None:
    """The entity's state as of ``as_of`` as known at ``known_at`` (None: everything)."""
    return fold(visible(events, as_of, known_at))
