"""Commands that answer as-of questions: licences, commitments, asymmetry, measures,
end users, findings, export decisions (``check``/``apply``) and the projector (``project``).

Every view command is made by ``view_command``: it shares the skeleton (``--as-of`` and
``--known-at`` first, the command's own options, then ``--fold`` and ``-o``; errors become
messages and exit codes) and gets one ``Query``, whose ``answer`` opens the ledger and its
views, asks ``ledger.projections.answers`` and notes ids that name nothing, and whose
``emit`` prints the answer in the chosen format.  The rules live in ``projections``.
Answers come from the stored views, caught up first when they are behind the store
(``--fold`` answers by folding the events instead).
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ledger.cli import complete
from ledger.cli.common import (
    OUTPUT_FORMATS,
    echo_json,
    echo_jsonl,
    handle_errors,
    metrics_options,
    metrics_server,
    not_blank,
    open_ledger,
    output_option,
    render_table,
    time_options,
    write_csv,
)
from ledger.projections.names import CLAUSE_STATUSES, FINDING_KINDS, LICENCE_STATUSES

if TYPE_CHECKING:
    from ledger.projections.query import Views

F = TypeVar("F", bound=Callable[..., Any])

CATCH_UP_NOTICE = 1000
"""Announce catching up on stderr when the stored views are this many events behind."""


def fold_option(func: F) -> F:
    return click.option(
        "--fold",
        is_flag=True,
        help="Answer by folding the events in the store instead of reading the stored "
        "views (slower; the answer is the same).",
    )(func)


def _width() -> int:
    return max(100, shutil.get_terminal_size((100, 24)).columns)


@contextmanager
def open_views(ctx: click.Context, fold: bool) -> Iterator[Views]:
    from ledger.projections.query import Views

    def notice(lag: int) -> None:
        if lag >= CATCH_UP_NOTICE:
            click.echo(f"Catching up the stored views ({lag:,} events behind)...", err=True)

    with open_ledger(ctx, existing=True) as app:
        yield Views(app, mode="fold" if fold else "auto", on_catch_up=notice)


def _day(value: dt.datetime | None) -> str:
    """A table cell for an instant: its date (in its own offset); JSON keeps the time."""
    from ledger.projections.views import day

    return day(value)


def _last_day(end: dt.datetime | None) -> str:
    """A table cell for an exclusive end: the last day it covers; JSON keeps the instant."""
    from ledger.projections.views import last_day

    return last_day(end)


def _note_unknown(
    v: Views,
    kind: str,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    ids: Sequence[str] | None,
) -> None:
    """One line on stderr per id that names nothing (an empty answer is otherwise mute)."""
    from ledger.projections import api

    header = _header(as_of, known_at)
    when = header[0].lower() + header[1:]
    for missing in api.unknown_ids(v, kind, as_of, known_at, ids):
        click.echo(f"Note: no {kind} '{missing}' is known {when}", err=True)


def _header(as_of: dt.datetime | None, known_at: dt.datetime | None) -> str:
    """Which (T, K) the table answers, in the reading zone, and whose calendar its days
    follow when that is not UTC."""
    from ledger.times import UTC, iso_seconds, reading_zone, zone_name

    zone = reading_zone()
    a = iso_seconds(as_of.astimezone(zone)) if as_of else "now"
    k = iso_seconds(known_at.astimezone(zone)) if known_at else "now"
    days = "" if zone is UTC else f" Days are {zone_name(zone)} days."
    return f"As of {a}, as known at {k}.{days}"


def _emit(
    output: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    json_body: dict[str, Any],
    headers: dict[str, str] | None = None,
    table_rows: list[dict[str, Any]] | None = None,
    csv_rows: list[dict[str, Any]] | None = None,
    title: str = "",
    empty: str = "Nothing matches.",
) -> None:
    if output == "json":
        echo_json(json_body)
    elif output == "jsonl":
        echo_jsonl(rows)
    elif output == "csv":
        write_csv(csv_rows if csv_rows is not None else rows, columns)
    else:
        if title:
            click.echo(title)
        if not rows:
            click.echo(empty, err=True)
            return
        click.echo(render_table(table_rows or rows, columns, headers=headers, width=_width()))


# --- the shared skeleton of a view command ----------------------------------------------


@dataclass(frozen=True)
class Query:
    """One invocation of a view command: the options every view shares, and the steps
    every view takes (answer, then emit)."""

    ctx: click.Context
    as_of: dt.datetime | None
    known_at: dt.datetime | None
    fold: bool
    output: str

    def answer(
        self,
        ask: Callable[[Views], Any],
        *,
        unknown: tuple[str, Sequence[str] | None] | None = None,
    ) -> Any:
        """``ask(views)`` on this invocation's ledger; with ``unknown=(kind, ids)``, one
        note on stderr per id that names no entity of that kind then."""
        with open_views(self.ctx, self.fold) as v:
            body = ask(v)
            if unknown is not None:
                _note_unknown(v, unknown[0], self.as_of, self.known_at, unknown[1])
        return body

    @property
    def title(self) -> str:
        return _header(self.as_of, self.known_at)

    def emit(
        self,
        rows: list[dict[str, Any]],
        columns: list[str],
        *,
        json_body: dict[str, Any],
        headers: dict[str, str] | None = None,
        table_rows: list[dict[str, Any]] | None = None,
        csv_rows: list[dict[str, Any]] | None = None,
        empty: str = "Nothing matches.",
    ) -> None:
        """The answer in the chosen format, the table under the (T, K) header."""
        _emit(
            self.output,
            rows,
            columns,
            json_body=json_body,
            headers=headers,
            table_rows=table_rows,
            csv_rows=csv_rows,
            title=self.title,
            empty=empty,
        )


VIEW_COMMANDS: list[click.Command] = []
"""Every command ``view_command`` made (a unit test checks that each has the shared
options, and that no other command takes --known-at unless it is listed there)."""


def view_command(
    name: str | None = None,
    *options: Callable[[Any], Any],
    outputs: Sequence[str] = OUTPUT_FORMATS,
) -> Callable[[Callable[..., None]], click.Command]:
    """A view command: ``--as-of``/``--known-at``, then ``options`` (the command's own,
    in --help order), then ``--fold`` and ``-o`` (``outputs``), errors handled.  The
    function gets a ``Query`` and its own options as keywords; its docstring is the
    help."""

    def decorate(func: Callable[..., None]) -> click.Command:
        @functools.wraps(func)
        def run(
            ctx: click.Context,
            as_of: dt.datetime | None,
            known_at: dt.datetime | None,
            fold: bool,
            output: str,
            **own: Any,
        ) -> None:
            func(Query(ctx, as_of, known_at, fold, output), **own)

        # The decorators as they would be written above the function, applied bottom up.
        decorators: list[Callable[[Any], Any]] = [
            time_options,
            *options,
            fold_option,
            output_option(*outputs),
            click.pass_context,
            handle_errors,
        ]
        callback: Any = run
        for decorator in reversed(decorators):
            callback = decorator(callback)
        command = click.command(name)(callback)
        VIEW_COMMANDS.append(command)
        return command

    return decorate


# --- licences ---------------------------------------------------------------------------


def _remaining(row: dict[str, Any], *, caps: bool = False) -> str:
    return "; ".join(
        f"{i['item']} {_num(i['remaining'])}"
        + (f"/{_num(i['cap'])}" if caps else "")
        + f" {i['unit']}"
        for i in row["items"]
    )


def _num(value: Any) -> str:
    from decimal import Decimal

    from ledger.projections.names import quantity_text

    return quantity_text(value) if isinstance(value, Decimal) else str(value)


_LICENCE_CSV_COLUMNS = [
    "licence_id",
    "status",
    "licence_type",
    "issuer",
    "exporter",
    "end_users",
    "destinations",
    "valid_from",
    "valid_until",
    "suspended_until",
    "item",
    "unit",
    "cap",
    "used",
    "remaining",
]


def _licence_item_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tidy CSV: one row per licence item, quantities as plain numbers (no thousands
    separators, no unit in the cell); a licence without items keeps one row."""
    out = []
    for row in rows:
        items = row["items"] or [{}]
        for item in items:
            out.append(
                {
                    **row,
                    "item": item.get("item"),
                    "unit": item.get("unit"),
                    **{k: _plain(item.get(k)) for k in ("cap", "used", "remaining")},
                }
            )
    return out


