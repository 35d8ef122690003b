"""Dropping the views (``ledger project --rebuild``) frees their pages without zeroing
them first, even where SQLite is built to zero what it frees (Debian's build: at 1M events
the zeroing was 4.5 of a rebuild's 49 s), and leaves the connection's own settings as
they were: it is the ledger's, which keeps zeroing what the events' tables free."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.projections.runner import catch_up, new_projector
from ledger.projections.store import SQLiteViewRecorder
from ledger.projections.stores import view_store
from ledger.store.sqlite import LedgerSQLiteConnectionPool
from tests.conftest import Backend
from tests.integration.test_projector import assert_views_exact, record_history


def _freelist_leaves(db: Path) -> list[bytes]:
    """The free pages of a checkpointed SQLite file (the leaves of its freelist trunks)."""
    data = db.read_bytes()
    page_size = struct.unpack(">H", data[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    leaves: list[bytes] = []
    trunk = struct.unpack(">I", data[32:36])[0]
    while trunk:
        at = (trunk - 1) * page_size
        trunk, count = struct.unpack(">II", data[at : at + 8])
        for i in range(count):
            (leaf,) = struct.unpack(">I", data[at + 8 + 4 * i : at + 12 + 4 * i])
            leaves.append(data[(leaf - 1) * page_size : leaf * page_size])
    return leaves


def test_a_reset_frees_the_views_pages_without_zeroing_them(
    sqlite_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = LedgerSQLiteConnectionPool._create_connection

    def zeroing(self: LedgerSQLiteConnectionPool) -> object:
        connection = created(self)
        with connection.cursor() as c:
            c.execute("PRAGMA secure_delete=ON")
        return connection

    monkeypatch.setattr(LedgerSQLiteConnectionPool, "_create_connection", zeroing)
    app = Ledger(sqlite_backend.settings())
    try:
        record_history(app, batches=4, per_batch=300)
        store = view_store(app)
        assert isinstance(store, SQLiteViewRecorder)
        catch_up(app, new_projector(app, store))
        store.reset()
        with store.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.execute("PRAGMA database_list")
            db = Path(c.fetchone()[2])
            c.execute("PRAGMA secure_delete")
            assert c.fetchone()[0] == 1  # the connection's own setting, as it was
            c.execute("PRAGMA synchronous")
            assert c.fetchone()[0] == 2  # FULL, the ledger's
        leaves = _freelist_leaves(db)
        assert len(leaves) >= 20  # the dropped views' pages
        zeroed = sum(1 for page in leaves if not page.strip(b"\x00"))
        assert zeroed < len(leaves) // 2, (zeroed, len(leaves))
        catch_up(app, new_projector(app, store))  # the free pages are reused as before
        assert_views_exact(app)
    finally:
        app.close()
