"""The Merkle tree in the store (SQLite and PostgreSQL): written with the events, signed
per batch, provable, verifiable, built over ledgers from before it, and tamper-evident."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger import audit, merkle
from ledger.app import Ledger
from ledger.checkpoint import Checkpoint, open_checkpoint, split_note
from ledger.errors import StoreError
from ledger.store.codec import encode_event
from tests import factory


def independent_root(lines: list[bytes]) -> bytes:
    """RFC 9162 MTH, written out from its definition (no ledger code)."""
    if len(lines) == 1:
        return hashlib.sha256(b"\x00" + lines[0]).digest()
    k = 1
    while k * 2 < len(lines):
        k *= 2
    return hashlib.sha256(
        b"\x01" + independent_root(lines[:k]) + independent_root(lines[k:])
    ).digest()


def export_lines(app: Ledger) -> list[bytes]:
    """What `ledger log --order recorded --include-retracted -o jsonl` prints."""
    return [encode_event(e.event) for e in app.log(order="recorded", include_retracted=True)]


def append_parties(app: Ledger, count: int, tag: str, *, batch: int = 1) -> None:
    objs = [factory.party(f"{tag}-{i}") for i in range(count)]
    for start in range(0, count, batch):
        app.append_objects(objs[start : start + batch])


def all_checkpoints(app: Ledger) -> list[str]:
    tables = app.recorder.tree  # type: ignore[attr-defined]
    with app.recorder.tree_port() as port:  # type: ignore[attr-defined]
        return [b.checkpoint for b in tables.batches_from(port) if b.checkpoint]


def test_tree_root_is_the_export_root_and_every_proof_verifies(ledger: Ledger) -> None:
    key = ledger.signing_key().verifier
    sizes: list[int] = []
    for count, batch in [(1, 1), (2, 1), (20, 20), (5, 5), (40, 13), (1, 1)]:
        append_parties(ledger, count, f"p{len(sizes)}", batch=batch)
        sizes.append(ledger.head())
    # A retraction: the retracted event stays a leaf (the export includes it).
    first = next(iter(ledger.log(order="recorded"))).event.event_id
    ledger.append_objects(
        [
            {
                "type": "EventRetracted",
                "retracted_event_id": str(first),
                "reason": "wrong",
                "sources": [factory.SRC],
            }
        ]
    )
    sizes.append(ledger.head())
    lines = export_lines(ledger)
    assert len(lines) == 70
    note = audit.latest_checkpoint(ledger)
    assert note is not None
    checkpoint = open_checkpoint(note, key, origin=key.name)
    assert checkpoint.size == len(lines)
    assert checkpoint.root_hash == independent_root(lines)

    report = audit.verify(ledger, key=key)
    assert (report.events, report.root) == (70, checkpoint.root_hash)
    assert report.checkpoints == len(all_checkpoints(ledger)) == 1 + 2 + 1 + 1 + 4 + 1 + 1

    events = list(ledger.log(order="recorded", include_retracted=True))
    older = all_checkpoints(ledger)[3]  # after the 20-event batch: size 23
    assert Checkpoint.parse(split_note(older)[0]).size == 23
    for i, entry in enumerate(events):
        proof = audit.prove(ledger, entry.event.event_id, key=key)
        assert (proof["leaf_index"], proof["tree_size"]) == (i, 70)
        assert proof["event"].encode() == lines[i]
        assert audit.verify_proof(proof, key).leaf_index == i
        if i < 23:
            old = audit.prove(ledger, entry.event.event_id, checkpoint=older, key=key)
            assert old["tree_size"] == 23
            audit.verify_proof(old, key)
        else:
            with pytest.raises(audit.VerificationError, match="after the checkpoint"):
                audit.prove(ledger, entry.event.event_id, checkpoint=older, key=key)
    for old_note in all_checkpoints(ledger):
        result = audit.consistency(ledger, old_note, key=key)
        merkle.verify_consistency(
            result["old_size"],
            70,
            open_checkpoint(old_note, key).root_hash,
            checkpoint.root_hash,
            [base64.b64decode(h) for h in result["consistency_path"]],
        )


def test_a_forged_or_foreign_checkpoint_is_refused(ledger: Ledger) -> None:
    append_parties(ledger, 5, "a", batch=5)
    key = ledger.signing_key()
    event_id = next(iter(ledger.log())).event.event_id
    forged = key.sign(Checkpoint(key.name, 5, b"\x00" * 32).body())  # our key, wrong root
    with pytest.raises(audit.VerificationError, match="not an append-only extension"):
        audit.consistency(ledger, forged, key=key.verifier)
    with pytest.raises(audit.VerificationError):
        audit.prove(ledger, event_id, checkpoint=forged, key=key.verifier)
    from ledger.checkpoint import SigningKey

    stranger = SigningKey.generate(key.name)
    foreign = stranger.sign(Checkpoint(key.name, 5, b"\x00" * 32).body())
    with pytest.raises(audit.VerificationError, match="not signed by the key"):
        audit.consistency(ledger, foreign, key=key.verifier)
    bigger = key.sign(Checkpoint(key.name, 9, b"\x00" * 32).body())
    with pytest.raises(audit.VerificationError, match="events were removed"):
        audit.consistency(ledger, bigger, key=key.verifier)


def _forget_tree(app: Ledger) -> None:
    """Make the ledger look like one from before the tree (an upgrade)."""
    tables = app.recorder.tree  # type: ignore[attr-defined]
    with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
        for table in (tables.batches, tables.leaves, tables.nodes, tables.meta):
            port.execute(f"DELETE FROM {table}")


def test_a_ledger_from_before_the_tree_gets_it_built_resumably(ledger: Ledger) -> None:
    append_parties(ledger, 45, "old", batch=9)
    key = ledger.signing_key().verifier
    root_before = open_checkpoint(audit.latest_checkpoint(ledger) or "", key).root_hash
    _forget_tree(ledger)
    assert audit.pending(ledger) == 45

    seen: list[tuple[int, int]] = []

    def stop_after_two(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit.build_tree(ledger, progress=stop_after_two, chunk=10)
    assert seen == [(10, 45), (20, 45)]
    assert audit.pending(ledger) == 25  # resumes where the last chunk committed
    seen.clear()
    assert audit.build_tree(ledger, progress=seen.append and None, chunk=10) == 25
    note = audit.latest_checkpoint(ledger) or ""
    assert open_checkpoint(note, key).root_hash == root_before
    assert audit.verify(ledger, key=key).events == 45

    # An append on a ledger from before the tree builds it first.
    _forget_tree(ledger)
    append_parties(ledger, 1, "new")
    assert audit.verify(ledger, key=key).events == 46
    assert audit.pending(ledger) == 0


def _insert_behind_the_back(app: Ledger, backend: Any) -> int:
    """A row written into the events table with SQL, as an intruder would."""
    tables = app.recorder.tree  # type: ignore[attr-defined]
    with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
        row = port.one(
            f"SELECT originator_id, originator_version, topic, state FROM {tables.events} "
            f"ORDER BY {tables.position} DESC LIMIT 1"
        )
        assert row is not None
        port.execute(
            tables.sql(
                f"INSERT INTO {tables.events} (originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?)"
            ),
            ("party:intruder", 1, row[2], bytes(row[3]).replace(b'"p-', b'"x-')),
        )
        top = port.one(f"SELECT MAX({tables.position}) FROM {tables.events}")
        assert top is not None
        return int(top[0])


def test_an_event_written_behind_the_ledgers_back_is_never_taken_into_the_tree(
    ledger: Ledger, backend: Any
) -> None:
    append_parties(ledger, 3, "p", batch=3)
    key = ledger.signing_key().verifier
    position = _insert_behind_the_back(ledger, backend)
    before = ledger.index.count_events()
    with pytest.raises(StoreError, match="not written by the ledger"):
        append_parties(ledger, 2, "later", batch=2)
    assert ledger.index.count_events() == before  # nothing appended (PostgreSQL too)
    assert audit.pending(ledger) == 0
    with pytest.raises(audit.VerificationError) as failure:
        audit.verify(ledger, key=key)
    assert failure.value.position == position


# --- tamper classes on a real SQLite file ---------------------------------------------------

EDITS: dict[str, tuple[str, int | None]] = {
    "payload byte changed": (
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '\"DE\"', '\"FR\"') "
        "AS BLOB) WHERE rowid = 17",
        17,
    ),
    "row deleted": ("DELETE FROM stored_events WHERE rowid = 23", 23),
    "row inserted": (
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "SELECT 'party:forged', 1, topic, state FROM stored_events WHERE rowid = 5",
        41,
    ),
    "rows swapped": (
        "UPDATE stored_events SET state = CASE rowid WHEN 8 THEN "
        "(SELECT state FROM stored_events WHERE rowid = 9) ELSE "
        "(SELECT state FROM stored_events WHERE rowid = 8) END WHERE rowid IN (8, 9)",
        8,
    ),
    "leaf hash edited": (
        "UPDATE stored_events_merkle_leaves SET hashes = "
        "substr(hashes, 1, 64) || randomblob(32) || substr(hashes, 97) WHERE block = 1",
        19,
    ),
    "node edited": (
        "UPDATE stored_events_merkle_nodes SET hash = randomblob(32) WHERE level = 5",
        None,
    ),
    "checkpoint edited": (
        "UPDATE stored_events_merkle_batches SET checkpoint = "
        "replace(checkpoint, char(10) || '40' || char(10), char(10) || '41' || char(10))",
        None,
    ),
    "frontier edited": (
        "UPDATE stored_events_merkle_batches SET frontier = "
        "substr(frontier, 1, 8) || randomblob(length(frontier) - 8) WHERE size = 40",
        40,
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_verify_names_the_first_bad_position_and_passes_after_restore(
    sqlite_backend: Any, edit: str
) -> None:
    env = sqlite_backend.env()
    app = Ledger(sqlite_backend.settings(env))
    try:
        append_parties(app, 40, "p", batch=40)
        key = app.signing_key().verifier
        assert audit.verify(app, key=key).events == 40
    finally:
        app.close()
    db = Path(env["LEDGER_HOME"]) / "ledger.db"
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    pristine = {f: f.read_bytes() for f in files if f.exists()}
    sql, position = EDITS[edit]
    with sqlite3.connect(db) as conn:
        assert conn.execute(sql).rowcount >= 1
    app = Ledger(sqlite_backend.settings(env))
    try:
        with pytest.raises(audit.VerificationError) as failure:
            audit.verify(app, key=key)
        assert failure.value.position == position, str(failure.value)
        if position is not None:
            assert f"position {position}" in str(failure.value)
    finally:
        app.close()
    for f in files:  # the database file restored as it was
        f.unlink(missing_ok=True)
        if f in pristine:
            f.write_bytes(pristine[f])
    app = Ledger(sqlite_backend.settings(env))
    try:
        assert audit.verify(app, key=key).events == 40
    finally:
        app.close()


@pytest.mark.parametrize("page", [7, 16, 4096])
@pytest.mark.parametrize("edit", list(EDITS))
def test_verify_in_pages_that_cut_batches_names_the_same_position(
    sqlite_backend: Any, edit: str, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same edits on a ledger of 7 batches, verified in pages of rows that cut the
    batches and the stored leaf blocks anywhere (or not at all)."""
    env = sqlite_backend.env()
    app = Ledger(sqlite_backend.settings(env))
    monkeypatch.setattr(audit, "VERIFY_PAGE", page)
    try:
        append_parties(app, 40, "p", batch=6)  # batches ending at 6, 12, ..., 36, 40
        key = app.signing_key().verifier
        report = audit.verify(app, key=key)
        assert (report.events, report.checkpoints) == (40, 7)
        assert report.root == independent_root(export_lines(app))
    finally:
        app.close()
    sql, position = EDITS[edit]
    with sqlite3.connect(Path(env["LEDGER_HOME"]) / "ledger.db") as conn:
        assert conn.execute(sql).rowcount >= 1
    app = Ledger(sqlite_backend.settings(env))
    try:
        with pytest.raises(audit.VerificationError) as failure:
            audit.verify(app, key=key)
        assert failure.value.position == position, str(failure.value)
    finally:
        app.close()


