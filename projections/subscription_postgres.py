"""The library's LISTEN/NOTIFY subscription with ``next_batch()`` (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import ApplicationRecorder, Subscription
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresSubscription
from psycopg.sql import SQL, Identifier

from ledger.projections.subscription import SELECT_LIMIT, BatchingMixin
from ledger.store.postgres import LedgerPostgresRecorder


class BatchingPostgresSubscription(BatchingMixin, PostgresSubscription):
    def __init__(
        self,
        recorder: PostgresApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ):
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._select_limit = SELECT_LIMIT

    def _listen(self) -> None:
        """LISTEN, then wake the pull thread once, then on every NOTIFY.

        The library's pull thread reads what is stored as soon as the subscription
        starts, before this thread has run LISTEN: an event committed in between sent
        its NOTIFY to nobody and waited for the next event's.  One more read once LISTEN
        is in place closes that window.
        """
        try:
            with self._recorder.datastore.get_connection() as conn:
                conn.execute(SQL("LISTEN {0}").format(Identifier(self._recorder.channel_name)))
                self._has_been_notified.set()
                while not self._has_been_stopped and not self._thread_error:
                    # A short wait, so that a stopped subscription is noticed.
                    for _ in conn.notifies(timeout=0.1, stop_after=1):
                        self._has_been_notified.set()
        except BaseException as error:
            if self._thread_error is None:
                self._thread_error = error
            self.stop()


class BatchingPostgresRecorder(LedgerPostgresRecorder):
    """The ledger's PostgreSQL recorder whose ``subscribe()`` batches."""

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return BatchingPostgresSubscription(self, gt=gt, topics=topics)
