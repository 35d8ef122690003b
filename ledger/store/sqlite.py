"""SQLite storage: the library's SQLite recorder plus the ledger's event index.

Connections run in WAL mode with ``synchronous=FULL`` (a commit is durable when it
returns) and a busy timeout, so concurrent CLI processes wait for the write lock instead
of failing.  Notification ids are SQLite rowids, assigned in commit order.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any
from uuid import UUID

from eventsourcing.persistence import PersistenceError, ProgrammingError, StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from ledger.checkpoint import SigningKey
from ledger.store.codec import IndexRow
from ledger.store.index import (
    EventIndex,
    EventWrite,
    IndexEntry,
    LogQuery,
    LogRow,
    RecordedTimeConflict,
    group_by_entity,
)
from ledger.store.snapshots import SnapshotTables
from ledger.store.tree import TreeTables
from ledger.store.wake import mark_commit

CACHE_SIZE_KIB = 65536
SQLITE_CACHE_KIB = "SQLITE_CACHE_KIB"
SQLITE_MMAP_SIZE = "SQLITE_MMAP_SIZE"
"""Factory environment keys overriding ``CACHE_SIZE_KIB`` and ``MMAP_SIZE_BYTES``."""
JOURNAL_SIZE_LIMIT_BYTES = 64 << 20
"""The WAL file shrinks back to this once a checkpoint has copied it into the database.
SQLite otherwise keeps it at its largest (hundreds of megabytes after a views rebuild
or a big import) for good."""
LOCK_TIMEOUT_SECONDS = 5.0
"""How long a new connection waits out a lock when the pool has no lock timeout (the
library's own default)."""
MMAP_SIZE_BYTES = 1 << 31
"""Reads go through a memory map of the file (SQLite caps it at its build's maximum,
2 GiB here): a page already in the OS cache is read without copying it into SQLite's
own cache.  The views' as-of listings read thousands of scattered record bodies, so
copying is much of their cost.  Writes are unchanged (SQLite still writes with write())."""


class LedgerSQLiteConnectionPool(SQLiteConnectionPool):
    """The library's pool; each new connection also gets the ledger's settings.

    ``_create_connection`` is the pool's factory method (the library's own subclasses
    override it the same way); docs/architecture.md names it, and
    ``test_sqlite_connections_carry_the_ledger_settings`` fails if it stops being called.
    """

    cache_kib = CACHE_SIZE_KIB
    mmap_bytes = MMAP_SIZE_BYTES
    """Set from the factory's ``SQLITE_CACHE_KIB`` / ``SQLITE_MMAP_SIZE`` (a views
    rebuild lowers both: ``ledger.projections.runner.open_app``)."""

    def _create_connection(self) -> SQLiteConnection:
        conn = self._connect_waiting()
        with conn.cursor() as cursor:
            if not self.is_sqlite_memory_mode:
                cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA cache_size=-{int(self.cache_kib)}")
            if not self.is_sqlite_memory_mode:
                cursor.execute(f"PRAGMA mmap_size={int(self.mmap_bytes)}")
                cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
        return conn

    def _connect_waiting(self) -> SQLiteConnection:
        """The library's new connection, tried again while the database is locked, up
        to the lock timeout.  Two processes opening a new ledger at once both switch it
        to WAL (the library's ``PRAGMA journal_mode=WAL``), and the one that meets the
        other's lock there gets "database is locked" at once, not after the busy
        timeout: seen 4 Dec 2026 as a writer of ``test_merkle_crash`` that never
        started (two ``ledger append`` on a new home would fail the same way)."""
        deadline = time.monotonic() + float(self.lock_timeout or LOCK_TIMEOUT_SECONDS)
        pause = 0.005
        while True:
            try:
                return super()._create_connection()
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or (
                    time.monotonic() + pause > deadline
                ):
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.1)


