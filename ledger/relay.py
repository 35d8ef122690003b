"""The relay: the store's notification log, published to NATS JetStream exactly once, in order.

The notification log is the outbox.  The relay reads it in position order in batches and
publishes each event (payload = the stored JSON bytes, untouched) with
``Nats-Msg-Id`` = event id and the ``Ledger-*`` headers of ``ledger.stream``.

Exactly once, in order, whatever happens to NATS or the relay:

- **The stream is always a gap-free prefix of the log.**  Every publish carries an
  expectation: the first one after a (re)synchronisation ``Nats-Expected-Last-Sequence``
  = the stream's last sequence as just read, each following one
  ``Nats-Expected-Last-Msg-Id`` = the previous event's id.  If any publish in the
  pipelined window is lost or rejected, every later one is rejected too, so a hole cannot
  form.  The relay only ever publishes events after the stream's head, so it never
  legitimately re-publishes a stored event; an event stored twice would need both a
  stale head and the duplicate window to have passed, and the expected last sequence
  (checked before de-duplication) rules that out.
- **A duplicate ack is a failure.**  JetStream (2.15) de-duplicates on ``Nats-Msg-Id``
  *before* checking ``Nats-Expected-Last-Msg-Id``: a publish answered ``duplicate`` stored
  nothing, and may be an event that was purged from the stream within the duplicate window
  (then every later publish in the window is a "duplicate" too).  So a duplicate ack does
  not advance the published position: the relay resynchronises with the stream's head
  (and keeps doing so, refusing or retrying, until the window has passed).
- **Restart = resynchronise.**  On start and after any failure (a rejected publish, a
  missing ack, a lost connection) the relay reads the stream's last message and resumes
  after ``max(tracked position, Ledger-Position of that message)``.  Tracking (the
  eventsourcing library's tracking recorder, ``relay:{stream}``) is written from
  acknowledged positions at most every ``TRACK_EVERY_SECONDS`` while publishing and when
  stopping, so it can lag; the stream itself is the truth.
- **Never past a gap.**  If the stream ends before the tracked position (it was recreated
  or purged, or lost its tail with a node's disk), publishing on would leave a hole for
  good.  The relay refuses (``RelayError``, naming the missing positions) until the
  operator chooses: ``republish_from=head + 1`` refills the missing positions,
  ``republish_from=tracked + 1`` continues after the gap knowingly.
- **Pipelined.**  Publishes are fire-and-forget with a reply subject per message
  (``{inbox}.{epoch}.{position}``); acks are counted by one subscription, with at most
  ``max_in_flight`` unacknowledged.  The next batch is read from the store while the
  current one is being published.  Acks from before a resynchronisation (an older epoch)
  are ignored.  Caught up, the relay does not wait for the acks of what it just
  published before waiting for the next commit (they come back beside the next
  publishes); only a stop or ``--once`` drains them.

Once caught up, the relay waits for the next commit: a hint from the store
(``ledger.store.wake``: file notifications on SQLite, LISTEN on PostgreSQL) wakes it at
once, and it polls every ``poll_interval`` as the fallback.  It reconnects with exponential
backoff (capped at ``max_backoff``) while NATS is away, and stops cleanly when ``stop`` is
set: it drains outstanding acks and records its position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ledger import stream as st
from ledger.bus_verify import (
    LEAF,
    LEAVES,
    TREE_SIZE,
    checkpoint_messages,
    checkpoint_stream,
    checkpoint_subject,
    ensure_checkpoint_stream,
    leaf_indexes,
)
from ledger.config import redact_url
from ledger.subjects import check_prefix, entity_token, header_text

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification, TrackingRecorder
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    from ledger.app import Ledger

log = logging.getLogger("ledger.relay")

EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
CHECKPOINTS_IN_FLIGHT = 256
"""Checkpoint-stream messages published and not yet acknowledged, at most."""


class EventHeaderFields(msgspec.Struct):
    """The envelope fields the headers need; msgspec skips the rest of the payload."""

    event_id: str
    entity_kind: str
    entity_id: str
    effective_at: str
    recorded_at: str
    schema_version: int = 1


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_fields_decoder = msgspec.json.Decoder(EventHeaderFields)
_ack_decoder = msgspec.json.Decoder(_PubAck)


class RelayError(RuntimeError):
    """The relay could not make progress (and was told not to keep trying)."""


TRACK_EVERY_SECONDS = 0.5
"""While publishing, the tracked position is written at most this often: woken on every
commit, the relay publishes batches of one event, and a durable tracking write (an fsync
on SQLite) per event competed with the appends themselves.  Tracking may lag; the
stream's last message is the truth on restart."""
COMMIT_SETTLE_FIRST_SECONDS = 0.001
COMMIT_SETTLE_SECONDS = 0.1
"""After a commit hint the log is read again, at doubling intervals from the first,
until this long has passed: the commit may still be finishing when its hint arrives."""


