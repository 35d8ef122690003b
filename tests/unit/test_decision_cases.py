"""``ledger check`` case by case: which licence covers, caps at their edge, refusal reasons
and what they cite, suspended and foreign clauses, the end user's status line, requests
refused before deciding.  Pure: the world is built as resolved records (no services).

The general cases are in ``test_decisions.py``; these pin what mutation testing found
no unit test looked at (see docs/mutation.md).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import pytest

from ledger.errors import InputError, RuleViolation
from ledger.projections import records as rec
from ledger.projections.decisions import (
    END_OF_TIME,
    Decision,
    Fired,
    Request,
    application_events,
    check,
    decide,
    end_user_status,
    name_request_field,
    parse_quantity,
    refuse_future,
    validate,
)
from ledger.projections.query import Resolved
from ledger.times import reading_in
from tests.unit.test_decisions import USERS, D, clause, licence, measure, request, run

E2 = UUID(int=2)
LR = ("licence-required",)


def required(mid: str = "M", cid: str = "a", issuer: str = "CN") -> Resolved:
    return measure(
        mid, (clause(cid, "licence-required", items=("1C902",)), "in-force"), issuer=issuer
    )


def suspended_measure(
    mid: str,
    effect: str = "prohibited",
    *,
    until: str | None = "2026-11-27T00:00:00+00:00",
    effective_at: dt.datetime = D,
    issuer: str = "CN",
    items: tuple[str, ...] = (),
) -> Resolved:
    c = rec.ClauseRecord(clause_id="s", effect=effect, effective_at=effective_at, items=items)
    record = measure(mid, (c, "in-force"), issuer=issuer).record
    return Resolved(mid, record, [["suspended", None, until]])


# --- the end user's status line ------------------------------------------------------------


def vetted(
    dynamic: str,
    *,
    authority: str | None = "MOFCOM",
    until: dt.datetime | None = None,
    listings: tuple[rec.ListingRecord, ...] = (),
) -> Resolved:
    record = msgspec.structs.replace(
        USERS["acme"].record, vetting_authority=authority, vetting_until=until, listings=listings
    )
    return Resolved("acme", record, dynamic)


def listing(name: str, kind: str, at: dt.datetime) -> rec.ListingRecord:
    return rec.ListingRecord(
        list_name=name, list_kind=kind, authority="BIS", listed_at=at, event_id=E2
    )


@pytest.mark.parametrize(
    ("resolved", "line"),
    [
        (
            vetted("approved", until=dt.datetime(2026, 7, 1, tzinfo=dt.UTC)),
            "vetting approved by MOFCOM through 2026-06-30; class civil; on no list",
        ),
        (vetted("approved"), "vetting approved by MOFCOM; class civil; on no list"),
        (vetted("approved", authority=None), "vetting approved; class civil; on no list"),
        # The authority and the term are an approval's (or a refusal's authority): a
        # pending vetting names neither, a refusal no term.
        (
            vetted("rejected", until=dt.datetime(2026, 7, 1, tzinfo=dt.UTC)),
            "vetting rejected by MOFCOM; class civil; on no list",
        ),
        (
            vetted("pending", until=dt.datetime(2026, 7, 1, tzinfo=dt.UTC)),
            "vetting pending; class civil; on no list",
        ),
        (
            vetted(
                "approved",
                listings=(
                    listing("MEU", "military-end-user", D),
                    listing("Entity List", "restricted", D + dt.timedelta(days=1)),
                ),
            ),
            "vetting approved by MOFCOM; class civil; listed on MEU (military-end-user, since "
            "2025-12-10), Entity List (restricted, since 2025-12-11)",
        ),
    ],
)
def test_the_end_user_status_line(resolved: Resolved, line: str) -> None:
    assert end_user_status(resolved, D) == line


def test_days_are_read_in_the_reading_zone() -> None:
    """20:00 UTC on 10 December is 11 December in Beijing: the refusal and the status
    line name the day there."""
    late = D.replace(hour=20)
    r = Request(
        exporter="jl",
        end_user="acme",
        item="1C902.a",
        quantity=Decimal(1),
        unit="kg",
        destination="US",
        end_use="motors",
        date=late,
    )
    with reading_in(ZoneInfo("Asia/Shanghai")):
        d = decide(r, [], None, None, [])
        listed = end_user_status(
            vetted("approved", listings=(listing("MEU", "military-end-user", late),)), late
        )
    assert d.reasons == [
        "exporter jl is not registered on 2025-12-11",
        "end user acme is not registered on 2025-12-11",
    ]
    assert d.end_user_status == "not registered on 2025-12-11"
    assert "MEU (military-end-user, since 2025-12-11)" in listed


# --- who is registered, who is vetted ------------------------------------------------------


def test_an_unregistered_exporter_alone_rejects_and_the_end_user_is_still_described() -> None:
    d = decide(request(), [], USERS["acme"], None, [])
    assert (d.outcome, d.reasons) == ("rejected", ["exporter jl is not registered on 2025-12-10"])
    assert d.end_user == {
        "party_id": "acme",
        "vetting": "approved",
        "end_user_class": "civil",
        "listings": [],
    }
    assert d.notes == []


def test_an_unregistered_end_user_alone_rejects() -> None:
    d = decide(request(), [], None, USERS["jl"], [])
    assert (d.outcome, d.reasons) == ("rejected", ["end user acme is not registered on 2025-12-10"])
    assert d.end_user is None


def test_a_listed_end_user_is_described_as_military_with_its_lists() -> None:
    d = run(request(end_user="bolt"), [])
    assert d.end_user == {
        "party_id": "bolt",
        "vetting": "approved",
        "end_user_class": "military",
        "listings": ["MEU"],
    }


@pytest.mark.parametrize("vetting", ["pending", "rejected", "expired"])
def test_an_end_user_not_vetted_approved_is_noted_not_refused(vetting: str) -> None:
    d = decide(request(), [], vetted(vetting), USERS["jl"], [])
    assert d.outcome == "approved"
    assert d.notes == ["end user acme is not vetted-approved on 2025-12-10"]
    assert d.reasons == ["no control applies"]
    assert d.end_user is not None and d.end_user["vetting"] == vetting


def test_an_unknown_end_user_counts_as_civil_for_clauses() -> None:
    """No end-user record: clauses for military end users do not apply, those for
    civil ones do (and the request is refused for the unregistered end user)."""
    measures = [
        measure("M", (clause("mil", "prohibited", end_user_classes=("military",)), "in-force")),
        measure("N", (clause("civ", "enhanced-review", end_user_classes=("civil",)), "in-force")),
    ]
    d = decide(request(), measures, None, USERS["jl"], [])
    assert [f.clause_id for f in d.fired] == ["civ"]
    assert d.reasons == ["end user acme is not registered on 2025-12-10"]


# --- which clauses decide -----------------------------------------------------------------


def test_measures_are_read_in_id_order_and_every_blocking_clause_is_named() -> None:
    d = run(
        request(),
        [
            measure("Z", (clause("z", "denied-in-principle"), "in-force")),
            measure(
                "A",
                (clause("a2", "prohibited"), "in-force"),
                (clause("a1", "prohibited"), "in-force"),
            ),
        ],
    )
    assert d.outcome == "rejected"
    assert d.reasons == [
        "prohibited: A/a2 (Ann. A)",
        "prohibited: A/a1 (Ann. A)",
        "denied-in-principle: Z/z (Ann. Z)",
    ]
    assert d.fired == [
        Fired("A", "a2", "prohibited", "A", "Ann. A"),
        Fired("A", "a1", "prohibited", "A", "Ann. A"),
        Fired("Z", "z", "denied-in-principle", "Z", "Ann. Z"),
    ]


def test_a_measure_with_fewer_states_than_clauses_is_an_error_not_a_shorter_answer() -> None:
    record = measure(
        "M", (clause("a", "prohibited"), "in-force"), (clause("b", "prohibited"), "in-force")
    ).record
    with pytest.raises(ValueError):
        run(request(), [Resolved("M", record, [["in-force", None, None]])])


def test_a_suspended_clause_is_listed_with_its_end_and_the_clauses_after_it_still_decide() -> None:
    s = suspended_measure("M")
    record = msgspec.structs.replace(
        s.record, clauses=(*s.record.clauses, clause("p", "prohibited"))
    )
    d = run(request(), [Resolved("M", record, [*s.dynamic, ["in-force", None, None]])])
    assert d.suspended == [
        {
            "measure_id": "M",
            "clause_id": "s",
            "effect": "prohibited",
            "instrument": "Ann. M",
            "suspended_until": dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
            "never_in_force": False,
        }
    ]
    assert d.reasons == ["prohibited: M/p (Ann. M)"]
    assert [f.clause_id for f in d.fired] == ["p"]


def test_a_clause_suspended_with_no_end_says_so() -> None:
    d = run(request(), [suspended_measure("M", until=None)])
    assert d.suspended[0]["suspended_until"] is None
    assert (d.outcome, d.reasons, d.fired) == ("approved", ["no control applies"], [])


@pytest.mark.parametrize(
    ("effective_at", "never"),
    [
        (D, False),  # took effect at the very instant asked about
        (D + dt.timedelta(microseconds=1), True),  # would have taken effect a moment later
        (D - dt.timedelta(days=1), False),
    ],
)
def test_a_suspended_clause_never_in_force_by_the_date_is_marked(
    effective_at: dt.datetime, never: bool
) -> None:
    d = run(request(), [suspended_measure("M", effective_at=effective_at)])
    assert d.suspended[0]["never_in_force"] is never


def test_suspended_clauses_listed_are_those_that_would_decide_this_export() -> None:
    d = run(
        request(),
        [
            suspended_measure("A", "tariff"),  # not a control
            suspended_measure("B", items=("2805",)),  # another item
            suspended_measure("C", issuer="US"),  # another country's control
            suspended_measure("D", "enhanced-review"),
            suspended_measure("E", "licence-required"),
        ],
    )
    assert [(s["measure_id"], s["effect"]) for s in d.suspended] == [
        ("D", "enhanced-review"),
        ("E", "licence-required"),
    ]
    assert d.context == [] and d.fired == [] and d.notes == []


def test_with_no_exporter_every_suspended_control_is_listed() -> None:
    d = decide(request(), [suspended_measure("C", issuer="US")], USERS["acme"], None, [])
    assert [s["measure_id"] for s in d.suspended] == ["C"]


def test_a_foreign_control_is_skipped_but_its_tariff_for_the_destination_is_context() -> None:
    us = measure(
        "us",
        (clause("c", "prohibited"), "in-force"),
        (clause("t", "tariff"), "in-force"),
        (clause("f", "fee"), "in-force"),
        issuer="US",
    )
    d = run(request(), [us])
    assert (d.outcome, d.fired) == ("approved", [])
    assert [f.clause_id for f in d.context] == ["t", "f"]
    assert d.reasons == ["no control applies"]


def test_a_tariff_before_a_control_in_the_same_measure_does_not_hide_it() -> None:
    m = measure("M", (clause("t", "other"), "in-force"), (clause("p", "prohibited"), "in-force"))
    d = run(request(), [m])
    assert d.outcome == "rejected"
    assert [f.clause_id for f in d.context] == ["t"]
    assert d.reasons == ["prohibited: M/p (Ann. M)"]


def test_with_no_exporter_every_control_and_tariff_applies() -> None:
    eu = measure("eu", (clause("t", "tariff"), "in-force"), issuer="EU")
    us = measure("us", (clause("r", "enhanced-review"), "in-force"), issuer="US")
    d = decide(request(), [eu, us], USERS["acme"], None, [])
    assert [f.measure_id for f in d.context] == ["eu"]
    assert d.notes == ["enhanced review: us/r (Ann. us)"]
    assert [f.effect for f in d.fired] == ["enhanced-review"]


def test_a_foreign_enhanced_review_is_not_noted() -> None:
    us = measure("us", (clause("r", "enhanced-review"), "in-force"), issuer="US")
    d = run(request(), [us])
    assert (d.notes, d.fired, d.reasons) == ([], [], ["no control applies"])


def test_clauses_for_another_destination_or_item_do_not_apply() -> None:
    d = run(
        request(),
        [
            measure("M", (clause("a", "prohibited", destinations=("DE",)), "in-force")),
            measure("N", (clause("b", "tariff", items=("8505",)), "in-force")),
        ],
    )
    assert (d.outcome, d.fired, d.context) == ("approved", [], [])


# --- licences -----------------------------------------------------------------------------


def test_a_quantity_exactly_at_what_remains_is_covered_one_unit_past_is_not() -> None:
    exact = run(request(quantity="100"), [required()], [licence("L", remaining="100")])
    assert (exact.outcome, exact.licence_id, exact.remaining_before) == (
        "approved",
        "L",
        Decimal(100),
    )
    assert exact.reasons == ["licence required by M/a; covered by licence L (100 kg remaining)"]
    past = run(request(quantity="100.001"), [required()], [licence("L", remaining="100")])
    assert past.outcome == "rejected" and past.licence_id is None
    assert past.reasons == [
        "licence required by M/a; none covers it (L: only 100 kg of 1C902.a remain)"
    ]


def test_what_remains_is_written_with_thousands_separators() -> None:
    d = run(request(), [required()], [licence("L", remaining="1234.5")])
    assert d.reasons == ["licence required by M/a; covered by licence L (1,234.5 kg remaining)"]
    assert d.remaining_before == Decimal("1234.5")


def test_shipments_dated_after_the_request_count_against_the_cap() -> None:
    """At D 100 kg remain, but over the licence's life (a shipment dated later) only 40."""
    later = licence("L", remaining="40")
    d = decide(
        request(), [required()], USERS["acme"], USERS["jl"], [licence("L")], {"L": later.record}
    )
    assert d.outcome == "rejected"
    assert "(L: only 40 kg of 1C902.a remain)" in d.reasons[0]
    ok = decide(
        request(quantity="40"),
        [required()],
        USERS["acme"],
        USERS["jl"],
        [licence("L")],
        {"L": later.record},
    )
    assert (ok.outcome, ok.remaining_before) == ("approved", Decimal(40))


