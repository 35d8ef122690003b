"""The streaming import's working set (``ledger.importing``): what it holds between chunks
stays within its budget in real bytes, and a file cycling through more entities than the
budget holds keeps most of them instead of evicting each just before its next turn.

The file is ``bench_import``'s shape in small: end users registered and vetted, licences
granted, then shipments round-robin over the licences (each naming its own end user), so
every chunk touches entities the budget cannot all hold.
"""

from __future__ import annotations

import gc
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

import ledger.importing as importing
from ledger.app import Ledger
from ledger.importing import import_lines

NAMESPACE = uuid.UUID("0b6f3f0e-2d4c-4a57-9a51-5b0f3c1d2e77")
SRC = [{"reference": "https://example.org/customs", "publisher": "GACC"}]
LICENCES = 120
CYCLES = 4


def _id(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, str(n)))


def _cycling_file(
    licences: int = LICENCES, cycles: int = CYCLES, registered_only: int = 0
) -> list[tuple[int | None, bytes]]:
    """``licences`` licences taking ``cycles`` shipments each in turn, each naming its own
    end user; ``registered_only`` more end users registered and vetted, never named again
    (as ``bench_import``'s files register twice the end users they ship to)."""
    objs: list[dict[str, Any]] = [
        {"event_id": _id(0), "type": "PartyRegistered", "entity_id": "exporter",
         "name": "Exporter", "country": "CN", "roles": ["exporter"],
         "effective_at": "2025-01-01", "sources": SRC},
    ]  # fmt: skip
    for u in range(licences + registered_only):
        objs += [
            {"event_id": _id(1000 + u), "type": "PartyRegistered", "entity_id": f"buyer-{u}",
             "name": f"Buyer {u}", "country": "DE", "roles": ["end-user"],
             "effective_at": "2025-01-02", "sources": SRC},
            {"event_id": _id(2000 + u), "type": "PartyVetted", "entity_id": f"buyer-{u}",
             "outcome": "approved", "authority": "MOFCOM", "effective_at": "2025-06-01",
             "sources": SRC},
        ]  # fmt: skip
    for n in range(licences):
        objs.append(
            {"event_id": _id(3000 + n), "type": "LicenceGranted", "entity_id": f"GL-{n}",
             "licence_type": "general", "issuer": "CN", "exporter": "exporter",
             "end_users": [f"buyer-{n}"],
             "items": [{"item": "1C902.a", "cap": "1000000", "unit": "kg"}],
             "destinations": ["DE"], "effective_at": "2025-12-02",
             "valid_until": "2026-12-01", "sources": SRC}
        )  # fmt: skip
    for s in range(licences * cycles):
        n = s % licences
        objs.append(
            {"event_id": _id(10_000 + s), "type": "LicenceUsageRecorded",
             "entity_id": f"GL-{n}", "shipment_id": f"S-{s}", "item": "1C902.a",
             "quantity": "2", "end_user": f"buyer-{n}", "destination": "DE",
             "effective_at": f"2026-01-{1 + s // 60 % 28:02d}T{8 + s % 60 // 6:02d}:"
                             f"{s % 6 * 10:02d}:00Z",
             "sources": SRC}
        )  # fmt: skip
    return [(n, json.dumps(o).encode()) for n, o in enumerate(objs, start=1)]


def _reachable_bytes(roots: list[object]) -> int:
    """The memory of everything reachable from ``roots`` (each object once), stopping at
    code, classes and modules (shared by the whole program, not held by the set)."""
    seen: set[int] = set()
    todo = list(roots)
    total = 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType) or callable(obj):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total


def _books(args: tuple[Any, ...]) -> list[object]:
    """The import's bookkeeping passed to a trim: the retention's tables and ghosts."""
    return [
        table
        for a in args
        if isinstance(a, importing._Retention)
        for table in (
            a.kept,
            a.probation,
            a.ghosts.crc,
            a.ghosts.at,
            a.ghosts.older_crc,
            a.ghosts.older_at,
        )
    ]


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """Each trim's (budget, bytes the working set holds after it): the entities held,
    and the import's bookkeeping of them passed to the trim."""
    seen: list[tuple[int, int]] = []
    trim = importing._ImportWorkspace.trim

    def measured(self: importing._ImportWorkspace, *args: Any) -> int:
        held = trim(self, *args)
        budget = next(a for a in args if isinstance(a, int))
        seen.append((budget, _reachable_bytes([self.lean, self.entities, *_books(args)])))
        return held

    monkeypatch.setattr(importing._ImportWorkspace, "trim", measured)
    yield seen