def gap_message(stream: str, head: int, tracked: int) -> str:
    """Why the relay refuses to publish after positions missing from the stream."""
    missing = f"{head + 1}" if head + 1 == tracked else f"{head + 1}-{tracked}"
    return (
        f"stream {stream} ends at position {head} but positions up to {tracked} were "
        f"published: position(s) {missing} are no longer in the stream (it was recreated, "
        f"purged or lost its tail). Not publishing past the gap. Run `ledger relay "
        f"--republish-from {head + 1}` to refill them, or `ledger relay --republish-from "
        f"{tracked + 1}` to continue after the gap knowingly"
    )


def head_mismatch(app: Ledger, stream: str, head: st.StreamHead) -> str | None:
    """Why the stream's last message is not the store's event at the position it claims
    (None when it is: same event id and the same bytes, i.e. the same RFC 9162 leaf hash).

    The relay checks this before resuming after the stream's head, and ``ledger status``
    before reporting a lag: the stream's word for where it is must not be taken, since
    whoever can publish to it (or edit its files) could claim any position.
    """
    from ledger.merkle import leaf_hash

    if head.problem is not None:
        return f"the last message of stream {stream}, {head.problem}"
    if head.position == 0:
        return None
    found = app.recorder.select_notifications(start=head.position, limit=1)
    claim = (
        f"the last ledger message of stream {stream} (seq {head.seq}) claims position "
        f"{head.position}, event {head.event_id}"
    )
    if not found or found[0].id != head.position:
        return f"{claim}, but the store has no event at that position (its head is {app.head()})"
    payload = app.msgspec_mapper.payload(found[0].state)
    stored_id = _fields_decoder.decode(payload).event_id
    if stored_id != head.event_id:
        return f"{claim}, but the store's event there is {stored_id}"
    if leaf_hash(payload) != leaf_hash(head.data):
        return (
            f"{claim}, but its payload differs from the stored event's (leaf hash "
            f"{leaf_hash(head.data).hex()[:16]}… instead of {leaf_hash(payload).hex()[:16]}…)"
        )
    return None


def forged_head_message(stream: str, problem: str) -> str:
    return (
        f"{problem}. It was not published by this ledger's relay (forged, edited, or from "
        f"another ledger): not resuming after it. Find out who wrote it, remove it and "
        f"whatever followed it (`nats stream rmm {stream} SEQ`), then run the relay again"
    )


class EventTooLarge(RelayError):
    """An event (with its headers) exceeds the NATS server's ``max_payload``."""

    def __init__(self, event_id: str, position: int, size: int, max_payload: int):
        super().__init__(
            f"event {event_id} (position {position}) is {size} bytes with its headers, over "
            f"the NATS server's max_payload of {max_payload} bytes; raise max_payload in the "
            "server configuration and run the relay again"
        )
        self.event_id = event_id
        self.position = position


def header_block_size(headers: dict[str, str]) -> int:
    """Bytes of the ``NATS/1.0`` header block nats-py sends for ``headers``."""
    return len("NATS/1.0\r\n\r\n") + sum(
        len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items()
    )


class _Resync(Exception):
    """Something went wrong in the pipeline: resynchronise with the stream."""

    def __init__(self, reason: str, *, reconnect: bool = False, window: bool = False):
        super().__init__(reason)
        self.reconnect = reconnect
        self.window = window
        """Refused as a duplicate: only the stream's duplicate window passing ends it."""


@dataclass
class RelayStats:
    published: int = 0
    """Events acknowledged by JetStream during this run."""
    position: int = 0
    """The newest position known to be in the stream."""
    resyncs: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "position": self.position,
            "resyncs": self.resyncs,
            "failures": self.failures[-10:],
            "seconds": round(self.seconds, 3),
        }


def tracking_name(stream: str) -> str:
    return f"relay:{stream}"


def open_tracking(app: Ledger, attempts: int = 6) -> TrackingRecorder:
    """The library's tracking recorder on the ledger's database.

    Creating it creates its table if missing; on PostgreSQL two processes doing that at
    once (a relay starting while ``ledger status`` runs) can collide on the catalog, so
    the creation is retried.
    """
    from eventsourcing.persistence import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return app.factory.tracking_recorder()
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 * 2**attempt * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # pragma: no cover


def iter_notifications(
    app: Ledger, after: int = 0, *, batch_size: int = 5000
) -> Iterator[Notification]:
    """The notification log after position ``after``, in order, read in batches."""
    while True:
        batch = app.recorder.select_notifications(
            start=after, limit=batch_size, inclusive_of_start=False
        )
        if not batch:
            return
        yield from batch
        after = batch[-1].id


def read_tracked_position(app: Ledger, stream: str) -> int:
    """The relay's tracked position for ``stream``, without creating any table.

    For readers such as ``ledger status``: no DDL (and no catalog lock on PostgreSQL) just
    to read a number; a missing tracking table means nothing was tracked yet (0).
    """
    return read_tracking(app, tracking_name(stream))


