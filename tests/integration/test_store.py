"""Storage on SQLite and PostgreSQL: every event type round-trips, typed; idempotency lasts
across processes; recorded times never decrease along the log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
import pytest

from ledger import events as ev
from ledger.app import Ledger
from ledger.config import Settings
from ledger.errors import ConflictError
from ledger.store.codec import encode_event
from tests import factory as f


def every_type_history() -> list[dict]:
    """A valid history that uses each of the event types at least once."""
    src = [f.SRC]
    return [
        f.agreement(),
        {
            "type": "AgreementExtended",
            "entity_id": "busan-2025",
            "valid_until": "2027-11-09",
            "effective_at": "2026-10-01",
            "sources": src,
        },
        f.pledge("cn-licences", asserted_by=["US"], due_by="2025-11-30"),
        f.pledge("us-affiliates", obligor="US", beneficiary="CN", reciprocates=["cn-licences"]),
        {
            "type": "CommitmentAcknowledged",
            "entity_id": "cn-licences",
            "party": "CN",
            "effective_at": "2025-12-04",
            "sources": src,
        },
        f.implemented(
            "us-affiliates", effective_at="2025-11-10T13:01:00+08:00", in_force_until="2026-11-10"
        ),
        {
            "type": "CommitmentReversed",
            "entity_id": "us-affiliates",
            "reason": "snapback",
            "effective_at": "2026-06-01",
            "sources": src,
        },
        f.pledge("cn-other"),
        {
            "type": "CommitmentLapsed",
            "entity_id": "cn-other",
            "reason": "abandoned",
            "effective_at": "2026-01-01",
            "sources": src,
        },
        f.measure(),
        f.suspended(),
        {
            "type": "SuspensionEnded",
            "entity_id": "cn-ann-46",
            "clause_id": "cl2",
            "effective_at": "2026-05-01",
            "sources": src,
        },
        {
            "type": "MeasureRevoked",
            "entity_id": "cn-ann-46",
            "clause_ids": ["cl1"],
            "reason": "superseded",
            "effective_at": "2026-07-01",
            "sources": src,
        },
        f.exporter(),
        f.party("buyer"),
        f.vetted("buyer", valid_until="2027-06-01"),
        f.party("army"),
        f.classified("army"),
        f.listed("army"),
        f.delisted("army"),
        f.licence(),
        f.licence_event("LicenceAmended"),
        f.usage(),
        f.licence_event("LicenceSuspended", until="2026-01-31"),
        f.licence_event("LicenceReinstated", effective_at="2026-01-20"),
        f.licence("GL-2"),
        f.licence_event("LicenceWithdrawn", "GL-2"),
        f.licence("GL-3"),
        f.licence_event("LicenceSurrendered", "GL-3"),
        f.application(),
        {
            "type": "ApplicationDecided",
            "entity_id": "APP-1",
            "outcome": "approved",
            "licence_id": "GL-1",
            "fired_clauses": [
                {"measure_id": "cn-ann-46", "clause_id": "cl2", "effect": "denied-in-principle"}
            ],
            "reasons": ["covered by GL-1"],
            "end_user_status": "approved",
            "effective_at": "2025-12-03",
        },
        {
            "type": "ClaimReported",
            "entity_id": "auto-rejection",
            "claimant": "MOFCOM, as reported",
            "says": "military-use applications are rejected automatically",
            "about": ["measure:cn-ann-46"],
            "takes_effect_at": "2025-12-01T00:00:00+08:00",
            "effective_at": "2025-11-14",
            "sources": [{**f.SRC, "status": "claim"}],
        },
        {
            "type": "ClaimResolved",
            "entity_id": "auto-rejection",
            "outcome": "contradicted",
            "evidence": ["measure:cn-ann-46"],
            "reason": "the clause it relies on is suspended",
            "effective_at": "2025-12-02",
            "sources": src,
        },
    ]


def test_every_event_type_round_trips(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    history = every_type_history()
    result = app.append_objects(history)
    usage_id = next(o.event_id for o in result.outcomes if o.type == "LicenceUsageRecorded")
    result_r = app.retract(usage_id, "wrong quantity")
    appended = [*result.outcomes, *result_r.outcomes]
    assert {o.type for o in appended} == {cls.__name__ for cls in ev.EVENT_TYPES}

    # A second application instance (as a new process would) reads back identical events.
    env = {"LEDGER_HOME": str(app.settings.home), "LEDGER_DATABASE_URL": app.settings.database_url}
    reader = make_ledger(env)
    stored = {e.event.event_id: e for e in reader.log(include_retracted=True)}
    assert len(stored) == len(appended)
    for outcome in appended:
        entry = stored[outcome.event_id]
        assert entry.position == outcome.position
        assert type(entry.event).__name__ == outcome.type
        fetched = reader.get_event(outcome.event_id)
        assert fetched is not None and fetched.event == entry.event
        # Typed, validated decode: the stored bytes decode back to the identical struct.
        payload = encode_event(entry.event)
        assert msgspec.json.decode(payload, type=ev.AnyEvent) == entry.event
    assert stored[usage_id].retracted


def test_select_payloads_reads_the_log_in_pages(make_ledger: Callable[..., Ledger]) -> None:
    """The catch-up's reader: the notification log's events in pages, payloads of the
    skipped types left unread but counted."""
    app = make_ledger()
    app.append_objects(every_type_history())
    notes = app.recorder.select_notifications(start=1, limit=1000)
    skip = ("CommitmentPledged", "LicenceUsageRecorded")
    expected = [(n.id, n.topic, None if n.topic in skip else n.state) for n in notes]

    pages: list[tuple[int, str, bytes | None]] = []
    after = 0
    while page := app.index.select_payloads(after, 5, skip_topics=skip):
        assert len(page) <= 5
        pages += page
        after = page[-1][0]
    assert pages == expected
    assert any(state is None for _, _, state in pages)

    whole = [(n.id, n.topic, n.state) for n in notes]  # nothing skipped
    middle = whole[7][0]
    assert app.index.select_payloads(0, 1000, stop=middle) == whole[:8]
    assert app.index.select_payloads(middle, 3) == whole[8:11]
    assert app.index.select_payloads(whole[-1][0], 10) == []


def test_offsets_are_kept_exactly(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    app.append_objects([f.agreement(), f.pledge("c1")])
    app.append_objects([f.implemented("c1", effective_at="2025-11-10T13:01:00+08:00")])
    entry = next(iter(app.log(types=["CommitmentImplemented"])))
    assert entry.event.effective_at.utcoffset() == dt.timedelta(hours=8)
    assert b'"effective_at":"2025-11-10T13:01:00+08:00"' in encode_event(entry.event)
    # It sorts by the instant: 13:01 Beijing is 05:01 UTC, before a 06:00Z event.
    app.append_objects([f.implemented("c1", effective_at="2025-11-10T06:00:00Z", extent="partial")])
    times = [e.event.effective_at for e in app.log(types=["CommitmentImplemented"])]
    assert times == sorted(times)
    assert times[0].utcoffset() == dt.timedelta(hours=8)


def test_idempotency_lasts_across_processes(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    event_id = str(uuid4())
    event = {**f.party("x"), "event_id": event_id}
    first = app.append_objects([event]).outcomes[0]
    assert first.status == "appended"
    app.append_objects([f.party("y")])  # the ledger moves on

    env = {"LEDGER_HOME": str(app.settings.home), "LEDGER_DATABASE_URL": app.settings.database_url}
    later = make_ledger(env)
    again = later.append_objects([event]).outcomes[0]
    assert again.status == "duplicate"
    assert again.position == first.position
    assert later.head() == 2

    with pytest.raises(ConflictError) as caught:
        later.append_objects([{**event, "name": "Someone Else"}])
    assert caught.value.rule == "event-id-reused"
    assert caught.value.field == "event_id"
    assert f"position {first.position}" in caught.value.message
    assert later.head() == 2


def test_resend_without_effective_time_is_the_same_event(
    make_ledger: Callable[..., Ledger],
) -> None:
    """A retry of input that let the ledger default effective_at is still a duplicate."""
    app = make_ledger()
    event = {k: v for k, v in f.party("x").items() if k != "effective_at"}
    event["event_id"] = str(uuid4())
    first = app.append_objects([event]).outcomes[0]
    second = app.append_objects([event]).outcomes[0]
    assert (second.status, second.position) == ("duplicate", first.position)


def test_duplicates_inside_one_batch(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    event = {**f.party("x"), "event_id": str(uuid4())}
    result = app.append_objects([event, f.party("y"), event])
    assert [o.status for o in result.outcomes] == ["appended", "appended", "duplicate"]
    assert result.outcomes[2].position == result.outcomes[0].position
    with pytest.raises(ConflictError) as caught:
        app.append_objects(
            [{**event, "event_id": (eid := str(uuid4()))}, {**f.party("z"), "event_id": eid}]
        )
    assert caught.value.line == 2


def test_shipments_are_idempotent_by_shipment_id(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    app.append_objects(f.licensed_world())
    first = app.append_objects([f.usage()]).outcomes[0]
    again = app.append_objects([f.usage()]).outcomes[0]  # new event id, same shipment
    assert again.status == "duplicate"
    assert again.duplicate_of == first.event_id
    assert again.position == first.position
    licence = app.entity("licence", "GL-1")
    assert licence is not None and len(licence.events) == 2


def test_recorded_times_never_decrease(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    for i in range(5):
        app.append_objects([f.party(f"p{i}")])
    recorded = [e.event.recorded_at for e in app.log(order="recorded")]
    assert recorded == sorted(recorded)
    positions = [e.position for e in app.log(order="recorded")]
    assert positions == sorted(positions)


def test_store_refuses_a_recorded_time_earlier_than_the_log(
    make_ledger: Callable[..., Ledger],
) -> None:
    """The known-at axis is guarded in the write transaction itself: an insert whose recorded
    time is earlier than the newest stored one raises and writes nothing."""
    from ledger.store.codec import IndexRow, Recorded
    from ledger.store.index import RecordedTimeConflict
    from ledger.times import to_us

    app = make_ledger()
    app.append_objects([f.party("a")])
    late = app.parse(f.party("b"))
    early = msgspec.structs.replace(
        late.event, recorded_at=late.event.recorded_at - dt.timedelta(days=1)
    )
    recorded = Recorded("party:b", 1, early)
    stored = [app.mapper.to_stored_event(recorded)]
    e = recorded.event
    rows = [
        IndexRow(
            e.event_id,
            e.type,
            "party",
            "b",
            to_us(e.effective_at),
            to_us(early.recorded_at),
            late.content_hash,
            None,
            1,
        )
    ]
    with pytest.raises(RecordedTimeConflict):
        app.recorder.insert_events(stored, index_rows=rows)
    assert app.head() == 1
    assert app.entity("party", "b") is None


def test_an_export_reimported_into_the_same_ledger_is_all_duplicates(
    make_ledger: Callable[..., Ledger],
) -> None:
    """Also for events whose effective time the ledger filled in: the stored hash covers
    the full content, and a retry without the time is compared without it."""
    app = make_ledger()
    no_time = {k: v for k, v in f.party("x").items() if k != "effective_at"}
    app.append_objects([no_time, f.party("y")])
    app.retract(next(iter(app.log(entity_id="y"))).event.event_id, "wrong")
    exported = [
        (n, encode_event(e.event))
        for n, e in enumerate(app.log(order="recorded", include_retracted=True), start=1)
    ]
    again = app.append(app.parse_lines(exported, backfill=True), backfill=True)
    assert [o.status for o in again.outcomes] == ["duplicate"] * 3
    assert app.head() == 3


def test_sqlite_connections_carry_the_ledger_settings(tmp_path: Path) -> None:
    """Set by overriding the library's pool factory method ``_create_connection``: this
    fails if the library stops calling it.  The views' listings read thousands of
    scattered record bodies: mapped, not copied."""
    from ledger.store.sqlite import CACHE_SIZE_KIB, JOURNAL_SIZE_LIMIT_BYTES

    app = Ledger(Settings.from_env({"LEDGER_HOME": str(tmp_path)}))
    try:
        with app.factory.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("PRAGMA mmap_size")
            assert c.fetchone()[0] > 0
            c.execute("PRAGMA synchronous")
            assert c.fetchone()[0] == 2  # FULL: the map changes reads only
            c.execute("PRAGMA cache_size")
            assert c.fetchone()[0] == -CACHE_SIZE_KIB
            c.execute("PRAGMA journal_size_limit")
            assert c.fetchone()[0] == JOURNAL_SIZE_LIMIT_BYTES
    finally:
        app.close()


def test_a_new_connection_waits_out_a_locked_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes opening a new ledger at once both switch it to WAL, and the one that
    meets the other's lock gets "database is locked" at once (a writer of
    ``test_merkle_crash`` never started, 4 Dec 2026): the pool tries again until its lock
    timeout; any other error, or a lock that outlasts the timeout, is raised."""
    from eventsourcing.sqlite import SQLiteConnectionPool

    from ledger.store import sqlite as ledger_sqlite

    create = SQLiteConnectionPool._create_connection
    failures: list[str] = []

    def flaky(self: SQLiteConnectionPool) -> Any:
        if failures:
            raise sqlite3.OperationalError(failures.pop())
        return create(self)

    monkeypatch.setattr(SQLiteConnectionPool, "_create_connection", flaky)
    failures[:] = ["database is locked"] * 3
    app = Ledger(Settings.from_env({"LEDGER_HOME": str(tmp_path / "a")}))
    try:
        app.append_objects([f.party("opened")])
        assert failures == [] and app.head() == 1
    finally:
        app.close()
    failures[:] = ["disk I/O error"]
    with pytest.raises(Exception, match="disk I/O error"):
        Ledger(Settings.from_env({"LEDGER_HOME": str(tmp_path / "b")}))

    class Clock:  # (ten seconds pass at each look: the 60 s lock timeout in a few tries)
        now = 0.0

        def monotonic(self) -> float:
            self.now += 10.0
            return self.now

        def sleep(self, seconds: float) -> None:
            pass

    monkeypatch.setattr(ledger_sqlite, "time", Clock())
    failures[:] = ["database is locked"] * 1000
    with pytest.raises(Exception, match="database is locked"):
        Ledger(Settings.from_env({"LEDGER_HOME": str(tmp_path / "c")}))
    assert len(failures) > 900  # (it gave up at the timeout, not after every try)


