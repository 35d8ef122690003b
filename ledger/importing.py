"""Streaming import: a JSONL batch of any size appended in one transaction, in chunks.

``ledger import`` used to parse the whole file, check it, and write it: every event was
held in memory several times over (~4 KB an event).  Here the write transaction opens
first, with the store's write lock, and the file is read a chunk of lines at a time:
each chunk is parsed, its ids looked up, its events checked against the entities as the
earlier chunks left them, and written; then the next.  What a later line may need from
an earlier one is read back from the store inside the same transaction (its own writes
are visible to it, nobody else's are possible meanwhile):

- repeated event ids (idempotency, ``event-id-reused``): looked up in the event index;
- a retraction of an event earlier in the file: the same lookup;
- entity state: a working set of entities, trimmed to a budget of bytes after each
  chunk (``_Retention`` chooses: entities touched again are kept while they fit, a
  cycle larger than the budget keeps a steady part held, and entities named once go
  first) and reloaded from the store when needed again; where the store has no page
  cache in this process to charge the working set to (PostgreSQL), it is two-tier: a
  small decoded part, and the entities trimmed from it kept encoded in a temporary file
  (``_ImportWorkspace.spill``) until a chunk names them again.

The file stays all or nothing: everything commits together at the end, and an error on
any line (or the process killed) leaves nothing appended.  A dry run does the same and
rolls back.  Outcomes are counted, and spooled to a temporary file only when every
event's outcome is asked for (``-o json``).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import typing
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger import events as ev
from ledger.domain import state as st
from ledger.domain.aggregate import (
    Entity,
    Loaded,
    Loader,
    SnapshotLoader,
    Workspace,
    references,
)
from ledger.domain.licence import LicenceState
from ledger.errors import LedgerError, StoreError
from ledger.intake import (
    Submission,
    check_backfilled_time,
    check_repeated,
    check_resent,
    parse_json,
)
from ledger.store.codec import IndexRow, Recorded
from ledger.store.index import IndexEntry
from ledger.store.snapshots import encode_snapshot
from ledger.store.spill import EntitySpill
from ledger.times import from_us, iso, now

if TYPE_CHECKING:
    from ledger.app import Ledger

_S = TypeVar("_S")

CHUNK_LINES = 2000
"""Lines parsed, checked and written at a time."""

SPILL_CHUNK_LINES = 1000
"""Lines a chunk holds with a two-tier working set: each chunk's entities come back
from the spill and are alive until it is written (chunks of 2,000 lines: 1.22x from 100k
to 1M events on PostgreSQL, against 1.14x), and its trim visits only the small decoded
part."""

WORKSPACE_BYTES = 24 << 20
"""About how much the working set of entities may hold between chunks (counted at what
they really take: ``LEAN_BYTES``, and the memory of evicted keys, ``_Ghosts``); beyond it
entities are dropped as ``_Retention`` chooses (reloaded from the store if a later line
needs them: a licence from the snapshot written as it leaves, others from their events).
24 MB holds ~20,000 entities: the 1M-event benchmark file's licences and the end users
they ship to (its other 10,000 end users are dropped); of the 2M-event file's 40,000
taking turns it keeps ~19,000 held through every turn."""

SNAPSHOT_EVERY = 64
"""A licence is snapshotted once it has this many new events since its last snapshot."""

LOCK_ATTEMPTS = 30


class OutcomeSpool:
    """Every event's outcome, as compact JSON objects in a temporary file (in memory up
    to a few megabytes): what ``-o json`` lists, without holding a million of them."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        self.count = 0
        self._encode = msgspec.json.Encoder().encode

    def add(self, outcome: dict[str, Any]) -> None:
        if self.count:
            self.file.write(b",")
        self.file.write(self._encode(outcome))
        self.count += 1

    def write_array(self, out: IO[bytes]) -> None:
        """The outcomes as one JSON array."""
        out.write(b"[")
        self.file.seek(0)
        while block := self.file.read(1 << 20):
            out.write(block)
        out.write(b"]")

    def to_list(self) -> list[dict[str, Any]]:
        self.file.seek(0)
        result: list[dict[str, Any]] = msgspec.json.decode(b"[" + self.file.read() + b"]")
        return result

    def close(self) -> None:
        self.file.close()


@dataclass
class ImportResult:
    """What an import did, counted (every event's outcome in ``events`` when kept)."""

    appended: int = 0
    duplicates: int = 0
    valid: int = 0
    """A dry run's events that passed every check (would be appended)."""
    first_position: int | None = None
    last_position: int | None = None
    recorded_at: dt.datetime | None = None
    dry_run: bool = False
    events: OutcomeSpool | None = None

    @property
    def total(self) -> int:
        return self.appended + self.duplicates + self.valid

    def head(self) -> dict[str, Any]:
        """The JSON summary without the events (the order ``AppendResult.to_dict`` uses)."""
        return {
            "appended": self.appended,
            "duplicates": self.duplicates,
            **({"dry_run": True, "would_append": self.valid} if self.dry_run else {}),
            "recorded_at": iso(self.recorded_at) if self.recorded_at and self.appended else None,
            "first_position": self.first_position,
            "last_position": self.last_position,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.head(), "events": self.events.to_list() if self.events else []}


class _DryRun(Exception):
    """Raised inside the write to roll it back."""