def test_the_working_set_holds_no_more_than_its_budget(
    make_ledger: Callable[..., Ledger], trims: list[tuple[int, int]]
) -> None:
    """Counted at what the entities really take: before, a lean entity was counted as
    1,000 bytes and took 1,300-1,900 (a licence), so a 32 MB budget held ~45 MB."""
    lines = _cycling_file()
    budget = 200_000  # about three quarters of the 241 entities, lean
    result = import_lines(make_ledger(), lines, chunk_lines=40, workspace_bytes=budget, spill=False)
    assert result.appended == len(lines)
    held = max(b for _, b in trims)
    assert held > budget // 2  # (the budget was used, not just kept)
    assert held <= budget * 1.1, held


def test_a_file_cycling_through_more_entities_than_the_budget_keeps_most(
    make_ledger: Callable[..., Ledger],
) -> None:
    """Least recently used evicts every entity just before its next turn when a file
    cycles through more than the budget holds (the benchmark's licences and end users,
    round-robin): each shipment then reloads its end user (2 events) and its licence
    (from its snapshot).  Evicting first the entities not touched again since they were
    loaded keeps the others: about half the end users are found held."""
    lines = _cycling_file()
    app = make_ledger()
    budget = 200_000
    before = app.events_loaded
    result = import_lines(app, lines, chunk_lines=40, workspace_bytes=budget, spill=False)
    assert result.appended == len(lines)
    shipments = LICENCES * CYCLES
    # Least recently used: ~2 events per shipment (every end user reloaded).
    assert app.events_loaded - before < shipments


