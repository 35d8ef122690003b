"""Running the projector: catch up, follow the store or the NATS stream, resume after a crash.

- **store** source: the notification log.  Catching up reads it in large pages
  (``select_payloads``); following uses ``ledger.store.follow.StoreFollower`` (woken by
  the store's commit hints: file notifications on SQLite, LISTEN on PostgreSQL; polling
  as the fallback) and applies whatever has arrived as one batch.
- **nats** source: the ``LEDGER`` stream through a durable pull consumer.  Every message
  is verified against the Merkle tree and the signed checkpoints, as by
  ``subscribe(verify=True)`` (``ledger.bus_verify``: leaf indexes in order, leaves adding
  up to each checkpoint's root, signatures against the ledger's key); messages are held
  until a checkpoint covers them, then compared byte for byte with the store's events,
  decoded (``decode_event(payload, topic)``), applied, written with the tracking record
  of the highest ``Ledger-Position``, and only then acknowledged.  Junk (no position or
  leaf index) is reported and counted; a message that does not belong (forged, altered,
  reordered, missing) is refused with its exact position, counted, never applied, and
  the store's own events are applied in its place.

Either way the position is the store's notification id, tracked under ``views`` in the
library's tracking table in the same transaction as the rows, so the two sources are
interchangeable and a restart never double-applies.  An entity not in memory (after a
restart) is reloaded from the store: its events up to the tracked position and its
current rows.

``run_forever(settings, stop)`` is what ``ledger serve`` runs in a thread;
``ledger project`` runs it in the foreground (or ``--once``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ledger import events as ev
from ledger import stream as st
from ledger.app import gc_paused
from ledger.projections.projector import Projector, cache_budget
from ledger.projections.store import ViewsMoved, ViewStore
from ledger.projections.stores import view_store
from ledger.store.codec import decode_event, decode_stored

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.config import Settings

log = logging.getLogger("ledger.projector")

PAGE = 20_000
"""Events read per page when catching up."""
BATCH_ENV = "LEDGER_PROJECTOR_BATCH"
DEFAULT_BATCH = 10_000
"""Events applied per transaction at most, by default.  A batch's changes are held in
memory until written, and in the writer process's too (they go down its pipe): ~5 KB an
event in all.  Each write rewrites the pages of the current rows' ``(key, vf)`` index that
the batch touches, and at 1M events that index outgrows the writer's page cache, so fewer,
larger writes rewrite fewer pages per event: a 1M-event rebuild took ~20 % less CPU at
10,000 than at 5,000 for +25 MiB at every ledger size (4 Dec 2026; docs/performance.md,
"Rebuild batches of 10,000").  At 25,000 a batch took ~100 MiB in each process."""
MAX_BATCH = 100_000
"""The most ``LEDGER_PROJECTOR_BATCH`` may ask for (~500 MB of changes in flight)."""


def batch_events(value: str | None = None) -> int:
    """Events per views transaction from ``LEDGER_PROJECTOR_BATCH`` (or ``value``): a whole
    number from 1 to ``MAX_BATCH``; unset or empty: ``DEFAULT_BATCH``.  Raises
    ``ConfigError`` naming the variable on anything else (0 would never write a batch)."""
    from ledger.config import ConfigError

    raw = os.environ.get(BATCH_ENV) if value is None else value
    if raw is None or not raw.strip():
        return DEFAULT_BATCH
    text = raw.strip().replace("_", "")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_BATCH:
        raise ConfigError(
            f"{BATCH_ENV}={raw!r}: expected a whole number of events from 1 to {MAX_BATCH:,} "
            f"(default {DEFAULT_BATCH:,})"
        )
    return int(text)


PARALLEL_WRITES_FROM = 50_000
"""A catch-up of at least this many events (several batches) writes each batch in a
second process while it applies the next (``ledger.projections.writer``), on a machine with more
than one CPU."""
SKIPPED_TOPICS = frozenset({"ApplicationSubmitted", "ApplicationDecided"})
"""Event types no stored view uses (applications are decided on demand)."""
DURABLE = st.PROJECTOR_CONSUMER
VIEWS_CONSUMER = "views"
"""The name the NATS projector's rejection counts are kept under (``ledger status``)."""