def read_tracking(app: Ledger, name: str) -> int:
    """The position tracked under ``name`` (the relay's, or ``views`` for the projector)
    in the library's tracking table, without creating any table (0: nothing yet)."""
    from eventsourcing.persistence import OperationalError, ProgrammingError

    factory: Any = app.factory
    factory.env_create_table = lambda: False  # this one recorder only; see below
    try:
        recorder = factory.tracking_recorder()
    finally:
        del factory.env_create_table  # the factory's own method again
    try:
        return recorder.max_tracking_id(name) or 0
    except (OperationalError, ProgrammingError) as exc:
        if _is_missing_table(exc):
            return 0
        raise


def _is_missing_table(exc: BaseException) -> bool:
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == "42P01":  # PostgreSQL: undefined_table
        return True
    return "no such table" in str(exc)  # SQLite


@dataclass(frozen=True)
class OutgoingMessage:
    """One event as the relay publishes it."""

    subject: str
    payload: bytes
    headers: dict[str, str]
    event_id: str


def outgoing_message(
    prefix: str, notification: Notification, payload: bytes, leaf: int | None = None
) -> OutgoingMessage:
    """Subject, payload and ``Ledger-*`` headers of one stored event (without expectations);
    ``leaf``: its leaf index in the Merkle tree (``Ledger-Leaf``)."""
    f = _fields_decoder.decode(payload)
    headers = {
        st.MSG_ID: f.event_id,
        st.POSITION: str(notification.id),
        st.EVENT_TYPE: notification.topic,
        st.ENTITY: f"{f.entity_kind}:{header_text(f.entity_id)}",
        st.EFFECTIVE_AT: f.effective_at,
        st.RECORDED_AT: f.recorded_at,
        st.SCHEMA_VERSION: str(f.schema_version),
    }
    if leaf is not None:
        headers[LEAF] = str(leaf)
    subject = f"{prefix}.{f.entity_kind}.{notification.topic}.{entity_token(f.entity_id)}"
    return OutgoingMessage(subject, payload, headers, f.event_id)


def hpub_frame(
    prefix: str,
    notification: Notification,
    payload: bytes,
    reply: str,
    expectation: str,
    max_payload: int | None = None,
    leaf: int | None = None,
) -> tuple[bytes, str]:
    """The NATS ``HPUB`` protocol frame of one event, and its event id.

    Raises ``EventTooLarge`` when headers and payload exceed ``max_payload`` (the server
    would drop the connection rather than answer the publish).

    Equivalent to ``nc.publish(m.subject, payload, reply, m.headers | expectation)`` for
    ``m = outgoing_message(...)``, built in one step: the client's generic header encoding
    is most of the cost of a publish.  Every value is safe in a header line by
    construction (ids are UUIDs, times RFC 3339 from the encoder, the entity id goes
    through ``header_text``), ``expectation`` is a complete ``Key: value`` line.
    """
    f = _fields_decoder.decode(payload)
    topic = notification.topic
    headers = (
        f"NATS/1.0\r\nNats-Msg-Id: {f.event_id}\r\nLedger-Position: {notification.id}\r\n"
        f"Ledger-Event-Type: {topic}\r\n"
        f"Ledger-Entity: {f.entity_kind}:{header_text(f.entity_id)}\r\n"
        f"Ledger-Effective-At: {f.effective_at}\r\nLedger-Recorded-At: {f.recorded_at}\r\n"
        f"Ledger-Schema-Version: {f.schema_version}\r\n"
        + ("" if leaf is None else f"Ledger-Leaf: {leaf}\r\n")
        + f"{expectation}\r\n\r\n"
    ).encode()
    subject = f"{prefix}.{f.entity_kind}.{topic}.{entity_token(f.entity_id)}"
    size = len(headers)
    if max_payload is not None and size + len(payload) > max_payload:
        raise EventTooLarge(f.event_id, notification.id, size + len(payload), max_payload)
    frame = b"HPUB %s %s %d %d\r\n%b%b\r\n" % (
        subject.encode(),
        reply.encode(),
        size,
        size + len(payload),
        headers,
        payload,
    )
    return frame, f.event_id


