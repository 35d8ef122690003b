"""The views as the CLI and services use them: query, then shape (thin glue, no rules).

Export decisions (``check``, and ``apply``, which records them) are
``ledger.projections.decisions``.

Every function takes a ``query.Views`` (stored views or folding, see there) and the
(as_of, known_at) pair; ``None`` means now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ledger.projections import findings, views
from ledger.projections.names import CLAUSE_STATUSES, FINDING_KINDS, LICENCE_STATUSES
from ledger.projections.query import Views
from ledger.times import now

__all__ = ["CLAUSE_STATUSES", "FINDING_KINDS", "LICENCE_STATUSES"]


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
    at = as_of or now()
    with gc_paused():
        resolved = v.records("licence", at, known_at, ids=ids, ref=exporter)
        return views.licences(resolved, at, status=status, exporter=exporter, end_user=end_user)


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
        "unverified-claim",
        "claim-contradicted",
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
    if wanted & {"unverified-claim", "claim-contradicted"}:
        out += [f for f in _claim_findings(v, t, known_at) if f.kind in wanted]
    if "rests-on-reports" in wanted:
        reported = v.app.log(as_of=t, known_at=known_at, source_statuses=("reported", "claim"))
        out += findings.rests_on_reports(list(reported))
    out.sort(key=lambda f: (f.kind, f.at or t, f.subject))
    return out


def _claim_findings(
    v: Views, t: dt.datetime, known_at: dt.datetime | None
) -> list[findings.Finding]:
    """The claims effective by T as known at K, folded, and the measures they are about
    resolved on the day each was said to take effect (T if later or unsaid)."""
    from ledger.domain.claim import ClaimState, parse_ref
    from ledger.domain.state import fold
    from ledger.events import Event

    grouped: dict[str, list[Event]] = {}
    for entry in v.app.log(as_of=t, known_at=known_at, entity_kind="claim"):
        grouped.setdefault(entry.event.entity_id, []).append(entry.event)
    claims = [s for events in grouped.values() if isinstance(s := fold(events), ClaimState)]
    about: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        r = c.reported
        on = r.takes_effect_at if r.takes_effect_at and r.takes_effect_at <= t else t
        for ref in r.about:
            kind, measure_id = parse_ref(ref, "about")
            if kind == "measure" and ref not in about:
                about[ref] = views.measures(
                    v.records("measure", on, known_at, ids=[measure_id]), on
                )
    return findings.claim_findings(claims, about, t)
