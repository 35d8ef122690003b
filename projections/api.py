"""The views as the CLI and services use them: query, then shape (thin glue, no rules).

Every function takes a ``query.Views`` (stored views or folding, see there) and the
(as_of, known_at) pair; ``None`` means now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from ledger import events as ev
from ledger.errors import InputError, LedgerError
from ledger.projections import decisions, findings, views
from ledger.projections.names import CLAUSE_STATUSES, FINDING_KINDS, LICENCE_STATUSES
from ledger.projections.query import Views
from ledger.times import now

if TYPE_CHECKING:
    from ledger.app import AppendResult, Ledger

__all__ = ["CLAUSE_STATUSES", "FINDING_KINDS", "LICENCE_STATUSES"]

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
"""How far ahead of the clock an application may be dated (clock skew between machines)."""
END_OF_TIME = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
"""An as-of time after every effective time (a licence's state over its whole life)."""


def unknown_ids(
    v: Views,
    kind: str,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    ids: Sequence[str] | None,
) -> list[str]:
    """Those of ``ids`` that name no entity of ``kind`` as of T as known at K."""
    if not ids:
        return []
    found = {r.entity_id for r in v.records(kind, as_of or now(), known_at, ids=list(ids))}
    return [i for i in ids if i not in found]


def licences(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    status: str | None = None,
    exporter: str | None = None,
    end_user: str | None = None,
) -> list[dict[str, Any]]:
    from ledger.app import gc_paused

    # Thousands of acyclic records and rows: one pause over reading and shaping them.
    with gc_paused():
        resolved = v.records("licence", as_of, known_at, ids=ids, ref=exporter)
        return views.licences(resolved, status=status, exporter=exporter, end_user=end_user)


def commitments(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    agreement: str | None = None,
    party: str | None = None,
) -> list[dict[str, Any]]:
    t = as_of or now()
    resolved = v.records("commitment", t, known_at, ref=agreement)
    return views.commitments(resolved, t, agreement=agreement, party=party)


def asymmetry(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    agreement: str | None = None,
) -> dict[str, Any]:
    t = as_of or now()
    commitment_records = v.records("commitment", t, known_at, ref=agreement)
    agreement_records = v.records(
        "agreement", t, known_at, ids=None if agreement is None else [agreement]
    )
    return views.asymmetry(commitment_records, agreement_records, t, agreement=agreement)


def pair_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The asymmetry report's pairs, each led by the side implemented first (by id while
    neither is), for tables: ``pair`` names both, ``other_status`` the second's status."""
    statuses = {c["commitment_id"]: c["status"] for c in report["commitments"]}
    out = []
    for p in report["pairs"]:
        first, second = p["first_commitment"], p["other_commitment"]
        if first is None:  # neither side implemented at T
            first, second = p["commitments"]
        out.append(
            {
                **p,
                "pair": " <-> ".join(p["commitments"]),
                "first_commitment": first,
                "other_commitment": second,
                "other_status": statuses.get(second, p["state"]),
            }
        )
    return out


def clause_when(row: dict[str, Any]) -> str:
    """A clause row's status in words: since/from/on a day, or through its last day; and
    "never in force" for a clause suspended or revoked before it took effect."""
    status = row["status"]
    never = ", never in force" if row.get("never_in_force") else ""
    if status == "suspended":
        end = row["suspended_until"]
        if isinstance(end, str):
            end = dt.datetime.fromisoformat(end)
        return (f"through {views.last_day(end)}" if end else "until further notice") + never
    if status == "not-yet-effective":
        return "from " + views.day(row["effective_at"])
    if status == "revoked":
        return "on " + views.day(row["revoked_at"]) + never
    return "since " + views.day(row["effective_at"])


