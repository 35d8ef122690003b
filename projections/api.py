"""The views as the CLI and services use them: query, then shape (thin glue, no rules).

Every function takes a ``query.Views`` (stored views or folding, see there) and the
(as_of, known_at) pair; ``None`` means now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger.times import now
from projections import decisions, findings, views
from projections.query import Views

if TYPE_CHECKING:
    from ledger.app import AppendResult, Ledger

FINDING_KINDS = (
    "late-usage",
    "licensed-end-user-listed",
    "commitment-overdue",
    "late-implementation",
    "unilateral-claim",
    "one-sided-implementation",
)


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

    resolved = v.records("licence", as_of, known_at, ids=ids, ref=exporter)
    with gc_paused():  # thousands of acyclic rows: no collector passes rescanning them
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


def measures(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    return views.measures(v.records("measure", as_of, known_at, ids=ids), status=status)


def end_users(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    role: str | None = "end-user",
) -> list[dict[str, Any]]:
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
            licence_history = v.history("licence", known_at, [r.entity_id for r in licence_records])
            named = sorted(
                {u for segs in licence_history.values() for s in segs for u in s.record.end_users}
            )
            history = v.history("party", known_at, named)
            out += findings.listed_end_users(licence_history, history, t)
    commitment_kinds = wanted - {"late-usage", "licensed-end-user-listed"}
    if commitment_kinds:
        commitment_records = v.records("commitment", t, known_at)
        agreement_records = v.records("agreement", t, known_at)
        out += [
            f
            for f in findings.commitment_findings(commitment_records, agreement_records, t)
            if f.kind in commitment_kinds
        ]
    out.sort(key=lambda f: (f.kind, f.at or t, f.subject))
    return out


def check(v: Views, request: decisions.Request, known_at: dt.datetime | None) -> decisions.Decision:
    """The decision on an export request as of its date, as known at ``known_at``."""
    d = request.date
    measures_at = v.records("measure", d, known_at)
    parties = {
        r.entity_id: r
        for r in v.records("party", d, known_at, ids=sorted({request.exporter, request.end_user}))
    }
    licence_records = v.records("licence", d, known_at, ref=request.exporter)
    return decisions.decide(
        request,
        measures_at,
        parties.get(request.end_user),
        parties.get(request.exporter),
        licence_records,
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
    effective time (``request.date``).
    """
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
    result = app.append_objects([submitted, decided])
    return decision, result


def parse_quantity(text: str) -> Decimal:
    from decimal import InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"'{text}' is not a decimal quantity") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"quantity must be greater than 0, got {text}")
    return value
