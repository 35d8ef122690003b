"""The auditor's pages: server-rendered HTML (Jinja2, autoescaped) of the same answers the
API gives (``ledger.projections.answers``), with SVG timelines drawn here
(``ledger.web.charts``) and every chart's data as a table.

No script at all (the Content-Security-Policy allows none) and nothing fetched from
elsewhere: one stylesheet served by the server itself.  Each page takes ``as_of`` and
``known_at`` in its URL (date pickers in a GET form), and links "what changed": the same
page as known one day earlier.
"""

from __future__ import annotations

import datetime as dt
import functools
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.params import FromPath, QueryParameter

from ledger.domain.items import item_matches
from ledger.errors import InputError, RuleViolation
from ledger.web import charts
from ledger.web import params as p
from ledger.web.server import state_of

HTML = "text/html"  # Litestar adds "; charset=utf-8" to text/ types itself
Opt = Annotated[str | None, QueryParameter(description="as on the API")]


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ledger.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["day"] = charts.day
    env.filters["through"] = _through
    env.filters["iso"] = _iso
    env.filters["qty"] = _quantity
    return env


def _iso(value: Any) -> str:
    from ledger.times import iso

    return iso(charts.instant(value))


def _through(value: Any) -> str:
    """An exclusive end as the last day it covers, as the CLI's "through" columns."""
    from ledger.projections.views import last_day

    return last_day(charts.instant(value))


def _quantity(value: Any) -> str:
    from decimal import Decimal

    from ledger.projections.names import quantity_text

    return quantity_text(Decimal(str(value))) if value not in (None, "") else ""


def render(template: str, **context: Any) -> Response[str]:
    text = _environment().get_template(template).render(**context)
    return Response(text, media_type=HTML)


def _when(
    request: Request[Any, Any, Any], as_of: str | None, known_at: str | None
) -> dict[str, Any]:
    """The (T, K) of a page: parsed as on the API, and the links that move K."""
    t = p.time_bound("as_of", as_of)
    k = p.time_bound("known_at", known_at)
    return {"as_of": t, "known_at": k, "as_of_text": as_of or "", "known_at_text": known_at or ""}


