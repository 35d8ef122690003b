"""Which events an observer at (as_of, known_at) sees.  Pure (no I/O).

Recorded at or before ``known_at``, effective at or before ``as_of``, and not retracted
by a retraction recorded at or before ``known_at``; ordered by effective time (ties:
recorded order).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from uuid import UUID

from ledger import events as ev


def retracted_ids(events: Iterable[ev.Event], known_at: dt.datetime | None) -> set[UUID]:
    return {
        e.retracted_event_id
        for e in events
        if type(e) is ev.EventRetracted and (known_at is None or e.recorded_at <= known_at)
    }


def visible(
    events: Sequence[ev.Event],
    as_of: dt.datetime | None = None,
    known_at: dt.datetime | None = None,
) -> list[ev.Event]:
    """The facts (not retractions) an observer at (as_of, known_at) sees, effective order."""
    gone = retracted_ids(events, known_at)
    out = [
        e
        for e in events
        if (known_at is None or e.recorded_at <= known_at)
        and (as_of is None or e.effective_at <= as_of)
        and not isinstance(e, ev.EventRetracted)
    ]
    if gone:
        out = [e for e in out if e.event_id not in gone]
    out.sort(key=_effective_key)  # stable: equal effective times keep recorded order
    return out


def _effective_key(e: ev.Event) -> dt.datetime:
    return e.effective_at