def _plain(value: Any) -> str:
    """A quantity for machines: positional notation, no separators, no trailing zeros."""
    from decimal import Decimal

    if not isinstance(value, Decimal):
        return "" if value is None else str(value)
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@view_command(
    None,
    click.option(
        "--licence",
        "licence_ids",
        multiple=True,
        metavar="ID",
        callback=not_blank,
        shell_complete=complete.entity_ids("licence"),
        help="Only this licence.",
    ),
    click.option(
        "--status",
        type=click.Choice(LICENCE_STATUSES),
        help="Only licences with this status on the as-of date.",
    ),
    click.option(
        "--exporter",
        callback=not_blank,
        shell_complete=complete.entity_ids("party"),
        help="Only licences held by this exporter.",
    ),
    click.option(
        "--end-user",
        callback=not_blank,
        shell_complete=complete.entity_ids("party"),
        help="Only licences naming this end user.",
    ),
)
def licences(
    q: Query,
    licence_ids: tuple[str, ...],
    status: str | None,
    exporter: str | None,
    end_user: str | None,
) -> None:
    """Licences as of a date: status, validity, exporter, end users, remaining quantities.

    Status on the as-of date: active, suspended, withdrawn, surrendered, expired,
    exhausted (caps used up; a single licence after its shipment).  Remaining =
    cap - shipments effective by the as-of date, as known at --known-at.  With
    --licence the table says when each was active, its suspensions cut out ("active
    38 days (2025-12-02 - 2026-01-08); suspended 10 days (...)"; JSON: active_spans,
    suspended_spans).

    \b
    Examples:
      ledger licences
      ledger licences --as-of 2025-12-15 --known-at 2025-12-10
      ledger licences --exporter jl-mag --status active -o json
      ledger licences --licence JLM-GL-2025-001 -o csv
    """
    from ledger.projections import answers

    body = q.answer(
        lambda v: answers.licences(
            v,
            q.as_of,
            q.known_at,
            ids=list(licence_ids) or None,
            status=status,
            exporter=exporter,
            end_user=end_user,
        ),
        unknown=("licence", licence_ids),
    )
    rows = body["licences"]
    from ledger.projections.views import licence_spans_text

    at = body["as_of"]
    # Shape only what the chosen output shows (thousands of rows: it adds up).
    table = [
        {
            **row,
            "active": licence_spans_text(row, at) or "never active",
            "valid_from": _day(row["valid_from"]),
            "valid_until": _last_day(row["valid_until"]),
            "remaining": _remaining(row),
            "status": row["status"]
            + (
                f" through {_last_day(row['suspended_until'])}"
                if row["status"] == "suspended" and row["suspended_until"]
                else ""
            ),
        }
        for row in (rows if q.output == "table" else ())
    ]
    q.emit(
        rows,
        _LICENCE_CSV_COLUMNS
        if q.output == "csv"
        else [
            "licence_id",
            "status",
            "licence_type",
            "exporter",
            "end_users",
            "valid_from",
            "valid_until",
            # Licences asked for by id: room for when each was active.
            *(["active"] if licence_ids else []),
            "remaining",
        ],
        headers={
            "licence_id": "licence",
            "licence_type": "type",
            "end_users": "end users",
            "valid_from": "from",
            "valid_until": "through",
            "remaining": "remaining",
        },
        json_body=body,
        table_rows=table,
        csv_rows=_licence_item_rows(rows) if q.output == "csv" else None,
        empty="No licences match.",
    )


