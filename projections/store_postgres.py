"""The stored views on PostgreSQL (see ``ledger.projections.store`` for the design).

Same tables and indexes as on SQLite, in the ledger's schema.  Batches are written with
``COPY`` and array updates, under a transaction-scoped advisory lock so two projectors
never interleave.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from ledger.projections.records import INFINITY, KIND_CODE
from ledger.projections.store import (
    CONTENT_TABLES,
    SCHEMA_VERSION,
    Changes,
    Counters,
    CurrentRow,
    Found,
    ViewStore,
    dyadic_cells,
    dyadic_key,
)


class PostgresViewRecorder(PostgresTrackingRecorder, ViewStore):
    """The views on PostgreSQL, with the library's tracking table."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        tracking_table_name: str = "notification_tracking",
        **kwargs: Any,
    ):
        super().__init__(datastore, tracking_table_name=tracking_table_name, **kwargs)
        self._schema = Identifier(self.datastore.schema)
        self.sql_create_statements += [self._sql(s) for s in self._tables()]

    def _sql(self, text: str) -> Composed:
        """Statement text with ``{s}`` standing for the schema."""
        return SQL(text).format(s=self._schema)  # type: ignore[arg-type]

    @staticmethod
    def _tables() -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {s}.views_meta (id int PRIMARY KEY, "
            "writes bigint NOT NULL, schema_version int NOT NULL)",
            f"INSERT INTO {{s}}.views_meta VALUES (1, 0, {SCHEMA_VERSION}) ON CONFLICT DO NOTHING",
            "CREATE TABLE IF NOT EXISTS {s}.views_entities (key text PRIMARY KEY, "
            "kind text NOT NULL, ref text, vf0 bigint NOT NULL)",
            "CREATE INDEX IF NOT EXISTS views_entities_kind ON {s}.views_entities (kind, ref)",
            "CREATE INDEX IF NOT EXISTS views_entities_start ON {s}.views_entities (kind, vf0)",
            "CREATE TABLE IF NOT EXISTS {s}.views_data (id bigint PRIMARY KEY, "
            "static bytea NOT NULL, timeline bytea NOT NULL)",
            "CREATE TABLE IF NOT EXISTS {s}.views_current (id bigint PRIMARY KEY, "
            "key text NOT NULL, vf bigint NOT NULL, vt bigint NOT NULL, rf bigint NOT NULL, "
            "data_id bigint NOT NULL)",
            "CREATE INDEX IF NOT EXISTS views_current_key ON {s}.views_current (key, vf)",
            "CREATE TABLE IF NOT EXISTS {s}.views_history (id bigint PRIMARY KEY, "
            "key text NOT NULL, kind int NOT NULL, dkey bigint NOT NULL, vf bigint NOT NULL, "
            "vt bigint NOT NULL, rf bigint NOT NULL, rt bigint NOT NULL, "
            "data_id bigint NOT NULL)",
            "CREATE INDEX IF NOT EXISTS views_history_cell ON {s}.views_history "
            "(kind, dkey, vf, rf, rt, vt)",
        ]

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"views:{self.datastore.schema}",)
            )
            c.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'views_meta' AND column_name = 'schema_version'",
                (self.datastore.schema,),
            )
            stale = c.fetchone() is None
            if not stale:
                c.execute(self._sql("SELECT schema_version AS v FROM {s}.views_meta"))
                row = c.fetchone()
                stale = row is None or row["v"] != SCHEMA_VERSION
            if stale:
                c.execute(
                    self._sql(
                        "DROP TABLE IF EXISTS {s}.views_meta, {s}.views_entities, "
                        "{s}.views_data, {s}.views_current, {s}.views_history"
                    )
                )
                c.execute(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name = %s",
                    (self.datastore.schema, self.tracking_table_name),
                )
                if c.fetchone() is not None:
                    c.execute(
                        SQL("DELETE FROM {0}.{1} WHERE application_name = %s").format(
                            self._schema, Identifier(self.tracking_table_name)
                        ),
                        (self.tracking_name,),
                    )
        super().create_table()

    def position(self) -> int:
        return self.max_tracking_id(self.tracking_name) or 0

    def counters(self) -> Counters:
        with self.datastore.transaction(commit=False) as c:
            values = []
            for table in ("views_data", "views_current", "views_history"):
                c.execute(self._sql(f"SELECT MAX(id) AS m FROM {{s}}.{table}"))
                row = c.fetchone()
                values.append((row or {}).get("m") or 0)
        return Counters(*values)

    def known_keys(self) -> set[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._sql("SELECT key FROM {s}.views_entities"))
            return {row["key"] for row in c.fetchall()}

    def entity_count(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._sql("SELECT COUNT(*) AS n FROM {s}.views_entities"))
            row = c.fetchone()
            return int(row["n"]) if row else 0

    def listed(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._sql("SELECT key FROM {s}.views_entities WHERE key = ANY(%s)"),
                (list(keys),),
            )
            return {row["key"] for row in c.fetchall()}

    def current_rows(self, keys: Sequence[str]) -> dict[str, list[CurrentRow]]:
        out: dict[str, list[CurrentRow]] = {}
        if not keys:
            return out
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._sql(
                    "SELECT c.id, c.key, c.vf, c.vt, c.rf, c.data_id, d.static "
                    "FROM {s}.views_current c JOIN {s}.views_data d ON d.id = c.data_id "
                    "WHERE c.key = ANY(%s) ORDER BY c.key, c.vf"
                ),
                (list(keys),),
            )
            for row in c.fetchall():
                out.setdefault(row["key"], []).append(
                    CurrentRow(
                        row["id"],
                        row["key"],
                        row["vf"],
                        row["vt"],
                        row["rf"],
                        row["data_id"],
                        bytes(row["static"]),
                    )
                )
        return out

    def write(self, changes: Changes, expected: int, position: int) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"views:{self.datastore.schema}",)
            )
            self._write_tracked(c, changes, expected, position)

    def _copy(
        self, c: Cursor[DictRow], table: str, columns: str, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        with c.copy(self._sql(f"COPY {{s}}.{table} ({columns}) FROM STDIN")) as copy:
            for row in rows:
                copy.write_row(row)

    def _write(self, c: Cursor[DictRow], changes: Changes) -> None:
        if changes.entities:
            c.execute(
                self._sql(
                    "INSERT INTO {s}.views_entities SELECT * FROM unnest(%s::text[], %s::text[], "
                    "%s::text[], %s::bigint[]) ON CONFLICT (key) DO UPDATE SET ref = excluded.ref, "
                    "vf0 = LEAST({s}.views_entities.vf0, excluded.vf0)"
                ),
                (
                    [e[0] for e in changes.entities],
                    [e[1] for e in changes.entities],
                    [e[2] for e in changes.entities],
                    [e[3] for e in changes.entities],
                ),
            )
        if changes.data:
            self._copy(c, "views_data", "id, static, timeline", changes.data)
        if changes.data_delete:
            c.execute(
                self._sql("DELETE FROM {s}.views_data WHERE id = ANY(%s)"), (changes.data_delete,)
            )
        if changes.current_delete:
            c.execute(
                self._sql("DELETE FROM {s}.views_current WHERE id = ANY(%s)"),
                (changes.current_delete,),
            )
        if changes.current_vt:
            c.execute(
                self._sql(
                    "UPDATE {s}.views_current c SET vt = u.vt FROM unnest(%s::bigint[], "
                    "%s::bigint[]) AS u(vt, id) WHERE c.id = u.id"
                ),
                ([u[0] for u in changes.current_vt], [u[1] for u in changes.current_vt]),
            )
        if changes.current_insert:
            self._copy(
                c,
                "views_current",
                "id, key, vf, vt, rf, data_id",
                [row[:6] for row in changes.current_insert],
            )
        if changes.history_insert:
            self._copy(
                c,
                "views_history",
                "id, key, kind, dkey, vf, vt, rf, rt, data_id",
                [
                    (i, key, kind, dyadic_key(rf, rt), vf, vt, rf, rt, data_id)
                    for i, key, kind, vf, vt, rf, rt, data_id in changes.history_insert
                ],
            )

    def reset(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"views:{self.datastore.schema}",)
            )
            c.execute(
                self._sql(
                    "TRUNCATE {s}.views_entities, {s}.views_data, {s}.views_current, "
                    "{s}.views_history"
                )
            )
            c.execute(
                SQL("DELETE FROM {0}.{1} WHERE application_name = %s").format(
                    self._schema, Identifier(self.tracking_table_name)
                ),
                (self.tracking_name,),
            )

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
            "ref": ref,
            "keys": list(keys) if keys is not None else None,
        }
        params["cells"] = dyadic_cells(params["k"])
        entity_filter = ""
        if keys is not None:
            entity_filter += " AND e.key = ANY(%(keys)s)"
        if ref is not None:
            entity_filter += " AND e.ref = %(ref)s"
        history_filter = ""
        if keys is not None or ref is not None:
            history_filter = (
                " AND EXISTS (SELECT 1 FROM {s}.views_entities e WHERE e.key = h.key"
                f"{entity_filter})"
            )
        sql = (
            "SELECT e.key, c.vf, c.vt, d.static, d.timeline FROM {s}.views_entities e "
            "CROSS JOIN LATERAL (SELECT c2.vf, c2.vt, c2.rf, c2.data_id FROM {s}.views_current c2 "
            "WHERE c2.key = e.key AND c2.vf <= %(t)s ORDER BY c2.vf DESC LIMIT 1) c "
            "JOIN {s}.views_data d ON d.id = c.data_id "
            "WHERE e.kind = %(kind)s AND e.vf0 <= %(t)s AND c.vt > %(t)s AND c.rf <= %(k)s"
            f"{entity_filter} "
            "UNION ALL "
            "SELECT h.key, h.vf, h.vt, d.static, d.timeline FROM {s}.views_history h "
            "JOIN {s}.views_data d ON d.id = h.data_id "
            "WHERE h.kind = %(kc)s AND h.dkey = ANY(%(cells)s) "
            "AND h.vf <= %(t)s AND h.rf <= %(k)s AND h.rt > %(k)s AND h.vt > %(t)s"
            f"{history_filter}"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._sql(sql), params)
            return [
                Found(r["key"], r["vf"], r["vt"], bytes(r["static"]), bytes(r["timeline"]))
                for r in c.fetchall()
            ]

    def select_known(self, kind: str, known_at_us: int, keys: Sequence[str]) -> list[Found]:
        if not keys:
            return []
        k = min(known_at_us, INFINITY - 1)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._sql(
                    "SELECT c.key, c.vf, c.vt, d.static, d.timeline FROM {s}.views_current c "
                    "JOIN {s}.views_data d ON d.id = c.data_id "
                    "WHERE c.key = ANY(%(keys)s) AND c.rf <= %(k)s "
                    "UNION ALL "
                    "SELECT h.key, h.vf, h.vt, d.static, d.timeline FROM {s}.views_history h "
                    "JOIN {s}.views_data d ON d.id = h.data_id "
                    "WHERE h.kind = %(kc)s AND h.dkey = ANY(%(cells)s) AND h.key = ANY(%(keys)s) "
                    "AND h.rf <= %(k)s AND h.rt > %(k)s "
                    "ORDER BY 1, 2"
                ),
                {"keys": list(keys), "k": k, "kc": KIND_CODE[kind], "cells": dyadic_cells(k)},
            )
            return [
                Found(r["key"], r["vf"], r["vt"], bytes(r["static"]), bytes(r["timeline"]))
                for r in c.fetchall()
            ]

    def row_counts(self) -> dict[str, int]:
        out = {}
        with self.datastore.transaction(commit=False) as c:
            for table in ("views_entities", "views_data", "views_current", "views_history"):
                c.execute(self._sql(f"SELECT COUNT(*) AS n FROM {{s}}.{table}"))
                row = c.fetchone()
                out[table] = int(row["n"]) if row else 0
        return out

    def contents(self) -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        with self.datastore.transaction(commit=False) as c:
            for table in CONTENT_TABLES:
                c.execute(self._sql(f"SELECT * FROM {{s}}.{table} ORDER BY 1"))
                out[table] = [
                    tuple(bytes(v) if isinstance(v, memoryview) else v for v in row.values())
                    for row in c.fetchall()
                ]
        return out
