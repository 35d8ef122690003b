"""Commands that append: ``append``, ``import``, ``retract``."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING

import click

from ledger.cli.common import echo_json, handle_errors, open_ledger, output_option, require_text

if TYPE_CHECKING:
    from ledger.importing import ImportResult

PROGRESS_MIN_BYTES = 512 * 1024


def _summary(result: ImportResult, *, source: str, seconds: float | None = None) -> str:
    lines = []
    if result.dry_run:
        lines.append(
            f"Dry run: every event in {source} passed every check; {result.valid:,} would be "
            "appended. Nothing was appended."
        )
    elif result.appended:
        first, last = result.first_position, result.last_position
        span = f"position {first}" if first == last else f"positions {first}-{last}"
        lines.append(f"Appended {result.appended:,} event(s) from {source} at {span}.")
    else:
        lines.append(f"Nothing new in {source}.")
    if result.duplicates:
        lines.append(
            f"{result.duplicates:,} event(s) were already recorded (idempotent; "
            "nothing written for them)."
        )
    if result.recorded_at is not None and result.appended:
        from ledger.times import iso

        lines.append(f"Recorded at {iso(result.recorded_at)}.")
    if seconds is not None and result.appended:
        rate = result.total / seconds if seconds > 0 else 0
        lines.append(f"Took {seconds:.2f} s ({rate:,.0f} events/s).")
    return "\n".join(lines)


@click.command()
@click.argument("event_json", required=False, metavar="[JSON]")
@output_option("table", "json")
@click.pass_context
@handle_errors
def append(ctx: click.Context, event_json: str | None, output: str) -> None:
    """Append one event, given as JSON (argument, or stdin when omitted or '-').

    The ledger fills in event_id (if absent), effective_at (now, if absent), actor
    ($LEDGER_ACTOR) and recorded_at (always).  Re-sending an event with the same
    event_id and content is a no-op that reports the original position.

    \b
    Examples:
      ledger append '{"type": "PartyRegistered", "entity_id": "jl-mag",
        "name": "JL Mag Rare-Earth", "country": "CN", "roles": ["exporter"],
        "effective_at": "2025-01-01",
        "sources": [{"reference": "https://example.org/jl", "publisher": "JL Mag"}]}'
      echo "$EVENT" | ledger append --output json
    """
    import os

    from ledger.errors import InputError
    from ledger.intake import strip_bom

    # Bytes as given (an argument keeps its original bytes), so bad UTF-8 is reported; a
    # byte-order mark at the very start (a file saved by Notepad, say) is not part of it.
    data = os.fsencode(event_json) if event_json not in (None, "-") else sys.stdin.buffer.read()
    data = strip_bom(data)
    if not data.strip():
        raise InputError("no event given: pass JSON as an argument or on stdin")
    with open_ledger(ctx, writes=True) as app:
        result = app.append(app.parse_lines([(None, data.strip())]))
    if output == "json":
        echo_json(result.to_dict())
        return
    outcome = result.outcomes[0]
    if outcome.status == "appended":
        click.echo(
            f"Appended {outcome.type} on {outcome.entity} at position {outcome.position} "
            f"(event {outcome.event_id})."
        )
    else:
        click.echo(
            f"Already recorded: {outcome.type} on {outcome.entity} at position "
            f"{outcome.position} (event {outcome.duplicate_of}); nothing appended."
        )


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--backfill",
    is_flag=True,
    help="Take each event's recorded_at from the file (migrating an existing record). "
    "Recorded times must never decrease, must not be in the future, and must not be "
    "earlier than the ledger's latest recorded time.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the file completely (every line, every rule, against the ledger as it "
    "stands) and append nothing.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress bars on stderr. [default: for large files on a terminal]",
)
@output_option("table", "json")
@click.pass_context
@handle_errors
def import_(
    ctx: click.Context,
    file: str,
    backfill: bool,
    dry_run: bool,
    progress: bool | None,
    output: str,
) -> None:
    """Append a JSONL file of events (one JSON object per line) as one batch.

    All or nothing: every line is validated and checked against the ledger's rules
    first; a bad line anywhere is reported with its line number and nothing is appended.
    Events already recorded (same event_id and content) are skipped and reported.
    --dry-run runs the same checks and appends nothing (exit 0: the file would import;
    1 or 2: the error it would stop at); on a SQLite home with no ledger yet it checks
    against an empty ledger without creating one.

    \b
    Examples:
      ledger import events.jsonl
      ledger import --dry-run events.jsonl   # check first, append nothing
      ledger import - < events.jsonl
      ledger import --backfill migrated-record.jsonl --output json
    """
    import os

    from ledger.errors import InputError
    from ledger.intake import iter_lines

    if dry_run:
        _dry_run_without_creating(ctx)
    started = time.perf_counter()
    size = 0 if file == "-" else os.path.getsize(file)
    show = progress if progress is not None else (sys.stderr.isatty() and size > PROGRESS_MIN_BYTES)
    stream: IO[bytes] = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    try:
        with open_ledger(ctx, writes=not dry_run) as app:
            # The file is read, checked and written a chunk at a time, in one transaction
            # (memory does not grow with the file), so one bar follows the bytes read.
            if show:
                with click.progressbar(
                    length=size, label="Importing", file=sys.stderr, show_pos=False
                ) as bar:
                    result = app.import_lines(
                        iter_lines(stream),
                        backfill=backfill,
                        dry_run=dry_run,
                        progress=bar.update,
                        keep_events=output == "json",
                    )
            else:
                result = app.import_lines(
                    iter_lines(stream),
                    backfill=backfill,
                    dry_run=dry_run,
                    keep_events=output == "json",
                )
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    try:
        if not result.total:
            raise InputError(f"{file} contains no events")
        seconds = time.perf_counter() - started
        if output == "json":
            _echo_import_json(result, seconds=seconds, source=file)
        else:
            click.echo(_summary(result, source=file if file != "-" else "stdin", seconds=seconds))
    finally:
        if result.events is not None:
            result.events.close()


def _echo_import_json(result: ImportResult, *, seconds: float, source: str) -> None:
    """The import's JSON (as ``AppendResult.to_dict`` plus seconds and source), with the
    events streamed from the result's spool rather than built as one list."""
    import msgspec

    encode = msgspec.json.encode
    sys.stdout.flush()
    out = sys.stdout.buffer
    out.write(encode(result.head())[:-1] + b',"events":')
    assert result.events is not None
    result.events.write_array(out)
    out.write(b"," + encode({"seconds": round(seconds, 3), "source": source})[1:] + b"\n")
    out.flush()