# --- commitments ------------------------------------------------------------------------


@view_command(
    None,
    click.option(
        "--agreement",
        callback=not_blank,
        shell_complete=complete.entity_ids("agreement"),
        help="Only commitments under this agreement.",
    ),
    click.option(
        "--party", callback=not_blank, help="Only commitments this government owes or is owed."
    ),
)
def commitments(q: Query, agreement: str | None, party: str | None) -> None:
    """Commitments as of a date: pledged, implemented, pending, overdue, reversed.

    \b
    Examples:
      ledger commitments --agreement busan-2025
      ledger commitments --as-of 2025-11-14 --known-at 2025-11-14 --party CN -o json
    """
    from ledger.projections import answers

    body = q.answer(
        lambda v: answers.commitments(v, q.as_of, q.known_at, agreement=agreement, party=party),
        unknown=("agreement", [agreement] if agreement else None),
    )
    rows = body["commitments"]
    table = [
        {
            **row,
            "parties": f"{row['obligor']}→{row['beneficiary']}",
            "due_by": _last_day(row["due_by"]),
            "first_implemented_at": _day(row["first_implemented_at"]),
            "flags": ", ".join(name for name in ("overdue", "unilateral") if row[name]),
        }
        for row in rows
    ]
    q.emit(
        rows,
        [
            "commitment_id",
            "agreement_id",
            "parties",
            "status",
            "due_by",
            "first_implemented_at",
            "flags",
            "description",
        ],
        headers={
            "commitment_id": "commitment",
            "agreement_id": "agreement",
            "due_by": "due",
            "first_implemented_at": "implemented",
        },
        json_body=body,
        table_rows=table,
        csv_rows=[{**row, "parties": f"{row['obligor']}->{row['beneficiary']}"} for row in rows],
        empty="No commitments match.",
    )