def import_lines(
    app: Ledger,
    lines: Iterable[tuple[int | None, bytes]],
    *,
    backfill: bool = False,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    keep_events: bool = False,
    chunk_lines: int | None = None,
    workspace_bytes: int = WORKSPACE_BYTES,
    spill: bool | None = None,
) -> ImportResult:
    """Append numbered JSONL lines as one batch, streaming (see the module doc).

    Raises ``InputError``/``RuleViolation``/``ConflictError`` naming the line, and
    ``StoreError``; nothing is appended then.  ``progress`` is called with the bytes of
    each chunk read.  ``spill``: whether the working set is two-tier (a small decoded
    part, the rest encoded in a temporary file: ``_ImportWorkspace``); None: where the
    store has no page cache in this process to charge the working set to (PostgreSQL).
    ``chunk_lines``: None, ``CHUNK_LINES`` (``SPILL_CHUNK_LINES`` with a spill).
    """
    from ledger import audit
    from ledger.app import gc_paused

    if not dry_run:
        app.signing_key()  # made or read before any transaction (a missing key: no write)
        if audit.pending(app):  # events from before the Merkle tree: build it first
            audit.build_tree(app)
        app._index_shipments()  # (a ledger from before the shipment index: once)
    run = _Import(app, iter(lines), backfill, dry_run, progress, keep_events, chunk_lines)
    run.workspace_bytes = workspace_bytes
    run.spill = spill
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            with gc_paused():
                return run.run()
        except _DryRun:
            return run.result
        except (IntegrityError, OperationalError) as exc:
            if run.started or attempt == LOCK_ATTEMPTS or not _is_busy(exc):
                if run.spool is not None:
                    run.spool.close()
                raise StoreError(f"the store failed: {exc}") from exc
        except BaseException:
            if run.spool is not None:
                run.spool.close()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _is_busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "timeout" in text


