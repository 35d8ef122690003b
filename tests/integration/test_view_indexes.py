"""A full rebuild of the views builds their two largest secondary indexes once, in its
last batch's transaction, instead of row by row; queries answer meanwhile, and a rebuild
killed before its end leaves views whose next catch-up builds them (SQLite: PostgreSQL
keeps its indexes, see docs/performance.md)."""

from __future__ import annotations

import datetime as dt
import signal
import time

import pytest

from ledger.app import Ledger
from ledger.projections.query import Views
from ledger.projections.runner import catch_up, new_projector
from ledger.projections.store import SQLiteViewRecorder
from ledger.projections.stores import view_store
from tests.conftest import Backend
from tests.integration.test_projector import (
    WAIT,
    _project_process,
    _tracked,
    assert_views_exact,
    expected_used,
    record_history,
    shipments,
    used_now,
)

DEFERRED = {"views_current_valid", "views_history_cell"}


def _indexes(app: Ledger) -> set[str]:
    store = view_store(app)
    assert isinstance(store, SQLiteViewRecorder)
    with store.datastore.transaction(commit=False) as c:
        c.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'views_%'")
        return {row[0] for row in c.fetchall()}


def _built(app: Ledger) -> bool:
    return _indexes(app) >= DEFERRED


def _drop_deferred(app: Ledger) -> None:
    """What a rebuild killed midway leaves: the views without the two indexes."""
    store = view_store(app)
    assert isinstance(store, SQLiteViewRecorder)
    with store.datastore.transaction(commit=True) as c:
        for name in DEFERRED:
            c.execute(f"DROP INDEX {name}")


def _stored_equals_fold(app: Ledger, known_at: dt.datetime | None) -> None:
    stored, fold = Views(app, mode="stored"), Views(app, mode="fold")
    for day in (5, 12, 20, 400):
        t = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=day)
        assert stored.records("licence", t, known_at) == fold.records("licence", t, known_at)


@pytest.mark.parametrize("parallel_from", [1, 10**9], ids=["writer-process", "inline"])
def test_a_rebuild_builds_the_indexes_in_its_last_batch(
    sqlite_backend: Backend, parallel_from: int
) -> None:
    app = Ledger(sqlite_backend.settings())
    try:
        record_history(app, batches=4, per_batch=300)
        store = view_store(app)
        assert _built(app)
        store.reset()
        seen: list[tuple[int, bool]] = []
        catch_up(
            app,
            new_projector(app, store),
            flush_events=250,
            parallel_from=parallel_from,
            on_progress=lambda p: seen.append((p.position, _built(app))),
        )
        # Every batch but the last written without them (the last may still be in
        # flight when its progress is reported), and built with the last one.
        assert len(seen) >= 4 and not any(built for _, built in seen[:-1])
        assert _built(app) and store.position() == app.head()
        assert not store.indexes_missing()
        assert used_now(app, "stored") == expected_used(1200)
        assert_views_exact(app)
    finally:
        app.close()


def test_an_ordinary_catch_up_keeps_the_indexes(sqlite_backend: Backend) -> None:
    app = Ledger(sqlite_backend.settings())
    try:
        record_history(app, batches=2, per_batch=200)
        store = view_store(app)
        catch_up(app, new_projector(app, store), flush_events=100)
        app.append_objects(shipments(10_000, 30))
        seen: list[bool] = []
        catch_up(
            app,
            new_projector(app, store),
            flush_events=10,
            on_progress=lambda p: seen.append(_built(app)),
        )
        assert len(seen) >= 2 and all(seen)  # never dropped: the views were not empty
    finally:
        app.close()


def test_queries_answer_without_the_indexes_and_a_catch_up_builds_them(
    sqlite_backend: Backend,
) -> None:
    app = Ledger(sqlite_backend.settings())
    try:
        record_history(app, batches=3, per_batch=200)
        catch_up(app, new_projector(app))
        _drop_deferred(app)
        entries = list(app.log(order="recorded"))
        for known_at in (entries[len(entries) // 2].event.recorded_at, None):
            _stored_equals_fold(app, known_at)  # "no such index" before
        assert used_now(app, "stored") == expected_used(600)

        # Nothing left to apply: the catch-up builds them on its own.
        catch_up(app, new_projector(app))
        assert _built(app)

        # With events to apply: in the batch that reaches the head.
        _drop_deferred(app)
        app.append_objects(shipments(10_000, 30))
        assert Views(app).records("licence", None, None)  # auto: catches up first
        assert _built(app)
        assert_views_exact(app)
    finally:
        app.close()


@pytest.mark.parametrize("then", [["--once"], ["--rebuild", "--once"]], ids=lambda a: a[0])
def test_a_rebuild_killed_midway_leaves_views_the_next_run_indexes(
    sqlite_backend: Backend, then: list[str]
) -> None:
    env = sqlite_backend.env()
    app = Ledger(sqlite_backend.settings(env))
    try:
        record_history(app, batches=8, per_batch=250)
        head = app.head()
        catch_up(app, new_projector(app))
        assert _built(app)
        proc = _project_process(env, "--rebuild", "--once")  # batches of 20 events
        try:
            deadline = time.monotonic() + WAIT
            # The rebuild empties the views first (position 0), then writes batches.
            while not (0 < _tracked(app) < head) and proc.poll() is None:
                assert time.monotonic() < deadline, "the rebuild made no progress"
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=WAIT)
        position = _tracked(app)
        assert proc.returncode == -signal.SIGKILL
        assert 0 < position < head, "the rebuild was not killed midway"
        assert not DEFERRED & _indexes(app)  # written without them so far
        # What is stored answers meanwhile, as known at a time it covers.
        views = Views(app, mode="stored")
        times = sorted({e.event.recorded_at for e in app.log(order="recorded")})
        covered = [k for k in times if views.covers(k)]
        assert covered
        _stored_equals_fold(app, covered[-1])

        done = _project_process(env, *then)
        assert done.wait(timeout=WAIT) == 0, done.stderr.read() if done.stderr else ""
        assert _tracked(app) == head
        assert _built(app)
        assert used_now(app, "stored") == expected_used(8 * 250)
        assert_views_exact(app)
    finally:
        app.close()