# --- asymmetry --------------------------------------------------------------------------

_PARTY_COLUMNS = [
    "agreement_id",
    "party",
    "pledged",
    "implemented",
    "pending",
    "overdue",
    "reversed",
    "lapsed",
    "unilateral_claims",
]
_PAIR_COLUMNS = [
    "first_commitment",
    "implemented_first",
    "one_sided_since",
    "other_commitment",
    "other_status",
    "one_sided_days",
    "days_from_agreement",
]


@view_command(
    None,
    click.option(
        "--agreement",
        callback=not_blank,
        shell_complete=complete.entity_ids("agreement"),
        help="Only this agreement.",
    ),
    click.option(
        "--pairs", "pairs_only", is_flag=True, help="Only the reciprocal pairs (table, csv, jsonl)."
    ),
)
def asymmetry(q: Query, agreement: str | None, pairs_only: bool) -> None:
    """Who has done what under each agreement, and who implemented first.

    Per agreement and party: commitments pledged, implemented, pending, overdue,
    reversed, lapsed and unilateral claims (asserted only by the other side).  Per
    reciprocal pair: who implemented first, since when the implementation has been
    one-sided, and for how many days (to the other side's implementation, or to the
    as-of date while it is pending), also counted from the agreement's date.  CSV and
    JSONL give the per-party counts, or the pairs with --pairs.

    \b
    Examples:
      ledger asymmetry
      ledger asymmetry --agreement busan-2025 --as-of 2025-11-30 --known-at 2025-11-30
      ledger asymmetry --pairs -o csv
    """
    from ledger.projections import answers, api

    report = q.answer(
        lambda v: answers.asymmetry(v, q.as_of, q.known_at, agreement=agreement),
        unknown=("agreement", [agreement] if agreement else None),
    )
    output = q.output
    if output == "json":
        echo_json(report)
        return
    if output == "jsonl":
        echo_jsonl(report["pairs"] if pairs_only else report["parties"])
        return
    parties = [{**p, **p["counts"]} for p in report["parties"]]
    pairs = api.pair_rows(report)
    if output == "csv":
        if pairs_only:
            write_csv(pairs, ["agreement_id", "pair", *_PAIR_COLUMNS, "one_sided_for"])
        else:
            write_csv(parties, _PARTY_COLUMNS)
        return
    click.echo(q.title)
    if not parties:
        click.echo("No commitments match.", err=True)
        return
    if not pairs_only:
        click.echo(
            render_table(
                parties,
                _PARTY_COLUMNS,
                headers={"agreement_id": "agreement", "unilateral_claims": "unilateral"},
                width=_width(),
            )
        )
        click.echo()
    if pairs:
        click.echo(
            render_table(
                [
                    {
                        **p,
                        "one_sided_since": _day(p["one_sided_since"]),
                        "one_sided_days": p["one_sided_for"] or "",
                    }
                    for p in pairs
                ],
                _PAIR_COLUMNS,
                headers={
                    "first_commitment": "implemented first",
                    "implemented_first": "by",
                    "one_sided_since": "since",
                    "other_commitment": "in return for",
                    "other_status": "its status",
                    "one_sided_days": "one-sided for",
                    "days_from_agreement": "from deal",
                },
                width=_width(),
            )
        )
    else:
        click.echo("No reciprocal pairs.")


