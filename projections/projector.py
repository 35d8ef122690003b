"""The projector: keeps the stored views current, one entity at a time.

For each event it recomputes only the entity the event belongs to:

- **in order** (the common case: the event takes effect at or after everything already
  folded for its entity, and is not a retraction) the cached fold advances by one step
  and only the entity's last row changes: it is cut at the event's effective time, the
  cut-off part is kept as history (known until the event's recorded time), and a new
  current row starts;
- **out of order** (a backdated event or a retraction) the entity's segments are
  recomputed from its events and diffed against its current rows; every row whose record
  changed is closed at the event's recorded time and replaced.

Rows created and closed within one recorded instant are never written (nobody could see
them), and batches are written in one transaction with the tracking record
(``ledger.projections.store``), so the views move from one consistent position to the next.

The projector is an eventsourcing ``Projection`` whose view is a view recorder; it takes
events one at a time (``process_event``, the library's interface) or in batches
(``process``), from the store's notification log or from NATS messages alike.

Entities are cached in memory within a budget (``LEDGER_PROJECTOR_CACHE``, see
``cache_budget``; bytes as ``entity_size`` estimates what each entity holds, recounted
after each write): after each write the least recently used entities beyond it are
evicted into the projector's spill (``ledger.store.spill``: a private temporary
file), from which it comes back, when an event needs it, exactly as it was evicted, in
one read.  An entity not in the spill (after a restart, or after another projector moved
the views, which empties it) is reloaded from the store: its events up to the position
applied so far, folded again, and its current rows (from the views), which is the same
state.  So an entity is evicted only once its rows are written: never one of the batch
whose write may still be in flight in a background writer.

With a budget, cached entities are also *slim*: they keep their fold (bounded whatever
the history: a licence counts its shipments), record and rows, but not their events,
which only an out-of-order event needs (it reads them from the store, recomputes, and
lets them go).  Its current rows, one per valid-time segment of its record, are trimmed
to the last ones as soon as its batch is handed to the store (an active licence is in
every batch; trimmed only after a write it was not in, it kept every row: 24 a licence
and ~18 KB of process memory at 100k events, 3 Dec 2026): events in effective order
change only the last row, and an event out of order reads the earlier ones back from the
views (they cannot have changed meanwhile), without waiting for the write in flight: the
rows that write has, trimmed as it was handed over, are kept aside until it is done.
An entity's size then does not grow with its history (but for what a licence's record
lists: late shipments, spans), and the cache holds a number of entities, not of events.
Without a budget (``unlimited``) entities keep their events and rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NoReturn, Protocol, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from ledger import events as ev
from ledger.config import ConfigError
from ledger.domain import state as st
from ledger.projections import records as rec
from ledger.projections.store import (
    Changes,
    CurrentRow,
    ViewsMoved,
    ViewStore,
)
from ledger.store.codec import LooseShipment, contract
from ledger.store.spill import EntitySpill
from ledger.times import to_us


class BackgroundWriter(Protocol):
    """Writes a batch's changes elsewhere while the next is folded
    (``ledger.projections.writer.ProcessWriter``)."""

    def submit(self, changes: Changes, expected: int, position: int) -> None: ...

    def wait(self) -> int | None: ...


log = logging.getLogger("ledger.projector")

HistoryLoader = Callable[[Sequence[str], int], Iterable[tuple[str, Iterable[ev.Event]]]]
"""Loads entities' events (recorded order, retractions included) up to a position: (key,
events) pairs, entities with no event left out, to be iterated to the end.  One entity's
at a time: the loader reads the next one only when asked (each may be decoded lazily).
Loading 500 entities' histories at once held them all: after a reload on a 1M-event
ledger, 150 MiB more than a rebuild's projector (3 Dec 2026)."""

CACHE_ENV = "LEDGER_PROJECTOR_CACHE"
DEFAULT_CACHE_MB = 16.0
"""The default budget, in bytes as ``entity_size`` counts them.  A 1M-event ledger has
~18,800 entities; at 16 MB ~4,100 stay in memory (about two batches' worth: a batch of
5,000 events touches ~2,200) and 57,497 evictions, 42,758 of them read back from the
spill, cost no measurable CPU against 48 MB (14.8 against 15.1 % of the raw loop's CPU
time, within the noise of runs under load).  Peak anonymous memory of the projector and
its writer process: 94 / 110 / 118 MiB at 100k / 300k / 1M events, against 95 / 114 /
152 MiB at 48 MB and 110 / 143 / 170 before the budget counted bytes (3 Dec 2026,
docs/performance.md).  12 MB: 96 / 108 / 115 MiB, ~8 % more CPU at 1M."""
ENTITY_BYTES = 2_200
"""What a cached (slim) entity costs in memory besides what its encoded bytes stand for
(``entity_size``): the entity, its fold's state, its rows' objects."""
BODY_FACTOR = 4
"""Memory per byte of an entity's encoded record bodies (its rows' and its timeline):
they are held as bytes, and each is the encoding of objects held too (the record, the
fold's lists of late shipments and spans it was built from)."""