def test_the_projector_reads_sqlite_with_a_small_cache_and_no_map(tmp_path: Path) -> None:
    """The projector's own application (and so its writer process, which opens the same
    settings) uses an 8 MiB page cache and no memory map: both otherwise fill with the
    database's size, and a views rebuild's memory would grow with the ledger."""
    from ledger.projections.runner import open_app

    settings = Settings.from_env({"LEDGER_HOME": str(tmp_path)})
    app = open_app(settings)
    try:
        assert app.settings.extra["SQLITE_MMAP_SIZE"] == "0"
        with app.factory.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("PRAGMA mmap_size")
            assert c.fetchone()[0] == 0
            c.execute("PRAGMA cache_size")
            assert c.fetchone()[0] == -8192
    finally:
        app.close()
    # An explicit setting wins.
    app = open_app(dataclasses.replace(settings, extra={"SQLITE_CACHE_KIB": "1024"}))
    try:
        with app.factory.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("PRAGMA cache_size")
            assert c.fetchone()[0] == -1024
    finally:
        app.close()


def test_sqlite_wal_shrinks_back_after_a_big_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a big batch (or a views rebuild) the WAL file is cut back to the limit once
    checkpointed; SQLite otherwise keeps it at its largest for good."""
    import ledger.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "JOURNAL_SIZE_LIMIT_BYTES", 64 << 10)
    app = Ledger(Settings.from_env({"LEDGER_HOME": str(tmp_path)}))
    wal = tmp_path / "ledger.db-wal"
    try:
        app.append_objects([f.party(f"p{i}", name="x" * 500) for i in range(8000)])
        assert wal.stat().st_size > 4 << 20  # past SQLite's automatic checkpoint
        app.append_objects([f.party("one-more")])
        assert wal.stat().st_size <= 64 << 10
    finally:
        app.close()


def test_rows_written_by_the_insert_hooks_share_the_events_transaction(
    make_ledger: Callable[..., Ledger],
) -> None:
    """``after_insert`` sees each insert's positions inside the transaction (its SQL reads
    the uncommitted events); a hook that raises leaves nothing appended."""
    from ledger.store.codec import IndexRow
    from ledger.store.index import EventWrite

    app = make_ledger()
    recorder: Any = app.index
    schema = getattr(recorder.datastore, "schema", None)  # PostgreSQL's
    table = recorder.index_table if schema is None else f'"{schema}"."{recorder.index_table}"'
    seen: list[tuple[list[int], int]] = []
    commits: list[int] = []

    def after_insert(
        write: EventWrite, positions: Sequence[int], rows: Sequence[IndexRow], events: Any
    ) -> None:
        cursor: Any = write.cursor  # type: ignore[attr-defined]
        cursor.execute(f"SELECT COUNT(*) AS n FROM {table}")
        row = cursor.fetchone()
        seen.append((list(positions), row[0] if isinstance(row, tuple | list) else row["n"]))

    def before_commit(write: EventWrite) -> None:
        commits.append(len(seen))

    app.index.after_insert = after_insert  # type: ignore[method-assign]
    app.index.before_commit = before_commit  # type: ignore[method-assign]
    result = app.append_objects([f.party("a"), f.party("b")])
    assert seen == [([o.position for o in result.outcomes], 2)]
    assert commits == [1]

    def failing(
        write: EventWrite, positions: Sequence[int], rows: Sequence[IndexRow], events: Any
    ) -> None:
        raise RuntimeError("the hook's own rows could not be written")

    app.index.after_insert = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        app.append_objects([f.party("c")])
    assert app.head() == max(o.position for o in result.outcomes)
    assert app.index.count_events() == 2
    assert app.entity("party", "c") is None


def test_a_postgresql_write_may_wait_for_its_client_longer_than_the_idle_timeout(
    postgres_backend: Any,
) -> None:
    """A streaming import holds its write transaction open while it checks the next
    chunk on the client, between two statements (``EventWrite.lookup``, then
    ``insert``).  The connections' idle-in-transaction timeout (the library's default is
    5 s) ended such imports on a loaded machine ("terminating connection due to
    idle-in-transaction timeout"); the ledger's write transaction sets its own, longer
    one.  Here the connections' timeout is 1 s and the client pauses for 2.5 s."""
    import time

    env = postgres_backend.env()
    app = Ledger(
        postgres_backend.settings(env), env={"POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1"}
    )
    try:
        app.append_objects([f.exporter()])
        with app.index.writing() as write:
            write.lock()
            assert write.last_recorded_us() is not None
            time.sleep(2.5)  # (the client checking a chunk)
            assert write.head() == 1
        app.append_objects([f.party("buyer")])
        assert app.index.count_events() == 2
    finally:
        app.close()