def history_loader(
    app: Ledger,
) -> Callable[[Sequence[str], int], Iterable[tuple[str, Iterable[ev.Event]]]]:
    """Entities' events from the store, up to a position (recorded order: an entity's
    versions), many entities per query, read from the cursor one entity at a time and
    each decoded as it is iterated (``Ledger.stream_entities``)."""

    def load(keys: Sequence[str], upto: int) -> Iterable[tuple[str, Iterable[ev.Event]]]:
        for key, found in app.stream_entities(keys, upto=upto):
            yield key, (r.event for r in found)

    return load


def new_projector(
    app: Ledger, store: ViewStore | None = None, *, budget: int | Literal["env"] | None = "env"
) -> Projector:
    """``budget``: the entity cache's size in bytes (None: unlimited; default:
    ``LEDGER_PROJECTOR_CACHE``)."""
    return Projector(store or view_store(app), history_loader(app), budget=budget)


@dataclass
class Progress:
    applied: int = 0
    position: int = 0
    seconds: float = 0.0


def apply_payloads(
    app: Ledger, projector: Projector, rows: Sequence[tuple[int, str, bytes | None]]
) -> int:
    """Apply a page of ``EventIndex.select_payloads`` rows, position order, without
    writing; returns how many events the page covered (skipped types included)."""
    if not rows:
        return 0
    # Stored as the event's JSON unless a cipher or compressor is configured.  Decoded
    # without re-checking the contract's constraints (``decode_stored``): the store holds
    # only events that passed them.
    payload = None if app.stores_plain_json else app.payload
    with gc_paused():
        items = [
            (position, decode_stored(payload(state) if payload else state, topic))
            for position, topic, state in rows
            if state is not None
        ]
        projector.prefetch(f"{e.entity_kind}:{e.entity_id}" for _, e in items)
        projector.process(items, flush=False, upto=rows[-1][0])
    return len(rows)


def catch_up(
    app: Ledger,
    projector: Projector,
    *,
    until: int | None = None,
    flush_events: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    parallel_from: int | None = None,
) -> Progress:
    """Apply every stored event after the tracked position (up to ``until``).

    The cyclic garbage collector is paused meanwhile: the projector's cache holds many
    long-lived containers that every collection would rescan.  A long catch-up (at
    least ``parallel_from`` events; default: ``PARALLEL_WRITES_FROM`` when there is more
    than one CPU) writes in a second process.
    """
    if flush_events is None:
        flush_events = batch_events()
    if parallel_from is None:
        parallel_from = PARALLEL_WRITES_FROM if _cpus() > 1 else 2**62
    target = app.head() if until is None else until
    backlog = target - projector.position
    writer = None
    if backlog >= parallel_from and projector.writer is None:
        from ledger.projections.writer import ProcessWriter

        writer = projector.writer = ProcessWriter(app.settings)
    # From empty views (a rebuild), or after a rebuild stopped before its end: the
    # secondary indexes are built once, by the batch that reaches the target.
    if backlog > 0:
        projector.defer_indexes(target)
    try:
        with gc_paused():
            progress = _catch_up(app, projector, target, flush_events, on_progress)
        projector.build_indexes()  # if no batch did (nothing was left to write)
        return progress
    finally:
        projector.indexes_at = None  # after an error: the next batch builds them
        if writer is not None:
            try:
                projector.wait()  # after an error: the write in flight, before it goes
            finally:
                projector.writer = None
                writer.close()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _catch_up(
    app: Ledger,
    projector: Projector,
    until: int | None,
    flush_events: int,
    on_progress: Callable[[Progress], None] | None,
) -> Progress:
    started = time.perf_counter()
    progress = Progress(position=projector.position)
    target = app.head() if until is None else until
    while projector.applied_position < target:
        try:
            while True:
                notes = app.read_stored(
                    projector.applied_position,
                    min(PAGE, flush_events),
                    stop=target,
                    skip_types=tuple(SKIPPED_TOPICS),
                )
                if not notes:
                    break
                progress.applied += apply_payloads(app, projector, notes)
                if projector.pending_events >= flush_events:
                    break
            projector.flush(background=True)  # in the writer process, if there is one
        except ViewsMoved:
            continue  # another projector wrote meanwhile: resume from its position
        progress.position = projector.applied_position
        progress.seconds = time.perf_counter() - started
        if on_progress is not None:
            on_progress(progress)
        if projector.pending_events == 0 and not notes:
            break
    try:
        projector.wait()
    except ViewsMoved:
        return _catch_up(app, projector, until, flush_events, on_progress)
    progress.position = projector.position
    progress.seconds = time.perf_counter() - started
    return progress


