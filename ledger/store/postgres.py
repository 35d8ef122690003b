"""PostgreSQL storage: the library's PostgreSQL recorder plus the ledger's event index.

Writers take the library's table lock, so notification ids follow commit order (ids may
skip numbers after a rolled-back insert; readers must not assume they are contiguous).
The ledger writes through ``writing()``: one transaction, not in pipeline mode, events
inserted in statements of at most ``INSERT_CHUNK_ROWS`` rows, each followed by its index
rows; a write of any size stays all or nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from psycopg import Connection, Cursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composable, Composed, Identifier

from ledger.checkpoint import SigningKey
from ledger.store.codec import INDEX_COLUMNS, IndexRow
from ledger.store.index import (
    INSERT_CHUNK_ROWS,
    EventIndex,
    EventWrite,
    IndexEntry,
    LogQuery,
    LogRow,
    RecordedTimeConflict,
    group_by_entity,
)
from ledger.store.snapshots import SnapshotTables
from ledger.store.tree import Tip, TreeTables

WRITE_IDLE_TIMEOUT_S = 120
"""How long a write transaction may wait for its client between statements (PostgreSQL's
``idle_in_transaction_session_timeout``, for the ledger's writes only).  The library's
default for its connections, 5 s, ended streaming imports on a loaded machine: a chunk of
2,000 lines is checked on the client between two statements, and under load that took
longer (``terminating connection due to idle-in-transaction timeout``).  Still bounded: a
client that hangs holding the write lock blocks every writer for at most this long (one
that dies closes its connection, and the transaction ends at once)."""


class PostgresPort:
    """``ledger.store.tree.Port`` over one psycopg connection (inside its transaction)."""

    def __init__(self, connection: Connection[Any]):
        self.connection = connection
        self._streams = 0

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.connection.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql.encode(), params)
            return cur.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connection.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql.encode(), params)
            return cur.fetchall()

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        self._streams += 1
        name = f"ledger_tree_{self._streams}"
        with self.connection.cursor(name, row_factory=tuple_row) as cur:
            cur.itersize = 2000
            cur.execute(sql.encode(), params)
            yield from cur

    def pages(
        self, sql: str, size: int, params: Sequence[Any] = ()
    ) -> Iterator[list[tuple[Any, ...]]]:
        self._streams += 1
        name = f"ledger_tree_{self._streams}"
        with self.connection.cursor(name, row_factory=tuple_row) as cur:
            cur.execute(sql.encode(), params)
            while rows := cur.fetchmany(size):
                yield rows

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.connection.cursor() as cur:
            cur.execute(sql.encode(), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.connection.cursor() as cur:
            cur.executemany(sql.encode(), rows)


class LedgerPostgresRecorder(PostgresApplicationRecorder, EventIndex):
    """Application recorder that also writes and queries the event index, and extends
    the Merkle tree (``ledger.store.tree``) in the transaction that writes events."""

    @property
    def channel_name(self) -> str:
        """The channel each write NOTIFYs and followers LISTEN on: this ledger's own
        (``commit_channel``).  The library assigns its own, named after the events table
        alone, in its ``__init__``; the setter ignores that, so every use of the name,
        the library's included, gets this one."""
        return commit_channel(self.datastore.schema, self.events_table_name)

    @channel_name.setter
    def channel_name(self, _library_default: str) -> None:
        pass

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.index_table = f"{events_table_name}_index"
        self.check_identifier_length(self.index_table + "_event_id_key")
        schema = Identifier(self.datastore.schema)
        t = Identifier(self.index_table)
        self._t = SQL("{0}.{1}").format(schema, t)
        self._events = SQL("{0}.{1}").format(schema, Identifier(self.events_table_name))
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} ("
                "notification_id bigint PRIMARY KEY, "
                "event_id uuid NOT NULL UNIQUE, "
                "event_type text NOT NULL, "
                "entity_kind text NOT NULL, "
                "entity_id text NOT NULL, "
                "effective_us bigint NOT NULL, "
                "recorded_us bigint NOT NULL, "
                "content_hash bytea NOT NULL, "
                "retracts uuid, "
                "originator_version bigint NOT NULL)"
            ).format(self._t),
            SQL("CREATE INDEX IF NOT EXISTS {0} ON {1} (effective_us)").format(
                Identifier(self.index_table + "_effective"), self._t
            ),
            SQL(
                "CREATE INDEX IF NOT EXISTS {0} ON {1} (retracts) WHERE retracts IS NOT NULL"
            ).format(Identifier(self.index_table + "_retracts"), self._t),
        ]
        self._insert_index = SQL(
            "INSERT INTO {0} (notification_id, event_id, event_type, entity_kind, entity_id, "
            "effective_us, recorded_us, content_hash, retracts, originator_version) "
            "SELECT * FROM unnest(%b::bigint[], %b::uuid[], %b::text[], %b::text[], "
            "%b::text[], %b::bigint[], %b::bigint[], %b::bytea[], %b::uuid[], %b::bigint[])"
        ).format(self._t)
        # The ledger's own insert of the events (not the library's, which passes one
        # array of a composite type, dumped by psycopg in Python as text): column arrays
        # in binary (%b).  Text arrays are escaped element by element in Python (a
        # regular expression per bytea): ~170 ms per 2,000 events against ~20 ms in
        # binary, measured 3 Dec 2026 under load; that escaping was a third of a
        # PostgreSQL import's time.  Positions come back in insertion order, as the
        # library's own statement relies on.
        self._insert_event_rows = SQL(
            "INSERT INTO {0} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(self._events)
        quoted_schema = '"' + self.datastore.schema.replace('"', '""') + '"'

        def table(name: str) -> str:
            self.check_identifier_length(name + "_pkey")
            return f'{quoted_schema}."{name}"'

        self.tree = TreeTables(
            table(events_table_name),
            "notification_id",
            table(f"{events_table_name}_merkle_batches"),
            table(f"{events_table_name}_merkle_leaves"),
            table(f"{events_table_name}_merkle_nodes"),
            table(f"{events_table_name}_merkle_meta"),
            postgres=True,
        )
        self.snapshot_tables = SnapshotTables(
            table(self.index_table),
            table(events_table_name),
            "notification_id",
            table(f"{events_table_name}_shipments"),
            table(f"{events_table_name}_snapshots"),
            table(f"{events_table_name}_snapshot_meta"),
            postgres=True,
        )
        self.sql_create_statements += [
            SQL(statement).format()  # type: ignore[arg-type]
            for statement in self.tree.create_statements + self.snapshot_tables.create_statements
        ]
        self.payload_of: Callable[[bytes], bytes] = bytes
        """The event's JSON bytes from stored state (the ledger's mapper undoes a cipher)."""
        self.signer: Callable[[], SigningKey | None] = lambda: None
        """The key that signs each write's checkpoint (the ledger sets it)."""

    @contextmanager
    def tree_port(self, *, write: bool = False) -> Iterator[PostgresPort]:
        """One transaction on the tree and the events (a consistent snapshot to read;
        with ``write``, holding the events table's write lock)."""
        with self.datastore.get_connection() as conn, conn.transaction():
            if write:
                with conn.cursor() as curs:
                    for statement in self.lock_table_statements:
                        curs.execute(statement)
            else:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield PostgresPort(conn)

    @contextmanager
    def read_port(self) -> Iterator[PostgresPort]:
        """A connection whose every statement is its own transaction (autocommit): one
        round trip per read, for reads that need no consistent snapshot between them."""
        with self.datastore.get_connection() as conn:
            yield PostgresPort(conn)

    def create_table(self) -> None:
        with ddl_lock(self.datastore):
            super().create_table()

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
    def writing(self) -> Iterator[PostgresEventWrite]:
        # Not in pipeline mode (the library's insert_events is): a pipelined statement
        # with large parameters can deadlock the client and the server (psycopg issue
        # 685), which hung imports of ~15,000 events or more.
        # The transaction begins with the lock, in its round trip (``start_write``), not
        # in one of its own as psycopg's transaction block would; until then (a write
        # that reads first) each statement is its own, on the autocommit connection.
        with self.datastore.get_connection() as conn:
            write = PostgresEventWrite(self, conn.cursor())
            try:
                yield write
                self.before_commit(write)
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("COMMIT")
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(Exception):  # (a broken connection: it is gone)
                        conn.execute("ROLLBACK")
                raise

    def start_write(self, curs: Cursor[DictRow]) -> tuple[int | None, tuple[Any, ...]]:
        """Begin the transaction, take the table lock the library's writers take (so
        positions follow commit order), queue the NOTIFY for followers
        (``channel_name``), let the transaction wait for its client up to
        ``WRITE_IDLE_TIMEOUT_S``, and read, under the lock, the newest recorded time (the
        guard of ``write_chunk``) and the Merkle tree's tip (``TreeTables.tip_query``):
        one round trip (statements without parameters go as one simple query).  Returns
        that time (None: no events) and the tip's row."""
        with curs.connection.cursor(row_factory=tuple_row) as tuples:
            tuples.execute(
                SQL("; ").join(
                    [
                        SQL("BEGIN"),
                        *self.lock_table_statements,
                        SQL("NOTIFY {0}").format(Identifier(self.channel_name)),
                        SQL("SET LOCAL idle_in_transaction_session_timeout = '{0}s'").format(
                            WRITE_IDLE_TIMEOUT_S
                        ),
                        SQL(
                            "SELECT recorded_us FROM {0} ORDER BY notification_id DESC LIMIT 1"
                        ).format(self._t),
                        SQL(self.tree.tip_query()),  # type: ignore[arg-type]
                    ]
                )
            )
            selected: list[list[tuple[Any, ...]]] = []
            while True:
                if tuples.description is not None:
                    selected.append(tuples.fetchall())
                if not tuples.nextset():
                    break
        latest, tip = selected[-2:]
        return (int(latest[0][0]) if latest else None), tip[0]

    def write_chunk(
        self,
        write: PostgresEventWrite,
        stored_events: Sequence[StoredEvent],
        index_rows: Sequence[IndexRow],
    ) -> list[int]:
        """Insert events and their index rows, in statements of at most
        ``INSERT_CHUNK_ROWS`` events; returns positions.  Each index rows' statement also
        writes, as data-modifying ``WITH`` clauses, the shipment rows and snapshots they
        carry (in a rehearsal too: a streaming import reads them back in the
        transaction) and, unless ``write`` is a rehearsal, the events' Merkle tree rows,
        the last chunk's batch signed: two round trips per chunk (an append's cost on
        PostgreSQL is mostly round trips)."""
        if len(index_rows) != len(stored_events):
            raise ProgrammingError("one index row per stored event is required")
        if not stored_events:
            return []
        curs = write.cursor
        # Under the table lock every earlier commit is visible: the newest recorded time
        # was read with the lock (then this write's own rows are the newest).
        latest = write.latest_recorded_us
        if latest is not None and latest > min(r.recorded_us for r in index_rows):
            raise RecordedTimeConflict(
                "a later recorded time was committed concurrently; retry with a fresh time"
            )
        ids: list[int] = []
        payload_of = self.payload_of
        for start in range(0, len(stored_events), INSERT_CHUNK_ROWS):
            events = stored_events[start : start + INSERT_CHUNK_ROWS]
            curs.execute(
                self._insert_event_rows,
                (
                    [str(e.originator_id) for e in events],
                    [e.originator_version for e in events],
                    [e.topic for e in events],
                    [e.state for e in events],
                ),
            )
            chunk_ids = [r["notification_id"] for r in curs.fetchall()]
            if len(chunk_ids) != len(events):
                raise ProgrammingError("the store did not return a position for every event")
            rows = index_rows[start : start + INSERT_CHUNK_ROWS]
            columns = list(zip(*rows, strict=True))[:INDEX_COLUMNS]
            ctes: list[str] = []
            params: list[Any] = []
            snapshot_ctes, snapshot_params = self.snapshot_tables.postgres_ctes(chunk_ids, rows)
            if snapshot_ctes:
                ctes.append(snapshot_ctes)
                params += snapshot_params
            if not write.rehearsal:
                last = start + INSERT_CHUNK_ROWS >= len(stored_events)
                extension = self.tree.extension(
                    write.tip(),
                    chunk_ids,
                    [payload_of(e.state) for e in events],
                    self.signer(),
                    sign_end=last,  # one checkpoint per insert (and per CHECKPOINT_EVERY)
                )
                tree_ctes, tree_params = self.tree.postgres_ctes(extension)
                ctes.append(tree_ctes)
                params += tree_params
                write.tree_tip = extension.tip
            statement: Composed | SQL = self._insert_index
            if ctes:
                statement = SQL("WITH " + ", ".join(ctes) + " ") + statement  # type: ignore[arg-type]
            curs.execute(statement, (*params, chunk_ids, *map(list, columns)))
            ids += chunk_ids
        write.latest_recorded_us = index_rows[-1].recorded_us
        return ids

    # --- the event index ----------------------------------------------------------------

    def lookup(self, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        if not event_ids:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return self.lookup_in(curs, event_ids)

    def lookup_in(self, curs: Cursor[DictRow], event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        if not event_ids:
            return {}
        curs.execute(
            SQL(
                "SELECT notification_id, event_id, event_type, entity_kind, entity_id, "
                "effective_us, recorded_us, content_hash FROM {0} "
                "WHERE event_id = ANY(%s)"
            ).format(self._t),
            (list(event_ids),),
        )
        return {
            row["event_id"]: IndexEntry(
                row["notification_id"],
                row["event_id"],
                row["event_type"],
                row["entity_kind"],
                row["entity_id"],
                row["effective_us"],
                row["recorded_us"],
                bytes(row["content_hash"]),
            )
            for row in curs.fetchall()
        }

    def last_recorded_us(self) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return self.last_recorded_us_in(curs)

    def last_recorded_us_in(self, curs: Cursor[DictRow]) -> int | None:
        curs.execute(
            SQL("SELECT recorded_us FROM {0} ORDER BY notification_id DESC LIMIT 1").format(self._t)
        )
        row = curs.fetchone()
        return None if row is None else int(row["recorded_us"])

    def select_entities(
        self, originator_ids: Sequence[str], *, upto: int | None = None
    ) -> dict[str, list[StoredEvent]]:
        if not originator_ids:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return self.select_entities_in(curs, originator_ids, upto=upto)

    def select_entities_in(
        self, curs: Cursor[DictRow], originator_ids: Sequence[str], *, upto: int | None = None
    ) -> dict[str, list[StoredEvent]]:
        out: dict[str, list[StoredEvent]] = {}
        ids = list(dict.fromkeys(originator_ids))
        if not ids:
            return out
        curs.execute(*self._entities_query(ids, upto))
        for row in curs.fetchall():
            out.setdefault(row["originator_id"], []).append(
                StoredEvent(
                    row["originator_id"],
                    row["originator_version"],
                    row["topic"],
                    bytes(row["state"]),
                )
            )
        return out

    def stream_entities(
        self, originator_ids: Sequence[str], *, upto: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        ids = sorted(set(originator_ids))
        if not ids:
            return
        # ``stream``: rows as the server sends them, not the whole result first.
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            yield from group_by_entity(curs.stream(*self._entities_query(ids, upto)))

    def _entities_query(
        self, ids: list[str], upto: int | None
    ) -> tuple[Composed, tuple[list[str]] | tuple[list[str], int]]:
        """The query for the stored events of ``ids`` by originator and version, at or
        before position ``upto``, and its parameters."""
        # Without a bound, no condition on notification_id: PostgreSQL would AND a bitmap
        # scan of the whole notification_id index (the entire log) into every entity's
        # load, and every append would grow with the log.
        query = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {0} "
            "WHERE originator_id = ANY(%s)"
            + ("" if upto is None else " AND notification_id <= %s")
            + " ORDER BY originator_id, originator_version"
        ).format(self._events)
        return query, ((ids,) if upto is None else (ids, upto))

    def select_log(self, query: LogQuery) -> Iterator[LogRow]:
        where: list[Composable] = [SQL("TRUE")]
        params: list[Any] = []
        known = query.known_at_us
        join_params: list[Any] = []
        join = SQL("LEFT JOIN {0} r ON r.retracts = i.event_id").format(self._t)
        if known is not None:
            join = join + SQL(" AND r.recorded_us <= %s")
            join_params.append(known)
        if query.as_of_us is not None:
            where.append(SQL("i.effective_us <= %s"))
            params.append(query.as_of_us)
        if known is not None:
            where.append(SQL("i.recorded_us <= %s"))
            params.append(known)
        if query.entity_kind is not None and query.entity_id is not None:
            where.append(SQL("s.originator_id = %s"))
            params.append(f"{query.entity_kind}:{query.entity_id}")
        elif query.entity_kind is not None:
            where.append(SQL("i.entity_kind = %s"))
            params.append(query.entity_kind)
        elif query.entity_id is not None:
            where.append(SQL("i.entity_id = %s"))
            params.append(query.entity_id)
        if query.types:
            where.append(SQL("i.event_type = ANY(%s)"))
            params.append(list(query.types))
        if query.after_position is not None:
            where.append(SQL("i.notification_id > %s"))
            params.append(query.after_position)
        if query.payload_contains is not None:
            where.append(SQL("position(%s::bytea in s.state) > 0"))
            params.append(query.payload_contains)
        if not query.include_retracted:
            where.append(SQL("r.notification_id IS NULL"))
        sql = SQL(
            "SELECT i.notification_id AS position, s.topic, s.state, "
            "r.notification_id IS NOT NULL AS retracted "
            "FROM {0} i JOIN {1} s ON s.notification_id = i.notification_id {2} "
            "WHERE {3} ORDER BY {4}"
        ).format(
            self._t,
            self._events,
            join,
            SQL(" AND ").join(where),
            SQL(
                "i.notification_id"
                if query.order == "recorded"
                else "i.effective_us, i.notification_id"
            ),
        )
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(name="ledger_log") as curs,
        ):
            curs.itersize = 2000
            curs.execute(sql, join_params + params)
            for row in curs:
                yield LogRow(row["position"], row["topic"], bytes(row["state"]), row["retracted"])

    def count_events(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(SQL("SELECT COUNT(*) AS n FROM {0}").format(self._t))
            row = curs.fetchone()
            assert row is not None
            return int(row["n"])

    def entity_keys(self, prefix: str, limit: int) -> list[str]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT DISTINCT originator_id FROM {0} WHERE starts_with(originator_id, %s) "
                    "ORDER BY originator_id LIMIT %s"
                ).format(self._events),
                (prefix, limit),
            )
            return [str(row["originator_id"]) for row in curs.fetchall()]

    def select_payloads(
        self, after: int, limit: int, *, stop: int | None = None, skip_topics: Sequence[str] = ()
    ) -> list[tuple[int, str, bytes | None]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT notification_id, topic, "
                    "CASE WHEN topic = ANY(%s) THEN NULL ELSE state END AS state FROM {0} "
                    "WHERE notification_id > %s AND notification_id <= %s "
                    "ORDER BY notification_id LIMIT %s"
                ).format(self._events),
                (list(skip_topics), after, 2**62 if stop is None else stop, limit),
            )
            return [
                (
                    row["notification_id"],
                    row["topic"],
                    None if row["state"] is None else bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


class PostgresEventWrite(EventWrite):
    """A write transaction on PostgreSQL (``cursor``: a psycopg cursor inside it)."""

    def __init__(self, recorder: LedgerPostgresRecorder, cursor: Cursor[DictRow]):
        self.recorder = recorder
        self.cursor = cursor
        self.started = False
        self.latest_recorded_us: int | None = None
        """The newest recorded time stored (read with the lock, then this write's own)."""
        self.tree_tip: Tip | None = None
        """The Merkle tree as this write leaves it so far (None: not yet checked)."""
        self._tip_row: tuple[Any, ...] = ()

    def insert(
        self, stored_events: Sequence[StoredEvent], index_rows: Sequence[IndexRow]
    ) -> list[int]:
        if not stored_events:
            return []
        self.lock()
        ids = self.recorder.write_chunk(self, stored_events, index_rows)
        if not self.rehearsal:
            self.recorder.after_insert(self, ids, index_rows, stored_events)
        return ids

    def lock(self) -> None:
        if not self.started:
            self.latest_recorded_us, self._tip_row = self.recorder.start_write(self.cursor)
            self.started = True

    def tip(self) -> Tip:
        """The tree this write extends: as read with the lock (checked to cover every
        stored event, else ``TreeBehind``; a rehearsal never asks), then as extended."""
        if self.tree_tip is None:
            self.tree_tip = self.recorder.tree.tip_from_row(self._tip_row)
        return self.tree_tip

    def lookup(self, event_ids: Sequence[UUID]) -> dict[UUID, IndexEntry]:
        return self.recorder.lookup_in(self.cursor, event_ids)

    def select_entities(self, originator_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        return self.recorder.select_entities_in(self.cursor, originator_ids)

    def last_recorded_us(self) -> int | None:
        return self.recorder.last_recorded_us_in(self.cursor)

    def port(self) -> PostgresPort:
        return PostgresPort(self.cursor.connection)

    def head(self) -> int:
        self.cursor.execute(
            SQL("SELECT COALESCE(MAX(notification_id), 0) AS n FROM {0}").format(
                self.recorder._events
            )
        )
        row = self.cursor.fetchone()
        assert row is not None
        return int(row["n"])


CHANNEL_MAX_BYTES = 63
"""PostgreSQL's longest identifier (NAMEDATALEN - 1); a longer channel name is cut."""


def commit_channel(schema: str, events_table: str) -> str:
    """The NOTIFY channel of the ledger in ``schema``: ``<events table>.<schema>``.  A
    channel is database-wide, so one named after the table alone (the library's) woke
    the followers of every ledger in the database at each commit of any of them.  A name
    longer than PostgreSQL keeps is cut and ends with a hash of the whole, so that two
    long schema names sharing a prefix still get two channels."""
    name = f"{events_table}.{schema}"
    encoded = name.encode()
    if len(encoded) <= CHANNEL_MAX_BYTES:
        return name
    digest = hashlib.blake2b(encoded, digest_size=8).hexdigest()
    kept = encoded[: CHANNEL_MAX_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{kept}-{digest}"


def ensure_schema(datastore: PostgresDatastore, *, user: str) -> None:
    """Create the schema named by ``?schema=`` when it is missing and the user may; else
    a ``StoreError`` that says how to create it (PostgreSQL's own "schema does not
    exist" came only at the first write, and said nothing of what to do)."""
    from psycopg import errors

    from ledger.errors import StoreError

    schema = datastore.schema
    if not schema:
        return
    with datastore.get_connection() as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if found.fetchone() is not None:
            return
        try:
            with conn.transaction():
                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(schema)))
        except errors.InsufficientPrivilege:
            database = conn.info.dbname
            raise StoreError(
                f'schema "{schema}" does not exist in database "{database}" and user '
                f'"{user}" may not create it: ask its owner to run CREATE SCHEMA "{schema}" '
                f'AUTHORIZATION "{user}"; (or to GRANT CREATE ON DATABASE "{database}" TO '
                f'"{user}"), or choose an existing schema with ?schema=NAME'
            ) from None


@contextmanager
def ddl_lock(datastore: PostgresDatastore) -> Iterator[None]:
    """Serialise table creation across processes (an advisory lock per schema).

    Processes starting together on a fresh schema would otherwise race to create the same
    types, tables and functions, and PostgreSQL fails the losers ("duplicate key ... pg_type",
    "tuple concurrently updated").  The lock is held on its own pooled connection while
    the library creates the tables on others.
    """
    key = int.from_bytes(
        hashlib.blake2b(f"ledger-ddl:{datastore.schema}".encode(), digest_size=8).digest(),
        "big",
        signed=True,
    )
    with datastore.get_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


class LedgerPostgresFactory(PostgresFactory):
    """The library's PostgreSQL factory with the ledger's recorder; table creation (of the
    events and of tracking tables) is serialised across processes."""

    application_recorder_class = LedgerPostgresRecorder

    def __init__(self, env: Any):
        super().__init__(env)
        # libpq parameters of the URL (?sslmode=require...), for every pooled connection.
        libpq = json.loads(self.env.get("POSTGRES_LIBPQ_PARAMS") or "{}")
        kwargs = self.datastore.pool.kwargs
        if libpq and isinstance(kwargs, dict):
            kwargs.update(libpq)
        if self.env_create_table():
            ensure_schema(self.datastore, user=self.env.get(self.POSTGRES_USER) or "")

    def tracking_recorder(self, tracking_recorder_class: Any = None) -> Any:
        with ddl_lock(self.datastore):
            return super().tracking_recorder(tracking_recorder_class)

    def process_recorder(self) -> Any:
        with ddl_lock(self.datastore):
            return super().process_recorder()


def why_unreachable(env: dict[str, str]) -> str | None:
    """libpq's own reason why a connection to the database of ``env`` (the eventsourcing
    environment) fails, or None if one opens now.

    The pool answers only "couldn't get a connection after 10.00 sec", whether the
    server refused, the database does not exist, the password is wrong or TLS was
    required of a server without it; one direct attempt says which."""
    import psycopg

    params: dict[str, Any] = {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": env["POSTGRES_PORT"],
        "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"],
        "connect_timeout": 5,
        **json.loads(env.get("POSTGRES_LIBPQ_PARAMS") or "{}"),
    }
    try:
        psycopg.connect(**params).close()
    except psycopg.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return " ".join(lines) or type(exc).__name__
    return None
