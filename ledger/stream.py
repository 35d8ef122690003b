"""The ledger's JetStream stream: its configuration, headers, and how to find a position in it.

Shared by the relay (which writes the stream), the subscriber client and ``ledger status``.

Each stream message is one event: the payload is the event's JSON exactly as stored, the
subject is ``ledger.subjects.event_subject(...)``, and the headers are

======================  ==========================================================
``Nats-Msg-Id``          event id (JetStream de-duplicates on it)
``Ledger-Position``      the event's position in the store's notification log
``Ledger-Event-Type``    e.g. ``LicenceGranted``
``Ledger-Entity``        ``kind:id``, e.g. ``licence:GL.1``
``Ledger-Effective-At``  RFC 3339, as in the payload
``Ledger-Recorded-At``   RFC 3339, as in the payload
``Ledger-Schema-Version`` the event type's schema version
======================  ==========================================================

The relay keeps the stream a gap-free prefix of the notification log, so both
``Ledger-Position`` and ``Ledger-Recorded-At`` increase with the stream sequence; that makes
"the first message at or after position P / recorded time T" a binary search over
``get_msg``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.api import RawStreamMsg, StreamInfo
    from nats.js.manager import JetStreamManager

log = logging.getLogger("ledger.stream")

MSG_ID = "Nats-Msg-Id"
POSITION = "Ledger-Position"
EVENT_TYPE = "Ledger-Event-Type"
ENTITY = "Ledger-Entity"
EFFECTIVE_AT = "Ledger-Effective-At"
RECORDED_AT = "Ledger-Recorded-At"
SCHEMA_VERSION = "Ledger-Schema-Version"

DEFAULT_DUPLICATE_WINDOW = 120.0

PROJECTOR_CONSUMER = "ledger-views"
"""The durable consumer of the NATS projector (only its role may use it)."""


class NatsUnavailable(RuntimeError):
    """No NATS server answered at the configured URL."""


class NatsRefused(NatsUnavailable):
    """The NATS server answered but refused the client's credentials."""


async def connect(
    url: str,
    *,
    name: str = "ledger",
    connect_timeout: float = 3.0,
    attempts: int = 1,
    **options: Any,
) -> Client:
    """Connect to NATS, raising ``NatsUnavailable`` (naming the URL) when nobody answers.

    ``attempts`` bounds the initial connection attempts; once connected the client
    reconnects on its own (``max_reconnect_attempts`` attempts, default forever).
    """
    import ssl

    import nats
    from nats.errors import NoServersError

    servers = check_nats_url(url)
    options.setdefault("max_reconnect_attempts", -1)
    options.setdefault("reconnect_time_wait", 1)
    errors: list[BaseException] = []
    caller_error_cb = options.pop("error_cb", None)

    async def on_error(exc: Exception) -> None:
        errors.append(exc)
        log.debug("nats: %s", exc)
        if caller_error_cb is not None:
            await caller_error_cb(exc)

    options["error_cb"] = on_error
    wanted_attempts = options.pop("max_reconnect_attempts")
    wanted_wait = options.pop("reconnect_time_wait")
    for _ in range(max(1, attempts)):
        # The client's own retry loop would run up to max_reconnect_attempts times (forever
        # when negative) before the first connection, so the first connection is tried
        # briefly here and the reconnect options are restored once connected.
        try:
            # Bounded here too: nats-py 2.16 never returns when a TLS handshake fails
            # (a server certificate the CA did not sign).
            nc = await asyncio.wait_for(
                nats.connect(
                    servers,
                    name=name,
                    connect_timeout=max(1, round(connect_timeout)),
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.1,
                    **options,
                ),
                timeout=2 * len(servers) * max(1, round(connect_timeout)) + 1,
            )
        except (NoServersError, OSError, TimeoutError) as exc:
            errors.append(exc)
            continue
        nc.options["max_reconnect_attempts"] = wanted_attempts
        nc.options["reconnect_time_wait"] = wanted_wait
        return nc
    from ledger.config import redact_url

    refusal = next((e for e in errors if "authorization" in str(e).lower()), None)
    if refusal is not None:
        raise NatsRefused(
            f"the NATS server at {redact_url(url)} refused the connection ({refusal}): "
            "check the NATS credentials (LEDGER_NATS_USER/LEDGER_NATS_PASSWORD, LEDGER_NATS_CREDS, "
            "LEDGER_NATS_NKEY_SEED; without LEDGER_NATS_URL, the seeds `ledger serve` keeps "
            "in $LEDGER_HOME/nats-auth)"
        )
    untrusted = next((e for e in errors if isinstance(e, ssl.SSLError)), None)
    if untrusted is not None:
        raise NatsUnavailable(
            f"TLS with the NATS server at {redact_url(url)} failed ({untrusted}): is "
            "LEDGER_NATS_CA the CA that signed the server's certificate?"
        )
    reason = errors[-1] if errors else "no answer"
    raise NatsUnavailable(
        f"no NATS server at {redact_url(url)} ({type(reason).__name__}: {reason})".strip()
    )