def test_the_working_set_holds_each_key_once(
    make_ledger: Callable[..., Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the import keeps about a held entity besides its state (its place in the
    least-recently-used order, whether it was touched again) is under the key object the
    working set holds it by.  Before, each chunk that touched an entity put its own copy
    of the key text in the order table and in a second table (a set) of the kept ones:
    three strings an entity (723 for these 241), and in the 1M-event benchmark's import
    40,000 more objects and a 2 MB set for its 20,000 held entities."""
    seen: list[tuple[int, int]] = []
    trim = importing._ImportWorkspace.trim

    def measured(self: importing._ImportWorkspace, *args: Any) -> int:
        held = trim(self, *args)
        books = [t for t in _books(args) if isinstance(t, dict)]
        keys = [k for table in (self.lean, self.entities, *books) for k in table]
        seen.append((len(self.lean) + len(self.entities), len({id(k) for k in keys})))
        return held

    monkeypatch.setattr(importing._ImportWorkspace, "trim", measured)
    lines = _cycling_file()
    result = import_lines(make_ledger(), lines, chunk_lines=40, workspace_bytes=10_000_000)
    assert result.appended == len(lines)
    entities, distinct_keys = seen[-1]
    assert entities == 2 * LICENCES + 1  # (all held: the budget is large)
    assert distinct_keys == entities


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every entity the import loads from the store (those a chunk names and the working
    set does not hold), in order: a key seen before is a reload."""
    seen: list[str] = []
    prefetch = importing._ImportWorkspace.prefetch

    def counted(self: importing._ImportWorkspace, keys: Any, **kwargs: Any) -> None:
        keys = list(keys)
        seen.extend(k for k in dict.fromkeys(keys) if k not in self.lean | self.entities)
        prefetch(self, keys, **kwargs)

    monkeypatch.setattr(importing._ImportWorkspace, "prefetch", counted)
    return seen


def _reloads(loaded: list[str]) -> int:
    return len(loaded) - len(set(loaded))


CYCLE = {"licences": 200, "cycles": 8, "registered_only": 200}
"""``bench_import``'s 2M-event file in small: 200 licences taking shipments in turn, the
200 end users they ship to and 200 more only registered; in chunks of 20 lines a turn
takes 10 chunks, as the 2M file's 20,000 licences do in chunks of 2,000."""
CYCLE_BUDGET = 220_000
"""Half of what the 400 entities taking turns take (lean): the 2M file against 24 MB."""


def test_a_cycle_larger_than_the_budget_keeps_a_steady_part_held(
    make_ledger: Callable[..., Ledger], loads: list[str]
) -> None:
    """400 entities taking turns in a working set that holds half of them, after 200 end
    users registered and never named again.  Least recently used evicts each just before
    its next turn: every shipment reloads its licence and its end user (3,401 reloads,
    2.1 a shipment; the policy before, which dropped first the entities not touched again
    since they were loaded, 3,221).  No policy that trims after each chunk does better
    than Belady's, which drops those next needed furthest ahead: 1,359 (0.85 a shipment;
    ``benchmarks/bench_import_cache.py`` on this file).  The kept entities of
    ``_Retention`` stay held through every turn, and the cycle's other entities pass
    through its probation: 1,943."""
    lines = _cycling_file(**CYCLE)
    result = import_lines(
        make_ledger(), lines, chunk_lines=20, workspace_bytes=CYCLE_BUDGET, spill=False
    )
    assert result.appended == len(lines)
    shipments = CYCLE["licences"] * CYCLE["cycles"]
    assert _reloads(loads) < 1.3 * shipments, _reloads(loads)


def test_entities_named_once_give_way_to_a_cycle_that_fits(
    make_ledger: Callable[..., Ledger], loads: list[str]
) -> None:
    """The 1M-event file in small: the 400 entities taking turns fit in the budget, the
    200 end users registered and never named again do not fit beside them.  Those go;
    the cycle stays held from its second turn on (36 reloads, as before: the end users
    the grants name again, evicted while the registrations were read)."""
    lines = _cycling_file(**CYCLE)
    result = import_lines(
        make_ledger(), lines, chunk_lines=20, workspace_bytes=560_000, spill=False
    )
    assert result.appended == len(lines)
    assert _reloads(loads) <= 40, _reloads(loads)


def _states(app: Ledger) -> dict[str, object]:
    keys = ["party:exporter"] + [
        f"{kind}:{prefix}{n}"
        for n in range(CYCLE["licences"] + CYCLE["registered_only"])
        for kind, prefix in (("licence", "GL-"), ("party", "buyer-"))
        if kind == "party" or n < CYCLE["licences"]
    ]
    found: dict[str, object] = {}
    for key in keys:
        kind, entity_id = key.split(":", 1)
        entity = app.entity(kind, entity_id)
        assert entity is not None, key
        found[key] = (entity.version, entity.state())
    return found


@pytest.mark.parametrize(
    ("spill", "budget"),
    [(False, CYCLE_BUDGET), (True, CYCLE_BUDGET), (True, 60_000)],
    ids=["in-memory", "two-tier", "two-tier-spill-bounded"],
)
def test_what_the_working_set_keeps_does_not_change_what_is_imported(
    make_ledger: Callable[..., Ledger], spill: bool, budget: int
) -> None:
    """The same file imported with the budget of the cycle above and with no budget: the
    same outcomes at the same positions, the same stored events, and every entity read
    back (a licence from the snapshot its last eviction wrote) in the same state.  The
    same for a two-tier working set (entities trimmed from memory wait encoded in the
    spill), and for one whose spill is full (60 kB: 250 entities of the 601 in play), so
    that those spilled first are dropped from it, licences with a snapshot."""
    lines = _cycling_file(**CYCLE)
    apps = [make_ledger(), make_ledger()]
    results = [
        import_lines(
            app, lines, chunk_lines=20, workspace_bytes=size, keep_events=True, spill=spill
        )
        for app, size in zip(apps, (budget, 1 << 40), strict=True)
    ]
    assert results[0].to_dict()["events"] == results[1].to_dict()["events"]
    assert results[0].appended == len(lines)
    stored = [
        [(e.position, e.event.event_id, e.event.entity_id) for e in app.log(order="recorded")]
        for app in apps
    ]
    assert stored[0] == stored[1]
    assert len(stored[0]) == len(lines)
    states = _states(apps[0])
    assert states == _states(apps[1])
    # What an append after the import starts from: each licence's latest snapshot (the
    # bounded import wrote one at each eviction) and the events after it.
    licences = [k for k in states if k.startswith("licence:")]
    from_snapshots = apps[0].load_snapshots(licences, {}).from_snapshots
    if not spill:
        assert len(from_snapshots) == len(licences)
    elif budget < CYCLE_BUDGET:
        assert from_snapshots  # (a full spill drops licences, each with a snapshot)
    for key, entity in from_snapshots.items():
        assert (entity.version, entity.state(None)) == states[key], key


# --- the working set charged to SQLite's page cache -------------------------------------


def _cache_kib(write: Any) -> int:
    write.cursor.execute("PRAGMA cache_size")
    return -int(write.cursor.fetchone()[0])


def test_a_write_charges_held_bytes_to_the_page_cache_and_sets_it_back(
    sqlite_backend: Any,
) -> None:
    """``charge_cache`` lowers the write connection's page cache by what the writer holds
    (down to a quarter), and the connection goes back to the pool with its own size,
    after a commit and after a failed write alike."""
    from ledger.store.sqlite import SQLiteEventWrite

    app = Ledger(sqlite_backend.settings())
    try:
        configured = int(app.recorder.datastore.pool.cache_kib)
        with app.index.writing() as write:
            assert isinstance(write, SQLiteEventWrite)
            connection = write.cursor.sqlite_cursor.connection
            assert _cache_kib(write) == configured
            write.charge_cache(20 << 20)
            assert _cache_kib(write) == configured - 20 * 1024
            write.charge_cache(1 << 40)
            assert _cache_kib(write) == configured // 4
            write.charge_cache(0)
            assert _cache_kib(write) == configured
            write.charge_cache(8 << 20)
        with app.index.writing() as write:
            assert write.cursor.sqlite_cursor.connection is connection  # (the pool's)
            assert _cache_kib(write) == configured
        with pytest.raises(RuntimeError), app.index.writing() as write:
            write.charge_cache(8 << 20)
            raise RuntimeError("the write fails")
        with app.index.writing() as write:
            assert write.cursor.sqlite_cursor.connection is connection
            assert _cache_kib(write) == configured
    finally:
        app.close()


def test_an_import_charges_its_working_set_to_the_page_cache(
    sqlite_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each chunk the import charges what its working set holds to SQLite's page
    cache, so the two together stay within the cache's size (the import's peak memory
    then does not grow with the entities a file keeps in play: ``bench_scale.py memory
    --import-only``); the cache is set back when the import ends."""
    from ledger.store.sqlite import SQLiteEventWrite

    charged: list[tuple[int, int]] = []
    charge = SQLiteEventWrite.charge_cache

    def observed(self: SQLiteEventWrite, held_bytes: int) -> None:
        charge(self, held_bytes)
        charged.append((held_bytes, _cache_kib(self)))

    monkeypatch.setattr(SQLiteEventWrite, "charge_cache", observed)
    app = Ledger(sqlite_backend.settings())
    try:
        configured = int(app.recorder.datastore.pool.cache_kib)
        lines = _cycling_file()
        result = import_lines(app, lines, chunk_lines=40, workspace_bytes=200_000)
        assert result.appended == len(lines)
        assert len(charged) == -(-len(lines) // 40)  # after every chunk
        assert max(held for held, _ in charged) > 100_000  # (the working set filled up)
        for held, kib in charged:
            assert kib == max(configured // 4, configured - held // 1024)
        with app.index.writing() as write:
            assert _cache_kib(write) == configured
    finally:
        app.close()


# --- a two-tier working set (where there is no page cache to charge: PostgreSQL) --------


def test_the_working_set_is_two_tier_where_the_store_has_no_page_cache(
    make_ledger: Callable[..., Ledger], backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the working set is charged to the page cache; PostgreSQL's cache is the
    server's, so there the import keeps a sixth of its budget decoded and the rest of
    its entities encoded in a temporary file (its memory then does not grow with the
    entities a file keeps in play: ``bench_scale.py memory --import-only --postgres``),
    in chunks of 1,000 lines.  The spill's file is closed when the import ends."""
    made: list[Any] = []
    spill_init = importing.EntitySpill.__init__

    def observed(self: Any, *args: Any, **kwargs: Any) -> None:
        spill_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(importing.EntitySpill, "__init__", observed)
    restored: list[int] = []
    restore = importing._ImportWorkspace._restore

    def counted(self: importing._ImportWorkspace, keys: list[str]) -> None:
        restore(self, keys)
        restored.append(len(keys))

    monkeypatch.setattr(importing._ImportWorkspace, "_restore", counted)
    chunks: list[int] = []
    lines = _cycling_file(**CYCLE)  # 2,601 lines
    result = import_lines(
        make_ledger(), lines, workspace_bytes=CYCLE_BUDGET, progress=chunks.append
    )
    assert result.appended == len(lines)
    if backend.name == "postgres":
        assert len(made) == 1 and made[0].spilled > 0
        assert sum(restored) > 0
        assert len(chunks) == 3  # (1,000 lines a chunk)
        assert made[0]._file is None  # (closed: the import is over)
    else:
        assert made == [] and sum(restored) == 0
        assert len(chunks) == 2  # (2,000)


def test_a_two_tier_working_set_holds_its_decoded_part_and_bounds_its_spill(
    make_ledger: Callable[..., Ledger],
    trims: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a two-tier working set holds decoded stays within its sixth of the budget,
    counted at what the entities take (those decoded from the spill hold their strings
    unshared: ``RESTORED_BYTES`` more each), and its spill keeps at most ``spill_max``
    entities (its index is in memory: 200 bytes of the budget each)."""
    sizes: list[tuple[int, int]] = []
    trim = importing._ImportWorkspace.trim

    def spilled(self: importing._ImportWorkspace, *args: Any) -> int:
        held = trim(self, *args)
        assert self.spill is not None
        sizes.append((len(self.spill), self.spill_max))
        return held

    monkeypatch.setattr(importing._ImportWorkspace, "trim", spilled)
    lines = _cycling_file(**CYCLE)
    # 200 kB decoded: a third of the 601 entities in play; the spill holds the rest.
    result = import_lines(
        make_ledger(), lines, chunk_lines=20, workspace_bytes=1_200_000, spill=True
    )
    assert result.appended == len(lines)
    assert {b for b, _ in trims} == {200_000}
    held = max(b for _, b in trims)
    assert 100_000 < held <= 200_000 * 1.1, held
    assert max(n for n, _ in sizes) > 300  # (the spill was used)
    # 60 kB: the spill's index may keep 250 entities of the 601.
    sizes.clear()
    result = import_lines(make_ledger(), lines, chunk_lines=20, workspace_bytes=60_000, spill=True)
    assert result.appended == len(lines)
    assert {m for _, m in sizes} == {250}
    assert 200 < max(n for n, _ in sizes) <= 250


def test_a_spilled_copy_changed_behind_the_import_stops_it(
    make_ledger: Callable[..., Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spill is a temporary file only this process can name, but a copy changed in
    it (by anyone who can write to the process's files) is refused before it is decoded:
    the import fails and nothing is appended."""
    import os

    from ledger.store.spill import SpillTampered

    put = importing.EntitySpill.put

    def tampered(self: Any, entities: Any) -> None:
        put(self, entities)
        if entities:
            fd = self._fd()
            at = self.file_bytes - 2
            os.pwrite(fd, bytes([os.pread(fd, 1, at)[0] ^ 1]), at)

    monkeypatch.setattr(importing.EntitySpill, "put", tampered)
    app = make_ledger()
    with pytest.raises(SpillTampered, match="import working set"):
        import_lines(
            app, _cycling_file(**CYCLE), chunk_lines=20, workspace_bytes=CYCLE_BUDGET, spill=True
        )
    assert app.index.count_events() == 0


def test_an_import_whose_spill_cannot_be_written_says_so_and_appends_nothing(
    postgres_backend: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ledger import`` into PostgreSQL with no writable temporary directory: the
    working set's spill cannot be made, and the user reads why (the directory, the
    system's error) and that nothing was appended, not a traceback."""
    import tempfile

    from click.testing import CliRunner

    from ledger.cli.main import cli

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(raw for _, raw in _cycling_file(**CYCLE)) + b"\n")
    defaults = import_lines.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "workspace_bytes", CYCLE_BUDGET)  # (it spills early)
    missing = tmp_path / "no-such-dir"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))
    env = postgres_backend.env()
    result = CliRunner().invoke(cli, ["import", str(path), "--no-progress"], env=env)
    assert result.exit_code != 0
    assert f"import working set: its temporary file ({missing}) failed" in result.output
    assert "Nothing was appended." in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    app = Ledger(postgres_backend.settings(env))
    try:
        assert app.index.count_events() == 0
    finally:
        app.close()


