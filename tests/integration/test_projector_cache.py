"""The projector's entity cache under a budget (``LEDGER_PROJECTOR_CACHE``): evicted
entities are reloaded from the store, so a rebuild that evicts after every batch stores
exactly the views an unbounded one stores, and the live projector (following the store or
the NATS stream) keeps them exact too.  Both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.app import Ledger
from ledger.config import ConfigError
from ledger.nats_server import EmbeddedNats
from ledger.projections.projector import (
    CachedEntity,
    Projector,
    cache_budget,
    entity_size,
    spill_dumps,
    spill_loads,
)
from ledger.projections.runner import (
    DEFAULT_BATCH,
    MAX_BATCH,
    batch_events,
    catch_up,
    follow_nats,
    follow_store,
    new_projector,
)
from ledger.projections.store import Changes, ViewsMoved, ViewStore
from ledger.projections.stores import view_store
from ledger.relay import Relay
from tests.conftest import Backend
from tests.integration.test_projector import (
    LICENCES,
    S,
    _day,
    assert_views_exact,
    setup_events,
    shipments,
)
from tests.nats_fixtures import nats_server_fixture  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def late_knowledge(app: Ledger, retract: list[UUID], step: int) -> None:
    """Events that change the past: a withdrawal and a suspension effective weeks before
    they are recorded, an amendment, and retractions of earlier shipments."""
    licence = f"L{step % LICENCES}"
    objs: list[dict[str, Any]] = []
    if step == 1:
        objs.append(
            {
                "type": "LicenceWithdrawn",
                "entity_id": "LX",
                "reason": "end-use concerns",
                "effective_at": _day(11),
                "sources": S,
            }
        )
    elif step == 2:
        objs += [
            {
                "type": "LicenceSuspended",
                "entity_id": licence,
                "reason": "audit",
                "effective_at": _day(10.2),
                "sources": S,
            },
            {"type": "LicenceReinstated", "entity_id": licence, "effective_at": _day(10.3)},
        ]
        objs[-1]["sources"] = S
    elif step == 3:
        objs.append(
            {
                "type": "LicenceAmended",
                "entity_id": licence,
                "reason": "cap lowered",
                "items": [{"item": "1C902.a", "cap": "90000000"}],
                "effective_at": _day(10.5),
                "sources": S,
            }
        )
    if objs:
        app.append_objects(objs)
    for event_id in retract[:2]:
        app.retract(event_id, "duplicate customs declaration")
    del retract[:2]


def record(app: Ledger, rounds: int, per_round: int) -> None:
    """A history with backdated shipments (every 7th), late withdrawals, suspensions,
    amendments and retractions, in many batches."""
    app.append_objects(setup_events())
    grant = {**setup_events()[-1], "entity_id": "LX"}
    app.append_objects(
        [grant]
        + [
            {**s, "entity_id": "LX", "shipment_id": f"x{n}", "effective_at": _day(day)}
            for n, (s, day) in enumerate(zip(shipments(0, 3), (10.5, 11.5, 12), strict=True))
        ]
    )
    retract: list[UUID] = []
    for r in range(rounds):
        result = app.append_objects(shipments(r * per_round, per_round))
        retract += [o.event_id for o in result.appended[3::11]]
        late_knowledge(app, retract, r)


def rebuild(app: Ledger, budget: int | None, **kwargs: Any) -> dict[str, Any]:
    store = view_store(app)
    store.reset()
    projector = new_projector(app, store, budget=budget)
    catch_up(app, projector, **kwargs)
    assert store.position() == app.head()
    return {"views": store.contents(), "counters": store.counters(), "evicted": projector}


@pytest.mark.parametrize("parallel", [False, True], ids=["inline", "writer-process"])
@pytest.mark.parametrize("budget", [0, 10**9], ids=["evicting", "trimming"])
def test_a_rebuild_that_evicts_constantly_stores_the_same_views(
    backend: Backend, parallel: bool, budget: int
) -> None:
    app = Ledger(backend.settings())
    try:
        record(app, rounds=8, per_round=40)
        unbounded = rebuild(app, None, flush_events=15, parallel_from=10**9)
        assert unbounded["evicted"].evicted == 0
        bounded = rebuild(app, budget, flush_events=4, parallel_from=1 if parallel else 10**9)
        projector = bounded["evicted"]
        if budget:  # nothing evicted: slim entities, their rows trimmed after each write
            assert projector.evicted == 0 and projector.untrimmed > 20
        else:  # every batch evicted what it could and the next reloaded it, from the spill
            assert projector.evicted > 50 and projector.reloaded > 50
            assert projector.replayed == 0
            # An evicted entity is kept by the spill alone: nothing else in the projector
            # grows with the entities it has seen (a set of every key did, 3 Dec 2026).
            spilled = len(projector._spill)
            assert spilled > 5
            assert [
                name
                for name, value in vars(projector).items()
                if isinstance(value, set | dict | list)
                and name not in ("cache", "_spill")
                and len(value) >= spilled
            ] == []
        assert projector.cached_events == sum(e.count for e in projector.cache.values())
        assert bounded["views"] == unbounded["views"]
        assert bounded["counters"] == unbounded["counters"]
        assert_views_exact(app)
    finally:
        app.close()


class _HeldWriter:
    """A background writer that writes a batch only when the projector waits for it: each
    write stays in flight until then."""

    def __init__(self, store: ViewStore) -> None:
        self.store = store
        self.job: tuple[Changes, int, int] | None = None

    def submit(self, changes: Changes, expected: int, position: int) -> None:
        assert self.job is None
        self.job = (changes, expected, position)

    def wait(self) -> int | None:
        if self.job is None:
            return None
        changes, expected, position = self.job
        self.job = None
        self.store.write(changes, expected, position)
        return position


def test_an_event_out_of_order_reads_trimmed_rows_back_without_waiting_for_the_write(
    backend: Backend,
) -> None:
    """Rows trimmed as a batch is handed to the writer are kept aside until it is written,
    so an event out of order in the next batch reads its entity's earlier rows back while
    that write is still in flight (it waited for it: the writer process then sat idle),
    and the views are still the unbounded rebuild's."""
    app = Ledger(backend.settings())
    try:
        record(app, rounds=8, per_round=40)
        unbounded = rebuild(app, None, flush_events=15, parallel_from=10**9)
        store = view_store(app)
        store.reset()
        projector = new_projector(app, store, budget=10**9)
        writer = projector.writer = _HeldWriter(store)
        in_flight: list[bool] = []
        read = store.current_rows

        def current_rows(keys: Any) -> Any:
            in_flight.append(writer.job is not None)
            return read(keys)

        store.current_rows = current_rows  # type: ignore[method-assign]
        catch_up(app, projector, flush_events=4, parallel_from=10**9)
        assert projector.untrimmed > 20 and projector.untrimmed == len(in_flight)
        assert sum(in_flight) > 10  # read back with the batch before still in flight
        assert not projector._aside and not projector._deleting
        assert store.position() == app.head()
        assert store.contents() == unbounded["views"]
        assert store.counters() == unbounded["counters"]
        assert_views_exact(app)
    finally:
        app.close()