def check_nats_url(url: str) -> list[str]:
    """The servers of a (comma-separated) NATS URL; ``ConfigError`` if one cannot be a
    server address (a configuration mistake, not an outage to retry)."""
    from urllib.parse import urlparse

    from ledger.config import ConfigError, redact_url

    servers = [u.strip() for u in url.split(",") if u.strip()]
    for server in servers:
        parsed = urlparse(server if "://" in server else f"nats://{server}")
        try:
            parsed.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise ConfigError(f"'{redact_url(server)}' is not a NATS server URL: {exc}") from None
        if parsed.scheme not in ("nats", "tls", "ws", "wss") or not parsed.hostname:
            raise ConfigError(
                f"'{redact_url(server)}' is not a NATS server URL (nats://host:port, e.g. "
                "nats://127.0.0.1:4222)"
            )
    if not servers:
        raise ConfigError("the NATS URL is empty")
    return servers


MAX_POSITION_DIGITS = 19
"""A ``Ledger-Position`` longer than this is not one (positions are 64-bit integers)."""


def parse_position(value: str | None) -> int | None:
    """The ledger position a ``Ledger-Position`` header carries; None unless it is a
    plain positive decimal number (a header anyone could have written)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > MAX_POSITION_DIGITS:
        return None
    position = int(text)
    return position if position > 0 else None


def describe_message(seq: int, subject: str | None) -> str:
    return f"seq {seq}" + (f" (subject {subject[:200]})" if subject else "")


@dataclass(frozen=True)
class StreamHead:
    """The stream's last message: its sequence and the ledger position it carries."""

    seq: int
    """Stream sequence of the last message (0 for an empty stream)."""
    position: int
    """Ledger position in the newest message that has one (0 if none)."""
    event_id: str | None = None
    messages: int = 0
    data: bytes = b""
    """The payload of the message that carries ``position``."""
    problem: str | None = None
    """Why the last message is not one of the ledger's events (no valid
    ``Ledger-Position``), when it is not."""


def stream_config_dict(
    stream: str, prefix: str, replicas: int, duplicate_window: float
) -> dict[str, Any]:
    from ledger.subjects import stream_subjects

    return {
        "name": stream,
        "subjects": stream_subjects(prefix),
        "replicas": replicas,
        "duplicate_window": duplicate_window,
    }


