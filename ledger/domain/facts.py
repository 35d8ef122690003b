"""What the rules may ask of the ledger, and the checks every entity's rules share.

The ledger records facts and rejects only what cannot be one: unknown references,
impossible values, transitions that cannot happen, duplicates.  A rule is checked
against the ledger's *current* knowledge of the entities involved (``Facts``), as of the
new event's effective time.  Each entity module (``licence``, ``party``, ``measure``,
``commitment``, ``application``) holds the rules of its events in a ``CHECKS`` table;
``ledger.domain.rules.check`` dispatches to them.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ledger import events as ev
from ledger.errors import RuleViolation
from ledger.times import end_text, short

if TYPE_CHECKING:
    from ledger.domain.state import State

NOUN = {
    "agreement": ("agreement", "reached"),
    "commitment": ("commitment", "pledged"),
    "measure": ("measure", "published"),
    "party": ("party", "registered"),
    "licence": ("licence", "granted"),
    "application": ("application", "submitted"),
    "claim": ("claim", "reported"),
}


class Facts(Protocol):
    """What the rules may ask of the ledger: current knowledge of entities."""

    def events(self, kind: str, entity_id: str) -> Sequence[ev.Event]:
        """Every event recorded for the entity (recorded order), retractions included."""
        ...

    def state(self, kind: str, entity_id: str, as_of: dt.datetime | None) -> State | None:
        """The entity's state as of ``as_of`` (None: all effective times), known now."""
        ...

    def shipment(self, licence_id: str, shipment_id: str) -> ev.LicenceUsageRecorded | None:
        """The usage event recording ``shipment_id`` in the licence's state over all
        effective times, known now (None: no such shipment)."""
        ...


Check = Callable[[Any, Facts], None]
"""A rule for one event type: raises ``RuleViolation`` if the event cannot be a fact."""

S = TypeVar("S")


def day(t: dt.datetime | None) -> str:
    return short(t)


def require(facts: Facts, kind: str, entity_id: str, field: str, cls: type[S]) -> S:
    """The entity's state over all effective times; ``unknown-reference`` if it was never
    created."""
    state = facts.state(kind, entity_id, None)
    if state is None:
        noun, verb = NOUN[kind]
        raise RuleViolation(
            "unknown-reference", f"{noun} '{entity_id}' was never {verb}", field=field
        )
    assert isinstance(state, cls)
    return state


def window(start: dt.datetime, end: dt.datetime | None, field: str) -> None:
    """An exclusive end must come after its start."""
    if end is not None and end <= start:
        raise RuleViolation(
            "window-ends-before-start",
            f"ends at {end_text(end)}, not after its start {day(start)}",
            field=field,
        )


_SHARED_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
SHARED_NAMES_MAX = 4096
"""How many distinct tuples ``shared_names`` keeps (countries, roles: a few dozen)."""


def shared(value: str) -> str:
    """One string object for every state holding this value (``sys.intern``).  A state
    holds what its events carried, each decoded afresh: a working set of 20,000 parties
    held "DE", "end-user" and "approved" 20,000 times each (~50 bytes a copy)."""
    return sys.intern(value)


def shared_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """``shared`` for a tuple of few distinct values (roles, destinations): one tuple
    object per distinct value, up to ``SHARED_NAMES_MAX`` of them."""
    found = _SHARED_NAMES.get(values)
    if found is not None:
        return found
    names = tuple(sys.intern(v) for v in values)
    if len(_SHARED_NAMES) < SHARED_NAMES_MAX:
        _SHARED_NAMES[names] = names
    return names