def entity_size(entity: CachedEntity) -> int:
    """What a slim cached entity costs in memory, in bytes, from what it holds.

    Fitted on the entities of a 300k-event rebuild (3 Dec 2026: each unpickled under
    tracemalloc, 5,695 entities, ~2,200 + 4.35 x their encoded bytes; licences 4.5 KB on
    average and up to 29 KB, parties 2.8 KB) and cheap enough to count after every batch
    (two ``len`` a row)."""
    held = len(entity.timeline)
    for row in entity.rows:
        held += len(row.static)
    return ENTITY_BYTES + BODY_FACTOR * held


def cache_budget(value: str | None = None) -> int | None:
    """The cache budget in bytes from ``LEDGER_PROJECTOR_CACHE`` (or ``value``): MB as a
    number (``160``, ``0.5``; ``0`` evicts every entity after each write) or ``unlimited``
    (None).  Raises ``ConfigError`` naming the variable on anything else."""
    raw = os.environ.get(CACHE_ENV) if value is None else value
    if raw is None or not raw.strip():
        return int(DEFAULT_CACHE_MB * 1_000_000)
    text = raw.strip().lower().removesuffix("mb").strip()
    if text in ("unlimited", "none"):
        return None
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb >= 0 or mb == float("inf"):
        raise ConfigError(
            f"{CACHE_ENV}={raw!r}: expected megabytes (e.g. 16 or 0.5) or 'unlimited'"
        )
    return int(mb * 1_000_000)


class Row(msgspec.Struct, gc=False):
    """A current row of an entity, in memory (``persisted``: already in the database)."""

    id: int
    vf: int
    vt: int
    rf: int
    data_id: int
    static: bytes
    persisted: bool
    alive: bool = True
    """False once dropped from the current rows."""


@dataclass(slots=True)
class CachedEntity:
    key: str
    kind: str
    events: list[ev.Event] | None = field(default_factory=list)
    """None in a slim entity (read from the store when needed)."""
    count: int = 0
    """How many events the entity has (its size in the cache)."""
    folded: rec.Folded = field(default_factory=rec.Folded)
    max_effective: int = -rec.INFINITY
    """Greatest effective time (microseconds) of the visible events folded."""
    record: rec.Record | None = None
    """The static record of ``folded`` (None before the entity exists)."""
    rows: list[Row] = field(default_factory=list)
    trimmed: bool = False
    """``rows`` holds only the last rows (from the first that shows the last row's
    record body); the earlier ones are in the store, unchanged (``Projector._trim``)."""
    known: bool = False
    """Listed in ``views_entities`` already."""
    ref: str | None = None
    vf0: int = rec.INFINITY
    """The earliest valid time of any row this entity had (as far as this cache knows)."""
    vf0_stored: int = rec.INFINITY
    timeline_key: Any = None
    timeline: bytes = b""
    timeline_values: rec.Timeline | None = None
    """The timeline of ``folded``'s state, when known to be current."""
    size: int = 0
    """What it counts for in the cache's budget (``entity_size``, as of its last write)."""


# --- how the spill keeps an entity -------------------------------------------------------

_S = TypeVar("_S")
_R = TypeVar("_R")

_LicenceTimelineKey = tuple[
    dt.datetime,
    dt.datetime,
    dt.datetime | None,
    dt.datetime | None,
    dt.datetime | None,
    dt.datetime | None,
    bool,
]
"""``rec.timeline_key`` of a licence (None for every other state)."""


class _Spilled(msgspec.Struct, Generic[_S, _R], array_like=True, gc=False):
    """A slim ``CachedEntity`` as the spill keeps it, its fold flattened: msgspec decodes
    a dataclass only as a declared type, so there is one decoder per state type."""

    key: str
    kind: str
    count: int
    state: _S | None
    late_usage: list[rec.LateUsage]
    causes: dict[UUID, ev.AnyEvent]
    """Typed as the tagged union: as ``ev.Event``, the base class, none would decode."""
    past: rec.LicencePast | None
    max_effective: int
    record: _R | None
    rows: list[Row]
    trimmed: bool
    known: bool
    ref: str | None
    vf0: int
    vf0_stored: int
    timeline_key: _LicenceTimelineKey | None
    timeline: bytes
    timeline_values: rec.Timeline | None
    size: int


def _decoder(state: type[_S], record: type[_R]) -> Callable[[memoryview], _Spilled[_S, _R]]:
    return msgspec.json.Decoder(_Spilled[state, record]).decode  # type: ignore[valid-type]


