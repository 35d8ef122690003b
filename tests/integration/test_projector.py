"""The live projector: exactly-once position tracking, resuming after SIGKILL, following
the store, concurrent projectors, the ``ledger project`` command.  Both backends."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.projections import api
from ledger.projections.query import Views
from ledger.projections.runner import catch_up, new_projector, run
from ledger.projections.store import TRACKING_NAME
from ledger.projections.stores import view_store
from tests.conftest import SOURCE, Backend

S = [SOURCE]
WAIT = 120.0
LICENCES = 6


def _day(n: float) -> str:
    t = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=n)
    return t.isoformat().replace("+00:00", "Z")


def setup_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {
            "type": "PartyRegistered",
            "entity_id": "x",
            "name": "X",
            "country": "CN",
            "roles": ["exporter"],
            "effective_at": _day(0),
            "sources": S,
        },
        {
            "type": "PartyRegistered",
            "entity_id": "u",
            "name": "U",
            "country": "US",
            "roles": ["end-user"],
            "effective_at": _day(0),
            "sources": S,
        },
        {
            "type": "PartyVetted",
            "entity_id": "u",
            "outcome": "approved",
            "authority": "MOFCOM",
            "effective_at": _day(1),
            "sources": S,
        },
    ]
    for n in range(LICENCES):
        events.append(
            {
                "type": "LicenceGranted",
                "entity_id": f"L{n}",
                "licence_type": "general",
                "issuer": "CN",
                "exporter": "x",
                "end_users": ["u"],
                "items": [{"item": "1C902.a", "cap": "100000000"}],
                "destinations": ["US"],
                "valid_until": _day(700),
                "effective_at": _day(2),
                "sources": S,
            }
        )
    return events


def shipments(start: int, count: int) -> list[dict[str, Any]]:
    """``count`` shipments spread over the licences; every 7th is backdated."""
    out = []
    for i in range(start, start + count):
        day = 10 + i / 50 - (5 if i % 7 == 0 else 0)
        out.append(
            {
                "type": "LicenceUsageRecorded",
                "entity_id": f"L{i % LICENCES}",
                "shipment_id": f"s{i}",
                "item": "1C902.a",
                "quantity": str(1 + i % 9),
                "end_user": "u",
                "destination": "US",
                "effective_at": _day(day),
                "sources": S,
            }
        )
    return out


def record_history(app: Ledger, batches: int, per_batch: int) -> None:
    app.append_objects(setup_events())
    for b in range(batches):
        app.append_objects(shipments(b * per_batch, per_batch))


def expected_used(n_shipments: int) -> dict[str, int]:
    used: dict[str, int] = {}
    for i in range(n_shipments):
        used[f"L{i % LICENCES}"] = used.get(f"L{i % LICENCES}", 0) + 1 + i % 9
    return used


def used_now(app: Ledger, mode: str) -> dict[str, int]:
    rows = api.licences(Views(app, mode=mode), None, None)
    return {r["licence_id"]: int(r["items"][0]["used"]) for r in rows}


def assert_views_exact(app: Ledger) -> None:
    """Stored answers equal a fresh fold at several (T, K), and the rows equal a rebuild's."""
    stored, fold = Views(app, mode="stored"), Views(app, mode="fold")
    entries = list(app.log(order="recorded"))
    knowns = [entries[len(entries) * i // 4].event.recorded_at for i in range(4)] + [None]
    for day in (5, 12, 20, 40, 400):
        t = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=day)
        for k in knowns:
            assert stored.records("licence", t, k) == fold.records("licence", t, k), (t, k)
    store = view_store(app)
    counts = store.row_counts()
    store.reset()
    catch_up(app, new_projector(app, store))
    assert store.row_counts() == counts  # nothing applied twice, nothing missing


def _tracked(app: Ledger) -> int:
    return view_store(app).position()


def _project_process(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    merged = {
        **os.environ,
        **env,
        "LEDGER_PROJECTOR_BATCH": "20",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "project", *args],
        env=merged,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_projector_resumes_after_sigkill_without_double_applying(backend: Backend) -> None:
    env = backend.env()
    app = Ledger(backend.settings(env))
    try:
        record_history(app, batches=8, per_batch=250)
        head = app.head()
        kills = 0
        for _ in range(3):  # kill it mid-way, several times
            before = _tracked(app)
            proc = _project_process(env)
            try:
                deadline = time.monotonic() + WAIT
                while _tracked(app) <= before and proc.poll() is None:
                    assert time.monotonic() < deadline, "the projector made no progress"
                    time.sleep(0.005)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=WAIT)
            position = _tracked(app)
            assert before < position <= head
            if position < head:
                kills += 1
        assert kills >= 1, "the projector was never killed before reaching the head"
        done = _project_process(env, "--once")
        assert done.wait(timeout=WAIT) == 0, done.stderr.read() if done.stderr else ""
        assert _tracked(app) == head
        assert used_now(app, "stored") == expected_used(8 * 250)
        assert_views_exact(app)
    finally:
        app.close()


def test_follow_store_applies_new_events_and_concurrent_catch_up_is_safe(
    backend: Backend,
) -> None:
    settings = backend.settings()
    app = Ledger(settings)
    stop = threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            run(settings, stop)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=follow, daemon=True)
    try:
        record_history(app, batches=2, per_batch=300)
        worker.start()
        for b in range(2, 8):
            app.append_objects(shipments(b * 300, 300))
            if b % 2:
                # A second projector (as a CLI query catching up would) races the follower.
                catch_up(app, new_projector(app))
        deadline = time.monotonic() + WAIT
        while _tracked(app) < app.head():
            assert not errors, errors
            assert time.monotonic() < deadline, "the follower did not catch up"
            time.sleep(0.05)
        stop.set()
        worker.join(timeout=WAIT)
        assert not errors, errors
        assert used_now(app, "stored") == expected_used(8 * 300)
        assert_views_exact(app)
    finally:
        stop.set()
        worker.join(timeout=WAIT)
        app.close()


