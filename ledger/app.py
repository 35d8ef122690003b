"""The ledger application: appending facts under the domain's invariants, and reading them.

Built on the eventsourcing library's ``Application``: the repository reconstructs an
entity from its stored events (``Entity``, a mutable aggregate whose state is the domain
fold), the event store writes through the ledger's recorders, and the recorder's
notification log is the outbox the NATS relay reads.

Appends are atomic: a batch is checked event by event against the state its earlier
events produce, then written in one transaction.  Concurrency is optimistic: a version
conflict (another process appended to the same entity), a recorded-time conflict or a
busy database makes the whole batch re-check against fresh state and retry.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import logging
import random
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, OperationalError, StoredEvent

from ledger import events as ev
from ledger.checkpoint import SigningKey
from ledger.config import Settings
from ledger.domain import rules
from ledger.domain import state as st
from ledger.domain.aggregate import (
    Entity,
    Loaded,
    Workspace,
    entity_key,
    project_entity,
    references,
)
from ledger.errors import LedgerError, StoreError
from ledger.intake import (
    Submission,
    check_backfilled_time,
    check_repeated,
    check_resent,
    parse_json,
    parse_object,
)
from ledger.store.codec import (
    IndexRow,
    MsgspecMapper,
    Recorded,
    decode_event,
    encode_event,
    encode_event_value,
)
from ledger.store.index import EventIndex, EventWrite, IndexEntry, LogQuery
from ledger.store.snapshots import SnapshotTables, decode_snapshot, encode_snapshot
from ledger.store.tree import Port, TreeBehind
from ledger.times import from_us, iso, now, to_us

if TYPE_CHECKING:
    from ledger.importing import ImportResult

log = logging.getLogger("ledger")

MAX_ATTEMPTS = 30


# --- results ----------------------------------------------------------------------------


class Outcome(msgspec.Struct, frozen=True, gc=False):  # acyclic; one per event
    """What happened to one submitted event."""

    event_id: UUID
    type: str
    entity: str
    status: str
    """``appended``, ``duplicate`` (already recorded: nothing was written) or, in a dry
    run, ``valid`` (passed every check; would be appended, at no position yet)."""
    position: int
    line: int | None = None
    duplicate_of: UUID | None = None


@dataclass
class AppendResult:
    outcomes: list[Outcome] = field(default_factory=list)
    recorded_at: dt.datetime | None = None
    attempts: int = 1
    dry_run: bool = False

    @property
    def appended(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "appended"]

    @property
    def duplicates(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "duplicate"]

    @property
    def valid(self) -> list[Outcome]:
        """A dry run's events that would be appended."""
        return [o for o in self.outcomes if o.status == "valid"]

    def to_dict(self) -> dict[str, Any]:
        positions = [o.position for o in self.appended]
        return {
            "appended": len(self.appended),
            "duplicates": len(self.duplicates),
            **({"dry_run": True, "would_append": len(self.valid)} if self.dry_run else {}),
            "recorded_at": iso(self.recorded_at) if self.recorded_at and positions else None,
            "first_position": min(positions) if positions else None,
            "last_position": max(positions) if positions else None,
            "events": [
                {
                    "line": o.line,
                    "event_id": str(o.event_id),
                    "type": o.type,
                    "entity": o.entity,
                    "status": o.status,
                    "position": o.position,
                    **({"duplicate_of": str(o.duplicate_of)} if o.duplicate_of else {}),
                }
                for o in self.outcomes
            ],
        }


@dataclass(frozen=True)
class LogEntry:
    position: int
    event: ev.Event
    retracted: bool


# --- the application --------------------------------------------------------------------