# --- measures ---------------------------------------------------------------------------


@view_command(
    None,
    click.option(
        "--measure",
        "measure_ids",
        multiple=True,
        metavar="ID",
        callback=not_blank,
        shell_complete=complete.entity_ids("measure"),
        help="Only this measure.",
    ),
    click.option(
        "--status",
        type=click.Choice(CLAUSE_STATUSES),
        help="Only clauses with this status on the as-of date.",
    ),
)
def measures(q: Query, measure_ids: tuple[str, ...], status: str | None) -> None:
    """Control measures clause by clause: in force, suspended (until when), not yet
    effective or revoked on the as-of date.

    \b
    Examples:
      ledger measures --as-of 2025-11-10
      ledger measures --status suspended -o json
      ledger measures --measure MOFCOM-2025-61 --as-of 2025-12-01 --known-at 2025-11-20
    """
    from ledger.projections import answers, api

    body = q.answer(
        lambda v: answers.measures(
            v, q.as_of, q.known_at, ids=list(measure_ids) or None, status=status
        ),
        unknown=("measure", measure_ids),
    )
    from ledger.projections.views import spans_text

    rows = body["clauses"]
    at = (
        dt.datetime.fromisoformat(body["as_of"])
        if isinstance(body["as_of"], str)
        else body["as_of"]
    )
    table = [
        {**row, "when": api.clause_when(row), "in_force": spans_text(row["in_force_spans"], at)}
        for row in rows
    ]
    # One measure asked for: room for how long each clause was in force.
    spans = ["in_force"] if measure_ids else []
    q.emit(
        rows,
        [
            "measure_id",
            "clause_id",
            "effect",
            "destinations",
            "end_user_classes",
            "status",
            "when",
            *spans,
            # Last: the one free-text column, cut after a few lines in a table (JSON and
            # CSV carry every item).
            "items",
        ],
        headers={
            "measure_id": "measure",
            "clause_id": "clause",
            "destinations": "dest",
            "end_user_classes": "users",
            "in_force": "in force",
        },
        json_body=body,
        table_rows=table,
        csv_rows=table,
        empty="No clauses match.",
    )


# --- end users --------------------------------------------------------------------------


@view_command(
    "end-users",
    click.option(
        "--party",
        "party_ids",
        multiple=True,
        metavar="ID",
        callback=not_blank,
        shell_complete=complete.entity_ids("party"),
        help="Only this party.",
    ),
    click.option(
        "--all-roles", is_flag=True, help="Every party (exporters too), not only end users."
    ),
)
def end_users(q: Query, party_ids: tuple[str, ...], all_roles: bool) -> None:
    """End users as of a date: vetting, classification and the lists they are on.

    \b
    Examples:
      ledger end-users
      ledger end-users --party baotou-magnet --as-of 2025-12-01 -o json
    """
    from ledger.projections import answers

    body = q.answer(
        lambda v: answers.end_users(
            v,
            q.as_of,
            q.known_at,
            ids=list(party_ids) or None,
            role=None if all_roles or party_ids else "end-user",
        ),
        unknown=("party", party_ids),
    )
    rows = body["parties"]
    table = [
        {
            **row,
            "vetting_until": _last_day(row["vetting_until"]),
            "class": row["end_user_class"],
            "lists": ", ".join(x["list_name"] for x in row["listings"]),
        }
        for row in rows
    ]
    q.emit(
        rows,
        ["party_id", "name", "country", "vetting", "vetting_until", "class", "lists"],
        headers={"party_id": "party", "vetting_until": "through"},
        json_body=body,
        table_rows=table,
        csv_rows=table,
        empty="No parties match.",
    )


# --- findings ---------------------------------------------------------------------------