# --- following ------------------------------------------------------------------------


@dataclass
class RunResult:
    source: str
    position: int = 0
    applied: int = 0
    seconds: float = 0.0
    rejected: int = 0
    """Stream messages not applied (NATS source): ``malformed`` + ``refused``."""
    malformed: int = 0
    """Not a ledger event (no position or leaf index), or not the store's bytes."""
    refused: int = 0
    """Verification failures: a message not in the signed tree (forged, altered,
    reordered, missing); the store's events were applied in its place."""
    purged: int = 0
    """Times the stream's head had been purged (its limits, its age) of events the
    projector still needed: not a refusal; the store's events were applied instead."""
    evicted: int = 0
    reloaded: int = 0
    """Entities evicted from the projector's cache (``LEDGER_PROJECTOR_CACHE``) and
    entities reloaded from the store."""
    held: int = 0
    """Stream messages held now (NATS source), waiting for a signed checkpoint to cover
    them: at most ``LEDGER_VERIFY_MAX_PENDING`` (``ledger.bus_verify.HoldBound``)."""
    held_since: float | None = None
    """``time.monotonic()`` when the oldest of them was received (None: none held)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "position": self.position,
            "applied": self.applied,
            "rejected": self.rejected,
            "malformed": self.malformed,
            "refused": self.refused,
            "purged": self.purged,
            "evicted": self.evicted,
            "reloaded": self.reloaded,
            "held": self.held,
            "seconds": round(self.seconds, 3),
        }


PROJECTOR_SQLITE = {"SQLITE_CACHE_KIB": "8192", "SQLITE_MMAP_SIZE": "0"}
"""The projector's SQLite connections (its own and its writer process's): an 8 MiB page
cache and no memory map, instead of the ledger's 64 MiB and 2 GiB.  Both fill with the
database's size (the map's pages count in the process's memory), so with the defaults a
rebuild's memory grows with the ledger; the projector reads events in order and writes
rows in order, which a small cache serves as well."""


def open_app(settings: Settings) -> Ledger:
    """The projector's own ledger application (``PROJECTOR_SQLITE``)."""
    from ledger.app import Ledger

    if settings.backend == "sqlite":
        settings = dataclasses.replace(settings, extra={**PROJECTOR_SQLITE, **settings.extra})
    return Ledger(settings)


def follow_store(
    app: Ledger,
    projector: Projector,
    stop: threading.Event,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    result: RunResult | None = None,
) -> None:
    """Catch up, then apply new events as soon as the store hints at their commit."""
    from ledger.store.follow import StoreFollower

    result = result or RunResult("store")
    batch_size = batch_events()
    started = time.perf_counter()
    while not stop.is_set():
        result.applied += catch_up(app, projector).applied
        follower = StoreFollower(app, projector.position, skip_topics=tuple(SKIPPED_TOPICS))
        try:
            with follower:
                while not stop.is_set():
                    batch = follower.next_batch(timeout=0.5, max_items=batch_size)
                    if not batch:
                        continue
                    applied = apply_payloads(app, projector, batch)
                    if applied:
                        projector.flush()
                    result.applied += applied
                    result.position = projector.position
                    if on_progress is not None:
                        elapsed = time.perf_counter() - started
                        on_progress(Progress(result.applied, projector.position, elapsed))
        except ViewsMoved:
            continue  # another projector wrote: follow on after its position
    result.position = projector.position