def test_the_first_licence_by_id_that_covers_is_cited() -> None:
    d = run(request(), [required()], [licence("L3"), licence("L1", remaining="10"), licence("L2")])
    assert (d.outcome, d.licence_id, d.remaining_before) == ("approved", "L2", Decimal(100))
    assert d.reasons == ["licence required by M/a; covered by licence L2 (100 kg remaining)"]


def test_licences_of_other_exporters_are_not_candidates() -> None:
    d = run(request(), [required()], [licence("L", exporter="other")])
    assert d.reasons == [
        "licence required by M/a; none covers it (jl holds no licence on 2025-12-10)"
    ]


def test_a_covering_licence_does_not_approve_what_a_prohibition_rejects() -> None:
    d = run(
        request(),
        [required("M"), measure("P", (clause("p", "prohibited"), "in-force"))],
        [licence("L")],
    )
    assert d.outcome == "rejected"
    assert d.licence_id == "L"
    assert d.reasons == ["prohibited: P/p (Ann. P)"]


def test_every_clause_requiring_a_licence_is_named() -> None:
    d = run(request(), [required("M", "a"), required("N", "b")], [])
    assert d.reasons == [
        "licence required by M/a, N/b; none covers it (jl holds no licence on 2025-12-10)"
    ]
    ok = run(request(), [required("M", "a"), required("N", "b")], [licence("L")])
    assert ok.reasons == ["licence required by M/a, N/b; covered by licence L (100 kg remaining)"]


