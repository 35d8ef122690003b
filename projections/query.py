"""Answering as-of questions: from the stored views, or by folding the store's events.

``Views(app)`` gives every view at (as_of T, known_at K).  Both paths give the same
answer (the property tests check it):

- **stored**: indexed lookups in the view tables (``ledger.projections.store``);
- **fold**: the store's events visible at (T, K) (``Ledger.log``), folded per entity.

Which one: ``mode="auto"`` (the CLI default) uses the stored views when they cover K,
i.e. every event recorded at or before K has been projected.  When they are behind it
first *catches up* (runs the projector to the store's head, as ``ledger project --once``
would), and if that is impossible (a read-only database, say) it falls back to folding.
``mode="stored"`` and ``mode="fold"`` force one path.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import msgspec
from eventsourcing.persistence import PersistenceError

from ledger import events as ev
from ledger.projections import records as rec
from ledger.projections.store import ViewStore
from ledger.times import now, to_us

if TYPE_CHECKING:
    from ledger.app import Ledger

log = logging.getLogger("ledger.views")


class Resolved(msgspec.Struct, frozen=True, gc=False):
    """One entity as of T, as known at K: its record and the time-driven value at T."""

    entity_id: str
    record: Any
    dynamic: Any


TERM_TYPES = ("LicenceGranted", "LicenceAmended", "LicenceWithdrawn", "LicenceSurrendered")
"""The events that set a licence's end users and validity (``Views.licence_terms``)."""


@dataclass(frozen=True)
class Segment:
    """A record over valid time ``[valid_from, valid_to)`` (microseconds), as known at K."""

    entity_id: str
    valid_from: int
    valid_to: int
    record: Any
    timeline: rec.Timeline