def test_the_live_projector_following_the_store_evicts_and_stays_exact(
    backend: Backend,
) -> None:
    app = Ledger(backend.settings())
    try:
        record(app, rounds=2, per_round=30)
        projector = new_projector(app, budget=0)
        stop = threading.Event()
        errors: list[BaseException] = []

        def follow() -> None:
            try:
                follow_store(app, projector, stop)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        try:
            retract: list[UUID] = []
            for r in range(2, 7):
                result = app.append_objects(shipments(r * 30, 30))
                retract += [o.event_id for o in result.appended[3::11]]
                late_knowledge(app, retract, r)
                _wait_for(lambda: view_store(app).position() == app.head())
        finally:
            stop.set()
            thread.join(30)
        assert not errors
        assert projector.evicted > 0 and projector.reloaded > 0
        live = view_store(app).contents()
        assert rebuild(app, None)["views"] == live
        assert_views_exact(app)
    finally:
        app.close()


def test_the_live_projector_following_nats_evicts_and_stays_exact(
    backend: Backend, nats_server: EmbeddedNats
) -> None:
    app = Ledger(backend.settings({**backend.env(), "LEDGER_NATS_URL": nats_server.url}))
    try:
        record(app, rounds=4, per_round=30)
        Relay(app, nats_server.url).run_once()
        projector = new_projector(app, budget=0)
        asyncio.run(follow_nats(app, projector, threading.Event(), once=True, fetch=20))
        assert projector.position == app.head()
        assert projector.evicted > 0 and projector.reloaded > 0
        live = view_store(app).contents()
        assert rebuild(app, None)["views"] == live
        assert_views_exact(app)
    finally:
        app.close()


