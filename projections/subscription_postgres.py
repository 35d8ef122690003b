"""The library's LISTEN/NOTIFY subscription with ``next_batch()`` (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import ApplicationRecorder, Subscription
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresSubscription

from ledger.store.postgres import LedgerPostgresRecorder
from projections.subscription import SELECT_LIMIT, BatchingMixin


class BatchingPostgresSubscription(BatchingMixin, PostgresSubscription):
    def __init__(
        self,
        recorder: PostgresApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ):
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._select_limit = SELECT_LIMIT


class BatchingPostgresRecorder(LedgerPostgresRecorder):
    """The ledger's PostgreSQL recorder whose ``subscribe()`` batches."""

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return BatchingPostgresSubscription(self, gt=gt, topics=topics)
