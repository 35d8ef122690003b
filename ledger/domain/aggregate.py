"""The aggregate: one entity's recorded events with cached folds, and the working set of
entities one append checks its events against.  Pure (no I/O): the application hands
``Workspace`` a loader for the stored events.

``Entity`` is the eventsourcing library's mutable aggregate for the ledger (``id``,
``version``); ``project_entity`` is the projector function its ``Repository`` uses to
reconstruct one.  Entity keys are ``kind:id`` (``licence:GL-1``).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

import msgspec

from ledger import events as ev
from ledger.domain import state as st
from ledger.domain.facts import Facts

LATER_EVENTS_REPLAYED = 64
"""A licence event effective before this many or fewer later-effective events is folded
onto a copy of the state just before it; with more, the entity is refolded."""


class Entity:
    """Every event recorded for one entity, in recorded order, with cached folds.

    The cached fold is the entity's state as currently known, over all effective times.
    It advances incrementally while events arrive in effective order (the common case) and
    is recomputed after a retraction or an event backdated before much of the history.

    A second fold, the *cursor*, holds the state as of an earlier effective time and moves
    forward with the questions asked of it.  So a batch of shipments effective before a
    later-effective event (a suspension scheduled ahead, say) costs one step each instead
    of a refold each: the state as of each shipment is the cursor, and the whole state is
    a copy of the cursor with the few later events folded in again.

    An entity loaded from a snapshot (``from_snapshot``) starts from the snapshot's state
    over all effective times instead of its events.  It answers what that state answers
    (the state as of any time at or after its latest effective time, shipments by id
    through the store's index) and folds events that arrive in effective order; anything
    else (an earlier effective time, a retraction, the events themselves) first loads the
    history the snapshot stands for, and from then on it is an entity like any other.
    """

    __slots__ = (
        "_current",
        "_cursor",
        "_cursor_at",
        "_cursor_pos",
        "_events",
        "_max_effective",
        "_seen",
        "_shipments",
        "_snapshot",
        "_stale",
        "id",
        "version",
    )

    def __init__(self, entity_key: str, events: list[ev.Event] | None = None, version: int = 0):
        self.id = entity_key
        self.version = version
        self._events: list[ev.Event] = events or []
        self._snapshot: _FromSnapshot | None = None
        self._current: st.State | None = None
        self._max_effective: dt.datetime | None = None
        self._stale = True
        self._seen: list[ev.Event] = []
        """The visible events in effective order (equal times in recorded order)."""
        self._cursor: st.State | None = None
        self._cursor_at: dt.datetime | None = None
        """The cursor is the fold of ``_seen[:_cursor_pos]``: every event effective at or
        before ``_cursor_at`` (None: no cursor)."""
        self._cursor_pos = 0
        self._shipments: dict[str, ev.LicenceUsageRecorded] | None = None
        """A licence's folded shipments by id (built on the first question; from a
        snapshot: those folded since, the rest are in the store's index)."""

    @classmethod
    def from_snapshot(
        cls,
        entity_key: str,
        version: int,
        state: st.State,
        max_effective: dt.datetime,
        history: Callable[[], list[ev.Event]],
        shipments: ShipmentLookup,
    ) -> Entity:
        """The entity at ``version`` from its snapshot: ``state`` over all effective times,
        whose latest event takes effect at ``max_effective``.  ``history`` reads the events
        up to ``version`` (only if needed); ``shipments`` finds shipments among them."""
        entity = cls(entity_key, version=version)
        entity._snapshot = _FromSnapshot(version, history, shipments)
        entity._current = state
        entity._max_effective = max_effective
        entity._stale = False
        entity._shipments = {}
        return entity

    @property
    def from_snapshot_still(self) -> bool:
        """Loaded from a snapshot and not (yet) from its events."""
        return self._snapshot is not None

    @property
    def snapshot_version(self) -> int | None:
        """The version of the snapshot it was loaded from (None: loaded from its events,
        or from its events since)."""
        return None if self._snapshot is None else self._snapshot.version

    @property
    def events_held(self) -> int:
        """How many events it holds in memory (without loading a snapshot's history)."""
        snapshot = self._snapshot
        return len(self._events) if snapshot is None else len(snapshot.added)

    @property
    def events(self) -> list[ev.Event]:
        """Every event of the entity, in recorded order (retractions included)."""
        if self._snapshot is not None:
            self._load_history()
        return self._events

    def _load_history(self) -> None:
        """From a snapshot to the events it stands for, plus those added since."""
        snapshot = self._snapshot
        assert snapshot is not None
        self._snapshot = None
        self._events = snapshot.history() + snapshot.added
        self._stale = True

    def add(self, event: ev.Event) -> None:
        snapshot = self._snapshot
        if snapshot is not None:
            assert self._max_effective is not None
            if isinstance(event, ev.EventRetracted) or event.effective_at < self._max_effective:
                self._load_history()
            else:
                snapshot.added.append(event)
                self.version += 1
                self._current = st.evolve(self._current, event)
                self._max_effective = event.effective_at
                if type(event) is ev.LicenceUsageRecorded and self._shipments is not None:
                    self._shipments[event.shipment_id] = event
                return
        self._events.append(event)
        self.version += 1
        if self._stale or isinstance(event, ev.EventRetracted):
            self._stale = True
        elif self._max_effective is None or event.effective_at >= self._max_effective:
            folded = self._current is not None
            self._current = st.evolve(self._current, event)
            self._max_effective = event.effective_at
            self._seen.append(event)
            if folded and self._shipments is not None and type(event) is ev.LicenceUsageRecorded:
                self._shipments[event.shipment_id] = event
        else:
            self._add_before_later_events(event)

    def _add_before_later_events(self, event: ev.Event) -> None:
        at = event.effective_at
        if not isinstance(self._current, st.LicenceState):
            self._stale = True  # other kinds have few events: a refold is cheap
            return
        bisect.insort_right(self._seen, event, key=_effective)
        # The cursor, moved to the new event (the last at its time) or started over if it
        # was already past it.
        before = self._advance(at)
        later = self._seen[self._cursor_pos :]
        if not isinstance(before, st.LicenceState) or len(later) > LATER_EVENTS_REPLAYED:
            self._stale = True
            return
        whole: st.State | None = before.copy()
        for e in later:
            whole = st.evolve(whole, e)
        self._current = whole
        if self._shipments is not None and type(event) is ev.LicenceUsageRecorded:
            self._shipments[event.shipment_id] = event  # folded: the state before it exists

    def _advance(self, as_of: dt.datetime) -> st.State | None:
        """The cursor moved to ``as_of`` (from scratch if it is already past it)."""
        if self._cursor_at is None or as_of < self._cursor_at:
            self._cursor, self._cursor_pos = None, 0
        state, pos, seen = self._cursor, self._cursor_pos, self._seen
        while pos < len(seen) and seen[pos].effective_at <= as_of:
            state = st.evolve(state, seen[pos])
            pos += 1
        self._cursor, self._cursor_pos, self._cursor_at = state, pos, as_of
        return state

    def _refresh(self) -> None:
        if self._stale:
            self._seen = st.visible(self._events)
            self._current = st.fold(self._seen)
            self._max_effective = self._seen[-1].effective_at if self._seen else None
            self._cursor_at = None
            self._shipments = None
            self._stale = False

    def shipment(self, shipment_id: str) -> ev.LicenceUsageRecorded | None:
        """The usage event recording ``shipment_id`` in the state over all effective times."""
        snapshot = self._snapshot
        if snapshot is not None:
            assert self._shipments is not None
            found = self._shipments.get(shipment_id)
            if found is not None:
                return found
            if shipment_id not in snapshot.stored:
                self.expect_shipments([shipment_id])
            return snapshot.stored[shipment_id]
        if self._stale:
            self._refresh()
        if self._shipments is None:
            self._shipments = _folded_shipments(self._seen)
        return self._shipments.get(shipment_id)

    def expect_shipments(self, shipment_ids: Iterable[str]) -> None:
        """Look these shipment ids up at once (an entity from a snapshot asks the store;
        others know their shipments)."""
        snapshot = self._snapshot
        if snapshot is None:
            return
        wanted = [s for s in dict.fromkeys(shipment_ids) if s not in snapshot.stored]
        if wanted:
            self.shipments_found(wanted, snapshot.shipments(wanted))

    def shipments_found(
        self, shipment_ids: Iterable[str], found: Mapping[str, ev.LicenceUsageRecorded]
    ) -> None:
        """What the store's index holds for these shipment ids among the snapshot's events
        (``found``: those it holds), looked up by the loader with the snapshot itself, so
        that ``shipment`` asks the store nothing more for them."""
        snapshot = self._snapshot
        if snapshot is not None:
            for s in shipment_ids:
                snapshot.stored[s] = found.get(s)

    def state(self, as_of: dt.datetime | None = None) -> st.State | None:
        """The state as of ``as_of`` (None: over all effective times).

        Read it, do not keep it: a state as of an earlier time is the cursor, which the
        next question about this entity moves on.
        """
        if (
            self._snapshot is not None
            and as_of is not None
            and self._max_effective is not None
            and as_of < self._max_effective
        ):
            self._load_history()  # the snapshot knows only the state over all times
        if self._stale:
            self._refresh()
        if as_of is None or self._max_effective is None or as_of >= self._max_effective:
            return self._current
        return self._advance(as_of)

    @property
    def max_effective(self) -> dt.datetime | None:
        """The latest effective time among the visible events (None: none)."""
        if self._stale:
            self._refresh()
        return self._max_effective


class _FromSnapshot:
    """What an entity loaded from a snapshot keeps until it needs its events."""

    __slots__ = ("added", "history", "shipments", "stored", "version")

    def __init__(
        self, version: int, history: Callable[[], list[ev.Event]], shipments: ShipmentLookup
    ):
        self.version = version
        self.history = history
        self.shipments = shipments
        self.stored: dict[str, ev.LicenceUsageRecorded | None] = {}
        """Shipment ids looked up in the store, and what was found."""
        self.added: list[ev.Event] = []
        """Events folded in since the snapshot (in recorded order)."""


ShipmentLookup = Callable[[Sequence[str]], Mapping[str, ev.LicenceUsageRecorded]]
"""Finds shipments among a snapshot's events: those of these ids the state folded."""


def _effective(e: ev.Event) -> dt.datetime:
    return e.effective_at


def _folded_shipments(seen: Sequence[ev.Event]) -> dict[str, ev.LicenceUsageRecorded]:
    """The usage events the fold of ``seen`` applies (those after the creating event), by
    shipment id."""
    out: dict[str, ev.LicenceUsageRecorded] = {}
    created = False
    for e in seen:
        if not created:
            created = type(e) in st.CREATORS
        elif type(e) is ev.LicenceUsageRecorded:
            out[e.shipment_id] = e
    return out


class RecordedEvent(Protocol):
    """An event in its entity's stream, as the library's repository hands it over."""

    @property
    def originator_id(self) -> str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def event(self) -> ev.Event: ...


def project_entity(entity: Entity | None, recorded: Iterable[RecordedEvent]) -> Entity | None:
    """Projector function for the library's repository."""
    for r in recorded:
        if entity is None:
            entity = Entity(r.originator_id)
        entity.add(r.event)
        entity.version = r.originator_version
    return entity


def entity_key(kind: str, entity_id: str) -> str:
    return f"{kind}:{entity_id}"


# Fields naming other entities: (field, entity kind, holds a sequence of ids).
_REFERENCE_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("exporter", "party", False),
    ("end_user", "party", False),
    ("end_users", "party", True),
    ("agreement_id", "agreement", False),
    ("reciprocates", "commitment", True),
    ("licence_id", "licence", False),
)
_references_of_type: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def references(e: ev.Event) -> list[str]:
    """Entity keys an event's rules may consult (for prefetching)."""
    keys = [f"{e.entity_kind}:{e.entity_id}"]
    fields = _references_of_type.get(type(e))
    if fields is None:
        names = {f.name for f in msgspec.structs.fields(type(e))}
        fields = _references_of_type[type(e)] = tuple(
            spec for spec in _REFERENCE_FIELDS if spec[0] in names
        )
    for name, kind, many in fields:
        value = getattr(e, name)
        if many:
            keys.extend(f"{kind}:{v}" for v in value or ())
        elif isinstance(value, str):
            keys.append(f"{kind}:{value}")
    return keys