def test_only_licences_naming_the_end_user_are_explained() -> None:
    d = run(
        request(),
        [required()],
        [licence("L1", remaining="10"), licence("L2", end_users=("other",))],
    )
    assert d.reasons == [
        "licence required by M/a; none covers it (L1: only 10 kg of 1C902.a remain)"
    ]


def test_no_licence_naming_the_end_user_says_so_without_the_others_gaps() -> None:
    d = run(request(), [required()], [licence("L1", end_users=("other",), remaining="1")])
    assert d.reasons == ["licence required by M/a; none covers it (no licence of jl names acme)"]


def test_a_named_licence_not_naming_the_end_user() -> None:
    d = run(request(licence_id="L1"), [required()], [licence("L1", end_users=("other",))])
    assert d.reasons == [
        "licence required by M/a; licence L1 does not cover it (no licence of jl names acme)"
    ]


def test_a_named_licence_is_the_only_candidate_even_when_another_covers() -> None:
    d = run(request(licence_id="L2"), [required()], [licence("L1"), licence("L2", remaining="1")])
    assert d.reasons == [
        "licence required by M/a; licence L2 does not cover it (L2: only 1 kg of 1C902.a remain)"
    ]
    missing = run(request(licence_id="L9"), [required()], [licence("L1")])
    assert missing.reasons == [
        "licence required by M/a; licence L9 does not cover it (no licence L9 of jl on 2025-12-10)"
    ]