def run(
    settings: Settings,
    stop: threading.Event,
    *,
    source: str = "store",
    once: bool = False,
    rebuild: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    result: RunResult | None = None,
) -> RunResult:
    """Run the projector: catch up (``once``) or keep following until ``stop`` is set.

    ``result``: the caller's record to fill in as the run goes (metrics read it live)."""
    started = time.perf_counter()
    result = result if result is not None else RunResult(source)
    app = open_app(settings)
    try:
        # Read before anything is dropped: a malformed budget must leave the views as
        # they were, not refuse after --rebuild has emptied them.
        budget = cache_budget()
        batch_events()
        store = view_store(app)
        if rebuild:
            store.reset()
        projector = new_projector(app, store, budget=budget)
        try:
            _run(app, projector, stop, source, once, on_progress, result)
        finally:
            result.evicted, result.reloaded = projector.evicted, projector.reloaded
    finally:
        app.close()
    result.seconds = time.perf_counter() - started
    return result


def _run(
    app: Ledger,
    projector: Projector,
    stop: threading.Event,
    source: str,
    once: bool,
    on_progress: Callable[[Progress], None] | None,
    result: RunResult,
) -> None:
    if source == "store":
        if once:
            progress = catch_up(app, projector, on_progress=on_progress)
            result.applied = progress.applied
        else:
            follow_store(app, projector, stop, on_progress=on_progress, result=result)
    elif source == "nats":
        asyncio.run(follow_nats(app, projector, stop, once=once, result=result))
    else:
        raise ValueError(f"unknown source {source!r}: store or nats")
    result.position = projector.position


@dataclass
class ProjectorTotals:
    """What a projector did since its process started, across restarts (for metrics)."""

    runs: list[RunResult] = field(default_factory=list)
    errors: int = 0
    """Runs that stopped on an error (and were retried)."""

    def start(self, source: str) -> RunResult:
        result = RunResult(source)
        self.runs.append(result)
        return result

    @property
    def applied(self) -> int:
        return sum(r.applied for r in self.runs)

    @property
    def rejected(self) -> int:
        return sum(r.rejected for r in self.runs)

    @property
    def held(self) -> int:
        """Stream messages the current run holds for a checkpoint."""
        return self.runs[-1].held if self.runs else 0

    @property
    def held_since(self) -> float | None:
        return self.runs[-1].held_since if self.runs else None


def run_forever(
    settings: Settings, stop: threading.Event, totals: ProjectorTotals | None = None
) -> None:
    """Keep the views current until ``stop`` is set (what ``ledger serve`` runs in a thread).

    The source is the store, or the NATS stream when ``LEDGER_PROJECTOR_SOURCE=nats``.
    Failures (database or NATS unreachable) are logged and retried with backoff.
    """
    source = os.environ.get("LEDGER_PROJECTOR_SOURCE", "store")
    totals = totals if totals is not None else ProjectorTotals()
    backoff = 0.5
    while not stop.is_set():
        try:
            run(settings, stop, source=source, result=totals.start(source))
            backoff = 0.5
        except Exception as exc:
            totals.errors += 1
            log.warning(
                "projector stopped (%s: %s); retrying in %.1f s", type(exc).__name__, exc, backoff
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)


# --- the NATS source --------------------------------------------------------------------