@pytest.mark.parametrize("page", [7, 4096])
def test_a_bad_batch_is_named_before_a_later_bad_event(
    sqlite_backend: Any, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frontier edited at position 12 is the failure named, not the payload edited at
    position 30 (the batches are checked in order, as the pages reach their ends)."""
    env = sqlite_backend.env()
    app = Ledger(sqlite_backend.settings(env))
    monkeypatch.setattr(audit, "VERIFY_PAGE", page)
    try:
        append_parties(app, 40, "p", batch=6)
        key = app.signing_key().verifier
    finally:
        app.close()
    with sqlite3.connect(Path(env["LEDGER_HOME"]) / "ledger.db") as conn:
        assert (
            conn.execute(
                "UPDATE stored_events_merkle_batches SET frontier = substr(frontier, 1, 8) || "
                "randomblob(length(frontier) - 8) WHERE size = 12"
            ).rowcount
            == 1
        )
        payload = EDITS["payload byte changed"][0].replace("rowid = 17", "rowid = 30")
        assert conn.execute(payload).rowcount == 1
    app = Ledger(sqlite_backend.settings(env))
    try:
        with pytest.raises(audit.VerificationError) as failure:
            audit.verify(app, key=key)
        assert failure.value.position == 12, str(failure.value)
    finally:
        app.close()


@pytest.mark.parametrize("edit", ["level", "index", "hash", "deleted", "added"])
def test_every_kind_of_node_edit_is_named(sqlite_backend: Any, edit: str) -> None:
    """The nodes are compared as one joined blob; any difference is then named."""
    env = sqlite_backend.env()
    app = Ledger(sqlite_backend.settings(env))
    try:
        append_parties(app, 70, "p", batch=70)  # nodes: level 4 x4, level 5 x2, level 6 x1
        key = app.signing_key().verifier
    finally:
        app.close()
    table = "stored_events_merkle_nodes"
    sql, words = {
        "level": (f"UPDATE {table} SET level = 9 WHERE level = 6", "level 9, index 0"),
        "index": (f"UPDATE {table} SET idx = 7 WHERE level = 5 AND idx = 1", "index 7"),
        "hash": (
            f"UPDATE {table} SET hash = randomblob(32) WHERE level = 4 AND idx = 2",
            "leaves 32-47",
        ),
        "deleted": (f"DELETE FROM {table} WHERE level = 6", "missing"),
        "added": (f"INSERT INTO {table} VALUES (4, 4, randomblob(32))", "leaves 64-79"),
    }[edit]
    with sqlite3.connect(Path(env["LEDGER_HOME"]) / "ledger.db") as conn:
        assert conn.execute(sql).rowcount == 1
    app = Ledger(sqlite_backend.settings(env))
    try:
        with pytest.raises(audit.VerificationError, match=words):
            audit.verify(app, key=key)
    finally:
        app.close()


@pytest.mark.parametrize("edit", ["payload byte changed", "row deleted", "row inserted"])
def test_verify_catches_edits_on_postgres(postgres_backend: Any, edit: str) -> None:
    app = Ledger(postgres_backend.settings())
    try:
        append_parties(app, 30, "p", batch=30)
        key = app.signing_key().verifier
        tables = app.recorder.tree  # type: ignore[attr-defined]
        with app.recorder.tree_port() as port:  # type: ignore[attr-defined]
            first = port.one(f"SELECT MIN(notification_id) FROM {tables.events}")
        assert first is not None
        p = int(first[0])
        if edit == "row inserted":
            position = _insert_behind_the_back(app, postgres_backend)
        else:
            sql, position = {
                "payload byte changed": (
                    f"UPDATE {tables.events} SET state = overlay(state placing '9' from 20) "
                    f"WHERE notification_id = {p + 6}",
                    p + 6,
                ),
                "row deleted": (
                    f"DELETE FROM {tables.events} WHERE notification_id = {p + 11}",
                    p + 11,
                ),
            }[edit]
            with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
                port.execute(sql)
        with pytest.raises(audit.VerificationError) as failure:
            audit.verify(app, key=key)
        assert failure.value.position == position, str(failure.value)
    finally:
        app.close()


def test_a_row_moved_or_swapped_for_another_keeps_the_count_and_is_still_named(
    backend: Any,
) -> None:
    """The rows are read without their positions only when counts prove the positions
    are the tree's; a row deleted with another added, or a row moved to a new position,
    keeps the count and must still be named by position."""
    app = Ledger(backend.settings())
    try:
        append_parties(app, 12, "p", batch=4)
        key = app.signing_key().verifier
        tables = app.recorder.tree  # type: ignore[attr-defined]
        column = tables.position if backend.name == "postgres" else "rowid"
        with app.recorder.tree_port() as port:  # type: ignore[attr-defined]
            first = port.one(f"SELECT MIN({column}) FROM {tables.events}")
        assert first is not None
        p = int(first[0])
        with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
            port.execute(
                f"UPDATE {tables.events} SET {column} = {p + 99} WHERE {column} = {p + 11}"
            )
        with pytest.raises(audit.VerificationError) as failure:  # same order, same bytes
            audit.verify(app, key=key)
        assert failure.value.position == p + 11, str(failure.value)
        with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
            port.execute(
                f"UPDATE {tables.events} SET {column} = {p + 11} WHERE {column} = {p + 99}"
            )
        assert audit.verify(app, key=key).events == 12
        with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
            port.execute(f"DELETE FROM {tables.events} WHERE {column} = {p + 6}")
        _insert_behind_the_back(app, backend)
        with pytest.raises(audit.VerificationError) as failure:
            audit.verify(app, key=key)
        assert failure.value.position == p + 6, str(failure.value)
    finally:
        app.close()


def test_a_row_moved_into_a_gap_between_batches_is_named(postgres_backend: Any) -> None:
    """PostgreSQL positions skip numbers between batches; the counts are then taken per
    run of adjacent batches, and a row moved into a gap is found by position."""
    app = Ledger(postgres_backend.settings())
    try:
        append_parties(app, 3, "a", batch=3)
        tables = app.recorder.tree  # type: ignore[attr-defined]
        with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
            sequence = port.one(
                f"SELECT pg_get_serial_sequence('{tables.events}', 'notification_id')"
            )
            assert sequence is not None
            for _ in range(5):
                port.one(f"SELECT nextval('{sequence[0]}')")
        append_parties(app, 4, "b", batch=2)
        key = app.signing_key().verifier
        assert audit.verify(app, key=key).events == 7
        positions = [e.position for e in app.log(order="recorded", include_retracted=True)]
        gap = positions[2] + 2
        with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
            port.execute(
                f"UPDATE {tables.events} SET notification_id = {gap} "
                f"WHERE notification_id = {positions[3]}"
            )  # the rows keep their order and bytes: only the positions say it
        with pytest.raises(audit.VerificationError) as failure:
            audit.verify(app, key=key)
        assert failure.value.position == gap, str(failure.value)
    finally:
        app.close()


def test_a_writer_with_another_key_is_refused(backend: Any) -> None:
    """Two homes writing one ledger without LEDGER_SIGNING_KEY: the second is refused
    (its checkpoints would not verify with the key auditors pinned)."""
    from ledger.store.tree import SigningKeyMismatch

    env = backend.env()
    first = Ledger(backend.settings(env))
    try:
        append_parties(first, 2, "a", batch=2)
        if backend.name == "sqlite":  # the same file, from another home
            other_env = {
                **env,
                "LEDGER_HOME": env["LEDGER_HOME"] + "-other",
                "LEDGER_DATABASE_URL": f"sqlite:///{env['LEDGER_HOME']}/ledger.db",
            }
        else:
            other_env = {**env, "LEDGER_HOME": env["LEDGER_HOME"] + "-other"}
        second = Ledger(backend.settings(other_env))
        try:
            with pytest.raises(SigningKeyMismatch, match="LEDGER_SIGNING_KEY"):
                append_parties(second, 1, "b")
            assert second.index.count_events() == 2
            key_file = Path(env["LEDGER_HOME"]) / "signing.key"
            shared = Ledger(backend.settings({**other_env, "LEDGER_SIGNING_KEY": str(key_file)}))
            try:
                append_parties(shared, 1, "c")
                assert audit.verify(shared, key=first.signing_key().verifier).events == 3
            finally:
                shared.close()
        finally:
            second.close()
    finally:
        first.close()


def test_positions_that_skip_numbers_map_to_consecutive_leaves(postgres_backend: Any) -> None:
    """PostgreSQL positions can skip numbers (a rolled-back insert used them); leaf
    indexes do not, and proofs, verify and the leaf index map follow the batch rows."""
    app = Ledger(postgres_backend.settings())
    try:
        append_parties(app, 3, "a", batch=3)
        tables = app.recorder.tree  # type: ignore[attr-defined]
        with app.recorder.tree_port(write=True) as port:  # type: ignore[attr-defined]
            sequence = port.one(
                f"SELECT pg_get_serial_sequence('{tables.events}', 'notification_id')"
            )
            assert sequence is not None
            for _ in range(5):  # what rolled-back inserts leave behind
                port.one(f"SELECT nextval('{sequence[0]}')")
        append_parties(app, 4, "b", batch=2)
        positions = [e.position for e in app.log(order="recorded", include_retracted=True)]
        assert positions[3] - positions[2] == 6  # the gap
        assert audit.leaf_indexes(app, positions) == list(range(7))
        assert audit.leaf_indexes(app, [positions[2] + 1, positions[-1] + 1]) == [None, None]
        key = app.signing_key().verifier
        assert audit.verify(app, key=key).events == 7
        sizes = [size for size, _ in audit.signed_checkpoints(app)]
        assert sizes == [3, 5, 7]
        assert [s for s, _ in audit.signed_checkpoints(app, after_size=5)] == [7]
        for entry in app.log(order="recorded", include_retracted=True):
            audit.verify_proof(audit.prove(app, entry.event.event_id, key=key), key)
    finally:
        app.close()


def test_leaf_indexes_on_sqlite(sqlite_backend: Any) -> None:
    app = Ledger(sqlite_backend.settings())
    try:
        append_parties(app, 5, "a", batch=2)
        assert audit.leaf_indexes(app, [1, 2, 5, 6]) == [0, 1, 4, None]
        assert audit.leaf_indexes(app, []) == []
    finally:
        app.close()