# JSON, not msgpack: msgpack keeps a datetime as a UTC timestamp, and an event's time
# keeps the offset it was given (a record shows it).
_spill_encoder = msgspec.json.Encoder()
_SPILLED_TYPES: tuple[tuple[type[Any], type[Any]], ...] = (
    (st.LicenceState, rec.LicenceRecord),
    (st.PartyState, rec.PartyRecord),
    (st.MeasureState, rec.MeasureRecord),
    (st.CommitmentState, rec.CommitmentRecord),
    (st.AgreementState, rec.AgreementRecord),
)
_spill_decoders = [_decoder(state, record) for state, record in _SPILLED_TYPES]
_SPILL_CODES: dict[type[Any], tuple[bytes, type[Any]]] = {
    state: (bytes([code]), record) for code, (state, record) in enumerate(_SPILLED_TYPES)
}
_SPILL_CODES[type(None)] = (b"\x00", type(None))
_SPILL_PICKLED = b"\xff"


def spill_dumps(entity: CachedEntity) -> bytes:
    """An evicted entity as the spill keeps it: a byte naming its state's type, then
    ``_Spilled`` as JSON (3 Dec 2026: 16-18 µs to encode and 18 to decode a licence of
    a 1M-event rebuild, against pickle's 53-77 and 43-51; a 1M rebuild at the 16 MB default
    evicts 57,497 and reads back 42,758).  Pickled instead (a first byte 0xff) if its
    fold is not one of those types, or it keeps its events (an unbounded cache: never
    spilled)."""
    folded = entity.folded
    state = folded.state
    found = _SPILL_CODES.get(type(state))
    record = entity.record
    if (
        found is None
        or entity.events is not None
        or (record is not None and type(record) is not found[1])
        or (entity.timeline_key is not None and type(state) is not st.LicenceState)
    ):
        return _SPILL_PICKLED + pickle.dumps(entity, pickle.HIGHEST_PROTOCOL)
    return found[0] + _spill_encoder.encode(
        _Spilled(
            entity.key,
            entity.kind,
            entity.count,
            state,
            folded.late_usage,
            folded.causes,  # type: ignore[arg-type]  # each an ``ev.AnyEvent``
            folded.past,
            entity.max_effective,
            record,
            entity.rows,
            entity.trimmed,
            entity.known,
            entity.ref,
            entity.vf0,
            entity.vf0_stored,
            entity.timeline_key,
            entity.timeline,
            entity.timeline_values,
            entity.size,
        )
    )


def spill_loads(blob: bytes | memoryview) -> CachedEntity:
    """The entity ``spill_dumps`` kept, as it was."""
    code = blob[0]
    if code == _SPILL_PICKLED[0]:
        entity: CachedEntity = pickle.loads(blob[1:])
        return entity
    s = _spill_decoders[code](memoryview(blob)[1:])
    state, record = s.state, s.record
    if type(state) is st.LicenceState and type(record) is rec.LicenceRecord:
        _share(state, record, s)
    return CachedEntity(
        s.key,
        s.kind,
        None,
        s.count,
        rec.Folded(s.state, s.late_usage, s.causes, s.past),  # type: ignore[arg-type]
        s.max_effective,
        s.record,
        s.rows,
        s.trimmed,
        s.known,
        s.ref,
        s.vf0,
        s.vf0_stored,
        s.timeline_key,
        s.timeline,
        s.timeline_values,
        s.size,
    )


