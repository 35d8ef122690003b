"""Every view answers hand-checked questions on a small history, at several (as-of,
known-at) pairs, from the stored views and by folding the events, on both backends.

The history (recorded with ``--backfill`` so that known-at times are meaningful dates):

====  ==========  ===================================================================
R     recorded    facts (effective date)
====  ==========  ===================================================================
R1    10-09       jl-mag, acme (US), bolt (DE) registered and vetted; measure M1:
                  cl1 licence-required 1C902 (from 11-08), cl2 prohibited for military
                  end users (from 10-09)
R2    10-30       agreement busan (10-30); c-us (due 11-10), c-cn reciprocating it
                  (due 11-30), c-claim (CN, asserted only by US, due 12-15)
R3    11-07       M1/cl1 suspended 11-07 until 2026-11-10
R4    11-10       c-us implemented (11-10)
R5    12-02       GL-1 granted (12-02, acme + bolt, 1,000 kg 1C902.a, US/DE);
                  c-cn implemented (12-02); measure M2/lr licence-required 1C902 to
                  US/DE (from 12-01)
R6    12-05       shipment S1 100 kg (12-05)
R7    12-10       shipment S2 200 kg (12-10)
R8    12-12       GL-1 withdrawn (backdated to 12-08); shipment S0 50 kg (backdated
                  to 12-03)
R9    12-15       S1 retracted
R10   12-20       bolt listed as a military end user (backdated to 12-06);
                  M1/cl2 revoked from 2026-01-01
====  ==========  ===================================================================
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.app import Ledger
from ledger.errors import InputError, RuleViolation
from ledger.projections import api, decisions
from ledger.projections.decisions import Request
from ledger.projections.query import Views
from ledger.projections.runner import catch_up, new_projector
from ledger.times import load_zone, parse_query_time, reading_in
from tests.conftest import SOURCE

S = [SOURCE]
ID = {name: str(UUID(int=i + 1)) for i, name in enumerate(["S1", "S2", "S0", "withdraw", "listed"])}


def _at(day: str) -> str:
    return f"{day}T12:00:00Z"


def scenario_batches() -> list[tuple[str, list[dict[str, Any]]]]:
    """(recorded_at, events) batches of the documented history."""
    party = {"type": "PartyRegistered", "sources": S, "effective_at": "2025-01-01"}
    vetted = {
        "type": "PartyVetted",
        "outcome": "approved",
        "authority": "MOFCOM",
        "valid_until": "2026-12-31",
        "effective_at": "2025-01-02",
        "sources": S,
    }
    return [
        (
            _at("2025-10-09"),
            [
                {
                    **party,
                    "entity_id": "jl-mag",
                    "name": "JL Mag",
                    "country": "CN",
                    "roles": ["exporter"],
                },
                {
                    **party,
                    "entity_id": "acme",
                    "name": "Acme Motors",
                    "country": "US",
                    "roles": ["end-user"],
                },
                {
                    **party,
                    "entity_id": "bolt",
                    "name": "Bolt GmbH",
                    "country": "DE",
                    "roles": ["end-user"],
                },
                {**vetted, "entity_id": "acme"},
                {**vetted, "entity_id": "bolt"},
                {
                    "type": "MeasurePublished",
                    "entity_id": "M1",
                    "issuer": "CN",
                    "title": "Rare earth controls",
                    "instrument": "Ann. 61/2025",
                    "effective_at": "2025-10-09",
                    "sources": S,
                    "clauses": [
                        {
                            "clause_id": "cl1",
                            "effect": "licence-required",
                            "items": ["1C902"],
                            "effective_at": "2025-11-08",
                        },
                        {
                            "clause_id": "cl2",
                            "effect": "prohibited",
                            "end_user_classes": ["military"],
                            "effective_at": "2025-10-09",
                        },
                    ],
                },
            ],
        ),
        (
            _at("2025-10-30"),
            [
                {
                    "type": "AgreementReached",
                    "entity_id": "busan",
                    "title": "Busan",
                    "parties": ["US", "CN"],
                    "effective_at": "2025-10-30",
                    "sources": S,
                },
                {
                    "type": "CommitmentPledged",
                    "entity_id": "c-us",
                    "agreement_id": "busan",
                    "obligor": "US",
                    "beneficiary": "CN",
                    "asserted_by": ["US", "CN"],
                    "category": "tariffs",
                    "description": "cut fentanyl tariff",
                    "due_by": "2025-11-10",
                    "effective_at": "2025-10-30",
                    "sources": S,
                },
                {
                    "type": "CommitmentPledged",
                    "entity_id": "c-cn",
                    "agreement_id": "busan",
                    "obligor": "CN",
                    "beneficiary": "US",
                    "asserted_by": ["US", "CN"],
                    "category": "export-controls",
                    "description": "general licences",
                    "due_by": "2025-11-30",
                    "reciprocates": ["c-us"],
                    "effective_at": "2025-10-30",
                    "sources": S,
                },
                {
                    "type": "CommitmentPledged",
                    "entity_id": "c-claim",
                    "agreement_id": "busan",
                    "obligor": "CN",
                    "beneficiary": "US",
                    "asserted_by": ["US"],
                    "category": "purchases",
                    "description": "buy soybeans",
                    "due_by": "2025-12-15",
                    "effective_at": "2025-10-30",
                    "sources": S,
                },
            ],
        ),
        (
            _at("2025-11-07"),
            [
                {
                    "type": "ClauseSuspended",
                    "entity_id": "M1",
                    "clause_id": "cl1",
                    "until": "2026-11-09",
                    "instrument": "Ann. 70/2025",
                    "effective_at": "2025-11-07",
                    "sources": S,
                },
            ],
        ),
        (
            _at("2025-11-10"),
            [
                {
                    "type": "CommitmentImplemented",
                    "entity_id": "c-us",
                    "extent": "full",
                    "instrument": "EO 14357",
                    "effective_at": "2025-11-10",
                    "sources": S,
                },
            ],
        ),
        (
            _at("2025-12-02"),
            [
                {
                    "type": "LicenceGranted",
                    "entity_id": "GL-1",
                    "licence_type": "general",
                    "issuer": "CN",
                    "exporter": "jl-mag",
                    "end_users": ["acme", "bolt"],
                    "items": [{"item": "1C902.a", "cap": "1000"}],
                    "destinations": ["US", "DE"],
                    "valid_until": "2026-12-01",
                    "effective_at": "2025-12-02",
                    "sources": S,
                },
                {
                    "type": "CommitmentImplemented",
                    "entity_id": "c-cn",
                    "extent": "full",
                    "instrument": "MOFCOM general licences",
                    "effective_at": "2025-12-02",
                    "sources": S,
                },
                {
                    "type": "MeasurePublished",
                    "entity_id": "M2",
                    "issuer": "CN",
                    "title": "Magnet exports",
                    "instrument": "Ann. 72/2025",
                    "effective_at": "2025-12-01",
                    "sources": S,
                    "clauses": [
                        {
                            "clause_id": "lr",
                            "effect": "licence-required",
                            "items": ["1C902"],
                            "destinations": ["US", "DE"],
                            "effective_at": "2025-12-01",
                        },
                    ],
                },
            ],
        ),
        (
            _at("2025-12-05"),
            [_usage("S1", "2025-12-05", "100", "acme", "US")],
        ),
        (
            _at("2025-12-10"),
            [_usage("S2", "2025-12-10", "200", "bolt", "DE")],
        ),
        (
            _at("2025-12-12"),
            [
                {
                    "type": "LicenceWithdrawn",
                    "entity_id": "GL-1",
                    "event_id": ID["withdraw"],
                    "reason": "end-use concerns",
                    "effective_at": "2025-12-08",
                    "sources": S,
                },
                _usage("S0", "2025-12-03", "50", "acme", "US"),
            ],
        ),
        (
            _at("2025-12-15"),
            [
                {
                    "type": "EventRetracted",
                    "retracted_event_id": ID["S1"],
                    "reason": "duplicate customs declaration",
                },
            ],
        ),
        (
            _at("2025-12-20"),
            [
                {
                    "type": "PartyListed",
                    "entity_id": "bolt",
                    "event_id": ID["listed"],
                    "list_name": "MEU list",
                    "list_kind": "military-end-user",
                    "authority": "MOFCOM",
                    "effective_at": "2025-12-06",
                    "sources": S,
                },
                {
                    "type": "MeasureRevoked",
                    "entity_id": "M1",
                    "clause_ids": ["cl2"],
                    "reason": "superseded",
                    "effective_at": "2026-01-01",
                    "sources": S,
                },
            ],
        ),
    ]


def _usage(shipment: str, day: str, quantity: str, end_user: str, destination: str) -> dict:
    return {
        "type": "LicenceUsageRecorded",
        "entity_id": "GL-1",
        "event_id": ID[shipment],
        "shipment_id": shipment,
        "item": "1C902.a",
        "quantity": quantity,
        "end_user": end_user,
        "destination": destination,
        "effective_at": day,
        "sources": S,
    }


def record_scenario(app: Ledger) -> None:
    for recorded, events in scenario_batches():
        app.append_objects([{**e, "recorded_at": recorded} for e in events], backfill=True)


def q(text: str) -> dt.datetime:
    return parse_query_time(text)


@pytest.fixture
def scenario(make_ledger: Any) -> Ledger:
    app = make_ledger()
    record_scenario(app)
    return app


@pytest.fixture(params=["stored", "fold"])
def views(request: pytest.FixtureRequest, scenario: Ledger) -> Views:
    if request.param == "stored":
        catch_up(scenario, new_projector(scenario))
    return Views(scenario, mode=request.param)


def _licence(views: Views, as_of: str, known_at: str) -> dict[str, Any] | None:
    rows = api.licences(views, q(as_of), q(known_at))
    assert len(rows) <= 1
    return rows[0] if rows else None


# --- licences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "known_at", "status", "used", "shipments"),
    [
        ("2025-12-01", "2025-12-31", None, None, None),  # not yet granted
        ("2025-12-04", "2025-12-11", "active", "0", 0),  # S0 not known yet
        ("2025-12-04", "2025-12-16", "active", "50", 1),  # backdated S0 known
        ("2025-12-06", "2025-12-11", "active", "100", 1),  # S1
        ("2025-12-11", "2025-12-11", "active", "300", 2),  # withdrawal not known yet
        ("2025-12-11", "2025-12-13", "withdrawn", "350", 3),  # S0 + S1 + S2
        ("2025-12-11", "2025-12-16", "withdrawn", "250", 2),  # S1 retracted
        ("2025-12-07", "2025-12-16", "active", "50", 1),  # before the withdrawal
    ],
)
def test_licence_as_of_and_known_at(
    views: Views, as_of: str, known_at: str, status: str | None, used: str, shipments: int
) -> None:
    row = _licence(views, as_of, known_at)
    if status is None:
        assert row is None
        return
    assert row is not None
    assert row["status"] == status
    [item] = row["items"]
    assert (item["item"], item["cap"]) == ("1C902.a", Decimal(1000))
    assert item["used"] == Decimal(used)
    assert item["remaining"] == Decimal(1000) - Decimal(used)
    assert row["shipments"] == shipments
    assert row["exporter"] == "jl-mag"
    assert row["end_users"] == ["acme", "bolt"]


def test_licence_filters(views: Views) -> None:
    t, k = q("2025-12-06"), q("2025-12-31")
    assert [r["licence_id"] for r in api.licences(views, t, k, exporter="jl-mag")] == ["GL-1"]
    assert api.licences(views, t, k, exporter="other") == []
    assert [r["licence_id"] for r in api.licences(views, t, k, end_user="bolt")] == ["GL-1"]
    assert api.licences(views, t, k, status="withdrawn") == []
    assert [r["licence_id"] for r in api.licences(views, t, k, ids=["GL-1"])] == ["GL-1"]
    assert api.licences(views, t, k, ids=["GL-2"]) == []


# --- measures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "known_at", "expected"),
    [
        (
            "2025-11-01",
            "2025-12-31",
            {"cl1": ("not-yet-effective", None), "cl2": ("in-force", None)},
        ),
        # Suspended from 11-07 (before it took effect on 11-08), until 2026-11-10.
        (
            "2025-11-20",
            "2025-12-31",
            {"cl1": ("suspended", "2026-11-10"), "cl2": ("in-force", None)},
        ),
        # Before the suspension was known, cl1 was in force on 11-20.
        ("2025-11-20", "2025-11-06", {"cl1": ("in-force", None), "cl2": ("in-force", None)}),
        (
            "2026-01-02",
            "2025-12-31",
            {"cl1": ("suspended", "2026-11-10"), "cl2": ("revoked", None)},
        ),
        (
            "2026-01-02",
            "2025-12-19",
            {"cl1": ("suspended", "2026-11-10"), "cl2": ("in-force", None)},
        ),
        ("2026-11-10", "2025-12-31", {"cl1": ("in-force", None), "cl2": ("revoked", None)}),
    ],
)
def test_measures_per_clause(
    views: Views, as_of: str, known_at: str, expected: dict[str, tuple[str, str | None]]
) -> None:
    rows = {r["clause_id"]: r for r in api.measures(views, q(as_of), q(known_at), ids=["M1"])}
    got = {
        cid: (r["status"], r["suspended_until"][:10] if r["suspended_until"] else None)
        for cid, r in rows.items()
    }
    assert got == expected


def test_measures_list_every_measure(views: Views) -> None:
    rows = api.measures(views, q("2025-12-03"), q("2025-12-31"))
    assert [(r["measure_id"], r["clause_id"], r["status"]) for r in rows] == [
        ("M1", "cl1", "suspended"),
        ("M1", "cl2", "in-force"),
        ("M2", "lr", "in-force"),
    ]
    # Known on 1 December: M2 was recorded on 12-02, so only M1's clauses are listed
    # (cl1 suspended since the 11-07 record, cl2 in force).
    rows = api.measures(views, q("2025-12-03"), q("2025-12-01"))
    assert [(r["measure_id"], r["clause_id"], r["status"]) for r in rows] == [
        ("M1", "cl1", "suspended"),
        ("M1", "cl2", "in-force"),
    ]


# --- end users --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "known_at", "military", "lists"),
    [
        ("2025-12-21", "2025-12-19", False, []),  # the listing was recorded on 12-20
        ("2025-12-21", "2025-12-21", True, ["MEU list"]),
        ("2025-12-05", "2025-12-21", False, []),  # listed from 12-06
        ("2025-12-06", "2025-12-21", True, ["MEU list"]),
    ],
)
def test_end_user_listing(
    views: Views, as_of: str, known_at: str, military: bool, lists: list[str]
) -> None:
    [bolt] = api.end_users(views, q(as_of), q(known_at), ids=["bolt"])
    assert bolt["military"] is military
    assert bolt["end_user_class"] == ("military" if military else "civil")
    assert [x["list_name"] for x in bolt["listings"]] == lists
    assert bolt["vetting"] == "approved"


def test_end_users_vetting_expires(views: Views) -> None:
    rows = {r["party_id"]: r for r in api.end_users(views, q("2027-01-01"), q("2025-12-31"))}
    assert set(rows) == {"acme", "bolt"}  # the exporter is not an end user
    assert rows["acme"]["vetting"] == "expired"
    before = api.end_users(views, q("2025-01-01"), q("2025-12-31"), ids=["acme"])
    assert before[0]["vetting"] == "not-vetted"


# --- commitments and asymmetry ----------------------------------------------------------


def _commitments(views: Views, as_of: str, known_at: str) -> dict[str, dict[str, Any]]:
    return {r["commitment_id"]: r for r in api.commitments(views, q(as_of), q(known_at))}


def test_commitment_statuses(views: Views) -> None:
    c = _commitments(views, "2025-11-20", "2025-12-31")
    assert (c["c-us"]["status"], c["c-us"]["implemented"]) == ("implemented", True)
    assert (c["c-cn"]["status"], c["c-cn"]["pending"], c["c-cn"]["overdue"]) == (
        "pledged",
        True,
        False,
    )
    c = _commitments(views, "2025-12-01", "2025-12-31")
    assert (c["c-cn"]["status"], c["c-cn"]["overdue"]) == ("overdue", True)
    c = _commitments(views, "2025-12-05", "2025-12-31")
    assert c["c-cn"]["status"] == "implemented"
    # Known on 11-20 only: c-cn's implementation (recorded 12-02) is unknown.
    c = _commitments(views, "2025-12-05", "2025-11-20")
    assert (c["c-cn"]["status"], c["c-cn"]["overdue"]) == ("overdue", True)
    assert c["c-claim"]["unilateral"] is True
    assert c["c-us"]["unilateral"] is False


def test_asymmetry_counts_and_pairs(views: Views) -> None:
    report = api.asymmetry(views, q("2025-11-20"), q("2025-12-31"))
    parties = {p["party"]: p for p in report["parties"]}
    assert parties["US"]["counts"] == {
        "pledged": 1,
        "implemented": 1,
        "pending": 0,
        "overdue": 0,
        "reversed": 0,
        "lapsed": 0,
        "unilateral_claims": 0,
    }
    assert parties["CN"]["counts"] == {
        "pledged": 2,
        "implemented": 0,
        "pending": 2,
        "overdue": 0,
        "reversed": 0,
        "lapsed": 0,
        "unilateral_claims": 1,
    }
    assert parties["CN"]["pending"] == ["c-claim", "c-cn"]
    [pair] = report["pairs"]
    assert pair["commitments"] == ["c-cn", "c-us"]
    assert pair["implemented_first"] == "US"
    assert pair["state"] == "one-sided"
    assert pair["one_sided_since"] == q("2025-11-10") - dt.timedelta(days=1, microseconds=-1)
    assert pair["one_sided_days"] == 10  # 11-10 to the end of 11-20
    assert pair["days_from_agreement"] == 21  # 10-30 to the end of 11-20


@pytest.mark.parametrize(
    ("as_of", "known_at", "state", "days", "from_agreement"),
    [
        ("2025-12-05", "2025-12-31", "both-implemented", 22, 33),  # 11-10 -> 12-02
        ("2025-12-05", "2025-11-20", "one-sided", 25, 36),  # c-cn's implementation unknown
        ("2025-11-05", "2025-12-31", "neither-implemented", None, None),
    ],
)
def test_asymmetry_pair_over_time(
    views: Views,
    as_of: str,
    known_at: str,
    state: str,
    days: int | None,
    from_agreement: int | None,
) -> None:
    [pair] = api.asymmetry(views, q(as_of), q(known_at))["pairs"]
    assert (pair["state"], pair["one_sided_days"], pair["days_from_agreement"]) == (
        state,
        days,
        from_agreement,
    )


def _append_later(app: Ledger, mode: str, *events: dict[str, Any]) -> Views:
    """Record ``events`` on 2026-01-05 (after the whole history) and open the views."""
    app.append_objects(
        [{"sources": S, "recorded_at": _at("2026-01-05"), **e} for e in events], backfill=True
    )
    if mode == "stored":
        catch_up(app, new_projector(app))
    return Views(app, mode=mode)


@pytest.mark.parametrize("mode", ["stored", "fold"])
def test_a_reversal_makes_the_pair_one_sided_again(scenario: Ledger, mode: str) -> None:
    """c-us reversed on 12-10 while c-cn stays implemented: one-sided again, from 12-10."""
    views = _append_later(
        scenario,
        mode,
        {
            "type": "CommitmentReversed",
            "entity_id": "c-us",
            "reason": "rule reinstated",
            "effective_at": "2025-12-10",
        },
    )
    k = q("2026-01-10")
    [before] = api.asymmetry(views, q("2025-12-09"), k)["pairs"]
    assert (before["state"], before["first_commitment"], before["one_sided_days"]) == (
        "both-implemented",
        "c-us",
        22,
    )
    [pair] = api.asymmetry(views, q("2025-12-20"), k)["pairs"]
    assert (pair["state"], pair["implemented_first"], pair["first_commitment"]) == (
        "one-sided",
        "CN",
        "c-cn",
    )
    assert (pair["other_commitment"], pair["other_status"]) == ("c-us", "reversed")
    assert pair["one_sided_since"] == q("2025-12-10") - dt.timedelta(days=1, microseconds=-1)
    # 12-10 to 12-20: 10 calendar days (JSON keeps the elapsed hours).
    assert (pair["one_sided_days"], pair["one_sided_for"]) == (10, "10 days")
    assert pair["one_sided_hours"] == 264.0
    [finding] = _findings(views, "2025-12-20", "2026-01-10")["one-sided-implementation"]
    assert finding.subject == "commitment:c-us"
    assert "c-us is reversed: one-sided since 2025-12-10" in finding.summary


@pytest.mark.parametrize("mode", ["stored", "fold"])
def test_lateness_counts_calendar_days(scenario: Ledger, mode: str) -> None:
    """c-claim (due by 12-15, i.e. before 12-16T00:00Z) implemented at noon on 12-16: in
    UTC it was met the day after its last day, 1 day late, though 12 h elapsed.  In
    Beijing's calendar the deadline is 12-16 08:00 and noon UTC is 20:00 the same day: met
    on the deadline's last day, 0 days late, and the text gives the hours."""
    views = _append_later(
        scenario,
        mode,
        {
            "type": "CommitmentImplemented",
            "entity_id": "c-claim",
            "extent": "full",
            "instrument": "notice",
            "effective_at": "2025-12-16T12:00:00Z",
        },
    )
    [late] = [
        f
        for f in _findings(views, "2025-12-31", "2026-01-10")["late-implementation"]
        if f.subject == "commitment:c-claim"
    ]
    assert "missing the deadline (2025-12-15) by 1 day" in late.summary
    assert (late.details["days_late"], late.details["hours_late"]) == (1, 12.0)
    with reading_in(load_zone("Asia/Shanghai")):
        [late] = [
            f
            for f in _findings(views, "2025-12-31", "2026-01-10")["late-implementation"]
            if f.subject == "commitment:c-claim"
        ]
    assert "missing the deadline (2025-12-16) by 12 h, on its last day" in late.summary
    assert (late.details["days_late"], late.details["hours_late"]) == (0, 12.0)


