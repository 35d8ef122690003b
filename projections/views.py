"""The auditors' views, as pure functions of resolved records (no I/O).

Each function takes the entities as of T as known at K (``query.Resolved``: a record and
the value of its time-driven part at T) and returns plain, JSON-ready dicts.  The CLI
renders them as tables, JSON or CSV; ``docs/views.md`` explains every field.

Asymmetry (``asymmetry``) follows these definitions, all on effective dates:

- a commitment is **implemented** at T if an implementation of it is in force at T;
- **pending** if it is pledged and was never implemented by T (status ``pledged`` or
  ``overdue``), **overdue** if pending at or after its ``due_by`` (the fold's own
  ``overdue``).  A pledge implemented whose implementation has since ended
  (``implementation-ended``, e.g. a suspension that ran its term) is neither;
- a **unilateral claim** is a pledge the obligor never asserted or acknowledged;
- a **reciprocal pair** is two commitments one of which ``reciprocates`` the other.  Its
  state at T follows each side's status at T (an implementation in force, not reversed,
  lapsed or run out): **both-implemented**, **one-sided** (one side implemented, the
  other pledged, overdue, reversed, lapsed or ended) or **neither-implemented**.  The side
  whose current implemented stretch began first *implemented first*.  The pair was
  *one-sided* from ``one_sided_since`` (the start of the implemented side's current
  stretch, or the other side's last implementation ending, whichever is later) until
  ``one_sided_until`` (the other side's current stretch starting, or T while still
  one-sided): ``one_sided_days``; ``days_from_agreement`` counts from the agreement's
  date to the same end.  A side that implemented and then reversed is no longer counted
  as implemented: the pair is one-sided again from the reversal.

Days are counted as people count them, in the reading zone's calendar (``--tz``; the
rule and its examples are in ``ledger.times``): ``one_sided_days`` from the day the
stretch began to the day it ended (since 2025-11-10 to 2025-12-02: 22 days),
``days_late`` from the deadline's last day to the day it was met (due 2025-11-30, done
2025-12-02: 2).  JSON keeps the exact instants and the elapsed hours beside them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ledger.projections import records as rec
from ledger.projections.query import Resolved
from ledger.times import count_days, days_between, hours, local_day, span_days, through_day

PENDING = frozenset({"pledged", "overdue"})
IMPLEMENTED = frozenset({"implemented", "partially-implemented"})


def day(t: dt.datetime | None) -> str:
    """An instant's day in the reading zone (tables and summaries; JSON keeps the instant)."""
    return "" if t is None else local_day(t).isoformat()


def last_day(end: dt.datetime | None) -> str:
    """The last day an exclusive end covers in the reading zone: the day containing
    ``end`` minus 1 µs (``until 2026-11-28T00:00+08:00`` is through 2026-11-27, in Beijing
    and in UTC alike).  JSON keeps the exact instant."""
    return "" if end is None else through_day(end).isoformat()