def measures(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    at = as_of or now()
    return views.measures(v.records("measure", at, known_at, ids=ids), at, status=status)


def end_users(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    role: str | None = "end-user",
) -> list[dict[str, Any]]:
    from ledger.app import gc_paused

    with gc_paused():  # thousands of parties, as for licences
        return views.end_users(v.records("party", as_of, known_at, ids=ids), role=role)


def all_findings(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    kinds: Sequence[str] | None = None,
) -> list[findings.Finding]:
    t = as_of or now()
    wanted = set(kinds or FINDING_KINDS)
    out: list[findings.Finding] = []
    if wanted & {"late-usage", "licensed-end-user-listed"}:
        licence_records = v.records("licence", t, known_at)
        if "late-usage" in wanted:
            out += findings.late_usage(licence_records)
        if "licensed-end-user-listed" in wanted:
            # Each licence over its whole history: an amendment that later drops an end
            # user does not erase the time it named a listed one.
            current = {r.entity_id for r in licence_records}
            licence_history = {
                k: segs for k, segs in v.licence_terms(known_at).items() if k in current
            }
            named = sorted(
                {u for segs in licence_history.values() for s in segs for u in s.record.end_users}
            )
            history = v.history("party", known_at, named)
            out += findings.listed_end_users(licence_history, history, t)
    commitment_kinds = wanted - {
        "late-usage",
        "licensed-end-user-listed",
        "misaligned-ends",
        "rests-on-reports",
    }
    if commitment_kinds or "misaligned-ends" in wanted:
        commitment_records = v.records("commitment", t, known_at)
        agreement_records = v.records("agreement", t, known_at)
        out += [
            f
            for f in findings.commitment_findings(commitment_records, agreement_records, t)
            if f.kind in commitment_kinds
        ]
        if "misaligned-ends" in wanted:
            out += findings.misaligned_commitment_ends(commitment_records, agreement_records, t)
            out += findings.misaligned_suspension_ends(v.records("measure", t, known_at), t)
    if "rests-on-reports" in wanted:
        reported = v.app.log(as_of=t, known_at=known_at, source_statuses=("reported", "claim"))
        out += findings.rests_on_reports(list(reported))
    out.sort(key=lambda f: (f.kind, f.at or t, f.subject))
    return out


_SUBMITTED_TYPES = {f.name: f.type for f in msgspec.structs.fields(ev.ApplicationSubmitted)}
"""The field types ``apply`` records a request under: ``validate`` holds a request to them."""


def validate(request: decisions.Request) -> None:
    """Reject a request ``apply`` could not record, so ``check`` never answers one: the
    quantity rule (a ``RuleViolation``, as for the recorded event) and the field types of
    ``ApplicationSubmitted`` (an ``InputError`` naming the request field)."""
    from ledger.domain.quantities import check_quantity
    from ledger.intake import validation_error

    check_quantity(request.quantity, "quantity")
    destination = request.destination
    if len(destination) != 2 or not (destination.isascii() and destination.isupper()):
        raise InputError(
            f"'{ev.echo(destination)}' is not a country code (two capital letters, e.g. US)",
            field="destination",
        )
    if not request.unit.strip():
        raise InputError("unit must not be empty", field="unit")
    for name in ("exporter", "end_user", "item", "unit", "end_use", "licence_id"):
        try:
            msgspec.convert(getattr(request, name), _SUBMITTED_TYPES[name])
        except msgspec.ValidationError as exc:
            message = validation_error(exc, None, getattr(request, name)).message
            raise InputError(message, field=name) from None
    # The contract takes any text; an end use of spaces says nothing about the export.
    if not request.end_use.strip():
        raise InputError("must not be blank", field="end_use")


def check(v: Views, request: decisions.Request, known_at: dt.datetime | None) -> decisions.Decision:
    """The decision on an export request as of its date, as known at ``known_at``."""
    validate(request)
    d = request.date
    measures_at = v.records("measure", d, known_at)
    parties = {
        r.entity_id: r
        for r in v.records("party", d, known_at, ids=sorted({request.exporter, request.end_user}))
    }
    licence_records = v.records("licence", d, known_at, ref=request.exporter)
    # The same licences over all effective times: shipments dated after D count against
    # the caps as well (as the append rule counts them).
    lifetime = (
        {
            r.entity_id: r.record
            for r in v.records("licence", END_OF_TIME, known_at, ref=request.exporter)
        }
        if licence_records
        else {}
    )
    return decisions.decide(
        request,
        measures_at,
        parties.get(request.end_user),
        parties.get(request.exporter),
        licence_records,
        lifetime,
    )


def apply(
    app: Ledger,
    v: Views,
    application_id: str,
    request: decisions.Request,
    *,
    summary: str = "",
) -> tuple[decisions.Decision, AppendResult]:
    """Record an application and its automatic decision in one batch.

    The decision is taken against what the ledger knows now, as of the application's
    effective time (``request.date``).  An application dated in the future (beyond
    ``FUTURE_TOLERANCE``) is rejected: it would record as made something not yet made,
    decided against a state of the world not yet known.  Errors name the request field
    (``exporter``, ``quantity``, ... or ``date``, ``application_id``), not a batch line.
    """
    validate(request)
    if request.date > now() + FUTURE_TOLERANCE:
        raise InputError(
            f"an application cannot be dated in the future ({request.date.isoformat()}); "
            "it is recorded when it is made",
            field="date",
        )
    decision = check(v, request, None)
    effective = request.date.isoformat()
    submitted: dict[str, Any] = {
        "type": "ApplicationSubmitted",
        "entity_id": application_id,
        "exporter": request.exporter,
        "end_user": request.end_user,
        "item": request.item,
        "quantity": str(request.quantity),
        "unit": request.unit,
        "destination": request.destination,
        "end_use": request.end_use,
        "effective_at": effective,
    }
    if request.licence_id is not None:
        submitted["licence_id"] = request.licence_id
    if summary:
        submitted["summary"] = summary
    decided: dict[str, Any] = {
        "type": "ApplicationDecided",
        "entity_id": application_id,
        "outcome": decision.outcome,
        "fired_clauses": [
            {"measure_id": f.measure_id, "clause_id": f.clause_id, "effect": f.effect}
            for f in decision.fired
        ],
        "end_user_status": decision.end_user_status,
        "reasons": decision.reasons + decision.notes,
        "effective_at": effective,
    }
    if decision.licence_id is not None:
        decided["licence_id"] = decision.licence_id
    try:
        result = app.append_objects([submitted, decided])
    except LedgerError as exc:
        # The two events are our own batch: name the request's field, not "line 1: ...".
        exc.line = None
        exc.field = _REQUEST_FIELD.get(exc.field or "", exc.field)
        raise
    return decision, result


_REQUEST_FIELD = {
    "entity_id": "application_id",
    "effective_at": "date",
    "licence_id": "licence_id",
}


def parse_quantity(text: str) -> Decimal:
    from decimal import InvalidOperation

    from ledger.events import echo, quantity_scale_error, quantity_syntax_error

    problem = quantity_syntax_error(text)
    if problem:
        raise ValueError(problem)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"'{echo(text)}' is not a decimal quantity") from None
    problem = quantity_scale_error(value, text)
    if problem:
        raise ValueError(problem)
    if not value.is_finite() or value <= 0:
        raise ValueError(f"quantity must be greater than 0, got {echo(text)}")
    return value