@pytest.mark.parametrize(("count", "ellipsis"), [(5, False), (6, True)])
def test_at_most_five_licences_are_explained(count: int, ellipsis: bool) -> None:
    held = [licence(f"L{i}", remaining="1") for i in range(count)]
    d = run(request(), [required()], held)
    gaps = "; ".join(f"L{i}: only 1 kg of 1C902.a remain" for i in range(5))
    assert d.reasons == [
        f"licence required by M/a; none covers it ({gaps}{'; ...' if ellipsis else ''})"
    ]


def test_a_licence_required_clause_noted_for_review_too() -> None:
    d = run(
        request(),
        [
            measure(
                "M",
                (clause("a", "licence-required"), "in-force"),
                (clause("r", "enhanced-review"), "in-force"),
            )
        ],
        [licence("L")],
    )
    assert d.outcome == "approved"
    assert d.reasons == ["licence required by M/a; covered by licence L (100 kg remaining)"]
    assert d.notes == ["enhanced review: M/r (Ann. M)"]


# --- the answer as JSON -------------------------------------------------------------------


def test_a_decision_as_json() -> None:
    d = run(
        request(),
        [
            required(),
            measure("T", (clause("t", "tariff"), "in-force")),
            suspended_measure("S", until=None),
        ],
        [licence("L")],
    )
    assert d.to_dict() == {
        "outcome": "approved",
        "reasons": ["licence required by M/a; covered by licence L (100 kg remaining)"],
        "fired_clauses": [
            {
                "measure_id": "M",
                "clause_id": "a",
                "effect": "licence-required",
                "title": "M",
                "instrument": "Ann. M",
            }
        ],
        "context_clauses": [
            {
                "measure_id": "T",
                "clause_id": "t",
                "effect": "tariff",
                "title": "T",
                "instrument": "Ann. T",
            }
        ],
        "suspended_clauses": [
            {
                "measure_id": "S",
                "clause_id": "s",
                "effect": "prohibited",
                "instrument": "Ann. S",
                "suspended_until": None,
                "never_in_force": False,
            }
        ],
        "licence_id": "L",
        "remaining_before": Decimal(100),
        "end_user_status": "vetting approved by MOFCOM; class civil; on no list",
        "end_user": {
            "party_id": "acme",
            "vetting": "approved",
            "end_user_class": "civil",
            "listings": [],
        },
        "notes": [],
    }
    assert Decision("approved").to_dict()["end_user"] is None