async def ensure_stream(
    jsm: JetStreamManager,
    stream: str,
    prefix: str,
    *,
    replicas: int = 1,
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
) -> StreamInfo:
    """Create the stream (file storage), or update subjects/replicas/duplicate window."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    from ledger.subjects import stream_subjects

    subjects = stream_subjects(prefix)
    try:
        info = await jsm.stream_info(stream)
    except NotFoundError:
        config = StreamConfig(
            name=stream,
            description="Ledger events in notification-log order (published by `ledger relay`)",
            subjects=subjects,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=duplicate_window,
            allow_direct=True,
        )
        info = await jsm.add_stream(config)
        log.info(
            "created stream %s (subjects %s, file storage, %d replica(s), duplicate window %gs)",
            stream,
            ", ".join(subjects),
            replicas,
            duplicate_window,
        )
        return info
    current = info.config
    if current.storage is not None and current.storage != StorageType.FILE:
        log.warning("stream %s uses %s storage, not file storage", stream, current.storage)
    missing = [s for s in subjects if s not in (current.subjects or [])]
    changes: dict[str, Any] = {}
    if missing:
        changes["subjects"] = [*(current.subjects or []), *missing]
    if (current.num_replicas or 1) != replicas:
        changes["num_replicas"] = replicas
    if abs((current.duplicate_window or 0) - duplicate_window) > 1e-6:
        changes["duplicate_window"] = duplicate_window
    if changes:
        info = await jsm.update_stream(current.evolve(**changes))
        log.info("updated stream %s: %s", stream, changes)
    return info


async def get_msg(jsm: JetStreamManager, stream: str, seq: int) -> RawStreamMsg | None:
    """The stored message at ``seq`` (None if that sequence holds no message)."""
    from nats.js.errors import NotFoundError

    try:
        return await jsm.get_msg(stream, seq)
    except NotFoundError:
        return None


def header(msg: RawStreamMsg, name: str) -> str | None:
    headers = msg.headers or {}
    value = headers.get(name)
    return None if value is None else str(value)


async def read_head(jsm: JetStreamManager, stream: str, *, scan_limit: int = 1000) -> StreamHead:
    """The stream's last sequence and the newest ledger position stored in it.

    Messages without a valid ``Ledger-Position`` header (not published by the relay) are
    skipped, looking back at most ``scan_limit`` messages; if the last message is one of
    them, ``problem`` says so (the relay refuses to resume after it).
    """
    info = await jsm.stream_info(stream)
    last_seq = info.state.last_seq
    seq = last_seq
    first = max(info.state.first_seq, 1)
    problem: str | None = None
    while seq >= first and last_seq - seq < scan_limit:
        msg = await get_msg(jsm, stream, seq)
        if msg is not None:
            raw = header(msg, POSITION)
            position = parse_position(raw)
            if position is not None:
                return StreamHead(
                    last_seq,
                    position,
                    header(msg, MSG_ID),
                    info.state.messages,
                    msg.data or b"",
                    problem,
                )
            if problem is None:
                problem = (
                    f"{describe_message(seq, msg.subject)} carries "
                    + ("no Ledger-Position" if raw is None else f"Ledger-Position {raw[:40]!r}")
                    + ", so it is not an event published by the ledger's relay"
                )
        seq -= 1
    return StreamHead(last_seq, 0, None, info.state.messages, b"", problem)


async def first_seq_where(
    jsm: JetStreamManager,
    stream: str,
    reached: Callable[[RawStreamMsg], bool | None],
) -> int:
    """Where a consumer starts to see every message that satisfies ``reached`` (monotonic
    in seq): the first such message's sequence, or, when no stored message satisfies it
    yet, the sequence just past the last message the search saw.

    Binary search over ``get_msg``; sequences without a message (deleted) and messages
    for which ``reached`` answers None (not a ledger event: junk must not steer the
    search) are skipped forwards.  The "none yet" answer comes from the same stream info
    as the search: a message published after the search comes after the messages
    searched.  (Asking the stream for its last sequence again would skip whatever was
    published in between.)
    """
    info = await jsm.stream_info(stream)
    lo, hi = max(info.state.first_seq, 1), info.state.last_seq
    answer = info.state.last_seq + 1
    if info.state.messages == 0 or hi < lo:
        return answer
    while lo <= hi:
        mid = (lo + hi) // 2
        found = await _msg_at_or_after(jsm, stream, mid, hi, reached)
        if found is None:  # nothing usable stored in [mid, hi]
            hi = mid - 1
            continue
        seq, is_reached = found
        if is_reached:
            answer = seq
            hi = mid - 1
        else:
            lo = seq + 1
    return answer


async def _msg_at_or_after(
    jsm: JetStreamManager,
    stream: str,
    seq: int,
    hi: int,
    reached: Callable[[RawStreamMsg], bool | None],
) -> tuple[int, bool] | None:
    while seq <= hi:
        msg = await get_msg(jsm, stream, seq)
        if msg is not None:
            answer = reached(msg)
            if answer is not None:
                return seq, answer
        seq += 1
    return None


async def seq_for_position(jsm: JetStreamManager, stream: str, position: int) -> int:
    """Stream sequence of the first event at or after ledger ``position`` (or where it
    will be: see ``first_seq_where``)."""

    def reached(msg: RawStreamMsg) -> bool | None:
        value = parse_position(header(msg, POSITION))
        return None if value is None else value >= position

    return await first_seq_where(jsm, stream, reached)


async def seq_for_recorded_time(jsm: JetStreamManager, stream: str, since: dt.datetime) -> int:
    """Stream sequence of the first event recorded at or after ``since`` (or where it will
    be: see ``first_seq_where``)."""

    def reached(msg: RawStreamMsg) -> bool | None:
        value = header(msg, RECORDED_AT)
        if value is None or parse_position(header(msg, POSITION)) is None:
            return None
        try:
            recorded = dt.datetime.fromisoformat(value)
        except ValueError:  # not written by the relay: not a ledger event
            return None
        if recorded.tzinfo is None:
            return None
        return recorded >= since

    return await first_seq_where(jsm, stream, reached)
