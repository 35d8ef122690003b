"""Findings: conflicts an auditor must see, each citing its events.  Pure (no I/O).

The ledger accepts facts that conflict only because of when they became known (a
shipment recorded before the withdrawal that had already ended the licence).  These
functions surface them, as of T as known at K:

- ``late-usage``: a shipment effective while its licence was withdrawn, surrendered,
  suspended, expired or exhausted (the licence's status at the shipment, with the event
  that made it so and when that was recorded);
- ``licensed-end-user-listed``: a licence names (or named, before an amendment) an end
  user who, on a date the licence named it and was valid (from its start to its expiry,
  withdrawal or surrender, and up to T), was on a military end-user or restricted list or
  classified military;
- ``commitment-overdue``: pending at or after its due date;
- ``late-implementation``: first implemented after its due date ("missing the deadline
  (2025-11-30) by 2 days": calendar days, see ``ledger.times``);
- ``unilateral-claim``: a pledge asserted only by the other side, never acknowledged;
- ``one-sided-implementation``: a reciprocal pair that is one-sided at T: one side's
  implementation is in force and the other's is not (pending, overdue, reversed, lapsed
  or ended), see ``views.asymmetry``;
- ``misaligned-ends``: ahead of time, a reciprocal pair both in force at T whose
  implementations are scheduled to end on different days, or clauses suspended at T by
  the same instrument whose suspensions end on different days: both ends and the gap;
- ``rests-on-reports``: a fact effective by T that no official source backs (the
  strongest source it cites is a report or a claim);
- ``unverified-claim``: a claim reported by T and not resolved, set against the clauses
  of the measures it is about on the day it was said to take effect;
- ``claim-contradicted``: a claim the facts contradicted (``ClaimResolved``).

Lateness and one-sided stretches are counted in calendar days of the reading zone, as
people count them (the rule is in ``ledger.times``); details keep the day counts, the
exact instants and the elapsed hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ledger import events as ev
from ledger.domain.claim import ClaimState
from ledger.domain.party import SUSPECT_LISTS
from ledger.projections import records as rec
from ledger.projections import views
from ledger.projections.query import Resolved, Segment
from ledger.times import count_days, days_late, end_text, hours, through_day, to_us


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    """The entity it is about, ``kind:id``."""
    at: dt.datetime | None
    """When the conflict arose (effective time)."""
    summary: str
    events: tuple[UUID | str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "at": self.at,
            "summary": self.summary,
            "events": [str(e) for e in self.events],
            "details": self.details,
        }


_day = views.day


def _late(due: dt.datetime, done: dt.datetime) -> str:
    """Lateness in calendar days (``ledger.times``); past the deadline but still on its
    last day in the reading zone, the hours."""
    days = days_late(due, done)
    return count_days(days) if days else f"{views.duration(due, done)}, on its last day"


def late_usage(licences: Sequence[Resolved]) -> list[Finding]:
    out = []
    for r in licences:
        lic: rec.LicenceRecord = r.record
        for u in lic.late_usage:
            events: list[UUID | str] = [u.usage_event]
            if u.cause_event is not None:
                events.append(u.cause_event)
            if u.since is None:
                since = ""
            elif u.licence_status == "expired":  # an exclusive end: name the last valid day
                since = f" at {end_text(u.since)}"
            else:
                since = f" since {_day(u.since)}"
            later = ""
            if u.cause_recorded_at is not None and u.cause_recorded_at > u.recorded_at:
                lag = views.duration(u.recorded_at, u.cause_recorded_at)
                later = f"; the {u.licence_status} status was recorded {lag} after the shipment"
            out.append(
                Finding(
                    kind="late-usage",
                    subject=f"licence:{lic.licence_id}",
                    at=u.shipped_at,
                    summary=(
                        f"shipment {u.shipment_id} ({u.quantity} of {u.item}) on "
                        f"{_day(u.shipped_at)} under licence {lic.licence_id}, "
                        f"{u.licence_status}{since}{later}"
                    ),
                    events=tuple(events),
                    details={
                        "licence_status": u.licence_status,
                        "shipment_id": u.shipment_id,
                        "shipped_at": u.shipped_at,
                        "usage_recorded_at": u.recorded_at,
                        "cause_recorded_at": u.cause_recorded_at,
                        "since": u.since,
                    },
                )
            )
    return out


def _suspect(party: rec.PartyRecord) -> tuple[str, UUID | None] | None:
    """Why a party counts as listed/military in this record (and the event), if it does."""
    for x in party.listings:
        if x.list_kind in SUSPECT_LISTS:
            return f"on {x.list_name} ({x.list_kind}) since {_day(x.listed_at)}", x.event_id
    if party.classification == "military":
        return "classified military", party.classification_event
    return None


def listed_end_users(
    licences: dict[str, list[Segment]], parties: dict[str, list[Segment]], as_of: dt.datetime
) -> list[Finding]:
    """Licences naming an end user listed/military on a date within their validity.

    ``licences`` is each licence's history (its segments over valid time, as known at K):
    an end user counts while the licence, as it stood then, named it and was valid, so a
    listing stays a finding after an amendment drops the end user.
    """
    out = []
    t = to_us(as_of)
    for licence_id in sorted(licences):
        found: dict[str, tuple[int, str, UUID | None, rec.LicenceRecord]] = {}
        for n, lic_seg in enumerate(licences[licence_id]):
            lic: rec.LicenceRecord = lic_seg.record
            ends = [lic.valid_until, lic.withdrawn_at, lic.surrendered_at]
            # The grant's terms hold from their own start (it may precede the grant).
            start = (
                to_us(lic.valid_from) if n == 0 else max(to_us(lic.valid_from), lic_seg.valid_from)
            )
            end = min([to_us(x) for x in ends if x is not None] + [t + 1, lic_seg.valid_to])
            for party_id in lic.end_users:
                for seg in parties.get(party_id, []):
                    lo, hi = max(start, seg.valid_from), min(end, seg.valid_to)
                    if lo >= hi:
                        continue
                    why = _suspect(seg.record)
                    if why is None:
                        continue
                    if party_id not in found or lo < found[party_id][0]:
                        found[party_id] = (lo, why[0], why[1], lic)
                    break
        for party_id, (lo, reason, event, lic) in sorted(found.items()):
            events: list[UUID | str] = [lic.granted_event]
            if event is not None:
                events.append(event)
            when = rec_time(lo)
            out.append(
                Finding(
                    kind="licensed-end-user-listed",
                    subject=f"licence:{licence_id}",
                    at=when,
                    summary=(
                        f"licence {licence_id} names end user {party_id}, {reason}, "
                        f"from {_day(when)}, while the licence named it and was valid "
                        f"(from {_day(lic.valid_from)})"
                    ),
                    events=tuple(events),
                    details={"end_user": party_id, "from": when},
                )
            )
    return out


def rec_time(us: int) -> dt.datetime:
    from ledger.times import from_us

    return from_us(us)


def commitment_findings(
    commitment_records: Sequence[Resolved],
    agreement_records: Sequence[Resolved],
    as_of: dt.datetime,
) -> list[Finding]:
    out = []
    report = views.asymmetry(commitment_records, agreement_records, as_of)
    for row in report["commitments"]:
        subject = f"commitment:{row['commitment_id']}"
        due = row["due_by"]
        if row["overdue"]:
            out.append(
                Finding(
                    kind="commitment-overdue",
                    subject=subject,
                    at=due,
                    summary=(
                        f"{row['obligor']}'s commitment {row['commitment_id']} was due by "
                        f"{views.last_day(due)} and is overdue by "
                        f"{_late(due, as_of)}"
                    ),
                    events=(row["pledge_event"],),
                    details={
                        "due_by": due,
                        "status": row["status"],
                        "days_overdue": days_late(due, as_of),
                        "hours_overdue": hours(due, as_of),
                    },
                )
            )
        first = row["first_implemented_at"]
        if first is not None and due is not None and first > due:
            out.append(
                Finding(
                    kind="late-implementation",
                    subject=subject,
                    at=first,
                    summary=(
                        f"{row['obligor']} implemented {row['commitment_id']} on {_day(first)}, "
                        f"missing the deadline ({views.last_day(due)}) by {_late(due, first)}"
                    ),
                    events=(row["pledge_event"], row["first_implementation_event"]),
                    details={
                        "due_by": due,
                        "implemented_at": first,
                        "days_late": days_late(due, first),
                        "hours_late": hours(due, first),
                    },
                )
            )
        if row["unilateral"]:
            out.append(
                Finding(
                    kind="unilateral-claim",
                    subject=subject,
                    at=row["pledged_at"],
                    summary=(
                        f"{row['commitment_id']} ({row['obligor']} to {row['beneficiary']}) is "
                        f"asserted only by {', '.join(row['asserted_by'])} and was never "
                        f"acknowledged by {row['obligor']}"
                    ),
                    events=(row["pledge_event"],),
                    details={"asserted_by": row["asserted_by"]},
                )
            )
    by_id = {row["commitment_id"]: row for row in report["commitments"]}
    for pair in report["pairs"]:
        if pair["state"] != "one-sided":
            continue
        first, other = by_id[pair["first_commitment"]], by_id[pair["other_commitment"]]
        out.append(
            Finding(
                kind="one-sided-implementation",
                subject=f"commitment:{other['commitment_id']}",
                at=pair["one_sided_since"],
                summary=(
                    f"{first['obligor']}'s {first['commitment_id']} is {first['status']}; "
                    f"{other['obligor']}'s reciprocal "
                    f"{other['commitment_id']} is {other['status']}: one-sided since "
                    f"{_day(pair['one_sided_since'])}, for {pair['one_sided_for']}"
                ),
                events=(
                    first["implementation_event"] or first["first_implementation_event"],
                    other["pledge_event"],
                ),
                details={
                    k: pair[k]
                    for k in (
                        "one_sided_days",
                        "one_sided_hours",
                        "one_sided_since",
                        "days_from_agreement",
                    )
                }
                | {"other_status": other["status"]},
            )
        )
    return out


# --- ends that do not line up, and facts that rest on reports ------------------------------


def _current_end(row: dict[str, Any], as_of: dt.datetime) -> tuple[bool, dt.datetime | None]:
    """(in force at T, scheduled end of the implementation in force at T: None = open)."""
    for start, end in row["implemented_spans"]:
        if start <= as_of and (end is None or as_of < end):
            return True, end
    return False, None


def _ends_text(end: dt.datetime | None) -> str:
    return f"through {views.last_day(end)}" if end is not None else "with no end"


def misaligned_commitment_ends(
    commitment_records: Sequence[Resolved],
    agreement_records: Sequence[Resolved],
    as_of: dt.datetime,
) -> list[Finding]:
    """Reciprocal pairs, both implemented at T, whose implementations are scheduled to end
    on different days (of the reading zone), or one with an end and one without."""
    out = []
    report = views.asymmetry(commitment_records, agreement_records, as_of)
    by_id = {row["commitment_id"]: row for row in report["commitments"]}
    for pair in report["pairs"]:
        a, b = (by_id[c] for c in pair["commitments"])
        (live_a, end_a), (live_b, end_b) = _current_end(a, as_of), _current_end(b, as_of)
        if not (live_a and live_b) or end_a == end_b:
            continue
        sides: list[tuple[dt.datetime | None, dict[str, Any]]] = [(end_a, a), (end_b, b)]
        if end_a is not None and end_b is not None:
            gap = abs((through_day(end_a) - through_day(end_b)).days)
            if gap == 0:
                continue
            sides.sort(key=lambda x: x[0] or as_of)
            text = f"{count_days(gap)} apart"
            details: dict[str, Any] = {"gap_days": gap, "gap_hours": abs(hours(end_a, end_b))}
        else:
            sides.sort(key=lambda x: x[0] is None)
            text = "one has no end"
            details = {"gap_days": None, "gap_hours": None}
        first, last = sides
        ends = {a["commitment_id"]: end_a, b["commitment_id"]: end_b}
        out.append(
            Finding(
                kind="misaligned-ends",
                subject=f"commitment:{first[1]['commitment_id']}",
                at=first[0],
                summary=(
                    f"{first[1]['obligor']}'s {first[1]['commitment_id']} is in force "
                    f"{_ends_text(first[0])}, its reciprocal {last[1]['obligor']}'s "
                    f"{last[1]['commitment_id']} {_ends_text(last[0])}: {text}"
                ),
                events=tuple(
                    e
                    for e in (a["implementation_event"], b["implementation_event"])
                    if e is not None
                ),
                details={"ends": ends, "commitments": pair["commitments"]} | details,
            )
        )
    return out


def misaligned_suspension_ends(measures: Sequence[Resolved], as_of: dt.datetime) -> list[Finding]:
    """Clauses suspended at T by the same instrument whose suspensions are scheduled to end
    on different days (of the reading zone): the step lapses piecemeal."""
    by_step: dict[tuple[str, str], list[tuple[str, rec.SuspensionRecord]]] = {}
    for r in measures:
        m: rec.MeasureRecord = r.record
        for clause in m.clauses:
            for s in clause.suspensions:
                end = views.suspension_end(s)
                if s.start <= as_of and (end is None or as_of < end) and s.instrument:
                    key = (m.issuer, s.instrument)
                    by_step.setdefault(key, []).append((f"{m.measure_id}/{clause.clause_id}", s))
    out = []
    for (issuer, instrument), held in sorted(by_step.items()):
        days = {
            name: (None if (end := views.suspension_end(s)) is None else through_day(end))
            for name, s in held
        }
        if len(set(days.values())) < 2:
            continue
        known = sorted(d for d in days.values() if d is not None)
        gap = (known[-1] - known[0]).days if len(known) > 1 else None
        groups: dict[str, list[str]] = {}
        for name, d in sorted(days.items()):
            groups.setdefault(d.isoformat() if d else "no end", []).append(name)
        out.append(
            Finding(
                kind="misaligned-ends",
                subject=f"instrument:{instrument}",
                at=min((s.start for _, s in held)),
                summary=(
                    f"{issuer}'s {instrument} suspends clauses to different ends: "
                    + "; ".join(f"{', '.join(names)} through {d}" for d, names in groups.items())
                    + (f" ({count_days(gap)} apart)" if gap else "")
                ),
                events=tuple(dict.fromkeys(s.event_id for _, s in held)),
                details={
                    "instrument": instrument,
                    "ends": {name: views.suspension_end(s) for name, s in held},
                    "gap_days": gap,
                },
            )
        )
    return out


def rests_on_reports(entries: Sequence[Any]) -> list[Finding]:
    """Facts that no official source backs: the strongest source they cite is a report
    (or a claim).  ``entries`` are the log's entries that stand on reports."""
    out = []
    for entry in entries:
        e = entry.event
        if e.entity_kind == "claim":
            continue  # a claim is held as a claim: unverified-claim shows it
        standing = ev.source_standing(e.sources)
        publishers = "; ".join(
            dict.fromkeys(s.publisher for s in e.sources if s.status != "illustrative")
        )
        out.append(
            Finding(
                kind="rests-on-reports",
                subject=e.entity,
                at=e.effective_at,
                summary=(
                    f"{e.type} {e.entity_id} rests on {standing} sources only, no official "
                    f"text: {publishers}"
                ),
                events=(e.event_id,),
                details={
                    "event_type": e.type,
                    "standing": standing,
                    "sources": [
                        {
                            "publisher": s.publisher,
                            "reference": s.reference,
                            "published_on": s.published_on,
                            "status": s.status,
                        }
                        for s in e.sources
                    ],
                },
            )
        )
    return out