def duration(start: dt.datetime, end: dt.datetime) -> str:
    """Elapsed time in whole days and hours ("4 days 18 h", "1 day", "12 h", "35 min"):
    for the ledger's own lags (how long after a fact it was recorded), not for calendar
    counts, which follow ``ledger.times`` (days as people count them)."""
    seconds = max(0, int((end - start).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    parts = ([f"{days} day{'' if days == 1 else 's'}"] if days else []) + (
        [f"{hours} h"] if hours else []
    )
    if not parts:
        parts = [f"{minutes} min"]
    return " ".join(parts)


def implemented_spans(
    c: rec.CommitmentRecord,
) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """The stretches over which an implementation of ``c`` was in force (merged, sorted).

    An implementation runs from its effective time to its own end, or to the pledge's
    reversal/lapse when that came after it (the fold's ``current_implementation``).
    """
    spans: list[tuple[dt.datetime, dt.datetime | None]] = []
    for impl in sorted(c.implementations, key=lambda i: i.at):
        end = impl.until
        if c.ended_at is not None and c.ended_at >= impl.at:
            end = c.ended_at if end is None else min(end, c.ended_at)
        if end is not None and end <= impl.at:
            continue
        if spans and (spans[-1][1] is None or spans[-1][1] >= impl.at):
            last_start, last_end = spans[-1]
            merged = None if last_end is None or end is None else max(last_end, end)
            spans[-1] = (last_start, merged)
        else:
            spans.append((impl.at, end))
    return spans


def _stretch_start(
    spans: Sequence[tuple[dt.datetime, dt.datetime | None]], t: dt.datetime
) -> dt.datetime | None:
    """The start of the stretch in force at ``t``, if any."""
    return next((a for a, b in spans if a <= t and (b is None or t < b)), None)


def _last_end(
    spans: Sequence[tuple[dt.datetime, dt.datetime | None]], t: dt.datetime
) -> dt.datetime | None:
    """When the latest stretch that ended by ``t`` ended, if any."""
    ends = [b for _, b in spans if b is not None and b <= t]
    return max(ends) if ends else None


# --- licences ---------------------------------------------------------------------------


class _SpansAsOf(dict[tuple[rec.Span, ...], list[dict[str, Any]]]):
    """``spans_as_of`` at one T, computed once per distinct spans: licences granted on
    the same day for the same term share them, and a listing has thousands."""

    def __init__(self, as_of: dt.datetime) -> None:
        super().__init__()
        self.as_of = as_of

    def __missing__(self, spans: tuple[rec.Span, ...]) -> list[dict[str, Any]]:
        value = self[spans] = spans_as_of(spans, self.as_of)
        return value


def licence_row(r: Resolved, as_of: dt.datetime, spans: _SpansAsOf | None = None) -> dict[str, Any]:
    lic: rec.LicenceRecord = r.record
    if spans is None:
        spans = _SpansAsOf(as_of)
    return {
        "licence_id": lic.licence_id,
        "status": r.dynamic,
        "licence_type": lic.licence_type,
        "issuer": lic.issuer,
        "exporter": lic.exporter,
        "end_users": list(lic.end_users),
        "destinations": list(lic.destinations),
        "valid_from": lic.valid_from,
        "valid_until": lic.valid_until,
        "suspended_from": lic.suspended_from,
        "suspended_until": lic.suspended_until,
        "withdrawn_at": lic.withdrawn_at,
        "surrendered_at": lic.surrendered_at,
        "items": [
            {
                "item": i.item,
                "cap": i.cap,
                "used": i.used,
                "remaining": i.remaining,
                "unit": i.unit,
            }
            for i in lic.items
        ],
        # As of T: the spans begun by T, days counted to T (a scheduled end given).
        "active_spans": spans[lic.active_spans],
        "suspended_spans": spans[lic.suspended_spans],
        "shipments": lic.shipments,
        "late_usage": len(lic.late_usage),
        "granted_event": lic.granted_event,
        "status_event": lic.terminal_event or lic.suspension_event,
    }


def licences(
    resolved: Sequence[Resolved],
    as_of: dt.datetime,
    *,
    status: str | None = None,
    exporter: str | None = None,
    end_user: str | None = None,
) -> list[dict[str, Any]]:
    spans = _SpansAsOf(as_of)
    rows = [licence_row(r, as_of, spans) for r in resolved]
    return [
        row
        for row in rows
        if (status is None or row["status"] == status)
        and (exporter is None or row["exporter"] == exporter)
        and (end_user is None or end_user in row["end_users"])
    ]


# --- parties (end users) ----------------------------------------------------------------


def party_row(r: Resolved) -> dict[str, Any]:
    p: rec.PartyRecord = r.record
    return {
        "party_id": p.party_id,
        "name": p.name,
        "country": p.country,
        "roles": list(p.roles),
        "vetting": r.dynamic,
        "vetting_authority": p.vetting_authority,
        "vetted_at": p.vetted_at,
        "vetting_until": p.vetting_until,
        "classification": p.classification,
        "end_user_class": p.end_user_class,
        "military": p.military,
        "listings": [
            {
                "list_name": x.list_name,
                "list_kind": x.list_kind,
                "authority": x.authority,
                "listed_at": x.listed_at,
                "event_id": x.event_id,
            }
            for x in p.listings
        ],
        "vetting_event": p.vetting_event,
        "classification_event": p.classification_event,
    }


def end_users(
    resolved: Sequence[Resolved], *, role: str | None = "end-user"
) -> list[dict[str, Any]]:
    return [party_row(r) for r in resolved if role is None or role in r.record.roles]


# --- measures ---------------------------------------------------------------------------


Span = rec.Span


def suspension_end(s: rec.SuspensionRecord) -> dt.datetime | None:
    ends = [x for x in (s.until, s.ended_at) if x is not None]
    return min(ends) if ends else None


def subtract(span: Span, holes: Sequence[Span]) -> list[Span]:
    """``span`` with the ``holes`` cut out (each [start, end), end None = open)."""
    start, stop = span
    out: list[Span] = []
    cursor: dt.datetime | None = start
    for hole_start, hole_end in sorted(holes, key=lambda h: h[0]):
        if cursor is None or (stop is not None and hole_start >= stop):
            break
        if hole_end is not None and hole_end <= cursor:
            continue
        if hole_start > cursor:
            out.append((cursor, hole_start))
        cursor = None if hole_end is None else max(cursor, hole_end)
    if cursor is not None and (stop is None or cursor < stop):
        out.append((cursor, stop))
    return out


def clause_in_force_spans(c: rec.ClauseRecord) -> list[Span]:
    """When the clause was (or is scheduled to be) in force: from its effective time to its
    revocation, its suspensions cut out.  Empty: it never took effect."""
    if c.revoked_at is not None and c.revoked_at <= c.effective_at:
        return []
    holes = [(s.start, suspension_end(s)) for s in c.suspensions]
    return subtract((c.effective_at, c.revoked_at), holes)


def spans_as_of(spans: Sequence[Span], as_of: dt.datetime) -> list[dict[str, Any]]:
    """The spans begun by T, as JSON: exact ``start``, exact ``end`` (null while open; a
    scheduled end after T is given), and ``days`` in force by T, both ends counted in the
    reading zone's calendar (``ledger.times``)."""
    through = as_of + dt.timedelta(microseconds=1)  # T is an inclusive bound
    return [
        {
            "start": start,
            "end": end,
            "days": span_days(start, end if end is not None and end <= through else through),
        }
        for start, end in spans
        if start <= as_of
    ]


EN_DASH = "\u2013"


def span_text(s: dict[str, Any], as_of: dt.datetime, what: str = "in force") -> str:
    """One span in words, as of T: "in force 12 days (2025-01-03 to 2025-01-14)" with an
    en dash; one still running at T: "in force 12 days so far (since 2025-01-03)", and
    its scheduled last day when it has one."""
    start, end = s["start"], s["end"]
    if end is not None and end <= as_of:
        return f"{what} {count_days(s['days'])} ({day(start)} {EN_DASH} {last_day(end)})"
    scheduled = f", through {last_day(end)}" if end is not None else ""
    return f"{what} {count_days(s['days'])} so far (since {day(start)}{scheduled})"


def spans_text(spans: Sequence[dict[str, Any]], as_of: dt.datetime, what: str = "in force") -> str:
    """Each span in words (``span_text``), "; " between them."""
    return "; ".join(span_text(s, as_of, what) for s in spans)


def licence_spans_text(row: dict[str, Any], as_of: dt.datetime) -> str:
    """A licence's active and suspended spans in words, in time order: "active 8 days
    (2026-01-02 - 2026-01-09); suspended 22 days (2026-01-10 - 2026-01-31); active ..."
    ("" before it is valid)."""
    labelled = [(s, "active") for s in row["active_spans"]] + [
        (s, "suspended") for s in row["suspended_spans"]
    ]
    labelled.sort(key=lambda x: x[0]["start"])
    return "; ".join(span_text(s, as_of, what) for s, what in labelled)


def clause_rows(r: Resolved, as_of: dt.datetime) -> list[dict[str, Any]]:
    m: rec.MeasureRecord = r.record
    out = []
    for clause, (status, suspension_event, suspended_until) in zip(
        m.clauses, r.dynamic, strict=True
    ):
        spans = spans_as_of(clause_in_force_spans(clause), as_of)
        out.append(
            {
                "measure_id": m.measure_id,
                "clause_id": clause.clause_id,
                "issuer": m.issuer,
                "title": m.title,
                "instrument": m.instrument,
                "effect": clause.effect,
                "items": list(clause.items),
                "destinations": list(clause.destinations),
                "end_user_classes": list(clause.end_user_classes),
                "status": status,
                "effective_at": clause.effective_at,
                "suspended_until": suspended_until,
                "suspension_event": suspension_event,
                "revoked_at": clause.revoked_at if status == "revoked" else None,
                "revoked_event": clause.revoked_event if status == "revoked" else None,
                # Suspended or revoked before it ever took effect: it never bit.
                "never_in_force": status in ("suspended", "revoked") and not spans,
                "in_force_spans": spans,
                "description": clause.description,
            }
        )
    return out


def measures(
    resolved: Sequence[Resolved], as_of: dt.datetime, *, status: str | None = None
) -> list[dict[str, Any]]:
    rows = [row for r in resolved for row in clause_rows(r, as_of)]
    return [row for row in rows if status is None or row["status"] == status]


# --- commitments and asymmetry ----------------------------------------------------------


def commitment_row(r: Resolved, as_of: dt.datetime) -> dict[str, Any]:
    c: rec.CommitmentRecord = r.record
    status, implementation = r.dynamic
    pending = status in PENDING
    first = c.implementations[0].at if c.implementations else None
    return {
        "commitment_id": c.commitment_id,
        "agreement_id": c.agreement_id,
        "obligor": c.obligor,
        "beneficiary": c.beneficiary,
        "category": c.category,
        "description": c.description,
        "status": status,
        "implemented": status in IMPLEMENTED,
        "pending": pending,
        "overdue": status == "overdue",
        "due_by": c.due_by,
        "pledged_at": c.pledged_at,
        "first_implemented_at": first,
        "first_implementation_event": c.implementations[0].event_id if first else None,
        "implementation_event": implementation,
        "implemented_spans": [[a, b] for a, b in implemented_spans(c)],
        "in_force_spans": spans_as_of(implemented_spans(c), as_of),
        "ended_at": c.ended_at,
        "unilateral": c.unilateral,
        "asserted_by": list(c.asserted_by),
        "reciprocates": list(c.reciprocates),
        "pledge_event": c.pledge_event,
    }


def commitments(
    resolved: Sequence[Resolved],
    as_of: dt.datetime,
    *,
    agreement: str | None = None,
    party: str | None = None,
) -> list[dict[str, Any]]:
    rows = [commitment_row(r, as_of) for r in resolved]
    return [
        row
        for row in rows
        if (agreement is None or row["agreement_id"] == agreement)
        and (party is None or party in (row["obligor"], row["beneficiary"]))
    ]


def _pairs(rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    by_id = {row["commitment_id"]: row for row in rows}
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        for other_id in row["reciprocates"]:
            other = by_id.get(other_id)
            if other is None:
                continue
            key = (min(row["commitment_id"], other_id), max(row["commitment_id"], other_id))
            if key in seen:
                continue
            seen.add(key)
            a, b = sorted((row, other), key=lambda x: x["commitment_id"])
            out.append((a, b))
    return out


def pair_row(
    a: dict[str, Any],
    b: dict[str, Any],
    as_of: dt.datetime,
    agreement_dates: dict[str, dt.datetime],
) -> dict[str, Any]:
    """The pair's state at T from each side's status at T (see the module docstring)."""
    agreed = agreement_dates.get(a["agreement_id"])
    row: dict[str, Any] = {
        "agreement_id": a["agreement_id"],
        "commitments": [a["commitment_id"], b["commitment_id"]],
        "obligors": [a["obligor"], b["obligor"]],
        "statuses": [a["status"], b["status"]],
        "first_implemented_at": [a["first_implemented_at"], b["first_implemented_at"]],
        "implemented_first": None,
        "first_commitment": None,
        "other_commitment": None,
        "other_status": None,
        "state": "neither-implemented",
        "one_sided_since": None,
        "one_sided_until": None,
        "other_pending": False,
        "one_sided_days": None,
        "one_sided_hours": None,
        "one_sided_for": None,
        "days_from_agreement": None,
        "agreement_date": agreed,
    }
    spans = {
        side["commitment_id"]: [(x, y) for x, y in side["implemented_spans"]] for side in (a, b)
    }
    start = {cid: _stretch_start(s, as_of) for cid, s in spans.items()}
    live = [side for side in (a, b) if side["implemented"] and start[side["commitment_id"]]]
    if not live:
        return row
    if len(live) == 2:
        first, other = sorted(live, key=lambda x: (start[x["commitment_id"]], x["commitment_id"]))
        since, until = start[first["commitment_id"]], start[other["commitment_id"]]
        assert since is not None and until is not None
        stopped = _last_end(spans[other["commitment_id"]], until)
        if stopped is not None and stopped > since:
            since = stopped  # one-sided only since the other side's earlier stretch ended
        # Both sides taking effect at the same instant is no asymmetry: "both".
        by = "both" if since == until else first["obligor"]
        state = "both-implemented"
    else:
        [first] = live
        other = b if first is a else a
        since = start[first["commitment_id"]]
        assert since is not None
        stopped = _last_end(spans[other["commitment_id"]], as_of)
        if stopped is not None and stopped > since:
            since = stopped  # the other side's implementation ended: one-sided again
        until, by, state = as_of, first["obligor"], "one-sided"
    row.update(
        implemented_first=by,
        first_commitment=first["commitment_id"],
        other_commitment=other["commitment_id"],
        other_status=other["status"],
        one_sided_since=since,
        one_sided_until=until,
        other_pending=other["pending"],
        state=state,
        one_sided_days=days_between(since, until),
        one_sided_hours=hours(since, until),
        one_sided_for=count_days(days_between(since, until)),
    )
    if agreed is not None:
        row["days_from_agreement"] = days_between(agreed, until)
    return row


def asymmetry(
    commitment_records: Sequence[Resolved],
    agreement_records: Sequence[Resolved],
    as_of: dt.datetime,
    *,
    agreement: str | None = None,
) -> dict[str, Any]:
    rows = commitments(commitment_records, as_of, agreement=agreement)
    agreements = {r.record.agreement_id: r for r in agreement_records}
    agreement_dates = {key: r.record.reached_at for key, r in agreements.items()}
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["agreement_id"], row["obligor"])
        # (The agreement is read from the key when the rows are built, not from here.)
        entry = per.setdefault(
            key, {"party": row["obligor"], **{f"{name}": [] for name in _COUNTED}}
        )
        entry["pledged"].append(row["commitment_id"])
        if row["implemented"]:
            entry["implemented"].append(row["commitment_id"])
        if row["pending"]:
            entry["pending"].append(row["commitment_id"])
        if row["overdue"]:
            entry["overdue"].append(row["commitment_id"])
        if row["status"] == "reversed":
            entry["reversed"].append(row["commitment_id"])
        if row["status"] == "lapsed":
            entry["lapsed"].append(row["commitment_id"])
        if row["unilateral"]:
            entry["unilateral_claims"].append(row["commitment_id"])
    parties = []
    for (agreement_id, _party), entry in sorted(per.items()):
        a = agreements.get(agreement_id)
        counts = {name: len(entry[name]) for name in _COUNTED}
        parties.append(
            {
                "agreement_id": agreement_id,
                "agreement_title": a.record.title if a else None,
                "agreement_status": a.dynamic if a else None,
                "party": entry["party"],
                "counts": counts,
                **{name: entry[name] for name in _COUNTED},
            }
        )
    pairs = [pair_row(a, b, as_of, agreement_dates) for a, b in _pairs(rows)]
    pairs.sort(key=lambda p: (p["agreement_id"], p["commitments"]))
    return {"parties": parties, "pairs": pairs, "commitments": rows}


_COUNTED = (
    "pledged",
    "implemented",
    "pending",
    "overdue",
    "reversed",
    "lapsed",
    "unilateral_claims",
)


def total_remaining(row: dict[str, Any]) -> Decimal:
    return sum((i["remaining"] for i in row["items"]), Decimal(0))