# --- findings ---------------------------------------------------------------------------


def _findings(views: Views, as_of: str, known_at: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for f in api.all_findings(views, q(as_of), q(known_at)):
        out.setdefault(f.kind, []).append(f)
    return out


def test_findings_late_knowledge(views: Views) -> None:
    # Before the withdrawal was recorded, nothing conflicts.
    assert "late-usage" not in _findings(views, "2025-12-31", "2025-12-11")
    found = _findings(views, "2025-12-31", "2025-12-31")
    [late] = found["late-usage"]
    assert late.subject == "licence:GL-1"
    assert late.details["licence_status"] == "withdrawn"
    assert late.details["shipment_id"] == "S2"
    assert [str(e) for e in late.events] == [ID["S2"], ID["withdraw"]]
    assert "recorded 2 days after the shipment" in late.summary
    [listed] = found["licensed-end-user-listed"]
    assert listed.details["end_user"] == "bolt"
    assert listed.at == q("2025-12-06") - dt.timedelta(days=1, microseconds=-1)
    assert str(listed.events[1]) == ID["listed"]
    # Known before the listing was recorded: no such finding.
    assert "licensed-end-user-listed" not in _findings(views, "2025-12-31", "2025-12-19")


def _learned_later(scenario: Ledger, mode: str, events: list[dict[str, Any]]) -> Views:
    """Backfill ``events`` (each with its recorded_at) and query in ``mode``."""
    scenario.append_objects(events, backfill=True)
    if mode == "stored":
        catch_up(scenario, new_projector(scenario))
    return Views(scenario, mode=mode)


def _bolt_dropped(effective: str) -> dict[str, Any]:
    """GL-1 amended to name acme only, learned on 2026-01-05."""
    return {
        "type": "LicenceAmended",
        "entity_id": "GL-1",
        "end_users": ["acme"],
        "reason": "bolt removed",
        "effective_at": effective,
        "recorded_at": _at("2026-01-05"),
        "sources": S,
    }


@pytest.mark.parametrize("mode", ["stored", "fold"])
def test_listed_end_user_stays_a_finding_after_an_amendment_drops_it(
    scenario: Ledger, mode: str
) -> None:
    """GL-1 named bolt while bolt was listed (12-06); dropping bolt on 12-07 does not erase it."""
    views = _learned_later(scenario, mode, [_bolt_dropped("2025-12-07")])
    [row] = api.licences(views, q("2025-12-07"), q("2026-01-10"))
    assert row["end_users"] == ["acme"]
    [listed] = _findings(views, "2025-12-31", "2026-01-10")["licensed-end-user-listed"]
    assert listed.details["end_user"] == "bolt" and listed.subject == "licence:GL-1"
    assert listed.at == q("2025-12-06") - dt.timedelta(days=1, microseconds=-1)


@pytest.mark.parametrize("mode", ["stored", "fold"])
def test_an_end_user_dropped_before_its_listing_is_no_finding(scenario: Ledger, mode: str) -> None:
    """GL-1 stops naming bolt on 12-05, a day before bolt is listed (12-06): the licence
    never named a listed end user.  Known before the amendment was recorded, it did."""
    views = _learned_later(scenario, mode, [_bolt_dropped("2025-12-05")])
    assert "licensed-end-user-listed" not in _findings(views, "2025-12-31", "2026-01-10")
    [listed] = _findings(views, "2025-12-31", "2026-01-04")["licensed-end-user-listed"]
    assert listed.details["end_user"] == "bolt"


@pytest.mark.parametrize("mode", ["stored", "fold"])
def test_a_licence_withdrawn_before_the_listing_is_no_finding(scenario: Ledger, mode: str) -> None:
    """Learned on 2026-01-06: GL-1 was withdrawn on 12-04 (not 12-08), before bolt was
    listed (12-06), so it never named a listed end user while valid."""
    correction = [
        {
            "type": "EventRetracted",
            "retracted_event_id": ID["withdraw"],
            "reason": "wrong date",
            "recorded_at": _at("2026-01-06"),
        },
        {
            "type": "LicenceWithdrawn",
            "entity_id": "GL-1",
            "reason": "end user diverted goods",
            "effective_at": "2025-12-04",
            "recorded_at": _at("2026-01-06"),
            "sources": S,
        },
    ]
    views = _learned_later(scenario, mode, correction)
    assert "licensed-end-user-listed" not in _findings(views, "2025-12-31", "2026-01-10")
    assert "licensed-end-user-listed" in _findings(views, "2025-12-31", "2026-01-05")


def test_findings_commitments(views: Views) -> None:
    found = _findings(views, "2025-12-31", "2025-12-31")
    assert [f.subject for f in found["commitment-overdue"]] == ["commitment:c-claim"]
    [late] = found["late-implementation"]
    assert late.subject == "commitment:c-cn"
    # Due by 11-30, implemented on 12-02: 2 days late as people count.
    assert late.details["days_late"] == 2
    assert "missing the deadline (2025-11-30) by 2 days" in late.summary
    assert [f.subject for f in found["unilateral-claim"]] == ["commitment:c-claim"]
    assert "one-sided-implementation" not in found
    found = _findings(views, "2025-11-20", "2025-12-31")
    [one_sided] = found["one-sided-implementation"]
    assert one_sided.subject == "commitment:c-cn"
    assert one_sided.details["one_sided_days"] == 10


# --- decisions ------------------------------------------------------------------------


def _request(day: str, end_user: str = "acme", quantity: str = "100", dest: str = "US") -> Request:
    return Request(
        exporter="jl-mag",
        end_user=end_user,
        item="1C902.a",
        quantity=Decimal(quantity),
        unit="kg",
        destination=dest,
        end_use="EV motors",
        date=q(day),
    )


def test_decision_licence_required_and_covered(views: Views) -> None:
    d = decisions.check(views, _request("2025-12-04"), q("2025-12-04"))
    assert d.outcome == "approved"
    assert [(f.measure_id, f.clause_id) for f in d.fired] == [("M2", "lr")]
    assert d.licence_id == "GL-1"
    assert d.remaining_before == Decimal(1000)  # S0 was not known on 12-04
    assert d.end_user_status.startswith("vetting approved by MOFCOM")


def test_decision_rejections(views: Views) -> None:
    too_much = decisions.check(views, _request("2025-12-04", quantity="2000"), q("2025-12-04"))
    assert too_much.outcome == "rejected"
    assert "only 1,000 kg of 1C902.a remain" in too_much.reasons[0]
    # After the withdrawal (as known on 12-31) no licence covers it.
    after = decisions.check(views, _request("2025-12-09"), q("2025-12-31"))
    assert after.outcome == "rejected"
    assert "none covers it" in after.reasons[0] and "withdrawn" in after.reasons[0]
    # bolt is a military end user from 12-06 (known from 12-20): M1/cl2 prohibits.
    military = decisions.check(views, _request("2025-12-07", "bolt", dest="DE"), q("2025-12-31"))
    assert military.outcome == "rejected"
    assert any(r.startswith("prohibited: M1/cl2") for r in military.reasons)
    assert "MEU list" in military.end_user_status
    known_earlier = decisions.check(
        views, _request("2025-12-07", "bolt", dest="DE"), q("2025-12-19")
    )
    assert known_earlier.outcome == "approved"
    assert known_earlier.licence_id == "GL-1"


@pytest.mark.parametrize(
    ("change", "error", "field", "text"),
    [
        ({"exporter": ""}, InputError, "exporter", "must not be empty"),
        ({"end_user": " acme"}, InputError, "end_user", "must not begin or end with a space"),
        ({"licence_id": ""}, InputError, "licence_id", "must not be empty"),
        ({"end_use": "   "}, InputError, "end_use", "must not be blank"),
        ({"quantity": Decimal("0.0000000001")}, RuleViolation, "quantity", "decimal places"),
    ],
)
def test_a_request_apply_could_not_record_is_refused_by_check(
    views: Views, change: dict[str, Any], error: type[Exception], field: str, text: str
) -> None:
    """decisions.check (the library, not only the CLI) holds a request to what apply records."""
    import dataclasses

    request = dataclasses.replace(_request("2025-12-04"), **change)
    with pytest.raises(error) as refused:
        decisions.check(views, request, q("2025-12-04"))
    assert refused.value.field == field and text in refused.value.message  # type: ignore[attr-defined]


def test_decision_suspended_clause_does_not_apply(views: Views) -> None:
    # 11-20: M1/cl1 (licence required) is suspended and M2 does not exist yet.
    d = decisions.check(views, _request("2025-11-20"), q("2025-12-31"))
    assert (d.outcome, d.reasons, d.fired) == ("approved", ["no control applies"], [])
    # As known on 11-06 the suspension was unknown: cl1 applies and no licence exists.
    d = decisions.check(views, _request("2025-11-20"), q("2025-11-06"))
    assert d.outcome == "rejected"
    assert [(f.measure_id, f.clause_id) for f in d.fired] == [("M1", "cl1")]
    assert "jl-mag holds no licence" in d.reasons[0]


def test_stored_views_read_stored_rows(scenario: Ledger) -> None:
    catch_up(scenario, new_projector(scenario))
    v = Views(scenario, mode="auto")
    api.licences(v, q("2025-12-11"), q("2025-12-13"))
    assert v.source == "stored"
    counts = v.store.row_counts()
    assert (
        counts["views_entities"] == 10
    )  # 3 parties, 2 measures, 1 agreement, 3 commitments, 1 licence
    assert counts["views_history"] > 0


@pytest.mark.parametrize(
    ("end", "zone", "through"),
    [
        ("2026-11-10T00:00:00Z", "UTC", "2026-11-09"),
        ("2026-11-11T00:00:00+08:00", "Asia/Shanghai", "2026-11-10"),  # Ann.70, "until 11-10"
        ("2026-11-11T00:00:00+08:00", "UTC", "2026-11-10"),  # 16:00Z: part of 11-10
        ("2026-11-28T00:00:00+08:00", "Asia/Shanghai", "2026-11-27"),  # Ann.46, "until 11-27"
        ("2026-11-28T00:00:00+08:00", "UTC", "2026-11-27"),
        ("2026-11-10T00:00:00-05:00", "America/New_York", "2026-11-09"),  # US "through 11-09"
        ("2026-11-10T00:00:00-05:00", "Asia/Shanghai", "2026-11-10"),  # 13:00 in Beijing
        ("2026-11-10T13:01:00+08:00", "Asia/Shanghai", "2026-11-10"),
        ("2026-11-10T23:59:59.999999Z", "UTC", "2026-11-10"),
    ],
)
def test_through_day_is_the_day_holding_the_last_instant(end: str, zone: str, through: str) -> None:
    """ "through D": the end's last covered microsecond falls on D in the reading zone.
    Where the end is a midnight of that zone, ``--as-of D`` (read in the zone) still
    holds and ``--as-of D+1`` does not."""
    from ledger.projections.views import last_day

    instant = dt.datetime.fromisoformat(end)
    with reading_in(load_zone(zone)):
        assert last_day(instant) == through
        after = (dt.date.fromisoformat(through) + dt.timedelta(days=1)).isoformat()
        local = instant.astimezone(load_zone(zone))
        if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
            assert q(through) < instant <= q(after)