# --- requests refused before deciding -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"destination": "USA"},
            "destination",
            "'USA' is not a country code (two capital letters, e.g. US)",
        ),
        (
            {"destination": "U"},
            "destination",
            "'U' is not a country code (two capital letters, e.g. US)",
        ),
        (
            {"destination": "us"},
            "destination",
            "'us' is not a country code (two capital letters, e.g. US)",
        ),
        (
            {"destination": "ÄB"},
            "destination",
            "'ÄB' is not a country code (two capital letters, e.g. US)",
        ),
        ({"unit": " "}, "unit", "unit must not be empty"),
        ({"unit": ""}, "unit", "unit must not be empty"),
        (
            {"exporter": " x"},
            "exporter",
            "must not begin or end with a space or an invisible character",
        ),
        ({"end_user": "a" * 201}, "end_user", "too long: at most 200 characters"),
        ({"item": ""}, "item", "must not be empty"),
        ({"unit": "k\tg"}, "unit", "contains the control character U+0009"),
        ({"end_use": "  "}, "end_use", "must not be blank"),
        ({"licence_id": ""}, "licence_id", "must not be empty"),
    ],
)
def test_requests_apply_could_not_record_are_refused(
    change: dict[str, Any], field: str, message: str
) -> None:
    r = Request(**{**vars(request()), **change})
    with pytest.raises(InputError) as caught:
        validate(r)
    assert (caught.value.field, caught.value.message) == (field, message)


