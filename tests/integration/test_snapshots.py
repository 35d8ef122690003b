"""Appends to a long-lived licence load its snapshot, not its history (SQLite and
PostgreSQL): the events decoded for one more shipment do not grow with the licence's
shipments, the rules still see every shipment id (the shipment index), the snapshot is
written with the events, and a missing, old or unreadable snapshot is only ignored."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest

from ledger import events as ev
from ledger.app import Ledger
from ledger.domain import state as st
from ledger.errors import RuleViolation
from tests import factory as f
from tests.conftest import Backend

HISTORY = 5000


def long_licence(backend: Backend) -> dict[str, str]:
    """A ledger whose licence GL-1 has ``HISTORY`` shipments (1 kg each, cap 100 t)."""
    env = backend.env()
    with closing(Ledger(backend.settings(env))) as app:
        app.append_objects(
            f.licensed_world(items=[{"item": "1C902.a", "cap": "100000", "unit": "kg"}])
        )
        app.append_objects(
            [
                f.usage(shipment=f"S-{n}", quantity="1", effective_at="2025-12-10")
                for n in range(HISTORY)
            ]
        )
    return env


def stored_state(app: Ledger) -> st.LicenceState:
    entity = app.entity("licence", "GL-1")
    assert entity is not None
    state = st.state_at(entity.events)
    assert isinstance(state, st.LicenceState)
    return state


def snapshot_row(app: Ledger) -> tuple[int, bytes] | None:
    with app.recorder.tree_port() as port:  # type: ignore[attr-defined]
        return app.snapshot_tables.select(port, ["licence:GL-1"]).get("licence:GL-1")


def sql(app: Ledger, text: str, params: tuple[Any, ...] = ()) -> None:
    with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
        port.execute(app.snapshot_tables.sql(text), params)


def test_an_append_to_a_long_licence_reads_a_bounded_number_of_events(
    backend: Backend,
) -> None:
    env = long_licence(backend)
    with closing(Ledger(backend.settings(env))) as app:
        result = app.append_objects([f.usage(shipment="S-new", quantity="1")])
        assert len(result.appended) == 1
        # The licence from its snapshot; the end user's two events (registered, vetted).
        assert app.events_loaded <= 2, app.events_loaded
        # Re-recording a shipment of the history is recognised, by the shipment index...
        again = app.append_objects([f.usage(shipment="S-17", quantity="1")])
        assert [o.status for o in again.outcomes] == ["duplicate"]
        original = next(
            e
            for e in app.log(entity_kind="licence", types=["LicenceUsageRecorded"])
            if isinstance(e.event, ev.LicenceUsageRecorded) and e.event.shipment_id == "S-17"
        )
        assert again.outcomes[0].duplicate_of == original.event.event_id
        assert again.outcomes[0].position == original.position
        # ... and so is the same id with other details.
        with pytest.raises(RuleViolation) as caught:
            app.append_objects([f.usage(shipment="S-4999", quantity="2")])
        assert caught.value.rule == "duplicate-shipment"
        assert app.events_loaded <= 6, app.events_loaded
        state = stored_state(app)
        assert state.shipment_count == HISTORY + 1
        assert state.items["1C902.a"].used == HISTORY + 1
        row = snapshot_row(app)
        assert row is not None and row[0] == HISTORY + 2  # taken with the last append


@contextmanager
def round_trips(app: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the round trips to PostgreSQL while the block runs (into the one-item list
    yielded): libpq's own trace of every connection the ledger takes from its pool, one
    round trip per ReadyForQuery the server sends (it ends each simple query and each
    Sync of the extended protocol; a pipeline's statements before one Sync count once).
    The statements themselves run on the real server."""
    from psycopg.pq import Trace

    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    untraced = datastore.get_connection
    count = [0]

    @contextmanager
    def traced() -> Iterator[Any]:
        with untraced() as conn, tempfile.TemporaryFile() as trace:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
            try:
                yield conn
            finally:
                conn.pgconn.untrace()
                trace.seek(0)
                count[0] += sum(
                    line.startswith(b"B") and b"\tReadyForQuery" in line for line in trace
                )

    monkeypatch.setattr(datastore, "get_connection", traced)
    try:
        yield count
    finally:
        monkeypatch.setattr(datastore, "get_connection", untraced)


APPEND_ROUND_TRIPS = 8
"""What one append costs on PostgreSQL in a new ``Ledger``, licence or party alike: the
shipment index's marker (once per ``Ledger``), the event ids, the newest recorded time,
the one read of what the events are checked against (``select_for_append`` or the
entities' events); then BEGIN with the lock, the NOTIFY, the recorded-time guard and the
Merkle tree's tip (one simple query), the events, their index rows with the shipment
rows, snapshot and tree rows (one statement), COMMIT.  Was 22 (2 Dec 2026), then 18
(3 Dec: the tree read four times and wrote three statements, BEGIN went alone)."""


