"""Commands that move events over NATS: ``relay``, ``watch``, ``status``, ``serve``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ledger.cli import complete
from ledger.cli.common import (
    echo_json,
    handle_errors,
    metrics_options,
    metrics_server,
    output_option,
    settings,
)
from ledger.config import redact_url

if TYPE_CHECKING:
    from ledger.config import Settings
    from ledger.stream import StreamHead


def _setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("nats").setLevel(logging.CRITICAL)  # reconnect noise; we log ours


def _nats_url(config: Settings) -> str:
    from ledger.errors import StoreError

    url = config.resolved_nats_url()
    if not url:
        raise StoreError(
            "no NATS server configured: set LEDGER_NATS_URL, or run `ledger serve` "
            f"(it records its embedded server's URL in {config.nats_url_file})"
        )
    return url


def _stale_hint(config: Settings) -> str:
    """Why a URL read from ``$LEDGER_HOME/nats.url`` does not answer, if it is stale."""
    if config.nats_url or not config.resolved_nats_url():
        return ""
    from ledger.serve import ServeLock

    if ServeLock(config).held_by_another():
        return ""
    return (
        f"; that URL comes from {config.nats_url_file}, written by a `ledger serve` that is "
        "no longer running: start `ledger serve` or set LEDGER_NATS_URL"
    )


def _fail(message: str, *, as_json: bool, code: int = 1) -> NoReturn:
    from ledger.cli.common import emit_error

    emit_error(RuntimeError(message), as_json=as_json)
    sys.exit(code)


# --- relay -------------------------------------------------------------------------------


@click.command()
@click.option("--once", is_flag=True, help="Publish what is pending, wait for the acks, exit.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Events read from the store per batch.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 1_000_000),
    default=4000,
    show_default=True,
    help="Publishes awaiting a JetStream ack at most.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.001, 60),
    default=0.05,
    show_default=True,
    help="Seconds between store polls once caught up (the fallback: a commit to the "
    "store wakes the relay at once, through file notifications on SQLite and LISTEN on "
    "PostgreSQL).",
)
@click.option(
    "--give-up-after",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="With --once: exit 1 after this many seconds without progress (NATS unreachable, "
    "publishes refused); at least the duplicate window while JetStream answers 'duplicate' "
    "after a purge.",
)
@click.option(
    "--republish-from",
    type=click.IntRange(1),
    metavar="POSITION",
    help="Re-publish from this position even if the relay published it before: the stream's "
    "head + 1 refills a stream that was recreated or lost its tail; the tracked position + 1 "
    "continues after such a gap. Never duplicates what the stream still holds.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only.")
@metrics_options
@output_option("table", "json")
@click.pass_context
@handle_errors
def relay(
    ctx: click.Context,
    once: bool,
    batch_size: int,
    max_in_flight: int,
    poll_interval: float,
    give_up_after: float,
    republish_from: int | None,
    verbose: bool,
    quiet: bool,
    metrics_port: int | None,
    metrics_address: str,
    output: str,
) -> None:
    """Publish every stored event to NATS JetStream, exactly once, in order.

    Reads the store's notification log (the outbox) in position order and publishes
    each event to the stream (LEDGER_STREAM, created if missing: file storage,
    LEDGER_STREAM_REPLICAS replicas, LEDGER_DUPLICATE_WINDOW) with Nats-Msg-Id = event id.
    On start and after any failure it resumes after the newest position found in the
    stream or in its tracking record, so restarts and NATS outages neither lose nor
    duplicate events.  If the stream ends before the tracked position (recreated, purged,
    lost its tail) it exits 1 rather than publish past the gap, naming the two choices
    (--republish-from).  Runs until SIGTERM/SIGINT; logs go to stderr.

    \b
    Examples:
      ledger relay                          # long-running
      ledger relay --once                   # publish what is pending, then exit
      LEDGER_NATS_URL=nats://nats-1:4222,nats://nats-2:4222 ledger relay
      ledger relay --once --republish-from 1  # refill a recreated stream
      ledger relay --metrics-port 9464      # Prometheus metrics on 127.0.0.1:9464
    """
    import asyncio
    import signal

    from ledger.cli.common import open_ledger
    from ledger.relay import Relay, RelayError

    _setup_logging(verbose, quiet or (once and output == "json"))
    config = settings(ctx)
    url = _nats_url(config)
    with open_ledger(ctx) as app:
        worker = Relay(
            app,
            url,
            batch_size=batch_size,
            max_in_flight=max_in_flight,
            poll_interval=poll_interval,
            republish_from=republish_from,
        )

        async def main() -> Any:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            return await worker.run(stop, once=once, give_up_after=give_up_after if once else None)

        try:
            with metrics_server(ctx, metrics_port, metrics_address) as metrics:
                if metrics is not None:
                    metrics.collector.relay = worker
                stats = asyncio.run(main())
        except RelayError as exc:
            hint = _stale_hint(config) if str(exc).startswith("gave up") else ""
            _fail(f"relay: {exc}{hint}", as_json=output == "json")
            return
    if output == "json":
        echo_json({"stream": worker.stream, "url": redact_url(url), **stats.to_dict()})
    elif once:
        click.echo(
            f"Published {stats.published} event(s) to stream {worker.stream}; "
            f"the stream is at position {stats.position}."
        )


# --- watch -------------------------------------------------------------------------------


def _parse_since(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A bare date means the start of that day UTC; a time without offset is UTC."""
    from ledger.times import UTC, TimeParseError, is_bare_date, parse_date, parse_query_time

    if value is None:
        return None
    try:
        if is_bare_date(value.strip()):
            return dt.datetime.combine(parse_date(value.strip()), dt.time(), UTC)
        return parse_query_time(value)
    except TimeParseError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option(
    "--filter",
    "-f",
    "filters",
    multiple=True,
    metavar="FILTER",
    shell_complete=complete.watch_filters,
    help="Only matching events (repeatable; any may match, none may cover another): KIND:ID "
    "(licence:GL.1), KIND (licence), TYPE (LicenceGranted), TYPE@KIND:ID, or a raw subject "
    "(ledger.licence.>).",
)
@click.option(
    "--since",
    callback=_parse_since,
    metavar="TIME",
    help="Start at the first event recorded at or after TIME (a bare date: its start, UTC).",
)
@click.option(
    "--from-position",
    type=click.IntRange(min=0),
    metavar="N",
    help="Start at the first event at or after ledger position N.",
)
@click.option("--all", "from_start", is_flag=True, help="Start at the first event.")
@click.option(
    "--durable",
    metavar="NAME",
    help="Named durable consumer: the next watch with this name resumes where it stopped "
    "(start options apply only when the durable is created).",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Exit after N events.")
@click.option(
    "--verify",
    is_flag=True,
    help="Recompute the Merkle tree from the messages and print an event only once a "
    "checkpoint signed with the ledger's key covers it; exit 1 naming the position of "
    "any message that does not belong (forged, altered, reordered, missing). No --filter.",
)
@click.option(
    "--key",
    "key_text",
    metavar="KEY",
    help="With --verify: the ledger's public key (the text or a file), as `ledger key` "
    "prints it. Default: the key of this ledger home, if it has one.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Exit after SECONDS without an event.",
)
@output_option("table", "json", "jsonl", "cloudevents")
@click.pass_context
@handle_errors
def watch(
    ctx: click.Context,
    filters: tuple[str, ...],
    since: dt.datetime | None,
    from_position: int | None,
    from_start: bool,
    durable: str | None,
    limit: int | None,
    verify: bool,
    key_text: str | None,
    timeout: float | None,
    output: str,
) -> None:
    """Print events from the NATS stream as they are published.

    By default starts with new events.  Each event is acknowledged after it is printed,
    so a --durable watch that is interrupted resumes with the next unprinted event.
    A message in the stream that is not a ledger event (junk headers or payload) is not
    printed: a warning on stderr names its stream sequence and what is wrong with it.

    \b
    Output:
      table  position, recorded time, type, entity, description (one line per event)
      json   one object per line: position, stream_seq, subject, redelivered, event
      jsonl  the events exactly as stored, one per line
      cloudevents  one CloudEvents 1.0 JSON event per line (structured mode): id = event
             id, source = urn:export-control-ledger:stream:STREAM, type =
             ledger.TYPE, time = recorded time, subject = KIND:ID, data = the event
             (see docs/streaming.md, CloudEvents)

    \b
    Examples:
      ledger watch                                   # new events, live
      ledger watch --all --filter licence:GL.1       # one licence, from the beginning
      ledger watch --since 2025-11-14 -f LicenceSuspended -f LicenceWithdrawn
      ledger watch --durable audit-feed -o jsonl >> feed.jsonl
      ledger watch --from-position 120 --limit 10 -o json
      ledger watch --all -o cloudevents | my-cloudevents-consumer
      ledger watch --all --verify --key ledger.pub   # only what the signed tree holds
    """
    import asyncio
    import signal

    from ledger.errors import InputError
    from ledger.subjects import SubjectError, parse_filters
    from ledger.subscriber import DurableNameError, SubscriberError, check_durable_name, subscribe

    chosen = [
        n for n, v in (("--since", since), ("--from-position", from_position)) if v is not None
    ]
    if from_start:
        chosen.append("--all")
    if len(chosen) > 1:
        raise InputError(f"choose one of {', '.join(chosen)}", field=chosen[1])
    start: Any = "new"
    if since is not None:
        start = since
    elif from_position is not None:
        start = from_position
    elif from_start:
        start = "beginning"
    config = settings(ctx)
    try:
        parse_filters(filters, config.subject_prefix)  # subscribe() does too, once connected
    except SubjectError as exc:
        raise InputError(str(exc), field="--filter") from None
    if durable is not None:
        try:
            check_durable_name(durable)
        except DurableNameError as exc:
            raise InputError(str(exc), field="--durable") from None
    key = None
    if verify:
        if filters:
            raise InputError(
                "--verify recomputes the tree from every event: it takes no --filter",
                field="--filter",
            )
        key = _watch_key(config, key_text)
    elif key_text is not None:
        raise InputError("--key goes with --verify", field="--key")
    url = _nats_url(config)
    as_json = output != "table"

    async def main() -> int:
        from nats.js.errors import APIError

        from ledger.bus_verify import BusVerificationError
        from ledger.stream import NatsUnavailable

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            sub = subscribe(
                url,
                settings=config,
                durable=durable,
                filters=filters,
                start=start,
                on_rejected=lambda rejected: _warn_rejected(rejected, as_json),
                verify=verify,
                verifier_key=key,
            )
            async with sub:
                if output == "table":
                    click.echo(_watch_header(), err=False)
                printed = 0
                idle_since = loop.time()
                while not stop.is_set() and (limit is None or printed < limit):
                    # Short fetches, so a signal is noticed without cancelling one.
                    delivery = await sub.next_delivery(0.5)
                    if delivery is None:
                        if timeout is not None and loop.time() - idle_since >= timeout:
                            break
                        continue
                    _print_delivery(delivery, output, config.stream)
                    printed += 1
                    idle_since = loop.time()
                # The last printed event is acknowledged when the block exits.
                return printed
        except NatsUnavailable as exc:
            _fail(f"{exc}{_stale_hint(config)}", as_json=as_json)
            return 0
        except (SubscriberError, BusVerificationError) as exc:
            _fail(str(exc), as_json=as_json)
            return 0
        except APIError as exc:  # JetStream refused a request (e.g. the consumer's config)
            _fail(f"JetStream refused the subscription: {exc}", as_json=as_json)
            return 0

    asyncio.run(main())


def _watch_key(config: Settings, key_text: str | None) -> Any:
    """The verifier key for ``watch --verify``: --key, else the home's (never made here)."""
    from ledger.audit import signing_key, verifier_key
    from ledger.errors import InputError

    if key_text is not None:
        return verifier_key(key_text)
    if not config.has_signing_key:
        raise InputError(
            "--verify needs the ledger's public key: --key KEY (`ledger key` prints it)",
            field="--key",
        )
    return signing_key(config).verifier


def _warn_rejected(rejected: Any, as_json: bool) -> None:
    """One line on stderr for a stream message that is not a ledger event."""
    if as_json:
        body = {
            "warning": "not a ledger event",
            "stream_seq": rejected.stream_seq,
            "subject": rejected.subject,
            "reason": rejected.reason,
        }
        click.echo(json.dumps(body), err=True)
    else:
        click.echo(f"Warning: skipped a message that is not a ledger event: {rejected}", err=True)


_WATCH_COLUMNS = (("pos", 7), ("recorded", 20), ("type", 22), ("entity", 28))


def _watch_header() -> str:
    head = "  ".join(name.ljust(width) for name, width in _WATCH_COLUMNS) + "  what"
    return head + "\n" + "  ".join("-" * w for _, w in _WATCH_COLUMNS) + "  " + "-" * 16


def _print_delivery(delivery: Any, output: str, stream: str) -> None:
    import msgspec

    if output == "cloudevents":
        from ledger.cloudevents import from_delivery

        sys.stdout.write(msgspec.json.encode(from_delivery(delivery, stream)).decode() + "\n")
    elif output == "jsonl":
        sys.stdout.write(delivery.payload.decode() + "\n")
    elif output == "json":
        body = {
            "position": delivery.position,
            "stream_seq": delivery.stream_seq,
            "subject": delivery.subject,
            "redelivered": delivery.redelivered,
            "event": msgspec.Raw(delivery.payload),
        }
        sys.stdout.write(msgspec.json.encode(body).decode() + "\n")
    else:
        from ledger.describe import describe
        from ledger.times import iso_seconds

        e = delivery.event
        cells = [str(delivery.position), iso_seconds(e.recorded_at), e.type, e.entity]
        from ledger.cli.common import fit

        line = "  ".join(fit(c, w) for c, (_, w) in zip(cells, _WATCH_COLUMNS, strict=True))
        sys.stdout.write(f"{line}  {describe(e)}\n")
    sys.stdout.flush()


# --- status ------------------------------------------------------------------------------

VIEWS_TRACKING = "views"
"""The projector's tracking name (``ledger.projections.store.TRACKING_NAME``; not imported:
that module loads the view machinery)."""


@click.command()
@output_option("table", "json")
@click.pass_context
@handle_errors
def status(ctx: click.Context, output: str) -> None:
    """Store head, published position and relay lag; the views' position and lag.

    The published position is the newest ledger position in the stream (and the relay's
    tracked position; only that one when the stream cannot be read, as the output says);
    lag = head - published, in positions (the number of events waiting on SQLite; on
    PostgreSQL positions can skip numbers, so it is an upper bound).
    Exits 1 when NATS cannot be reached, or when the stream has lost positions the relay
    published (a gap: purged, recreated or lost its tail; the relay refuses to go on), or
    when the stream's last message is not the store's event at the position it claims
    (same event id and bytes): forged, edited or foreign.  The relay refuses to resume
    after such a message, so the lag is then unknown (null in JSON) and "forged" says
    which message it is.

    The projector's position is the one the stored views are at (tracked with them by
    `ledger serve` or `ledger project`); its lag is head - that position.  It does not
    change the exit code: for a container health check use `ledger health`.  "rejected"
    counts the stream messages the NATS projector did not apply: refused (not in the
    signed Merkle tree: forged, altered, reordered or missing) and malformed (not a
    ledger event); its log names each one.  "purged" counts the times it found the
    stream's head purged (by the stream's limits or age) of events it still needed: not
    a refusal, it applied the store's events.

    "holding" lists the verifying consumers (the NATS projector, `subscribe(verify=True)`)
    with messages delivered and held until a signed checkpoint covers them, and how long
    since each acknowledged one; STALLED once that is LEDGER_VERIFY_STALL_TIMEOUT or more
    (a relay publishing no checkpoints, or forged events).  Their metrics:
    ledger_projector_held_messages and ledger_projector_oldest_held_seconds.

    \b
    Examples:
      ledger status
      ledger status -o json
    """
    import asyncio

    from ledger.cli.common import open_ledger
    from ledger.relay import (
        forged_head_message,
        head_mismatch,
        read_tracked_position,
        read_tracking,
    )

    config = settings(ctx)
    url = config.resolved_nats_url()
    forged: dict[str, Any] | None = None
    with open_ledger(ctx, existing=True) as app:
        head = app.head()
        tracked = read_tracked_position(app, config.stream)
        views_position = read_tracking(app, VIEWS_TRACKING)
        rejected, purged = _rejections(app)
        stream_state, stream_head = asyncio.run(_stream_state(config, url)) if url else (None, None)
        if stream_head is not None:
            # The stream's word for where it is is checked against the store, as the
            # relay checks it before resuming.
            problem = head_mismatch(app, config.stream, stream_head)
            if problem is not None:
                forged = {"seq": stream_head.seq, "problem": problem}
    if stream_state is not None and not stream_state.get("reachable"):
        stream_state["error"] = stream_state.get("error", "unreachable") + _stale_hint(config)
    holding = stream_state.pop("holding", []) if stream_state is not None else []
    published = tracked
    read_stream = bool(stream_state and stream_state.get("reachable"))
    gap = None
    if forged is not None:
        pass  # the stream's head says nothing trustworthy: published stays the tracked one
    elif stream_state is not None and read_stream:
        last = stream_state.get("last_position", 0)
        if stream_state.get("exists") and last < tracked:
            # The stream is the truth: positions the relay published are gone from it.
            gap = {"from": last + 1, "to": tracked}
            published = last
        else:
            published = max(tracked, last)
    body: dict[str, Any] = {
        "store": {"backend": config.backend, "url": config.redacted_url, "head": head},
        "relay": {"tracked_position": tracked},
        "stream": stream_state or {"name": config.stream, "url": None, "reachable": False},
        "published_position": published,
        # Without the stream, the relay's tracked position is the best knowledge there is.
        "published_from": "stream" if read_stream else "relay",
        # Unknown while the stream's head is not the store's event: the relay stops there.
        "lag": None if forged is not None else max(0, head - published),
        "gap": gap,
        "forged": forged,
        # The stored views: the projector's tracked position (serve's, or `ledger project`).
        # Verifying consumers with messages held for a checkpoint (from the stream).
        "holding": holding,
        "projector": {
            "tracked_position": views_position,
            "lag": max(0, head - views_position),
            # Stream messages the NATS projector did not apply, since the ledger began.
            "rejected": rejected,
            # Times it found the stream's head purged (limits, age) of events it needed.
            "purged": purged,
        },
    }
    if output == "json":
        echo_json(body)
    else:
        s = body["stream"]
        shown = redact_url(url) if url else ""
        click.echo(f"store      {config.backend}  {config.redacted_url}")
        click.echo(f"head       position {head}")
        click.echo(f"relay      tracked position {tracked}")
        if not url:
            click.echo("stream     no NATS configured (set LEDGER_NATS_URL or run `ledger serve`)")
        elif not s.get("reachable"):
            click.echo(f"stream     {config.stream} at {shown}: unreachable ({s.get('error')})")
        elif not s.get("exists"):
            click.echo(f"stream     {config.stream} at {shown}: not created yet (run the relay)")
        else:
            click.echo(
                f"stream     {s['name']} at {shown}: {s['messages']} message(s), last position "
                f"{s['last_position']} (seq {s['last_seq']}), {s['consumers']} consumer(s)"
            )
        if read_stream:
            click.echo(f"published  position {published}")
        else:
            click.echo(
                f"published  position {published} (the relay's tracked position; "
                "the stream could not be read)"
            )
        if forged is not None:
            click.echo("lag        unknown: the relay cannot resume after the stream's head")
            click.echo(f"forged     {forged_head_message(config.stream, forged['problem'])}")
        else:
            click.echo(f"lag        {body['lag']}")
        click.echo(f"projector  views at position {views_position}, lag {body['projector']['lag']}")
        if rejected["malformed"] or rejected["refused"]:
            click.echo(
                f"rejected   {rejected['refused']} stream message(s) refused as not in the "
                f"signed tree, {rejected['malformed']} malformed (the projector's log says "
                "which)"
            )
        for hold in body["holding"]:
            click.echo(_holding_line(hold, config.verify_stall_timeout))
        if purged:
            click.echo(
                f"purged     {purged} time(s) the stream's head no longer held events the "
                "projector needed (the stream's limits or age); it applied the store's"
            )
        if gap is not None:
            click.echo(
                f"gap        positions {gap['from']}-{gap['to']} were published but are no "
                f"longer in the stream: `ledger relay --republish-from {gap['from']}` "
                "refills them"
            )
    if not url or not body["stream"].get("reachable") or gap is not None or forged is not None:
        sys.exit(1)


def _rejections(app: Any) -> tuple[dict[str, int], int]:
    """The NATS projector's persisted rejection counts (zeros when there are none), and
    how many times it found the stream's head purged."""
    from ledger.bus_verify import read_rejections

    try:
        counts = read_rejections(app).get("views", {})
    except Exception:  # a ledger from before the tree tables: nothing counted
        counts = {}
    rejected = {"malformed": counts.get("malformed", 0), "refused": counts.get("refused", 0)}
    return rejected, counts.get("purged", 0)


# --- health ------------------------------------------------------------------------------

HEALTH_CHECKS = ("store", "nats", "relay", "projector")


@click.command()
@click.option(
    "--check",
    "checks",
    multiple=True,
    type=click.Choice(HEALTH_CHECKS),
    help="Only this check (repeatable). Default: store, plus nats when NATS is configured, "
    "plus relay and projector when --max-lag is given.",
)
@click.option(
    "--max-lag",
    type=click.IntRange(min=0),
    metavar="N",
    help="The relay and the projector are unhealthy when more than N positions behind the "
    "store's head.",
)
@output_option("table", "json")
@click.pass_context
@handle_errors
def health(ctx: click.Context, checks: tuple[str, ...], max_lag: int | None, output: str) -> None:
    """Exit 0 when healthy, 1 when not: for container health checks and monitors.

    store: the ledger's database answers (its head position is read).  nats: the NATS
    server answers and the stream exists.  relay: the relay's tracked position is at most
    --max-lag behind the head.  projector: so are the stored views.  One line per check
    (or -o json); a failed check says why.

    \b
    Examples:
      ledger health                                   # store (and NATS if configured)
      ledger health --check relay --max-lag 10000     # the relay container's check
      ledger health --check projector --max-lag 10000 -o json
    """
    import asyncio

    from ledger.cli.common import open_ledger
    from ledger.relay import read_tracked_position, read_tracking

    config = settings(ctx)
    url = config.resolved_nats_url()
    chosen = list(checks) or [
        "store",
        *(["nats"] if url else []),
        *(["relay", "projector"] if max_lag is not None else []),
    ]
    from ledger.serve import first_line

    results: list[dict[str, Any]] = []

    def report(name: str, ok: bool, detail: str) -> None:
        results.append({"check": name, "ok": ok, "detail": detail})

    head: int | None = None
    try:
        with open_ledger(ctx, existing=True) as app:
            head = app.head()
            positions = {
                "relay": read_tracked_position(app, config.stream),
                "projector": read_tracking(app, VIEWS_TRACKING),
            }
    except Exception as exc:  # any failure to read the store is what this reports
        report("store", False, first_line(exc))
    else:
        if "store" in chosen:
            report("store", True, f"{config.backend} head position {head}")
        for name in ("relay", "projector"):
            if name not in chosen:
                continue
            lag = max(0, head - positions[name])
            if max_lag is not None and lag > max_lag:
                report(name, False, f"position {positions[name]}, lag {lag} > {max_lag}")
            else:
                report(name, True, f"position {positions[name]}, lag {lag}")
    if "nats" in chosen:
        if not url:
            report("nats", False, "no NATS configured (LEDGER_NATS_URL, or `ledger serve`)")
        else:
            state, _ = asyncio.run(_stream_state(config, url))
            if not state.get("reachable"):
                report("nats", False, f"unreachable: {state.get('error', '')}")
            elif not state.get("exists"):
                report("nats", False, f"stream {config.stream} not created yet (run the relay)")
            else:
                report("nats", True, f"stream {config.stream}, {state['messages']} message(s)")
    healthy = all(r["ok"] for r in results)
    if output == "json":
        echo_json({"healthy": healthy, "checks": results})
    else:
        for r in results:
            click.echo(f"{'ok  ' if r['ok'] else 'FAIL'}  {r['check']:<9}  {r['detail']}")
    if not healthy:
        sys.exit(1)


async def _stream_state(config: Settings, url: str) -> tuple[dict[str, Any], StreamHead | None]:
    from nats.js.errors import NotFoundError

    from ledger import stream as st

    state: dict[str, Any] = {"name": config.stream, "url": redact_url(url), "reachable": False}
    try:
        nc = await st.connect(
            url, name="ledger-status", connect_timeout=2, **config.nats_options("subscriber")
        )
    except st.NatsUnavailable as exc:
        state["error"] = str(exc)
        return state, None
    try:
        jsm = nc.jsm()
        state["reachable"] = True
        try:
            info = await jsm.stream_info(config.stream)
        except NotFoundError:
            state.update(exists=False, messages=0, last_seq=0, last_position=0, consumers=0)
            return state, None
        head = await st.read_head(jsm, config.stream)
        state.update(
            exists=True,
            messages=info.state.messages,
            last_seq=head.seq,
            last_position=head.position,
            consumers=info.state.consumer_count,
            subjects=info.config.subjects,
            replicas=info.config.num_replicas,
            duplicate_window=info.config.duplicate_window,
        )
        state["holding"] = await _holding_consumers(jsm, config)
        return state, head
    except Exception as exc:
        state.update(reachable=False, error=f"{type(exc).__name__}: {exc}")
        return state, None
    finally:
        await nc.close()


async def _holding_consumers(jsm: Any, config: Settings) -> list[dict[str, Any]]:
    """The verifying consumers of the stream (the NATS projector's, and those of
    ``subscribe(verify=True)``: they allow any number of unacknowledged messages) that
    have messages delivered and not acknowledged: held until a signed checkpoint covers
    them.  ``seconds_since_ack``: since the consumer last acknowledged one (or was
    created); "stalled" once that is LEDGER_VERIFY_STALL_TIMEOUT or more."""
    from ledger import stream as st

    now = dt.datetime.now(dt.UTC)
    holding = []
    for info in await jsm.consumers_info(config.stream):
        if info.config.max_ack_pending != -1 or not info.num_ack_pending:
            continue
        since = info.ack_floor.last_active if info.ack_floor else None
        since = since or info.created
        seconds = max(0.0, (now - since).total_seconds()) if since is not None else None
        holding.append(
            {
                "consumer": info.name,
                "projector": info.name == st.PROJECTOR_CONSUMER,
                "unacknowledged": info.num_ack_pending,
                "seconds_since_ack": None if seconds is None else round(seconds, 1),
                "stalled": seconds is not None and seconds >= config.verify_stall_timeout,
            }
        )
    return sorted(holding, key=lambda h: (not h["projector"], h["consumer"]))


def _holding_line(hold: dict[str, Any], stall_timeout: float) -> str:
    who = "the NATS projector" if hold["projector"] else "a verifying subscriber"
    seconds = hold["seconds_since_ack"]
    # A consumer's name is whatever a client allowed to make consumers chose: NATS refuses
    # whitespace in it, not terminal control characters, so they are shown escaped.
    name = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in hold["consumer"])
    line = (
        f"holding    {name} ({who}): {hold['unacknowledged']:,} message(s) "
        "held for a signed checkpoint"
        + ("" if seconds is None else f", nothing acknowledged for {seconds:.0f} s")
    )
    if hold["stalled"]:
        line += (
            f"; STALLED (longer than LEDGER_VERIFY_STALL_TIMEOUT, {stall_timeout:g} s): "
            "a relay publishing no checkpoints, or forged events"
        )
    return line


