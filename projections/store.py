"""Stored views: bitemporal history rows per entity, written with the projector's tracking.

The view recorders subclass the eventsourcing library's tracking recorders (SQLite and
PostgreSQL) and live in the ledger's own database.  Each batch of view changes is written
in one transaction together with the tracking record (the library's ``_insert_tracking``
under the name ``views``), so a view never reflects an event twice or misses one: after a
crash the projector resumes from the tracked position.

Tables (``views_*``):

- ``views_data(id, static, timeline)``: record bodies (``ledger.projections.records``), shared by
  every row that shows the same record;
- ``views_current(id, key, vf, vt, rf, data_id, kind, vkey)``: the rows of *current*
  knowledge: per entity, disjoint valid-time intervals ``[vf, vt)``, known since ``rf``.
  On SQLite ``vkey`` places ``[vf, vt)`` in its dyadic cell of the valid-time axis
  (``valid_key``), and a covering index ``(kind, vkey, vf, vt, rf, data_id, key)`` streams
  every row of a kind valid at T out of the ~50 cells containing T in one scan;
- ``views_history(id, key, kind, dkey, vf, vt, rf, rt, data_id)``: superseded rows, known
  over ``[rf, rt)`` only; immutable once written.  ``dkey`` places ``[rf, rt)`` in the
  smallest dyadic cell of the recorded-time axis that contains it (``dyadic_key``), so
  the rows known at K are found among the ~50 cells containing K with one B-tree index
  (which also covers the time columns, so non-matching rows are skipped in the index);
- ``views_entities(key, kind, ref, vf0)``: every viewed entity (``ref``: a licence's
  exporter, a commitment's agreement; ``vf0``: the earliest valid time of any row it ever
  had) for listing and filtering.

A query at (as-of T, known-at K) is two indexed lookups: the current rows valid at T
with ``rf <= K`` (for a whole kind: the valid-time cells on SQLite; for given entities, an
exporter's or on PostgreSQL: per entity, the current row with the greatest ``vf <= T``,
kept if ``vt > T``), plus the history rows whose rectangle ``[vf, vt) x [rf, rt)``
contains (T, K).  Times are microseconds since the epoch; open ends are
``records.INFINITY``.

Concurrent projectors (``ledger serve`` and a CLI catching up) are safe: a batch is
written only if the tracked position is still the one the writer started from
(``ViewsMoved`` otherwise), under the database's write lock (SQLite) or an advisory lock
(PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteTrackingRecorder

from ledger.projections.records import INFINITY, KIND_CODE

DYADIC_LEVELS = 63
"""Cells per query: enough for any interval of non-negative 62-bit microsecond times."""

SCHEMA_VERSION = 8
"""Bumped when the views' tables or records change: older views are dropped and rebuilt."""

CONTENT_TABLES = ("views_entities", "views_data", "views_current", "views_history")

TRACKING_NAME = "views"
"""Tracking name of the views (the relay tracks ``relay:{stream}`` in the same table)."""


def dyadic_key(rf: int, rt: int) -> int:
    """The smallest dyadic cell ``[c * 2**level, (c + 1) * 2**level)`` holding ``[rf, rt)``.

    Encoded as ``level << 56 | c``.  A point K lies in exactly one cell per level, so the
    intervals that may contain K are in the cells ``dyadic_cells(K)``.
    """
    level = (rf ^ (rt - 1)).bit_length()
    return (level << 56) | (rf >> level)


def dyadic_cells(k: int) -> list[int]:
    return [(level << 56) | (k >> level) for level in range(DYADIC_LEVELS)]


def valid_key(vf: int, vt: int) -> int:
    """``dyadic_key`` of a valid-time interval (times before the epoch clamped to it:
    clamping keeps every interval that contains T in the cells of the clamped T)."""
    if vf < 0:
        vf = 0
    if vt < 1:
        vt = 1
    level = (vf ^ (vt - 1)).bit_length()
    return (level << 56) | (vf >> level)


def valid_cells(t: int) -> list[int]:
    return dyadic_cells(t if t > 0 else 0)


class ViewsMoved(Exception):
    """Another projector advanced the views since this one last wrote."""

    def __init__(self, position: int):
        super().__init__(f"the views were advanced to position {position} by another projector")
        self.position = position

    def __reduce__(self) -> tuple[type[ViewsMoved], tuple[int]]:
        return (ViewsMoved, (self.position,))  # crosses to the projector from a writer process