def _context(
    request: Request[Any, Any, Any], body: dict[str, Any], when: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    known = charts.instant(body["known_at"])
    assert known is not None
    earlier = (known.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    query = {k: v for k, v in request.query_params.items() if k != "known_at"}
    changed = request.url.path + "?" + urlencode({**query, "known_at": earlier})
    return {
        "path": request.url.path,
        "body": body,
        "as_of": body["as_of"],
        "known_at": body["known_at"],
        "as_of_day": charts.day(body["as_of"]) if when["as_of_text"] else "",
        "known_at_day": charts.day(body["known_at"]) if when["known_at_text"] else "",
        "what_changed": changed,
        "earlier": earlier,
        "query": dict(request.query_params),
        **extra,
    }


@get("/", sync_to_thread=True, include_in_schema=False)
def overview(
    request: Request[Any, Any, Any], as_of: Opt = None, known_at: Opt = None
) -> Response[str]:
    from ledger.projections import answers

    when = _when(request, as_of, known_at)
    v = state_of(request).views()
    report = answers.asymmetry(v, when["as_of"], when["known_at"])
    found = answers.findings(v, when["as_of"], when["known_at"])
    agreements = sorted({row["agreement_id"] for row in report["parties"]})
    return render(
        "overview.html",
        **_context(request, report, when, findings=found["findings"], agreements=agreements),
        title="Overview",
    )


@get("/commitments", sync_to_thread=True, include_in_schema=False)
def commitments(
    request: Request[Any, Any, Any],
    as_of: Opt = None,
    known_at: Opt = None,
    agreement: Opt = None,
) -> Response[str]:
    from ledger.projections import answers

    when = _when(request, as_of, known_at)
    chosen = p.optional_text("agreement", agreement)
    report = answers.asymmetry(
        state_of(request).views(), when["as_of"], when["known_at"], agreement=chosen
    )
    agreements = sorted({c["agreement_id"] for c in report["commitments"]})
    charts_by_agreement = [
        (a, charts.commitments_chart(report, a, f"commitments-{i}"))
        for i, a in enumerate(agreements)
    ]
    return render(
        "commitments.html",
        **_context(request, report, when, charts=charts_by_agreement, agreement=chosen or ""),
        title="Commitments timeline",
    )


@get("/measures", sync_to_thread=True, include_in_schema=False)
def measures(
    request: Request[Any, Any, Any],
    as_of: Opt = None,
    known_at: Opt = None,
    issuer: Opt = None,
    item: Opt = None,
    status: Opt = None,
) -> Response[str]:
    from ledger.projections import answers
    from ledger.projections.names import CLAUSE_STATUSES

    when = _when(request, as_of, known_at)
    body = answers.measures(
        state_of(request).views(),
        when["as_of"],
        when["known_at"],
        status=p.choice("status", status, CLAUSE_STATUSES),
    )
    issuer_ = p.optional_text("issuer", issuer)
    item_ = p.optional_text("item", item)
    clauses = [
        c
        for c in body["clauses"]
        if (issuer_ is None or c["issuer"] == issuer_)
        and (item_ is None or not c["items"] or any(item_matches(i, item_) for i in c["items"]))
    ]
    as_of_t = charts.instant(body["as_of"])
    assert as_of_t is not None
    chart = charts.measures_chart(clauses, as_of_t) if clauses else None
    issuers = sorted({c["issuer"] for c in body["clauses"]})
    return render(
        "measures.html",
        **_context(request, body, when, clauses=clauses, chart=chart, issuers=issuers),
        issuer=issuer_ or "",
        item=item_ or "",
        status=status or "",
        statuses=CLAUSE_STATUSES,
        in_force=lambda c: _in_force_text(c, as_of_t),
        title="Measures timeline",
    )


def _in_force_text(clause: dict[str, Any], as_of: dt.datetime) -> str:
    """The CLI's words for a clause's in-force spans ("in force 29 days (...)")."""
    from ledger.projections.views import spans_text

    return spans_text(clause["in_force_spans"], as_of) or "never in force"


@get("/licences", sync_to_thread=True, include_in_schema=False)
def licences(
    request: Request[Any, Any, Any],
    as_of: Opt = None,
    known_at: Opt = None,
    exporter: Opt = None,
    status: Opt = None,
) -> Response[str]:
    from ledger.projections import answers
    from ledger.projections.names import LICENCE_STATUSES

    when = _when(request, as_of, known_at)
    body = answers.licences(
        state_of(request).views(),
        when["as_of"],
        when["known_at"],
        exporter=p.optional_text("exporter", exporter),
        status=p.choice("status", status, LICENCE_STATUSES),
    )
    rows = body["licences"][:500]  # a page, not a dump: the API has them all
    as_of_t = charts.instant(body["as_of"])
    assert as_of_t is not None
    chart = charts.licences_chart(rows, as_of_t, "licences") if rows else None
    return render(
        "licences.html",
        **_context(request, body, when, rows=rows, chart=chart),
        total=len(body["licences"]),
        exporter=exporter or "",
        status=status or "",
        statuses=LICENCE_STATUSES,
        bar=charts.quantity_bar,
        title="Licences",
    )


@get("/licences/{licence_id:str}", sync_to_thread=True, include_in_schema=False)
def licence(
    request: Request[Any, Any, Any],
    licence_id: FromPath[str],
    as_of: Opt = None,
    known_at: Opt = None,
) -> Response[str]:
    import contextlib

    from ledger.projections import answers
    from ledger.projections.answers import log_entry

    when = _when(request, as_of, known_at)
    lid = p.text("licence_id", licence_id)
    state = state_of(request)
    body = answers.licences(state.views(), when["as_of"], when["known_at"], ids=[lid])
    if not body["licences"]:
        raise RuleViolation("unknown-reference", f"no licence '{lid}' is known then")
    known = charts.instant(body["known_at"])
    with contextlib.closing(
        state.app.log(
            known_at=known,
            entity_kind="licence",
            entity_id=lid,
            include_retracted=True,
            order="effective",
        )
    ) as entries:
        history = [log_entry(e) for _, e in zip(range(1000), entries, strict=False)]
    row = body["licences"][0]
    as_of_t = charts.instant(body["as_of"])
    assert as_of_t is not None
    from ledger.projections.views import licence_spans_text

    return render(
        "licence.html",
        **_context(request, body, when, row=row, history=history),
        active=licence_spans_text(row, as_of_t),
        chart=charts.licences_chart([row], as_of_t, "licence"),
        bar=charts.quantity_bar,
        describe=_describe,
        title=f"Licence {lid}",
    )


def _describe(event: Any) -> str:
    from ledger.describe import describe

    return describe(event)


@get("/events", sync_to_thread=True, include_in_schema=False)
def events(
    request: Request[Any, Any, Any],
    as_of: Opt = None,
    known_at: Opt = None,
    entity: Opt = None,
    kind: Opt = None,
    type: Opt = None,
    party: Opt = None,
    order: Opt = None,
    after: Opt = None,
) -> Response[str]:
    """The log, 100 events a page, with each event's sources, recorded time and
    retraction; filters as on the API."""
    from ledger.web import api

    when = _when(request, as_of, known_at)
    body = api.events_answer(
        state_of(request).app,
        as_of=as_of,
        known_at=known_at,
        entity=entity,
        kind=kind,
        type=[type] if type else None,
        party=party,
        include_retracted="true",
        order=order or "recorded",
        limit="100",
        after=after,
    )
    body["source"] = "events"
    next_query = {k: v for k, v in request.query_params.items() if k != "after"}
    next_link = (
        request.url.path + "?" + urlencode({**next_query, "after": body["next"]})
        if body["next"] is not None
        else None
    )
    if body["as_of"] is None:
        body["as_of"] = body["known_at"]
    return render(
        "events.html",
        **_context(request, body, when, rows=body["events"], next_link=next_link),
        filters={
            "entity": entity or "",
            "kind": kind or "",
            "type": type or "",
            "party": party or "",
            "order": order or "recorded",
        },
        describe=_describe_json,
        title="Event log",
    )


def _describe_json(event: dict[str, Any]) -> str:
    from ledger.describe import describe
    from ledger.store.codec import decode_event

    try:
        import msgspec

        return describe(decode_event(msgspec.json.encode(event), event["type"]))
    except Exception:  # a description is a convenience; the JSON is shown anyway
        return ""


_CHECK_FIELDS = ("exporter", "end_user", "item", "quantity", "unit", "destination", "end_use")


@get("/check", sync_to_thread=True, include_in_schema=False)
def check(
    request: Request[Any, Any, Any],
    as_of: Opt = None,
    known_at: Opt = None,
    exporter: Opt = None,
    end_user: Opt = None,
    item: Opt = None,
    quantity: Opt = None,
    unit: Opt = None,
    destination: Opt = None,
    end_use: Opt = None,
    licence: Opt = None,
) -> Response[str]:
    """The check form; with every field filled, the decision and its reasons."""
    from ledger.web import api

    values = {
        "exporter": exporter,
        "end_user": end_user,
        "item": item,
        "quantity": quantity,
        "unit": unit,
        "destination": destination,
        "end_use": end_use,
        "licence": licence,
    }
    when = _when(request, as_of, known_at)
    result = None
    problem = None
    if any(values[f] for f in _CHECK_FIELDS if f != "unit"):
        try:
            result = api.check_answer(
                state_of(request).views(),
                **{k: (v or None) for k, v in values.items()},
                as_of=as_of or None,
                known_at=known_at or None,
            )
        except (InputError, RuleViolation) as exc:
            problem = {"field": exc.field, "message": exc.message}
    body = result or {
        "as_of": when["as_of"] or dt.datetime.now(dt.UTC),
        "known_at": when["known_at"] or dt.datetime.now(dt.UTC),
        "source": "views",
    }
    return render(
        "check.html",
        **_context(request, body, when, result=result, problem=problem),
        values={k: v or "" for k, v in values.items()},
        title="Check an export",
    )


@get("/static/style.css", sync_to_thread=False, include_in_schema=False)
def stylesheet() -> Response[bytes]:
    return Response(
        _stylesheet(),
        media_type="text/css",
        headers={"cache-control": "public, max-age=3600"},
    )


@functools.cache
def _stylesheet() -> bytes:
    return resources.files("ledger.web").joinpath("static/style.css").read_bytes()


def error_page(status: int, body: dict[str, Any]) -> str:
    """An error as a page (for a browser); the API answers JSON."""
    try:
        return str(
            _environment()
            .get_template("error.html")
            .render(status=status, error=body, title=f"{status} {body.get('error', '')}")
        )
    except Exception:  # the error page must not fail in its turn
        from ledger.web.server import escape

        return f"<!doctype html><title>{status}</title><p>{escape(body.get('message'))}</p>"


HANDLERS = [overview, commitments, measures, licences, licence, events, check, stylesheet]
