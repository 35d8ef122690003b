"""The view store of a ledger: the view tables on its own database (SQLite or
PostgreSQL), one recorder per application."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from ledger.projections.store import ViewStore

if TYPE_CHECKING:
    from ledger.app import Ledger

_VIEW_STORES: weakref.WeakKeyDictionary[Ledger, ViewStore] = weakref.WeakKeyDictionary()


def view_store(app: Ledger) -> ViewStore:
    """The view recorder on the ledger's own database (tables created if missing).

    One per ledger application, so the tables are checked once.
    """
    existing = _VIEW_STORES.get(app)
    if existing is not None:
        return existing
    if app.settings.backend == "sqlite":
        from ledger.projections.store import SQLiteViewRecorder

        store: Any = app.factory.tracking_recorder(SQLiteViewRecorder)
    else:
        from ledger.projections.store_postgres import PostgresViewRecorder

        store = app.factory.tracking_recorder(PostgresViewRecorder)  # type: ignore[arg-type]
    assert isinstance(store, ViewStore)
    _VIEW_STORES[app] = store
    return store