@dataclass
class Changes:
    """One batch of view changes (row tuples in the tables' column order)."""

    data: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    current_insert: list[tuple[int, str, int, int, int, int, int]] = field(default_factory=list)
    """(id, key, vf, vt, rf, data_id, kind code); the store adds ``valid_key(vf, vt)``."""
    current_delete: list[int] = field(default_factory=list)
    current_vt: list[tuple[int, int, int]] = field(default_factory=list)
    """(new vt, row id, the row's vf)"""
    history_insert: list[tuple[int, str, int, int, int, int, int, int]] = field(
        default_factory=list
    )
    """(id, key, kind code, vf, vt, rf, rt, data_id); the store adds ``dyadic_key(rf, rt)``.

    The cell keys are computed where the rows are written: in a rebuild that is the writer
    process, which has CPU to spare, while the projector's process is the bottleneck."""
    entities: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    """(key, kind, ref, vf0)"""
    data_delete: list[int] = field(default_factory=list)
    """Record bodies no row shows any more (written by an earlier batch)."""
    build_indexes: bool = False
    """Build the secondary indexes a full rebuild deferred (``ViewStore.defer_indexes``)
    in this batch's transaction, after its rows: the tracked position and the indexes
    commit together."""

    def __len__(self) -> int:
        return (
            len(self.data)
            + len(self.current_insert)
            + len(self.current_delete)
            + len(self.current_vt)
            + len(self.history_insert)
            + len(self.entities)
        )


@dataclass(frozen=True)
class CurrentRow:
    id: int
    key: str
    vf: int
    vt: int
    rf: int
    data_id: int
    static: bytes


class Found(NamedTuple):
    """A row answering a query: the entity and its record body."""

    key: str
    vf: int
    vt: int
    static: bytes
    timeline: bytes


@dataclass(frozen=True)
class Counters:
    """The greatest ids used so far (the projector allocates ids itself)."""

    data: int
    current: int
    history: int