class Relay:
    """Publishes the ledger's notification log to a JetStream stream (see module doc).

    ``run_once()`` publishes what is pending and returns; ``run_forever(stop)`` keeps
    publishing until the ``threading.Event`` is set; ``await run(stop)`` is the same in a
    running event loop.
    """

    def __init__(
        self,
        app: Ledger,
        nats_url: str,
        *,
        stream: str | None = None,
        subject_prefix: str | None = None,
        replicas: int | None = None,
        duplicate_window: float | None = None,
        batch_size: int = 1000,
        max_in_flight: int = 4000,
        poll_interval: float = 0.05,
        ack_timeout: float = 10.0,
        max_backoff: float = 5.0,
        progress_interval: float = 30.0,
        fast_publish: bool = True,
        republish_from: int | None = None,
        wake_on_commit: bool = True,
        nats_options: dict[str, Any] | None = None,
    ):
        settings = app.settings
        self.app = app
        self.nats_url = nats_url
        self.stream = stream or settings.stream
        self.prefix = check_prefix(subject_prefix or settings.subject_prefix)
        self.replicas = replicas or settings.stream_replicas
        self.duplicate_window = (
            duplicate_window if duplicate_window is not None else settings.duplicate_window
        )
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.max_backoff = max_backoff
        self.progress_interval = progress_interval
        self.fast_publish = fast_publish
        # Operator override: re-publish from this position whatever the tracking says
        # (to refill a stream that was recreated, or lost its tail with a node's disk).
        self.republish_from = republish_from
        self.wake_on_commit = wake_on_commit
        """Read as soon as the store hints at a commit (else: poll only)."""
        self.tracking_name = tracking_name(self.stream)
        # Credentials: the relay role's, from the settings, unless given.
        self.nats_options = (
            dict(nats_options) if nats_options is not None else settings.nats_options("relay")
        )
        self._tracking: TrackingRecorder | None = None
        self.stats = RelayStats()
        # Pipeline state (valid within one epoch).
        self._nc: Client | None = None
        self._inbox = ""
        self._epoch = 0
        self._in_flight = 0
        self._acked = 0  # newest acknowledged position
        self._tracked = 0  # newest position written to the tracking table
        self._tracked_at = 0.0  # when (monotonic)
        self._last_ack = 0.0
        self._failure: _Resync | None = None
        self._window = asyncio.Event()
        self._leaves: dict[int, int] = {}  # position -> leaf index, of the batches read
        self._checkpoint_size = -1  # the newest checkpoint published (-1: not read yet)
        self._checkpoint_js: JetStreamContext | None = None  # one per connection
        self._housekeeping: asyncio.Task[None] | None = None
        """Checkpoints and tracking after a batch, beside the publishing (see _housekeep)."""
        self._appended = asyncio.Event()
        """Set by the store's hint that another commit happened (``watch_appends``)."""
        self._early_hint = asyncio.Event()
        """Set with ``_appended`` by a hint that can come before its commit is visible."""
        self._settle: float | None = None
        """After such a hint: the next pause before reading the log again (see
        ``_wait_for_appends``)."""
        self._acks_in = asyncio.Event()
        """Set when the last publish in flight is acknowledged, or the pipeline failed."""

    # --- position tracking --------------------------------------------------------------

    @property
    def tracking(self) -> TrackingRecorder:
        if self._tracking is None:
            self._tracking = open_tracking(self.app)
        return self._tracking

    def tracked_position(self) -> int:
        return self.tracking.max_tracking_id(self.tracking_name) or 0

    def _track(self, position: int) -> None:
        from eventsourcing.persistence import IntegrityError, Tracking

        if position <= self._tracked:
            return
        # IntegrityError: another relay already recorded this position or a later one.
        with contextlib.suppress(IntegrityError):
            self.tracking.insert_tracking(Tracking(self.tracking_name, position))
        self._tracked = position

    async def _track_acked(self, *, throttled: bool = False) -> None:
        """Record the acknowledged position (``throttled``: unless it was recorded less
        than ``TRACK_EVERY_SECONDS`` ago; on stop and on failure it always is)."""
        if self._acked <= self._tracked:
            return
        if throttled and time.monotonic() - self._tracked_at < TRACK_EVERY_SECONDS:
            return
        await asyncio.to_thread(self._track, self._acked)
        self._tracked_at = time.monotonic()

    # --- entry points -------------------------------------------------------------------

    def run_once(self, *, give_up_after: float = 30.0) -> RelayStats:
        """Publish everything pending, wait for the acks, record the position, return."""
        return asyncio.run(self.run(once=True, give_up_after=give_up_after))

    def run_forever(self, stop: threading.Event) -> RelayStats:
        """Publish until ``stop`` is set (for a thread of ``ledger serve`` or the demo)."""

        async def main() -> RelayStats:
            done = asyncio.Event()

            async def watch() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.1)
                done.set()

            watcher = asyncio.create_task(watch())
            try:
                return await self.run(done)
            finally:
                watcher.cancel()

        return asyncio.run(main())

    async def run(
        self,
        stop: asyncio.Event | None = None,
        *,
        once: bool = False,
        give_up_after: float | None = None,
    ) -> RelayStats:
        """The relay loop: connect, ensure the stream, publish; resync/reconnect on failure.

        With ``once``, returns when everything pending is acknowledged; ``give_up_after``
        seconds of failing to make progress raise ``RelayError`` (default: keep trying).
        """
        stop = stop or asyncio.Event()
        self._window = asyncio.Event()  # bound to this run's event loop
        self._appended = asyncio.Event()
        self._early_hint = asyncio.Event()
        self._acks_in = asyncio.Event()
        watcher = (
            asyncio.create_task(self._watch_appends()) if self.wake_on_commit and not once else None
        )
        started = time.monotonic()
        backoff = 0.0
        failing_since: float | None = None
        acked_at_failure = -1
        try:
            while not stop.is_set():
                try:
                    if self._nc is None or self._nc.is_closed:
                        await self._connect()
                    caught_up = await self._session(stop, once)
                    if caught_up and once:
                        break
                except Exception as exc:
                    if not _is_retryable(exc):
                        raise
                    if self._acked > acked_at_failure:  # progress since the last failure
                        backoff, failing_since = 0.0, None
                    acked_at_failure = self._acked
                    reason = _describe(exc)
                    self.stats.failures.append(reason)
                    now = time.monotonic()
                    failing_since = failing_since or now
                    limit = give_up_after
                    if limit is not None and getattr(exc, "window", False):
                        # Refused as duplicates after a purge: that ends only when the
                        # duplicate window has passed, so wait at least that long.
                        limit = max(limit, self.duplicate_window + 5.0)
                    if limit is not None and now - failing_since > limit:
                        raise RelayError(
                            f"gave up after {now - failing_since:.0f}s without progress: {reason}"
                        ) from exc
                    if _needs_reconnect(exc):
                        await self._disconnect()
                    backoff = min(self.max_backoff, max(0.1, backoff * 2))
                    delay = backoff * random.uniform(0.75, 1.25)
                    log.warning("relay: %s; retrying in %.1fs", reason, delay)
                    await _sleep_until(stop, delay)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher
            try:
                await self._track_acked()
            except Exception as exc:  # the store is down: the stream still has the truth
                log.warning("relay: could not record position %d: %s", self._acked, exc)
            await self._disconnect()
            self.stats.seconds = time.monotonic() - started
            self.stats.position = max(self.stats.position, self._acked)
        log.info(
            "relay stopped: %d event(s) published, stream at position %d",
            self.stats.published,
            self.stats.position,
        )
        return self.stats

    # --- waiting for new events ---------------------------------------------------------

    async def _watch_appends(self) -> None:
        """Keep the store's commit hints coming (restarted after a failure; meanwhile the
        relay polls)."""
        from ledger.store.wake import watch_appends

        while True:
            try:
                await watch_appends(self.app, self._appended, early=self._early_hint)
                return  # no hints on this store or platform: polling only
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("relay: commit hints failed (%s); polling meanwhile", _describe(exc))
                await asyncio.sleep(self.max_backoff)

    async def _wait_for_appends(self, stop: asyncio.Event) -> bool:
        """Until a commit hint, ``stop``, the poll interval, or the last ack of what is in
        flight, whichever comes first; True for the acks alone (nothing to read).

        A hint from the write-ahead log's writes (a writer that does not mark its commits,
        see ``ledger.store.wake``) can come before its commit is visible, so after such a
        hint the log is read again after short, doubling pauses until
        ``COMMIT_SETTLE_SECONDS`` have passed; a commit mark or a PostgreSQL notification
        comes once the commit is visible and needs none (the extra reads cost CPU the
        next event waits for).  The hint is cleared before the next read: a commit during
        that read sets it again."""
        appended, acked = self._appended, self._acks_in
        waiting_for_acks = self._in_flight > 0 and self._failure is None
        if waiting_for_acks:
            acked.clear()
        if not appended.is_set() and not stop.is_set():
            timeout = self.poll_interval
            if self._settle is not None:
                timeout = min(timeout, self._settle)
                self._settle = self._settle * 2 if self._settle < COMMIT_SETTLE_SECONDS else None
            waiters = [asyncio.ensure_future(appended.wait()), asyncio.ensure_future(stop.wait())]
            if waiting_for_acks:
                waiters.append(asyncio.ensure_future(acked.wait()))
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        if appended.is_set():
            early = self._early_hint.is_set()
            self._settle = COMMIT_SETTLE_FIRST_SECONDS if early else None
            appended.clear()
            self._early_hint.clear()
            return False
        return waiting_for_acks and acked.is_set() and not stop.is_set()

    # --- connection ---------------------------------------------------------------------

    async def _connect(self) -> None:
        async def disconnected() -> None:
            if self._failure is None:
                self._failure = _Resync("disconnected from NATS", reconnect=False)
            self._window.set()
            self._acks_in.set()

        async def reconnected() -> None:
            connected = self._nc.connected_url if self._nc else None
            log.info(
                "relay: reconnected to %s", redact_url(connected.geturl()) if connected else "?"
            )

        self._nc = await st.connect(
            self.nats_url,
            name=f"ledger-relay:{self.stream}",
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            max_reconnect_attempts=3,
            reconnect_time_wait=0.5,
            pending_size=8 * 1024 * 1024,
            **self.nats_options,
        )
        log.info("relay: connected to %s", redact_url(self.nats_url))
        self._inbox = self._nc.new_inbox()
        await self._nc.subscribe(f"{self._inbox}.>", cb=self._on_ack)
        await st.ensure_stream(
            self._nc.jsm(),
            self.stream,
            self.prefix,
            replicas=self.replicas,
            duplicate_window=self.duplicate_window,
        )
        await ensure_checkpoint_stream(
            self._nc.jsm(), self.stream, self.prefix, replicas=self.replicas
        )
        self._checkpoint_size = -1
        self._checkpoint_js = self._nc.jetstream()

    async def _disconnect(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 5)
            except Exception as exc:  # already broken: nothing more to do
                log.debug("relay: closing the NATS connection: %s", exc)

    # --- acks ---------------------------------------------------------------------------

    async def _on_ack(self, msg: Msg) -> None:
        _, epoch, position = msg.subject.rsplit(".", 2)
        if int(epoch) != self._epoch:
            return  # an ack from before the last resynchronisation
        self._in_flight -= 1
        self._last_ack = time.monotonic()
        if self._in_flight < self.max_in_flight:
            self._window.set()
        data = msg.data
        ack = _ack_decoder.decode(data) if data else None
        if ack is None or ack.error is not None or not ack.stream:
            if self._failure is None:
                self._failure = _Resync(_describe_nak(msg, ack), reconnect=False)
            self._acks_in.set()
            return
        if ack.duplicate:
            # Nothing was stored (see the module doc): resynchronise rather than count it.
            if self._failure is None:
                self._failure = _Resync(
                    f"JetStream answered the publish of position {position} as a duplicate "
                    f"(seq {ack.seq}) without storing it; was the stream purged within its "
                    "duplicate window?",
                    reconnect=False,
                    window=True,
                )
            self._acks_in.set()
            return
        pos = int(position)
        if pos > self._acked:
            self._acked = pos
        self.stats.published += 1
        if not self._in_flight:
            self._acks_in.set()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._in_flight and time.monotonic() - self._last_ack > self.ack_timeout:
            raise _Resync(f"no ack from JetStream within {self.ack_timeout:g}s", reconnect=True)

    async def _wait_window(self) -> None:
        while self._in_flight >= self.max_in_flight:
            self._window.clear()
            self._check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._window.wait(), 1.0)
        self._check()

    async def _drain(self) -> None:
        """Wait until every publish of this epoch is acknowledged."""
        assert self._nc is not None
        if self._in_flight:
            await self._nc.flush(timeout=max(1, round(self.ack_timeout)))
        while self._in_flight:
            self._check()
            self._window.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._window.wait(), 0.05)
        self._check()

    # --- the pipeline -------------------------------------------------------------------

    async def _resync(self) -> tuple[int, int]:
        """New epoch: read the stream's head; return (position to resume after, last seq)."""
        assert self._nc is not None
        self._epoch += 1
        self._in_flight = 0
        self._failure = None
        # Tracked first: a position tracked by then (by this relay or another one) is in
        # the stream by then, so a head read after it is at least as far unless the stream
        # lost messages.  Read the other way round, another relay publishing and tracking
        # in between looked like a gap.
        tracked = await asyncio.to_thread(self.tracked_position)
        head = await st.read_head(self._nc.jsm(), self.stream)
        problem = await asyncio.to_thread(head_mismatch, self.app, self.stream, head)
        if problem is not None:
            raise RelayError(forged_head_message(self.stream, problem))
        self._tracked = max(self._tracked, tracked)
        if self.republish_from is not None:
            # The stream's own head still rules out duplicates; tracking is ignored.
            position = max(head.position, self.republish_from - 1)
        elif head.position < tracked:
            # Publishing after the gap would leave the stream with a hole for good (a later
            # --republish-from would find the head past it); the operator decides.
            raise RelayError(gap_message(self.stream, head.position, tracked))
        else:
            position = max(tracked, head.position)
        self._acked = max(self._acked, head.position)
        self.stats.position = max(self.stats.position, head.position)
        self.stats.resyncs += 1
        log.info(
            "relay: stream %s has %d message(s), last seq %d at position %d; tracked %d; "
            "resuming after position %d",
            self.stream,
            head.messages,
            head.seq,
            head.position,
            tracked,
            position,
        )
        return position, head.seq

    def _read(self, after: int) -> Sequence[Notification]:
        batch = self.app.recorder.select_notifications(
            start=after, limit=self.batch_size, inclusive_of_start=False
        )
        self._leaves.update(leaf_indexes(self.app, [n.id for n in batch]))
        return batch

    async def _publish_checkpoints(self) -> None:
        """Publish the signed checkpoints of the append batches now published in full."""
        from nats.js.errors import NotFoundError

        assert self._nc is not None and self._checkpoint_js is not None
        js = self._checkpoint_js
        stream = checkpoint_stream(self.stream)
        subject = checkpoint_subject(self.prefix, self.stream)
        if self._checkpoint_size < 0:
            try:
                last = await self._nc.jsm().get_last_msg(stream, subject)
                headers = last.headers or {}
                # A LEAVES message last: the relay stopped between it and its checkpoint;
                # everything before its first leaf is published.
                self._checkpoint_size = int(headers.get(TREE_SIZE) or headers.get(LEAVES) or 0)
            except NotFoundError:
                self._checkpoint_size = 0
        messages = await asyncio.to_thread(
            checkpoint_messages, self.app, self.stream, self._checkpoint_size, self._acked
        )
        # Pipelined: a round holds one checkpoint per append batch published since the
        # last round (several at a steady trickle of single appends), and their acks are
        # awaited together, at most CHECKPOINTS_IN_FLIGHT at a time, in order: the size
        # recorded is that of the last message acknowledged with all those before it.
        in_flight: deque[tuple[int, asyncio.Future[Any]]] = deque()
        try:
            for published, payload, headers in messages:
                if len(in_flight) >= CHECKPOINTS_IN_FLIGHT:
                    await self._checkpoint_acked(*in_flight.popleft())
                future = await js.publish_async(subject, payload, stream=stream, headers=headers)
                in_flight.append((published, future))
            while in_flight:
                await self._checkpoint_acked(*in_flight.popleft())
        finally:
            for _, future in in_flight:
                future.cancel()

    async def _checkpoint_acked(self, published: int, future: asyncio.Future[Any]) -> None:
        """Wait for a checkpoint message's ack (a refusal raises), then count it."""
        await asyncio.wait_for(future, self.ack_timeout)
        self._checkpoint_size = published

    async def _session(self, stop: asyncio.Event, once: bool) -> bool:
        """Publish from the resynchronised position until failure, stop, or (once) caught up.

        Returns True when everything pending was published and acknowledged.  Steps:
        resynchronise, then read ahead while each batch is published (``_publish_batch``)
        and its acks are tracked (``_after_batch``); with nothing left to read, drain and
        wait for appends (``_caught_up``).
        """
        assert self._nc is not None
        position, last_seq = await self._resync()
        session = _Session(
            nc=self._nc,
            reply_prefix=f"{self._inbox}.{self._epoch}.",
            send=_frame_sender(self._nc) if self.fast_publish else None,
            payload_of=self.app.msgspec_mapper.payload,
            last_seq=last_seq,
            last_progress_log=time.monotonic(),
            logged_published=self.stats.published,
        )
        reading: asyncio.Task[Sequence[Notification]] | None = asyncio.create_task(
            asyncio.to_thread(self._read, position)
        )
        try:
            while True:
                assert reading is not None
                batch = await reading
                reading = None
                self._check()
                if batch:
                    position = batch[-1].id
                    # Read ahead while this batch is published, unless the batch was short
                    # and hints are on: then the log held nothing more when the read
                    # began, and a commit since then has hinted (the hint is cleared just
                    # before each read), so an empty read per commit is saved.
                    more = once or not self.wake_on_commit or len(batch) >= self.batch_size
                    if more:
                        reading = asyncio.create_task(asyncio.to_thread(self._read, position))
                    await self._publish_batch(session, batch)
                    if await self._after_batch(session, stop):
                        return True
                    if more:
                        continue
                if await self._caught_up(stop, once):
                    return True
                # In a worker thread still: read in the loop's own thread, the read and
                # the housekeeping's thread fought over the interpreter lock and the
                # checkpoint rounds starved (tried 3 Dec 2026; see docs/performance.md).
                reading = asyncio.create_task(asyncio.to_thread(self._read, position))
        finally:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
            # Ended by a failure: the next session starts from a resynchronisation.
            await self._settle_housekeeping(cancel=True)
            self.stats.position = max(self.stats.position, self._acked)

    async def _caught_up(self, stop: asyncio.Event, once: bool) -> bool:
        """Nothing left to read: either settle what is in flight, publish the checkpoints,
        record the position and finish (``once``, or a stop asked: True), or leave those
        to the housekeeping and wait for new appends.

        The acks of what was just published are not waited for first: they come back
        beside the next commits (the pipeline keeps every publish's expectation, so a
        failure still resynchronises, see ``_check``).  Waiting for them put a JetStream
        round trip (its p99 15-30 ms on a loaded machine) in front of the next commit.
        Once they are all in, the housekeeping runs again (their checkpoints)."""
        if once or stop.is_set():
            await self._drain()
            await self._settle_housekeeping()
            await self._publish_checkpoints()
            await self._track_acked()
            return True
        while True:
            self._check()
            await self._housekeep()
            if not await self._wait_for_appends(stop):
                return False

    async def _housekeep(self) -> None:
        """Publish the checkpoints now due and record the position (throttled) in a task
        of its own, one at a time, so the next commit is read and published meanwhile:
        under load a durable tracking write (an fsync, and the store's write lock shared
        with the appenders) or a checkpoint's read took from tens of milliseconds to
        seconds, and every event committed meanwhile waited for it.  A failure of the
        previous round is raised here, in the relay's loop, and handled as any other."""
        previous = self._housekeeping
        if previous is not None:
            if not previous.done():
                return  # still at it; the next call starts the next round
            self._housekeeping = None
            previous.result()

        async def round_() -> None:
            await self._publish_checkpoints()
            await self._track_acked(throttled=True)

        self._housekeeping = asyncio.create_task(round_())

    async def _settle_housekeeping(self, *, cancel: bool = False) -> None:
        """Wait for the housekeeping round in progress (``cancel``: end it), raising its
        failure unless cancelled."""
        task, self._housekeeping = self._housekeeping, None
        if task is None:
            return
        if cancel:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            return
        await task

    async def _publish_batch(self, session: _Session, batch: Sequence[Notification]) -> None:
        """Publish a batch in position order, each with its JetStream expectation, within
        the in-flight window.  (The loop stays inline: it is the relay's hot path.)"""
        nc, send = session.nc, session.send
        for notification in batch:
            if self._in_flight >= self.max_in_flight:
                if send is not None:
                    await _flush(nc)
                await self._wait_window()
            payload = session.payload_of(notification.state)
            leaf = self._leaves.pop(notification.id, None)
            if session.previous_id is None:
                expectation = (EXPECTED_LAST_SEQUENCE, str(session.last_seq))
            else:
                expectation = (EXPECTED_LAST_MSG_ID, session.previous_id)
            if not self._in_flight:
                self._last_ack = time.monotonic()
            self._in_flight += 1
            reply = session.reply_prefix + str(notification.id)
            try:
                if send is not None:
                    frame, session.previous_id = hpub_frame(
                        self.prefix,
                        notification,
                        payload,
                        reply,
                        f"{expectation[0]}: {expectation[1]}",
                        max_payload=nc.max_payload,
                        leaf=leaf,
                    )
                    await send(frame)
                else:
                    message = outgoing_message(self.prefix, notification, payload, leaf)
                    headers = {**message.headers, expectation[0]: expectation[1]}
                    size = header_block_size(headers) + len(payload)
                    if size > nc.max_payload:
                        raise EventTooLarge(message.event_id, notification.id, size, nc.max_payload)
                    await nc.publish(message.subject, payload, reply=reply, headers=headers)
                    session.previous_id = message.event_id
            except EventTooLarge:
                # Not retryable: record what was acknowledged before it, then stop.
                self._in_flight -= 1
                with contextlib.suppress(Exception):
                    if send is not None:
                        await _flush(nc)
                    await self._drain()
                await self._track_acked()
                raise
        if send is not None:
            await _flush(nc)

    async def _after_batch(self, session: _Session, stop: asyncio.Event) -> bool:
        """After a batch: check the acks so far, track them, publish checkpoints, log
        progress now and then.  True when a stop was asked (everything drained)."""
        self._check()
        await self._housekeep()
        if stop.is_set():
            await self._settle_housekeeping()
            await self._drain()
            await self._track_acked()
            return True
        now = time.monotonic()
        if now - session.last_progress_log > self.progress_interval:
            log.info(
                "relay: %d event(s) published in the last %.0fs; at position %d",
                self.stats.published - session.logged_published,
                now - session.last_progress_log,
                self._acked,
            )
            session.last_progress_log, session.logged_published = now, self.stats.published
        return False


