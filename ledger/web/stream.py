"""``/api/stream``: new events as Server-Sent Events, for browsers and services without a
NATS client.

It reads the store's notification log (the relay's outbox), so it needs no NATS server
and gives the same order and positions as the stream: each message's ``id`` is the
event's position and its ``data`` the event's JSON exactly as stored and published.  A
client that reconnects sends ``Last-Event-ID`` (browsers' ``EventSource`` does it by
itself) and resumes with the next position.  Start options as ``ledger watch``'s: new
events (default), ``all=true``, ``from_position=N`` or ``since=TIME``; ``filter`` as ``--filter``
(repeatable; an event matching any is sent); ``limit`` closes after that many.  A comment
line every 15 s keeps idle connections open through proxies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from litestar import Request, get
from litestar.exceptions import HTTPException
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ledger.errors import InputError
from ledger.web import params as p
from ledger.web.server import WebState, state_of

KEEPALIVE = 15.0
BATCH = 500


class TooManyStreams(HTTPException):
    status_code = 503


@get("/api/stream", summary="New events, live (SSE)", tags=["stream"])
async def stream(
    request: Request[Any, Any, Any],
    filter: Annotated[
        list[str] | None,
        QueryParameter(
            description="As `ledger watch --filter`: KIND:ID, KIND, TYPE, TYPE@KIND:ID or a "
            "subject (repeatable)"
        ),
    ] = None,
    all: Annotated[str | None, QueryParameter(description="true: from the first event")] = None,
    from_position: Annotated[
        str | None, QueryParameter(description="From this position on (inclusive)")
    ] = None,
    since: Annotated[
        str | None,
        QueryParameter(
            description="From the first event recorded at or after this time (a bare date: "
            "its start, UTC)"
        ),
    ] = None,
    limit: Annotated[str | None, QueryParameter(description="Close after this many events")] = None,
) -> ServerSentEvent:
    """Server-Sent Events of the events stored from now on (or from a position); `id` is
    the position, so `Last-Event-ID` resumes after it."""
    import anyio

    from ledger.subjects import SubjectError, parse_filters

    state = state_of(request)
    prefix = state.app.settings.subject_prefix
    texts = p.texts("filter", filter) or []
    try:
        subjects = parse_filters(texts, prefix)
    except SubjectError as exc:
        raise InputError(str(exc), field="filter") from None
    last_event_id = request.headers.get("last-event-id")
    starts = [
        name
        for name, given in (
            ("all", p.flag("all", all)),
            ("from_position", from_position not in (None, "")),
            ("since", since not in (None, "")),
        )
        if given
    ]
    if len(starts) > 1:
        raise InputError(f"choose one of {', '.join(starts)}", field=starts[1])
    count = p.integer("limit", limit, low=1, high=2**31)
    if last_event_id is not None:
        after = p.integer("Last-Event-ID", last_event_id.strip(), low=0, high=2**62) or 0
    elif p.flag("all", all):
        after = 0
    elif from_position not in (None, ""):
        after = max(0, (p.integer("from_position", from_position, low=0, high=2**62) or 0) - 1)
    elif since not in (None, ""):
        start = _since(p.text("since", since))
        after = await anyio.to_thread.run_sync(_recorded_before, state, start)
    else:
        after = await anyio.to_thread.run_sync(state.app.head)
    if not state.streams.acquire(blocking=False):
        raise TooManyStreams(detail="too many open streams; try again later")
    return ServerSentEvent(_events(state, request, after, subjects, prefix, count))


async def _events(
    state: WebState,
    request: Request[Any, Any, Any],
    after: int,
    subjects: Sequence[str],
    prefix: str,
    limit: int | None,
) -> AsyncIterator[ServerSentEventMessage]:
    import anyio

    from ledger.subjects import subject_covers

    sent = 0
    try:
        last_sent = time.monotonic()
        while True:
            batch = await anyio.to_thread.run_sync(_read, state, after)
            for position, subject, payload in batch:
                after = position
                if subjects and not any(subject_covers(s, subject) for s in subjects):
                    continue
                yield ServerSentEventMessage(data=payload.decode(), id=str(position))
                sent += 1
                last_sent = time.monotonic()
                if limit is not None and sent >= limit:
                    return
            if len(batch) == BATCH:
                continue
            if time.monotonic() - last_sent >= KEEPALIVE:
                yield ServerSentEventMessage(comment="keep-alive")
                last_sent = time.monotonic()
            await anyio.sleep(state.config.stream_poll)
    finally:
        state.streams.release()


def _since(text: str) -> Any:
    """As ``ledger watch --since``: a bare date is the start of that day UTC."""
    import datetime as dt

    from ledger.times import UTC, TimeParseError, is_bare_date, parse_date, parse_query_time

    try:
        if is_bare_date(text.strip()):
            return dt.datetime.combine(parse_date(text.strip()), dt.time(), UTC)
        return parse_query_time(text)
    except TimeParseError as exc:
        raise InputError(str(exc), field="since") from None


def _recorded_before(state: WebState, start: Any) -> int:
    """The position just before the first event recorded at or after ``start``: a binary
    search over positions (recorded times never decrease along them)."""
    import datetime as dt

    from ledger.relay import outgoing_message
    from ledger.stream import RECORDED_AT

    app = state.app
    prefix = app.settings.subject_prefix
    lo, hi = 1, app.head() + 1  # the answer's position is in [lo, hi]; hi: none is
    while lo < hi:
        mid = (lo + hi) // 2
        found = app.recorder.select_notifications(start=mid, limit=1)
        if not found:
            hi = mid
            continue
        n = found[0]
        headers = outgoing_message(prefix, n, app.msgspec_mapper.payload(n.state)).headers
        if dt.datetime.fromisoformat(headers[RECORDED_AT]) >= start:
            hi = mid
        else:
            lo = n.id + 1
    return lo - 1


def _read(state: WebState, after: int) -> list[tuple[int, str, bytes]]:
    """(position, subject, payload) of the events stored after ``after``."""
    from ledger.relay import outgoing_message

    app = state.app
    prefix = app.settings.subject_prefix
    payload_of = app.msgspec_mapper.payload
    out = []
    for n in app.recorder.select_notifications(start=after, limit=BATCH, inclusive_of_start=False):
        message = outgoing_message(prefix, n, payload_of(n.state))
        out.append((n.id, message.subject, message.payload))
    return out