async def follow_nats(
    app: Ledger,
    projector: Projector,
    stop: threading.Event,
    *,
    once: bool = False,
    result: RunResult | None = None,
    fetch: int = 5_000,
    fetch_timeout: float = 0.5,
) -> None:
    """Apply the events of the ledger's JetStream stream through a durable pull consumer."""
    from ledger import stream as st

    settings = app.settings
    url = settings.resolved_nats_url()
    if not url:
        raise st.NatsUnavailable(
            "no NATS server configured: set LEDGER_NATS_URL or run `ledger serve`"
        )

    result = result or RunResult("nats")
    nc = await st.connect(url, name="ledger-projector", **settings.nats_options("projector"))
    timeouts = 0
    session = _NatsSession()
    try:
        while not stop.is_set():
            try:
                done = await _consume(
                    nc,
                    app,
                    projector,
                    stop,
                    once=once,
                    result=result,
                    fetch=fetch,
                    fetch_timeout=fetch_timeout,
                    session=session,
                )
            except ViewsMoved:
                continue  # reposition the consumer after the other projector's position
            except TimeoutError:  # nats-py raises its own subclass or asyncio's
                # A JetStream request (stream/consumer info) timed out: the server is busy.
                # The tracked position is unchanged, so a new session resumes exactly.
                timeouts += 1
                if once and timeouts >= 3:
                    raise
                log.warning("NATS request timed out; resuming the consumer (%d)", timeouts)
                await asyncio.sleep(min(0.5 * timeouts, 5.0))
                continue
            if done:
                break
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def _verified(
    app: Ledger, after: int, msgs: Sequence[Any], result: RunResult
) -> tuple[list[tuple[int, ev.Event]], list[int], int]:
    """The events of ``msgs`` after position ``after`` that are byte for byte the store's
    events at the positions they claim: (position, event) to apply, the delivered
    positions, the newest one.

    The projector writes the views into the store's own database, so the store is what a
    message must match; anything else (no or a non-numeric ``Ledger-Position``, a
    position the store does not have, other bytes than the stored event's: forged,
    altered or foreign) is never applied, and reported (a log line naming the stream
    sequence, ``RunResult.rejected``).  The store's events at positions the stream
    did not deliver are read from the store (``_missing_from_stream``).
    """
    candidates: list[tuple[int, Any]] = []
    for m in msgs:
        raw = (m.headers or {}).get(st.POSITION)
        pos = st.parse_position(raw)
        if pos is None:
            what = "no Ledger-Position" if raw is None else f"Ledger-Position {raw[:40]!r}"
            _reject(result, m, f"{what}: not a ledger event")
            continue
        if pos > after:
            candidates.append((pos, m))
    if not candidates:
        return [], [], 0
    lo = min(pos for pos, _ in candidates)
    hi = max(pos for pos, _ in candidates)
    stored = {
        position: (topic, state)
        for position, topic, state in app.read_stored(lo - 1, hi - lo + 1, stop=hi)
        if state is not None
    }
    items: list[tuple[int, ev.Event]] = []
    delivered: list[int] = []
    seen: set[int] = set()
    upto = 0
    for pos, m in candidates:
        entry = stored.get(pos)
        if entry is None:
            _reject(result, m, f"claims position {pos}, where the store has no event")
            continue
        topic, state = entry
        payload = app.payload(state)
        if payload != m.data:
            _reject(result, m, f"claims position {pos}, but is not the store's event there")
            continue
        if pos in seen:
            continue  # a second copy of the same event (one forged with the same bytes)
        seen.add(pos)
        delivered.append(pos)
        upto = max(upto, pos)
        if topic not in SKIPPED_TOPICS:
            items.append((pos, decode_event(payload, topic)))
    return items, delivered, upto


def _reject(result: RunResult, msg: Any, reason: str) -> None:
    try:
        seq = msg.metadata.sequence.stream
    except Exception:  # not even JetStream metadata
        seq = 0
    result.rejected += 1
    result.malformed += 1
    log.warning(
        "not applying stream message %s: %s (forged, altered or foreign)",
        st.describe_message(seq, msg.subject),
        reason,
    )


def _missing_from_stream(
    app: Ledger, after: int, delivered: Sequence[int]
) -> list[tuple[int, str, bytes | None]]:
    """The store's notifications after ``after`` and before the last delivered position
    that the stream did not deliver (a purged or lossy stream).

    Positions can skip numbers (PostgreSQL), so a jump is only a gap if the store has
    events in it; consecutive positions (the usual case) need no look-up.
    """
    missing: list[tuple[int, str, bytes | None]] = []
    previous = after
    for pos in sorted(delivered):
        if pos > previous + 1:
            missing += app.read_stored(previous, pos - previous - 1, stop=pos - 1)
        previous = max(previous, pos)
    return missing