class SQLitePort:
    """``ledger.store.tree.Port`` over one SQLite connection (inside its transaction)."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self.connection.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.connection.execute(sql, params).fetchall()]

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        cursor.row_factory = None  # plain tuples: a verify streams every event
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(4096):
            yield from rows

    def pages(
        self, sql: str, size: int, params: Sequence[Any] = ()
    ) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self.connection.cursor()
        cursor.row_factory = None
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(size):
            yield rows

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.connection.executemany(sql, rows)


class LedgerSQLiteRecorder(SQLiteApplicationRecorder, EventIndex):
    """Application recorder that also writes and queries the event index, and extends
    the Merkle tree (``ledger.store.tree``) in the transaction that writes events."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        self.index_table = f"{events_table_name}_index"
        self.tree = TreeTables(
            events_table_name,
            "rowid",
            f"{events_table_name}_merkle_batches",
            f"{events_table_name}_merkle_leaves",
            f"{events_table_name}_merkle_nodes",
            f"{events_table_name}_merkle_meta",
            postgres=False,
        )
        self.snapshot_tables = SnapshotTables(
            self.index_table,
            events_table_name,
            "rowid",
            f"{events_table_name}_shipments",
            f"{events_table_name}_snapshots",
            f"{events_table_name}_snapshot_meta",
            postgres=False,
        )
        self.payload_of: Callable[[bytes], bytes] = bytes
        """The event's JSON bytes from stored state (the ledger's mapper undoes a cipher)."""
        self.signer: Callable[[], SigningKey | None] = lambda: None
        """The key that signs each write's checkpoint (the ledger sets it)."""
        super().__init__(datastore, events_table_name)
        self.insert_index_statement = f"INSERT INTO {self.index_table} VALUES (?,?,?,?,?,?,?,?,?,?)"

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        t = self.index_table
        statements += [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "notification_id INTEGER PRIMARY KEY, "
            "event_id BLOB NOT NULL, "
            "event_type TEXT NOT NULL, "
            "entity_kind TEXT NOT NULL, "
            "entity_id TEXT NOT NULL, "
            "effective_us INTEGER NOT NULL, "
            "recorded_us INTEGER NOT NULL, "
            "content_hash BLOB NOT NULL, "
            "retracts BLOB, "
            "originator_version INTEGER NOT NULL)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_event_id ON {t} (event_id)",
            f"CREATE INDEX IF NOT EXISTS {t}_effective ON {t} (effective_us)",
            f"CREATE INDEX IF NOT EXISTS {t}_retracts ON {t} (retracts) WHERE retracts IS NOT NULL",
            *self.tree.create_statements,
            *self.snapshot_tables.create_statements,
        ]
        return statements

    @contextmanager
    def tree_port(self, *, write: bool = False) -> Iterator[SQLitePort]:
        """One transaction on the tree and the events (a consistent snapshot to read)."""
        with self.datastore.transaction(commit=write) as c:
            yield SQLitePort(c.sqlite_cursor.connection)

    def read_port(self) -> AbstractContextManager[SQLitePort]:
        """A read transaction (under WAL, reads neither wait for nor block writers)."""
        return self.tree_port()

    def after_insert(
        self,
        write: EventWrite,
        positions: Sequence[int],
        index_rows: Sequence[IndexRow],
        stored_events: Sequence[StoredEvent],
    ) -> None:
        """The new events become leaves of the Merkle tree, signed as a checkpoint (same
        transaction; their shipment rows and snapshots were written with them:
        ``SQLiteEventWrite.insert``).

        A checkpoint per write, not per transaction: a streamed import writes a chunk at a
        time in one transaction, and a consumer verifying the stream holds every message
        until a checkpoint covers it, so one checkpoint per chunk bounds what it holds
        (500 signatures for a million events, ~0.1 ms each); a single large write is
        signed at every multiple of ``CHECKPOINT_EVERY`` leaves as well."""
        super().after_insert(write, positions, index_rows, stored_events)
        assert isinstance(write, SQLiteEventWrite)
        port = write.port()
        tip = self.tree.tip(port, before=positions[0])
        payload_of = self.payload_of
        self.tree.extend(
            port, tip, positions, [payload_of(e.state) for e in stored_events], self.signer()
        )

    # --- writing ------------------------------------------------------------------------

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's call; with ``index_rows`` (the ledger's writes) it is one
        ``writing()`` transaction."""
        index_rows: Sequence[IndexRow] | None = kwargs.pop("index_rows", None)
        if index_rows is None:
            return super().insert_events(stored_events, **kwargs)
        return self.insert_events_with_index(stored_events, index_rows)

    @contextmanager
    def writing(self) -> Iterator[SQLiteEventWrite]:
        with self.datastore.transaction(commit=True) as c:
            write = SQLiteEventWrite(self, c)
            try:
                yield write
                self.before_commit(write)
            finally:
                write.restore_cache()  # (the connection goes back to the pool)
        pool = self.datastore.pool
        if write.wrote and not pool.is_sqlite_memory_mode:
            # Committed and visible: followers on this machine (relay, projector) read now.
            mark_commit(pool.db_name)

    def write_chunk(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        index_rows: Sequence[IndexRow],
    ) -> list[int]:
        if len(index_rows) != len(stored_events):
            raise ProgrammingError("one index row per stored event is required")
        if not stored_events:
            return []
        rows = [
            (
                s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                s.originator_version,
                s.topic,
                s.state,
            )
            for s in stored_events
        ]
        # The first insert takes the write lock (waiting on the busy timeout); then rowids
        # are consecutive because nothing else can write and rows are never deleted.
        c.execute(self.insert_events_statement, rows[0])
        first = c.lastrowid
        assert isinstance(first, int)
        if len(rows) > 1:
            c.executemany(self.insert_events_statement, rows[1:])
        last = first + len(rows) - 1
        c.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}")
        if c.fetchone()[0] != last:
            raise ProgrammingError("notification ids were not assigned consecutively")
        ids = list(range(first, last + 1))
        self._check_recorded_order(c, first, min(r.recorded_us for r in index_rows))
        c.executemany(
            self.insert_index_statement,
            [
                (
                    n,
                    r.event_id.bytes,
                    r.event_type,
                    r.entity_kind,
                    r.entity_id,
                    r.effective_us,
                    r.recorded_us,
                    r.content_hash,
                    r.retracts.bytes if r.retracts is not None else None,
                    r.originator_version,
                )
                for n, r in zip(ids, index_rows, strict=True)
            ],
        )
        return ids

    def _check_recorded_order(self, c: SQLiteCursor, first_id: int, earliest_us: int) -> None:
        c.execute(
            f"SELECT recorded_us FROM {self.index_table} WHERE notification_id < ? "
            "ORDER BY notification_id DESC LIMIT 1",
            (first_id,),
        )
        row = c.fetchone()
        if row is not None and row[0] > earliest_us:
            raise RecordedTimeConflict(
                "a later recorded time was committed concurrently; retry with a fresh time"
            )

    # --- the event index ----------------------------------------------------------------

    def lookup(self, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        with self.datastore.transaction(commit=False) as c:
            return self.lookup_in(c, event_ids)

    def lookup_in(self, c: SQLiteCursor, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        out: dict[UUID, IndexEntry] = {}
        ids = [u.bytes for u in event_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            c.execute(
                "SELECT notification_id, event_id, event_type, entity_kind, entity_id, "
                "effective_us, recorded_us, content_hash "
                f"FROM {self.index_table} WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in c.fetchall():
                entry = IndexEntry(
                    row[0],
                    UUID(bytes=row[1]),
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    row[7],
                )
                out[entry.event_id] = entry
        return out

    def last_recorded_us(self) -> int | None:
        with self.datastore.transaction(commit=False) as c:
            return self.last_recorded_us_in(c)

    def last_recorded_us_in(self, c: SQLiteCursor) -> int | None:
        c.execute(
            f"SELECT recorded_us FROM {self.index_table} ORDER BY notification_id DESC LIMIT 1"
        )
        row = c.fetchone()
        return None if row is None else int(row[0])

    def select_entities(
        self, originator_ids: Sequence[str], *, upto: int | None = None
    ) -> dict[str, list[StoredEvent]]:
        with self.datastore.transaction(commit=False) as c:
            return self.select_entities_in(c, originator_ids, upto=upto)

    def select_entities_in(
        self, c: SQLiteCursor, originator_ids: Sequence[str], *, upto: int | None = None
    ) -> dict[str, list[StoredEvent]]:
        out: dict[str, list[StoredEvent]] = {}
        ids = list(dict.fromkeys(originator_ids))
        for start in range(0, len(ids), 500):
            self._select_entities_chunk(c, ids[start : start + 500], upto)
            for row in c.fetchall():
                out.setdefault(row[0], []).append(StoredEvent(row[0], row[1], row[2], row[3]))
        return out

    def stream_entities(
        self, originator_ids: Sequence[str], *, upto: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        ids = sorted(set(originator_ids))
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), 500):
                self._select_entities_chunk(c, ids[start : start + 500], upto)
                yield from group_by_entity(_fetched(c))

    def _select_entities_chunk(self, c: SQLiteCursor, ids: Sequence[str], upto: int | None) -> None:
        """Execute the query for the stored events of ``ids`` (at most 500: SQLite's
        variables), by originator and version, at or before position ``upto``."""
        bound = "" if upto is None else " AND rowid <= ?"
        c.execute(
            "SELECT originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} "
            f"WHERE originator_id IN ({','.join('?' * len(ids))}){bound} "
            "ORDER BY originator_id, originator_version",
            [*ids, *([upto] if upto is not None else [])],
        )

    def select_log(self, query: LogQuery) -> Iterator[LogRow]:
        t = self.index_table
        where = ["1=1"]
        params: list[Any] = []
        known = query.known_at_us
        retracted_join = f"LEFT JOIN {t} r ON r.retracts = i.event_id" + (
            " AND r.recorded_us <= ?" if known is not None else ""
        )
        join_params: list[Any] = [known] if known is not None else []
        if query.as_of_us is not None:
            where.append("i.effective_us <= ?")
            params.append(query.as_of_us)
        if known is not None:
            where.append("i.recorded_us <= ?")
            params.append(known)
        if query.entity_kind is not None and query.entity_id is not None:
            where.append("s.originator_id = ?")  # the events table's primary key
            params.append(f"{query.entity_kind}:{query.entity_id}")
        elif query.entity_kind is not None:
            where.append("i.entity_kind = ?")
            params.append(query.entity_kind)
        elif query.entity_id is not None:
            where.append("i.entity_id = ?")
            params.append(query.entity_id)
        if query.types:
            where.append(f"i.event_type IN ({','.join('?' * len(query.types))})")
            params.extend(query.types)
        if query.after_position is not None:
            where.append("i.notification_id > ?")
            params.append(query.after_position)
        if query.payload_contains is not None:
            where.append("instr(s.state, ?) > 0")  # a byte search: BLOB against BLOB
            params.append(query.payload_contains)
        if not query.include_retracted:
            where.append("r.notification_id IS NULL")
        sql = (
            "SELECT i.notification_id, s.topic, s.state, r.notification_id IS NOT NULL "
            f"FROM {t} i JOIN {self.events_table_name} s ON s.rowid = i.notification_id "
            f"{retracted_join} WHERE {' AND '.join(where)} "
            + (
                "ORDER BY i.notification_id"
                if query.order == "recorded"
                else "ORDER BY i.effective_us, i.notification_id"
            )
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, join_params + params)
            while True:
                rows = c.sqlite_cursor.fetchmany(1000)
                if not rows:
                    break
                for row in rows:
                    yield LogRow(row[0], row[1], row[2], bool(row[3]))

    def count_events(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT COUNT(*) FROM {self.index_table}")
            return int(c.fetchone()[0])

    def entity_keys(self, prefix: str, limit: int) -> list[str]:
        # A range on the primary key (originator_id, version): SQLite compares text as
        # UTF-8 bytes, and no character sorts after U+10FFFF.
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT DISTINCT originator_id FROM {self.events_table_name} "
                "WHERE originator_id >= ? AND originator_id < ? ORDER BY originator_id LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit),
            )
            return [str(row[0]) for row in c.fetchall()]

    def select_payloads(
        self, after: int, limit: int, *, stop: int | None = None, skip_topics: Sequence[str] = ()
    ) -> list[tuple[int, str, bytes | None]]:
        skip = ",".join("?" * len(skip_topics))
        state = f"CASE WHEN topic IN ({skip}) THEN NULL ELSE state END" if skip else "state"
        sql = (
            f"SELECT rowid, topic, {state} FROM {self.events_table_name} WHERE rowid > ?"
            + (" AND rowid <= ?" if stop is not None else "")
            + " ORDER BY rowid LIMIT ?"
        )
        params = [*skip_topics, after, *([stop] if stop is not None else []), limit]
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # plain tuples: a page is thousands of rows
            c.execute(sql, params)
            return c.sqlite_cursor.fetchall()  # type: ignore[no-any-return]


class SQLiteEventWrite(EventWrite):
    """A write transaction on SQLite (``cursor``: the library's cursor inside it)."""

    charges_cache = True

    def __init__(self, recorder: LedgerSQLiteRecorder, cursor: SQLiteCursor):
        self.recorder = recorder
        self.cursor = cursor
        self.wrote = False
        self.cache_kib: int | None = None
        """The page cache's size while ``charge_cache`` has lowered it (None: as the pool
        configured it)."""

    def charge_cache(self, held_bytes: int) -> None:
        pool = self.recorder.datastore.pool
        if pool.is_sqlite_memory_mode:
            return  # (an in-memory database's pages are its data: never evicted)
        configured = self._configured_kib()
        kib = max(configured // 4, configured - max(0, held_bytes) // 1024)
        if kib == (self.cache_kib or configured):
            return
        self.cursor.execute(f"PRAGMA cache_size=-{kib}")
        self.cache_kib = None if kib == configured else kib

    def restore_cache(self) -> None:
        """The pool's page cache size again, if ``charge_cache`` lowered it (a broken
        connection is left as it is: the pool drops it)."""
        if self.cache_kib is None:
            return
        self.cache_kib = None
        with suppress(sqlite3.Error, PersistenceError):
            self.cursor.execute(f"PRAGMA cache_size=-{self._configured_kib()}")

    def _configured_kib(self) -> int:
        pool = self.recorder.datastore.pool
        if isinstance(pool, LedgerSQLiteConnectionPool):
            return int(pool.cache_kib)
        return 2000  # (SQLite's own default: cache_size=-2000)

    def insert(
        self, stored_events: Sequence[StoredEvent], index_rows: Sequence[IndexRow]
    ) -> list[int]:
        ids = self.recorder.write_chunk(self.cursor, stored_events, index_rows)
        if ids:
            # (a rehearsal too: a streaming import reads them back in the transaction)
            self.recorder.snapshot_tables.write(self.port(), ids, index_rows)
        if ids and not self.rehearsal:
            self.wrote = True
            self.recorder.after_insert(self, ids, index_rows, stored_events)
        return ids

    def port(self) -> SQLitePort:
        return SQLitePort(self.cursor.sqlite_cursor.connection)

    def lock(self) -> None:
        # The library began the transaction with a plain BEGIN (deferred): SQLite takes
        # the write lock at the first statement that writes, even one that changes no row.
        self.cursor.execute(f"DELETE FROM {self.recorder.index_table} WHERE 0")

    def lookup(self, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        return self.recorder.lookup_in(self.cursor, event_ids)

    def select_entities(self, originator_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        return self.recorder.select_entities_in(self.cursor, originator_ids)

    def last_recorded_us(self) -> int | None:
        return self.recorder.last_recorded_us_in(self.cursor)

    def head(self) -> int:
        self.cursor.execute(f"SELECT MAX(rowid) FROM {self.recorder.events_table_name}")
        row = self.cursor.fetchone()
        return int(row[0] or 0)


class LedgerSQLiteFactory(SQLiteFactory):
    """The library's SQLite factory with the ledger's recorder and connection settings."""

    application_recorder_class = LedgerSQLiteRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        library_pool = self.datastore.pool
        self.datastore.pool = LedgerSQLiteConnectionPool(
            db_name=library_pool.db_name,
            lock_timeout=library_pool.lock_timeout,
            pool_size=library_pool.pool_size,
            max_overflow=library_pool.max_overflow,
            pool_timeout=library_pool.pool_timeout,
        )
        # Optional: the page cache (KiB) and memory map (bytes) of every connection.
        self.datastore.pool.cache_kib = int(self.env.get(SQLITE_CACHE_KIB, CACHE_SIZE_KIB))
        self.datastore.pool.mmap_bytes = int(self.env.get(SQLITE_MMAP_SIZE, MMAP_SIZE_BYTES))
        library_pool.close()


def _fetched(c: SQLiteCursor) -> Iterator[Any]:
    """The cursor's rows, a thousand at a time."""
    while rows := c.sqlite_cursor.fetchmany(1000):
        yield from rows
