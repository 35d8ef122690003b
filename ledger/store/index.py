"""What the ledger adds to the library's application recorder: the event index.

Both recorders (SQLite, PostgreSQL) write one index row per stored event in the same
transaction as the event itself.  The index gives the ledger what the library's tables
do not: lookup by event id (lasting idempotency), the two times as sortable integers
(microseconds UTC), and which event a retraction retracts.  It also guards the known-at
axis: recorded times never decrease along the notification log; an insert that would
break that raises ``RecordedTimeConflict`` and the append is retried with a fresh time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

if TYPE_CHECKING:
    from ledger.store.codec import IndexRow
    from ledger.store.tree import Port

INSERT_CHUNK_ROWS = 2000
"""Rows per INSERT statement when a write is larger: a statement's parameters stay small
(PostgreSQL: well below the sizes at which psycopg's pipeline mode deadlocked), and a
write of any size is a sequence of such statements in one transaction."""


class RecordedTimeConflict(IntegrityError):
    """A concurrent writer committed a later recorded time first; retry with a new time."""


@dataclass(frozen=True)
class IndexEntry:
    position: int
    event_id: UUID
    event_type: str
    entity_kind: str
    entity_id: str
    effective_us: int
    recorded_us: int
    content_hash: bytes


@dataclass(frozen=True)
class LogRow:
    position: int
    topic: str
    state: bytes
    retracted: bool


@dataclass(frozen=True)
class LogQuery:
    as_of_us: int | None = None
    known_at_us: int | None = None
    entity_kind: str | None = None
    entity_id: str | None = None
    types: tuple[str, ...] = ()
    include_retracted: bool = False
    after_position: int | None = None
    order: str = "effective"
    """``effective`` (effective time, then position) or ``recorded`` (position)."""
    payload_contains: bytes | None = None
    """Only events whose stored payload contains these bytes: a cheap pre-filter done by
    the database (e.g. a party id's JSON encoding); the caller still checks each event."""


class EventWrite(ABC):
    """One open write transaction of the event store: ``insert`` any number of times,
    everything commits together when the ``EventIndex.writing()`` block ends without an
    exception, and nothing does otherwise."""

    rehearsal = False
    """The caller will roll this write back (a dry run): the recorder skips its
    ``after_insert``/``before_commit`` hooks (nothing of theirs would be kept).  The
    shipment index and the snapshots are still written: a streaming import reads them
    back inside the transaction."""

    @abstractmethod
    def insert(
        self, stored_events: Sequence[StoredEvent], index_rows: Sequence[IndexRow]
    ) -> list[int]:
        """Write events and their index rows (one per event); returns their positions.

        The first insert of a write takes the store's write lock and checks that no
        later recorded time is stored (``RecordedTimeConflict``); a stored
        ``(originator_id, originator_version)`` raises the library's ``IntegrityError``."""

    charges_cache = False
    """Whether ``charge_cache`` takes a writer's working set on charge (a page cache in
    this process: SQLite's).  Where it does not, the import keeps its working set
    two-tier (``ledger.importing``), so its memory does not grow with what it holds."""

    def charge_cache(self, held_bytes: int) -> None:
        """The writer holds ``held_bytes`` of the store's data decoded in memory (the
        import's working set: what its reads would otherwise find in the page cache).  A
        store whose page cache is in this process (SQLite) gives up as much of that cache
        for the rest of the write, down to a quarter of its size, so the two together stay
        within the cache's configured size (as RocksDB charges its memtables to its block
        cache) and memory does not grow with what the writer holds; the cache is set back
        when the write ends.  Here: nothing (PostgreSQL's cache is the server's)."""
        return None

    # Reading inside the write: a streaming import checks each chunk against what the
    # earlier chunks wrote (uncommitted, so visible only in this transaction), instead of
    # holding the file in memory.

    @abstractmethod
    def lock(self) -> None:
        """Take the store's write lock now (before anything is read), so that what this
        transaction reads stays true until it commits: no other writer can append
        meanwhile, and nothing read has to be re-checked."""

    @abstractmethod
    def lookup(self, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        """``EventIndex.lookup`` inside this transaction (its own inserts included)."""

    @abstractmethod
    def select_entities(self, originator_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        """``EventIndex.select_entities`` inside this transaction."""

    @abstractmethod
    def last_recorded_us(self) -> int | None:
        """``EventIndex.last_recorded_us`` inside this transaction."""

    @abstractmethod
    def head(self) -> int:
        """The newest position inside this transaction (0: none)."""

    @abstractmethod
    def port(self) -> Port:
        """This transaction as a ``Port`` (the snapshot and shipment tables' reads and
        writes inside it)."""


class EventIndex(ABC):
    """Writes events with their index rows, and queries the index (implemented by both
    ledger recorders).

    **Extension point (rows written in the same transaction as the events).**  After
    each ``EventWrite.insert`` has written its events and index rows, the recorder calls
    ``after_insert(write, positions, index_rows, stored_events)``; once, just before the
    commit, it
    calls ``before_commit(write)``.  Both do nothing here; a subclass overrides them
    (calling ``super()``) and executes its SQL through ``write.cursor``, the backend's
    cursor inside the transaction (sqlite3 ``?`` or psycopg ``%s`` placeholders).  An
    exception from either rolls the whole write back.
    """

    @abstractmethod
    def writing(self) -> AbstractContextManager[EventWrite]:
        """A write transaction (see ``EventWrite``)."""

    def insert_events_with_index(
        self, stored_events: Sequence[StoredEvent], index_rows: Sequence[IndexRow]
    ) -> list[int]:
        """One write of events and their index rows; returns their positions."""
        with self.writing() as write:
            return write.insert(stored_events, index_rows)

    def after_insert(
        self,
        write: EventWrite,
        positions: Sequence[int],
        index_rows: Sequence[IndexRow],
        stored_events: Sequence[StoredEvent],
    ) -> None:
        """Hook: rows that must be written with these events (see the class doc); the
        Merkle tree hashes ``stored_events``' payloads."""
        return None

    def before_commit(self, write: EventWrite) -> None:
        """Hook: rows that must be written once per write transaction."""
        return None

    @abstractmethod
    def lookup(self, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        """Index entries of those event ids that are stored."""

    @abstractmethod
    def last_recorded_us(self) -> int | None:
        """The recorded time of the newest event (None for an empty ledger)."""

    @abstractmethod
    def select_entities(
        self, originator_ids: Sequence[str], *, upto: int | None = None
    ) -> dict[str, list[StoredEvent]]:
        """Stored events of many entities at once, each in version order (``upto``: only
        those stored at or before that position)."""

    @abstractmethod
    def stream_entities(
        self, originator_ids: Sequence[str], *, upto: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        """``select_entities`` one entity at a time, read from the cursor as it is
        iterated (entities in key order; those with no event are not yielded): a reader
        of many entities' histories then holds one entity's, not all of them (the views
        projector reloading after another projector moved the views).  Iterate it to
        the end (or close it): it keeps a read open until then."""

    @abstractmethod
    def select_log(self, query: LogQuery) -> Iterator[LogRow]:
        """Events in effective order (ties: position) visible per the query."""

    @abstractmethod
    def count_events(self) -> int:
        """How many events are stored."""

    def entity_keys(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` stored entity keys (``kind:id``) starting with ``prefix``, in
        order: what shell completion offers for an entity option."""
        return []

    @abstractmethod
    def select_payloads(
        self, after: int, limit: int, *, stop: int | None = None, skip_topics: Sequence[str] = ()
    ) -> list[tuple[int, str, bytes | None]]:
        """Up to ``limit`` stored events after position ``after`` (and at or before
        ``stop``), in position order, as ``(position, topic, stored state)``; the state is
        None for ``skip_topics`` (counted, not fetched).

        What the notification log gives, without building a notification object per
        event or reading payloads nobody decodes: a catch-up's reading loop."""


def group_by_entity(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[str, list[StoredEvent]]]:
    """Rows ``(originator_id, originator_version, topic, state)`` in originator order as
    one list of stored events an originator (``stream_entities`` on either store)."""
    key: str | None = None
    events: list[StoredEvent] = []
    for row in rows:
        if row[0] != key:
            if key is not None:
                yield key, events
            key, events = row[0], []
        events.append(StoredEvent(row[0], row[1], row[2], bytes(row[3])))
    if key is not None:
        yield key, events
