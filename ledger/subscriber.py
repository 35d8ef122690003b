"""Subscribing to ledger events from NATS JetStream: typed, filtered, resumable.

::

    import asyncio
    from ledger import subscribe

    async def main() -> None:
        async with subscribe(durable="billing", filters=["licence"], start="beginning") as sub:
            async for event in sub:          # typed: LicenceGranted, LicenceSuspended, ...
                await handle(event)          # acked when the loop asks for the next event

    asyncio.run(main())

**Delivery and acknowledgement.**  A subscription is a JetStream pull consumer with
explicit acks.  The event the loop body is handling is acknowledged when the loop asks for
the next one (i.e. after the body returned), or when the ``async with`` block exits
normally.  If the body raises, the event is not acknowledged: leaving the block with an
exception negatively acknowledges it (and every event fetched but not yet handed out), so
the durable's next subscriber gets it again at once.  If the process dies, JetStream
redelivers it after ``ack_wait`` (default 30 s).  Delivery is therefore at least once
across sessions; ``Delivery.redelivered`` and the ledger position (``Delivery.position``,
increasing along the stream) let a handler recognise a repeat.  Within one open
subscription a redelivery of an event already acknowledged in this session (its ack was
lost, e.g. NATS restarted) is acknowledged again and skipped (``Subscription.skipped``
counts them), so positions only increase, except for events handed out again on
purpose: a nakked one, and, with ``auto_ack=False``, one still unsettled when its
``ack_wait`` passed (a later event may have been acked first).  The client reconnects
by itself when NATS goes away and the consumer continues where it was.  At most
``batch`` events are outstanding (``max_ack_pending``), which keeps redeliveries in
stream order.

**Durable or not.**  With ``durable="name"`` the consumer survives: the next
``subscribe(durable="name")`` resumes after the last acknowledged event, whatever
``start`` says (``start`` applies when the durable is created).  Without it the consumer is
ephemeral, deleted on close (and by the server after ``inactive_threshold``).

**Where to start** (``start``): ``"beginning"`` (default), ``"new"`` (only events
published from now on), a ``datetime`` (the first event *recorded* at or after it — the
ledger's recorded time, not the time NATS received it), or an ``int`` ledger position
(the first event at or after it).  Times and positions are found exactly by binary search
over the stream (recorded times and positions both increase along it).

**Filters** (``filters``): subjects or the friendly forms of ``ledger.subjects.parse_filter``
(``licence:GL.1``, ``licence``, ``LicenceGranted``, ``LicenceGranted@licence:GL.1``); an
event is delivered if it matches any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import unquote

from ledger import stream as st

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    from ledger.bus_verify import CheckpointFeed, StreamVerifier
    from ledger.checkpoint import VerifierKey
    from ledger.config import Settings
    from ledger.events import Event

log = logging.getLogger("ledger.subscriber")

Start: TypeAlias = Literal["beginning", "new"] | dt.datetime | int
"""Where a new consumer starts: the beginning, new events only, a recorded time, a position."""


class SubscriberError(RuntimeError):
    """The subscription cannot be set up as asked (e.g. a durable with other filters)."""


class DurableNameError(SubscriberError, ValueError):
    """A durable name JetStream would refuse (or mangle); raised before connecting."""


MAX_DURABLE_BYTES = 255

MIN_FETCH_SECONDS = 0.002
"""The shortest fetch ``next_delivery`` makes: with less than that left before its
deadline it returns None (nats-py asks the server to expire a fetch 0.1 ms before its
timeout, so a much shorter one would not reach the server in time)."""


def check_durable_name(name: str) -> str:
    """``name`` if JetStream can use it as a durable consumer name, else ``DurableNameError``.

    Consumer names become subject tokens and file names on the server: no ``.``, ``*``,
    ``>``, ``/``, ``\\``, whitespace or control characters, at most 255 bytes of UTF-8.
    """
    if not name:
        raise DurableNameError("durable name must not be empty")
    bad = sorted({c for c in name if c in "./\\*>" or c.isspace() or not c.isprintable()})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise DurableNameError(
            f"durable name {name!r} contains {shown}; use letters, digits, '-' or '_' "
            "(no . * > / \\, whitespace or control characters)"
        )
    size = len(name.encode())
    if size > MAX_DURABLE_BYTES:
        raise DurableNameError(
            f"durable name is {size} bytes long; at most {MAX_DURABLE_BYTES} are allowed"
        )
    return name


@dataclass
class Delivery:
    """One event as delivered, with its place in the stream and its acknowledgement."""

    event: Event
    position: int
    """The event's position in the ledger's notification log."""
    subject: str
    stream_seq: int
    num_delivered: int
    """1 on first delivery, more when JetStream redelivers it."""
    headers: dict[str, str]
    payload: bytes
    """The event's JSON exactly as stored in the ledger."""
    _msg: Msg = field(repr=False)
    settled: bool = False
    """Acknowledged or negatively acknowledged already."""
    _on_settle: Callable[[Delivery, bool], None] | None = field(default=None, repr=False)

    @property
    def redelivered(self) -> bool:
        return self.num_delivered > 1

    @property
    def event_type(self) -> str:
        return self.headers.get(st.EVENT_TYPE, type(self.event).__name__)

    @property
    def entity(self) -> str:
        """``kind:id`` of the event's entity."""
        return self.event.entity

    async def ack(self) -> None:
        if not self.settled:
            self.settled = True
            if self._on_settle is not None:
                self._on_settle(self, True)
            await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Ask for redelivery (after ``delay`` seconds)."""
        if not self.settled:
            self.settled = True
            if self._on_settle is not None:
                self._on_settle(self, False)
            await self._msg.nak(delay=delay)

    async def in_progress(self) -> None:
        """Tell JetStream the handler needs more time (resets ``ack_wait``)."""
        await self._msg.in_progress()


class SubscriberStalled(SubscriberError):
    """A verifying subscription held ``max_pending`` events for ``stall_timeout`` seconds
    and no signed checkpoint covered any of them (forged events, or a relay that
    publishes no checkpoints): it delivers nothing more until that is dealt with."""


class MalformedMessage(SubscriberError):
    """A stream message that is not a ledger event as the relay publishes them."""


@dataclass(frozen=True)
class Rejected:
    """A stream message a subscription did not hand out, and why."""

    stream_seq: int
    subject: str
    reason: str

    def __str__(self) -> str:
        return f"{st.describe_message(self.stream_seq, self.subject)}: {self.reason}"


def decode_delivery(msg: Msg) -> Delivery:
    """A typed ``Delivery`` from a JetStream message published by the relay;
    ``MalformedMessage`` (saying what is wrong) for anything else."""
    from ledger.store.codec import decode_event

    headers = dict(msg.headers or {})
    type_name = headers.get(st.EVENT_TYPE)
    raw = headers.get(st.POSITION)
    position = st.parse_position(raw)
    if not type_name or raw is None:
        raise MalformedMessage("no Ledger-Event-Type or Ledger-Position header")
    if position is None:
        raise MalformedMessage(f"Ledger-Position {raw[:40]!r} is not a position")
    try:
        event = decode_event(msg.data, type_name)
    except Exception as exc:  # whatever the bytes are, they are not this event type
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise MalformedMessage(f"the payload is not a {type_name[:60]} event: {text}") from None
    meta = msg.metadata
    return Delivery(
        event=event,
        position=position,
        subject=msg.subject,
        stream_seq=meta.sequence.stream,
        num_delivered=meta.num_delivered,
        headers=headers,
        payload=msg.data,
        _msg=msg,
    )


def entity_from_header(value: str) -> tuple[str, str]:
    """``(kind, id)`` from a ``Ledger-Entity`` header (the id is percent-decoded)."""
    kind, _, token = value.partition(":")
    return kind, unquote(token)


class Subscription:
    """An open subscription (use ``subscribe(...)``; see the module docstring)."""

    def __init__(
        self,
        nats_url: str,
        *,
        stream: str,
        prefix: str,
        durable: str | None,
        filters: Sequence[str],
        start: Start,
        batch: int,
        ack_wait: float,
        auto_ack: bool,
        inactive_threshold: float,
        fetch_timeout: float,
        nats_options: dict[str, Any] | None = None,
        on_rejected: Callable[[Rejected], None] | None = None,
        verify: bool = False,
        verifier_key: VerifierKey | None = None,
        max_pending: int = 50_000,
        stall_timeout: float | None = 300.0,
    ):
        from ledger.bus_verify import HoldBound

        self.nats_url = nats_url
        self._bound = HoldBound(
            max_pending,
            stream,
            log,
            "a verifying subscriber",
            "LEDGER_VERIFY_MAX_PENDING (subscribe(max_pending=))",
            stall_timeout,
        )
        """With ``verify``: how many events are held at most while no signed checkpoint
        covers them, and what happens at that bound (see ``subscribe``)."""
        self.poll_interval = 0.05
        """With ``verify``: seconds between reads of the checkpoint stream while events
        are held and no checkpoint hint comes (a server that refuses the hint
        subscription, ``wake_on_checkpoint = False``); set before ``open``."""
        self.verify = verify
        self.verifier_key = verifier_key
        self._verifier: StreamVerifier | None = None
        self._ready: deque[Delivery] = deque()
        self._first_seq = 0
        self._fed_seq = 0
        self._feed: CheckpointFeed | None = None
        self.wake_on_checkpoint = True
        """With ``verify``: wake when a checkpoint is published (a core subscription to
        the checkpoint subject, a hint only: the checkpoint stream is what is read),
        rather than only polling the stream every 50 ms while events are held."""
        self._checkpoint_hint: asyncio.Event | None = None
        self._announced = 0
        """The largest tree size a checkpoint hint announced (``Ledger-Tree-Size``)."""
        self._hints_allowed = False
        """The server took the hint subscription (no permissions violation came back)."""
        self._hints_refused = False
        self._hint_subject = "\0"  # (set when subscribing)
        self._rechecks = (0, 0)
        """(announced size, reads of the checkpoint stream made for it so far)."""
        self._caught_up = False
        """The last fetch returned less than a batch (the next events are not out yet)."""
        self.verified_position = 0
        """With ``verify``: the newest position a signed checkpoint has covered."""
        self.nats_options = dict(nats_options or {})
        self.stream = stream
        self.prefix = prefix
        self.durable = durable
        self.filters = list(filters)
        self.start = start
        self.batch = batch
        self.ack_wait = ack_wait
        self.auto_ack = auto_ack
        self.inactive_threshold = inactive_threshold
        self.fetch_timeout = fetch_timeout
        self.consumer: str | None = None
        self.created = False
        """True when this subscription created the consumer (``start`` applied)."""
        self.current: Delivery | None = None
        """The delivery most recently handed out."""
        self._nc: Client | None = None
        self._psub: JetStreamContext.PullSubscription | None = None
        self._buffer: deque[Msg] = deque()
        self._handled = 0  # highest position acknowledged in this session
        self._nakked: set[int] = set()
        self._unsettled: Counter[int] = Counter()
        """Positions handed out and not yet acked or nakked (copies of each: a redelivery
        can be handed out while the first copy is still being handled)."""
        self.skipped = 0
        """Redeliveries of events already acknowledged in this session (acked, not handed out)."""
        self.rejected = 0
        """Malformed messages met in this session (reported, terminated, not handed out)."""
        self.last_rejected: deque[Rejected] = deque(maxlen=100)
        """The most recent of them."""
        self.on_rejected = on_rejected

    @property
    def max_pending(self) -> int:
        """With ``verify``: events held at most while no signed checkpoint covers them;
        at the bound nothing more is fetched until one does (see ``subscribe``)."""
        return self._bound.limit

    @property
    def stall_timeout(self) -> float | None:
        """With ``verify``: seconds at ``max_pending`` with no checkpoint before
        ``next_delivery`` raises ``SubscriberStalled`` (None: never)."""
        return self._bound.stall_timeout

    @property
    def checkpoint_hints(self) -> bool:
        """With ``verify``: the server took the subscription to the checkpoint subject, so
        a published checkpoint wakes the subscription; False: it reads the checkpoint
        stream every ``poll_interval`` seconds while events are held."""
        return self._hints_allowed

    @property
    def held(self) -> int:
        """With ``verify``: events received and held now, waiting for a signed
        checkpoint to cover them."""
        return len(self._verifier.pending) if self._verifier is not None else 0

    @property
    def held_since(self) -> float | None:
        """With ``verify``: ``time.monotonic()`` when the oldest event held now was
        received (None when none is held); its age is how long the subscription has
        waited for a checkpoint to cover it (``ledger.metrics.SubscriptionCollector``
        exports both as gauges)."""
        return self._verifier.held_since if self._verifier is not None else None

    @property
    def stalled_since(self) -> float | None:
        """With ``verify``: ``time.monotonic()`` when the subscription reached
        ``max_pending`` held events with no checkpoint covering any of them since; None
        while it is below the bound.  After ``stall_timeout`` seconds there,
        ``next_delivery`` raises ``SubscriberStalled``."""
        return self._bound.stalled_since

    @property
    def ignored_leaves(self) -> int:
        """With ``verify``: ``Ledger-Leaves`` messages in the checkpoint stream that belong
        to no checkpoint (forged by whoever holds the relay's key), counted and logged,
        never kept."""
        return self._feed.ignored_leaves if self._feed is not None else 0

    # --- lifecycle ----------------------------------------------------------------------

    async def open(self) -> Subscription:
        from nats.js.api import AckPolicy, ConsumerConfig
        from nats.js.errors import NotFoundError

        options = dict(self.nats_options)
        caller_error_cb = options.pop("error_cb", None)

        async def on_error(exc: Exception) -> None:
            # The server refuses a subscription asynchronously: the checkpoint hints'.
            text = str(exc).lower()  # (it lower-cases the subject)
            if "permissions violation" in text and self._hint_subject.lower() in text:
                self._hints_allowed, self._hints_refused = False, True
                log.debug("no checkpoint hints (%s); polling", exc)
            if caller_error_cb is not None:
                await caller_error_cb(exc)

        self._nc = await st.connect(
            self.nats_url,
            name=f"ledger-subscriber:{self.durable or '-'}",
            error_cb=on_error,
            **options,
        )
        try:
            js = self._nc.jetstream()
            jsm = self._nc.jsm()
            try:
                await jsm.stream_info(self.stream)
            except NotFoundError:
                raise SubscriberError(
                    f"stream {self.stream} does not exist at {self.nats_url}; "
                    "start the relay (`ledger relay` or `ledger serve`)"
                ) from None
            existing = None
            if self.durable is not None:
                with contextlib.suppress(NotFoundError):
                    existing = await jsm.consumer_info(self.stream, self.durable)
            if existing is not None:
                have = sorted(_filters_of(existing.config))
                if have != sorted(self.filters):
                    raise SubscriberError(
                        f"durable consumer '{self.durable}' exists with filters "
                        f"{have or ['(none)']}, not {sorted(self.filters) or ['(none)']}; "
                        "use another name or delete it"
                    )
                self.consumer = self.durable
                self._first_seq = existing.ack_floor.stream_seq + 1
                limit = existing.config.max_ack_pending or 0
                if 0 < limit < self.batch:
                    # A fetch asking for more than may be outstanding would wait for acks
                    # that cannot come while it waits (and hold events past ack_wait).
                    self.batch = limit
            else:
                config = ConsumerConfig(
                    durable_name=self.durable,
                    description="ledger subscriber",
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait,
                    # Verifying holds events until a checkpoint covers them (a whole append
                    # batch): a bound here could stop delivery before that.
                    max_ack_pending=-1 if self.verify else self.batch,
                    inactive_threshold=None if self.durable else self.inactive_threshold,
                    **await self._start_config(jsm),
                )
                if len(self.filters) == 1:
                    config.filter_subject = self.filters[0]
                elif self.filters:
                    config.filter_subjects = list(self.filters)
                info = await jsm.add_consumer(self.stream, config)
                self.consumer = info.name
                self.created = True
            self._psub = await js.pull_subscribe_bind(consumer=self.consumer, stream=self.stream)
            if self.verify:
                if self.wake_on_checkpoint:
                    await self._watch_checkpoints()
                await self._prime(jsm)
        except BaseException:
            await self._nc.close()
            self._nc = None
            raise
        log.info(
            "subscribed to %s as consumer %s (%s)",
            self.stream,
            self.consumer,
            "created" if self.created else "resumed",
        )
        return self

    async def _start_config(self, jsm: Any) -> dict[str, Any]:
        from nats.js.api import DeliverPolicy

        start = self.start
        if start == "beginning":
            self._first_seq = 1
            return {"deliver_policy": DeliverPolicy.ALL}
        if start == "new" and self.verify:
            # Exactly after what is there now: the verifier must know where it starts.
            info = await jsm.stream_info(self.stream)
            self._first_seq = info.state.last_seq + 1
            return {
                "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": self._first_seq,
            }
        if start == "new":
            return {"deliver_policy": DeliverPolicy.NEW}
        if isinstance(start, dt.datetime):
            if start.tzinfo is None:
                raise SubscriberError("start time must be timezone-aware")
            seq = await st.seq_for_recorded_time(jsm, self.stream, start)
        elif isinstance(start, int) and not isinstance(start, bool):
            seq = await st.seq_for_position(jsm, self.stream, start)
        else:
            raise SubscriberError(
                f"start must be 'beginning', 'new', a datetime or a position, not {start!r}"
            )
        self._first_seq = seq
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": seq}

    # --- verification ---------------------------------------------------------------------

    async def _prime(self, jsm: Any) -> None:
        """Set up the verifier for the first message the consumer delivers: the signed
        checkpoint at or before it (its frontier), then the messages in between, read
        from the stream directly (verified, not handed out)."""
        from ledger.bus_verify import (
            LEAF,
            BusVerificationError,
            checkpoint_stream,
            first_event_leaf,
            prime,
        )

        if self.verifier_key is None:
            raise SubscriberError("verify=True needs the ledger's verifier key (verifier_key=)")
        info = await jsm.stream_info(self.stream)
        # Messages before the stream's first (dropped by its limits or age) never come.
        first_seq = max(self._first_seq, info.state.first_seq, 1)
        next_leaf, seq = None, min(first_seq - 1, info.state.last_seq)
        while seq >= max(info.state.first_seq, 1) and first_seq - seq <= 1000:
            msg = await st.get_msg(jsm, self.stream, seq)
            leaf = st.header(msg, LEAF) if msg is not None else None
            if leaf is not None and leaf.isdigit() and len(leaf) <= 19:
                next_leaf = int(leaf) + 1
                break
            seq -= 1
        if next_leaf is None and seq < max(info.state.first_seq, 1):
            # Nothing before it in the stream: the stream's first event is where the
            # consumer starts (leaf 0, or later when the stream's head was dropped).
            first = await first_event_leaf(jsm, self.stream)
            next_leaf = first[1] if first is not None and first[0] >= first_seq else 0
        try:
            verifier, feed = await prime(
                jsm, self.stream, self.verifier_key, next_leaf or 0, first_seq, purged_head=True
            )
        except BusVerificationError:
            raise
        except Exception as exc:
            raise SubscriberError(
                f"no checkpoints to verify with in {checkpoint_stream(self.stream)} ({exc}); "
                "is the relay current?"
            ) from None
        self._verifier = verifier
        self._feed = feed

    async def _watch_checkpoints(self) -> None:
        """Subscribe to the checkpoint subject as a hint that a checkpoint was published.
        What arrives there is never read (the checkpoint stream is, by sequence), so a
        forger on that subject can only wake the loop; the subscription keeps at most a
        few messages pending (slow-consumer drops lose nothing but a wake-up).  Where the
        server refuses the subscription (a role without it), polling stays."""
        from ledger.bus_verify import MAX_CHECKPOINT_MESSAGE, TREE_SIZE, checkpoint_subject

        assert self._nc is not None
        hint = asyncio.Event()

        async def woken(msg: Msg) -> None:
            size = (msg.headers or {}).get(TREE_SIZE)
            if size is not None and size.isdigit() and len(size) <= 19:
                self._announced = max(self._announced, int(size))
                hint.set()

        subject = self._hint_subject = checkpoint_subject(self.prefix, self.stream)
        try:
            sub = await self._nc.subscribe(
                subject,
                cb=woken,
                pending_msgs_limit=16,
                pending_bytes_limit=2 * MAX_CHECKPOINT_MESSAGE,
            )
            # A refusal comes back as an asynchronous error, before the flush's PONG.
            await self._nc.flush(timeout=5)
        except Exception as exc:  # refused or unsupported: the 50 ms poll still runs
            log.debug("no checkpoint hints (%s); polling", exc)
            return
        if self._hints_refused:  # (``on_error``: before the flush's PONG, as a rule)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            return
        # Hints will come: from the first checkpoint on, wait for one instead of polling
        # (until a refusal that came late, if any, turns this off again).
        self._hints_allowed = True
        self._checkpoint_hint = hint

    async def _admit_verified(self, msg: Msg) -> None:
        """Feed one fetched message to the verifier (held until a checkpoint covers it)."""
        from ledger.bus_verify import LEAF, BusVerificationError

        assert self._verifier is not None
        try:
            seq = msg.metadata.sequence.stream
        except Exception:
            seq = 0
        if 0 < seq <= self._fed_seq:
            return  # a redelivery of one already held or handed out
        try:
            delivery = decode_delivery(msg)
        except MalformedMessage as exc:
            await self._reject(msg, str(exc))
            return
        self._fed_seq = max(self._fed_seq, seq)
        try:
            self._verifier.add((msg.headers or {}).get(LEAF), delivery.position, msg.data, delivery)
        except BusVerificationError as exc:
            raise BusVerificationError(
                f"stream {self.stream}, {st.describe_message(seq, msg.subject)}: {exc}",
                position=exc.position,
                leaf=exc.leaf,
            ) from None

    async def _poll_checkpoints(self) -> None:
        """Read the checkpoints published since, verify what they cover, release it."""
        assert self._verifier is not None and self._feed is not None
        async for checkpoint, released in self._feed.poll(self._verifier):
            for delivery in released:
                if delivery is None:
                    continue  # before the consumer's start: verified, not handed out
                delivery._on_settle = self._settled
                self._unsettled[delivery.position] += 1
                self._ready.append(delivery)
            self.verified_position = checkpoint.last_position

    async def close(self, exc: BaseException | None = None) -> None:
        """Settle what was handed out (ack, or nak on ``exc``), nak the rest, disconnect."""
        nc, self._nc = self._nc, None
        if nc is None:
            return
        try:
            if self.current is not None and not self.current.settled:
                if exc is None and self.auto_ack:
                    await self.current.ack()
                else:
                    await self.current.nak()
            while self._ready:
                await self._ready.popleft()._msg.nak()
            for _, held in self._verifier.pending if self._verifier is not None else ():
                if held is not None:
                    await held._msg.nak()
            while self._buffer:
                await self._buffer.popleft().nak()
            await nc.flush(timeout=5)
            if self.durable is None and self.consumer is not None:
                with contextlib.suppress(Exception):
                    await nc.jsm().delete_consumer(self.stream, self.consumer)
        except Exception as error:  # the connection may be gone: JetStream redelivers later
            log.debug("closing subscription: %s", error)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(exc)

    async def info(self) -> Any:
        """The consumer's JetStream ``ConsumerInfo`` (delivered / ack floor / pending)."""
        if self._psub is None:
            raise SubscriberError("the subscription is not open")
        return await self._psub.consumer_info()

    async def pending(self) -> int:
        """Matching events not yet handed out (in the stream or fetched and buffered)."""
        info = await self.info()
        return int(info.num_pending or 0) + len(self._buffer)

    # --- receiving ----------------------------------------------------------------------

    async def next_delivery(self, timeout: float | None = None) -> Delivery | None:
        """The next delivery (settling the previous one first); None after ``timeout``."""
        from nats.errors import TimeoutError as NatsTimeout

        if self._psub is None:
            raise SubscriberError("the subscription is not open")
        previous = self.current
        if previous is not None and not previous.settled and self.auto_ack:
            await previous.ack()
        self.current = None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._verifier is not None:
                while self._buffer:
                    await self._admit_verified(self._buffer.popleft())
                if not self._ready and self._verifier.pending:
                    await self._poll_checkpoints()
                if self._ready:
                    self.current = self._ready.popleft()
                    return self.current
                if self._at_bound():
                    # Hold no more: wait for the checkpoint covering what is held.
                    wait = self.poll_interval
                    if deadline is not None:
                        wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        return None
                    await self._wait_at_bound(wait)
                    continue
            while self._buffer:
                delivery = await self._admit(self._buffer.popleft())
                if delivery is not None:
                    self.current = delivery
                    return delivery
            wait = self.fetch_timeout
            if self._verifier is not None and self._verifier.pending:
                wait = min(wait, self.poll_interval)  # the checkpoint covering them is due
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait < MIN_FETCH_SECONDS:
                    # (A shorter fetch would expire before the server saw it; a longer
                    # one would overrun the deadline.)
                    return None
            try:
                msgs = await self._fetch(max(wait, MIN_FETCH_SECONDS))
            except (NatsTimeout, TimeoutError):  # nats-py raises either
                continue
            except Exception as exc:
                if not _transient(exc, self._nc):
                    raise
                # NATS is away; the client reconnects on its own and the durable (or a
                # not yet expired ephemeral) consumer continues where it was.
                log.debug("fetch failed (%s: %s); retrying", type(exc).__name__, exc)
                pause = min(0.5, max(0.05, wait))
                if deadline is not None:
                    pause = min(pause, deadline - loop.time())
                await asyncio.sleep(max(pause, 0))
                continue
            self._buffer.extend(msgs)

    def _at_bound(self) -> bool:
        """Whether ``max_pending`` events are held (``HoldBound.at_bound``: a checkpoint
        beyond the bound raises ``SubscriberError``, a stall past ``stall_timeout``
        ``SubscriberStalled``)."""
        from ledger.bus_verify import HoldError, HoldStalled

        assert self._verifier is not None and self._feed is not None
        try:
            return self._bound.at_bound(self._verifier, self._feed, self.verified_position)
        except HoldStalled as exc:
            raise SubscriberStalled(str(exc)) from None
        except HoldError as exc:
            raise SubscriberError(str(exc)) from None

    async def _wait_at_bound(self, wait: float) -> None:
        """``max_pending`` events are held and no checkpoint covers them yet: wait (the
        next hint, or ``wait`` seconds) without fetching more (see ``HoldBound``)."""
        hint = self._checkpoint_hint
        if hint is None:
            await asyncio.sleep(wait)
            return
        hint.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hint.wait(), wait)

    async def _fetch(self, timeout: float) -> list[Msg]:
        """The next fetched messages, or an empty list when the loop should read the
        checkpoint stream first: with events held, caught up with the stream, and
        checkpoint hints coming, a checkpoint announced that covers them is read at once,
        and until one is the hint is waited for (``timeout`` at most) rather than a
        fetch (which, once under way, would hold the next event until its timeout)."""
        assert self._psub is not None
        hint, verifier = self._checkpoint_hint, self._verifier
        if (
            hint is not None
            and self._hints_allowed  # (else: a server that refused them; polling)
            and verifier is not None
            and verifier.pending
            and self._caught_up
        ):
            announced = self._announced
            if verifier.verified_size < announced <= verifier.next_leaf:
                # Announced, not read yet.  The stream stores a message just after the
                # server hands it to core subscribers: a read that misses it is retried
                # after 1, 2, 4, 8, 16 ms (a busy server); then fetching and polling
                # take over.
                size, reads = self._rechecks if self._rechecks[0] == announced else (announced, 0)
                if reads < 6:
                    self._rechecks = (size, reads + 1)
                    if reads:
                        await asyncio.sleep(min(0.001 * 2 ** (reads - 1), timeout))
                    return []
            elif announced <= verifier.verified_size:
                hint.clear()  # what it announced is read: wait for the next one
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hint.wait(), timeout)
                    return []
                # No hint in ``timeout``: take what has arrived meanwhile, without
                # waiting a second ``timeout`` for more (``next_delivery``'s deadline).
                timeout = MIN_FETCH_SECONDS
        batch = self.batch if verifier is None else min(self.batch, self._bound.room(verifier))
        self._caught_up = True  # until a fetch returns a full batch
        msgs = await self._psub.fetch(max(batch, 1), timeout=timeout)
        self._caught_up = len(msgs) < batch
        return msgs

    async def _admit(self, msg: Msg) -> Delivery | None:
        """The delivery to hand out, or None for a repeat (acked again) or a message that
        is not a ledger event (rejected: reported and terminated)."""
        try:
            delivery = decode_delivery(msg)
        except MalformedMessage as exc:
            await self._reject(msg, str(exc))
            return None
        position = delivery.position
        if position in self._nakked:
            self._nakked.discard(position)
        elif 0 < position <= self._handled and position not in self._unsettled:
            # Already handled here; its ack was lost (e.g. NATS restarted): ack again.
            # (Not one still being handled: with auto_ack=False a later event can be
            # acked first, and this one may yet be nakked.)
            self.skipped += 1
            await msg.ack()
            return None
        self._unsettled[position] += 1
        delivery._on_settle = self._settled
        return delivery

    async def _reject(self, msg: Msg, reason: str) -> None:
        """Report a malformed message: a log line, the count, ``on_rejected``.  It is
        terminated, not acknowledged: JetStream does not hand it to this consumer again
        (it would only be rejected again), and it stays in the stream for inspection."""
        try:
            seq = msg.metadata.sequence.stream
        except Exception:  # not even JetStream metadata
            seq = 0
        rejected = Rejected(seq, msg.subject, reason)
        self.rejected += 1
        self.last_rejected.append(rejected)
        log.warning("rejected a stream message that is not a ledger event: %s", rejected)
        if self.on_rejected is not None:
            self.on_rejected(rejected)
        await msg.term()

    def _settled(self, delivery: Delivery, acked: bool) -> None:
        self._unsettled[delivery.position] -= 1
        if self._unsettled[delivery.position] <= 0:
            del self._unsettled[delivery.position]
        if acked:
            self._handled = max(self._handled, delivery.position)
        else:
            self._nakked.add(delivery.position)

    async def deliveries(self) -> AsyncIterator[Delivery]:
        """Deliveries (event plus position, subject, ...) until the subscription closes."""
        while True:
            delivery = await self.next_delivery()
            assert delivery is not None
            yield delivery

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        delivery = await self.next_delivery()
        assert delivery is not None
        return delivery.event

    async def consume(
        self,
        handler: Callable[[Delivery], Awaitable[None] | None],
        *,
        limit: int | None = None,
        idle_timeout: float | None = None,
    ) -> int:
        """Call ``handler`` for each delivery; ack when it returns, nak if it raises.

        Returns the number handled, after ``limit`` deliveries or ``idle_timeout`` seconds
        without one (otherwise runs until cancelled).  A handler exception is re-raised
        after the nak.
        """
        handled = 0
        while limit is None or handled < limit:
            delivery = await self.next_delivery(idle_timeout)
            if delivery is None:
                break
            try:
                result = handler(delivery)
                if result is not None:
                    await result
            except BaseException:
                await delivery.nak()
                raise
            await delivery.ack()
            handled += 1
        return handled


