"""Hints that another process has committed events, so a follower reads now, not at its
next poll.

A hint is only a hint: the store stays the truth, a follower still reads the log to see
what is new, and polling remains the fallback (a missed or forged hint costs one read or
one poll interval, never an event).

- **SQLite**: the kernel's file notifications (Linux inotify, through ``asyncinotify``)
  on the database's directory.  After each commit of events the ledger's write path
  opens and closes ``<db>-commit`` (``mark_commit``: no data, no fsync), so the hint
  comes when the events are visible.  Until a follower has seen that marker it also
  takes writes to the write-ahead log (``<db>-wal``) as hints, which catch any writer
  but come before the commit is visible (its last write precedes the fsync and the
  WAL-index update), so a follower woken by one reads again after short pauses.
- **PostgreSQL**: ``LISTEN`` on the channel the write path already ``NOTIFY``s in the
  same transaction as the events (delivered at commit), on a connection of its own.

Elsewhere (another OS, an in-memory database) there is no watcher, and followers poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.app import Ledger

log = logging.getLogger("ledger.wake")

COMMIT_MARKER_SUFFIX = "-commit"
"""``<database><suffix>``: the empty file every commit of events opens and closes."""

LISTEN_CHECK_SECONDS = 0.5
"""How often the PostgreSQL listener thread looks whether it should stop."""


async def watch_appends(
    app: Ledger, wake: asyncio.Event, *, early: asyncio.Event | None = None
) -> None:
    """Set ``wake`` soon after each commit to ``app``'s store, until cancelled; also set
    ``early`` (if given) when the hint may come before its commit is visible (a write to
    SQLite's write-ahead log by a writer that does not mark its commits), so the follower
    knows to read again shortly if it finds nothing.

    Returns at once (the caller polls) when this store and platform give no hint.
    """
    settings = app.settings
    if settings.backend == "sqlite":
        await _watch_sqlite(settings.sqlite_path, wake, early)
    else:
        await _listen_postgres(app, wake)


async def _watch_sqlite(database: Path, wake: asyncio.Event, early: asyncio.Event | None) -> None:
    try:
        from asyncinotify import Inotify, Mask
    except (ImportError, OSError, AttributeError) as exc:  # not Linux: no inotify in libc
        log.debug("no file notifications (%s); polling", exc)
        return
    if str(database) == ":memory:" or not database.parent.is_dir():
        return
    names = {database.name, database.name + "-wal"}
    marker = database.name + COMMIT_MARKER_SUFFIX
    marked = False
    with Inotify() as inotify:
        # The directory, not the files: the WAL file is created and removed by SQLite.
        mask = Mask.MODIFY | Mask.CREATE | Mask.MOVED_TO | Mask.CLOSE_WRITE
        inotify.add_watch(database.parent, mask)
        async for event in inotify:
            if event.name is None:
                continue
            name = event.name.name
            if name == marker:
                # Writers mark their commits: the WAL's writes, which come before the
                # commit is visible, would only wake the follower too early.
                marked = True
                if event.mask & Mask.CLOSE_WRITE:
                    wake.set()
            elif name in names and not marked and not event.mask & Mask.CLOSE_WRITE:
                if early is not None:
                    early.set()
                wake.set()


def mark_commit(database: str) -> None:
    """Tell followers on this machine that events were just committed to ``database``:
    open and close its empty marker file (a hint: a failure is ignored, they poll)."""
    try:
        os.close(os.open(database + COMMIT_MARKER_SUFFIX, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError as exc:
        log.debug("could not mark a commit (%s); followers will poll", exc)


async def _listen_postgres(app: Ledger, wake: asyncio.Event) -> None:
    from psycopg.sql import SQL, Identifier

    recorder = app.recorder
    channel = getattr(recorder, "channel_name", None)
    datastore = getattr(recorder, "datastore", None)
    if channel is None or datastore is None:
        return
    loop = asyncio.get_running_loop()
    stopping = threading.Event()

    def listen() -> None:
        with datastore.get_connection() as conn:
            conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
            # A commit between the follower's last read and this LISTEN notified nobody.
            _call_soon(loop, wake.set)
            while not stopping.is_set():
                for _ in conn.notifies(timeout=LISTEN_CHECK_SECONDS):
                    _call_soon(loop, wake.set)

    thread = asyncio.create_task(asyncio.to_thread(listen))
    try:
        await asyncio.shield(thread)
    finally:
        stopping.set()
        with contextlib.suppress(BaseException):
            await thread


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed
        loop.call_soon_threadsafe(callback)
