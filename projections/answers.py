"""The JSON answers of the views, as ``ledger VIEW -o json`` prints them and the HTTP API
serves them: one shaping for both, so the two cannot drift apart.

Each function takes a ``query.Views`` and (as_of, known_at) (``None``: now) and returns the
whole JSON body: which T and K it used (so the answer can be asked again and cited), the
``source`` that answered (``views`` or ``events``), then the view's rows.  ``encode``
gives the bytes both print.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.projections import api, decisions
from ledger.times import now, zone_name

if TYPE_CHECKING:
    from ledger.app import LogEntry
    from ledger.projections.decisions import Decision, Request
    from ledger.projections.query import Views


def encode(body: Any) -> bytes:
    """The JSON text of an answer, as ``echo_json`` prints it (instants as given,
    quantities as decimal strings): msgspec's own encoding, not a web framework's."""
    return msgspec.json.encode(body)


def meta(v: Views, as_of: dt.datetime | None, known_at: dt.datetime | None) -> dict[str, Any]:
    """Which (T, K) answered, and from where: asking again with both gets the same answer."""
    return {
        "as_of": as_of or now(),
        "known_at": known_at or now(),  # nothing is recorded after now: K is now
        "source": "events" if v.source == "fold" else "views",
        "tz": zone_name(),  # the calendar of the days in the answer; instants stay exact
    }


def licences(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    status: str | None = None,
    exporter: str | None = None,
    end_user: str | None = None,
) -> dict[str, Any]:
    rows = api.licences(
        v, as_of, known_at, ids=ids, status=status, exporter=exporter, end_user=end_user
    )
    return {**meta(v, as_of, known_at), "licences": rows}


def commitments(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    agreement: str | None = None,
    party: str | None = None,
) -> dict[str, Any]:
    rows = api.commitments(v, as_of, known_at, agreement=agreement, party=party)
    return {**meta(v, as_of, known_at), "commitments": rows}


def asymmetry(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    agreement: str | None = None,
) -> dict[str, Any]:
    report = api.asymmetry(v, as_of, known_at, agreement=agreement)
    return {**meta(v, as_of, known_at), **report}


def measures(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    rows = api.measures(v, as_of, known_at, ids=ids, status=status)
    return {**meta(v, as_of, known_at), "clauses": rows}


def end_users(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    ids: Sequence[str] | None = None,
    role: str | None = "end-user",
) -> dict[str, Any]:
    rows = api.end_users(v, as_of, known_at, ids=ids, role=role)
    return {**meta(v, as_of, known_at), "parties": rows}


def findings(
    v: Views,
    as_of: dt.datetime | None,
    known_at: dt.datetime | None,
    *,
    kinds: Sequence[str] | None = None,
) -> dict[str, Any]:
    found = api.all_findings(v, as_of, known_at, kinds=kinds)
    return {**meta(v, as_of, known_at), "findings": [f.to_dict() for f in found]}


def check(v: Views, request: Request, known_at: dt.datetime | None) -> dict[str, Any]:
    """The decision on ``request`` (dated ``request.date``), as known at ``known_at``."""
    return check_body(v, request, decisions.check(v, request, known_at), known_at)


def check_body(
    v: Views, request: Request, decision: Decision, known_at: dt.datetime | None
) -> dict[str, Any]:
    """The answer of ``check`` for a decision already taken (the CLI prints both)."""
    return {
        **meta(v, request.date, known_at),
        "request": vars(request),
        "decision": decision.to_dict(),
    }


def log_entry(entry: LogEntry) -> dict[str, Any]:
    """One event of the history (``ledger log -o json``'s items, ``ledger show -o json``)."""
    return {"position": entry.position, "retracted": entry.retracted, "event": entry.event}