def _transient(exc: BaseException, nc: Client | None) -> bool:
    """A NATS error while the client is (re)connecting, as opposed to a closed client."""
    from nats.errors import ConnectionClosedError

    if isinstance(exc, ConnectionClosedError) or nc is None or nc.is_closed:
        return False
    return (type(exc).__module__ or "").startswith("nats.") or isinstance(exc, OSError)


def _filters_of(config: Any) -> list[str]:
    if config.filter_subjects:
        return list(config.filter_subjects)
    return [config.filter_subject] if config.filter_subject else []


def subscribe(
    nats_url: str | None = None,
    *,
    durable: str | None = None,
    filters: Sequence[str] = (),
    start: Start = "beginning",
    settings: Settings | None = None,
    stream: str | None = None,
    subject_prefix: str | None = None,
    batch: int = 100,
    ack_wait: float = 30.0,
    auto_ack: bool = True,
    inactive_threshold: float = 300.0,
    fetch_timeout: float = 5.0,
    nats_options: dict[str, Any] | None = None,
    on_rejected: Callable[[Rejected], None] | None = None,
    verify: bool = False,
    verifier_key: VerifierKey | str | None = None,
    max_pending: int | None = None,
    stall_timeout: float | None = None,
) -> Subscription:
    """A subscription to the ledger's events; use ``async with subscribe(...) as sub``.

    ``nats_url``/``stream``/``subject_prefix`` default to the settings (environment:
    ``LEDGER_NATS_URL`` or the embedded server's ``$LEDGER_HOME/nats.url``,
    ``LEDGER_STREAM``, ``LEDGER_SUBJECT_PREFIX``).  See the module docstring for
    ``durable``, ``filters``, ``start`` and acknowledgement.  A durable name JetStream
    cannot use raises ``DurableNameError`` (a ``ValueError``) before connecting, and so
    does a filter that is not one or covers another (``SubjectError``, a ``ValueError``).
    ``nats_options`` (``nats.connect`` keyword arguments such as ``user``/``password``,
    ``nkeys_seed``, ``user_credentials``, ``tls``) default to the subscriber role's
    credentials from the settings (see ``ledger.config``).  A message in the stream that
    is not a ledger event (no or a non-numeric ``Ledger-Position``, a payload that does
    not decode) is never handed out: it is logged, counted (``Subscription.rejected``),
    passed to ``on_rejected`` and terminated.

    With ``verify=True`` at most ``max_pending`` events (default
    ``LEDGER_VERIFY_MAX_PENDING``, 50,000: the ledger signs a checkpoint at least that
    often) are held while no signed checkpoint covers them; at the bound nothing more
    is fetched until one does (forged events cannot make it grow), and a checkpoint
    further away (a record from before that rule) raises ``SubscriberError`` naming the
    bound it needs.  At the bound the subscription's ``stalled_since`` is set and a
    warning logged; after ``stall_timeout`` seconds there (default
    ``LEDGER_VERIFY_STALL_TIMEOUT``, 300) with no checkpoint covering anything held,
    ``next_delivery`` (and iteration) raises ``SubscriberStalled``, logged at error
    level, instead of waiting silently for ever.
    """
    from ledger.config import Settings
    from ledger.subjects import check_prefix, parse_filters

    if settings is None and (nats_url is None or stream is None or subject_prefix is None):
        settings = Settings.from_env()
    url = nats_url or (settings.resolved_nats_url() if settings else None)
    if not url:
        raise SubscriberError(
            "no NATS server configured: set LEDGER_NATS_URL or run `ledger serve`"
        )
    prefix = check_prefix(subject_prefix or (settings.subject_prefix if settings else "ledger"))
    if durable is not None:
        check_durable_name(durable)
    subjects = parse_filters(filters, prefix)  # SubjectError (a ValueError) before connecting
    key = None
    if verify:
        if subjects:
            raise SubscriberError(
                "verify=True recomputes the Merkle tree from every event: it takes no filters "
                "(filter in the loop instead)"
            )
        from ledger.audit import verifier_key as parse_key

        if verifier_key is None:
            raise SubscriberError(
                "verify=True needs the ledger's verifier key (verifier_key=, `ledger key` "
                "prints it)"
            )
        key = parse_key(verifier_key) if isinstance(verifier_key, str) else verifier_key
    if max_pending is not None and max_pending < 1:
        # 0 must not quietly mean the default: nothing could ever be released.
        raise ValueError(f"max_pending must be at least 1, got {max_pending}")
    if stall_timeout is not None and not stall_timeout > 0:
        raise ValueError(f"stall_timeout must be positive seconds, got {stall_timeout}")
    if nats_options is None:
        nats_options = (settings or Settings.from_env()).nats_options("subscriber")
    return Subscription(
        url,
        stream=stream or (settings.stream if settings else "LEDGER"),
        prefix=prefix,
        durable=durable,
        filters=subjects,
        start=start,
        batch=batch,
        ack_wait=ack_wait,
        auto_ack=auto_ack,
        inactive_threshold=inactive_threshold,
        fetch_timeout=fetch_timeout,
        nats_options=nats_options,
        on_rejected=on_rejected,
        verify=verify,
        verifier_key=key,
        max_pending=(
            max_pending
            if max_pending is not None
            else (settings or Settings.from_env()).verify_max_pending
        ),
        stall_timeout=(
            stall_timeout
            if stall_timeout is not None
            else (settings or Settings.from_env()).verify_stall_timeout
        ),
    )
