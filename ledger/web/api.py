"""``/api/...``: every view of the CLI, with its options as query parameters and its
``-o json`` answer as the body (``ledger.projections.answers`` shapes both).

Parameters are the CLI's options in snake case (``--end-user`` is ``end_user``; a
repeatable option is a repeated parameter); ``as_of`` and ``known_at`` as on the CLI.
A parameter the endpoint does not take is an error (400), so a typo never widens an
answer silently.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter

from ledger.errors import InputError, RuleViolation
from ledger.projections.names import CLAUSE_STATUSES, FINDING_KINDS, LICENCE_STATUSES
from ledger.web import params as p
from ledger.web.server import state_of

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.projections.query import Views


def doc(description: str) -> Any:
    """A query parameter's description in the OpenAPI document."""
    return QueryParameter(description=description)


AS_OF = Annotated[
    str | None,
    QueryParameter(
        description="State of the world at this time (effective time; a bare date is the end "
        "of that day UTC). Default: now.",
    ),
]
KNOWN_AT = Annotated[
    str | None,
    QueryParameter(
        description="What the ledger knew at this time (recorded time; a bare date is the end "
        "of that day UTC; a time still to come is now). Default: now."
    ),
]
TZ = Annotated[
    str | None,
    doc(
        "As the CLI's --tz: the calendar (IANA zone) of bare dates and of the days in the "
        "answer. Default: the server's (--tz / LEDGER_TZ), else UTC."
    ),
]
FORMAT = Annotated[
    str | None, doc("json (default) or csv (the CSV of `ledger VIEW -o csv`, the same bytes)")
]

JSON = "application/json"

_CAPTURING = threading.Lock()
"""Held while a CSV answer captures the process's standard output."""


def _format(value: str | None, formats: tuple[str, ...] = ("json", "csv")) -> str:
    return p.choice("format", value, formats) or "json"


def csv_answer(
    request: Request[Any, Any, Any],
    command: list[str],
    as_of: Any,
    known_at: Any,
) -> Response[bytes]:
    """``ledger COMMAND ... -o csv`` run in process on this server's ledger: the CSV is
    the CLI's own, byte for byte (its shaping lives in the command).  Handlers run in
    worker threads and standard output is the process's: one CSV answer at a time."""
    import contextlib
    import io

    from ledger.cli.main import cli
    from ledger.times import iso, zone_name

    settings = state_of(request).app.settings
    when = [
        *(["--as-of", iso(as_of)] if as_of is not None else []),
        *(["--known-at", iso(known_at)] if known_at is not None else []),
    ]
    args = [
        "--home",
        str(settings.home),
        "--database-url",
        settings.database_url,
        "--tz",
        zone_name(),
        *command,
        *when,
        "--output",
        "csv",
    ]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _CAPTURING, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(args=args, prog_name="ledger", standalone_mode=False)
        except SystemExit as exc:
            code = int(exc.code or 0)
    if code != 0:
        message = (err.getvalue().strip().splitlines() or ["the CSV could not be made"])[-1]
        raise InputError(message.removeprefix("Error: "), field="format")
    return Response(out.getvalue().encode(), media_type="text/csv")


def answer(body: Any) -> Response[bytes]:
    from ledger.projections.answers import encode

    return Response(encode(body), media_type=JSON)


def _opt(option: str, value: str | list[str] | None) -> list[str]:
    """A CLI option for each value given (none for ``None``)."""
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [x for v in values for x in (option, v)]


def view_handler(path: str, summary: str) -> Callable[[Callable[..., Any]], Any]:
    """A GET route answering a view, in a worker thread: its reads block, and a big answer
    (every licence of a large ledger) would otherwise hold up every other request, the
    liveness probe and the event streams included."""
    return get(path, sync_to_thread=True, summary=summary, tags=["views"])