class Views:
    """Every view at (as_of, known_at); see the module docstring for the two paths."""

    def __init__(
        self,
        app: Ledger,
        *,
        mode: str = "auto",
        on_catch_up: Callable[[int], None] | None = None,
    ):
        if mode not in ("auto", "stored", "fold"):
            raise ValueError(f"mode must be auto, stored or fold, not {mode!r}")
        self.app = app
        self.mode = mode
        self._store: ViewStore | None = None
        self._on_catch_up = on_catch_up
        self.source = "fold" if mode == "fold" else "stored"
        """Which path answered the last query."""

    @property
    def store(self) -> ViewStore:
        if self._store is None:
            from ledger.projections.stores import view_store

            self._store = view_store(self.app)
        return self._store

    # --- freshness ------------------------------------------------------------------------

    def covers(self, known_at: dt.datetime | None) -> bool:
        """True if every event recorded at or before ``known_at`` is in the stored views."""
        position = self.store.position()
        if position >= self.app.head():
            return True
        if known_at is None:
            return False
        for entry in self.app.log(after_position=position, order="recorded"):
            return entry.event.recorded_at > known_at
        return True

    def _use_stored(self, known_at: dt.datetime | None) -> bool:
        if self.mode == "fold":
            return False
        try:
            if self.covers(known_at):
                return True
            if self.mode == "auto":
                self.catch_up()
                return True
        except PersistenceError as exc:
            if self.mode == "stored":
                raise
            log.warning("stored views unavailable (%s); folding the events instead", exc)
            return False
        return True  # mode == "stored": answer from what is stored

    def catch_up(self) -> int:
        """Bring the stored views to the store's head; returns how many events it applied."""
        from ledger.projections.runner import catch_up, new_projector

        lag = self.app.head() - self.store.position()
        if self._on_catch_up is not None:
            self._on_catch_up(lag)
        progress = catch_up(self.app, new_projector(self.app, self.store))
        return progress.applied

    # --- records --------------------------------------------------------------------------

    def records(
        self,
        kind: str,
        as_of: dt.datetime | None,
        known_at: dt.datetime | None,
        *,
        ids: Sequence[str] | None = None,
        ref: str | None = None,
    ) -> list[Resolved]:
        """Entities of ``kind`` as of T known at K (sorted by id), optionally filtered."""
        t = as_of or now()
        if self._use_stored(known_at):
            self.source = "stored"
            return self._stored(kind, t, known_at, ids, ref)  # sorted already
        self.source = "fold"
        out = self._folded(kind, t, known_at, ids, ref)
        out.sort(key=lambda r: r.entity_id)
        return out

    def _stored(
        self,
        kind: str,
        t: dt.datetime,
        known_at: dt.datetime | None,
        ids: Sequence[str] | None,
        ref: str | None,
    ) -> list[Resolved]:
        t_us = to_us(t)
        k_us = rec.INFINITY - 1 if known_at is None else to_us(known_at)
        keys = None if ids is None else [f"{kind}:{i}" for i in ids]
        from ledger.app import gc_paused

        prefix = len(kind) + 1
        decode = rec.decoder(kind)
        decode_timeline = rec.timeline_decoder()
        out: list[Resolved] = []
        append = out.append
        # Many entities share a timeline (licences granted for the same span), so each
        # distinct one is decoded and resolved at T once per query.
        value_at_t: dict[bytes, Any] = {}
        # Thousands of rows per listing: no per-row calls beyond the two decodes, and no
        # collector passes rescanning the rows already fetched or decoded (all acyclic).
        with gc_paused():
            found = self.store.select_at(kind, t_us, k_us, keys=keys, ref=ref)
            found.sort(key=itemgetter(0))  # by entity id (one kind: one key prefix)
            for key, _, _, static, timeline in found:
                try:
                    value = value_at_t[timeline]
                except KeyError:
                    values = decode_timeline(timeline)
                    value = values[0][1]
                    for at, v in values:
                        if at > t_us:
                            break
                        value = v
                    value_at_t[timeline] = value
                append(Resolved(key[prefix:], decode(static), value))
        return out

    def _events_by_entity(
        self,
        kind: str,
        as_of: dt.datetime | None,
        known_at: dt.datetime | None,
        ids: Sequence[str] | None,
    ) -> dict[str, list[ev.Event]]:
        grouped: dict[str, list[ev.Event]] = {}
        if ids is not None:
            for entity_id in ids:
                for entry in self.app.log(
                    as_of=as_of, known_at=known_at, entity_kind=kind, entity_id=entity_id
                ):
                    if not isinstance(entry.event, ev.EventRetracted):
                        grouped.setdefault(entity_id, []).append(entry.event)
            return grouped
        for entry in self.app.log(as_of=as_of, known_at=known_at, entity_kind=kind):
            if not isinstance(entry.event, ev.EventRetracted):
                grouped.setdefault(entry.event.entity_id, []).append(entry.event)
        return grouped

    def _folded(
        self,
        kind: str,
        t: dt.datetime,
        known_at: dt.datetime | None,
        ids: Sequence[str] | None,
        ref: str | None,
    ) -> list[Resolved]:
        out: list[Resolved] = []
        for entity_id, events in self._events_by_entity(kind, t, known_at, ids).items():
            folded = rec.fold_visible(events)
            record = rec.static_record(folded)
            if record is None:
                continue
            assert folded.state is not None
            if ref is not None and rec.ref_of(record) != ref:
                continue
            out.append(Resolved(entity_id, record, rec.dynamic(folded.state, t)))
        return out

    def history(
        self, kind: str, known_at: dt.datetime | None, ids: Sequence[str]
    ) -> dict[str, list[Segment]]:
        """The records of these entities over all valid time, as known at K."""
        out: dict[str, list[Segment]] = {}
        prefix = len(kind) + 1
        if self._use_stored(known_at):
            k_us = rec.INFINITY - 1 if known_at is None else to_us(known_at)
            keys = [f"{kind}:{i}" for i in ids]
            for f in self.store.select_known(kind, k_us, keys):
                out.setdefault(f.key[prefix:], []).append(
                    Segment(
                        f.key[prefix:],
                        f.vf,
                        f.vt,
                        rec.decode_record(kind, f.static),
                        rec.decode_timeline(f.timeline),
                    )
                )
        else:
            for entity_id, events in self._events_by_entity(kind, None, known_at, ids).items():
                out[entity_id] = [
                    Segment(
                        entity_id,
                        s.vf,
                        s.vt,
                        rec.decode_record(kind, s.static),
                        rec.decode_timeline(s.timeline),
                    )
                    for s in rec.segments(events)
                ]
        for segments in out.values():
            segments.sort(key=lambda s: s.valid_from)
        return out

    def licence_terms(self, known_at: dt.datetime | None) -> dict[str, list[Segment]]:
        """Every licence's terms over all valid time, as known at K: its end users,
        validity, withdrawal and surrender, folded from the events that set them.

        Shipments change none of these, and they are nearly all of a licence's history
        (each one a stored record), so this reads the few term events instead: a handful
        of rows per licence rather than one per shipment.  The records' usage fields
        (items used, shipments, late usage) are left empty.
        """
        grouped: dict[str, list[ev.Event]] = {}
        for entry in self.app.log(known_at=known_at, entity_kind="licence", types=TERM_TYPES):
            grouped.setdefault(entry.event.entity_id, []).append(entry.event)
        return {
            licence_id: [
                Segment(
                    licence_id,
                    s.vf,
                    s.vt,
                    rec.decode_record("licence", s.static),
                    rec.decode_timeline(s.timeline),
                )
                for s in rec.segments(events)
            ]
            for licence_id, events in grouped.items()
        }