# --- reported claims ---------------------------------------------------------------------


def claim_findings(
    claims: Sequence[ClaimState],
    about_measures: dict[str, list[dict[str, Any]]],
    as_of: dt.datetime,
) -> list[Finding]:
    """``unverified-claim``: a claim reported by T and not resolved by then, set against
    what the ledger holds about it (the clauses of the measures it is about, on the day it
    was said to take effect); ``claim-contradicted``: a claim the facts contradicted.

    ``about_measures`` maps ``measure:ID`` to its clause rows on that day.
    """
    out = []
    for c in claims:
        r = c.reported
        status = c.status_at(as_of)
        reported_by = list(dict.fromkeys(s.publisher for s in r.sources))
        if status == "unverified":
            held = []
            for ref in r.about:
                rows = about_measures.get(ref)
                if rows is None:
                    continue
                on = (
                    r.takes_effect_at if r.takes_effect_at and r.takes_effect_at <= as_of else as_of
                )
                clauses = ", ".join(
                    f"{row['clause_id']} {row['status']}"
                    + (" (never in force)" if row["never_in_force"] else "")
                    for row in rows
                )
                held.append(f"{ref} on {_day(on)}: {clauses}")
            when = f", said to take effect {_day(r.takes_effect_at)}" if r.takes_effect_at else ""
            out.append(
                Finding(
                    kind="unverified-claim",
                    subject=f"claim:{c.claim_id}",
                    at=r.effective_at,
                    summary=(
                        f"unverified claim ({', '.join(reported_by)}): {r.claimant}: "
                        f"{r.says.rstrip('.')}{when}"
                        + (f"; the ledger holds {'; '.join(held)}" if held else "")
                    ),
                    events=(r.event_id,),
                    details={
                        "claimant": r.claimant,
                        "says": r.says,
                        "about": list(r.about),
                        "takes_effect_at": r.takes_effect_at,
                        "reported_by": reported_by,
                        "held": {
                            ref: about_measures[ref] for ref in r.about if ref in about_measures
                        },
                    },
                )
            )
        elif status == "contradicted" and c.resolution is not None:
            res = c.resolution
            out.append(
                Finding(
                    kind="claim-contradicted",
                    subject=f"claim:{c.claim_id}",
                    at=res.effective_at,
                    summary=(
                        f"claim ({', '.join(reported_by)}) that {r.says.rstrip('.')} was "
                        f"contradicted on {_day(res.effective_at)} by "
                        f"{', '.join(res.evidence)}: {res.reason}"
                    ),
                    events=(r.event_id, res.event_id),
                    details={
                        "claimant": r.claimant,
                        "says": r.says,
                        "evidence": list(res.evidence),
                        "reason": res.reason,
                    },
                )
            )
    return out