@view_handler("/api/licences", "Licences as of a date")
def licences(
    request: Request[Any, Any, Any],
    as_of: AS_OF = None,
    known_at: KNOWN_AT = None,
    licence: Annotated[list[str] | None, doc("Only these licences")] = None,
    status: Annotated[str | None, doc("Only this status")] = None,
    exporter: Annotated[str | None, doc("Only this exporter's")] = None,
    end_user: Annotated[str | None, doc("Only licences naming him")] = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger licences -o json`: status, validity, exporter, end users, remaining."""
    from ledger.projections import answers

    t, k = p.time_bound("as_of", as_of), p.time_bound("known_at", known_at)
    ids = p.texts("licence", licence)
    status_ = p.choice("status", status, LICENCE_STATUSES)
    exporter_ = p.optional_text("exporter", exporter)
    end_user_ = p.optional_text("end_user", end_user)
    if _format(format) == "csv":
        command = ["licences", *_opt("--licence", ids), *_opt("--status", status_)]
        command += [*_opt("--exporter", exporter_), *_opt("--end-user", end_user_)]
        return csv_answer(request, command, t, k)
    views = state_of(request).views()
    body = answers.licences(
        views, t, k, ids=ids, status=status_, exporter=exporter_, end_user=end_user_
    )
    return answer(body)


@view_handler("/api/commitments", "Commitments as of a date")
def commitments(
    request: Request[Any, Any, Any],
    as_of: AS_OF = None,
    known_at: KNOWN_AT = None,
    agreement: Annotated[str | None, doc("Only this agreement's")] = None,
    party: Annotated[str | None, doc("Owed by or to this government")] = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger commitments -o json`: pledged, implemented, pending, overdue, reversed."""
    from ledger.projections import answers

    t, k = p.time_bound("as_of", as_of), p.time_bound("known_at", known_at)
    agreement_ = p.optional_text("agreement", agreement)
    party_ = p.optional_text("party", party)
    if _format(format) == "csv":
        command = ["commitments", *_opt("--agreement", agreement_), *_opt("--party", party_)]
        return csv_answer(request, command, t, k)
    body = answers.commitments(state_of(request).views(), t, k, agreement=agreement_, party=party_)
    return answer(body)


@view_handler("/api/asymmetry", "Asymmetry per agreement and reciprocal pair")
def asymmetry(
    request: Request[Any, Any, Any],
    as_of: AS_OF = None,
    known_at: KNOWN_AT = None,
    agreement: Annotated[str | None, doc("Only this agreement")] = None,
    pairs: Annotated[str | None, doc("true: CSV of the pairs (as --pairs)")] = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger asymmetry -o json`: who implemented first, one-sided for how long."""
    from ledger.projections import answers

    t, k = p.time_bound("as_of", as_of), p.time_bound("known_at", known_at)
    agreement_ = p.optional_text("agreement", agreement)
    pairs_only = p.flag("pairs", pairs)
    if _format(format) == "csv":
        command = ["asymmetry", *_opt("--agreement", agreement_)]
        return csv_answer(request, command + (["--pairs"] if pairs_only else []), t, k)
    body = answers.asymmetry(state_of(request).views(), t, k, agreement=agreement_)
    return answer(body)


@view_handler("/api/measures", "Measures clause by clause")
def measures(
    request: Request[Any, Any, Any],
    as_of: AS_OF = None,
    known_at: KNOWN_AT = None,
    measure: Annotated[list[str] | None, doc("Only these measures")] = None,
    status: Annotated[str | None, doc("Only this clause status")] = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger measures -o json`: in force, suspended, not yet effective or revoked."""
    from ledger.projections import answers

    t, k = p.time_bound("as_of", as_of), p.time_bound("known_at", known_at)
    ids = p.texts("measure", measure)
    status_ = p.choice("status", status, CLAUSE_STATUSES)
    if _format(format) == "csv":
        command = ["measures", *_opt("--measure", ids), *_opt("--status", status_)]
        return csv_answer(request, command, t, k)
    body = answers.measures(state_of(request).views(), t, k, ids=ids, status=status_)
    return answer(body)


@view_handler("/api/end-users", "End users as of a date")
def end_users(
    request: Request[Any, Any, Any],
    as_of: AS_OF = None,
    known_at: KNOWN_AT = None,
    party: Annotated[list[str] | None, doc("Only these parties")] = None,
    all_roles: Annotated[str | None, doc("true: exporters too")] = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger end-users -o json`: vetting, classification, lists."""
    from ledger.projections import answers

    t, k = p.time_bound("as_of", as_of), p.time_bound("known_at", known_at)
    ids = p.texts("party", party)
    every_role = p.flag("all_roles", all_roles)
    if _format(format) == "csv":
        command = ["end-users", *_opt("--party", ids)] + (["--all-roles"] if every_role else [])
        return csv_answer(request, command, t, k)
    role = None if every_role or ids else "end-user"
    body = answers.end_users(state_of(request).views(), t, k, ids=ids, role=role)
    return answer(body)


@view_handler("/api/findings", "Findings an auditor must see")
def findings(
    request: Request[Any, Any, Any],
    as_of: AS_OF = None,
    known_at: KNOWN_AT = None,
    kind: Annotated[list[str] | None, doc("Only these kinds")] = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger findings -o json`: conflicts, each citing the events it rests on."""
    from ledger.projections import answers

    t, k = p.time_bound("as_of", as_of), p.time_bound("known_at", known_at)
    kinds = p.texts("kind", kind)
    for name in kinds or ():
        p.choice("kind", name, FINDING_KINDS)
    if _format(format) == "csv":
        return csv_answer(request, ["findings", *_opt("--kind", kinds)], t, k)
    body = answers.findings(state_of(request).views(), t, k, kinds=kinds)
    return answer(body)


_REQUEST_PARAM = {"licence_id": "licence"}


@view_handler("/api/check", "Would this export be allowed, and why (read-only)")
def check(
    request: Request[Any, Any, Any],
    exporter: FromQuery[str | None] = None,
    end_user: FromQuery[str | None] = None,
    item: FromQuery[str | None] = None,
    quantity: FromQuery[str | None] = None,
    destination: FromQuery[str | None] = None,
    end_use: FromQuery[str | None] = None,
    unit: Annotated[str | None, doc("Default kg")] = None,
    licence: Annotated[str | None, doc("Only this licence")] = None,
    as_of: AS_OF = None,
    known_at: KNOWN_AT = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger check -o json`: the decision as of a date, its clauses, licence, reasons."""
    body = check_answer(
        state_of(request).views(),
        exporter=exporter,
        end_user=end_user,
        item=item,
        quantity=quantity,
        destination=destination,
        end_use=end_use,
        unit=unit,
        licence=licence,
        as_of=as_of,
        known_at=known_at,
        format=format,
    )
    return answer(body)


def check_answer(
    views: Views,
    exporter: str | None = None,
    end_user: str | None = None,
    item: str | None = None,
    quantity: str | None = None,
    destination: str | None = None,
    end_use: str | None = None,
    unit: str | None = None,
    licence: str | None = None,
    as_of: str | None = None,
    known_at: str | None = None,
    format: str | None = None,
) -> dict[str, Any]:
    """The body of ``/api/check`` (the check page shows the same)."""
    from ledger.projections import answers
    from ledger.projections.decisions import Request as ExportRequest
    from ledger.projections.decisions import parse_quantity
    from ledger.times import now

    _format(format, ("json",))  # as `ledger check`: no CSV
    try:
        amount = parse_quantity(p.text("quantity", quantity))
    except ValueError as exc:
        raise InputError(str(exc), field="quantity") from None
    export = ExportRequest(
        exporter=p.text("exporter", exporter),
        end_user=p.text("end_user", end_user),
        item=p.text("item", item),
        quantity=amount,
        unit=p.text("unit", unit) if unit is not None else "kg",
        destination=p.text("destination", destination),
        end_use=p.text("end_use", end_use),
        date=p.time_bound("as_of", as_of) or now(),
        licence_id=p.optional_text("licence", licence),
    )
    known = p.time_bound("known_at", known_at)
    try:
        body = answers.check(views, export, known)
    except (InputError, RuleViolation) as exc:
        exc.field = _REQUEST_PARAM.get(exc.field or "", exc.field)
        raise
    return body


MAX_PAGE = 1000
DEFAULT_PAGE = 100


@view_handler("/api/events", "The history, filtered and paged by position")
def events(
    request: Request[Any, Any, Any],
    as_of: Annotated[str | None, doc("Events effective by then")] = None,
    known_at: KNOWN_AT = None,
    entity: Annotated[str | None, doc("KIND:ID or a bare id")] = None,
    kind: Annotated[str | None, doc("Only this entity kind")] = None,
    type: Annotated[list[str] | None, doc("Only these event types")] = None,
    party: Annotated[str | None, doc("Only events naming it")] = None,
    include_retracted: Annotated[str | None, doc("true: marked")] = None,
    source_status: Annotated[list[str] | None, doc("Strongest source has this status")] = None,
    order: Annotated[str | None, doc("effective (default) or recorded")] = None,
    limit: Annotated[str | None, doc("Page size, 1-1000 (100)")] = None,
    after: Annotated[str | None, doc("order=recorded: after position")] = None,
    tz: TZ = None,
    format: FORMAT = None,
) -> Response[bytes]:
    """`ledger log -o json`, a page at a time: `events` are its items; `next` is the `after`
    of the next page (order=recorded), or null when there is none."""
    body = events_answer(
        state_of(request).app,
        as_of=as_of,
        known_at=known_at,
        entity=entity,
        kind=kind,
        type=type,
        party=party,
        include_retracted=include_retracted,
        source_status=source_status,
        order=order,
        limit=limit,
        after=after,
        format=format,
    )
    return answer(body)


def events_answer(
    app: Ledger,
    *,
    as_of: str | None = None,
    known_at: str | None = None,
    entity: str | None = None,
    kind: str | None = None,
    type: list[str] | None = None,
    party: str | None = None,
    include_retracted: str | None = None,
    source_status: list[str] | None = None,
    order: str | None = None,
    limit: str | None = None,
    after: str | None = None,
    format: str | None = None,
) -> dict[str, Any]:
    """The body of ``/api/events`` (the pages show the same)."""
    import contextlib

    from ledger.events import ENTITY_KINDS, EVENT_TYPES_BY_NAME, SOURCE_STATUSES
    from ledger.projections.answers import log_entry
    from ledger.times import now

    _format(format, ("json",))  # pages of the log: JSON (`ledger log -o csv` has it all)
    as_of_t = p.time_bound("as_of", as_of)
    known = p.time_bound("known_at", known_at) or now()
    entity_kind, entity_id = _entity(p.optional_text("entity", entity))
    kind_ = p.choice("kind", kind, ENTITY_KINDS)
    if kind_ and entity_kind and kind_ != entity_kind:
        raise InputError(f"kind {kind_} contradicts entity {entity}", field="kind")
    types = p.texts("type", type) or []
    for t in types:
        if t not in EVENT_TYPES_BY_NAME:
            raise InputError(f"unknown event type '{t}'", field="type")
    statuses = p.texts("source_status", source_status) or []
    for status in statuses:
        p.choice("source_status", status, SOURCE_STATUSES)
    order_ = p.choice("order", order, ["effective", "recorded"]) or "effective"
    size = p.integer("limit", limit, low=1, high=MAX_PAGE) or DEFAULT_PAGE
    after_ = p.integer("after", after, low=0, high=2**62)
    if after_ is not None and order_ != "recorded":
        raise InputError("pages by position: use order=recorded", field="after")
    rows: list[dict[str, Any]] = []
    more = False
    with contextlib.closing(
        app.log(
            as_of=as_of_t,
            known_at=known,
            entity_kind=entity_kind or kind_,
            entity_id=entity_id,
            types=types,
            party=p.optional_text("party", party),
            include_retracted=p.flag("include_retracted", include_retracted),
            order=order_,
            source_statuses=statuses,
            after_position=after_,
        )
    ) as entries:
        for entry in entries:
            if len(rows) == size:
                more = True
                break
            rows.append(log_entry(entry))
    body = {
        "as_of": as_of_t,
        "known_at": known,
        "events": rows,
        "next": rows[-1]["position"] if more and order_ == "recorded" else None,
        "truncated": more,
    }
    return body


def _entity(value: str | None) -> tuple[str | None, str | None]:
    from ledger.cli.read import parse_entity

    return parse_entity(value)


@get("/api/events/{event_id:str}", sync_to_thread=True, summary="One event", tags=["views"])
def event(request: Request[Any, Any, Any], event_id: FromPath[str]) -> Response[bytes]:
    """`ledger show -o json`: the event, its position, whether it was retracted."""
    from ledger.projections.answers import log_entry

    try:
        target = uuid.UUID(event_id[: p.MAX_TEXT])
    except ValueError:
        raise InputError(f"'{event_id[:80]}' is not an event id (UUID)", field="event_id") from None
    entry = state_of(request).app.get_event(target)
    if entry is None:
        raise RuleViolation("unknown-reference", f"no event {event_id} is recorded")
    return answer(log_entry(entry))


def _handlers() -> Iterator[Any]:
    from ledger.web import stream

    yield from (licences, commitments, asymmetry, measures, end_users, findings, check)
    yield from (events, event, stream.stream)


HANDLERS = list(_handlers())
