"""Following the store's notification log: ``StoreFollower`` hands out what was
committed after a position, in batches, as soon as the store hints at a commit.

The ledger's own small interface, on the public ``EventIndex.select_payloads`` read and
the commit hints of ``ledger.store.wake`` (file notifications on SQLite, LISTEN on
PostgreSQL), with polling as the fallback.  It replaces subclasses of the library's
``ListenNotifySubscription`` that reached into its private queue, limits and LISTEN
thread (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from ledger.app import Ledger

POLL_SECONDS = 0.2
"""Fallback: the log is read this often when no hint comes."""
SETTLE_FIRST_SECONDS = 0.001
SETTLE_SECONDS = 0.1
"""After a hint the log is read again at doubling pauses from the first, until this
long has passed: on SQLite the hint (a write to the WAL) can precede its commit's
visibility."""

Row = tuple[int, str, bytes | None]


class StoreFollower:
    """Batches of ``(position, topic, stored state)`` committed after ``after``.

    Use as a context manager (it runs a hint watcher in a thread of its own); then call
    ``next_batch`` repeatedly.  Positions only increase.  ``skip_topics`` rows carry no
    state (counted, not fetched), as in ``select_payloads``.
    """

    def __init__(
        self,
        app: Ledger,
        after: int,
        *,
        skip_topics: Sequence[str] = (),
        poll_seconds: float = POLL_SECONDS,
        hints: bool = True,
    ):
        self.app = app
        self.position = after
        self.skip_topics = tuple(skip_topics)
        self.poll_seconds = poll_seconds
        self.hints = hints
        self._hinted = threading.Event()
        self._settle: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    def __enter__(self) -> StoreFollower:
        if self.hints:
            started = threading.Event()
            self._watcher = threading.Thread(
                target=self._watch, args=(started,), name="store-hints", daemon=True
            )
            self._watcher.start()
            started.wait(5)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(stopping.set)
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def _watch(self, started: threading.Event) -> None:
        from ledger.store.wake import watch_appends

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = stopping = asyncio.Event()
            hinted = asyncio.Event()
            started.set()

            async def relay_hints() -> None:
                while True:
                    await hinted.wait()
                    hinted.clear()
                    self._hinted.set()

            forward = asyncio.create_task(relay_hints())
            watch = asyncio.create_task(watch_appends(self.app, hinted))
            await stopping.wait()
            for task in (forward, watch):
                task.cancel()
            await asyncio.gather(forward, watch, return_exceptions=True)

        try:
            asyncio.run(main())
        finally:
            started.set()

    def read(self, limit: int) -> list[Row]:
        """What is committed after the position now (up to ``limit`` rows)."""
        rows = self.app.index.select_payloads(self.position, limit, skip_topics=self.skip_topics)
        if rows:
            self.position = rows[-1][0]
        return rows

    def next_batch(self, timeout: float, max_items: int = 20_000) -> list[Row]:
        """What is committed after the position, waiting up to ``timeout`` seconds for
        something (``[]`` if nothing came)."""
        deadline = time.monotonic() + timeout
        while True:
            self._hinted.clear()  # a commit during the read sets it again
            rows = self.read(max_items)
            if rows:
                return rows
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            pause = min(left, self.poll_seconds)
            if self._settle is not None:
                pause = min(pause, self._settle)
                self._settle = self._settle * 2 if self._settle < SETTLE_SECONDS else None
            if self._hinted.wait(pause):
                self._settle = SETTLE_FIRST_SECONDS