@view_command(
    None,
    click.option(
        "--kind",
        "kinds",
        multiple=True,
        type=click.Choice(FINDING_KINDS),
        help="Only findings of this kind (repeatable).",
    ),
)
def findings(q: Query, kinds: tuple[str, ...]) -> None:
    """Conflicts an auditor must see, each citing the events it rests on.

    late-usage: a shipment effective while its licence was withdrawn, surrendered,
    suspended, expired or exhausted (typically because that was recorded later).
    licensed-end-user-listed: a licence names an end user who was on a military or
    restricted list, or classified military, within the licence's validity.
    commitment-overdue, late-implementation, unilateral-claim, one-sided-implementation:
    see `ledger asymmetry`.  misaligned-ends: reciprocal commitments in force whose
    implementations (or clauses suspended by one instrument) are scheduled to end on
    different days, ahead of time.  rests-on-reports: facts no official source backs.

    \b
    Examples:
      ledger findings
      ledger findings --kind late-usage --as-of 2026-01-31 --known-at 2026-01-31 -o json
      ledger --tz America/New_York findings --kind misaligned-ends
    """
    from ledger.projections import answers

    body = q.answer(lambda v: answers.findings(v, q.as_of, q.known_at, kinds=list(kinds) or None))
    rows = body["findings"]
    q.emit(
        rows,
        ["kind", "subject", "at", "summary", "events"],
        headers={},
        json_body=body,
        table_rows=[{**r, "at": _day(r["at"]), "events": len(r["events"])} for r in rows],
        csv_rows=[{**r, "events": " ".join(r["events"])} for r in rows],
        empty="No findings.",
    )


# --- decisions --------------------------------------------------------------------------


def request_options(func: F) -> F:
    for option in reversed(
        [
            click.option(
                "--exporter",
                required=True,
                shell_complete=complete.entity_ids("party"),
                help="Exporter party id.",
            ),
            click.option(
                "--end-user",
                required=True,
                shell_complete=complete.entity_ids("party"),
                help="End user party id.",
            ),
            click.option("--item", required=True, help="Control code / HS code, e.g. 1C902.a."),
            click.option("--quantity", required=True, help="Quantity (decimal)."),
            click.option("--unit", default="kg", show_default=True, help="Unit of --quantity."),
            click.option("--destination", required=True, help="Destination country code, e.g. US."),
            click.option("--end-use", required=True, help="Declared end use."),
            click.option(
                "--licence",
                "licence_id",
                shell_complete=complete.entity_ids("licence"),
                help="Only consider this licence.",
            ),
        ]
    ):
        func = option(func)
    return func


def _request(
    exporter: str,
    end_user: str,
    item: str,
    quantity: str,
    unit: str,
    destination: str,
    end_use: str,
    licence_id: str | None,
    date: dt.datetime,
) -> Any:
    from unicodedata import normalize

    from ledger.errors import InputError
    from ledger.projections.decisions import Request, parse_quantity

    try:
        amount = parse_quantity(quantity)
    except ValueError as exc:
        raise InputError(str(exc), field="--quantity") from None
    # Ids are stored in normal form C (see ledger.intake); look them up the same way.
    exporter, end_user, item = (normalize("NFC", text) for text in (exporter, end_user, item))
    if licence_id is not None:
        licence_id = normalize("NFC", licence_id)
    return Request(
        exporter=exporter,
        end_user=end_user,
        item=item,
        quantity=amount,
        unit=unit,
        destination=destination,
        end_use=end_use,
        date=date,
        licence_id=licence_id,
    )


_OPTION_OF = {
    "exporter": "--exporter",
    "end_user": "--end-user",
    "item": "--item",
    "quantity": "--quantity",
    "unit": "--unit",
    "destination": "--destination",
    "end_use": "--end-use",
    "licence_id": "--licence",
    "application_id": "--id",
    "date": "--as-of",
}


@contextmanager
def _naming_options() -> Iterator[None]:
    """Errors about a request field name the option that gave it."""
    from ledger.errors import LedgerError

    try:
        yield
    except LedgerError as exc:
        exc.field = _OPTION_OF.get(exc.field or "", exc.field)
        raise


