"""Export decisions as a pure function: clause matching, effects, licences, end users.

(The same rules against a recorded history, at several known-at times, are in
``test_projections.py``; ``ledger check``/``ledger apply`` end to end in
``test_views_cli.py``.)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.projections import records as rec
from ledger.projections.decisions import Request, decide, item_matches
from ledger.projections.query import Resolved

D = dt.datetime(2025, 12, 10, tzinfo=dt.UTC)
E = UUID(int=1)


def clause(cid: str, effect: str, **kw: Any) -> rec.ClauseRecord:
    return rec.ClauseRecord(clause_id=cid, effect=effect, effective_at=D, **kw)


def measure(mid: str, *clauses: tuple[rec.ClauseRecord, str], issuer: str = "CN") -> Resolved:
    record = rec.MeasureRecord(
        measure_id=mid,
        issuer=issuer,
        title=mid,
        instrument=f"Ann. {mid}",
        published_at=D,
        published_event=E,
        clauses=tuple(c for c, _ in clauses),
    )
    return Resolved(mid, record, [[status, None, None] for _, status in clauses])


def party(
    pid: str, *, classification: str | None = None, listed: bool = False, country: str = "US"
) -> Resolved:
    listings = (
        (
            rec.ListingRecord(
                list_name="MEU",
                list_kind="military-end-user",
                authority="BIS",
                listed_at=D,
                event_id=E,
            ),
        )
        if listed
        else ()
    )
    military = listed or classification == "military"
    record = rec.PartyRecord(
        party_id=pid,
        name=pid,
        country=country,
        roles=("end-user",),
        registered_at=D,
        registered_event=E,
        vetting="approved",
        vetting_authority="MOFCOM",
        classification=classification,
        listings=listings,
        end_user_class="military" if military else (classification or "civil"),
        military=military,
    )
    return Resolved(pid, record, "approved")


def licence(
    lid: str,
    status: str = "active",
    *,
    item: str = "1C902.a",
    remaining: str = "100",
    end_users: tuple[str, ...] = ("acme",),
    exporter: str = "jl",
    unit: str = "kg",
    destinations: tuple[str, ...] = ("US",),
) -> Resolved:
    record = rec.LicenceRecord(
        licence_id=lid,
        licence_type="general",
        issuer="CN",
        exporter=exporter,
        end_users=end_users,
        destinations=destinations,
        items=(rec.ItemUse(item, Decimal(1000), Decimal(1000) - Decimal(remaining), unit),),
        valid_from=D - dt.timedelta(days=30),
        valid_until=D + dt.timedelta(days=300),
        granted_event=E,
    )
    return Resolved(lid, record, status)


def request(
    item: str = "1C902.a",
    quantity: str = "50",
    end_user: str = "acme",
    licence_id: str | None = None,
    unit: str = "kg",
    destination: str = "US",
) -> Request:
    return Request(
        exporter="jl",
        end_user=end_user,
        item=item,
        quantity=Decimal(quantity),
        unit=unit,
        destination=destination,
        end_use="motors",
        date=D,
        licence_id=licence_id,
    )


USERS = {
    "acme": party("acme"),
    "bolt": party("bolt", listed=True),  # on a military end-user list
    "jl": party("jl", country="CN"),
}


def run(req: Request, measures: list[Resolved], licences: list[Resolved] = ()) -> Any:
    """Decide with the end user from USERS (an id not there is a test error, not a party)."""
    return decide(req, measures, USERS[req.end_user], USERS["jl"], list(licences))


@pytest.mark.parametrize(
    ("pattern", "item", "matches"),
    [
        ("1C902", "1C902.a", True),
        ("1C902", "1C902", True),
        ("1C902.a", "1C902.a", True),
        ("1C902", "1C9021", False),  # not at a dot boundary
        ("1C902.a", "1C902", False),  # a narrower clause does not cover the wider item
        ("8505", "8505.11", True),
    ],
)
def test_item_matching(pattern: str, item: str, matches: bool) -> None:
    assert item_matches(pattern, item) is matches


def test_no_control_applies() -> None:
    d = run(
        request(), [measure("M", (clause("a", "licence-required", items=("2805",)), "in-force"))]
    )
    assert (d.outcome, d.reasons, d.fired) == ("approved", ["no control applies"], [])


@pytest.mark.parametrize("status", ["suspended", "not-yet-effective", "revoked"])
def test_clauses_not_in_force_do_not_apply(status: str) -> None:
    d = run(request(), [measure("M", (clause("a", "prohibited"), status))])
    assert d.outcome == "approved" and not d.fired


@pytest.mark.parametrize("effect", ["prohibited", "denied-in-principle"])
def test_blocking_effects_reject_and_name_the_clause(effect: str) -> None:
    d = run(
        request(),
        [measure("M", (clause("a", effect, items=("1C902",)), "in-force"))],
        [licence("L")],
    )
    assert d.outcome == "rejected"
    assert d.reasons[0] == f"{effect}: M/a (Ann. M)"


def test_licence_required_and_covered() -> None:
    d = run(
        request(),
        [measure("M", (clause("a", "licence-required", items=("1C902",)), "in-force"))],
        [licence("L2", remaining="10"), licence("L1")],
    )
    assert d.outcome == "approved"
    assert d.licence_id == "L1" and d.remaining_before == Decimal(100)
    assert "covered by licence L1" in d.reasons[0]


@pytest.mark.parametrize(
    ("licences", "reason"),
    [
        ([], "jl holds no licence"),
        ([licence("L", "suspended")], "L: suspended on 2025-12-10"),
        ([licence("L", remaining="10")], "L: only 10 kg of 1C902.a remain"),
        ([licence("L", item="1C903")], "L: does not cover 1C902.a"),
        ([licence("L", end_users=("other",))], "no licence of jl names acme"),
    ],
)
def test_licence_required_and_not_covered(licences: list[Resolved], reason: str) -> None:
    d = run(request(), [measure("M", (clause("a", "licence-required"), "in-force"))], licences)
    assert d.outcome == "rejected"
    assert d.reasons[0].startswith("licence required by M/a; none covers it")
    assert reason in d.reasons[0]


def test_named_licence_only() -> None:
    lr = [measure("M", (clause("a", "licence-required"), "in-force"))]
    d = run(request(licence_id="L2"), lr, [licence("L1"), licence("L2", remaining="1")])
    assert d.outcome == "rejected" and "licence L2 does not cover it" in d.reasons[0]
    assert run(request(licence_id="L1"), lr, [licence("L1")]).licence_id == "L1"


def test_end_user_class_and_destination_matching() -> None:
    military_only = clause("m", "prohibited", end_user_classes=("military",))
    to_de = clause("d", "prohibited", destinations=("DE",))
    measures = [measure("M", (military_only, "in-force"), (to_de, "in-force"))]
    assert run(request(), measures).outcome == "approved"
    d = run(request(end_user="bolt"), measures)  # listed on a military end-user list
    assert d.outcome == "rejected"
    assert [(f.measure_id, f.clause_id) for f in d.fired] == [("M", "m")]
    assert "listed on MEU" in d.end_user_status


def test_enhanced_review_noted_and_tariffs_do_not_decide() -> None:
    d = run(
        request(),
        [
            measure(
                "M",
                (clause("r", "enhanced-review"), "in-force"),
                (clause("t", "tariff"), "in-force"),
            )
        ],
    )
    assert d.outcome == "approved"
    assert d.notes == ["enhanced review: M/r (Ann. M)"]
    assert [f.clause_id for f in d.context] == ["t"]
    assert d.reasons == ["no clause requires a licence or forbids it"]


def test_unregistered_parties_reject() -> None:
    d = decide(request(), [], None, None, [])
    assert d.outcome == "rejected"
    assert d.reasons == [
        "exporter jl is not registered on 2025-12-10",
        "end user acme is not registered on 2025-12-10",
    ]
    assert d.end_user_status == "not registered on 2025-12-10"


def test_export_controls_bind_exports_from_their_issuer_only() -> None:
    """A US control does not decide a Chinese export; US and CN tariffs are context."""
    us_control = measure("us-ear", (clause("c1", "prohibited"), "in-force"), issuer="US")
    us_tariff = measure("us-tariff", (clause("t1", "tariff"), "in-force"), issuer="US")
    eu_tariff = measure("eu-tariff", (clause("t1", "tariff"), "in-force"), issuer="EU")
    d = run(request(), [us_control, us_tariff, eu_tariff])
    assert d.outcome == "approved"
    assert [f.measure_id for f in d.fired] == []
    assert [f.measure_id for f in d.context] == ["us-tariff"]  # the destination's tariff


LICENCE_REQUIRED = [measure("M", (clause("a", "licence-required", items=("1C902",)), "in-force"))]


def test_licence_covers_only_in_its_own_unit() -> None:
    """A kg cap does not cover tonnes (no conversion); the reason names both units."""
    d = run(request(quantity="20", unit="t"), LICENCE_REQUIRED, [licence("L")])
    assert d.outcome == "rejected"
    assert "L: caps 1C902.a in kg, not t (units are not converted)" in d.reasons[0]
    ok = run(request(quantity="20", unit="t"), LICENCE_REQUIRED, [licence("L", unit="t")])
    assert ok.outcome == "approved" and "(100 t remaining)" in ok.reasons[0]
    from ledger.projections.names import quantity_text

    assert quantity_text(Decimal("902448")) == "902,448"
    assert quantity_text(Decimal("1234.500")) == "1,234.5"


def test_licence_destination_mismatch() -> None:
    d = run(request(), LICENCE_REQUIRED, [licence("L", destinations=("DE",))])
    assert d.outcome == "rejected" and "L: does not cover destination US" in d.reasons[0]


def test_licence_item_covers_by_prefix() -> None:
    d = run(request(item="1C902.a"), LICENCE_REQUIRED, [licence("L", item="1C902")])
    assert d.outcome == "approved" and d.licence_id == "L"
    narrower = run(request(item="1C902"), LICENCE_REQUIRED, [licence("L", item="1C902.a")])
    assert narrower.outcome == "rejected" and "L: does not cover 1C902" in narrower.reasons[0]


def test_named_licence_held_by_another_exporter() -> None:
    d = run(request(licence_id="X"), LICENCE_REQUIRED, [licence("X", exporter="other")])
    assert d.outcome == "rejected"
    assert "licence X does not cover it (no licence X of jl on 2025-12-10)" in d.reasons[0]
