"""Licence snapshots and the shipment index, stored beside the events and written with them.

Two tables per events table ``T`` (both backends), written by the recorders in the
transaction that inserts the events (``after_insert``), so they commit with the events
or not at all:

- ``T_shipments``: one row per ``LicenceUsageRecorded`` (licence id, shipment id,
  position).  The ``duplicate-shipment`` rule and shipment idempotency look a shipment id
  up here instead of holding every id of a licence's history in its state.
- ``T_snapshots``: per entity, its latest snapshot: the version it was taken at and the
  state over all effective times after that version (sealed like an event: the mapper's
  compression and cipher apply).  An append loads the snapshot and the events after it
  (normally none) instead of the whole history.

A third, ``T_snapshot_meta``, marks that every stored usage event is in the shipment
index (``Ledger`` indexes a ledger from before the index once, at first open).

A snapshot is a pure function of the events up to its version, so one that is missing,
old, of another format or unreadable is only ignored: the entity is then loaded from its
events, as before snapshots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

from ledger.domain.licence import LicenceState, share_values
from ledger.store.codec import IndexRow
from ledger.store.tree import Port

SHIPMENTS_INDEXED = "shipments_indexed"

SNAPSHOT_FORMAT = 1
"""Bump it whenever ``LicenceState`` or its fold changes: snapshots of another format
are ignored (the entity is then loaded from its events and snapshotted anew)."""


class LicenceSnapshot(msgspec.Struct, frozen=True):
    """What a licence snapshot holds: its state over all effective times, and the latest
    effective time among the events folded into it."""

    format: int
    max_effective: dt.datetime
    state: LicenceState


_snapshot_decoder = msgspec.json.Decoder(LicenceSnapshot)
_snapshot_encoder = msgspec.json.Encoder(decimal_format="string")


def encode_snapshot(state: LicenceState, max_effective: dt.datetime) -> bytes:
    return _snapshot_encoder.encode(LicenceSnapshot(SNAPSHOT_FORMAT, max_effective, state))


def decode_snapshot(data: bytes) -> LicenceSnapshot | None:
    """The snapshot, or None if it is of another format or unreadable (then ignored)."""
    try:
        found = _snapshot_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if found.format != SNAPSHOT_FORMAT:
        return None
    share_values(found.state)
    return found


class ForAppend(NamedTuple):
    """What ``SnapshotTables.select_for_append`` read."""

    snapshots: dict[str, tuple[int, bytes]]
    """key -> (version, sealed snapshot)"""
    events: dict[str, list[tuple[int, str, bytes]]]
    """key -> its events after its snapshot (all of them without one): (version, topic,
    stored state), in version order"""
    shipments: dict[str, list[str]]
    """licence key -> those of its shipment ids asked for that the shipment index holds
    at any version, retracted or not (``find_shipments`` then says which of them the
    snapshot folded; a licence absent here holds none of them)"""
    shipments_read: bool
    """False: the shipments were not looked up (too many to ask at once)."""


class SnapshotTables:
    """SQL for one events table's snapshot and shipment tables (``?`` placeholders;
    ``%s`` for psycopg).  ``index``: the event index table; ``events`` and
    ``position``: the events table and its position column."""

    def __init__(
        self,
        index: str,
        events: str,
        position_column: str,
        shipments: str,
        snapshots: str,
        meta: str,
        *,
        postgres: bool,
    ):
        self.index, self.events, self.position = index, events, position_column
        self.shipments, self.snapshots, self.meta = shipments, snapshots, meta
        self.postgres = postgres
        integer, blob = ("bigint", "bytea") if postgres else ("INTEGER", "BLOB")
        rowid = "" if postgres else " WITHOUT ROWID"
        self.create_statements = [
            f"CREATE TABLE IF NOT EXISTS {shipments} (licence_id TEXT NOT NULL, "
            f"shipment_id TEXT NOT NULL, position {integer} NOT NULL, "
            f"PRIMARY KEY (licence_id, shipment_id, position)){rowid}",
            f"CREATE TABLE IF NOT EXISTS {snapshots} (originator_id TEXT PRIMARY KEY, "
            f"originator_version {integer} NOT NULL, state {blob} NOT NULL){rowid}",
            f"CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value {integer} NOT NULL)",
        ]
        self._ignore = " ON CONFLICT DO NOTHING"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    # --- writing (inside the events' transaction) ---------------------------------------

    def write(self, port: Port, positions: Sequence[int], rows: Sequence[IndexRow]) -> None:
        """The shipment rows and snapshots these events carry (SQLite; PostgreSQL writes
        them in the statement that writes the index rows: ``postgres_ctes``)."""
        assert not self.postgres
        shipments, snapshots = _rows(positions, rows)
        if shipments:
            _execute(
                port,
                self.sql(f"INSERT INTO {self.shipments} VALUES (?,?,?)" + self._ignore),
                shipments,
            )
        if snapshots:
            self.put(port, snapshots)

    def put(self, port: Port, snapshots: Sequence[tuple[str, int, bytes]]) -> None:
        """Store these snapshots (key, version, sealed state), each replacing an older one
        of its entity (inside a write transaction)."""
        _execute(
            port,
            self.sql(
                f"INSERT INTO {self.snapshots} AS s VALUES (?,?,?) "
                "ON CONFLICT (originator_id) DO UPDATE SET "
                "originator_version = excluded.originator_version, state = excluded.state "
                "WHERE excluded.originator_version > s.originator_version"
            ),
            snapshots,
        )

    def postgres_ctes(
        self, positions: Sequence[int], rows: Sequence[IndexRow]
    ) -> tuple[str, list[Any]]:
        """The shipment rows and snapshots these events carry as data-modifying common
        table expressions (``%b`` placeholders: rows passed as arrays, in binary) and their
        parameters, or ``("", [])`` if they carry none.  The PostgreSQL recorder prefixes
        them to the statement that inserts the index rows: no round trip of their own (an
        append's cost on PostgreSQL is mostly round trips).  ``positions`` and ``rows``:
        one chunk of at most ``INSERT_CHUNK_ROWS``, so the statement stays bounded."""
        assert self.postgres
        shipments, snapshots = _rows(positions, rows)
        if not shipments and not snapshots:
            return "", []
        columns = [list(c) for c in zip(*shipments, strict=True)] or [[], [], []]
        snapshot_columns = [list(c) for c in zip(*snapshots, strict=True)] or [[], [], []]
        return (
            f"ledger_shipped AS (INSERT INTO {self.shipments} "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[]) ON CONFLICT DO NOTHING), "
            f"ledger_snapped AS (INSERT INTO {self.snapshots} AS s "
            "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bytea[]) "
            "ON CONFLICT (originator_id) DO UPDATE SET "
            "originator_version = excluded.originator_version, state = excluded.state "
            "WHERE excluded.originator_version > s.originator_version)",
            [*columns, *snapshot_columns],
        )

    # --- reading ------------------------------------------------------------------------

    def select_for_append(
        self, port: Port, keys: Sequence[str], shipments: Sequence[tuple[str, str]]
    ) -> ForAppend:
        """What an append reads to check its events, in one query per 500 keys (one round
        trip for an ordinary append, where separate reads took three): the stored
        snapshots of these entities, the events of each stored after its snapshot (all
        of them for an entity without one), and in the first query which of the
        shipments ``(licence id, shipment id)`` the shipment index holds (left out, and
        ``shipments_read`` False, beyond 500 pairs).  Only whether they are there: the
        rows that ``find_shipments`` would keep (folded by the snapshot, not retracted)
        are for a second read, needed only when one is there (an id recorded again).
        Planning the join that tells it (five tables) cost a new backend about as much
        as the rest of the read."""
        out = ForAppend({}, {}, {}, shipments_read=len(shipments) <= 500)
        pairs = list(dict.fromkeys(shipments)) if out.shipments_read else []
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            values = ",".join(["(?)"] * len(chunk))
            # Driven by the keys (a handful of rows): each entity's events come from an
            # index range scan that starts after its snapshot, however long its history.
            parts = [
                # (typed NULLs: PostgreSQL resolves a UNION's column types left to right)
                "SELECT 0, s.originator_id, s.originator_version, CAST(NULL AS TEXT), s.state "
                f"FROM (VALUES {values}) k JOIN {self.snapshots} s "
                "ON s.originator_id = k.column1",
                "SELECT 1, k.column1, e.originator_version, e.topic, e.state "
                f"FROM (VALUES {values}) k LEFT JOIN {self.snapshots} s "
                f"ON s.originator_id = k.column1 JOIN {self.events} e "
                "ON e.originator_id = k.column1 "
                "AND e.originator_version > COALESCE(s.originator_version, 0)",
            ]
            params: list[Any] = chunk + chunk
            if pairs:
                values = ",".join(["(?,?)"] * len(pairs))
                parts.append(
                    "SELECT 2, 'licence:' || w.column1, sh.position, w.column2, NULL "
                    f"FROM (VALUES {values}) w JOIN {self.shipments} sh "
                    "ON sh.licence_id = w.column1 AND sh.shipment_id = w.column2"
                )
                params += [v for pair in pairs for v in pair]
                pairs = []
            rows = port.all(self.sql(" UNION ALL ".join(parts) + " ORDER BY 1, 2, 3"), params)
            for part, key, number, text, state in rows:
                if part == 0:
                    out.snapshots[str(key)] = (int(number), bytes(state))
                elif part == 1:
                    out.events.setdefault(str(key), []).append(
                        (int(number), str(text), bytes(state))
                    )
                else:
                    out.shipments.setdefault(str(key), []).append(str(text))
        return out

    def select(self, port: Port, keys: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """The stored snapshots of these entities: key -> (version, sealed state)."""
        out: dict[str, tuple[int, bytes]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, version, state in port.all(
                self.sql(
                    f"SELECT originator_id, originator_version, state FROM {self.snapshots} "
                    f"WHERE originator_id IN ({marks})"
                ),
                chunk,
            ):
                out[str(key)] = (int(version), bytes(state))
        return out

    def events_until(self, port: Port, key: str, version: int) -> list[tuple[Any, ...]]:
        """An entity's stored events up to ``version``: (version, topic, state) rows."""
        return port.all(
            self.sql(
                f"SELECT originator_version, topic, state FROM {self.events} "
                "WHERE originator_id = ? AND originator_version <= ? ORDER BY originator_version"
            ),
            (key, version),
        )

    def find_shipments(
        self, port: Port, licence_id: str, shipment_ids: Sequence[str], version: int
    ) -> list[tuple[Any, ...]]:
        """The usage events of ``licence_id`` recording any of ``shipment_ids``, stored at
        or before the licence's ``version`` and not retracted by then: (shipment id,
        position, effective_us, state) rows, in effective order (ties: position)."""
        out: list[tuple[Any, ...]] = []
        ids = list(dict.fromkeys(shipment_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out += port.all(
                self.sql(
                    "SELECT s.shipment_id, i.notification_id, i.effective_us, e.state "
                    f"FROM {self.shipments} s "
                    f"JOIN {self.index} i ON i.notification_id = s.position "
                    f"JOIN {self.events} e ON e.{self.position} = s.position "
                    f"WHERE s.licence_id = ? AND s.shipment_id IN ({marks}) "
                    "AND i.originator_version <= ? "
                    f"AND NOT EXISTS (SELECT 1 FROM {self.index} r WHERE r.retracts = i.event_id "
                    "AND r.entity_kind = 'licence' AND r.entity_id = ? "
                    "AND r.originator_version <= ?)"
                ),
                (licence_id, *chunk, version, licence_id, version),
            )
        out.sort(key=lambda row: (row[2], row[1]))
        return out

    def find_recorded_shipments(
        self, port: Port, pairs: Sequence[tuple[str, str]]
    ) -> dict[str, list[tuple[Any, ...]]]:
        """The stored usage events recording these ``(licence id, shipment id)`` pairs and
        not retracted: licence id -> (shipment id, position, effective_us, state) rows, in
        effective order (ties: position), as ``find_shipments`` finds them but for many
        licences at once and with no version bound (a streaming import asks about
        everything stored so far, its own rows included)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        pairs = list(dict.fromkeys(pairs))
        for start in range(0, len(pairs), 500):
            chunk = pairs[start : start + 500]
            values = ",".join(["(?,?)"] * len(chunk))
            rows = port.all(
                self.sql(
                    "SELECT w.column1, w.column2, i.notification_id, i.effective_us, e.state "
                    f"FROM (VALUES {values}) w JOIN {self.shipments} sh "
                    "ON sh.licence_id = w.column1 AND sh.shipment_id = w.column2 "
                    f"JOIN {self.index} i ON i.notification_id = sh.position "
                    f"JOIN {self.events} e ON e.{self.position} = sh.position "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {self.index} r WHERE r.retracts = i.event_id "
                    "AND r.entity_kind = 'licence' AND r.entity_id = w.column1)"
                ),
                [v for pair in chunk for v in pair],
            )
            for licence_id, shipment_id, position, effective_us, state in rows:
                out.setdefault(str(licence_id), []).append(
                    (str(shipment_id), int(position), int(effective_us), bytes(state))
                )
        for found in out.values():
            found.sort(key=lambda row: (row[2], row[1]))
        return out

    def position_of(self, port: Port, event_id: bytes | Any) -> int | None:
        row = port.one(
            self.sql(f"SELECT notification_id FROM {self.index} WHERE event_id = ?"), (event_id,)
        )
        return None if row is None else int(row[0])

    # --- indexing a ledger from before the shipment index -------------------------------

    def indexed(self, port: Port) -> bool:
        row = port.one(
            self.sql(f"SELECT value FROM {self.meta} WHERE name = ?"), (SHIPMENTS_INDEXED,)
        )
        return row is not None

    def index_all(self, port: Port, shipment_of: Callable[[bytes], str]) -> int:
        """Index every stored usage event (inside a write transaction holding the write
        lock); returns how many.  ``shipment_of``: a stored payload's shipment id."""
        if self.indexed(port):
            return 0
        rows: list[tuple[str, str, int]] = []
        found: Iterable[tuple[Any, ...]] = port.stream(
            self.sql(
                f"SELECT i.notification_id, i.entity_id, e.state FROM {self.index} i "
                f"JOIN {self.events} e ON e.{self.position} = i.notification_id "
                "WHERE i.event_type = 'LicenceUsageRecorded' ORDER BY i.notification_id"
            )
        )
        for position, licence_id, state in found:
            rows.append((str(licence_id), shipment_of(bytes(state)), int(position)))
        for start in range(0, len(rows), 2000):
            port.executemany(
                self.sql(f"INSERT INTO {self.shipments} VALUES (?,?,?)" + self._ignore),
                rows[start : start + 2000],
            )
        port.execute(
            self.sql(f"INSERT INTO {self.meta} VALUES (?, ?)" + self._ignore),
            (SHIPMENTS_INDEXED, 1),
        )
        return len(rows)


def _rows(
    positions: Sequence[int], rows: Sequence[IndexRow]
) -> tuple[list[tuple[str, str, int]], list[tuple[str, int, bytes]]]:
    """The shipment rows (licence id, shipment id, position) and snapshots (key, version,
    sealed state) that these events carry."""
    shipments = [
        (r.entity_id, r.shipment_id, p)
        for p, r in zip(positions, rows, strict=True)
        if r.shipment_id is not None
    ]
    snapshots = [
        (f"{r.entity_kind}:{r.entity_id}", r.originator_version, r.snapshot)
        for r in rows
        if r.snapshot is not None
    ]
    return shipments, snapshots


def _execute(port: Port, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    if len(rows) == 1:
        port.execute(sql, rows[0])  # one round trip (psycopg's executemany takes more)
    else:
        port.executemany(sql, rows)
