"""Where the projector keeps the entities it evicts: a private temporary SQLite file.

An evicted entity used to come back by replaying its events from the store, which made a
small cache budget slow (active licences evicted and replayed batch after batch).  Kept
here, pickled as it was evicted (fold, record, last rows), it comes back in one read, so
the budget can be small enough to be reached by a small ledger too and a rebuild's memory
stops growing with the ledger.

The file is the projector's alone and lives as long as its process: SQLite deletes a
database opened with an empty name when its connection closes.  Its size is the evicted
entities' (a few KB each); its page cache is ``CACHE_KIB``.  An entity is spilled only once
its rows are written, and the spill is emptied whenever the projector starts over from
what is stored (``Projector._reload``), so what comes back from it is exactly what an
entity reloaded from the store would be, without the replay.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

CACHE_KIB = 1024
"""The spill's SQLite page cache: it is read and written in whole batches, by key."""


class EntitySpill:
    """Evicted entities by key (see the module docstring)."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self.spilled = 0
        """Entities written here since the start (each eviction counts)."""

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            # The projector may be created in one thread and run in another, never both.
            db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            db.execute("CREATE TABLE spill (key TEXT PRIMARY KEY, entity BLOB) WITHOUT ROWID")
            self._db = db
        return self._db

    def put(self, entities: Sequence[Any]) -> None:
        """Keep these entities (objects with a ``key``), replacing any earlier copy."""
        if not entities:
            return
        dumps, protocol = pickle.dumps, pickle.HIGHEST_PROTOCOL
        self._open().executemany(
            "INSERT OR REPLACE INTO spill VALUES (?, ?)",
            [(e.key, dumps(e, protocol)) for e in entities],
        )
        self.spilled += len(entities)

    def take(self, keys: Iterable[str]) -> dict[str, Any]:
        """The entities kept under these keys (those there are).  A copy stays behind:
        an entity leaves the cache again only by eviction, which replaces it."""
        db = self._db
        if db is None:
            return {}
        wanted = list(keys)
        if not wanted:
            return {}
        found: dict[str, Any] = {}
        loads = pickle.loads
        # One statement whatever the number of keys (a JSON array): an ``IN (?, ?, ...)``
        # list is a new statement for each length, and the connection's statement cache
        # kept up to 128 of them, compiled, ~8 MiB by the end of a 1M-event rebuild
        # (3 Dec 2026, freed when the spill closed).
        rows = db.execute(
            "SELECT key, entity FROM spill WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        )
        for key, blob in rows:
            found[key] = loads(blob)
        return found

    def clear(self) -> None:
        """Forget every entity (the projector starts over from what is stored)."""
        if self._db is not None:
            self._db.close()
            self._db = None