def test_queries_catch_up_stale_views_or_fold(backend: Backend) -> None:
    app = Ledger(backend.settings())
    try:
        record_history(app, batches=2, per_batch=100)
        catch_up(app, new_projector(app))
        cutoff = app.last_recorded_at()
        app.append_objects(shipments(200, 100))
        position = _tracked(app)
        # Known at the cut-off, the stored views still cover the question: no catch-up.
        v = Views(app)
        before = api.licences(v, None, cutoff)
        assert v.source == "stored" and _tracked(app) == position
        assert before == api.licences(Views(app, mode="fold"), None, cutoff)
        # Known now they do not: the query catches them up first.
        assert used_now(app, "auto") == expected_used(300)
        assert _tracked(app) == app.head()
    finally:
        app.close()


def test_a_restarted_projector_loads_stored_entities_in_one_go(backend: Backend) -> None:
    """After a restart the entities a batch touches are loaded together (prefetch); once
    every stored entity is in memory (always, in a rebuild) prefetch reads nothing."""
    app = Ledger(backend.settings())
    try:
        record_history(app, batches=1, per_batch=60)
        catch_up(app, new_projector(app))
        app.append_objects(shipments(60, 30))  # touches every licence again
        # Unlimited: slim entities also read their events for each backdated shipment.
        projector = new_projector(app, budget=None)
        loads: list[int] = []
        loader = projector._load_history

        def counting_loader(keys: Any, upto: int) -> Any:
            loads.append(len(keys))
            return loader(keys, upto)

        projector._load_history = counting_loader
        catch_up(app, projector, parallel_from=2**62)
        assert loads == [LICENCES]  # one load for the touched licences, not one each
        assert projector._unloaded == len(view_store(app).known_keys()) - LICENCES
        for key in view_store(app).known_keys() - set(projector.cache):
            projector.prefetch([key])
        assert projector._unloaded == 0

        def unread() -> Any:
            raise AssertionError("prefetch read its keys with nothing left to load")
            yield  # pragma: no cover

        projector.prefetch(unread())
        assert used_now(app, "stored") == expected_used(90)
    finally:
        app.close()


