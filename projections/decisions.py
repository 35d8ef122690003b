"""Export decisions: would this export be allowed on date D, and why; and recording one.

``decide`` is pure; ``check`` answers a request from the views (read only); ``apply``
records an application and its decision (a write: two events, one batch).

``decide(request, measures, end_user, exporter, licences)`` takes the state of the world
as of D (as known at K): every measure, the end user and exporter, and the exporter's
licences, each resolved at D.  The rules:

1. A clause **applies** when it is in force at D (effective, not suspended, not revoked)
   and matches the item, the destination and the end user's class
   (``ledger.domain.measure.clause_applies``; items match as ``ledger.domain.items``
   says: exactly, or a prefix at a dot boundary).  The end user's class is ``military``
   when classified military or listed on a military end-user list, else its
   classification (``civil`` when unclassified).
2. A ``prohibited`` or ``denied-in-principle`` clause that applies **rejects** (each is
   named).
3. A ``licence-required`` clause that applies needs a licence of the exporter that
   covers the shipment (``ledger.domain.licence.coverage``, the very rule that accepts or
   refuses recording the shipment under it): active at D, the most specific item
   covering the requested item capped in the request's unit (no conversion), the end
   user and the destination named, and the quantity within what remains at D and over
   the licence's whole life.  **Approved** citing that licence (the first by id when
   several do), else **rejected** ("licence required; none covers it", with why each
   candidate does not).
4. ``enhanced-review`` clauses are noted; ``tariff``, ``fee`` and ``other`` clauses do not
   decide (they are listed as context).
5. When no control clause applies: **approved** ("no control applies").

The end user's status (registration, vetting, class, listings) is always reported, and
an unregistered exporter or end user rejects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from ledger import events as ev
from ledger.domain.items import item_matches
from ledger.domain.licence import Coverage, coverage
from ledger.domain.measure import clause_applies
from ledger.domain.quantities import quantity_text
from ledger.errors import InputError, LedgerError
from ledger.projections import records as rec
from ledger.projections.query import Resolved, Views
from ledger.projections.views import clause_in_force_spans, last_day
from ledger.times import local_day, now

if TYPE_CHECKING:
    from ledger.app import AppendResult, Ledger

DECIDING = frozenset({"prohibited", "denied-in-principle", "licence-required", "enhanced-review"})
BLOCKING = frozenset({"prohibited", "denied-in-principle"})


@dataclass(frozen=True)
class Request:
    exporter: str
    end_user: str
    item: str
    quantity: Decimal
    unit: str
    """Unit of ``quantity``; a licence item covers it only when capped in the same unit."""
    destination: str
    end_use: str
    date: dt.datetime
    licence_id: str | None = None
    """The licence the exporter means to ship under (only it is considered)."""


@dataclass(frozen=True)
class Fired:
    measure_id: str
    clause_id: str
    effect: str
    title: str = ""
    instrument: str = ""


@dataclass
class Decision:
    outcome: str
    reasons: list[str] = field(default_factory=list)
    fired: list[Fired] = field(default_factory=list)
    context: list[Fired] = field(default_factory=list)
    """Clauses that apply but do not decide (tariffs, fees, other)."""
    suspended: list[dict[str, Any]] = field(default_factory=list)
    """Control clauses that would apply but are suspended at D (until when; whether they
    were never in force: suspended before they took effect)."""
    licence_id: str | None = None
    remaining_before: Decimal | None = None
    end_user_status: str = ""
    end_user: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reasons": self.reasons,
            "fired_clauses": [vars(f) for f in self.fired],
            "context_clauses": [vars(f) for f in self.context],
            "suspended_clauses": self.suspended,
            "licence_id": self.licence_id,
            "remaining_before": self.remaining_before,
            "end_user_status": self.end_user_status,
            "end_user": self.end_user,
            "notes": self.notes,
        }


__all__ = ["Decision", "Fired", "Request", "decide", "item_matches"]


def _suspended(
    record: rec.MeasureRecord, clause: rec.ClauseRecord, until: str | None, at: dt.datetime
) -> dict[str, Any]:
    spans = clause_in_force_spans(clause)
    return {
        "measure_id": record.measure_id,
        "clause_id": clause.clause_id,
        "effect": clause.effect,
        "instrument": record.instrument,
        "suspended_until": None if until is None else dt.datetime.fromisoformat(until),
        "never_in_force": not any(start <= at for start, _ in spans),
    }


def _class_of(end_user: rec.PartyRecord | None) -> str:
    return end_user.end_user_class if end_user is not None else "civil"


def end_user_status(resolved: Resolved | None, at: dt.datetime) -> str:
    """One line: registration, vetting, class and listings on the date."""
    if resolved is None:
        return f"not registered on {local_day(at).isoformat()}"
    p: rec.PartyRecord = resolved.record
    parts = [f"vetting {resolved.dynamic}"]
    if p.vetting_authority and resolved.dynamic in ("approved", "rejected"):
        parts[0] += f" by {p.vetting_authority}"
    if p.vetting_until is not None and resolved.dynamic == "approved":
        parts[0] += f" through {last_day(p.vetting_until)}"
    parts.append(f"class {p.end_user_class}")
    if p.listings:
        parts.append(
            "listed on "
            + ", ".join(
                f"{x.list_name} ({x.list_kind}, since {local_day(x.listed_at).isoformat()})"
                for x in p.listings
            )
        )
    else:
        parts.append("on no list")
    return "; ".join(parts)


def _coverage(r: Resolved, request: Request, lifetime: Mapping[str, rec.LicenceRecord]) -> Coverage:
    """How this licence (one of the exporter's: ``decide`` considers no other) covers the
    request."""
    return coverage(
        r.record,
        r.dynamic,
        request.date,
        request.item,
        request.unit,
        request.quantity,
        request.end_user,
        request.destination,
        lifetime.get(r.entity_id),
    )


def decide(
    request: Request,
    measures: Sequence[Resolved],
    end_user: Resolved | None,
    exporter: Resolved | None,
    licences: Sequence[Resolved],
    lifetime: Mapping[str, rec.LicenceRecord] | None = None,
) -> Decision:
    """The decision on ``request`` against the state of the world as of its date.

    ``lifetime``: the licences over all effective times (as known at the same time), by
    id: shipments effective after D count against the caps too.
    """
    party: rec.PartyRecord | None = end_user.record if end_user is not None else None
    decision = Decision(
        outcome="approved",
        end_user_status=end_user_status(end_user, request.date),
        end_user=None
        if end_user is None
        else {
            "party_id": party.party_id if party else request.end_user,
            "vetting": end_user.dynamic,
            "end_user_class": _class_of(party),
            "listings": [x.list_name for x in party.listings] if party else [],
        },
    )
    day = local_day(request.date).isoformat()
    if exporter is None:
        decision.outcome = "rejected"
        decision.reasons.append(f"exporter {request.exporter} is not registered on {day}")
    if end_user is None:
        decision.outcome = "rejected"
        decision.reasons.append(f"end user {request.end_user} is not registered on {day}")
    elif end_user.dynamic != "approved":
        decision.notes.append(f"end user {request.end_user} is not vetted-approved on {day}")
    end_user_class = _class_of(party)

    # Export controls bind exports from the issuing country; tariffs and fees of the
    # exporting or the destination country are context.  (Unknown exporter: all apply.)
    origin = exporter.record.country if exporter is not None else None
    needs_licence: list[Fired] = []
    for m in sorted(measures, key=lambda r: r.entity_id):
        record: rec.MeasureRecord = m.record
        for clause, dyn in zip(record.clauses, m.dynamic, strict=True):
            applies = clause_applies(clause, request.item, request.destination, end_user_class)
            if dyn[0] == "suspended" and clause.effect in DECIDING:
                if applies and (origin is None or record.issuer == origin):
                    decision.suspended.append(_suspended(record, clause, dyn[2], request.date))
                continue
            if dyn[0] != "in-force" or not applies:
                continue
            fired = Fired(
                record.measure_id, clause.clause_id, clause.effect, record.title, record.instrument
            )
            if clause.effect not in DECIDING:
                if origin is None or record.issuer in (origin, request.destination):
                    decision.context.append(fired)
                continue
            if origin is not None and record.issuer != origin:
                continue
            decision.fired.append(fired)
            name = f"{record.measure_id}/{clause.clause_id} ({record.instrument})"
            if clause.effect in BLOCKING:
                decision.outcome = "rejected"
                decision.reasons.append(f"{clause.effect}: {name}")
            elif clause.effect == "licence-required":
                needs_licence.append(fired)
            else:
                decision.notes.append(f"enhanced review: {name}")

    if needs_licence:
        names = ", ".join(f"{f.measure_id}/{f.clause_id}" for f in needs_licence)
        candidates = sorted(
            (r for r in licences if r.record.exporter == request.exporter),
            key=lambda r: r.entity_id,
        )
        if request.licence_id is not None:
            candidates = [r for r in candidates if r.entity_id == request.licence_id]
        elif any(request.end_user in r.record.end_users for r in candidates):
            # Only licences naming the end user are worth explaining.
            candidates = [r for r in candidates if request.end_user in r.record.end_users]
        gaps: list[str] = []
        for r in candidates:
            found = _coverage(r, request, lifetime or {})
            if found.gap is not None:
                gaps.append(f"{r.entity_id}: {found.gap.reason}")
            else:
                decision.licence_id = r.record.licence_id
                decision.remaining_before = found.remaining
                break
        if decision.licence_id is not None and decision.remaining_before is not None:
            if decision.outcome == "approved":
                remaining = quantity_text(decision.remaining_before)
                decision.reasons.append(
                    f"licence required by {names}; covered by licence {decision.licence_id} "
                    f"({remaining} {request.unit} remaining)"
                )
        else:
            decision.outcome = "rejected"
            verdict = (
                f"licence {request.licence_id} does not cover it"
                if request.licence_id
                else "none covers it"
            )
            reason = f"licence required by {names}; {verdict}"
            if request.licence_id and not candidates:
                reason += f" (no licence {request.licence_id} of {request.exporter} on {day})"
            elif not candidates:
                reason += f" ({request.exporter} holds no licence on {day})"
            elif not any(request.end_user in r.record.end_users for r in candidates):
                reason += f" (no licence of {request.exporter} names {request.end_user})"
                gaps = []
            if gaps:
                reason += " (" + "; ".join(gaps[:5]) + ("; ..." if len(gaps) > 5 else "") + ")"
            decision.reasons.append(reason)

    if decision.outcome == "approved" and not decision.reasons:
        if decision.fired:
            decision.reasons.append("no clause requires a licence or forbids it")
        else:
            decision.reasons.append("no control applies")
    return decision


# --- answering and recording requests -------------------------------------------------

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
"""How far ahead of the clock an application may be dated (clock skew between machines)."""
END_OF_TIME = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
"""An as-of time after every effective time (a licence's state over its whole life)."""

_SUBMITTED_TYPES = {f.name: f.type for f in msgspec.structs.fields(ev.ApplicationSubmitted)}
"""The field types ``apply`` records a request under: ``validate`` holds a request to them."""


def validate(request: Request) -> None:
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
    # (An end use of spaces says nothing about the export: the contract's Text refuses it,
    # "must not be blank".)


def check(v: Views, request: Request, known_at: dt.datetime | None) -> Decision:
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
    return decide(
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
    request: Request,
    *,
    summary: str = "",
) -> tuple[Decision, AppendResult]:
    """Record an application and its automatic decision in one batch.

    The decision is taken against what the ledger knows now, as of the application's
    effective time (``request.date``).  An application dated in the future (beyond
    ``FUTURE_TOLERANCE``) is rejected: it would record as made something not yet made,
    decided against a state of the world not yet known.  Errors name the request field
    (``exporter``, ``quantity``, ... or ``date``, ``application_id``), not a batch line.
    """
    validate(request)
    refuse_future(request, now())
    decision = check(v, request, None)
    try:
        result = app.append_objects(application_events(application_id, request, decision, summary))
    except LedgerError as exc:
        name_request_field(exc)
        raise
    return decision, result


def refuse_future(request: Request, clock: dt.datetime) -> None:
    """An application is recorded when it is made: dated at most ``FUTURE_TOLERANCE``
    after ``clock`` (now)."""
    if request.date > clock + FUTURE_TOLERANCE:
        raise InputError(
            f"an application cannot be dated in the future ({request.date.isoformat()}); "
            "it is recorded when it is made",
            field="date",
        )


def application_events(
    application_id: str, request: Request, decision: Decision, summary: str = ""
) -> list[dict[str, Any]]:
    """The batch ``apply`` records: the application as submitted, then its decision, both
    effective at the request's date (the decision's notes recorded among its reasons)."""
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
    return [submitted, decided]


def name_request_field(exc: LedgerError) -> None:
    """Make an error recording ``application_events`` name the request's field: the two
    events are ``apply``'s own batch, so "line 1: effective_at" means the request's date."""
    exc.line = None
    exc.field = _REQUEST_FIELD.get(exc.field or "", exc.field)


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
