"""The fold: an entity's events, in effective order, into its state.  Pure (no I/O).

Each entity kind's state, fold step and rules live in its own module
(``commitment`` (with agreements), ``measure``, ``party``, ``licence``, ``application``);
``visibility.visible()`` picks the events an observer at (as_of, known_at) can see.
Statuses that move with time alone (a licence expiring, a suspension running out, a
commitment falling overdue) are derived by ``status_at(t)`` rather than stored, so one
fold answers any ``t`` at or after the last event folded.

The command side (invariants) and the read side (projections) share these folds.  The
state classes are importable from here too (``state.LicenceState``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ledger import events as ev
from ledger.domain.application import ApplicationState, new_application
from ledger.domain.claim import ClaimState, new_claim
from ledger.domain.commitment import (
    AgreementState,
    CommitmentState,
    Implementation,
    new_agreement,
    new_commitment,
)
from ledger.domain.licence import ItemState, LicenceState, new_licence
from ledger.domain.measure import ClauseState, MeasureState, Suspension, new_measure
from ledger.domain.party import Listing, PartyState, new_party
from ledger.domain.visibility import retracted_ids, visible

__all__ = [
    "AgreementState",
    "ApplicationState",
    "ClaimState",
    "ClauseState",
    "CommitmentState",
    "Implementation",
    "ItemState",
    "LicenceState",
    "Listing",
    "MeasureState",
    "PartyState",
    "State",
    "Suspension",
    "evolve",
    "fold",
    "retracted_ids",
    "start",
    "state_at",
    "visible",
]

State = (
    AgreementState
    | CommitmentState
    | MeasureState
    | PartyState
    | LicenceState
    | ApplicationState
    | ClaimState
)

CREATORS: dict[type[ev.Event], Callable[[Any], State]] = {
    ev.AgreementReached: new_agreement,
    ev.CommitmentPledged: new_commitment,
    ev.MeasurePublished: new_measure,
    ev.PartyRegistered: new_party,
    ev.LicenceGranted: new_licence,
    ev.ApplicationSubmitted: new_application,
    ev.ClaimReported: new_claim,
}


def start(e: ev.Event) -> State | None:
    """The state an entity's creating event brings into being (None for other events)."""
    creator = CREATORS.get(type(e))
    return creator(e) if creator is not None else None


def evolve(state: State | None, e: ev.Event) -> State | None:
    """One step of the fold.  Events before the creating event are ignored (a late
    creation is then replayed in effective order by ``fold``)."""
    if state is None:
        return start(e)
    if type(e) in CREATORS:
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