@dataclass
class _NatsSession:
    """What the NATS source carries from one consumer session to the next."""

    skip_to: int = 0
    """The stream sequence the next session starts at, at least: past messages that did
    not verify (the store's events were applied in their place)."""
    persisted: tuple[int, int, int] = (0, 0, 0)
    """The (malformed, refused, purged) counts of the run already added to the stored ones."""


def _persist_rejections(app: Ledger, result: RunResult, session: _NatsSession) -> None:
    """Add the rejections (and purged heads) since the last call to the counts ``ledger
    status`` shows."""
    from ledger.bus_verify import record_rejections

    counts = (result.malformed, result.refused, result.purged)
    if counts == session.persisted:
        return
    try:
        record_rejections(
            app,
            VIEWS_CONSUMER,
            {
                kind: now - before
                for kind, now, before in zip(
                    ("malformed", "refused", "purged"), counts, session.persisted, strict=True
                )
            },
        )
    except Exception as exc:  # a count is not worth stopping the projector for
        log.warning("could not record the rejection counts: %s", exc)
        return
    session.persisted = counts


async def _prime(app: Ledger, jsm: Any, stream: str, position: int, first_seq: int) -> Any:
    """(verifier, feed) for the events after the tracked ``position``: the tree up to it
    is the store's own (the leaf index of ``position`` in the store's tree), checked
    against the signed checkpoint at or before it."""
    from ledger.bus_verify import leaf_indexes, prime

    key = _pinned_key(app)
    leaves = await asyncio.to_thread(leaf_indexes, app, [position]) if position else {}
    next_leaf = leaves[position] + 1 if position in leaves else 0
    return await prime(jsm, stream, key, next_leaf, first_seq)


def _pinned_key(app: Ledger) -> Any:
    """The ledger's verifier key: ``LEDGER_SIGNING_KEY``'s or the home's, never made
    here (a key of its own would verify no checkpoint the ledger signed)."""
    from ledger.config import ConfigError

    config = app.settings
    if not config.has_signing_key:
        raise ConfigError(
            "the NATS projector verifies the stream against the ledger's signing key, and "
            f"there is none at {config.signing_key_path}: set LEDGER_SIGNING_KEY to the "
            "ledger's key file, or run it in the ledger's home"
        )
    return app.signing_key().verifier


def _admissible(msg: Any, result: RunResult) -> int | None:
    """The position of a message that looks like the relay's (a position and a leaf
    index), for the verifier; anything else is rejected here (junk: reported, counted)."""
    from ledger.bus_verify import LEAF

    headers = msg.headers or {}
    raw = headers.get(st.POSITION)
    pos = st.parse_position(raw)
    if pos is None:
        what = "no Ledger-Position" if raw is None else f"Ledger-Position {raw[:40]!r}"
        _reject(result, msg, f"{what}: not a ledger event")
        return None
    leaf = headers.get(LEAF)
    if leaf is None or not leaf.isdigit() or len(leaf) > 19:
        _reject(result, msg, f"claims position {pos} but carries no leaf index: not the relay's")
        return None
    return pos