def _dry_run_without_creating(ctx: click.Context) -> None:
    """A dry run on a SQLite home with no ledger yet checks against an empty ledger in a
    temporary directory (removed at exit) rather than create the real one."""
    import atexit
    import shutil
    import tempfile

    from ledger.cli.common import settings

    config = settings(ctx)
    if config.backend != "sqlite" or config.sqlite_path.exists():
        return
    scratch = tempfile.mkdtemp(prefix="ledger-dry-run-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    root = ctx.find_root()
    root.obj = {**(root.obj or {}), "LEDGER_DATABASE_URL": f"sqlite:///{scratch}/ledger.db"}


@click.command()
@click.argument("event_id")
@click.option("--reason", required=True, help="Why the event was wrong.")
@click.option(
    "--source",
    "source_ref",
    help="Reference for the correction (URL, document). Optional.",
)
@click.option("--publisher", help="Publisher of --source (needs --source). Default: operator.")
@output_option("table", "json")
@click.pass_context
@handle_errors
def retract(
    ctx: click.Context,
    event_id: str,
    reason: str,
    source_ref: str | None,
    publisher: str | None,
    output: str,
) -> None:
    """Record that event EVENT_ID was wrong.

    Nothing is deleted: queries known at or after the retraction ignore the event,
    queries known before it still show it.  To correct a fact, retract it and append
    the right one.

    \b
    Examples:
      ledger retract 01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e --reason "wrong licence number"
      ledger retract 01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e --reason "duplicate entry" -o json
    """
    from uuid import UUID

    from ledger.errors import InputError
    from ledger.events import Source, echo

    try:
        target = UUID(event_id)
    except ValueError:
        message = f"'{echo(event_id)}' is not an event id (UUID)"
        raise InputError(message, field="EVENT_ID") from None
    require_text(reason, "--reason")
    if source_ref is not None:
        require_text(source_ref, "--source")
    # A publisher is a detail of the source: without one it would be dropped unrecorded.
    if publisher is not None and source_ref is None:
        raise InputError("needs --source (the reference it published)", field="--publisher")
    if publisher is not None:
        require_text(publisher, "--publisher")
    sources = (
        [Source(reference=source_ref, publisher=publisher or "operator")]
        if source_ref is not None
        else []
    )
    with open_ledger(ctx, writes=True) as app:
        result = app.retract(target, reason, sources=sources)
    if output == "json":
        echo_json(result.to_dict())
        return
    outcome = result.outcomes[0]
    click.echo(
        f"Retracted {event_id} ({outcome.entity}) at position {outcome.position} "
        f"(retraction event {outcome.event_id})."
    )
