"""Reported claims: recorded as claims, resolved by facts, shown by the findings; the
rules refuse a claim about nothing the ledger holds (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.errors import InputError, RuleViolation
from ledger.projections import api
from ledger.projections.query import Views
from ledger.times import parse_query_time
from tests import factory as f

REPORT = {
    "reference": "https://example.org/report",
    "publisher": "Example News",
    "published_on": "2025-11-14",
    "status": "claim",
}


def claim(**kw: Any) -> dict[str, Any]:
    return {
        "type": "ClaimReported",
        "entity_id": "auto-rejection",
        "claimant": "MOFCOM, as reported",
        "says": "Military-use applications are rejected automatically.",
        "about": ["measure:cn-ann-46"],
        "takes_effect_at": "2025-12-01T00:00:00+08:00",
        "effective_at": "2025-11-14",
        "sources": [REPORT],
        **kw,
    }


def resolved(outcome: str = "contradicted", **kw: Any) -> dict[str, Any]:
    return {
        "type": "ClaimResolved",
        "entity_id": "auto-rejection",
        "outcome": outcome,
        "evidence": ["measure:cn-ann-46"],
        "reason": "the clause it relies on is suspended",
        "effective_at": "2025-12-05",
        "sources": [f.SRC],
        **kw,
    }


def kinds(app: Ledger, as_of: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    t: dt.datetime = parse_query_time(as_of)
    for finding in api.all_findings(Views(app, mode="fold"), t, None):
        out.setdefault(finding.kind, []).append(finding)
    return out


def test_a_claim_is_unverified_until_the_facts_contradict_it(
    make_ledger: Callable[..., Ledger],
) -> None:
    app = make_ledger()
    app.append_objects([f.measure(), claim()])
    [unverified] = kinds(app, "2025-12-01")["unverified-claim"]
    assert unverified.subject == "claim:auto-rejection"
    assert "said to take effect 2025-11-30" in unverified.summary  # 00:00 Beijing, UTC days
    assert "measure:cn-ann-46 on 2025-11-30: cl1 in-force, cl2 in-force" in unverified.summary
    assert "rests-on-reports" not in kinds(app, "2025-12-01")  # a claim is held as a claim
    app.append_objects([resolved()])
    before, after = kinds(app, "2025-12-04"), kinds(app, "2025-12-05")
    assert "unverified-claim" in before and "claim-contradicted" not in before
    [contradicted] = after["claim-contradicted"]
    assert "unverified-claim" not in after
    assert contradicted.details["evidence"] == ["measure:cn-ann-46"]
    assert "was contradicted on 2025-12-05 by measure:cn-ann-46" in contradicted.summary
    # Resolved once only.
    with pytest.raises(RuleViolation, match="was contradicted on"):
        app.append_objects([resolved("confirmed", effective_at="2025-12-06")])


def test_a_claim_must_be_about_what_the_ledger_holds(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    with pytest.raises(RuleViolation, match="measure 'cn-ann-46' was never published"):
        app.append_objects([claim()])
    with pytest.raises(InputError, match="is not an entity reference"):
        app.append_objects([claim(about=["cn-ann-46"])])
    with pytest.raises(RuleViolation, match="claim 'auto-rejection' was never reported"):
        app.append_objects([f.measure(), resolved()])
    assert app.head() == 0  # nothing appended on any refusal
    # A claim about nothing in particular (a plan under consideration) is a fact too.
    app.append_objects([claim(about=[], takes_effect_at=None)])
