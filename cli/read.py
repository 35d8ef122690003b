"""Commands that read the record itself: ``log``, ``show``, ``schema``."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from typing import Any

import click

from ledger.cli import complete
from ledger.cli.common import (
    OUTPUT_FORMATS,
    echo_json,
    handle_errors,
    not_blank,
    open_ledger,
    output_option,
    settings,
    time_options,
)


def parse_entity(value: str | None) -> tuple[str | None, str | None]:
    """``kind:id`` or a bare id (any kind)."""
    from ledger.events import ENTITY_KINDS

    if not value:
        return None, None
    kind, sep, rest = value.partition(":")
    if sep and kind in ENTITY_KINDS:
        if not rest.strip():
            from ledger.errors import InputError

            raise InputError(f"'{value}' names no id: give {kind}:ID", field="--entity")
        return kind, rest
    return None, value


@click.command()
@time_options
@click.option(
    "--entity",
    metavar="KIND:ID",
    callback=not_blank,
    shell_complete=complete.entities,
    help="Only this entity, e.g. licence:GL-1 (or a bare id of any kind).",
)
@click.option(
    "--kind",
    type=click.Choice(
        ["agreement", "commitment", "measure", "party", "licence", "application", "claim"]
    ),
    help="Only entities of this kind.",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    shell_complete=complete.event_types,
    help="Only this event type (repeatable), e.g. --type LicenceGranted.",
)
@click.option(
    "--party",
    callback=not_blank,
    shell_complete=complete.entity_ids("party"),
    help="Only events naming this party (government code or party id).",
)
@click.option("--include-retracted", is_flag=True, help="Also show retracted events, marked.")
@click.option(
    "--source-status",
    "source_statuses",
    multiple=True,
    type=click.Choice(["official", "reported", "claim", "illustrative"]),
    help="Only facts whose strongest source has this status (repeatable); 'reported': "
    "facts no official source backs.",
)
@click.option(
    "--order",
    type=click.Choice(["effective", "recorded"]),
    default="effective",
    show_default=True,
    help="effective: when facts took effect; recorded: when the ledger learned them.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@output_option(*OUTPUT_FORMATS)
@click.pass_context
@handle_errors
def log(
    ctx: click.Context,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    entity: str | None,
    kind: str | None,
    types: tuple[str, ...],
    party: str | None,
    include_retracted: bool,
    source_statuses: tuple[str, ...],
    order: str,
    limit: int | None,
    output: str,
) -> None:
    """The history: events in effective order, as the ledger knew them.

    The table shows each event on two lines: position, effective time, type, entity and
    recorded time; then what it says.

    --as-of T keeps events effective at or before T; --known-at K keeps events recorded
    at or before K and hides events retracted by K.  A bare date means the end of that
    day in the --tz zone (default UTC).

    \b
    Output:
      table  two lines per event (above)
      json   one array of {"position", "retracted", "event"} objects; `ledger watch -o
             json` prints the same "position" and "event" (the stored event) one object
             per line, with the stream's "stream_seq", "subject" and "redelivered"
             instead of "retracted" (a stream has no end to close an array at)
      jsonl  the events exactly as stored, one per line; with --order recorded and
             --include-retracted a complete export that `ledger import --backfill`
             re-imports into an empty ledger exactly
      csv    one row per event: position, times, type, kind, entity id, event id,
             actor, retracted, description

    --source-status S keeps the facts that stand on S: a fact stands on the strongest
    source it cites (official > reported > claim > illustrative), so `--source-status
    reported` lists the facts that no official source backs, only reports.

    \b
    Examples:
      ledger log --entity licence:JLM-GL-2025-001
      ledger log --as-of 2025-11-14 --known-at 2025-11-14 --party CN
      ledger log --type ClauseSuspended --type SuspensionEnded -o json
      ledger log --source-status reported --source-status claim
      ledger log --order recorded --include-retracted -o jsonl > record.jsonl
      ledger log --kind licence -o csv > licence-history.csv
    """
    from ledger.describe import describe
    from ledger.errors import InputError
    from ledger.events import EVENT_TYPES_BY_NAME
    from ledger.projections.answers import log_entry
    from ledger.store.codec import encode_event
    from ledger.times import iso, short

    for t in types:
        if t not in EVENT_TYPES_BY_NAME:
            raise InputError(
                f"unknown event type '{t}'; see `ledger schema --types`", field="--type"
            )
    entity_kind, entity_id = parse_entity(entity)
    if kind and entity_kind and kind != entity_kind:
        raise InputError(f"--kind {kind} contradicts --entity {entity}", field="--kind")
    with (
        open_ledger(ctx, existing=True) as app,
        contextlib.closing(
            app.log(
                as_of=as_of,
                known_at=known_at,
                entity_kind=entity_kind or kind,
                entity_id=entity_id,
                types=types,
                party=party,
                include_retracted=include_retracted,
                order=order,
                source_statuses=source_statuses,
            )
        ) as entries,
    ):
        rows: list[Any] = []
        csv_out = _log_csv_writer() if output == "csv" else None
        for count, entry in enumerate(entries):
            if limit is not None and count >= limit:
                break
            if output == "jsonl":
                sys.stdout.write(encode_event(entry.event).decode() + "\n")
            elif csv_out is not None:
                e = entry.event
                csv_out.writerow(
                    [
                        entry.position,
                        iso(e.effective_at),
                        iso(e.recorded_at),
                        e.type,
                        e.entity_kind,
                        e.entity_id,
                        str(e.event_id),
                        e.actor,
                        "true" if entry.retracted else "false",
                        describe(e),
                    ]
                )
            elif output == "json":
                rows.append(log_entry(entry))
            else:
                e = entry.event
                rows.append(
                    {
                        "pos": entry.position,
                        "effective": short(e.effective_at),
                        "recorded": short(e.recorded_at),
                        "type": ("✗ " if entry.retracted else "") + e.type,
                        "entity": e.entity,
                        "what": describe(e),
                    }
                )
    if output == "json":
        echo_json(rows)
    elif output == "table":
        if not rows:
            click.echo("No events match.", err=True)
            return
        click.echo(_log_text(rows, _width()))
        if include_retracted and any(r["type"].startswith("✗") for r in rows):
            click.echo("\n✗ = retracted (as known at the query's known-at time)")


LOG_CSV_COLUMNS = (
    "position",
    "effective_at",
    "recorded_at",
    "type",
    "entity_kind",
    "entity_id",
    "event_id",
    "actor",
    "retracted",
    "description",
)


def _log_csv_writer() -> Any:
    """A CSV writer on stdout with the log's header written (rows stream as read)."""
    from ledger.cli.common import SafeCsvWriter

    writer = SafeCsvWriter()
    writer.writerow(list(LOG_CSV_COLUMNS))
    return writer