def _print_decision(decision: Any, request: Any) -> None:
    outcome = decision.outcome.upper()
    color = "green" if decision.outcome == "approved" else "red"
    click.secho(
        f"{outcome}: {_num(request.quantity)} {request.unit} of {request.item} from "
        f"{request.exporter} to {request.end_user} ({request.destination}) on {_day(request.date)}",
        fg=color,
        bold=True,
    )
    for reason in decision.reasons:
        click.echo(f"  - {reason}")
    for note in decision.notes:
        click.echo(f"  note: {note}")
    if decision.fired:
        click.echo("Clauses that applied:")
        for f in decision.fired:
            click.echo(f"  {f.measure_id}/{f.clause_id}  {f.effect}  ({f.instrument})")
    if decision.context:
        click.echo("Also applies (does not decide):")
        for f in decision.context:
            click.echo(f"  {f.measure_id}/{f.clause_id}  {f.effect}  ({f.instrument})")
    if decision.suspended:
        click.echo("Suspended on the day (would apply otherwise):")
        for s in decision.suspended:
            through = _last_day(s["suspended_until"]) if s["suspended_until"] else ""
            click.echo(
                f"  {s['measure_id']}/{s['clause_id']}  {s['effect']}  "
                + (f"through {through}" if through else "until further notice")
                + (", never in force" if s["never_in_force"] else "")
            )
    if decision.licence_id:
        remaining = _num(decision.remaining_before)
        click.echo(f"Licence: {decision.licence_id} ({remaining} {request.unit} remaining)")
    click.echo(f"End user {request.end_user}: {decision.end_user_status}")


@view_command(None, request_options, outputs=("table", "json"))
def check(
    q: Query,
    exporter: str,
    end_user: str,
    item: str,
    quantity: str,
    unit: str,
    destination: str,
    end_use: str,
    licence_id: str | None,
) -> None:
    """Would this export be allowed on the as-of date, and why?  (Read-only.)

    Applies the clauses in force on the date to the item, destination and end user's
    class; a prohibition rejects, a licence requirement needs an active licence naming
    the exporter, end user and destination with enough remaining quantity.  Nothing is
    recorded: use `ledger apply` to record an application and its decision.

    \b
    Examples:
      ledger check --exporter jl-mag --end-user acme-motors --item 1C902.a \\
        --quantity 500 --destination US --end-use "EV motors" --as-of 2025-12-15
      ledger check ... --known-at 2025-12-01 -o json
    """
    from ledger.projections import answers, decisions
    from ledger.times import now

    date = q.as_of or now()
    request = _request(
        exporter, end_user, item, quantity, unit, destination, end_use, licence_id, date
    )

    def decide(v: Views) -> tuple[Any, dict[str, Any]]:
        decision = decisions.check(v, request, q.known_at)
        return decision, answers.check_body(v, request, decision, q.known_at)

    with _naming_options():
        decision, body = q.answer(decide)
    if q.output == "json":
        echo_json(body)
        return
    click.echo(_header(date, q.known_at))
    _print_decision(decision, request)