def _same_time(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    """Interchangeable times: equal, with the same offset (a record shows it)."""
    return a == b and (a is None or b is None or a.utcoffset() == b.utcoffset())


_SHARED_WITH_RECORD = (
    ("licence_id", "licence_id"),
    ("licence_type", "licence_type"),
    ("issuer", "issuer"),
    ("exporter", "exporter"),
    ("end_users", "end_users"),
    ("destinations", "destinations"),
    ("granted_event_id", "granted_event"),
)
"""The fields of a licence's fold (first) that hold the same value as its record's (second)."""


def _share(state: st.LicenceState, record: rec.LicenceRecord, s: _Spilled[Any, Any]) -> None:
    """One object for each value a restored licence's fold shares with its record and
    timeline key, as before it was spilled: decoded, each is a copy of its own, and a
    licence came back 4.5 KB against pickle's 4.1 (which keeps shared objects shared),
    without this 5.5 KB (3 Dec 2026, 300k-event ledger; ~10 µs of the 16 a decode took,
    itself a third of pickle's)."""
    for mine, theirs in _SHARED_WITH_RECORD:
        value = getattr(record, theirs)
        if getattr(state, mine) == value:
            setattr(state, mine, value)
    if _same_time(state.valid_from, record.valid_from):
        state.valid_from = record.valid_from
    if _same_time(state.valid_until, record.valid_until):
        state.valid_until = record.valid_until
    items = state.items
    for use in record.items:
        item = items.get(use.item)
        if item is None:
            continue
        if item.item == use.item:
            item.item = use.item
        if item.unit == use.unit:
            item.unit = use.unit
        # Equal and with the same digits (1E+6 == 1000000, shown differently).
        if item.cap == use.cap and str(item.cap) == str(use.cap):
            item.cap = use.cap
        if item.used == use.used and str(item.used) == str(use.used):
            item.used = use.used
    key = s.timeline_key
    if key is not None:
        s.timeline_key = (
            state.valid_from if _same_time(key[0], state.valid_from) else key[0],
            state.valid_until if _same_time(key[1], state.valid_until) else key[1],
            key[2],
            key[3],
            key[4],
            key[5],
            key[6],
        )


class Projector(Projection[Any]):
    """Maintains the stored views (see the module docstring)."""

    name = "views"

    def __init__(
        self,
        view: ViewStore,
        load_history: HistoryLoader,
        *,
        budget: int | Literal["env"] | None = "env",
    ):
        """``budget``: the cache's size in bytes (None: unlimited; default: from
        ``LEDGER_PROJECTOR_CACHE``, see ``cache_budget``)."""
        super().__init__(view)
        self.store = view
        self._load_history = load_history
        self.budget = cache_budget() if budget == "env" else budget
        self.slim = self.budget is not None
        self.cache: dict[str, CachedEntity] = {}
        """Least recently written first: eviction takes from the front."""
        self.cached_events = 0
        """Events of the cached entities."""
        self.cached_bytes = 0
        """The cached entities' sizes (``entity_size``), counted against the budget."""
        self.evicted = 0
        self.reloaded = 0
        """Entities evicted and entities reloaded (from the spill or the store), since the
        start."""
        self.replayed = 0
        """Of the reloaded: entities whose events were read from the store and folded
        again (not in the spill: after a restart)."""
        self._spill = EntitySpill(spill_dumps, spill_loads, what="projector spill")
        self.untrimmed = 0
        """Entities whose trimmed rows were read back (for an event out of order)."""
        self._stored = 0
        """How many entities listed in the views were not in memory since the last
        reload (after a restart, every stored entity until it is first needed; none
        through a rebuild).  While there are any, a key neither cached nor in the spill
        is looked up in the views (``ViewStore.listed``, a page's keys at once).  An
        entity evicted since is found in the spill instead: the projector keeps no set of
        every key it has seen, nor of every key stored, which grew with the ledger
        (~18,800 keys at 1M events, a few MB with their hash table, 3 Dec 2026)."""
        self._unlisted: set[str] = set()
        """Keys of the last page ``prefetch`` looked up and found unlisted (new
        entities): ``_entity`` does not look them up again, one at a time."""
        self._pending = Changes()
        self._pending_data: dict[int, tuple[int, bytes, bytes]] = {}
        """New record bodies by id, each already the row it is written as."""
        self._aside: dict[str, list[Row]] = {}
        """The rows ``_trim`` let go of when the write in flight was handed over, by
        entity, until that write is done: the store does not have them yet, or has them
        as they were before it (``_untrim``).  Each is also in that write."""
        self._deleting: set[int] = set()
        """The current rows the write in flight deletes (the store still has them)."""
        self._touched: dict[str, CachedEntity] = {}
        self.position = 0
        self._pending_position = self._submitted_position = 0
        self._recorded_at: Any = None
        self._recorded_us = 0
        self.writer: BackgroundWriter | None = None
        """Where ``flush(background=True)`` sends its writes (None: written inline)."""
        self.indexes_at: int | None = None
        """The position whose batch builds the views' deferred indexes, if they are
        missing (set by a catch-up: its target); None: the next batch builds them."""
        self._reload()

    # --- state ----------------------------------------------------------------------------

    def _reload(self) -> None:
        """Start over from what is stored (after a restart or another projector's write)."""
        self.cache.clear()
        self._spill.clear()  # what it holds may not be what is stored any more
        self.cached_events = 0
        self.cached_bytes = 0
        self._pending = Changes()
        self._pending_data.clear()
        self._touched.clear()
        self._aside.clear()
        self._deleting = set()
        self._new_rows: list[tuple[CachedEntity, Row]] = []
        self.position = self.store.position()
        self._pending_position = self._submitted_position = self.position
        counters = self.store.counters()
        self._next_data = counters.data
        self._next_current = counters.current
        self._next_history = counters.history
        self._stored = self.store.entity_count()
        self._unlisted = set()
        self._indexes_missing = self.store.indexes_missing()
        self._unloaded = self._stored
        """How many stored entities are not in memory (none, all through a rebuild)."""

    def _new_data(self, static: bytes, timeline: bytes) -> int:
        self._next_data += 1
        self._pending_data[self._next_data] = (self._next_data, static, timeline)
        return self._next_data

    def _new_row(
        self, entity: CachedEntity, vf: int, vt: int, rf: int, data_id: int, static: bytes
    ) -> Row:
        self._next_current += 1
        row = Row(self._next_current, vf, vt, rf, data_id, static, False)
        self._new_rows.append((entity, row))
        if vf < entity.vf0:
            entity.vf0 = vf
        return row

    def _entity(self, key: str, kind: str) -> CachedEntity:
        entity = self.cache.get(key)
        if entity is None:
            if key in self._spill:
                entity = self._restore([key])[key]
            elif self._stored and key not in self._unlisted and self.store.listed([key]):
                entity = self._load_one(key, kind)
            else:
                entity = CachedEntity(key, kind, None if self.slim else [])
            self.cache[key] = entity
        return entity

    def _load_one(self, key: str, kind: str) -> CachedEntity:
        entity = CachedEntity(key, kind, None if self.slim else [])
        self._load([entity])
        return entity

    def _restore(self, keys: Iterable[str]) -> dict[str, CachedEntity]:
        """Evicted entities back from the spill, as they were evicted."""
        found: dict[str, CachedEntity] = self._spill.take(keys)
        for entity in found.values():
            self.cached_events += entity.count
            self.cached_bytes += entity.size
        self._unloaded -= len(found)
        self.reloaded += len(found)
        return found
        return entity

    def _load(self, entities: list[CachedEntity]) -> None:
        keys = [e.key for e in entities]
        rows = self.store.current_rows(keys)
        self._unloaded -= len(entities)
        self.reloaded += len(entities)
        self.replayed += len(entities)
        by_key = {e.key: e for e in entities}
        # Read and decoded entity by entity: a slim entity lets its events go once
        # folded, so a reload of many holds one entity's events at a time, not all.  Up
        # to the position applied in memory: a stored entity not in memory has no event
        # after the last write that held it (evicted entities are written ones).
        for key, events in self._load_history(keys, self._pending_position):
            self._loaded(by_key.pop(key), list(events), rows)
        for entity in by_key.values():  # no event stored up to the position
            self._loaded(entity, [], rows)

    def _loaded(
        self, entity: CachedEntity, events: list[ev.Event], rows: dict[str, list[CurrentRow]]
    ) -> None:
        """An entity loaded from the store: its events folded, its stored rows."""
        entity.known = True
        self._stored -= 1
        entity.events = events
        entity.count = len(entity.events)
        self.cached_events += entity.count
        self._refold(entity)
        if self.slim:
            self._slim(entity)
        entity.ref = rec.ref_of(entity.folded.state)
        entity.rows = [
            Row(r.id, r.vf, r.vt, r.rf, r.data_id, r.static, True) for r in rows.pop(entity.key, ())
        ]
        # The stored vf0 may be earlier still (history rows): upserts keep the minimum.
        entity.vf0 = entity.vf0_stored = min((r.vf for r in entity.rows), default=rec.INFINITY)

    def prefetch(self, keys: Iterable[str]) -> None:
        """Load many uncached, stored entities at once (fewer round trips)."""
        if not self._unloaded:
            return  # ``keys`` unread: every stored entity is in memory already
        cache, spill = self.cache, self._spill.keys()
        uncached = [k for k in dict.fromkeys(keys) if k not in cache]
        restored = self._restore(k for k in uncached if k in spill)
        cache.update(restored)
        if not self._stored:
            return
        unspilled = [k for k in uncached if k not in restored]
        listed = self.store.listed(unspilled)
        self._unlisted = {k for k in unspilled if k not in listed}
        missing = [
            CachedEntity(k, k.partition(":")[0], None if self.slim else [])
            for k in unspilled
            if k in listed
        ]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            self._load(chunk)
            for entity in chunk:
                self.cache[entity.key] = entity

    # --- processing -----------------------------------------------------------------------

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        """The library's interface: one event (``Recorded`` or ``Event``), then write."""
        event = getattr(domain_event, "event", domain_event)
        self.process([(tracking.notification_id, event)])

    def process(
        self,
        items: Iterable[tuple[int, ev.Event]],
        *,
        flush: bool = True,
        upto: int | None = None,
    ) -> int:
        """Apply (position, event) pairs in position order; returns how many were new.

        Positions at or below the tracked one are skipped (already applied), which makes
        redelivery harmless.  ``upto``: the position the batch covers (it may end with
        events no view uses).
        """
        applied = 0
        for position, event in items:
            if position <= self._pending_position:
                continue
            self.apply(event)
            self._pending_position = position
            applied += 1
        if upto is not None and upto > self._pending_position:
            self._pending_position = upto
        if flush:
            self.flush()
        return applied

    def apply(self, e: ev.Event) -> None:
        kind = e.entity_kind
        if kind not in _KIND_CODE:
            return
        key = f"{kind}:{e.entity_id}"
        entity = self.cache.get(key) or self._entity(key, kind)
        entity.count += 1
        self.cached_events += 1
        self._touched[key] = entity
        # A batch's events share one recorded time: convert it once.
        recorded_at = e.recorded_at
        if recorded_at == self._recorded_at:
            recorded = self._recorded_us
        else:
            recorded = self._recorded_us = to_us(recorded_at)
            self._recorded_at = recorded_at
        start = to_us(e.effective_at)
        rows = entity.rows
        if (
            start < entity.max_effective
            or type(e) is _RETRACTION
            or (rows and (rows[-1].vf > start or rows[-1].vt != _INFINITY))
        ):
            # Out of order, or the last row does not cover [start, infinity) (rows of one
            # record can be split where knowledge of them differs): recompute from the
            # earliest effective time the event changes.
            if type(e) is _LOOSE_SHIPMENT:
                e = contract(e)
            events = entity.events
            if events is None:  # slim: every earlier event is in the store
                events = [
                    event
                    for _, history in self._load_history([key], self._pending_position)
                    for event in history
                ]
                entity.events = events
            events.append(e)
            if entity.trimmed:
                self._untrim(entity)
            since = start
            if type(e) is ev.EventRetracted:
                target = next((x for x in events if x.event_id == e.retracted_event_id), None)
                since = to_us(target.effective_at) if target is not None else -rec.INFINITY
            self._recompute(entity, recorded, since)
            if self.slim:
                self._slim(entity)
            return
        loose = type(e) is _LOOSE_SHIPMENT
        if entity.events is not None:
            if loose:
                e = contract(e)
                loose = False
            entity.events.append(e)
        folded = entity.folded
        # A shipment onto a licence whose timeline is known (so it has a record): its
        # status at the shipment read from the timeline, and one step to the next record.
        # (Read from the store it is still loose here: this step reads only its values.)
        timeline = entity.timeline_values if loose or type(e) is _SHIPMENT else None
        record: rec.Record | None
        if timeline is not None:
            status = rec.resolve(timeline, start)
            record = rec.shipped(entity.record, folded, e, status)  # type: ignore[arg-type]
        else:
            if loose:
                e = contract(e)
            folded.step(e)
            record = rec.next_record(entity.record, folded, e)
        entity.max_effective = start
        if record is None:
            return
        entity.record = record
        static = rec.encode(record)
        if rows and rows[-1].static == static:
            return
        state = folded.state
        assert state is not None
        # Of the timeline's inputs a shipment can change only whether the caps are used up
        # (the last element of a licence's timeline key).
        if (
            timeline is None
            or not isinstance(state, st.LicenceState)
            or entity.timeline_key[-1] != state.is_exhausted()
        ):
            timeline_key = rec.timeline_key(state)
            if timeline_key is None or timeline_key != entity.timeline_key:
                values = rec.timeline(state)
                entity.timeline = rec.encode(values)
                entity.timeline_key = timeline_key
                entity.timeline_values = values
        self._next_data += 1
        data_id = self._next_data
        self._pending_data[data_id] = (data_id, static, entity.timeline)
        if rows:
            tail = rows[-1]
            if tail.vf < start:
                self._close(entity, tail, start, tail.vt, recorded)
                self._truncate(tail, start)
            else:
                self._close(entity, tail, tail.vf, tail.vt, recorded)
                self._drop(entity, rows.pop(), recorded)
        rows.append(self._new_row(entity, start, rec.INFINITY, recorded, data_id, static))

    def _trim(self, entity: CachedEntity, aside: dict[str, list[Row]] | None = None) -> None:
        """Keep only the last rows of a written entity: from the first row showing the
        last row's record body (pieces of one body are dropped together, ``_drop``).
        ``aside``: where the rows let go are kept while their write is in flight."""
        rows = entity.rows
        if len(rows) < 2:
            return
        last = rows[-1].data_id
        # A plain loop: ``next()`` over a generator cost ~1 µs more a call, and this runs
        # for every entity of every batch (3 Dec 2026).
        first = 0
        while rows[first].data_id != last:
            first += 1
        if first:
            entity.rows = rows[first:]
            entity.trimmed = True
            if aside is not None:
                aside[entity.key] = rows[:first]

    def _untrim(self, entity: CachedEntity) -> None:
        """Read back the rows ``_trim`` let go (an event out of order on an entity
        written before): the stored rows before the first one in memory, which cannot
        have changed since they left memory, and the rows let go when the write in flight
        was handed over, kept aside as that write has them.  So it need not wait for
        that write: it used to, and the writer process then sat idle until the next
        batch; at 1M events 180 such waits were 5 of a rebuild's 33 s (3 Dec 2026).

        The store is read as of the last write done: rows the write in flight changes
        were in memory when it was handed over, so they are in memory or aside, and those
        it deletes are left out (``_deleting``); those it inserts are not stored yet."""
        aside = self._aside.pop(entity.key, None)
        rows = aside + entity.rows if aside else entity.rows
        start = rows[0].vf
        deleting = self._deleting
        stored = self.store.current_rows([entity.key]).get(entity.key, [])
        entity.rows = [
            current_row(r) for r in stored if r.vf < start and r.id not in deleting
        ] + rows
        entity.trimmed = False
        self.untrimmed += 1

    def _slim(self, entity: CachedEntity) -> None:
        """Let go of the entity's events (see the module docstring)."""
        entity.events = None

    def _refold(self, entity: CachedEntity) -> None:
        """Fold the entity's visible events from scratch."""
        assert entity.events is not None
        seen = st.visible(entity.events)
        entity.folded = rec.fold_visible(seen)
        entity.max_effective = to_us(seen[-1].effective_at) if seen else -rec.INFINITY
        entity.record = rec.static_record(entity.folded)
        entity.timeline_key = None
        entity.timeline_values = None

    def _recompute(self, entity: CachedEntity, recorded: int, since: int) -> None:
        """Recompute an entity's records from ``since`` on and replace the rows whose
        record changed (rows before ``since`` cannot have changed)."""
        assert entity.events is not None
        seen = st.visible(entity.events)
        segments, entity.folded = rec.fold_segments(seen, since)
        entity.max_effective = to_us(seen[-1].effective_at) if seen else -rec.INFINITY
        entity.record = rec.static_record(entity.folded)
        entity.timeline_key = None
        entity.timeline_values = None
        kept: list[Row] = []
        for row in entity.rows:
            if row.vt <= since:
                kept.append(row)
                continue
            point = max(row.vf, since)
            s = _covering(segments, point)
            end = min(s.vt, row.vt) if s is not None and s.static == row.static else point
            if end >= row.vt:
                kept.append(row)
            elif end > row.vf:
                self._close(entity, row, end, row.vt, recorded)
                self._truncate(row, end)
                kept.append(row)
            else:
                self._close(entity, row, row.vf, row.vt, recorded)
                self._drop(entity, row, recorded)
        fresh: list[Row] = []
        for s in segments:
            data_id = 0
            for start, end in _uncovered(s.vf, s.vt, kept):
                if not data_id:
                    data_id = self._new_data(s.static, s.timeline)
                fresh.append(self._new_row(entity, start, end, recorded, data_id, s.static))
        entity.rows = sorted(kept + fresh, key=lambda r: r.vf)

    def _close(self, entity: CachedEntity, row: Row, vf: int, vt: int, recorded: int) -> None:
        """Keep ``[vf, vt)`` of ``row`` as history, known from its ``rf`` until ``recorded``."""
        if row.rf >= recorded:
            return  # known for no instant: nobody could have seen it
        self._next_history += 1
        self._pending.history_insert.append(
            (
                self._next_history,
                entity.key,
                rec.KIND_CODE[entity.kind],
                vf,
                vt,
                row.rf,
                recorded,
                row.data_id,
            )
        )

    def _truncate(self, row: Row, vt: int) -> None:
        row.vt = vt
        if row.persisted:
            self._pending.current_vt.append((vt, row.id, row.vf))

    def _drop(self, entity: CachedEntity, row: Row, recorded: int) -> None:
        row.alive = False
        if row.persisted:
            self._pending.current_delete.append(row.id)
        # Dropped at the very recorded time it was created: seen by no one, it leaves no
        # history, and nothing but other current rows of this entity (pieces of the same
        # record) can show its body.  When none does, the body goes too, so views written
        # batch by batch stay identical to a rebuild's: it is not written at all if it is
        # still pending, or deleted.  (A body's rows all share one ``rf``, so none of them
        # can have left history either: a row closed at its own ``rf`` leaves none.)
        if row.rf != recorded or any(r.alive and r.data_id == row.data_id for r in entity.rows):
            return
        if self._pending_data.pop(row.data_id, None) is None:
            self._pending.data_delete.append(row.data_id)

    # --- writing --------------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        """Events applied in memory and not yet handed to the store."""
        return self._pending_position - self._submitted_position

    @property
    def applied_position(self) -> int:
        """The position up to which events are applied in memory."""
        return self._pending_position

    def flush(self, *, background: bool = False) -> None:
        """Write the pending changes and the new position in one transaction.

        ``background=True`` hands the transaction to ``self.writer`` (a process) and
        returns at once, so the next batch is applied while the database writes this one;
        the next flush, or ``wait()``, waits for it and raises its error, if any, after
        reloading.  Without a writer the transaction is written inline.
        """
        self.wait()
        if self._pending_position == self._submitted_position:
            return
        changes = self._pending
        code = rec.KIND_CODE
        changes.current_insert = [
            (
                row.id,
                entity.key,
                row.vf,
                row.vt,
                row.rf,
                row.data_id,
                code[entity.kind],
            )
            for entity, row in self._new_rows
            if row.alive
        ]
        changes.data = list(self._pending_data.values())
        # From here on the rows and entities count as written: later changes to them are
        # updates.  If the write fails, everything in memory is reloaded from what is stored.
        for _, row in self._new_rows:
            row.persisted = True
        entities, ref_of = changes.entities, rec.ref_of
        for entity in self._touched.values():
            ref = ref_of(entity.folded.state)
            # (Otherwise known already, with this ref, and vf0_stored == vf0: vf0 only
            # ever decreases, and is stored at each write.)
            if not entity.known or ref != entity.ref or entity.vf0 < entity.vf0_stored:
                entities.append((entity.key, entity.kind, ref, entity.vf0))
                entity.known = True
                entity.ref = ref
                entity.vf0_stored = entity.vf0
        expected, position = self._submitted_position, self._pending_position
        if self._indexes_missing and (self.indexes_at is None or position >= self.indexes_at):
            changes.build_indexes = True
            self._indexes_missing = False  # a failed write reloads: checked again
        self._submitted_position = position
        touched = self._touched
        self._pending = Changes()
        self._pending_data = {}
        self._touched = {}
        self._new_rows = []
        try:
            if background and self.writer is not None:
                self.writer.submit(changes, expected, position)
                self._deleting = set(changes.current_delete)
                # The batch's entities are reloadable only once its write is done.
                self._evict(touched, keep=touched, aside=True)
                return
            self.store.write(changes, expected, position)
        except BaseException as error:
            self._failed(error)
        self.position = position
        self._evict(touched, keep={})

    def defer_indexes(self, until: int) -> None:
        """Build the views' secondary indexes once, in the batch that reaches ``until``,
        instead of row by row: dropped first if the views are empty (a full rebuild),
        kept missing if a rebuild was stopped before building them."""
        if self.position == 0 and self._pending_position == 0:
            self._indexes_missing = self.store.defer_indexes()
        if self._indexes_missing:
            self.indexes_at = until

    def build_indexes(self) -> None:
        """Build the deferred indexes now if no batch has (nothing was left to write)."""
        self.indexes_at = None
        if self._indexes_missing:
            self.wait()
            self.store.build_indexes()
            self._indexes_missing = False

    def _evict(
        self, touched: dict[str, CachedEntity], keep: dict[str, CachedEntity], aside: bool = False
    ) -> None:
        """Mark the batch's entities most recently used, then evict the least recently
        used ones (not in ``keep``) until the cache fits its budget.  ``aside``: the
        batch's write is in flight (its trimmed rows are kept aside until it is done)."""
        budget = self.budget
        if budget is None:
            return
        # Handed to the store (written, or in flight: ``_untrim`` waits for it), so the
        # rows before the last ones can go.  Trimmed at once, not when the write is done:
        # an active licence is in every batch, and waiting for a batch it is not in kept
        # its every row since the start (24 rows, 8 KB of record bodies a licence at 100k
        # events, 3 Dec 2026).
        cache = self.cache
        size = self.cached_bytes
        kept = self._aside if aside else None
        for key, entity in touched.items():
            self._trim(entity, kept)
            if cache.pop(key, None) is not None:
                cache[key] = entity
                counted = entity_size(entity)
                size += counted - entity.size
                entity.size = counted
        self.cached_bytes = size
        if size <= budget:
            return
        evicted: list[CachedEntity] = []
        for key, entity in cache.items():
            if size <= budget:
                break
            if key in keep:
                break  # the rest is this batch's, in flight
            if not entity.known:
                continue  # never written (an entity with no row yet): nothing to reload
            evicted.append(entity)
            size -= entity.size
            self.cached_events -= entity.count
        self.cached_bytes = size
        self._spill.put(evicted)
        for entity in evicted:
            del cache[entity.key]
        self._unloaded += len(evicted)
        self.evicted += len(evicted)

    def wait(self) -> None:
        """Wait for a background write; after a failed one, reload and raise its error."""
        if self.writer is None:
            return
        try:
            written = self.writer.wait()
        except BaseException as error:
            self._failed(error)
        if written is not None:
            self.position = written
            self._aside.clear()  # stored now as they were kept
            self._deleting = set()

    def _failed(self, error: BaseException) -> NoReturn:
        if isinstance(error, ViewsMoved):
            # A warning, not news: the reload replays every stored entity touched from
            # then on, and two projectors writing one ledger's views (two rebuilds at
            # once) each redo the other's work; the operator should know why.  (Its
            # text, not the error: a handler keeping the record would keep the error.)
            log.warning(
                "%s (this one had written up to %d); reloading from the views as stored",
                str(error),
                self.position,
            )
        self._reload()  # the transaction rolled back: forget what was applied since
        try:
            raise error
        finally:
            # Its traceback holds this frame, and this frame the error: a cycle, freed
            # only by the cyclic collector, which a catch-up pauses.  It kept the
            # refused batch (``flush``'s frame: its changes, its entities) alive after
            # each reload: a 1M-event rebuild reloading once held ~50 MiB more to its
            # end (3 Dec 2026).
            del error


_KIND_CODE = rec.KIND_CODE
_INFINITY = rec.INFINITY
_SHIPMENT = ev.LicenceUsageRecorded
_LOOSE_SHIPMENT = LooseShipment
_RETRACTION = ev.EventRetracted
"""Read on every event: module globals, not attribute look-ups in other modules."""


def _covering(segments: Sequence[rec.Segment], t: int) -> rec.Segment | None:
    for s in segments:
        if s.vf <= t < s.vt:
            return s
    return None


def _uncovered(start: int, end: int, rows: Sequence[Row]) -> list[tuple[int, int]]:
    """Parts of ``[start, end)`` not covered by the (disjoint) rows."""
    out: list[tuple[int, int]] = []
    cursor = start
    for row in sorted(rows, key=lambda r: r.vf):
        if row.vt <= cursor or row.vf >= end:
            continue
        if row.vf > cursor:
            out.append((cursor, row.vf))
        cursor = max(cursor, row.vt)
        if cursor >= end:
            break
    if cursor < end:
        out.append((cursor, end))
    return out


def current_row(row: CurrentRow) -> Row:
    return Row(row.id, row.vf, row.vt, row.rf, row.data_id, row.static, True)
