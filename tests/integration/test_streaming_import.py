"""Streaming import: a file read, checked and written a chunk at a time in one
transaction (``ledger.importing``), on SQLite and PostgreSQL.

Chunks of a few lines and a working set with no budget make every cross-chunk path run:
ids and retractions found among the earlier chunks' (uncommitted) rows, entities kept
lean between chunks and reloaded from the write transaction for a backdated event, a
duplicate shipment of an earlier chunk.  The result must equal appending the same lines
as one batch; errors name the line, and nothing is appended.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ledger.app import Ledger
from ledger.errors import ConflictError, RuleViolation
from ledger.importing import import_lines
from tests.conftest import Backend

LEDGER = str(Path(sys.executable).parent / "ledger")
NAMESPACE = uuid.UUID("4d1f7a3e-6c0b-4e59-8b2d-0c3f5e7a9b11")
SRC = [{"reference": "https://example.org/customs", "publisher": "GACC"}]


def _id(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, str(n)))


def _shipment(n: int, licence: str, when: str, shipment: str | None = None) -> dict[str, Any]:
    return {
        "event_id": _id(n),
        "type": "LicenceUsageRecorded",
        "entity_id": licence,
        "shipment_id": shipment or f"S-{n}",
        "item": "1C902.a",
        "quantity": "2",
        "end_user": "buyer",
        "destination": "DE",
        "effective_at": when,
        "sources": SRC,
    }


def history() -> list[dict[str, Any]]:
    """Two licences, shipments in effective order, then what needs the past."""
    lines: list[dict[str, Any]] = [
        {
            "event_id": _id(1),
            "type": "PartyRegistered",
            "entity_id": "exporter",
            "name": "Exporter",
            "country": "CN",
            "roles": ["exporter"],
            "effective_at": "2025-01-01",
            "sources": SRC,
        },
        {
            "event_id": _id(2),
            "type": "PartyRegistered",
            "entity_id": "buyer",
            "name": "Buyer",
            "country": "DE",
            "roles": ["end-user"],
            "effective_at": "2025-01-02",
            "sources": SRC,
        },
        {
            "event_id": _id(3),
            "type": "PartyVetted",
            "entity_id": "buyer",
            "outcome": "approved",
            "authority": "MOFCOM",
            "effective_at": "2025-06-01",
            "sources": SRC,
        },
    ]
    for n, licence in ((4, "GL-1"), (5, "GL-2")):
        lines.append(
            {
                "event_id": _id(n),
                "type": "LicenceGranted",
                "entity_id": licence,
                "licence_type": "general",
                "issuer": "CN",
                "exporter": "exporter",
                "end_users": ["buyer"],
                "items": [{"item": "1C902.a", "cap": "100", "unit": "kg"}],
                "destinations": ["DE"],
                "effective_at": "2025-12-02",
                "valid_until": "2026-12-01",
                "sources": SRC,
            }
        )
    for n in range(10, 40):  # 2 kg each, alternating licences, in effective order
        lines.append(_shipment(n, f"GL-{1 + n % 2}", f"2026-01-{n - 8:02d}T08:00:00Z"))
    lines += [
        dict(lines[12]),  # an event of an earlier chunk sent again: a duplicate
        # The same shipment again under a new event id: idempotent by shipment id.
        {**lines[20], "event_id": _id(40)},
        # Backdated before most of GL-1's shipments: its entity is reloaded.
        _shipment(41, "GL-1", "2025-12-20T08:00:00Z"),
        {
            "event_id": _id(42),
            "type": "LicenceSuspended",
            "entity_id": "GL-2",
            "reason": "review",
            "effective_at": "2026-03-01",
            "sources": SRC,
        },
        # A retraction of a shipment in an earlier chunk (entity from the index).
        {"event_id": _id(43), "type": "EventRetracted", "retracted_event_id": _id(11),
         "reason": "wrong licence", "effective_at": "2026-03-02"},
        _shipment(44, "GL-2", "2026-02-20T08:00:00Z"),
        _shipment(45, "GL-1", "2026-04-01T08:00:00Z"),
    ]  # fmt: skip
    return lines


def _lines(objs: list[dict[str, Any]]) -> list[tuple[int | None, bytes]]:
    return [(n, json.dumps(o).encode()) for n, o in enumerate(objs, start=1)]


def _stored(app: Ledger) -> list[tuple[str, str, dict[str, Any]]]:
    """Every stored event without the ledger's recorded time."""
    out = []
    for entry in app.log(order="recorded", include_retracted=True):
        body = msgspec.to_builtins(entry.event)
        body.pop("recorded_at", None)
        out.append((type(entry.event).__name__, entry.event.entity_id, body))
    return out