class _Import:
    """One streaming import (state carried from chunk to chunk)."""

    def __init__(
        self,
        app: Ledger,
        lines: Iterator[tuple[int | None, bytes]],
        backfill: bool,
        dry_run: bool,
        progress: Callable[[int], None] | None,
        keep_events: bool,
        chunk_lines: int | None,
    ):
        self.app = app
        self.lines = lines
        self.backfill = backfill
        self.dry_run = dry_run
        self.progress = progress
        self.chunk_lines = chunk_lines
        self.workspace_bytes = WORKSPACE_BYTES
        self.spill: bool | None = None
        self.spool = OutcomeSpool() if keep_events else None
        self.result = ImportResult(dry_run=dry_run, events=self.spool)
        self.started = False
        """Lines have been read: the stream cannot be replayed."""
        self.line_of: _LineNumbers
        """Line number of each event this import wrote, by position - ``head``: names the
        first line of an id that appears twice."""

    # --- the transaction ----------------------------------------------------------------

    def run(self) -> ImportResult:
        self.line_of = _LineNumbers()  # (afresh for each attempt at the write lock)
        self.spilled: EntitySpill | None = None
        try:
            return self._run()
        finally:
            self.line_of.close()
            if self.spilled is not None:
                self.spilled.clear()  # (its temporary file closed now, not at collection)

    def _run(self) -> ImportResult:
        with self.app.index.writing() as write:
            write.lock()
            write.rehearsal = self.dry_run
            self.write = write
            self.head = write.head()
            last_us = write.last_recorded_us()
            self.last = None if last_us is None else from_us(last_us)
            current = now()
            self.now = current
            self.recorded_at = current if self.last is None or current >= self.last else self.last
            self.previous: dt.datetime | None = None  # backfill: the last line's recorded time
            # Licences leave the working set as snapshots and come back from them; that
            # needs the shipment index to cover the ledger (a dry run may open a ledger
            # from before it, which only a real import indexes).
            indexed = self.app._shipments_indexed or self.app.snapshot_tables.indexed(write.port())
            self.workspace = (
                _ImportWorkspace(self._load, self._load_snapshots, self._stored_shipments)
                if indexed
                else _ImportWorkspace(self._load)
            )
            # Where the store keeps no page cache in this process (PostgreSQL's is the
            # server's), there is nothing to charge the working set to: it is two-tier,
            # so that what it holds decoded stays small (see ``_ImportWorkspace``).
            spill = not write.charges_cache if self.spill is None else self.spill
            self.decoded_bytes = self.workspace_bytes
            if self.chunk_lines is None:
                self.chunk_lines = SPILL_CHUNK_LINES if spill else CHUNK_LINES
            if spill:
                self.decoded_bytes = self.workspace_bytes // DECODED_SHARE
                self.spilled = EntitySpill(
                    _dump_lean, _load_lean, "import working set", batched=True
                )
                self.workspace.spill = self.spilled
                self.workspace.spill_max = max(
                    0, (self.workspace_bytes - self.decoded_bytes) // SPILLED_BYTES
                )
            self.snapshotted: dict[str, int] = {}
            """Licence key -> the version of its snapshot (held or spilled)."""
            self.workspace.snapshotted = self.snapshotted
            self.retention = _Retention(2 * self.decoded_bytes // LEAN_BYTES)
            """Which entities the working set keeps and which go first (``_Retention``);
            its tables hold the key object the working set holds (``_touch``): with 20,000
            entities held, copies of each key were ~4 MB."""
            self.chunk = 0
            chunk_lines = self.chunk_lines
            while True:
                block = list(islice(self.lines, chunk_lines))
                self.started = True
                if not block:
                    break
                self.chunk += 1
                self._chunk(block)
                if self.progress is not None:
                    self.progress(sum(len(raw) + 1 for _, raw in block))
            if not self.backfill and self.result.appended + self.result.valid:
                self.result.recorded_at = self.recorded_at
            if self.dry_run:
                raise _DryRun
        return self.result

    def _load(self, keys: list[str]) -> dict[str, Iterator[Recorded]]:
        to_domain_event = self.app.msgspec_mapper.to_domain_event
        found = self.write.select_entities(keys)
        self.app.events_loaded += sum(len(stored) for stored in found.values())
        return {key: map(to_domain_event, stored) for key, stored in found.items()}

    def _load_snapshots(self, keys: list[str], shipments: Mapping[str, Sequence[str]]) -> Loaded:
        loaded = self.app.load_snapshots(keys, shipments, within=self.write)
        for key, entity in loaded.from_snapshots.items():
            if entity.snapshot_version is not None:
                self.snapshotted[key] = entity.snapshot_version
        return loaded

    def _stored_shipments(
        self, asked: Mapping[str, tuple[LicenceState, Sequence[str]]]
    ) -> dict[str, dict[str, ev.LicenceUsageRecorded]]:
        pairs = [(key.removeprefix("licence:"), s) for key, (_, ids) in asked.items() for s in ids]
        rows = self.app.snapshot_tables.find_recorded_shipments(self.write.port(), pairs)
        shipments_of, write = self.app._shipments_of, self.write
        return {
            key: shipments_of(state, rows.get(key.removeprefix("licence:"), []), write)
            for key, (state, _) in asked.items()
        }

    def _drop_licences(self, dropped: Mapping[str, _Lean | None]) -> None:
        """Licences leaving the working set: a lean one gets a snapshot at its version
        (unless it has one), so that coming back costs a snapshot and not its history."""
        mapper, snapshotted = self.app.msgspec_mapper, self.snapshotted
        snapshots: list[tuple[str, int, bytes]] = []
        for key, lean in dropped.items():
            version = snapshotted.pop(key, None)
            if lean is None or version == lean.version:
                continue
            if not isinstance(lean.state, LicenceState):
                continue
            sealed = mapper.stored_event(
                key,
                lean.version,
                "LicenceSnapshot",
                encode_snapshot(lean.state, lean.max_effective),
            ).state
            snapshots.append((key, lean.version, sealed))
        if snapshots:
            self.app.snapshot_tables.put(self.write.port(), snapshots)

    # --- one chunk ------------------------------------------------------------------------

    def _chunk(self, block: list[tuple[int | None, bytes]]) -> None:
        submissions = self._parse(block)
        stored = self.write.lookup([s.event.event_id for s in submissions])
        fresh, duplicates = self._sort_out_ids(submissions, stored)
        if self.backfill:
            self._check_backfill(submissions, stored)
        # (each entity once, in the order the chunk first names it)
        keys = list(dict.fromkeys(k for i in fresh for k in references(submissions[i].event)))
        self._touch(keys)
        checked = self.app._check_and_encode(
            submissions,
            fresh,
            self.recorded_at,
            self.backfill,
            None,
            workspace=self.workspace,
            snapshots=False,
            keys=keys,
        )
        self._snapshots(checked.rows)
        positions: list[int] = []
        if checked.stored_events:  # (a dry run writes too, and rolls back at the end)
            positions = self.write.insert(checked.stored_events, checked.rows)
            if len(positions) != len(checked.stored_events):
                raise StoreError("the store did not report positions for every event")
            self.line_of.put(
                (position - self.head - 1, submissions[i].line or 0)
                for i, position in zip(checked.written, positions, strict=True)
            )
        self._record(submissions, checked, duplicates, positions)
        self._trim()

    def _touch(self, keys: Sequence[str]) -> None:
        """The chunk's entities become the most recently used (``_Retention.touch``),
        under the key object the working set holds each by, not the chunk's copy of the
        same text (a string each, ~60 bytes, for as long as the entity is held)."""
        entities, lean = self.workspace.entities, self.workspace.lean

        def held(key: str) -> str | None:
            made = lean.get(key)
            if made is not None:
                return made.key
            entity = entities.get(key)
            return None if entity is None else entity.id

        self.retention.touch(keys, held)

    def _snapshots(self, rows: list[IndexRow]) -> None:
        """A licence gets a snapshot (carried by its last row of the chunk) once it has
        gained ``SNAPSHOT_EVERY`` events since its last one: an append after the import
        loads it with at most that many events after the snapshot, and the import does not
        encode a licence's state for every chunk that touches it."""
        last: dict[str, int] = {}
        for n, row in enumerate(rows):
            if row.entity_kind == "licence":
                last[f"licence:{row.entity_id}"] = n
        workspace, snapshotted = self.workspace, self.snapshotted
        mapper = self.app.msgspec_mapper
        for key, n in last.items():
            version = rows[n].originator_version
            if version - snapshotted.get(key, 0) < SNAPSHOT_EVERY:
                continue
            lean = workspace.lean.get(key)
            max_effective: dt.datetime | None
            if lean is not None:
                state, max_effective, held = lean.state, lean.max_effective, lean.version
                key = lean.key  # (the object the working set holds: not another copy)
            else:
                entity = workspace.entities[key]
                state, max_effective = entity.state(None), entity.max_effective
                held = entity.version
                key = entity.id
            if held != version or not isinstance(state, LicenceState) or max_effective is None:
                continue  # (a licence whose grant was retracted is loaded from its events)
            sealed = mapper.stored_event(
                key, version, "LicenceSnapshot", encode_snapshot(state, max_effective)
            ).state
            rows[n] = rows[n]._replace(snapshot=sealed)
            snapshotted[key] = version

    def _parse(self, block: list[tuple[int | None, bytes]]) -> list[Submission]:
        app = self.app
        in_chunk: dict[UUID, tuple[str, str]] = {}
        write = self.write

        def resolve(target: UUID) -> tuple[str, str] | None:
            if target in in_chunk:
                return in_chunk[target]
            entry = write.lookup([target]).get(target)
            return None if entry is None else (entry.entity_kind, entry.entity_id)

        actor = app.settings.actor
        # The batch's recorded time is known (the write lock is held): parse with it, so
        # the events need no second stamping.
        stamp = self.now if self.backfill else self.recorded_at
        out: list[Submission] = []
        for number, raw in block:
            s = parse_json(
                raw,
                line=number,
                actor=actor,
                now=stamp,
                backfill=self.backfill,
                resolve_retracted=resolve,
            )
            in_chunk[s.event.event_id] = (s.event.entity_kind, s.event.entity_id)
            out.append(s)
        return out

    def _sort_out_ids(
        self, submissions: Sequence[Submission], stored: dict[UUID, IndexEntry]
    ) -> tuple[list[int], dict[int, tuple[UUID, int]]]:
        """The chunk's new events, and its duplicates (-> the original id and position).
        An id stored before the import must match its content (or differ only in a
        defaulted effective time); an id earlier in the file must match its content."""
        first_seen: dict[UUID, Submission] = {}
        fresh: list[int] = []
        duplicates: dict[int, tuple[UUID, int]] = {}
        for i, s in enumerate(submissions):
            e = s.event
            entry = stored.get(e.event_id) if stored else None
            if entry is not None and entry.position <= self.head:
                check_resent(s, entry, self.app.stored_event)
                duplicates[i] = (e.event_id, entry.position)
                continue
            if entry is not None:  # earlier in this file, in an earlier chunk
                check_repeated(
                    s, entry.content_hash, self.line_of.get(entry.position - self.head - 1)
                )
                duplicates[i] = (e.event_id, 0 if self.dry_run else entry.position)
                continue
            earlier = first_seen.setdefault(e.event_id, s)
            if earlier is not s:
                check_repeated(s, earlier.content_hash, earlier.line)
                duplicates[i] = (e.event_id, -1)  # position known once the chunk is written
                continue
            fresh.append(i)
        return fresh, duplicates

    def _check_backfill(
        self, submissions: Sequence[Submission], stored: dict[UUID, IndexEntry]
    ) -> None:
        """Backfilled recorded times: not in the future, not before the ledger's latest,
        never decreasing along the file (re-sends of stored events keep theirs)."""
        last, current = self.last, self.now
        for s in submissions:
            entry = stored.get(s.event.event_id)
            if entry is not None and entry.position <= self.head:
                continue
            self.previous = check_backfilled_time(
                s, now=current, latest=last, previous=self.previous
            )

    def _record(
        self,
        submissions: Sequence[Submission],
        checked: Any,
        duplicates: dict[int, tuple[UUID, int]],
        positions: list[int],
    ) -> None:
        result, spool, dry_run = self.result, self.spool, self.dry_run
        position_of = dict(zip(checked.written, positions, strict=False))
        if positions and not dry_run:
            if result.first_position is None:
                result.first_position = positions[0]
            result.last_position = positions[-1]
        shipment_dupes: dict[int, UUID] = checked.shipment_dupes
        by_id: dict[UUID, int] = {}
        if any(p == -1 for _, p in duplicates.values()) or shipment_dupes:
            by_id = {submissions[i].event.event_id: p for i, p in position_of.items()}
        originals = {}
        if shipment_dupes:
            originals = self.write.lookup(list(dict.fromkeys(shipment_dupes.values())))
        for i, s in enumerate(submissions):
            e = s.event
            status: str
            original: UUID | None = None
            if i in position_of:
                status, position = ("valid", 0) if dry_run else ("appended", position_of[i])
                entity = checked.keys[i]
            else:
                status = "duplicate"
                entity = e.entity
                if i in duplicates:
                    original, position = duplicates[i]
                    if position == -1:
                        position = 0 if dry_run else by_id.get(original, 0)
                else:
                    original = shipment_dupes[i]
                    entry = originals.get(original)
                    if entry is not None and (entry.position <= self.head or not dry_run):
                        position = entry.position
                    else:
                        position = 0 if dry_run else by_id.get(original, 0)
            if status == "appended":
                result.appended += 1
            elif status == "valid":
                result.valid += 1
            else:
                result.duplicates += 1
            if spool is not None:
                outcome: dict[str, Any] = {
                    "line": s.line,
                    "event_id": str(e.event_id),
                    "type": type(e).__name__,
                    "entity": entity,
                    "status": status,
                    "position": position,
                }
                if original is not None:
                    outcome["duplicate_of"] = str(original)
                spool.add(outcome)

    def _trim(self) -> None:
        """After a chunk is written: entities of many events keep only their state, and
        those ``_Retention`` puts first are dropped while the working set is over its
        budget.  What it then holds is charged to the store's page cache
        (``EventWrite.charge_cache``): on SQLite the working set and the page cache
        together stay within the cache's size, so the import's memory does not grow
        with the entities a file keeps in play."""
        held = self.workspace.trim(self.retention, self.decoded_bytes, self._drop_licences)
        self.write.charge_cache(held)


class _LineNumbers:
    """The line number of each written event by its offset from the import's first
    position, kept in a temporary file (4 bytes an event; in memory up to 1 MiB): only a
    repeated event id reads one back, to name the line it first appeared on, so a long
    file's numbers need not stay in memory."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115

    def put(self, numbered: Iterable[tuple[int, int]]) -> None:
        """Record ``(offset, line)`` pairs (a chunk's; offsets not given read back as 0)."""
        pairs = sorted(numbered)
        if not pairs:
            return
        first = pairs[0][0]
        block = array("I", bytes(4 * (pairs[-1][0] - first + 1)))
        for offset, line in pairs:
            block[offset - first] = line
        self.file.seek(4 * first)  # (past the end: the gap reads back as zeros)
        self.file.write(block.tobytes())

    def get(self, offset: int) -> int:
        self.file.seek(4 * offset)
        raw = self.file.read(4)
        return array("I", raw)[0] if len(raw) == 4 else 0

    def close(self) -> None:
        self.file.close()


class _Lean:
    """An entity whose events are all written, held as its state over all effective
    times: enough for every question about it at or after its latest effective time, and
    for the events that arrive in effective order (the common case).  A licence's
    shipment ids are asked of the store's shipment index (a chunk's at once), not held:
    what the entity holds stays the same however many shipments it has."""

    __slots__ = (
        "found",
        "key",
        "max_effective",
        "pending",
        "recent",
        "snapshot",
        "spilled",
        "state",
        "version",
    )

    def __init__(self, key: str, state: st.State, max_effective: dt.datetime, version: int):
        self.key = key
        """The key the working set holds it by (the import's tables share this object)."""
        self.state: st.State | None = state
        self.max_effective = max_effective
        self.version = version
        self.spilled = -1
        """The version of its copy in the working set's spill (-1: none known)."""
        self.snapshot = 0
        """While spilled: the version of its snapshot (``_Import.snapshotted``), if any."""
        # The three below are made when first needed and dropped at each trim: most lean
        # entities are not touched by the next chunk, and three empty containers would be
        # ~180 bytes of the ~1 KB each holds.
        self.pending: list[ev.Event] | None = None
        """Events folded in since, not yet written."""
        self.recent: dict[str, ev.LicenceUsageRecorded] | None = None
        """The shipments among ``pending``, by id."""
        self.found: dict[str, ev.LicenceUsageRecorded | None] | None = None
        """Shipment ids of this chunk looked up in the store's index (None: not recorded)."""


LEAN_BYTES = 900
LEAN_LICENCE_BYTES = 1300
ENTITY_BYTES = 800
EVENT_BYTES = 1000
"""About what each takes in memory (a lean entity, a lean licence: its state and what
the import keeps about it; a full one, besides its events; an event), measured with
tracemalloc on ``bench_import``'s events, for the budget."""


DECODED_SHARE = 6
"""A two-tier working set (``_ImportWorkspace.spill``) holds a sixth of its budget
decoded (4 MB of 24: ``bench_import``'s 100k-event file's 3,001 entities, so a small
file spills nothing) and spends the rest on the spill's index."""

RESTORED_BYTES = 400
"""What a lean entity decoded from the spill takes beyond one made from its events: its
strings decoded afresh ("DE", "end-user", "general", item codes), not shared (measured
with ``bench_import``'s entities: a party 1,299 bytes against 916, a licence 1,574
against 1,205)."""

SPILLED_BYTES = 200
"""What the spill's index takes in memory for each entity it keeps (its key, and where
its copy is in the file: ~150 bytes measured)."""


class _SpilledLean(msgspec.Struct, Generic[_S], array_like=True, gc=False):
    """A lean entity as the two-tier working set's spill keeps it: msgspec decodes a
    dataclass only as a declared type, so there is one decoder per state type (the
    first byte of each copy).  JSON, not msgpack: msgpack keeps a datetime as a UTC
    timestamp, and an event's time keeps the offset it was given."""

    key: str
    state: _S
    max_effective: dt.datetime
    version: int
    snapshot: int


_LEAN_TYPES: tuple[type[Any], ...] = typing.get_args(st.State)
_LEAN_CODES: dict[type[Any], bytes] = {t: bytes([n]) for n, t in enumerate(_LEAN_TYPES)}
_lean_encoder = msgspec.json.Encoder()
_lean_decoders = [
    msgspec.json.Decoder(_SpilledLean[t]).decode  # type: ignore[valid-type]
    for t in _LEAN_TYPES
]


def _dump_lean(made: _Lean) -> bytes:
    """``made`` as the spill keeps it (its state's type code, then ``_SpilledLean``)."""
    return _LEAN_CODES[type(made.state)] + _lean_encoder.encode(
        _SpilledLean(made.key, made.state, made.max_effective, made.version, made.snapshot)
    )


def _load_lean(blob: bytes | memoryview) -> _Lean:
    copy = _lean_decoders[blob[0]](memoryview(blob)[1:])
    made = _Lean(copy.key, copy.state, copy.max_effective, copy.version)
    made.spilled, made.snapshot = copy.version, copy.snapshot
    return made


GHOST_SLOT_BYTES = 8
"""What one slot of the working set's memory of evicted entities takes (``_Retention``):
a 4-byte CRC-32 of the key and the 4-byte chunk it was last touched in, in two arrays."""

GHOST_SLOTS_MAX = 1 << 20
"""The ghosts' slots at most (8 MiB): twice the entities a budget of ~450 MB holds."""


class _Retention:
    """Which entities the working set keeps between chunks, and which go first.

    Two tables, each least recently used first, map a key to the chunk that last touched
    it: *kept* entities, which stay while the budget allows, and the *probation* of the
    others (just loaded, or held only since their first touch).  An entity becomes a
    candidate for kept when a chunk touches it again - held since an earlier chunk, or
    loaded back after it was evicted, which the *ghosts* tell (``_Ghosts``: the evicted
    keys' CRC-32 and the chunk each was last touched in, in fixed tables; memory does
    not grow with the file).  Candidates are admitted
    closest reuse first while the kept ones fit in ``room``; beyond that one displaces the
    least recently used kept entity only if that one has been idle for longer than the
    candidate's reuse distance (as LIRS does), so a cycle through more entities than the
    budget holds keeps a steady part held (hit at every turn) instead of evicting each just
    before its next turn, and kept entities that stopped being touched give way in time.
    Entities loaded once and never touched again (a file's registrations) stay in probation
    and go first."""

    __slots__ = (
        "candidates",
        "chunk",
        "ghosts",
        "kept",
        "kept_licences",
        "probation",
    )

    def __init__(self, ghost_slots: int) -> None:
        self.kept: dict[str, int] = {}
        self.probation: dict[str, int] = {}
        self.kept_licences = 0
        """How many of ``kept`` are licences (they take more memory)."""
        self.chunk = 0
        self.candidates: list[tuple[int, str]] = []
        """This chunk's candidates for kept: (reuse distance in chunks, key)."""
        self.ghosts = _Ghosts(ghost_slots)

    @property
    def ghost_bytes(self) -> int:
        return GHOST_SLOT_BYTES * self.ghosts.slots

    @property
    def kept_bytes(self) -> int:
        """The kept entities at what each takes lean."""
        licences = self.kept_licences
        return LEAN_BYTES * (len(self.kept) - licences) + LEAN_LICENCE_BYTES * licences

    def __contains__(self, key: str) -> bool:
        return key in self.kept or key in self.probation

    def __iter__(self) -> Iterator[str]:
        return chain(self.kept, self.probation)

    def touch(self, keys: Iterable[str], held: Callable[[str], str | None]) -> None:
        """A chunk names these entities (each once): they become the most recently used.
        ``held``: the key object the working set holds an entity by (None: not held), so
        that the tables share it rather than keep the chunk's copy of the text."""
        self.chunk += 1
        chunk = self.chunk
        kept, probation, candidates = self.kept, self.probation, self.candidates
        for key in keys:
            if kept.pop(key, None) is not None:
                kept[held(key) or key] = chunk
                continue
            since = probation.pop(key, None)
            holding = held(key)
            if holding is not None:
                if since is not None and since < chunk:
                    candidates.append((chunk - since, holding))
                probation[holding] = chunk
                continue
            last = self.ghosts.recall(key)
            if last is not None:
                candidates.append((chunk - last, key))
            probation[key] = chunk

    def admit(self, room: int) -> None:
        """Admit this chunk's candidates to kept, closest reuse first, while the kept
        entities fit in ``room`` bytes; past it a candidate displaces the least recently
        used kept entity only if that one has been idle longer than the candidate's reuse
        distance (the displaced one is held on, in neither table: it goes first)."""
        if not self.candidates:
            return
        candidates = sorted(self.candidates)
        self.candidates = []
        kept, probation, chunk = self.kept, self.probation, self.chunk
        free = room - self.kept_bytes
        oldest: Iterator[tuple[str, int]] | None = None
        for distance, key in candidates:
            if key not in probation:
                continue
            licence = key.startswith("licence:")
            need = LEAN_LICENCE_BYTES if licence else LEAN_BYTES
            while free < need:
                if oldest is None:
                    oldest = iter(list(kept.items()))
                entry = next(oldest, None)
                if entry is None or chunk - entry[1] <= distance:
                    break
                idle = entry[0]
                del kept[idle]
                if idle.startswith("licence:"):
                    self.kept_licences -= 1
                    free += LEAN_LICENCE_BYTES
                else:
                    free += LEAN_BYTES
            if free < need:
                continue
            del probation[key]
            kept[key] = chunk
            free -= need
            if licence:
                self.kept_licences += 1

    def evict(
        self,
        untouched: Iterable[str],
        held: int,
        target: int,
        budget: int,
        bytes_of: Callable[[str], int | None],
    ) -> list[str]:
        """The keys to drop: first those held but in neither table (loaded by a rule's
        question, or displaced from kept), then probation, each least recently used first,
        until ``held`` bytes are down to ``target``; then kept ones, least recently used
        first, only while over ``budget``.  They leave the tables, and the touched ones are
        remembered as ghosts.  ``bytes_of``: what a key holds (None: nothing held, an
        entity not recorded yet: it leaves the tables too)."""
        dropped: list[str] = []

        def drop(keys: Iterable[str], held: int, down_to: int) -> int:
            for key in keys:
                if held <= down_to:
                    break
                size = bytes_of(key)
                if size is not None:
                    held -= size
                dropped.append(key)
            return held

        held = drop(chain(untouched, self.probation), held, target)
        drop(self.kept, held, budget)
        kept, probation = self.kept, self.probation
        for key in dropped:
            last = probation.pop(key, None)
            if last is None:
                last = kept.pop(key, None)
                if last is not None and key.startswith("licence:"):
                    self.kept_licences -= 1
            if last is not None:
                self.ghosts.remember(key, last)
        return dropped


class _Ghosts:
    """The keys evicted lately, each with the chunk it was last touched in: two
    generations of ``slots // 2`` slots (a key's CRC-32 and that chunk, 4 bytes each, in
    arrays), the newer one written to, looked up in both; once the newer one has taken as
    many keys as it has slots it becomes the older one and the oldest is cleared.  A slot
    is the key's CRC mixed with a salt of its generation, so that two keys which share a
    slot in one generation (each overwriting the other, neither ever found) do not in the
    next.  Empty until the first eviction (an import that evicts nothing makes none)."""

    __slots__ = ("at", "crc", "generation", "older_at", "older_crc", "salts", "size", "taken")

    def __init__(self, slots: int) -> None:
        self.size = max(1, min(slots, GHOST_SLOTS_MAX) // 2)
        self.crc, self.at = array("I"), array("I")
        self.older_crc, self.older_at = array("I"), array("I")
        self.generation = 0
        self.salts = (0, 0)
        """(the newer generation's, the older's)."""
        self.taken = 0

    @property
    def slots(self) -> int:
        return 2 * self.size

    def remember(self, key: str, last: int) -> None:
        if self.taken >= self.size or not self.crc:
            self.older_crc, self.older_at = self.crc, self.at
            self.crc = array("I", bytes(4 * self.size))
            self.at = array("I", bytes(4 * self.size))
            self.generation += 1
            self.salts = ((self.generation * 0x9E3779B1) & 0xFFFFFFFF, self.salts[0])
            self.taken = 0
        crc = zlib.crc32(key.encode()) or 1  # (0 marks an empty slot)
        slot = (crc ^ self.salts[0]) % self.size
        self.crc[slot] = crc
        self.at[slot] = last
        self.taken += 1

    def recall(self, key: str) -> int | None:
        """The chunk that last touched ``key`` before it was evicted (None: not known)."""
        if not self.crc:
            return None
        crc = zlib.crc32(key.encode()) or 1
        slot = (crc ^ self.salts[0]) % self.size
        if self.crc[slot] == crc:
            return self.at[slot]
        if self.older_crc:
            slot = (crc ^ self.salts[1]) % self.size
            if self.older_crc[slot] == crc:
                return self.older_at[slot]
        return None


StoredShipments = Callable[
    [Mapping[str, tuple[LicenceState, Sequence[str]]]],
    dict[str, dict[str, ev.LicenceUsageRecorded]],
]
"""Licence key -> (its state, shipment ids): the stored usage events recording them that
the state folded, by licence key and shipment id (the store's shipment index, read in the
import's transaction)."""


class _ImportWorkspace(Workspace):
    """The working set of a streaming import: full entities (their events) and lean ones
    (``_Lean``), reloaded from the write transaction when a question needs the events.
    A licence dropped from the working set comes back from its snapshot (written when it
    is dropped) and the few events after it, not from its whole history."""

    def __init__(
        self,
        load: Loader,
        snapshots: SnapshotLoader | None = None,
        stored_shipments: StoredShipments | None = None,
    ):
        super().__init__(load, snapshots)
        self.loader = load
        self.stored_shipments = stored_shipments
        """None: the store's shipment index does not cover the ledger (a dry run on a
        ledger from before it), so licences stay full."""
        self.lean: dict[str, _Lean] = {}
        self.lean_licences = 0
        """How many of ``lean`` are licences (they take more memory)."""
        self.reloads = 0
        self.spill: EntitySpill | None = None
        """Two-tier: where lean entities trimmed from memory wait, encoded (None: they
        are dropped, and come back from the store)."""
        self.spill_max = 0
        """The most entities ``spill`` keeps (its index is in memory: ``SPILLED_BYTES``
        each); past it those spilled first are dropped as without a spill."""
        self.restored = 0
        """Entities brought back from ``spill``."""
        self.snapshotted: dict[str, int] = {}
        """Licence key -> the version of its snapshot (the import's table; a spilled
        licence's entry travels with its copy)."""

    def prefetch(
        self, keys: Iterable[str], *, shipments: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        lean = self.lean
        if self.spill is not None and len(self.spill):
            keys = list(dict.fromkeys(keys))
            entities, spilled = self.entities, self.spill.keys()
            self._restore([k for k in keys if k in spilled and k not in lean and k not in entities])
        super().prefetch((k for k in keys if k not in lean), shipments=shipments)
        if shipments and self.stored_shipments is not None:
            self._look_up(shipments)

    def _restore(self, keys: list[str]) -> None:
        """These lean entities back from the spill (their copy stays there: one that
        leaves again unchanged is not written again)."""
        if not keys:
            return
        assert self.spill is not None
        lean, snapshotted = self.lean, self.snapshotted
        for key, made in self.spill.take(keys).items():
            lean[key] = made
            if made.snapshot:
                snapshotted[key] = made.snapshot
            if key.startswith("licence:"):
                self.lean_licences += 1
        self.restored += len(keys)

    def _look_up(self, asked: Mapping[str, Sequence[str]]) -> None:
        """Look these shipment ids (licence key -> ids) up in the store at once, for the
        lean licences and those loaded from a snapshot."""
        assert self.stored_shipments is not None
        wanted: dict[str, tuple[LicenceState, Sequence[str]]] = {}
        for key, ids in asked.items():
            lean = self.lean.get(key)
            if lean is not None:
                state = lean.state
                known = lean.found
                ids = ids if known is None else [s for s in ids if s not in known]
            else:
                entity = self.entities.get(key)
                if entity is None or not entity.from_snapshot_still:
                    continue  # (its events are held: it knows its shipments)
                state = entity.state(None)
            if ids and isinstance(state, LicenceState):
                wanted[key] = (state, ids)
        if not wanted:
            return
        found = self.stored_shipments(wanted)
        for key, (_, ids) in wanted.items():
            recorded = found.get(key, {})
            lean = self.lean.get(key)
            if lean is not None:
                if lean.found is None:
                    lean.found = {}
                for s in ids:
                    lean.found[s] = recorded.get(s)
            else:
                self.entities[key].shipments_found(ids, recorded)

    def _full(self, key: str) -> Entity:
        """The lean entity ``key`` with its events again (stored ones, then pending)."""
        lean = self.lean.pop(key)
        key = lean.key
        if key.startswith("licence:"):
            self.lean_licences -= 1
        self.reloads += 1
        entity = Entity(key)
        for recorded in self.loader([key]).get(key, ()):
            entity.add(recorded.event)
            entity.version = recorded.originator_version
        for e in lean.pending or ():
            entity.add(e)
        if entity.version != lean.version:
            raise StoreError(f"{key}: version {entity.version} reloaded, {lean.version} held")
        self.entities[key] = entity
        return entity

    def _held(self, key: str) -> _Lean | None:
        """The lean entity ``key``, brought back from the spill if it waits there: every
        question about an entity the chunk did not prefetch (a rule's, a retraction's)
        asks here first, so none reads the store past a newer copy in the spill."""
        lean = self.lean.get(key)
        spill = self.spill
        if lean is None and spill is not None and key in spill and key not in self.entities:
            self._restore([key])
            lean = self.lean.get(key)
        return lean

    def entity(self, kind: str, entity_id: str) -> Entity:
        key = f"{kind}:{entity_id}"
        if self._held(key) is not None:
            return self._full(key)
        return super().entity(kind, entity_id)

    def events(self, kind: str, entity_id: str) -> Sequence[ev.Event]:
        return self.entity(kind, entity_id).events

    def state(self, kind: str, entity_id: str, as_of: dt.datetime | None) -> st.State | None:
        lean = self._held(f"{kind}:{entity_id}")
        if lean is not None and (as_of is None or as_of >= lean.max_effective):
            return lean.state
        return super().state(kind, entity_id, as_of)

    def shipment(self, licence_id: str, shipment_id: str) -> ev.LicenceUsageRecorded | None:
        key = f"licence:{licence_id}"
        lean = self._held(key)
        if lean is None:
            return super().shipment(licence_id, shipment_id)
        if lean.recent is not None:
            folded = lean.recent.get(shipment_id)  # (later than any stored: the fold keeps it)
            if folded is not None:
                return folded
        if lean.found is None or shipment_id not in lean.found:
            self._look_up({key: [shipment_id]})
        return None if lean.found is None else lean.found.get(shipment_id)

    def add(self, e: ev.Event) -> Any:
        """Fold an accepted event in; returns what holds its entity's ``version``."""
        lean = self._held(f"{e.entity_kind}:{e.entity_id}")
        if lean is None or type(e) is ev.EventRetracted or e.effective_at < lean.max_effective:
            return super().add(e)  # (a lean entity is made full first: self.entity)
        # As Entity.add folds an event in effective order.
        lean.state = st.evolve(lean.state, e)
        lean.max_effective = e.effective_at
        lean.version += 1
        if lean.pending is None:
            lean.pending = [e]
        else:
            lean.pending.append(e)
        if type(e) is ev.LicenceUsageRecorded:
            if lean.recent is None:
                lean.recent = {}
            lean.recent[e.shipment_id] = e
        return lean

    def trim(self, retention: _Retention, budget: int, drop_licences: DropLicences) -> int:
        """Called once a chunk is written: pending events are stored now; entities become
        lean (a third of a full one's memory: a party of two events); ``retention`` admits
        the chunk's candidates to its kept entities (95 % of the budget at most, less its
        ghosts' memory); then, while over ``budget`` bytes, entities go, down to
        three quarters of it: those held but never touched by a chunk first, then the
        probation, then the kept ones, each least recently used first (``_Retention``).
        ``drop_licences`` is told of the licences that go (to snapshot them), before
        they do.  Returns what is held then (``held_bytes``)."""
        lean = self.lean
        for held_lean in lean.values():
            held_lean.pending = held_lean.recent = held_lean.found = None
        entities = self.entities
        licences_lean = self.stored_shipments is not None
        for key in list(entities):
            if not licences_lean and key.startswith("licence:"):
                continue
            made = _lean(key, entities[key])
            if made is not None:
                del entities[key]
                lean[key] = made
                if key.startswith("licence:"):
                    self.lean_licences += 1
        held = self.held_bytes(retention)
        retention.admit(budget - budget // 20 - retention.ghost_bytes)
        if held <= budget:
            return held

        def bytes_of(key: str) -> int | None:
            made = lean.get(key)
            if made is not None:
                extra = RESTORED_BYTES if made.spilled >= 0 else 0
                return extra + (LEAN_LICENCE_BYTES if key.startswith("licence:") else LEAN_BYTES)
            entity = entities.get(key)
            return None if entity is None else _full_bytes(entity)

        untouched = [k for k in (*entities, *lean) if k not in retention]
        dropped = retention.evict(untouched, held, budget * 3 // 4, budget, bytes_of)
        leaving = {
            k: lean.get(k) or _lean(k, entities[k]) for k in dropped if k in lean or k in entities
        }
        spillable = [lean[k] for k in dropped if k in lean]  # (not the full: no state)
        for key in dropped:
            gone = entities.pop(key, None) is None and lean.pop(key, None) is not None
            if gone and key.startswith("licence:"):
                self.lean_licences -= 1
        spilled: set[str] = set()
        if self.spill is not None:
            spilled = self._spill(spillable, drop_licences)
        drop_licences(
            {k: m for k, m in leaving.items() if k.startswith("licence:") and k not in spilled}
        )
        return self.held_bytes(retention)

    def _spill(self, leaving: list[_Lean], drop_licences: DropLicences) -> set[str]:
        """Keep these lean entities leaving memory in the spill (those not changed since
        their copy there was written are not written again); past ``spill_max`` those
        spilled first are dropped from it, licences with a snapshot.  Returns the keys
        now in the spill."""
        assert self.spill is not None
        spill, snapshotted = self.spill, self.snapshotted
        encodable = [m for m in leaving if type(m.state) in _LEAN_CODES]
        for made in encodable:
            made.snapshot = snapshotted.pop(made.key, 0)
        spill.put([m for m in encodable if m.spilled != m.version or m.key not in spill])
        over = len(spill) - self.spill_max
        if over > 0:
            oldest = spill.oldest(over + self.spill_max // 4)  # (not at every trim)
            lean, entities = self.lean, self.entities
            copies = spill.take(
                k
                for k in oldest
                if k.startswith("licence:") and k not in lean and k not in entities
            )  # (one held in memory is the truth: its copy is only forgotten)
            for key, made in copies.items():
                if made.snapshot:
                    snapshotted[key] = made.snapshot
            drop_licences(copies)
            spill.forget(oldest)
        return {m.key for m in encodable}

    def held_bytes(self, retention: _Retention) -> int:
        """What the working set holds, counted as the budget counts it."""
        held = sum(_full_bytes(x) for x in self.entities.values()) + retention.ghost_bytes
        extra = LEAN_LICENCE_BYTES - LEAN_BYTES
        if self.spill is not None:  # (those decoded from it share no strings: see RESTORED_BYTES)
            held += RESTORED_BYTES * sum(1 for m in self.lean.values() if m.spilled >= 0)
        return held + LEAN_BYTES * len(self.lean) + extra * self.lean_licences


def _full_bytes(entity: Entity) -> int:
    return ENTITY_BYTES + entity.events_held * EVENT_BYTES


DropLicences = Callable[[Mapping[str, "_Lean | None"]], None]
"""Told of the licences about to leave the working set (None: one with no state)."""


def _lean(key: str, entity: Entity) -> _Lean | None:
    """The entity as its state (None: it has none over all times, so it stays full)."""
    state = entity.state(None)
    max_effective = entity.max_effective
    if state is None or max_effective is None:
        return None
    return _Lean(key, state, max_effective, entity.version)


__all__ = ["ImportResult", "LedgerError", "import_lines"]