class ViewStore:
    """What the projector and the queries need from a view recorder (both backends)."""

    tracking_name = TRACKING_NAME

    def position(self) -> int:
        raise NotImplementedError

    def counters(self) -> Counters:
        raise NotImplementedError

    def known_keys(self) -> set[str]:
        raise NotImplementedError

    def entity_count(self) -> int:
        """How many entities the views list."""
        raise NotImplementedError

    def listed(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` the views list (batched: one query per few hundred keys)."""
        raise NotImplementedError

    def current_rows(self, keys: Sequence[str]) -> dict[str, list[CurrentRow]]:
        raise NotImplementedError

    def write(self, changes: Changes, expected: int, position: int) -> None:
        raise NotImplementedError

    # A full rebuild writes every row once, in order; keeping the two largest secondary
    # indexes up to date row by row cost the writer process ~5-6 of its 21 us a position
    # at 1M events (their B-trees outgrow its page cache), building them once at the end
    # ~2 us (3 Dec 2026).  So a catch-up from empty views drops them first
    # (``defer_indexes``) and its last batch builds them (``Changes.build_indexes``).
    # Until then queries answer without them (slower), and any later catch-up or write
    # that finds them missing builds them: the views never stay without them.

    def indexes_missing(self) -> bool:
        """True while deferred secondary indexes are not built (see ``defer_indexes``)."""
        return False

    def defer_indexes(self) -> bool:
        """Drop the deferrable secondary indexes if the views are empty (tracked position
        0, checked under the write lock); True if they are missing now.  A backend
        without deferrable indexes keeps them and returns False."""
        return False

    def build_indexes(self) -> None:
        """Build the deferred indexes in a transaction of their own, if missing."""

    def _build_indexes(self, c: Any) -> None:
        """In the caller's transaction: build the deferred indexes, if missing."""

    def _write_tracked(self, c: Any, changes: Changes, expected: int, position: int) -> None:
        """In the caller's transaction, which already excludes other projectors: write
        ``changes`` and move the tracked position from ``expected`` to ``position``, or
        raise ``ViewsMoved`` if another projector moved it meanwhile."""
        current = self._max_tracking_id(self.tracking_name, c) or 0
        if current != expected:
            raise ViewsMoved(current)
        self._write(c, changes)
        if changes.build_indexes:
            self._build_indexes(c)
        if position > current:
            self._insert_tracking(c, Tracking(self.tracking_name, position))

    # Provided by the library's tracking recorders (first in each recorder's bases) and
    # by each backend.
    def _max_tracking_id(self, application_name: str, c: Any) -> int | None:
        raise NotImplementedError

    def _insert_tracking(self, c: Any, tracking: Tracking) -> None:
        raise NotImplementedError

    def _write(self, c: Any, changes: Changes) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def select_at(
        self,
        kind: str,
        as_of_us: int,
        known_at_us: int,
        *,
        keys: Sequence[str] | None = None,
        ref: str | None = None,
    ) -> list[Found]:
        raise NotImplementedError

    def select_known(self, kind: str, known_at_us: int, keys: Sequence[str]) -> list[Found]:
        """Every row of these entities known at K, over all valid time (vf order)."""
        raise NotImplementedError

    def row_counts(self) -> dict[str, int]:
        raise NotImplementedError

    def contents(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the views' tables, in a fixed order: two builds of the same
        events compare equal exactly when they stored the same views."""
        raise NotImplementedError


# --- SQLite ---------------------------------------------------------------------------

_SQLITE_TABLES = [
    "CREATE TABLE IF NOT EXISTS views_meta (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "writes INTEGER NOT NULL, schema_version INTEGER NOT NULL)",
    f"INSERT OR IGNORE INTO views_meta VALUES (1, 0, {SCHEMA_VERSION})",
    "CREATE TABLE IF NOT EXISTS views_entities (key TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "ref TEXT, vf0 INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS views_entities_kind ON views_entities (kind, ref)",
    "CREATE INDEX IF NOT EXISTS views_entities_start ON views_entities (kind, vf0)",
    "CREATE TABLE IF NOT EXISTS views_data (id INTEGER PRIMARY KEY, static BLOB NOT NULL, "
    "timeline BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS views_current (id INTEGER PRIMARY KEY, key TEXT NOT NULL, "
    "vf INTEGER NOT NULL, vt INTEGER NOT NULL, rf INTEGER NOT NULL, data_id INTEGER NOT NULL, "
    "kind INTEGER NOT NULL, vkey INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS views_current_key ON views_current (key, vf)",
    "CREATE TABLE IF NOT EXISTS views_history (id INTEGER PRIMARY KEY, key TEXT NOT NULL, "
    "kind INTEGER NOT NULL, dkey INTEGER NOT NULL, vf INTEGER NOT NULL, vt INTEGER NOT NULL, "
    "rf INTEGER NOT NULL, rt INTEGER NOT NULL, data_id INTEGER NOT NULL)",
]
_SQLITE_DEFERRED_INDEXES = {
    # Every current row of a kind valid at T, in one scan of the ~50 cells containing T
    # (covering: the matching rows come out of the index with their key and body id).
    "views_current_valid": "CREATE INDEX IF NOT EXISTS views_current_valid "
    "ON views_current (kind, vkey, vf, vt, rf, data_id, key)",
    "views_history_cell": "CREATE INDEX IF NOT EXISTS views_history_cell "
    "ON views_history (kind, dkey, vf, rf, rt, vt)",
}
"""Secondary indexes a full rebuild builds once at its end (``ViewStore.defer_indexes``)."""
_SQLITE_TABLES += _SQLITE_DEFERRED_INDEXES.values()
_INDEXES_PRESENT_SQL = (
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN "
    f"({','.join(repr(name) for name in _SQLITE_DEFERRED_INDEXES)})"
)
_SQLITE_DROP = [
    "DROP TABLE IF EXISTS views_history_rtree",
    "DROP TABLE IF EXISTS views_history",
    "DROP TABLE IF EXISTS views_current",
    "DROP TABLE IF EXISTS views_data",
    "DROP TABLE IF EXISTS views_entities",
]

_CURRENT_ALL_SQL = (
    "SELECT c.key, c.vf, c.vt, d.static, d.timeline FROM views_current c "
    "INDEXED BY views_current_valid JOIN views_data d ON d.id = c.data_id "
    "WHERE c.kind = :kc AND c.vkey IN ({cells}) AND c.vf <= :t AND c.vt > :t AND c.rf <= :k"
)
_CURRENT_SQL = (
    "SELECT e.key, c.vf, c.vt, d.static, d.timeline FROM views_entities e "
    "JOIN views_current c ON c.id = (SELECT c2.id FROM views_current c2 "
    "WHERE c2.key = e.key AND c2.vf <= :t ORDER BY c2.vf DESC LIMIT 1) "
    "JOIN views_data d ON d.id = c.data_id "
    "WHERE e.kind = :kind AND e.vf0 <= :t AND c.vt > :t AND c.rf <= :k"
)
_HISTORY_SQL = (
    "SELECT h.key, h.vf, h.vt, d.static, d.timeline FROM views_history h "
    "JOIN views_data d ON d.id = h.data_id "
    "WHERE h.kind = :kc AND h.dkey IN ({cells}) "
    "AND h.vf <= :t AND h.rf <= :k AND h.rt > :k AND h.vt > :t"
)


class SQLiteViewRecorder(SQLiteTrackingRecorder, ViewStore):
    """The views on SQLite (same file as the ledger), with the library's tracking table."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any):
        super().__init__(datastore, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *_SQLITE_TABLES]

    def _current_schema(self) -> bool:
        """True if the views' tables exist in this schema version (a read-only check)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
                "AND name IN ('views_meta', 'tracking')"
            )
            if c.fetchone()[0] != 2:
                return False
            c.execute("SELECT * FROM views_meta")
            row = c.fetchone()
            return row is not None and len(row.keys()) >= 3 and row[2] == SCHEMA_VERSION

    def create_table(self) -> None:
        if self._current_schema():
            return  # nothing to create: no write transaction for every reader
        with self.datastore.transaction(commit=True) as c:
            c.execute("SELECT name FROM sqlite_master WHERE name = 'views_meta'")
            if c.fetchone() is not None:
                c.execute("SELECT * FROM views_meta")
                row = c.fetchone()
                if row is None or len(row.keys()) < 3 or row[2] != SCHEMA_VERSION:
                    # Views written by another version: drop them (they are rebuilt).
                    for statement in _SQLITE_DROP:
                        c.execute(statement)
                    c.execute("DROP TABLE views_meta")
                    c.execute("SELECT name FROM sqlite_master WHERE name = 'tracking'")
                    if c.fetchone() is not None:
                        c.execute(
                            "DELETE FROM tracking WHERE application_name = ?",
                            (self.tracking_name,),
                        )
        super().create_table()

    def position(self) -> int:
        return self.max_tracking_id(self.tracking_name) or 0

    def counters(self) -> Counters:
        with self.datastore.transaction(commit=False) as c:
            values = []
            for table in ("views_data", "views_current", "views_history"):
                c.execute(f"SELECT MAX(id) FROM {table}")
                values.append(c.fetchone()[0] or 0)
        return Counters(*values)

    def known_keys(self) -> set[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT key FROM views_entities")
            return {row[0] for row in c.fetchall()}

    def entity_count(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) FROM views_entities")
            return int(c.fetchone()[0])

    def listed(self, keys: Sequence[str]) -> set[str]:
        out: set[str] = set()
        if not keys:
            return out
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks(list(keys), 500):
                c.execute(
                    f"SELECT key FROM views_entities WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                out.update(row[0] for row in c.fetchall())
        return out

    def current_rows(self, keys: Sequence[str]) -> dict[str, list[CurrentRow]]:
        out: dict[str, list[CurrentRow]] = {}
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks(list(keys), 500):
                c.execute(
                    "SELECT c.id, c.key, c.vf, c.vt, c.rf, c.data_id, d.static "
                    "FROM views_current c JOIN views_data d ON d.id = c.data_id "
                    f"WHERE c.key IN ({','.join('?' * len(chunk))}) ORDER BY c.key, c.vf",
                    chunk,
                )
                for row in c.fetchall():
                    out.setdefault(row[1], []).append(CurrentRow(*row))
        return out

    def write(self, changes: Changes, expected: int, position: int) -> None:
        with self._views_transaction() as c:
            # A write first, so the transaction holds the write lock before it reads the
            # tracked position (no other projector can advance it).
            c.execute("UPDATE views_meta SET writes = writes + 1 WHERE id = 1")
            self._write_tracked(c, changes, expected, position)

    @contextmanager
    def _views_transaction(self) -> Iterator[SQLiteCursor]:
        """A transaction writing only the views, with the settings derived data allows;
        the connection's own are restored after it (it is the ledger's pool's).

        - ``synchronous=NORMAL``: the commit need not wait for fsync (in WAL mode the
          database stays consistent; a power loss may undo the last batches, tracking
          included, and they are re-applied).
        - ``secure_delete=OFF``: pages and cells the views free are not overwritten with
          zeros first.  Some builds (Debian's) turn it on by default; a rebuild then
          zeroed every page of the old views as it dropped them (4.5 of a 1M-event
          rebuild's 49 s, 3 Dec 2026) and a catch-up every row it replaced.  Zeroing
          hides nothing here: everything the views hold is derived from the events
          kept in the same file.
        """
        with self.datastore.get_connection(commit=True) as conn:
            with conn.cursor() as pragma:  # the library's public cursor, outside a transaction
                synchronous = pragma.execute("PRAGMA synchronous").fetchone()[0]
                secure_delete = pragma.execute("PRAGMA secure_delete").fetchone()[0]
                pragma.execute("PRAGMA synchronous=NORMAL")
                pragma.execute("PRAGMA secure_delete=OFF")
            try:
                with conn.transaction(commit=True) as c:
                    yield c
            finally:
                with conn.cursor() as pragma:
                    pragma.execute(f"PRAGMA synchronous={int(synchronous)}")
                    pragma.execute(f"PRAGMA secure_delete={int(secure_delete)}")

    def indexes_missing(self) -> bool:
        with self.datastore.transaction(commit=False) as c:
            return _indexes_missing(c)

    def defer_indexes(self) -> bool:
        with self.datastore.transaction(commit=True) as c:
            # A write first: the write lock, so no projector writes a batch meanwhile.
            c.execute("UPDATE views_meta SET writes = writes + 1 WHERE id = 1")
            if (self._max_tracking_id(self.tracking_name, c) or 0) == 0:
                for name in _SQLITE_DEFERRED_INDEXES:
                    c.execute(f"DROP INDEX IF EXISTS {name}")
            return _indexes_missing(c)

    def build_indexes(self) -> None:
        if not self.indexes_missing():
            return
        with self.datastore.transaction(commit=True) as c:
            c.execute("UPDATE views_meta SET writes = writes + 1 WHERE id = 1")
            self._build_indexes(c)

    def _build_indexes(self, c: SQLiteCursor) -> None:
        # CREATE INDEX sorts in memory up to the connection's cache size, then in runs
        # in a temporary file: at 1M events, 8 MiB more at the build's peak with the
        # projector's 8 MiB cache, 0.9 MiB with 1 MiB, for the same CPU (1.2-1.3 s for
        # both indexes; 3 Dec 2026).  So the build does not add a peak that grows with
        # the views.
        c.execute("PRAGMA cache_size")
        previous = int(c.fetchone()[0])
        c.execute("PRAGMA cache_size = -1024")
        try:
            for statement in _SQLITE_DEFERRED_INDEXES.values():
                c.execute(statement)
        finally:
            c.execute(f"PRAGMA cache_size = {previous}")

    def _write(self, c: SQLiteCursor, changes: Changes) -> None:
        # Rows with their cell keys are generated as SQLite steps through them, not
        # built as lists: a batch's rows are not held twice (the writer process's peak).
        if changes.entities:
            c.executemany(
                "INSERT INTO views_entities VALUES (?,?,?,?) ON CONFLICT (key) DO UPDATE "
                "SET ref = excluded.ref, vf0 = MIN(views_entities.vf0, excluded.vf0)",
                changes.entities,
            )
        if changes.data:
            c.executemany("INSERT INTO views_data VALUES (?,?,?)", changes.data)
        if changes.data_delete:
            c.executemany(
                "DELETE FROM views_data WHERE id = ?", ((i,) for i in changes.data_delete)
            )
        if changes.current_delete:
            c.executemany(
                "DELETE FROM views_current WHERE id = ?", ((i,) for i in changes.current_delete)
            )
        if changes.current_vt:
            c.executemany(
                "UPDATE views_current SET vt = ?, vkey = ? WHERE id = ?",
                ((vt, valid_key(vf, vt), i) for vt, i, vf in changes.current_vt),
            )
        if changes.current_insert:
            c.executemany(
                "INSERT INTO views_current VALUES (?,?,?,?,?,?,?,?)",
                ((*row, valid_key(row[2], row[3])) for row in changes.current_insert),
            )
        if changes.history_insert:
            c.executemany(
                "INSERT INTO views_history VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    (i, key, kind, dyadic_key(rf, rt), vf, vt, rf, rt, data_id)
                    for i, key, kind, vf, vt, rf, rt, data_id in changes.history_insert
                ),
            )

    def reset(self) -> None:
        with self._views_transaction() as c:
            c.execute("UPDATE views_meta SET writes = writes + 1 WHERE id = 1")
            for statement in _SQLITE_DROP:
                c.execute(statement)
            for statement in _SQLITE_TABLES:
                c.execute(statement)
            c.execute("DELETE FROM tracking WHERE application_name = ?", (self.tracking_name,))

    def select_at(
        self,
        kind: str,
        as_of_us: int,
        known_at_us: int,
        *,
        keys: Sequence[str] | None = None,
        ref: str | None = None,
    ) -> list[Found]:
        params: dict[str, Any] = {
            "kind": kind,
            "kc": KIND_CODE[kind],
            "t": min(as_of_us, INFINITY - 1),
            "k": min(known_at_us, INFINITY - 1),
        }
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # plain tuples: this can be thousands of rows
            if keys is not None:
                return self._select_keys(c, params, list(keys))
            history = _HISTORY_SQL.format(cells=",".join(map(str, dyadic_cells(params["k"]))))
            if ref is None and _indexes_missing(c):
                # A full rebuild in progress (or killed: the next catch-up builds them)
                # has not built the valid-time index yet: entity by entity instead.
                current = _CURRENT_SQL
            elif ref is None:
                current = _CURRENT_ALL_SQL.format(
                    cells=",".join(map(str, valid_cells(params["t"])))
                )
            else:
                current = _CURRENT_SQL
                params["ref"] = ref
                current += " AND e.ref = :ref"
                history += (
                    " AND EXISTS (SELECT 1 FROM views_entities e "
                    "WHERE e.key = h.key AND e.ref = :ref)"
                )
            c.execute(f"{current} UNION ALL {history}", params)
            rows: list[Found] = c.fetchall()  # (key, vf, vt, static, timeline) tuples
            return rows

    def _select_keys(self, c: SQLiteCursor, params: dict[str, Any], keys: list[str]) -> list[Found]:
        out: list[Found] = []
        for key in keys:
            params["key"] = key
            c.execute(
                "SELECT c.key, c.vf, c.vt, d.static, d.timeline FROM views_current c "
                "JOIN views_data d ON d.id = c.data_id "
                "WHERE c.id = (SELECT c2.id FROM views_current c2 WHERE c2.key = :key "
                "AND c2.vf <= :t ORDER BY c2.vf DESC LIMIT 1) AND c.vt > :t AND c.rf <= :k",
                params,
            )
            out.extend(Found(*row) for row in c.fetchall())
        wanted = set(keys)
        c.execute(_HISTORY_SQL.format(cells=",".join(map(str, dyadic_cells(params["k"])))), params)
        out.extend(Found(*row) for row in c.fetchall() if row[0] in wanted)
        return out

    def select_known(self, kind: str, known_at_us: int, keys: Sequence[str]) -> list[Found]:
        out: list[Found] = []
        k = min(known_at_us, INFINITY - 1)
        wanted = set(keys)
        with self.datastore.transaction(commit=False) as c:
            for key in keys:
                c.execute(
                    "SELECT c.key, c.vf, c.vt, d.static, d.timeline FROM views_current c "
                    "JOIN views_data d ON d.id = c.data_id WHERE c.key = ? AND c.rf <= ?",
                    (key, k),
                )
                out.extend(Found(*row) for row in c.fetchall())
            cells = ",".join(map(str, dyadic_cells(k)))
            c.execute(
                "SELECT h.key, h.vf, h.vt, d.static, d.timeline FROM views_history h "
                f"JOIN views_data d ON d.id = h.data_id WHERE h.kind = ? AND h.dkey IN ({cells}) "
                "AND h.rf <= ? AND h.rt > ?",
                (KIND_CODE[kind], k, k),
            )
            out.extend(Found(*row) for row in c.fetchall() if row[0] in wanted)
        out.sort(key=lambda f: (f.key, f.vf))
        return out

    def row_counts(self) -> dict[str, int]:
        out = {}
        with self.datastore.transaction(commit=False) as c:
            for table in ("views_entities", "views_data", "views_current", "views_history"):
                c.execute(f"SELECT COUNT(*) FROM {table}")
                out[table] = int(c.fetchone()[0])
        return out

    def contents(self) -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        with self.datastore.transaction(commit=False) as c:
            for table in CONTENT_TABLES:
                c.execute(f"SELECT * FROM {table} ORDER BY 1")
                out[table] = [tuple(row) for row in c.fetchall()]
        return out


def _indexes_missing(c: SQLiteCursor) -> bool:
    c.execute(_INDEXES_PRESENT_SQL)
    return int(c.fetchone()[0]) < len(_SQLITE_DEFERRED_INDEXES)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