# --- serve -------------------------------------------------------------------------------


@click.command()
@click.option("--no-projector", is_flag=True, help="Do not run the live projector.")
@click.option("--web", "with_web", is_flag=True, help="Also serve `ledger web` (HTTP API, pages).")
@click.option("--web-host", default="127.0.0.1", show_default=True, help="With --web: address.")
@click.option(
    "--web-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="With --web: port (0: a free one, printed).",
)
@click.option(
    "--web-token",
    envvar="LEDGER_WEB_TOKEN",
    metavar="TOKEN",
    help="With --web: the bearer token (required off loopback). [env: LEDGER_WEB_TOKEN]",
)
@click.option(
    "--web-cors-origin",
    "web_cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="With --web: allow cross-origin GETs from this origin (repeatable).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@metrics_options
@click.pass_context
@handle_errors
def serve(
    ctx: click.Context,
    no_projector: bool,
    with_web: bool,
    web_host: str,
    web_port: int,
    web_token: str | None,
    web_cors_origins: tuple[str, ...],
    verbose: bool,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Run the ledger's services: NATS (embedded by default), the relay, the projector.

    Without LEDGER_NATS_URL it starts an embedded nats-server with JetStream (data in
    $LEDGER_HOME/nats, a free port on 127.0.0.1), prints its URL on the first line and
    records it in $LEDGER_HOME/nats.url, where `ledger watch`, `ledger status` and the
    subscriber client find it (removed on exit).  One `ledger serve` per LEDGER_HOME (it
    holds $LEDGER_HOME/serve.lock).  Stops cleanly on SIGTERM or Ctrl-C: the relay and the
    projector drain and record their positions, then the embedded server stops.  If the
    relay or the projector fails, the other stops too and serve exits 1 with its error.

    With --web it also serves the read-only HTTP API and pages of `ledger web` (on
    --web-host:--web-port; its URL on its own line); if that server stops, so does serve.

    \b
    Examples:
      ledger serve                          # embedded NATS + relay + projector
      LEDGER_NATS_URL=nats://127.0.0.1:4222 ledger serve
      ledger serve &  ledger watch --all    # in another shell
      ledger serve --web                    # ... and http://127.0.0.1:8080/
      ledger serve --metrics-port 9464      # Prometheus metrics on 127.0.0.1:9464
    """
    import signal
    import threading

    from ledger.cli.common import open_ledger
    from ledger.nats_server import NatsServerError
    from ledger.serve import (
        ServeError,
        ServeLock,
        Services,
        first_line,
        start_embedded,
        stop_embedded,
    )

    _setup_logging(verbose)
    log = logging.getLogger("ledger.serve")
    config = settings(ctx)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if config.nats_url:
        from ledger.stream import check_nats_url

        check_nats_url(config.nats_url)  # a mistyped URL: exit 2 now, not a retrying relay
    web = None
    if with_web:  # a missing token or a port in use: refused before anything starts
        from ledger.cli.web import web_config
        from ledger.web.run import WebError, WebServer

        try:
            web = WebServer(config, web_host, web_port, web_config(web_token, web_cors_origins))
        except WebError as exc:
            _fail(str(exc), as_json=False)
    lock = ServeLock(config)
    holder = lock.acquire()
    if holder is not None:
        _fail(
            f"another `ledger serve` is running on {config.home} ({holder}); stop it first",
            as_json=False,
        )
    server = None
    url = config.nats_url
    failed: tuple[str, str] | None = None
    try:
        if not url:
            try:
                url, server = start_embedded(config)
            except ServeError as exc:
                _fail(str(exc), as_json=False)
            except NatsServerError as exc:
                where = f" (log: {config.home / 'nats' / 'nats-server.log'})"
                _fail(
                    f"could not start the embedded NATS server: {first_line(exc)}{where}",
                    as_json=False,
                )
        lock.record(url)
        click.echo(f"NATS {redact_url(url) if url else url}", nl=True)
        sys.stdout.flush()
        with (
            open_ledger(ctx) as app,
            metrics_server(ctx, metrics_port, metrics_address) as metrics,
        ):
            services = Services(app, url, projector=not no_projector, web=web, log=log)
            if metrics is not None:
                metrics.collector.relay = services.relay
                metrics.collector.projector = services.projector_totals
            failed = services.run(stop, say=_say)
    finally:
        stop.set()
        if web is not None:
            web.stop()
        # Only now, after the services drained: they needed the server to record positions.
        if server is not None and url:
            stop_embedded(config, url, server)
        lock.release()
    if failed is not None:
        _fail(f"{failed[0]}: {failed[1]}", as_json=False)
    click.echo("Stopped.")


def _say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()