def test_on_postgresql_a_licence_append_makes_as_many_round_trips_as_a_fresh_party(
    postgres_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append's cost on PostgreSQL is mostly round trips: one more shipment to a long
    licence (its snapshot, the events after it, the shipment-id look-up, the snapshot and
    shipment row written) takes ``APPEND_ROUND_TRIPS``, as registering a fresh party
    does, in a new ``Ledger`` each (as ``ledger append`` does).  A read or write per
    row, per tree node or per table would show here."""
    env = long_licence(postgres_backend)
    counts: dict[str, int] = {}
    for what, obj in [
        ("licence", f.usage(shipment="S-new", quantity="1")),
        ("party", f.party("fresh")),
        ("licence again", f.usage(shipment="S-newer", quantity="1")),
    ]:
        with closing(Ledger(postgres_backend.settings(env))) as app:
            with round_trips(app, monkeypatch) as count:
                result = app.append_objects([obj])
            assert [o.status for o in result.outcomes] == ["appended"]
            counts[what] = count[0]
            if what != "party":
                assert app.events_loaded <= 2  # (from the snapshot: the end user's two)
    assert counts == dict.fromkeys(counts, APPEND_ROUND_TRIPS), counts


def test_a_backdated_event_or_a_retraction_reads_the_history_and_answers_as_before(
    backend: Backend,
) -> None:
    env = long_licence(backend)
    with closing(Ledger(backend.settings(env))) as app:
        # Effective before recorded shipments: the state as of its time needs them all.
        app.append_objects(
            [f.usage(shipment="S-early", quantity="94000", effective_at="2025-12-05")]
        )
        assert app.events_loaded >= HISTORY
        with pytest.raises(RuleViolation) as caught:  # 1 t left of the 100 t
            app.append_objects([f.usage(shipment="S-over", quantity="1001")])
        assert caught.value.rule == "usage-exceeds-cap"
        early = next(
            e
            for e in app.log(entity_kind="licence", types=["LicenceUsageRecorded"])
            if isinstance(e.event, ev.LicenceUsageRecorded) and e.event.shipment_id == "S-early"
        )
        app.retract(early.event.event_id, "entered in error")
    with closing(Ledger(backend.settings(env))) as app:
        # Retracted: its shipment id is free again, and its 94 t too.
        app.append_objects([f.usage(shipment="S-early", quantity="5")])
        assert app.events_loaded <= 2, app.events_loaded
        state = stored_state(app)
        assert state.items["1C902.a"].used == HISTORY + 5
        assert state.shipment_count == HISTORY + 1


def test_a_missing_old_or_unreadable_snapshot_is_ignored(backend: Backend) -> None:
    env = backend.env()
    with closing(Ledger(backend.settings(env))) as app:
        app.append_objects(f.licensed_world())
        app.append_objects([f.usage(shipment=f"S-{n}", quantity="10") for n in range(3)])
        t = app.snapshot_tables.snapshots
        # Unreadable: the licence is loaded from its events (and snapshotted anew).
        sql(app, f"UPDATE {t} SET state = ?", (b"not a snapshot",))
        app.append_objects([f.usage(shipment="S-3", quantity="10")])
        assert app.events_loaded >= 5
        row = snapshot_row(app)
        assert row is not None and row[0] == 5
    with closing(Ledger(backend.settings(env))) as app:
        # Old: the events stored after it are folded onto it.
        old = row
        app.append_objects([f.usage(shipment=f"S-{n}", quantity="10") for n in (4, 5)])
        sql(app, f"UPDATE {t} SET originator_version = ?, state = ?", old)
        loaded = app.events_loaded
        with pytest.raises(RuleViolation) as caught:
            app.append_objects([f.usage(shipment="S-5", quantity="20")])
        assert caught.value.rule == "duplicate-shipment"
        app.append_objects([f.usage(shipment="S-6", quantity="940")])  # exactly the rest
        assert app.events_loaded - loaded <= 2 * (2 + 2)  # the two after it, the end user
        # Missing: from the events.
        sql(app, f"DELETE FROM {t}")
        with pytest.raises(RuleViolation) as caught:
            app.append_objects([f.usage(shipment="S-7", quantity="1")])
        assert caught.value.rule == "licence-exhausted"
        assert stored_state(app).items["1C902.a"].remaining == 0


def test_a_rejected_batch_writes_no_snapshot(backend: Backend) -> None:
    env = backend.env()
    with closing(Ledger(backend.settings(env))) as app:
        app.append_objects(f.licensed_world())
        app.append_objects([f.usage(shipment="S-1", quantity="10")])
        before = snapshot_row(app)
        with pytest.raises(RuleViolation):
            app.append_objects(
                [f.usage(shipment="S-2", quantity="10"), f.usage(shipment="S-3", quantity="9999")]
            )
        assert snapshot_row(app) == before
        assert before is not None and before[0] == 2  # granted, S-1
        app.append_objects([f.usage(shipment="S-2", quantity="10")])
        assert stored_state(app).items["1C902.a"].used == 20


def test_a_ledger_from_before_the_shipment_index_is_indexed_at_its_first_append(
    backend: Backend,
) -> None:
    env = backend.env()
    with closing(Ledger(backend.settings(env))) as app:
        app.append_objects(f.licensed_world())
        app.append_objects([f.usage(shipment=f"S-{n}", quantity="10") for n in range(3)])
        tables = app.snapshot_tables
        for table in (tables.shipments, tables.meta):
            sql(app, f"DELETE FROM {table}")
    with closing(Ledger(backend.settings(env))) as app:
        with pytest.raises(RuleViolation) as caught:
            app.append_objects([f.usage(shipment="S-1", quantity="20")])
        assert caught.value.rule == "duplicate-shipment"
        with app.recorder.tree_port() as port:  # type: ignore[attr-defined]
            assert tables.indexed(port)
            assert len(tables.find_shipments(port, "GL-1", ["S-2"], 10)) == 1