async def _consume(
    nc: Any,
    app: Ledger,
    projector: Projector,
    stop: threading.Event,
    *,
    once: bool,
    result: RunResult,
    fetch: int,
    fetch_timeout: float,
    session: _NatsSession | None = None,
) -> bool:
    """One consumer session; True when done (``once`` and caught up).

    Every message is verified against the Merkle tree and the signed checkpoints
    (``ledger.bus_verify``, as ``subscribe(verify=True)``) before its event is applied,
    and then also compared byte for byte with the store's event (``_verified``).  Until
    a checkpoint covers them, messages are held, not acknowledged.  A message that does
    not belong (forged, altered, reordered, missing) is refused with its exact position,
    counted in ``RunResult.rejected``, and never applied: the store's own events are
    applied instead (the views are the store's, in its database), and the next session
    starts past what was delivered.  At most ``LEDGER_VERIFY_MAX_PENDING`` messages are
    held, by the verifying subscriber's rule (``ledger.bus_verify.HoldBound``): at the
    bound nothing more is fetched until a checkpoint covers what is held, a checkpoint
    further away raises ``HoldError`` naming the bound it needs, and a stall longer than
    ``LEDGER_VERIFY_STALL_TIMEOUT`` raises ``HoldStalled``.
    """
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    from ledger import stream as st
    from ledger.bus_verify import BusVerificationError, HoldBound

    session = session if session is not None else _NatsSession()
    if projector.position == 0 and app.head() == 0:
        # An empty ledger (without a signing key yet, in a fresh home): nothing to apply.
        if once:
            return True
        await asyncio.sleep(fetch_timeout)
        return False
    settings = app.settings
    stream_name = settings.stream
    jsm = nc.jsm()
    js = nc.jetstream()
    start = await st.seq_for_position(jsm, stream_name, projector.position + 1)
    start = max(start, session.skip_to)
    try:
        verifier, feed = await _prime(app, jsm, stream_name, projector.position, start)
    except BusVerificationError as exc:
        return await _refuse(app, jsm, projector, result, session, exc, start, once=once)
    except NotFoundError:  # no checkpoint stream yet: nothing the relay published
        if once:
            return True
        await asyncio.sleep(fetch_timeout)
        return False
    existing = None
    with contextlib.suppress(NotFoundError):
        existing = await jsm.consumer_info(stream_name, DURABLE)
    if existing is not None and (
        existing.delivered.stream_seq + 1 != start or existing.config.max_ack_pending != -1
    ):
        # The consumer's own position disagrees with the tracked one (views rebuilt, a
        # crash between commit and ack, messages held for a checkpoint) or it predates
        # verification: the tracking is the truth, so start over there.
        await jsm.delete_consumer(stream_name, DURABLE)
        existing = None
    if existing is None:
        await jsm.add_consumer(
            stream_name,
            ConsumerConfig(
                durable_name=DURABLE,
                description="ledger views projector",
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=AckPolicy.ALL,
                ack_wait=300,
                # Messages are held until a checkpoint covers them: a whole append
                # batch, however large, is delivered before any is acknowledged.
                max_ack_pending=-1,
                filter_subject=f"{settings.subject_prefix}.>",
            ),
        )
    psub = await js.pull_subscribe_bind(durable=DURABLE, stream=stream_name)
    fed_seq = start - 1
    bound = HoldBound(
        settings.verify_max_pending,
        stream_name,
        log,
        "the NATS projector",
        "LEDGER_VERIFY_MAX_PENDING",
        settings.verify_stall_timeout,
    )
    try:
        while not stop.is_set():
            result.held, result.held_since = len(verifier.pending), verifier.held_since
            full = bound.at_bound(verifier, feed, projector.position)
            msgs = []
            if full:  # hold no more: read the checkpoint stream for what is held
                await asyncio.sleep(min(fetch_timeout, 0.05))
            else:
                try:
                    msgs = await psub.fetch(min(fetch, bound.room(verifier)), timeout=fetch_timeout)
                except TimeoutError:  # nats-py: its own subclass, or asyncio's past the deadline
                    msgs = []
            released: list[Any] = []
            try:
                for m in msgs:
                    fed_seq = max(fed_seq, _stream_seq(m))
                    pos = _admissible(m, result)
                    if pos is not None:
                        verifier.add(m.headers.get("Ledger-Leaf"), pos, m.data, m)
                async for _, items in feed.poll(verifier):
                    released += [m for m in items if m is not None]
            except BusVerificationError as exc:
                return await _refuse(
                    app, jsm, projector, result, session, exc, fed_seq + 1, once=once
                )
            if released:
                _apply_verified(app, projector, released, result)
                await released[-1].ack()
            elif msgs and not verifier.pending:
                await msgs[-1].ack()  # junk only: reported, acknowledged
            _persist_rejections(app, result, session)
            result.held, result.held_since = len(verifier.pending), verifier.held_since
            if not msgs and once:
                info = await psub.consumer_info()
                if not info.num_pending or (full and not released):
                    if verifier.pending:
                        log.warning(
                            "%d stream message(s) after position %d wait for a signed "
                            "checkpoint; not applied%s",
                            len(verifier.pending),
                            projector.position,
                            " (at most LEDGER_VERIFY_MAX_PENDING are held; the rest stay "
                            "in the stream)"
                            if full
                            else "",
                        )
                    return True
    finally:
        with contextlib.suppress(Exception):
            await psub.unsubscribe()
    return False


