"""Long catch-ups write the views in a second process (``ledger.projections.writer``): the same
rows as writing inline, another projector's write still detected, and a writer process
that dies leaves the views at their last complete batch.  Both backends."""

from __future__ import annotations

import os

import pytest

from ledger.app import Ledger
from ledger.errors import StoreError
from ledger.projections.runner import (
    SKIPPED_TOPICS,
    apply_payloads,
    catch_up,
    new_projector,
)
from ledger.projections.store import ViewsMoved
from ledger.projections.stores import view_store
from ledger.projections.writer import ProcessWriter
from tests.conftest import Backend
from tests.integration.test_projector import (
    assert_views_exact,
    expected_used,
    record_history,
    used_now,
)


def test_a_long_catch_up_writes_in_a_second_process(backend: Backend) -> None:
    app = Ledger(backend.settings())
    try:
        record_history(app, batches=4, per_batch=300)
        store = view_store(app)
        inline = catch_up(app, new_projector(app, store), flush_events=250, parallel_from=10**9)
        counts = store.row_counts()

        store.reset()
        projector = new_projector(app, store)
        writers: set[ProcessWriter | None] = set()
        seen_batches: list[object] = []
        parallel = catch_up(
            app,
            projector,
            flush_events=250,
            parallel_from=1,
            on_progress=lambda p: (writers.add(projector.writer), seen_batches.append(p)),
        )
        (writer,) = writers  # one writer process for the whole catch-up
        assert isinstance(writer, ProcessWriter) and writer.pid != os.getpid()
        assert writer.written == len(seen_batches) >= 4  # every batch written by it
        assert projector.writer is None and writer._process.returncode == 0  # stopped
        assert parallel.position == inline.position == app.head()
        assert store.row_counts() == counts
        assert used_now(app, "stored") == expected_used(1200)
        assert_views_exact(app)
    finally:
        app.close()


def test_another_projectors_write_is_detected_across_the_process(backend: Backend) -> None:
    app = Ledger(backend.settings())
    projector = new_projector(app)
    projector.writer = ProcessWriter(app.settings)
    try:
        record_history(app, batches=2, per_batch=200)
        apply_payloads(app, projector, app.read_stored(0, 150, skip_types=SKIPPED_TOPICS))
        other = catch_up(app, new_projector(app), until=300)  # writes meanwhile
        projector.flush(background=True)
        with pytest.raises(ViewsMoved) as moved:
            projector.wait()
        assert moved.value.position == other.position == 300
        assert projector.position == 300  # reloaded from what is stored
        catch_up(app, projector)
        assert view_store(app).position() == app.head()
        assert used_now(app, "stored") == expected_used(400)
        assert_views_exact(app)
    finally:
        projector.writer.close()
        app.close()


def test_a_writer_process_that_dies_leaves_the_last_complete_batch(backend: Backend) -> None:
    app = Ledger(backend.settings())
    projector = new_projector(app)
    writer = projector.writer = ProcessWriter(app.settings)
    try:
        record_history(app, batches=2, per_batch=200)
        apply_payloads(app, projector, app.read_stored(0, 100, skip_types=SKIPPED_TOPICS))
        projector.flush(background=True)
        projector.wait()
        assert view_store(app).position() == 100

        writer.kill()
        apply_payloads(app, projector, app.read_stored(100, 100, skip_types=SKIPPED_TOPICS))
        with pytest.raises(StoreError, match="writer process exited"):
            projector.flush(background=True)
            projector.wait()
        assert projector.position == view_store(app).position() == 100
        projector.writer = None
        catch_up(app, projector)
        assert used_now(app, "stored") == expected_used(400)
        assert_views_exact(app)
    finally:
        projector.writer = None
        writer.close()
        app.close()