def test_a_restarted_projector_keeps_no_key_of_the_stored_entities(
    sqlite_backend: Backend,
) -> None:
    """A restarted projector asks the views which of a page's uncached keys they list
    (``ViewStore.listed``) instead of holding every stored key from the start: a set
    that grew with the ledger (~18,800 keys at 1M events)."""
    app = Ledger(sqlite_backend.settings())
    try:
        record_history(app, batches=1, per_batch=60)
        store = view_store(app)
        catch_up(app, new_projector(app, store))
        with store.datastore.transaction(commit=True) as c:  # many more listed entities
            c.executemany(
                "INSERT INTO views_entities VALUES (?, 'party', NULL, 0)",
                ((f"party:P-{i:06d}-listed-with-no-events",) for i in range(20_000)),
            )
        tracemalloc.start()
        try:
            projector = new_projector(app, store)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held < 300_000, held  # a set of the 20,000 keys alone: ~2 MB
        app.append_objects(shipments(60, 30))  # stored licences, loaded when touched
        catch_up(app, projector, parallel_from=2**62)
        assert projector.replayed == LICENCES
        assert used_now(app, "stored") == expected_used(90)
    finally:
        app.close()


def test_process_event_takes_the_library_interface(backend: Backend) -> None:
    """The projector is a library ``Projection``: ``process_event(domain_event, tracking)``."""
    from eventsourcing.persistence import Tracking

    app = Ledger(backend.settings())
    try:
        record_history(app, batches=1, per_batch=50)
        projector = new_projector(app)
        for n in app.recorder.select_notifications(start=0, limit=1000):
            recorded = app.mapper.to_domain_event(n)
            projector.process_event(recorded, Tracking(app.name, n.id))
        assert projector.position == app.head() == _tracked(app)
        # Redelivery of an event already applied is skipped (exactly once).
        n = app.recorder.select_notifications(start=app.head(), limit=1)[0]
        projector.process_event(app.mapper.to_domain_event(n), Tracking(app.name, n.id))
        assert used_now(app, "stored") == expected_used(50)
        store = view_store(app)
        assert store.max_tracking_id(TRACKING_NAME) == app.head()
    finally:
        app.close()


def test_project_command(backend: Backend) -> None:
    env = backend.env()
    app = Ledger(backend.settings(env))
    try:
        record_history(app, batches=1, per_batch=60)
        merged = {**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        out = subprocess.run(
            [sys.executable, "-m", "ledger.cli.main", "project", "--once", "-o", "json"],
            env=merged,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        import json

        body = json.loads(out.stdout)
        assert body["position"] == app.head() and body["applied"] == app.head()
        again = subprocess.run(
            [sys.executable, "-m", "ledger.cli.main", "project", "--once"],
            env=merged,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        assert "0 events applied" in again.stdout
        rebuilt = subprocess.run(
            [
                sys.executable,
                "-m",
                "ledger.cli.main",
                "project",
                "--once",
                "--rebuild",
                "-o",
                "json",
            ],
            env=merged,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        assert json.loads(rebuilt.stdout)["applied"] == app.head()
        assert used_now(app, "stored") == expected_used(60)
        bad = subprocess.run(
            [sys.executable, "-m", "ledger.cli.main", "project", "--source", "kafka"],
            env=merged,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert bad.returncode == 2
    finally:
        app.close()


@pytest.mark.parametrize("source", ["nats"])
def test_project_nats_without_server_fails_clearly(backend: Backend, source: str) -> None:
    env = backend.env()
    merged = {
        **os.environ,
        **env,
        "LEDGER_NATS_URL": "nats://127.0.0.1:1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", "project", "--once", "--source", source],
        env=merged,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 1
    assert "nats://127.0.0.1:1" in out.stderr