async def _head_purged(app: Ledger, jsm: Any, exc: Exception) -> bool:
    """Whether ``exc`` is leaves missing before the stream's first message, and that
    message is the store's event at its position (same id and bytes) with the leaf
    index the store's tree gives it: the stream's head was purged, nothing forged."""
    from ledger.bus_verify import BusVerificationError, leaf_indexes
    from ledger.relay import head_mismatch

    if not isinstance(exc, BusVerificationError) or exc.position is None:
        return False
    if exc.leaf is None or exc.expected_leaf is None or exc.leaf <= exc.expected_leaf:
        return False
    stream = app.settings.stream
    try:
        first_seq = (await jsm.stream_info(stream)).state.first_seq
        msg = await st.get_msg(jsm, stream, first_seq)
    except Exception as exc_:  # the stream is away: not shown to be a purge
        log.debug("reading the stream's first message: %s", exc_)
        return False
    if msg is None or st.parse_position(st.header(msg, st.POSITION)) != exc.position:
        return False
    head = st.StreamHead(first_seq, exc.position, st.header(msg, st.MSG_ID), 0, msg.data or b"")
    if await asyncio.to_thread(head_mismatch, app, stream, head) is not None:
        return False
    leaves = await asyncio.to_thread(leaf_indexes, app, [exc.position])
    return leaves.get(exc.position) == exc.leaf


def _stream_seq(msg: Any) -> int:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # not even JetStream metadata
        return 0


def _apply_verified(app: Ledger, projector: Projector, msgs: list[Any], result: RunResult) -> None:
    """Apply the events of verified messages (also the store's, byte for byte)."""
    items, delivered, upto = _verified(app, projector.position, msgs, result)
    missing = _missing_from_stream(app, projector.position, delivered)
    if missing:
        log.warning(
            "the stream lacks %d event(s) between positions %d and %d; reading them from the store",
            len(missing),
            projector.position,
            upto,
        )
        found = [
            (position, app.decode(topic, state))
            for position, topic, state in missing
            if state is not None and topic not in SKIPPED_TOPICS
        ]
        items = sorted(items + found, key=lambda item: item[0])
    if upto > projector.position:
        projector.prefetch(e.entity for _, e in items)
        projector.process(items, upto=upto)
        result.applied += len(msgs)
        result.position = projector.position


async def _refuse(
    app: Ledger,
    jsm: Any,
    projector: Projector,
    result: RunResult,
    session: _NatsSession,
    exc: Exception,
    next_seq: int,
    *,
    once: bool,
) -> bool:
    """A message that does not belong to the signed tree: refused (never applied),
    reported with its position and counted; the store's events are applied in its
    place, and the next session starts at ``next_seq`` at the earliest.  Leaves missing
    before the stream's first message, which is the store's own event, are the stream's
    head purged (its limits or age): counted as ``purged``, not as a refusal."""
    if await _head_purged(app, jsm, exc):
        result.purged += 1
        log.warning(
            "the NATS stream's head was purged (its limits or age) of events the projector "
            "still needs (%s); applying the store's events instead",
            exc,
        )
    else:
        result.rejected += 1
        result.refused += 1
        log.error("refusing the NATS stream: %s; applying the store's events instead", exc)
    _persist_rejections(app, result, session)
    session.skip_to = max(session.skip_to, next_seq)
    progress = catch_up(app, projector)
    result.applied += progress.applied
    result.position = projector.position
    if not once:
        await asyncio.sleep(0.5)  # a stream that keeps failing is not retried in a loop
    return once