@dataclass
class _Session:
    """What one publishing session carries from batch to batch."""

    nc: Client
    reply_prefix: str
    send: Callable[[bytes], Awaitable[None]] | None
    payload_of: Callable[[bytes], bytes]
    last_seq: int
    """The stream's last sequence at the resync: the first publish's expectation."""
    last_progress_log: float
    logged_published: int
    previous_id: str | None = None
    """The last event id published: each later publish expects it."""


def _describe_nak(msg: Msg, ack: _PubAck | None) -> str:
    if ack is not None and ack.error is not None:
        e = ack.error
        return (
            f"JetStream rejected a publish: {e.description} (code {e.code}, err_code {e.err_code})"
        )
    status = (msg.headers or {}).get("Status")
    if status == "503":
        return "no JetStream stream answered the publish (is JetStream enabled?)"
    return f"unexpected reply to a publish: {msg.data[:200]!r} {msg.headers}"


def _frame_sender(nc: Client) -> Callable[[bytes], Awaitable[None]] | None:
    """The client's internal "queue these protocol bytes" call, if this nats-py has it.

    Publishing pre-built ``HPUB`` frames through it skips the client's per-header
    validation and encoding (the bulk of a publish's cost); without it the relay uses
    ``nc.publish``.
    """
    send = getattr(nc, "_send_command", None)
    if send is None or not hasattr(nc, "_flush_pending") or not hasattr(nc, "_flush_queue"):
        return None

    async def send_frame(frame: bytes) -> None:
        if nc.is_closed:
            from nats.errors import ConnectionClosedError

            raise ConnectionClosedError
        await send(frame)

    return send_frame


async def _flush(nc: Client) -> None:
    """Ask the client's flusher to write the queued frames (as ``nc.publish`` does)."""
    queue = nc._flush_queue
    if queue is not None and queue.empty():
        await nc._flush_pending()


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _Resync) else f"{type(exc).__name__}: {exc}"


def _is_retryable(exc: BaseException) -> bool:
    """Failures of NATS, the database or the pipeline (retried), as opposed to bugs."""
    from eventsourcing.persistence import InterfaceError, OperationalError

    if isinstance(
        exc,
        _Resync | st.NatsUnavailable | OSError | TimeoutError | OperationalError | InterfaceError,
    ):
        return True
    return (type(exc).__module__ or "").startswith("nats.")


def _needs_reconnect(exc: BaseException) -> bool:
    """Whether to drop the NATS connection before retrying (not for store failures)."""
    from eventsourcing.persistence import InterfaceError, OperationalError

    if isinstance(exc, _Resync):
        return exc.reconnect
    return not isinstance(exc, OperationalError | InterfaceError)


async def _sleep_until(stop: asyncio.Event, seconds: float) -> None:
    if stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