def test_every_kind_of_entity_in_the_2025_record_comes_back_from_the_spill_as_it_left(
    make_ledger: Callable[..., Ledger],
) -> None:
    """The 2025 scenario holds every kind of entity (parties, licences, measures,
    commitments, agreements, applications) with times in several offsets: imported
    through a two-tier working set so small that every entity passes through the spill
    after each chunk (and the spill itself is over its bound, so licences are dropped
    from it with a snapshot), it gives the same outcomes and the same state of every
    entity as an import that holds everything decoded."""
    from ledger.scenario import scenario_path

    raw = scenario_path().read_bytes().splitlines()
    lines = [(n, line) for n, line in enumerate(raw, start=1) if line.strip()]
    apps = [make_ledger(), make_ledger()]
    results = [
        import_lines(
            app, lines, backfill=True, chunk_lines=7, workspace_bytes=size, spill=spill,
            keep_events=True,
        )
        for app, size, spill in zip(apps, (12_000, 1 << 40), (True, False), strict=True)
    ]  # fmt: skip
    assert results[0].to_dict()["events"] == results[1].to_dict()["events"]
    keys = {(e.event.entity_kind, e.event.entity_id) for e in apps[1].log(order="recorded")}
    kinds = {kind for kind, _ in keys}
    assert {"party", "licence", "measure", "commitment", "agreement", "application"} <= kinds
    for kind, entity_id in sorted(keys):
        read = [app.entity(kind, entity_id) for app in apps]
        assert read[0] is not None and read[1] is not None
        assert (read[0].version, read[0].state()) == (read[1].version, read[1].state()), (
            kind,
            entity_id,
        )
