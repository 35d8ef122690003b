"""Subscriptions to the store's notification log, for the projector (and anyone else).

The eventsourcing library subscribes to PostgreSQL with LISTEN/NOTIFY
(``PostgresSubscription``) but its SQLite recorder has no ``subscribe()``.  This module
extends it by polling: ``PollingSubscription`` is the library's ``ListenNotifySubscription``
woken by a timer instead of a notification, and ``PollingSQLiteRecorder`` is the ledger's
SQLite recorder with ``subscribe()`` returning one.  Plug it in with the library's factory
setting ``APPLICATION_RECORDER_TOPIC`` (``subscribing_env(settings)`` gives it).

Both subscriptions add ``next_batch()``: everything already fetched, up to a limit, so a
consumer can apply and write many events per transaction.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    ApplicationRecorder,
    ListenNotifySubscription,
    Notification,
    ShutDown,  # type: ignore[attr-defined]
    Subscription,
)
from eventsourcing.utils import get_topic

from ledger.config import Settings
from ledger.store.sqlite import LedgerSQLiteRecorder

POLL_INTERVAL = 0.2
SELECT_LIMIT = 5000


class BatchingMixin:
    """``next_batch()`` over a ``ListenNotifySubscription``'s queue of fetched lists."""

    _notifications: Sequence[Notification]
    _notifications_index: int
    _notifications_queue: Any
    _has_been_stopped: bool
    _thread_error: BaseException | None

    def next_batch(self, timeout: float, max_items: int = 20_000) -> list[Notification]:
        """Notifications fetched so far (waiting up to ``timeout`` for the first one).

        Returns ``[]`` on timeout; raises ``StopIteration`` once the subscription stopped.
        """
        out: list[Notification] = list(self._notifications[self._notifications_index :])
        self._notifications_index = len(self._notifications)
        block = not out
        while len(out) < max_items:
            try:
                fetched = self._notifications_queue.get(block=block, timeout=timeout)
            except queue.Empty:
                break
            except ShutDown:
                break
            self._notifications_queue.task_done()
            out.extend(fetched)
            block = False
        if self._has_been_stopped and not out:
            if self._thread_error is not None:
                raise self._thread_error
            raise StopIteration
        return out


class PollingSubscription(BatchingMixin, ListenNotifySubscription[ApplicationRecorder]):
    """The library's pull loop, woken every ``interval`` seconds to look for new events."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
        interval: float = POLL_INTERVAL,
    ):
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._select_limit = SELECT_LIMIT
        self._interval = interval
        self._timer = threading.Thread(target=self._tick, name="views-poll", daemon=True)
        self._timer.start()

    def _tick(self) -> None:
        stopped = threading.Event()
        while not self._has_been_stopped:
            stopped.wait(self._interval)
            self._has_been_notified.set()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._timer.join(timeout=5)


class PollingSQLiteRecorder(LedgerSQLiteRecorder):
    """The ledger's SQLite recorder with a polling ``subscribe()``."""

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PollingSubscription(self, gt=gt, topics=topics)


def postgres_recorder_topic() -> str:
    from ledger.projections.subscription_postgres import BatchingPostgresRecorder

    return get_topic(BatchingPostgresRecorder)


def subscribing_env(settings: Settings) -> dict[str, str]:
    """Factory settings giving the ledger a recorder whose ``subscribe()`` batches."""
    if settings.backend == "sqlite":
        return {"APPLICATION_RECORDER_TOPIC": get_topic(PollingSQLiteRecorder)}
    return {"APPLICATION_RECORDER_TOPIC": postgres_recorder_topic()}