@pytest.mark.parametrize(
    ("quantity", "rule", "message"),
    [
        ("0", "positive-quantity", "must be greater than 0, got 0"),
        (
            "1E-10",
            "quantity-precision",
            "0.0000000001 is out of range: "
            "quantities are below 10^15 with at most 9 decimal places",
        ),
    ],
)
def test_a_request_for_a_quantity_the_ledger_cannot_record_is_refused(
    quantity: str, rule: str, message: str
) -> None:
    with pytest.raises(RuleViolation) as caught:
        validate(request(quantity=quantity))
    assert (caught.value.rule, caught.value.field, caught.value.message) == (
        rule,
        "quantity",
        message,
    )


def test_a_valid_request_passes_with_or_without_a_licence() -> None:
    validate(request())
    validate(request(licence_id="L 1"))
    validate(request(quantity="0.000000001"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "'abc' is not a decimal number (digits, an optional point and exponent)"),
        ("NaN", "'NaN' is not a decimal number (digits, an optional point and exponent)"),
        ("  1", "'  1' is not a decimal number (digits, an optional point and exponent)"),
        (
            "1e40",
            "'1e40' is out of range: quantities are below 10^15 with at most 9 decimal places",
        ),
        ("0", "quantity must be greater than 0, got 0"),
        ("-1", "quantity must be greater than 0, got -1"),
        # Decimal text, but past what Decimal can hold.
        ("1e9999999999999999999999999", "'1e9999999999999999999999999' is not a decimal quantity"),
    ],
)
def test_quantities_typed_on_the_command_line_are_refused_in_words(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_quantity(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "value"), [("1.5", Decimal("1.5")), ("1E+3", Decimal(1000)), (".5", Decimal("0.5"))]
)
def test_quantities_typed_on_the_command_line(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


# --- answering from the views, and what apply records -------------------------------------


class RecordedWorld:
    """The records ``check`` reads, as ``Views.records`` hands them out: by kind, as of T,
    as known at K, narrowed by ids or by ref (a licence's exporter).  The stored and folded
    ``Views`` behind it are tested on both stores in tests/integration; here the question
    is only what ``check`` asks for and what it does with the answer."""

    def __init__(self, worlds: dict[tuple[dt.datetime, dt.datetime | None], list[Resolved]]):
        self.worlds = worlds

    def records(
        self,
        kind: str,
        as_of: dt.datetime,
        known_at: dt.datetime | None,
        *,
        ids: list[str] | None = None,
        ref: str | None = None,
    ) -> list[Resolved]:
        out = [
            r
            for r in self.worlds.get((as_of, known_at), [])
            if type(r.record) is rec.RECORD_TYPES[kind]
            and (ids is None or r.entity_id in ids)
            and (ref is None or rec.ref_of(r.record) == ref)
        ]
        return sorted(out, key=lambda r: r.entity_id)


K = dt.datetime(2025, 12, 20, tzinfo=dt.UTC)


def world(licences_at_d: list[Resolved], licences_ever: list[Resolved]) -> RecordedWorld:
    parties = [USERS["acme"], USERS["jl"], USERS["bolt"]]
    return RecordedWorld(
        {
            (D, K): [*parties, required(), *licences_at_d],
            (END_OF_TIME, K): licences_ever,
            # Known later: the clause was lifted, the end user's vetting refused and the
            # licence used up; none of it was known at K.
            (D, None): [
                vetted("rejected"),
                USERS["jl"],
                *(licence(r.entity_id, remaining="0") for r in licences_at_d),
            ],
        }
    )


def test_check_reads_the_world_as_of_the_date_as_known_at_k() -> None:
    v = world([licence("L")], [licence("L")])
    d = check(v, request(), K)  # type: ignore[arg-type]
    assert (d.outcome, d.licence_id) == ("approved", "L")
    assert d.reasons == ["licence required by M/a; covered by licence L (100 kg remaining)"]
    assert d.end_user_status == "vetting approved by MOFCOM; class civil; on no list"
    now_known = check(v, request(), None)  # type: ignore[arg-type]
    assert now_known.reasons == ["no control applies"]
    assert now_known.end_user_status.startswith("vetting rejected")


def test_check_counts_shipments_dated_after_the_request_against_the_cap() -> None:
    v = world([licence("L")], [licence("L", remaining="30")])
    d = check(v, request(), K)  # type: ignore[arg-type]
    assert d.reasons == [
        "licence required by M/a; none covers it (L: only 30 kg of 1C902.a remain)"
    ]


def test_check_reads_only_the_exporters_licences() -> None:
    other = licence("L0", exporter="other")
    v = world([other], [other])
    d = check(v, request(), K)  # type: ignore[arg-type]
    assert d.reasons == [
        "licence required by M/a; none covers it (jl holds no licence on 2025-12-10)"
    ]


def test_check_refuses_a_request_it_could_not_record() -> None:
    with pytest.raises(InputError) as caught:
        check(world([], []), request(destination="usa"), K)  # type: ignore[arg-type]
    assert caught.value.field == "destination"


@pytest.mark.parametrize(
    ("ahead", "refused"),
    [
        (dt.timedelta(minutes=5), False),  # clock skew between machines
        (dt.timedelta(minutes=5, microseconds=1), True),
    ],
)
def test_an_application_dated_in_the_future_is_refused(ahead: dt.timedelta, refused: bool) -> None:
    clock = D - ahead
    if not refused:
        refuse_future(request(), clock)
        return
    with pytest.raises(InputError) as caught:
        refuse_future(request(), clock)
    assert caught.value.field == "date"
    assert caught.value.message == (
        "an application cannot be dated in the future (2025-12-10T00:00:00+00:00); "
        "it is recorded when it is made"
    )


def test_what_apply_records_for_an_approved_application() -> None:
    d = run(
        request(),
        [required(), measure("R", (clause("r", "enhanced-review"), "in-force"))],
        [licence("L")],
    )
    submitted, decided = application_events("APP-1", request(quantity="12.50"), d)
    assert submitted == {
        "type": "ApplicationSubmitted",
        "entity_id": "APP-1",
        "exporter": "jl",
        "end_user": "acme",
        "item": "1C902.a",
        "quantity": "12.50",
        "unit": "kg",
        "destination": "US",
        "end_use": "motors",
        "effective_at": "2025-12-10T00:00:00+00:00",
    }
    assert decided == {
        "type": "ApplicationDecided",
        "entity_id": "APP-1",
        "outcome": "approved",
        "fired_clauses": [
            {"measure_id": "M", "clause_id": "a", "effect": "licence-required"},
            {"measure_id": "R", "clause_id": "r", "effect": "enhanced-review"},
        ],
        "end_user_status": "vetting approved by MOFCOM; class civil; on no list",
        "reasons": [
            "licence required by M/a; covered by licence L (100 kg remaining)",
            "enhanced review: R/r (Ann. R)",
        ],
        "effective_at": "2025-12-10T00:00:00+00:00",
        "licence_id": "L",
    }


def test_what_apply_records_names_the_licence_asked_for_and_the_summary() -> None:
    d = run(request(licence_id="L9"), [required()], [])
    submitted, decided = application_events("APP-2", request(licence_id="L9"), d, "for motors")
    assert (submitted["licence_id"], submitted["summary"]) == ("L9", "for motors")
    assert decided["outcome"] == "rejected" and "licence_id" not in decided
    bare, _ = application_events("APP-3", request(), d)
    assert "licence_id" not in bare and "summary" not in bare


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("entity_id", "application_id"),
        ("effective_at", "date"),
        ("licence_id", "licence_id"),
        ("quantity", "quantity"),
        (None, None),
    ],
)
def test_an_error_recording_the_application_names_the_request_field(
    field: str | None, named: str | None
) -> None:
    exc = RuleViolation("some-rule", "refused", field=field)
    exc.line = 2
    name_request_field(exc)
    assert (exc.field, exc.line) == (named, None)


def test_a_clause_for_the_destination_applies() -> None:
    d = run(
        request(),
        [measure("M", (clause("a", "prohibited", destinations=("DE", "US")), "in-force"))],
    )
    assert d.reasons == ["prohibited: M/a (Ann. M)"]


def test_a_clause_not_applying_does_not_hide_the_next_one_in_the_measure() -> None:
    m = measure(
        "M",
        (clause("x", "prohibited", items=("2805",)), "in-force"),
        (clause("y", "prohibited"), "revoked"),
        (clause("z", "prohibited"), "in-force"),
    )
    assert run(request(), [m]).reasons == ["prohibited: M/z (Ann. M)"]