def _effective(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    from ledger.times import TimeParseError, parse_event_time

    if value is None:
        return None
    try:
        return parse_event_time(value, "start")
    except TimeParseError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option(
    "--as-of",
    callback=_effective,
    metavar="TIME",
    help="When the application is made (its effective time; a bare date means the start "
    "of that day UTC). The decision is taken as of this time against what the ledger "
    "knows now. Default: now.",
)
@click.option("--id", "application_id", help="Application id (default: generated; not blank).")
@request_options
@output_option("table", "json")
@click.pass_context
@handle_errors
def apply(
    ctx: click.Context,
    as_of: dt.datetime | None,
    application_id: str | None,
    exporter: str,
    end_user: str,
    item: str,
    quantity: str,
    unit: str,
    destination: str,
    end_use: str,
    licence_id: str | None,
    output: str,
) -> None:
    """Record an export application and its automatic decision (two events, one batch).

    The decision is the one `ledger check` gives as of the application's time, against
    everything the ledger knows now; ApplicationDecided names the clauses that fired,
    the licence that covers it, the end user's status and the reasons.

    \b
    Examples:
      ledger apply --exporter jl-mag --end-user acme-motors --item 1C902.a \\
        --quantity 500 --destination US --end-use "EV motors"
      ledger apply --id APP-2025-0042 --as-of 2025-12-03 ... -o json
    """
    from ledger.errors import InputError
    from ledger.intake import uuid7
    from ledger.projections import decisions
    from ledger.projections.query import Views
    from ledger.times import now

    date = as_of or now()
    request = _request(
        exporter, end_user, item, quantity, unit, destination, end_use, licence_id, date
    )
    # An empty --id is a mistake (an unset variable, say), not a request for a new id.
    if application_id is not None and not application_id.strip():
        raise InputError("must not be blank (leave --id out for a generated id)", field="--id")
    app_id = application_id if application_id is not None else f"APP-{uuid7().hex[:16]}"
    with open_ledger(ctx, writes=True) as app, _naming_options():
        v = Views(app)
        decision, result = decisions.apply(app, v, app_id, request)
    if output == "json":
        echo_json(
            {
                "application_id": app_id,
                "request": vars(request),
                "decision": decision.to_dict(),
                "append": result.to_dict(),
            }
        )
        return
    # A repeated application is refused (rule duplicate-entity), so both were appended.
    positions = [o.position for o in result.appended]
    click.echo(
        f"Recorded application {app_id} and its decision at positions "
        f"{min(positions)}-{max(positions)}."
    )
    _print_decision(decision, request)


# --- the projector ----------------------------------------------------------------------


@click.command()
@click.option("--once", is_flag=True, help="Catch up to the store's head (or stream) and exit.")
@click.option(
    "--source",
    type=click.Choice(["store", "nats"]),
    default="store",
    show_default=True,
    help="Read events from the store's notification log or the NATS stream "
    "(durable consumer; LEDGER_NATS_URL, LEDGER_STREAM).",
)
@click.option(
    "--rebuild", is_flag=True, help="Drop the stored views and rebuild them from the start."
)
@metrics_options
@output_option("table", "json")
@click.pass_context
@handle_errors
def project(
    ctx: click.Context,
    once: bool,
    source: str,
    rebuild: bool,
    metrics_port: int | None,
    metrics_address: str,
    output: str,
) -> None:
    """Keep the stored views current (exactly once, resumable after a crash).

    Applies every event after the tracked position to the bitemporal view tables and
    records the new position in the same transaction.  Without --once it keeps
    following new events until interrupted (Ctrl-C / SIGTERM).  Entities beyond
    LEDGER_PROJECTOR_CACHE megabytes (default 16) leave memory after each write and
    are reloaded when needed; the views are the same.

    \b
    Examples:
      ledger project --once
      ledger project --rebuild --once
      ledger project --source nats          # follow the JetStream stream
      ledger project --metrics-port 9465    # Prometheus metrics on 127.0.0.1:9465
    """
    import signal
    import threading

    from ledger.cli.common import settings
    from ledger.projections import runner

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    if not once:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def report(p: runner.Progress) -> None:
        if output == "table" and sys.stderr.isatty():
            click.echo(
                f"\rposition {p.position:,}  ({p.applied:,} events, {p.seconds:.1f} s)",
                err=True,
                nl=False,
            )

    from ledger.bus_verify import HoldError
    from ledger.errors import StoreError
    from ledger.stream import NatsUnavailable

    try:
        with metrics_server(ctx, metrics_port, metrics_address) as metrics:
            result = runner.RunResult(source)
            if metrics is not None:
                metrics.collector.projector = result
            runner.run(
                settings(ctx),
                stop,
                source=source,
                once=once,
                rebuild=rebuild,
                on_progress=report,
                result=result,
            )
    except (NatsUnavailable, HoldError) as exc:
        raise StoreError(str(exc)) from None
    if output == "table" and sys.stderr.isatty():
        click.echo(err=True)
    if output == "json":
        echo_json(result.to_dict())
    else:
        rate = result.applied / result.seconds if result.seconds > 0 else 0
        click.echo(
            f"Views at position {result.position:,} ({result.applied:,} events applied from "
            f"{'the NATS stream' if source == 'nats' else 'the store'} in "
            f"{result.seconds:.2f} s, {rate:,.0f} events/s)."
        )
        if result.rejected:
            click.echo(
                f"{result.rejected:,} stream message(s) were not applied: {result.refused:,} "
                f"refused as not in the signed tree (forged, altered, reordered or missing; "
                f"the store's events were applied instead), {result.malformed:,} malformed; "
                "the log names each one.",
                err=True,
            )
        if result.held:
            click.echo(
                f"{result.held:,} stream message(s) after position {result.position:,} wait "
                "for a signed checkpoint to cover them: not applied.",
                err=True,
            )
        if result.purged:
            click.echo(
                f"The stream's head had been purged (its limits or age) of events the views "
                f"needed ({result.purged:,} time(s)); the store's events were applied.",
                err=True,
            )