def test_a_streamed_import_equals_one_batch(make_ledger: Callable[..., Ledger]) -> None:
    objs = history()
    batch = make_ledger()
    expected = batch.append_objects(objs)
    streamed = make_ledger()
    result = import_lines(
        streamed, _lines(objs), chunk_lines=3, workspace_bytes=0, keep_events=True
    )
    outcomes = result.to_dict()["events"]
    assert [(o["status"], o["type"], o["entity"]) for o in outcomes] == [
        (o.status, o.type, o.entity) for o in expected.outcomes
    ]
    assert [o["position"] for o in outcomes] == [o.position for o in expected.outcomes]
    assert (result.appended, result.duplicates) == (len(objs) - 2, 2)
    assert _stored(streamed) == _stored(batch)
    for licence in ("GL-1", "GL-2"):
        a, b = streamed.entity("licence", licence), batch.entity("licence", licence)
        assert a is not None and b is not None
        assert a.state() == b.state()
    # Again: everything already recorded, nothing appended.
    again = import_lines(streamed, _lines(objs), chunk_lines=3, workspace_bytes=0)
    assert (again.appended, again.duplicates) == (0, len(objs))
    assert streamed.index.count_events() == len(objs) - 2


def test_a_dry_run_streams_checks_and_appends_nothing(make_ledger: Callable[..., Ledger]) -> None:
    objs = history()
    app = make_ledger()
    result = import_lines(app, _lines(objs), chunk_lines=4, workspace_bytes=0, dry_run=True)
    assert (result.valid, result.duplicates, result.appended) == (len(objs) - 2, 2, 0)
    assert app.index.count_events() == 0
    assert import_lines(app, _lines(objs), chunk_lines=4).appended == len(objs) - 2


@pytest.mark.parametrize("dry_run", [False, True])
def test_errors_in_a_later_chunk_name_the_lines_and_append_nothing(
    make_ledger: Callable[..., Ledger], dry_run: bool
) -> None:
    objs = history()
    app = make_ledger()
    reused = [*objs, {**objs[14], "quantity": "3"}]  # event id of line 15, other content
    with pytest.raises(ConflictError) as conflict:
        import_lines(app, _lines(reused), chunk_lines=5, workspace_bytes=0, dry_run=dry_run)
    assert conflict.value.line == len(reused)
    assert "first on line 15" in str(conflict.value)
    # A shipment id of an earlier chunk recorded again with other details.
    other = [*objs, {**_shipment(50, "GL-1", "2026-05-01T08:00:00Z", "S-12"), "quantity": "1"}]
    with pytest.raises(RuleViolation) as duplicate:
        import_lines(app, _lines(other), chunk_lines=5, workspace_bytes=0, dry_run=dry_run)
    assert (duplicate.value.rule, duplicate.value.line) == ("duplicate-shipment", len(other))
    # GL-2 was suspended on a line of a later chunk than its other events.
    late = [*objs, _shipment(51, "GL-2", "2026-06-01T08:00:00Z")]
    with pytest.raises(RuleViolation) as suspended:
        import_lines(app, _lines(late), chunk_lines=5, workspace_bytes=0, dry_run=dry_run)
    assert (suspended.value.rule, suspended.value.line) == ("licence-suspended", len(late))
    assert app.index.count_events() == 0


# --- killed midway ----------------------------------------------------------------------