Loader = Callable[[list[str]], Mapping[str, Iterable[RecordedEvent]]]
"""Reads the stored events of many entities at once (each in version order; an
unknown key may be missing)."""


class Loaded(NamedTuple):
    """What a ``SnapshotLoader`` read."""

    from_snapshots: Mapping[str, Entity]
    """The entities with a usable snapshot (``Entity.from_snapshot``, brought up to date)."""
    events: Mapping[str, Iterable[RecordedEvent]] | None
    """The stored events of the others (an unknown key may be missing), read with the
    snapshots; None: not read (the ``Loader`` reads them)."""


SnapshotLoader = Callable[[list[str], Mapping[str, Sequence[str]]], Loaded]
"""Loads those of many entities that have a usable snapshot, and possibly the others'
events too (one read instead of two: on PostgreSQL an append's cost is mostly round
trips).  The second argument: licence key -> the shipment ids the append will ask about;
the loader may look them up with the snapshot (``Entity.shipments_found``)."""


class Workspace(Facts):
    """The entities one append touches, loaded once and advanced as events are accepted.

    ``load`` reads stored entities (the application's event store); a workspace over
    ``lambda keys: {}`` starts from an empty ledger (the unit tests' facts).
    """

    def __init__(self, load: Loader, snapshots: SnapshotLoader | None = None):
        self._load = load
        self._snapshots = snapshots
        self.entities: dict[str, Entity] = {}

    def prefetch(
        self, keys: Iterable[str], *, shipments: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """Load these entities (those not loaded yet) at once.  ``shipments``: licence key
        -> shipment ids the caller will ask about (a hint: the snapshot loader may look
        them up in the same read)."""
        missing = [k for k in dict.fromkeys(keys) if k not in self.entities]
        if not missing:
            return
        found: Mapping[str, Iterable[RecordedEvent]] | None = None
        if self._snapshots is not None:
            loaded = self._snapshots(missing, shipments or {})
            self.entities.update(loaded.from_snapshots)
            missing = [k for k in missing if k not in self.entities]
            if not missing:
                return
            found = loaded.events
        if found is None:
            found = self._load(missing)
        for key in missing:
            entity = Entity(key)
            for recorded in found.get(key, ()):
                entity.add(recorded.event)
                entity.version = recorded.originator_version
            self.entities[key] = entity

    def entity(self, kind: str, entity_id: str) -> Entity:
        key = f"{kind}:{entity_id}"
        entity = self.entities.get(key)
        if entity is None:
            self.prefetch([key])
            entity = self.entities[key]
        return entity

    def events(self, kind: str, entity_id: str) -> Sequence[ev.Event]:
        return self.entity(kind, entity_id).events

    def state(self, kind: str, entity_id: str, as_of: dt.datetime | None) -> st.State | None:
        entity = self.entities.get(f"{kind}:{entity_id}") or self.entity(kind, entity_id)
        return entity.state(as_of)

    def shipment(self, licence_id: str, shipment_id: str) -> ev.LicenceUsageRecorded | None:
        return self.entity("licence", licence_id).shipment(shipment_id)

    def add(self, e: ev.Event) -> Entity:
        """Fold an accepted event into its entity; returns the entity."""
        entity = self.entities.get(f"{e.entity_kind}:{e.entity_id}") or self.entity(
            e.entity_kind, e.entity_id
        )
        entity.add(e)
        return entity