class Ledger(Application[str]):
    """The compliance ledger (an eventsourcing ``Application`` with ``str`` entity keys)."""

    name = "Ledger"

    def __init__(self, settings: Settings | None = None, env: dict[str, str] | None = None):
        self.settings = settings or Settings.from_env()
        merged = self.settings.eventsourcing_env()
        merged.update(env or {})
        super().__init__(env=merged)
        assert isinstance(self.recorder, EventIndex)
        self.index: EventIndex = self.recorder
        # The recorder extends the Merkle tree as it inserts (ledger.store.tree): it hashes
        # each event's JSON bytes and signs a checkpoint per batch with the ledger's key.
        self._signing_key: SigningKey | None = None
        self.recorder.payload_of = self.msgspec_mapper.payload  # type: ignore[attr-defined]
        self.recorder.signer = self.signing_key  # type: ignore[attr-defined]
        self.snapshot_tables: SnapshotTables = self.recorder.snapshot_tables  # type: ignore[attr-defined]
        self._shipments_indexed = False
        self.events_loaded = 0
        """Stored events decoded to check appends since this ``Ledger`` was made (loading
        an entity from its snapshot decodes only the events after the snapshot)."""

    def signing_key(self) -> SigningKey:
        """The key that signs checkpoints (``ledger.audit.signing_key``; made on first use)."""
        if self._signing_key is None:
            from ledger.audit import signing_key

            self._signing_key = signing_key(self.settings)
        return self._signing_key

    def construct_mapper(self) -> Mapper[str]:
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=MsgspecMapper
        )

    @property
    def msgspec_mapper(self) -> MsgspecMapper:
        assert isinstance(self.mapper, MsgspecMapper)
        return self.mapper

    # --- reading the stored log (read models, the relay) -------------------------------

    def read_stored(
        self, after: int, limit: int, *, stop: int | None = None, skip_types: Sequence[str] = ()
    ) -> list[tuple[int, str, bytes | None]]:
        """Up to ``limit`` stored events after position ``after`` (and at or before
        ``stop``), in position order, as ``(position, event type, stored payload)``; the
        payload is None for ``skip_types`` (counted, not read).  ``decode`` reads one."""
        return self.index.select_payloads(after, limit, stop=stop, skip_topics=tuple(skip_types))

    @property
    def stores_plain_json(self) -> bool:
        """Stored payloads are the events' JSON as published (no cipher, no compression)."""
        mapper = self.msgspec_mapper
        return not mapper.cipher and not mapper.compressor

    def payload(self, stored: bytes) -> bytes:
        """The event's JSON (as published on NATS) from its stored payload."""
        return self.msgspec_mapper.payload(stored)

    def decode(self, event_type: str, stored: bytes) -> ev.Event:
        """The typed event from a stored payload."""
        return decode_event(self.msgspec_mapper.payload(stored), event_type)

    # --- reading ----------------------------------------------------------------------

    def load_entities(
        self, keys: Sequence[str], *, upto: int | None = None
    ) -> dict[str, Iterator[Recorded]]:
        """The stored events of many entities (``kind:id`` keys), decoded lazily in
        version order: what ``Workspace`` checks an append against (``upto``: only those
        stored at or before that position, as the views projector reloads an entity)."""
        to_domain_event = self.msgspec_mapper.to_domain_event
        found = self.index.select_entities(keys, upto=upto)
        self.events_loaded += sum(len(stored) for stored in found.values())
        return {key: map(to_domain_event, stored) for key, stored in found.items()}

    def stream_entities(
        self, keys: Sequence[str], *, upto: int | None = None
    ) -> Iterator[tuple[str, Iterator[Recorded]]]:
        """``load_entities`` one entity at a time, as the store's cursor reads them (key
        order; entities with no event left out): one entity's stored events in memory at
        a time, whatever the number of keys.  Iterate it to the end."""
        to_domain_event = self.msgspec_mapper.to_domain_event
        for key, stored in self.index.stream_entities(keys, upto=upto):
            self.events_loaded += len(stored)
            yield key, map(to_domain_event, stored)

    def load_snapshots(
        self,
        keys: list[str],
        shipments: Mapping[str, Sequence[str]],
        *,
        within: EventWrite | None = None,
    ) -> Loaded:
        """What ``Workspace`` checks an append against, in one read: those of these
        entities that have a usable snapshot, from it and the events stored after it;
        the others' stored events; and ``shipments`` (licence key -> shipment ids) looked
        up in the snapshots' shipment index.  Only licences are snapshotted: they are the
        entities with long histories (a shipment each).  Without a licence among the
        keys this reads nothing (``load_entities`` reads the events).  ``within``: read
        inside that write transaction (a streaming import reloads what it wrote), the
        entities' later reads (history, shipments) too."""
        if not any(k.startswith("licence:") for k in keys):
            return Loaded({}, None)
        if within is None and not self._shipments_indexed:
            return Loaded({}, None)
        tables, mapper = self.snapshot_tables, self.msgspec_mapper
        loading = set(keys)
        pairs = [
            (key.removeprefix("licence:"), s)
            for key, ids in shipments.items()
            if key in loading and key.startswith("licence:")
            for s in ids
        ]
        with self._port(within) as port:
            found = tables.select_for_append(port, keys, pairs)
        entities: dict[str, Entity] = {}
        for key, (version, sealed) in found.snapshots.items():
            snapshot = decode_snapshot(mapper.payload(sealed))
            if snapshot is None:
                continue
            entity = Entity.from_snapshot(
                key,
                version,
                snapshot.state,
                snapshot.max_effective,
                functools.partial(self._history, key, version, within),
                functools.partial(self._stored_shipments, snapshot.state, version, within),
            )
            if found.shipments_read and key in shipments:
                held = found.shipments.get(key)  # (ids recorded before: read what they are)
                entity.shipments_found(
                    shipments[key],
                    self._stored_shipments(snapshot.state, version, within, held) if held else {},
                )
            tail = found.events.get(key, [])
            self.events_loaded += len(tail)
            for v, topic, state in tail:
                entity.add(decode_event(mapper.payload(state), topic))
                entity.version = v
            entities[key] = entity
        rest = [k for k in keys if k not in entities]
        if any(k in found.snapshots for k in rest):
            # An unusable snapshot (another format, unreadable): its entity is read from
            # all its events (only the events after the snapshot were read).
            if within is None:
                return Loaded(entities, self.load_entities(rest))
            to_event = mapper.to_domain_event
            read = within.select_entities(rest)
            return Loaded(entities, {k: map(to_event, v) for k, v in read.items()})
        to_domain_event = mapper.to_domain_event
        events: dict[str, Iterator[Recorded]] = {}
        for key in rest:
            stored = [
                StoredEvent(key, v, topic, state) for v, topic, state in found.events.get(key, [])
            ]
            self.events_loaded += len(stored)
            events[key] = map(to_domain_event, stored)
        return Loaded(entities, events)

    def _port(self, within: EventWrite | None) -> AbstractContextManager[Port]:
        """A read port: inside ``within`` (its transaction), else a read of its own."""
        if within is not None:
            return nullcontext(within.port())
        port: AbstractContextManager[Port] = self.recorder.read_port()  # type: ignore[attr-defined]
        return port

    def _history(self, key: str, version: int, within: EventWrite | None = None) -> list[ev.Event]:
        """An entity's stored events up to ``version`` (a snapshot's entity needs them)."""
        with self._port(within) as port:
            rows = self.snapshot_tables.events_until(port, key, version)
        self.events_loaded += len(rows)
        payload = self.msgspec_mapper.payload
        return [decode_event(payload(bytes(state)), topic) for _, topic, state in rows]

    def _stored_shipments(
        self,
        licence: st.LicenceState,
        version: int,
        within: EventWrite | None,
        shipment_ids: Sequence[str],
    ) -> dict[str, ev.LicenceUsageRecorded]:
        """The usage events recording these shipment ids in the licence's state at
        ``version``, from the shipment index (``Facts.shipment`` for an entity from its
        snapshot)."""
        with self._port(within) as port:
            rows = self.snapshot_tables.find_shipments(
                port, licence.licence_id, shipment_ids, version
            )
        return self._shipments_of(licence, rows, within)

    def _shipments_of(
        self,
        licence: st.LicenceState,
        rows: Iterable[tuple[Any, ...]],
        within: EventWrite | None = None,
    ) -> dict[str, ev.LicenceUsageRecorded]:
        """Those of the shipment index's rows (shipment id, position, effective_us, stored
        state; in effective order) that the licence's state folded, by shipment id."""
        found: dict[str, ev.LicenceUsageRecorded] = {}
        grant: int | None = None
        for _, position, _, state in rows:  # effective order: the fold keeps the last
            e = decode_event(self.msgspec_mapper.payload(bytes(state)), "LicenceUsageRecorded")
            assert isinstance(e, ev.LicenceUsageRecorded)
            if e.effective_at == licence.valid_from:
                # The fold applies events after the grant: at its very time, recorded after.
                if grant is None:
                    entry = (within or self.index).lookup([licence.granted_event_id])
                    grant = entry[licence.granted_event_id].position
                if position < grant:
                    continue
            elif e.effective_at < licence.valid_from:
                continue
            found[e.shipment_id] = e
        return found

    def _index_shipments(self) -> None:
        """Put every stored usage event in the shipment index, once per ledger (a ledger
        from before the index); until then no snapshot is used."""
        if self._shipments_indexed:
            return
        tables, mapper = self.snapshot_tables, self.msgspec_mapper
        with self.recorder.read_port() as port:  # type: ignore[attr-defined]
            self._shipments_indexed = tables.indexed(port)
        if self._shipments_indexed:
            return

        def shipment_of(state: bytes) -> str:
            e = decode_event(mapper.payload(state), "LicenceUsageRecorded")
            assert isinstance(e, ev.LicenceUsageRecorded)
            return e.shipment_id

        with self.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
            indexed = tables.index_all(port, shipment_of)
        if indexed:
            log.warning("indexed the %d shipments stored before the shipment index", indexed)
        self._shipments_indexed = True

    def entity(self, kind: str, entity_id: str) -> Entity | None:
        """An entity reconstructed by the library's repository (None if unknown)."""
        try:
            result: Entity = self.repository.get(
                entity_key(kind, entity_id), projector_func=project_entity
            )
        except AggregateNotFoundError:
            return None
        return result

    def head(self) -> int:
        """Position of the newest event (0 for an empty ledger)."""
        return self.recorder.max_notification_id() or 0

    def last_recorded_at(self) -> dt.datetime | None:
        us = self.index.last_recorded_us()
        return None if us is None else from_us(us)

    def lookup(self, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        return self.index.lookup(event_ids)

    def get_event(self, event_id: UUID) -> LogEntry | None:
        entry = self.index.lookup([event_id]).get(event_id)
        if entry is None:
            return None
        entity = self.entity(entry.entity_kind, entry.entity_id)
        assert entity is not None
        for e in entity.events:
            if e.event_id == event_id:
                retracted = any(
                    isinstance(x, ev.EventRetracted) and x.retracted_event_id == event_id
                    for x in entity.events
                )
                return LogEntry(entry.position, e, retracted)
        return None  # pragma: no cover - index and events are written together

    # Shadows the library's deprecated ``log`` alias of ``notification_log`` (which the
    # library itself never reads): here the log is the ledger's history.
    def log(  # type: ignore[override]
        self,
        *,
        as_of: dt.datetime | None = None,
        known_at: dt.datetime | None = None,
        entity_kind: str | None = None,
        entity_id: str | None = None,
        types: Sequence[str] = (),
        party: str | None = None,
        include_retracted: bool = False,
        order: str = "effective",
        source_statuses: Sequence[str] = (),
        after_position: int | None = None,
    ) -> Generator[LogEntry, None, None]:
        """The history in effective (or recorded) order, as known at ``known_at``.

        ``source_statuses`` keeps the events whose strongest source has one of these
        statuses (``reported``: facts that no official source backs); ``after_position``
        only events stored after that position (a page's cursor)."""
        mapper = self.msgspec_mapper
        query = LogQuery(
            as_of_us=None if as_of is None else to_us(as_of),
            known_at_us=None if known_at is None else to_us(known_at),
            entity_kind=entity_kind,
            entity_id=entity_id,
            types=tuple(types),
            include_retracted=include_retracted,
            order=order,
            after_position=after_position,
            # A party is named in the payload as its JSON string: let the database skip
            # the events that cannot name it (stored as plain JSON, not compressed or
            # encrypted), instead of decoding the whole history to look.
            payload_contains=(
                encode_event_value(party)
                if party is not None and not mapper.compressor and not mapper.cipher
                else None
            ),
        )
        for row in self.index.select_log(query):
            event = decode_event(mapper.payload(row.state), row.topic)
            if party is not None and party not in ev.named_parties(event):
                continue
            if source_statuses and ev.source_standing(event.sources) not in source_statuses:
                continue
            yield LogEntry(row.position, event, row.retracted)

    # --- appending --------------------------------------------------------------------

    def _resolver(
        self, batch: dict[UUID, tuple[str, str]] | None
    ) -> Callable[[UUID], tuple[str, str] | None]:
        """Find the entity of an event to retract: earlier in the batch, or stored."""

        def resolve(target: UUID) -> tuple[str, str] | None:
            if batch is not None and target in batch:
                return batch[target]
            entry = self.index.lookup([target]).get(target)
            return None if entry is None else (entry.entity_kind, entry.entity_id)

        return resolve

    def parse(
        self,
        obj: Any,
        *,
        line: int | None = None,
        now_: dt.datetime | None = None,
        backfill: bool = False,
        batch: dict[UUID, tuple[str, str]] | None = None,
        owned: bool = False,
    ) -> Submission:
        """Validate one decoded JSON object as an event (see ``ledger.intake``)."""
        s = parse_object(
            obj,
            line=line,
            actor=self.settings.actor,
            now=now_ or now(),
            backfill=backfill,
            resolve_retracted=self._resolver(batch),
            owned=owned,
        )
        if batch is not None:
            batch[s.event.event_id] = (s.event.entity_kind, s.event.entity_id)
        return s

    def parse_line(
        self,
        data: bytes,
        line: int | None,
        now_: dt.datetime,
        backfill: bool,
        batch: dict[UUID, tuple[str, str]],
    ) -> Submission:
        """Parse one JSONL line of a batch."""
        s = parse_json(
            data,
            line=line,
            actor=self.settings.actor,
            now=now_,
            backfill=backfill,
            resolve_retracted=self._resolver(batch),
        )
        batch[s.event.event_id] = (s.event.entity_kind, s.event.entity_id)
        return s

    def stored_event(self, event_id: UUID) -> ev.Event | None:
        """The stored event with this id, or None (``check_resent``'s look-up)."""
        entry = self.get_event(event_id)
        return None if entry is None else entry.event

    def parse_lines(
        self,
        lines: Iterable[tuple[int | None, bytes]],
        *,
        backfill: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[Submission]:
        """Parse a JSONL batch (numbered lines) into submissions, all stamped with one
        parse time; a retraction may name an event earlier in the same batch.
        ``progress`` is called with the bytes of each line read."""
        current = now()
        batch: dict[UUID, tuple[str, str]] = {}
        submissions = []
        for number, line in lines:
            submissions.append(self.parse_line(line, number, current, backfill, batch))
            if progress is not None:
                progress(len(line) + 1)
        return submissions

    def append(
        self,
        submissions: Sequence[Submission],
        *,
        backfill: bool = False,
        progress: Callable[[int], None] | None = None,
        dry_run: bool = False,
    ) -> AppendResult:
        """Append a batch atomically (all or nothing); duplicates are reported, not written.

        Raises ``RuleViolation``/``ConflictError`` (naming the line) and ``StoreError``.
        ``dry_run``: every check, nothing written; the events that would be appended are
        reported ``valid``.
        """
        if not dry_run:  # a dry run signs nothing, and makes no key
            self.signing_key()  # made or read before any transaction (a missing key: no write)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if not dry_run:
                    self._index_shipments()  # (once; retried here when the store is busy)
                with gc_paused():
                    result = self._append_once(
                        submissions, backfill=backfill, progress=progress, dry_run=dry_run
                    )
                result.attempts = attempt
                return result
            except TreeBehind as exc:
                # Events from before the Merkle tree: build it (resumable), then append.
                from ledger.audit import build_tree

                log.warning("building the Merkle tree over the events stored before it")
                if not build_tree(self):
                    raise StoreError(
                        f"{exc}; the uncovered events were not written by the ledger: "
                        "`ledger verify` names the first"
                    ) from None
            except (IntegrityError, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not _is_transient(exc):
                    raise StoreError(f"the store failed: {exc}") from exc
                if attempt == MAX_ATTEMPTS:
                    raise StoreError(
                        f"gave up after {attempt} attempts against concurrent writers: {exc}"
                    ) from exc
                log.debug("append attempt %d conflicted (%s); retrying", attempt, exc)
                time.sleep(min(0.5, 0.005 * 2 ** min(attempt, 7)) * random.uniform(0.5, 1.5))
                progress = None  # report progress once
        raise AssertionError("unreachable")  # pragma: no cover

    def _recorded_time(
        self,
        submissions: Sequence[Submission],
        backfill: bool,
        stored: dict[UUID, IndexEntry],
    ) -> dt.datetime:
        """The recorded time of a batch; checks backfilled times instead when backfilling."""
        last_us = self.index.last_recorded_us()
        last = None if last_us is None else from_us(last_us)
        current = now()
        if not backfill:
            return current if last is None or current >= last else last
        previous: dt.datetime | None = None
        # Events already stored are re-sends (their content is checked in _append_once):
        # they keep their recorded time, so re-importing a backfilled file appends nothing.
        for s in submissions:
            if s.event.event_id in stored:
                continue
            previous = check_backfilled_time(s, now=current, latest=last, previous=previous)
        return current

    def _append_once(
        self,
        submissions: Sequence[Submission],
        *,
        backfill: bool,
        progress: Callable[[int], None] | None,
        dry_run: bool = False,
    ) -> AppendResult:
        """One attempt at a batch: sort out repeated ids, check and encode each new event
        against the state its predecessors produced, write them in one transaction, and
        say what happened to each submission."""
        stored = self.index.lookup([s.event.event_id for s in submissions])
        recorded_at = self._recorded_time(submissions, backfill, stored)
        fresh, duplicates = _sort_out_ids(submissions, stored, self.stored_event)
        checked = self._check_and_encode(submissions, fresh, recorded_at, backfill, progress)
        position_of = {} if dry_run else self._write(checked)
        result = AppendResult(recorded_at=None if backfill else recorded_at, dry_run=dry_run)
        result.outcomes = self._outcomes(submissions, checked, duplicates, position_of, dry_run)
        if progress is not None and len(fresh) % 1000:
            progress(len(fresh) % 1000)
        return result

    def _check_and_encode(
        self,
        submissions: Sequence[Submission],
        fresh: Sequence[int],
        recorded_at: dt.datetime,
        backfill: bool,
        progress: Callable[[int], None] | None,
        *,
        workspace: Workspace | None = None,
        snapshots: bool = True,
        keys: Sequence[str] | None = None,
    ) -> _Checked:
        """Check each new event against the entities it touches (prefetched at once),
        fold it in, and encode it with its index row.  Raises the first rule broken,
        located at its line.  ``workspace``: the entities as earlier events left them (a
        streaming import's chunks share one); default, fresh from the store.
        ``snapshots``: each licence appended to gets a snapshot (a streaming import takes
        its own).  ``keys``: the entities the new events name (``references``), when the
        caller has them already."""
        if workspace is None:
            workspace = Workspace(self.load_entities, self.load_snapshots)
        shipments: dict[str, list[str]] = {}  # licence key -> the batch's shipment ids
        for i in fresh:
            e = submissions[i].event
            if type(e) is ev.LicenceUsageRecorded:
                shipments.setdefault(f"licence:{e.entity_id}", []).append(e.shipment_id)
        # The shipments go with the prefetch: a licence's snapshot, the events after it
        # and its stored shipments are one read.
        if keys is None:
            keys = [k for i in fresh for k in references(submissions[i].event)]
        workspace.prefetch(keys, shipments=shipments)
        entities = workspace.entities
        for key, ids in shipments.items():  # one look-up per licence, not per shipment
            held = entities.get(key)  # (a streaming import holds some entities lean)
            if held is not None:
                held.expect_shipments(ids)
        mapper = self.msgspec_mapper
        out = _Checked()
        recorded_us = None if backfill else to_us(recorded_at)
        stamp = _RecordedStamp(recorded_at)
        last_row: dict[str, int] = {}  # licence key -> its last row in the batch
        for n, i in enumerate(fresh, start=1):
            s = submissions[i]
            e, payload = (s.event, s.payload) if backfill else stamp(s.event, s.payload)
            try:
                original = rules.check(e, workspace)
            except LedgerError as exc:
                raise exc.located(s.line) from None
            if original is not None:  # a shipment recorded again: the original stands
                out.shipment_dupes[i] = original
                continue
            key = f"{e.entity_kind}:{e.entity_id}"
            entity = workspace.add(e)
            out.keys[i] = key
            type_name = type(e).__name__
            out.stored_events.append(
                mapper.stored_event(
                    key, entity.version, type_name, encode_event(e) if payload is None else payload
                )
            )
            out.rows.append(
                IndexRow(
                    e.event_id,
                    type_name,
                    e.entity_kind,
                    e.entity_id,
                    to_us(e.effective_at),
                    to_us(e.recorded_at) if recorded_us is None else recorded_us,
                    s.content_hash,
                    e.retracted_event_id if type(e) is ev.EventRetracted else None,
                    entity.version,
                    e.shipment_id if type(e) is ev.LicenceUsageRecorded else None,
                )
            )
            if e.entity_kind == "licence":
                last_row[key] = len(out.rows) - 1
            out.written.append(i)
            if progress is not None and n % 1000 == 0:
                progress(1000)
        if snapshots:
            self._snapshot(workspace, last_row, out.rows)
        return out

    def _snapshot(
        self, workspace: Workspace, last_row: dict[str, int], rows: list[IndexRow]
    ) -> None:
        """Each licence the batch appends to gets a snapshot of its state after the batch,
        carried by its last row (written in the same transaction as the events)."""
        mapper = self.msgspec_mapper
        for key, n in last_row.items():
            entity = workspace.entities[key]
            state = entity.state(None)
            max_effective = entity.max_effective
            if not isinstance(state, st.LicenceState) or max_effective is None:
                continue  # (a licence whose grant was retracted is loaded from its events)
            sealed = mapper.stored_event(
                key, entity.version, "LicenceSnapshot", encode_snapshot(state, max_effective)
            ).state
            rows[n] = rows[n]._replace(snapshot=sealed)

    def _write(self, checked: _Checked) -> dict[int, int]:
        """Insert the checked events with their index rows in one transaction; returns
        each one's position by batch index."""
        if not checked.stored_events:
            return {}
        # What EventStore.put does, minus building a Recording per event: map, then
        # insert through the recorder with the index rows in the same transaction.
        ids = self.recorder.insert_events(checked.stored_events, index_rows=checked.rows)
        if not ids or len(ids) != len(checked.stored_events):
            raise StoreError("the store did not report positions for every event")
        return dict(zip(checked.written, ids, strict=True))

    def _outcomes(
        self,
        submissions: Sequence[Submission],
        checked: _Checked,
        duplicates: dict[int, tuple[UUID, int | None]],
        position_of: dict[int, int],
        dry_run: bool,
    ) -> list[Outcome]:
        """What happened to each submission: appended (or valid, in a dry run) at its
        position, or a duplicate of an event stored or earlier in the batch."""
        shipment_dupes, keys = checked.shipment_dupes, checked.keys
        positions: dict[UUID, int] = {}  # event id -> position, for in-batch duplicates
        if duplicates or shipment_dupes:
            positions = {submissions[i].event.event_id: n for i, n in position_of.items()}
        originals = self.index.lookup(list(shipment_dupes.values())) if shipment_dupes else {}
        outcomes: list[Outcome] = []
        for i, s in enumerate(submissions):
            e = s.event
            position = position_of.get(i)
            if position is not None:
                outcomes.append(
                    Outcome(e.event_id, type(e).__name__, keys[i], "appended", position, s.line)
                )
            elif dry_run and i in keys:
                outcomes.append(Outcome(e.event_id, type(e).__name__, keys[i], "valid", 0, s.line))
            elif i in duplicates:
                original_id, stored_position = duplicates[i]
                outcomes.append(
                    Outcome(
                        e.event_id,
                        e.type,
                        e.entity,
                        "duplicate",
                        stored_position
                        if stored_position is not None
                        else positions.get(original_id, 0),
                        s.line,
                        original_id,
                    )
                )
            else:
                original_id = shipment_dupes[i]
                position = (
                    originals[original_id].position
                    if original_id in originals
                    else positions.get(original_id, 0)
                )
                outcomes.append(
                    Outcome(
                        e.event_id, e.type, e.entity, "duplicate", position, s.line, original_id
                    )
                )
        return outcomes

    def append_objects(self, objects: Sequence[Any], *, backfill: bool = False) -> AppendResult:
        """Parse and append decoded JSON objects (one batch)."""
        current = now()
        batch: dict[UUID, tuple[str, str]] = {}
        submissions = []
        for i, obj in enumerate(objects, start=1):
            line = i if len(objects) > 1 else None
            submissions.append(
                self.parse(obj, line=line, now_=current, backfill=backfill, batch=batch)
            )
        return self.append(submissions, backfill=backfill)

    def import_lines(
        self,
        lines: Iterable[tuple[int | None, bytes]],
        *,
        backfill: bool = False,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        keep_events: bool = False,
    ) -> ImportResult:
        """Append numbered JSONL lines as one batch, streaming them in chunks through one
        transaction (``ledger.importing``): memory does not grow with the batch."""
        from ledger.importing import import_lines

        return import_lines(
            self,
            lines,
            backfill=backfill,
            dry_run=dry_run,
            progress=progress,
            keep_events=keep_events,
        )

    def retract(
        self,
        event_id: UUID,
        reason: str,
        *,
        sources: Sequence[ev.Source] = (),
        retraction_id: UUID | None = None,
    ) -> AppendResult:
        """Record that an event was wrong (see ``EventRetracted``)."""
        obj: dict[str, Any] = {
            "type": "EventRetracted",
            "retracted_event_id": str(event_id),
            "reason": reason,
            "sources": [msgspec.to_builtins(s) for s in sources],
        }
        if retraction_id is not None:
            obj["event_id"] = str(retraction_id)
        return self.append_objects([obj])


@dataclass
class _Checked:
    """A batch's new events, checked and encoded, ready to write."""

    stored_events: list[StoredEvent] = field(default_factory=list)
    rows: list[IndexRow] = field(default_factory=list)
    written: list[int] = field(default_factory=list)
    """Batch indexes, in the order of ``stored_events``."""
    keys: dict[int, str] = field(default_factory=dict)
    """Batch index -> entity key, for the outcomes."""
    shipment_dupes: dict[int, UUID] = field(default_factory=dict)
    """Batch index -> the usage event already recording that very shipment."""


class _RecordedStamp:
    """Gives a parsed event the batch's recorded time, in the struct and in its encoded
    bytes (which carry the parse-time recorded time: swapped in place, not re-encoded)."""

    def __init__(self, recorded_at: dt.datetime):
        self.recorded_at = recorded_at
        self.recorded_json = b'"recorded_at":' + encode_event_value(recorded_at)
        self.parsed_at: dt.datetime | None = None
        self.parsed_json = b""

    def __call__(self, e: ev.Event, payload: bytes | None) -> tuple[ev.Event, bytes | None]:
        if e.recorded_at == self.recorded_at:
            return e, payload
        if e.recorded_at is not self.parsed_at:
            self.parsed_at = e.recorded_at
            self.parsed_json = b'"recorded_at":' + encode_event_value(e.recorded_at)
        e = msgspec.structs.replace(e, recorded_at=self.recorded_at)
        if payload is not None:
            swapped = payload.replace(self.parsed_json, self.recorded_json, 1)
            payload = swapped if swapped != payload else None
        return e, payload


def _sort_out_ids(
    submissions: Sequence[Submission],
    stored: dict[UUID, IndexEntry],
    stored_event: Callable[[UUID], ev.Event | None],
) -> tuple[list[int], dict[int, tuple[UUID, int | None]]]:
    """Idempotency by event id: the batch indexes of the new events, and of the
    duplicates (of a stored event: its position; of one earlier in the batch: None).
    An id reused with different content is a ``ConflictError`` (``ledger.intake``'s
    ``check_resent`` and ``check_repeated``)."""
    first_seen: dict[UUID, Submission] = {}
    fresh: list[int] = []
    duplicates: dict[int, tuple[UUID, int | None]] = {}
    for i, s in enumerate(submissions):
        e = s.event
        entry = stored.get(e.event_id) if stored else None
        if entry is not None:
            check_resent(s, entry, stored_event)
            duplicates[i] = (e.event_id, entry.position)
            continue
        earlier = first_seen.setdefault(e.event_id, s)
        if earlier is not s:
            check_repeated(s, earlier.content_hash, earlier.line)
            duplicates[i] = (e.event_id, None)
            continue
        fresh.append(i)
    return fresh, duplicates


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during bulk work.

    Parsing and checking a large batch, or decoding thousands of view records, allocates
    many containers at once; each collector pass would rescan all of them.  Reference
    counting still frees everything (these objects hold no cycles).

    On the way out, the objects allocated meanwhile join the oldest generation directly
    (``gc.freeze()`` then ``gc.unfreeze()``: two list splices, and the young generation's
    count starts again from zero) instead of the young-generation pass that re-enabling
    would trigger at the next allocation.  That pass scans every survivor, which in a
    listing of thousands of licences is most of what was just built.  Nested pauses act
    once, at the outermost exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _is_transient(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("locked", "busy", "deadlock", "could not serialize", "timeout", "connection")
    )