def _lines_file(path: Path, total: int) -> None:
    objs = history()[:5]
    with path.open("w") as out:
        for obj in objs:
            out.write(json.dumps(obj) + "\n")
        for n in range(total - len(objs)):
            obj = _shipment(1000 + n, f"GL-{1 + n % 2}", "2026-01-05T08:00:00Z", f"K-{n}")
            obj["quantity"] = "0.001"
            out.write(json.dumps(obj) + "\n")


def _holds_write_lock(backend: Backend, env: dict[str, str]) -> bool:
    """Whether some other connection holds the store's write lock."""
    if backend.name == "sqlite":
        conn = sqlite3.connect(Path(env["LEDGER_HOME"]) / "ledger.db", timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return True
        finally:
            conn.close()
    import psycopg

    from tests.conftest import POSTGRES_URL

    schema = env["LEDGER_DATABASE_URL"].rsplit("schema=", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND l.mode = 'ExclusiveLock' AND l.granted",
            (schema,),
        ).fetchone()
    return bool(row and row[0])


def test_an_import_killed_midway_appends_nothing(backend: Backend, tmp_path: Path) -> None:
    """``ledger import -`` is fed half a file through a pipe: it must already be writing
    (holding the write lock, having read well past the first chunk: a streaming import)
    when it is killed with SIGKILL; nothing of it is then in the ledger, which still
    verifies, and the whole file imports afterwards."""
    env = backend.env()
    full = {**os.environ, **env}
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps(history()[0]) + "\n")
    subprocess.run([LEDGER, "import", str(seed)], env=full, check=True, capture_output=True)
    path = tmp_path / "events.jsonl"
    _lines_file(path, 20_000)
    lines = path.read_bytes().splitlines(keepends=True)
    importer = subprocess.Popen(
        [LEDGER, "import", "-", "--no-progress"],
        env=full,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert importer.stdin is not None
    try:
        # A blocking write returns once the importer has read all but a pipe's worth.
        importer.stdin.write(b"".join(lines[:10_000]))
        importer.stdin.flush()
        deadline = time.monotonic() + 120
        while not _holds_write_lock(backend, env):
            assert importer.poll() is None, "the importer stopped"
            assert time.monotonic() < deadline, "the importer never started writing"
            time.sleep(0.1)
    finally:
        importer.send_signal(signal.SIGKILL)
        importer.wait(timeout=60)
        with contextlib.suppress(BrokenPipeError):
            importer.stdin.close()
    assert importer.returncode == -signal.SIGKILL
    app = Ledger(backend.settings(env))
    try:
        assert app.index.count_events() == 1
        assert app.head() == 1
    finally:
        app.close()
    verify = subprocess.run([LEDGER, "verify"], env=full, capture_output=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    done = subprocess.run(
        [LEDGER, "import", str(path), "-o", "json", "--no-progress"],
        env=full,
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()
    body = json.loads(done.stdout)
    assert (body["appended"], body["duplicates"]) == (20_000 - 1, 1)


def test_backfilled_times_are_refused_alike_by_a_batch_append_and_a_streamed_import(
    make_ledger: Callable[..., Ledger],
) -> None:
    """One rule for recorded times under --backfill (ledger.intake.check_backfilled_time):
    a batch append and the streaming import, with its chunks, refuse the same lines with
    the same rule and words."""

    def party(n: int, recorded: str) -> dict[str, Any]:
        return {
            "event_id": _id(900 + n),
            "type": "PartyRegistered",
            "entity_id": f"p-{n}",
            "name": f"Party {n}",
            "country": "DE",
            "roles": ["end-user"],
            "effective_at": "2025-01-01T00:00:00Z",
            "recorded_at": recorded,
            "sources": SRC,
        }

    cases = {
        "backfill-recorded-decreases": [
            party(1, "2025-03-01T00:00:00Z"),
            party(2, "2025-03-02T00:00:00Z"),
            party(3, "2025-03-01T12:00:00Z"),
        ],
        "backfill-recorded-in-future": [
            party(1, "2025-03-01T00:00:00Z"),
            party(2, "2999-01-01T00:00:00Z"),
        ],
    }
    for rule, objs in cases.items():
        refusals = []
        for attempt in ("append", "import"):
            app = make_ledger()
            with pytest.raises(RuleViolation) as refused:
                if attempt == "append":
                    app.append_objects(objs, backfill=True)
                else:
                    import_lines(app, _lines(objs), backfill=True, chunk_lines=1)
            refusals.append((refused.value.rule, refused.value.line, str(refused.value)))
            assert app.index.count_events() == 0
        assert refusals[0] == refusals[1], refusals
        assert refusals[0][:2] == (rule, len(objs))
    # The ledger's latest recorded time bounds both.
    app = make_ledger()
    app.append_objects([party(1, "2025-03-01T00:00:00Z")], backfill=True)
    early = [party(2, "2025-02-01T00:00:00Z")]
    with pytest.raises(RuleViolation, match="earlier than the latest recorded time") as a:
        app.append_objects(early, backfill=True)
    with pytest.raises(RuleViolation, match="earlier than the latest recorded time") as b:
        import_lines(app, _lines(early), backfill=True)
    assert a.value.rule == b.value.rule == "backfill-before-ledger"


def test_reused_event_ids_are_refused_alike_by_a_batch_append_and_a_streamed_import(
    make_ledger: Callable[..., Ledger],
) -> None:
    """One rule for re-sent event ids (ledger.intake.check_resent / check_repeated): an
    id already stored, or seen earlier in the file (in the same chunk or an earlier one),
    with other content is refused by both paths with the same rule, line and words; with
    the same content, or differing only in an effective time the ledger defaulted, it is a
    duplicate."""

    def party(n: int, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "event_id": _id(700 + n),
            "type": "PartyRegistered",
            "entity_id": f"p-{n}",
            "name": name,
            "country": "DE",
            "roles": ["end-user"],
            "effective_at": "2025-01-01T00:00:00Z",
            "sources": SRC,
            **extra,
        }

    stored = party(1, "Stored GmbH")
    cases = {
        "stored": [party(2, "Two"), {**stored, "name": "Other GmbH"}],
        "same chunk": [party(2, "Two"), party(3, "Three"), party(2, "Zwei")],
        "earlier chunk": [party(2, "Two"), party(3, "Three"), party(4, "Four"), party(2, "Zwei")],
    }
    words = {}
    for case, objs in cases.items():
        refusals = []
        for attempt in ("append", "import"):
            app = make_ledger()
            app.append_objects([stored])
            with pytest.raises(ConflictError) as refused:
                if attempt == "append":
                    app.append_objects(objs)
                else:
                    import_lines(app, _lines(objs), chunk_lines=3)
            refusals.append((refused.value.rule, refused.value.line, str(refused.value)))
            assert app.index.count_events() == 1, case
        assert refusals[0] == refusals[1], (case, refusals)
        assert refusals[0][:2] == ("event-id-reused", len(objs)), case
        words[case] = refusals[0][2]
    assert "already recorded (position 1, PartyRegistered on party:p-1)" in words["stored"]
    assert "twice in the batch with different content (first on line 1)" in words["same chunk"]
    assert words["earlier chunk"].endswith(
        "twice in the batch with different content (first on line 1) [rule: event-id-reused]"
    )

    # Same content again, or a retry whose effective time the ledger defaulted: duplicates.
    undated = {k: v for k, v in party(5, "Five").items() if k != "effective_at"}
    for attempt in ("append", "import"):
        app = make_ledger()
        app.append_objects([stored, undated])
        again = [stored, undated, party(6, "Six")]
        if attempt == "append":
            result = app.append_objects(again)
            appended = sum(o.status == "appended" for o in result.outcomes)
        else:
            appended = import_lines(app, _lines(again), chunk_lines=2).appended
        assert (appended, app.index.count_events()) == (1, 3), attempt


def test_lean_licences_find_their_shipments_among_many(make_ledger: Callable[..., Ledger]) -> None:
    """With the default budget a licence of many events is held lean between chunks,
    knowing its shipments by sorted hashes: a shipment sent again under a new event id,
    early or late in the licence's history, is found (a duplicate of the original), one
    with other details is refused on its line, and new ids are appended."""
    objs = history()[:5]
    objs += [_shipment(100 + n, "GL-1", f"2026-02-01T08:{n:02d}:00Z") for n in range(40)]
    resent = [{**objs[k], "event_id": _id(200 + k)} for k in (5, 25, 44)]
    fresh = [_shipment(300, "GL-1", "2026-03-01T08:00:00Z")]
    batch, streamed = make_ledger(), make_ledger()
    expected = batch.append_objects([*objs, *resent, *fresh])
    result = import_lines(streamed, _lines([*objs, *resent, *fresh]), chunk_lines=7)
    assert (result.appended, result.duplicates) == (len(objs) + 1, 3)
    assert _stored(streamed) == _stored(batch)
    assert [o.status for o in expected.outcomes[-4:]] == ["duplicate"] * 3 + ["appended"]
    other = [*objs, {**objs[30], "event_id": _id(400), "quantity": "1"}]
    with pytest.raises(RuleViolation) as duplicate:
        import_lines(make_ledger(), _lines(other), chunk_lines=7)
    assert (duplicate.value.rule, duplicate.value.line) == ("duplicate-shipment", len(other))
    assert f"shipment 'S-125' is already recorded on licence 'GL-1' (event {_id(125)})" in str(
        duplicate.value
    )


def test_a_streamed_import_signs_a_checkpoint_per_chunk(make_ledger: Callable[..., Ledger]) -> None:
    """A consumer verifying the stream holds each message until a signed checkpoint
    covers it: one checkpoint per chunk of the import's one transaction (not one for the
    whole file) bounds what it holds.  Each verifies, and so does the whole tree."""
    from ledger.audit import signed_checkpoints, verify
    from ledger.checkpoint import open_checkpoint

    objs = history()
    app = make_ledger()
    result = import_lines(app, _lines(objs), chunk_lines=4, workspace_bytes=0)
    appended = result.appended
    sizes = [size for size, _ in signed_checkpoints(app)]
    # Chunks of 4 lines, of which the file's two repeated events append nothing.
    assert sizes == sorted(set(sizes)) and sizes[-1] == appended
    assert len(sizes) == -(-len(objs) // 4)
    assert all(later - earlier <= 4 for earlier, later in zip([0, *sizes], sizes, strict=False))
    verifier = app.signing_key().verifier
    for size, note in signed_checkpoints(app):
        assert open_checkpoint(note, verifier).size == size
    report = verify(app, key=verifier)
    assert report.checkpoints == len(sizes)


def test_an_import_that_pauses_between_chunks_is_not_cut_off(backend: Backend) -> None:
    """Between two chunks the import's transaction sits idle while the next chunk is read,
    parsed and checked; on a busy machine (or reading a slow pipe) that took longer than
    the 5 s PostgreSQL session limit the eventsourcing library sets, and the server ended
    the transaction: the whole import failed."""
    objs = history()[:8]

    def slow_lines() -> Iterator[tuple[int | None, bytes]]:
        for number, line in _lines(objs):
            if number == 5:
                time.sleep(6)
            yield number, line

    app = Ledger(backend.settings(backend.env()))
    try:
        result = import_lines(app, slow_lines(), chunk_lines=4)
        assert result.appended == len(objs) and app.index.count_events() == len(objs)
    finally:
        app.close()


# --- a working set that must evict ------------------------------------------------------

UNBOUNDED = 1 << 40


def _across_evictions() -> list[dict[str, Any]]:
    """Three licences taking shipments round-robin (cap 100 kg, 2 kg each), so that with
    no budget each one leaves the working set after every chunk and comes back for the
    next; then what must be answered about what it held: a shipment of an early chunk
    sent again under a new event id, one backdated before most of its licence's history,
    GL-3 used up to 2 kg short of its cap."""
    objs = history()[:5]
    objs.append({**history()[4], "event_id": _id(6), "entity_id": "GL-3"})
    for n in range(60):
        objs.append(_shipment(500 + n, f"GL-{1 + n % 3}", f"2026-01-05T08:{n:02d}:00Z"))
    objs.append({**objs[7], "event_id": _id(600)})  # GL-2's S-501, resent
    objs.append(_shipment(601, "GL-1", "2025-12-20T08:00:00Z"))  # backdated
    objs += [
        _shipment(602 + n, "GL-3", f"2026-02-{1 + n // 2:02d}T{10 + n % 2}:00:00Z")
        for n in range(29)
    ]
    return objs


def _refusal(app: Ledger, objs: list[dict[str, Any]], budget: int) -> tuple[str, int | None, str]:
    with pytest.raises(RuleViolation) as refused:
        import_lines(app, _lines(objs), chunk_lines=4, workspace_bytes=budget)
    return refused.value.rule, refused.value.line, str(refused.value)


def test_an_import_that_evicts_equals_an_unbounded_one(make_ledger: Callable[..., Ledger]) -> None:
    """Licences dropped from the working set after every chunk come back from their
    snapshots (written as they leave, in the import's transaction) and find their stored
    shipments in the shipment index: the stored result, the outcomes and the refusals
    are those of an import that keeps every entity."""
    objs = _across_evictions()
    evicting, unbounded = make_ledger(), make_ledger()
    results = [
        import_lines(app, _lines(objs), chunk_lines=4, workspace_bytes=budget, keep_events=True)
        for app, budget in ((evicting, 0), (unbounded, UNBOUNDED))
    ]
    assert results[0].to_dict()["events"] == results[1].to_dict()["events"]
    assert (results[0].appended, results[0].duplicates) == (len(objs) - 1, 1)
    assert _stored(evicting) == _stored(unbounded)
    for licence in ("GL-1", "GL-2", "GL-3"):
        a, b = evicting.entity("licence", licence), unbounded.entity("licence", licence)
        assert a is not None and b is not None
        assert a.state() == b.state()
    # The refusals: 3 kg on GL-3, which has 2 left; S-520 (GL-3's) with other details;
    # the same two in a dry run, where nothing of the import is kept.
    over = [*objs, {**_shipment(700, "GL-3", "2026-03-01T08:00:00Z"), "quantity": "3"}]
    other = [*objs, {**objs[26], "event_id": _id(701), "quantity": "1"}]
    for refused in (over, other):
        found = [_refusal(make_ledger(), refused, budget) for budget in (0, UNBOUNDED)]
        assert found[0] == found[1]
        assert found[0][1] == len(refused)
        assert found[0][0] == ("usage-exceeds-cap" if refused is over else "duplicate-shipment")
        app = make_ledger()
        with pytest.raises(RuleViolation) as rehearsed:
            import_lines(app, _lines(refused), chunk_lines=4, workspace_bytes=0, dry_run=True)
        assert (rehearsed.value.rule, rehearsed.value.line) == found[0][:2]
        assert app.index.count_events() == 0


def test_an_evicted_licence_comes_back_from_its_snapshot(
    make_ledger: Callable[..., Ledger],
) -> None:
    """A licence leaving the working set is snapshotted: coming back for the next chunk
    reads the snapshot, not the shipments before it.  So the stored events the import
    decodes grow with the file (the party every shipment names, read each chunk; a young
    licence's few events), not with the square of it: reloading the licences' histories
    decodes ~900 here."""
    objs = history()[:5]
    objs += [
        _shipment(800 + n, f"GL-{1 + n % 2}", f"2026-01-05T{8 + n // 60:02d}:{n % 60:02d}:00Z")
        for n in range(80)
    ]
    app = make_ledger()
    before = app.events_loaded
    result = import_lines(app, _lines(objs), chunk_lines=4, workspace_bytes=0)
    assert result.appended == len(objs)
    assert app.events_loaded - before <= 2 * len(objs)