def _log_text(rows: list[dict[str, Any]], width: int) -> str:
    """Two lines per event, so ids and descriptions are never cut: the position, the
    times, the type and the entity; then what it says, wrapped and indented."""
    import textwrap

    pos = max(len(str(r["pos"])) for r in rows)
    eff = max(len(r["effective"]) for r in rows)
    kind = max(len(r["type"]) for r in rows)
    out = []
    for r in rows:
        out.append(
            f"{r['pos']:>{pos}}  {r['effective']:<{eff}}  {r['type']:<{kind}}  {r['entity']}"
            f"  (recorded {r['recorded']})"
        )
        out.extend(
            textwrap.wrap(
                r["what"],
                width,
                initial_indent=" " * (pos + 2),
                subsequent_indent=" " * (pos + 2),
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)


def _width() -> int:
    import shutil

    return max(100, shutil.get_terminal_size((100, 24)).columns)


@click.command()
@click.argument("event_id")
@output_option("table", "json", "jsonl")
@click.pass_context
@handle_errors
def show(ctx: click.Context, event_id: str, output: str) -> None:
    """Show one event by id, with its position and whether it was retracted.

    \b
    Examples:
      ledger show 01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e
      ledger show 01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e -o json
      ledger show 01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e -o jsonl   # the event as stored
    """
    from uuid import UUID

    import msgspec

    from ledger.describe import describe
    from ledger.errors import InputError, RuleViolation
    from ledger.events import echo
    from ledger.projections.answers import log_entry

    try:
        target = UUID(event_id)
    except ValueError:
        message = f"'{echo(event_id)}' is not an event id (UUID)"
        raise InputError(message, field="EVENT_ID") from None
    with open_ledger(ctx, existing=True) as app:
        entry = app.get_event(target)
    if entry is None:
        raise RuleViolation("unknown-reference", f"no event {event_id} is recorded")
    if output == "json":
        echo_json(log_entry(entry))
        return
    if output == "jsonl":  # as `ledger log -o jsonl` prints it: the event as stored
        from ledger.store.codec import encode_event

        sys.stdout.write(encode_event(entry.event).decode() + "\n")
        return
    click.echo(f"position {entry.position}{'  (retracted)' if entry.retracted else ''}")
    click.echo(describe(entry.event))
    click.echo(msgspec.json.format(msgspec.json.encode(entry.event), indent=2).decode())


@click.command()
@click.option(
    "--type",
    "type_name",
    metavar="TYPE",
    shell_complete=complete.event_types,
    help="Only this event type's schema.",
)
@click.option("--types", "list_types", is_flag=True, help="List the event types and exit.")
@click.option(
    "--input",
    "for_input",
    is_flag=True,
    help="The schema of what operators write (append, import): bare dates allowed, "
    "event_id/effective_at/actor optional, no recorded_at.",
)
@click.option(
    "--asyncapi",
    is_flag=True,
    help="Print an AsyncAPI document of the NATS subjects and payloads instead.",
)
@output_option("table", "json")
@click.pass_context
@handle_errors
def schema(
    ctx: click.Context,
    type_name: str | None,
    list_types: bool,
    for_input: bool,
    asyncapi: bool,
    output: str,
) -> None:
    """Print the JSON Schema of the event contract (every event type).

    The events as stored and published (NATS payloads, `ledger log -o jsonl`): non-Python
    consumers validate and generate types from this.  --input prints the schema of what
    operators write instead: a line `ledger import` takes validates against it.  The
    schemas are JSON Schema 2020-12 that strict validators accept (ajv strict mode with
    ajv-formats); each has an $id.  --type, --types, --input and --asyncapi each print
    something else: give at most one.  The documents are JSON in either format; -o json
    lists --types as a JSON array and gives errors as JSON.

    \b
    Examples:
      ledger schema > ledger-events.schema.json
      ledger schema --input > ledger-input.schema.json    # validate files before import
      ledger schema --type LicenceGranted
      ledger schema --types
      ledger schema --types -o json
      ledger schema --asyncapi > ledger.asyncapi.json
    """
    import msgspec

    from ledger import events as ev
    from ledger.errors import InputError

    # Each option picks a different document: a combination used to print the first
    # one's silently (``--type X --types`` listed every type).
    chosen = [
        name
        for name, given in (
            ("--type", type_name is not None),
            ("--types", list_types),
            ("--input", for_input),
            ("--asyncapi", asyncapi),
        )
        if given
    ]
    if len(chosen) > 1:
        raise InputError(f"choose one of {', '.join(chosen)}", field=chosen[1])
    if list_types:
        listed = []
        for cls in ev.EVENT_TYPES:
            doc = (cls.__doc__ or "").strip().splitlines()[0]
            listed.append({"type": cls.__name__, "kind": cls.KIND or None, "description": doc})
        if output == "json":
            echo_json(listed)
            return
        for row in listed:
            kind = row["kind"] or "(kind of the retracted event)"
            click.echo(f"{row['type']:24s} {kind:12s} {row['description']}")
        return
    if asyncapi:
        from ledger.asyncapi import asyncapi_document

        document = asyncapi_document(settings(ctx))  # --home's serve URL, subject prefix
        click.echo(msgspec.json.format(msgspec.json.encode(document), indent=2))
        return
    from ledger import schemas

    if type_name is not None:
        named = ev.EVENT_TYPES_BY_NAME.get(type_name)
        if named is None:
            raise InputError(f"unknown event type '{type_name}'", field="--type")
        body = schemas.event_type_schema(named)
    elif for_input:
        body = schemas.input_schema()
    else:
        body = schemas.event_schema()
    click.echo(msgspec.json.format(msgspec.json.encode(body), indent=2))