def test_a_projector_whose_views_were_moved_does_not_restore_from_its_spill(
    backend: Backend,
) -> None:
    """Another projector writes meanwhile: what the first spilled is no longer what is
    stored, so after the refused write it reloads (replays) from the store instead."""
    app = Ledger(backend.settings())
    try:
        record(app, rounds=3, per_round=30)
        store = view_store(app)
        store.reset()
        first = new_projector(app, store, budget=0)
        catch_up(app, first, flush_events=4, parallel_from=10**9)
        assert first.evicted > 50 and first.replayed == 0
        retract: list[UUID] = []
        for r in range(3, 5):
            result = app.append_objects(shipments(r * 30, 30))
            retract += [o.event_id for o in result.appended[3::11]]
            late_knowledge(app, retract, r)
        catch_up(app, new_projector(app, budget=None), parallel_from=10**9)
        for r in range(5, 7):
            result = app.append_objects(shipments(r * 30, 30))
            retract += [o.event_id for o in result.appended[3::11]]
            late_knowledge(app, retract, r)
        catch_up(app, first, flush_events=4, parallel_from=10**9)
        assert first.replayed > 0
        live = store.contents()
        assert rebuild(app, None)["views"] == live
        assert_views_exact(app)
    finally:
        app.close()


def test_a_rebuild_reloading_after_another_rebuild_holds_one_history_at_a_time(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two rebuilds at once: the second empties the views and writes; the first's next
    write is refused (``ViewsMoved``), it reloads and replays every stored entity it then
    touches.  It reads their stored events one entity at a time (500 entities' at once
    held 150 MiB more at 1M events, 3 Dec 2026), and ends with one rebuild's views."""
    app = Ledger(backend.settings())
    try:
        record(app, rounds=4, per_round=30)
        head = app.head()
        store = view_store(app)
        store.reset()
        first = new_projector(app, store, budget=0)
        catch_up(app, first, until=head // 2, flush_events=4, parallel_from=10**9)
        other = view_store(app)
        other.reset()
        catch_up(app, new_projector(app, other, budget=0), until=head * 3 // 4, parallel_from=10**9)
        keys = sorted(other.known_keys())
        longest = max(len(events) for events in app.index.select_entities(keys).values())
        held: list[int] = []  # stored events read at once, by each read
        index = app.index
        select, stream = index.select_entities, index.stream_entities

        def selected(ids: Any, **kwargs: Any) -> Any:
            found = select(ids, **kwargs)
            held.append(sum(len(events) for events in found.values()))
            return found

        def streamed(ids: Any, **kwargs: Any) -> Any:
            for key, events in stream(ids, **kwargs):
                held.append(len(events))
                yield key, events

        monkeypatch.setattr(index, "select_entities", selected)
        monkeypatch.setattr(index, "stream_entities", streamed)
        with caplog.at_level(logging.WARNING, logger="ledger.projector"):
            catch_up(app, first, flush_events=4, parallel_from=10**9)
        # Told, at the level a quiet ``ledger project`` still shows.
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
            f"the views were advanced to position {head * 3 // 4} by another projector"
            f" (this one had written up to {head // 2}); reloading from the views as stored"
        ]
        assert first.replayed >= 5 and store.position() == head
        # Nothing of the refused write outlives the reload: a catch-up pauses the cyclic
        # collector, so what only it could free stayed until the end (the refused batch).
        gc.disable()
        try:
            catch_up(app, first, parallel_from=10**9)
            other.reset()
            app.append_objects(shipments(1000, 4))
            catch_up(app, new_projector(app, other, budget=0), parallel_from=10**9)
            app.append_objects(shipments(1004, 4))
            catch_up(app, first, flush_events=4, parallel_from=10**9)
            assert first.position == app.head()
            assert [o for o in gc.get_objects() if isinstance(o, ViewsMoved)] == []
        finally:
            gc.enable()
        assert max(held) <= longest < sum(held)
        monkeypatch.undo()
        assert store.contents() == rebuild(app, None)["views"]
        assert_views_exact(app)
    finally:
        app.close()


def test_the_cache_budget_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_PROJECTOR_CACHE", raising=False)
    assert cache_budget() == 16_000_000
    assert cache_budget("0.5") == 500_000
    assert cache_budget("64MB") == 64_000_000
    assert cache_budget("0") == 0
    assert cache_budget("unlimited") is None
    for bad in ("lots", "-1", "nan", "inf"):
        with pytest.raises(ConfigError, match="LEDGER_PROJECTOR_CACHE"):
            cache_budget(bad)
    monkeypatch.setenv("LEDGER_PROJECTOR_CACHE", "12")
    assert cache_budget() == 12_000_000


def test_the_batch_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_PROJECTOR_BATCH", raising=False)
    assert batch_events() == DEFAULT_BATCH == 10_000
    assert batch_events(" ") == DEFAULT_BATCH
    assert batch_events("1") == 1
    assert batch_events("20_000") == 20_000
    assert batch_events(str(MAX_BATCH)) == MAX_BATCH
    # 0 would never write a batch; a huge one would hold it all in memory.
    for bad in ("lots", "0", "-5", "1.5", "1e4", str(MAX_BATCH + 1), "\u0663", "10 000"):
        with pytest.raises(ConfigError, match="LEDGER_PROJECTOR_BATCH"):
            batch_events(bad)
    monkeypatch.setenv("LEDGER_PROJECTOR_BATCH", "250")
    assert batch_events() == 250


def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_ledger_project_refuses_a_malformed_budget(tmp_path: Path) -> None:
    ledger = str(Path(sys.executable).parent / "ledger")
    env = {**os.environ, "LEDGER_HOME": str(tmp_path), "LEDGER_PROJECTOR_CACHE": "lots"}
    done = subprocess.run(
        [ledger, "project", "--once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "LEDGER_PROJECTOR_CACHE='lots'" in done.stderr and "megabytes" in done.stderr


def test_a_malformed_setting_with_rebuild_leaves_the_views_as_they_were(tmp_path: Path) -> None:
    """The budget and the batch size are refused before --rebuild drops anything: the
    views stay current.  A batch size that is fine gives the same views."""
    ledger = str(Path(sys.executable).parent / "ledger")
    home = tmp_path / "home"
    env = {**os.environ, "LEDGER_HOME": str(home)}
    env.pop("LEDGER_PROJECTOR_CACHE", None)
    env.pop("LEDGER_PROJECTOR_BATCH", None)
    for command in (["demo", "--home", str(home)], ["project", "--once"]):
        subprocess.run([ledger, *command], env=env, check=True, capture_output=True, timeout=120)

    def tracked() -> int:
        done = subprocess.run(
            [ledger, "status", "-o", "json"], env=env, capture_output=True, text=True, timeout=120
        )
        return int(json.loads(done.stdout)["projector"]["tracked_position"])

    def licences() -> Any:
        done = subprocess.run(
            [ledger, "licences", "-o", "json"], env=env, capture_output=True, text=True, timeout=120
        )
        return json.loads(done.stdout)["licences"]

    before, listed = tracked(), licences()
    assert before > 0 and listed
    for variable, value, says in (
        ("LEDGER_PROJECTOR_CACHE", "lots", "megabytes"),
        ("LEDGER_PROJECTOR_BATCH", "0", "whole number of events"),
        ("LEDGER_PROJECTOR_BATCH", "lots", "whole number of events"),
    ):
        refused = subprocess.run(
            [ledger, "project", "--rebuild", "--once"],
            env={**env, variable: value},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 2, refused.stderr
        assert f"{variable}={value!r}" in refused.stderr and says in refused.stderr
        assert "Traceback" not in refused.stderr
        assert tracked() == before
    subprocess.run(
        [ledger, "project", "--rebuild", "--once"],
        env={**env, "LEDGER_PROJECTOR_BATCH": "7"},
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert tracked() == before and licences() == listed


def _ledger_history() -> Any:
    """``benchmarks/ledger_history.py``: the benchmarks' realistic mix of events."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ledger_history.py"
    spec = importlib.util.spec_from_file_location("ledger_history", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measured_bytes(entities: list[CachedEntity]) -> list[int]:
    """Each entity's memory as tracemalloc measures it: a copy as the spill gives it
    back, allocated while tracing."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        sizes, copies = [], []
        for entity in entities:
            blob = spill_dumps(entity)
            before = tracemalloc.get_traced_memory()[0]
            copies.append(spill_loads(blob))
            sizes.append(tracemalloc.get_traced_memory()[0] - before)
        return sizes
    finally:
        if started:
            tracemalloc.stop()


def test_the_budget_counts_what_cached_entities_really_hold(tmp_path: Path) -> None:
    """A rebuild with its writer process, of the benchmarks' mix (licences shipped on in
    batch after batch): each cached entity keeps only its last rows, whatever batches it
    was in, and the bytes the cache counts against its budget are what its entities hold
    as tracemalloc measures them.  Before, an entity in every batch kept every row it
    ever had (its record body each), while the budget counted 4,500 bytes an entity."""
    history = _ledger_history().history
    lines = [
        (n, json.dumps(obj).encode())
        for n, obj in enumerate((o for batch in history(20_000) for o in batch), start=1)
    ]
    app = Ledger(Backend("sqlite", tmp_path).settings())
    try:
        app.import_lines(lines)
        budget = 1_000_000
        built = rebuild(app, budget, flush_events=300, parallel_from=1)
        projector: Projector = built["evicted"]
        assert projector.evicted > 100  # the budget was reached
        entities = list(projector.cache.values())
        for entity in entities:
            assert entity.rows[0].data_id == entity.rows[-1].data_id, entity.key
        assert sum(1 for e in entities if e.kind == "licence") > 50
        counted = [entity_size(e) for e in entities]
        assert projector.cached_bytes == sum(counted) == sum(e.size for e in entities)
        # Bounded by the budget, but for the last batch's entities (in flight: not evictable).
        assert projector.cached_bytes <= 2 * budget
        measured = _measured_bytes(entities)
        assert 0.8 < sum(counted) / sum(measured) < 1.25
        for kind in ("licence", "party"):
            of_kind = [i for i, e in enumerate(entities) if e.kind == kind]
            ratio = sum(counted[i] for i in of_kind) / sum(measured[i] for i in of_kind)
            assert 0.7 < ratio < 1.4, (kind, ratio)
        assert built["views"] == rebuild(app, None, parallel_from=10**9)["views"]
    finally:
        app.close()


_BEIJING = dt.timezone(dt.timedelta(hours=8))


def _in_beijing_time(obj: dict[str, Any]) -> dict[str, Any]:
    """The same event with its times written at +08:00 (the same instants)."""
    out = dict(obj)
    for name in ("effective_at", "valid_until", "until", "due_by", "in_force_until"):
        value = out.get(name)
        if isinstance(value, str) and value.endswith("Z"):
            instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            out[name] = instant.astimezone(_BEIJING).isoformat()
    return out


def test_the_spill_gives_back_every_kind_of_entity_exactly(tmp_path: Path) -> None:
    """The spill keeps an evicted entity as typed JSON (``spill_dumps``), not pickled:
    every entity of the benchmarks' mix (licences with late shipments, suspensions and
    spans, parties with listings, measures with suspended clauses, commitments with
    implementations, agreements) comes back with the same values of the same types, and
    a time keeps the UTC offset its event gave it (a record shows it).  A rebuild that
    evicts after every batch stores the same views as an unbounded one."""
    history = _ledger_history().history
    objs = [o for batch in history(20_000) for o in batch]
    # Every third event's times at +08:00 (and the agreements', which are few): states
    # then hold times of both offsets.
    lines = [
        (
            n,
            json.dumps(
                _in_beijing_time(obj) if n % 3 == 0 or obj["type"].startswith("Agreement") else obj
            ).encode(),
        )
        for n, obj in enumerate(objs, start=1)
    ]
    app = Ledger(Backend("sqlite", tmp_path).settings())
    try:
        app.import_lines(lines)
        # Slim entities (a budget), none evicted yet: every entity of the ledger at hand.
        built = rebuild(app, 10**9, flush_events=300, parallel_from=10**9)
        entities = list(built["evicted"].cache.values())
        assert {e.kind for e in entities} == {
            "licence",
            "party",
            "measure",
            "commitment",
            "agreement",
        }
        for entity in entities:
            blob = spill_dumps(entity)
            assert blob[:1] != b"\xff", entity.key  # not pickled
            # repr: the values, their types (a tuple stays a tuple) and every tzinfo.
            back = spill_loads(blob)
            assert repr(back) == repr(entity)
            if entity.kind == "licence":
                # A restored licence's fold holds its record's values, not copies (as
                # before it was spilled): what the budget counts it at.
                state, record = back.folded.state, back.record
                for mine, theirs in [
                    ("licence_id", "licence_id"),
                    ("licence_type", "licence_type"),
                    ("issuer", "issuer"),
                    ("exporter", "exporter"),
                    ("end_users", "end_users"),
                    ("destinations", "destinations"),
                    ("granted_event_id", "granted_event"),
                    ("valid_from", "valid_from"),
                ]:
                    if getattr(state, mine) == getattr(record, theirs):
                        assert getattr(state, mine) is getattr(record, theirs), mine
        assert any(e.folded.causes for e in entities)  # suspensions, withdrawals
        assert any(e.folded.late_usage for e in entities)
        beijing = [e for e in entities if "timedelta(seconds=28800)" in repr(e.folded)]
        assert len({e.kind for e in beijing}) == 5
        unbounded = rebuild(app, None, parallel_from=10**9)
        evicting = rebuild(app, 0, flush_events=300, parallel_from=1)
        assert evicting["evicted"].evicted > 1000 and evicting["evicted"].replayed == 0
        assert evicting["views"] == unbounded["views"]
        assert built["views"] == unbounded["views"]
    finally:
        app.close()


def test_a_spilled_entity_changed_behind_the_projector_back_stops_it_before_any_write(
    backend: Backend,
) -> None:
    """Every copy in the spill file changed on disk (each copy's first encoded byte):
    the projector refuses the first one it restores, writes nothing from it (the views'
    position stays where it was), and a new projector, with a spill of its own, brings the
    views up to date exactly."""
    import os

    from ledger.store.spill import _LENGTH_BITS, _LENGTH_MASK, DIGEST_BYTES, SpillTampered

    app = Ledger(backend.settings())
    try:
        record(app, rounds=3, per_round=30)
        store = view_store(app)
        store.reset()
        projector = new_projector(app, store, budget=0)
        catch_up(app, projector, flush_events=4, parallel_from=10**9, until=app.head() // 2)
        spill = projector._spill
        assert len(spill) >= 5  # (the licences and parties seen so far)
        fd = spill._fd()
        for at in spill._where.values():
            offset = (at >> _LENGTH_BITS) + DIGEST_BYTES
            assert at & _LENGTH_MASK > DIGEST_BYTES
            (byte,) = os.pread(fd, 1, offset)
            os.pwrite(fd, bytes([byte ^ 0x20]), offset)
        before = store.position()
        with pytest.raises(SpillTampered, match=r"projector spill: the copy of .* was changed"):
            catch_up(app, projector, flush_events=4, parallel_from=10**9)
        assert store.position() == before < app.head()
        catch_up(app, new_projector(app, store, budget=0), flush_events=4, parallel_from=10**9)
        assert store.position() == app.head()
        assert_views_exact(app)
    finally:
        app.close()
