"""The shipped 2025 scenario: it imports cleanly and idempotently on both backends, keeps
the known-at axis honest, marks what is reported or illustrative, and folds to the
hand-checked answers of docs/scenario.md."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from ledger import scenario
from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.domain import state as st
from ledger.events import EVENT_TYPES_BY_NAME, named_parties
from ledger.scenario import build
from ledger.times import parse_query_time
from tests.conftest import Backend

EVENTS = scenario.load()
N = len(EVENTS)


def t(text: str) -> dt.datetime:
    """A query bound as the CLI reads it (bare date = end of that day UTC)."""
    return parse_query_time(text)


def by_id(entity_id: str, type_: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in EVENTS if e["entity_id"] == entity_id and (type_ is None or e["type"] == type_)
    ]


# --- the file itself --------------------------------------------------------------------


def test_shipped_file_is_generated_from_the_builder() -> None:
    assert scenario.read_text() == build.render(), (
        "scenario.jsonl is out of date: run python -m ledger.scenario.build"
    )
    assert scenario.scenario_path().read_text(encoding="utf-8") == scenario.read_text()


def test_ids_are_stable_unique_and_recorded_times_never_decrease() -> None:
    ids = [e["event_id"] for e in EVENTS]
    assert len(set(ids)) == N
    recorded = [dt.datetime.fromisoformat(e["recorded_at"]) for e in EVENTS]
    assert recorded == sorted(recorded)
    assert all(r.tzinfo is not None for r in recorded)
    assert build.build().lines() == build.build().lines()  # deterministic, uuid5 ids


def test_every_event_cites_a_source_known_by_its_recorded_day() -> None:
    for e in EVENTS:
        sources = e["sources"]
        assert sources, e["event_id"]
        for s in sources:
            assert s["reference"] and s["publisher"]
            assert s["status"] in ("official", "reported", "claim", "illustrative")
        recorded_day = e["recorded_at"][:10]
        basis = [
            s
            for s in sources
            if s["status"] == "illustrative" or s.get("published_on", "9999") <= recorded_day
        ]
        assert basis, f"{e['type']} {e['entity_id']}: no source available on {recorded_day}"


def test_illustrative_and_reported_markings() -> None:
    def statuses(e: dict[str, Any]) -> set[str]:
        return {s["status"] for s in e["sources"]}

    made_up = {e["entity_id"] for e in EVENTS if e["entity_id"].startswith("example-")}
    assert made_up == {
        "example-cn-magnet-trader",
        "example-us-ev-motors",
        "example-de-drives",
        "example-us-defence-systems",
    }
    for e in EVENTS:
        names = {e.get("exporter"), e.get("end_user"), e["entity_id"], *e.get("end_users", ())}
        if names & made_up or e["type"] in ("ApplicationSubmitted", "LicenceUsageRecorded"):
            assert "illustrative" in statuses(e), (e["type"], e["entity_id"])
        if e["type"] == "PartyRegistered" and e["entity_id"] in made_up:
            assert "(illustrative)" in e["name"]
    # The licences of 2025-12-02 are real facts with made-up terms, known from reports only:
    # the licences themselves are not published.
    for licence_id in scenario.GENERAL_LICENCES:
        (granted,) = by_id(licence_id, "LicenceGranted")
        assert statuses(granted) == {"reported", "illustrative"}
    # The end-of-November deadline rests on R1 (Discovery Alert, 2025-11-14): reported.
    with_deadline = [
        e for e in by_id(scenario.CN_GENERAL_LICENCES, "CommitmentPledged") if "due_by" in e
    ]
    assert len(with_deadline) == 1
    assert [
        s["publisher"] for s in with_deadline[0]["sources"] if "due_by" in s.get("note", "")
    ] == ["Discovery Alert"]
    reported_only = sorted(
        (e["type"], e["entity_id"]) for e in EVENTS if statuses(e) == {"reported"}
    )
    assert reported_only == [
        ("EventRetracted", scenario.CN_GENERAL_LICENCES),
        *(
            ("PartyRegistered", maker)
            for maker in ("jl-mag", "ningbo-yunsheng", "zhong-ke-san-huan")
        ),
    ]
    # Every measure rests on the instrument itself, not only on reports of it.
    assert not [
        e for e in EVENTS if e["type"] == "MeasurePublished" and "official" not in statuses(e)
    ]


# The issuing governments and their bodies: the only publishers of an `official` source.
GOVERNMENT_PUBLISHERS = (
    "MOFCOM",
    "GAC",
    "MOST",
    "NPC Standing Committee",
    "State Council",
    "Ministry of Transport of the PRC",
    "The White House",
    "US Department of Commerce, BIS",
    "Office of the US Trade Representative",
    "and other PRC authorities",
)


def test_official_means_the_governments_own_text() -> None:
    for e in EVENTS:
        for s in e["sources"]:
            if s["status"] != "official":
                continue
            publishers = [p.strip() for p in s["publisher"].split(";")]
            assert all(p.startswith(GOVERNMENT_PUBLISHERS) for p in publishers), (
                e["entity_id"],
                s,
            )
    # News of an official act is reported: Reuters, Xinhua, law firms, translations.
    news = [
        s
        for e in EVENTS
        for s in e["sources"]
        if any(w in s["publisher"] for w in ("Reuters", "Xinhua", "Nasdaq", "Dawn", "PortNews"))
    ]
    assert news and {s["status"] for s in news} == {"reported"}


def test_no_internal_wording_and_the_reports_are_named() -> None:
    text = scenario.read_text().lower()
    assert "seed" not in text
    r1 = [s for e in EVENTS for s in e["sources"] if s["publisher"] == "Discovery Alert"]
    # Reported for the deadline; a claim where it relays what will happen on 1 December.
    assert r1 and {(s["published_on"], s["status"]) for s in r1} == {
        ("2025-11-14", "reported"),
        ("2025-11-14", "claim"),
    }
    assert {s["reference"] for s in r1} == {
        "Understanding the Current Diplomatic Impasse in China-US Rare Earth Deal Negotiations"
    }


def test_effective_times_keep_their_offsets() -> None:
    (cn_tariffs,) = [
        e
        for e in by_id("cn-counter-tariff-34pct", "ClauseSuspended")
        if e["effective_at"].startswith("2025-11-10")
    ]
    assert cn_tariffs["effective_at"] == "2025-11-10T13:01:00+08:00"
    assert cn_tariffs["until"] == "2026-11-10T13:01:00+08:00"
    (affiliates,) = by_id("us-bis-affiliates-rule", "ClauseSuspended")
    assert (affiliates["effective_at"], affiliates["until"]) == (
        "2025-11-10T00:00:00-05:00",
        "2026-11-10T00:00:00-05:00",
    )
    ann61 = {e["clause_id"]: e for e in by_id(scenario.ANN61, "ClauseSuspended")}
    assert set(ann61) == {"cl.1.1", "cl.1.2", "cl.1.3", "cl.2", "cl.3"}
    assert {e["until"] for e in ann61.values()} == {"2026-11-11T00:00:00+08:00"}


# --- importing it -----------------------------------------------------------------------


def test_imports_cleanly_and_idempotently(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    first = ledger.append_objects(scenario.load(), backfill=True)
    assert len(first.appended) == N and not first.duplicates
    again = ledger.append_objects(scenario.load(), backfill=True)
    assert not again.appended and len(again.duplicates) == N
    assert ledger.head() == max(o.position for o in first.appended)


def test_cli_import_and_known_at(backend: Backend) -> None:
    env = backend.env()
    path = str(scenario.scenario_path())

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result

    body = json.loads(run("import", "--backfill", path, "--output", "json").output)
    assert (body["appended"], body["duplicates"]) == (N, 0)
    body = json.loads(run("import", "--backfill", path, "--output", "json").output)
    assert (body["appended"], body["duplicates"]) == (0, N)

    def logged(known_at: str) -> list[dict[str, Any]]:
        rows = json.loads(run("log", "--known-at", known_at, "--output", "json").output)
        return [row["event"] for row in rows]

    nov14 = logged("2025-11-14")
    assert not [e for e in nov14 if e["type"] == "LicenceGranted"]
    assert all(e["recorded_at"] <= "2025-11-14T23:59:59.999999Z" for e in nov14)
    assert {e["entity_id"] for e in nov14 if e["type"] == "ClauseSuspended"} >= {
        "cn-ann-2025-61",
        "cn-ann-2024-46",
        "us-bis-affiliates-rule",
    }
    dec5 = logged("2025-12-05")
    assert sorted(e["entity_id"] for e in dec5 if e["type"] == "LicenceGranted") == sorted(
        scenario.GENERAL_LICENCES
    )
    # The retracted first record of the general-licence pledge is gone from both views.
    pledges = [
        e
        for e in dec5
        if e["entity_id"] == scenario.CN_GENERAL_LICENCES and e["type"] == "CommitmentPledged"
    ]
    assert len(pledges) == 1 and pledges[0]["due_by"] == "2025-12-01T00:00:00Z"

    # Facts that no official source backs, only reports (sources.md): the deadline's
    # retraction (R1, Discovery Alert), and the first general licences and their holders
    # (Reuters; the licences are not published).  Made-up facts stand on 'illustrative'.
    def standing(*statuses: str) -> list[tuple[str, str]]:
        flags = [arg for s in statuses for arg in ("--source-status", s)]
        rows = json.loads(run("log", *flags, "--output", "json").output)
        return sorted((row["event"]["type"], row["event"]["entity_id"]) for row in rows)

    on_reports = [
        ("EventRetracted", scenario.CN_GENERAL_LICENCES),
        *(("LicenceGranted", licence) for licence in scenario.GENERAL_LICENCES),
        *(
            ("PartyRegistered", maker)
            for maker in ("jl-mag", "ningbo-yunsheng", "zhong-ke-san-huan")
        ),
    ]
    assert standing("reported") == sorted(on_reports)
    made_up = standing("illustrative")
    assert len(made_up) == 4 + 3 + 2 + 3 + 1  # registered, classified, vetted, applied, shipped
    assert standing("reported", "illustrative") == sorted(on_reports + made_up)
    # The claims of November 2025 (the VEU plan, the 1 December auto-rejection) stand on
    # claims: recorded as what was said, not as rules.
    claims = standing("claim")
    assert claims == sorted(
        [("ClaimReported", scenario.VEU_PLAN), ("ClaimReported", scenario.AUTO_REJECTION_CLAIM)]
    )
    retracted = 1  # the first record of the general-licence pledge
    assert len(standing("official")) == N - retracted - len(on_reports) - len(made_up) - 2
    bad = CliRunner().invoke(cli, ["log", "--source-status", "rumour"], env=env)
    assert bad.exit_code == 2 and "rumour" in bad.output


# --- the hand-checked answers of docs/scenario.md ---------------------------------------


@pytest.fixture
def imported(make_ledger: Callable[..., Ledger]) -> Callable[..., Any]:
    """``state(kind, id, as_of, known_at)`` over the imported scenario."""
    ledger = make_ledger()
    ledger.append_objects(scenario.load(), backfill=True)

    def state(kind: str, entity_id: str, as_of: str, known_at: str = "now") -> Any:
        entity = ledger.entity(kind, entity_id)
        assert entity is not None, entity_id
        return st.state_at(entity.events, t(as_of), t(known_at))

    return state


def test_measures_in_force_on_2025_11_14(imported: Callable[..., Any]) -> None:
    at = "2025-11-14"

    def clause_status(measure_id: str, clause_id: str) -> tuple[str, str | None]:
        measure = imported("measure", measure_id, at, at)
        clause = measure.clauses[clause_id]
        suspension = clause.suspension_at(t(at))
        return clause.status_at(t(at)), suspension.end.isoformat() if suspension else None

    assert clause_status(scenario.ANN46, "cl.1") == ("in-force", None)
    assert clause_status(scenario.ANN46, "cl.2") == ("suspended", "2026-11-28T00:00:00+08:00")
    assert clause_status(scenario.ANN46, "cl.2-graphite")[0] == "suspended"
    assert clause_status(scenario.ANN18, "cl.1") == ("in-force", None)
    for clause_id in ("cl.1.1", "cl.1.2", "cl.1.3", "cl.2", "cl.3"):
        assert clause_status(scenario.ANN61, clause_id) == (
            "suspended",
            "2026-11-11T00:00:00+08:00",
        )
    # Ann.61's 0.1% rule was suspended before it ever took effect, and resumes with the
    # scheduled end of the suspension (nothing later is recorded).
    ann61 = imported("measure", scenario.ANN61, "now")
    de_minimis = ann61.clauses["cl.1.1"]
    # (Bare dates are the end of a UTC day, i.e. 07:59 the next morning in Beijing.)
    assert de_minimis.status_at(t("2025-11-06T23:59:59+08:00")) == "not-yet-effective"
    assert de_minimis.status_at(t("2025-12-01")) == "suspended"
    assert de_minimis.status_at(t("2026-11-10T23:59:59+08:00")) == "suspended"
    assert de_minimis.status_at(t("2026-11-11T00:00:00+08:00")) == "in-force"
    assert clause_status("us-bis-affiliates-rule", "cl.1") == (
        "suspended",
        "2026-11-10T00:00:00-05:00",
    )
    assert clause_status("us-reciprocal-tariff-cn", "cl.2")[0] == "suspended"
    assert clause_status("us-ieepa-fentanyl-tariff-increase", "cl.1")[0] == "revoked"
    assert clause_status("cn-ag-counter-tariffs", "cl.1")[0] == "revoked"
    assert clause_status("cn-special-port-fees", "cl.1") == (
        "suspended",
        "2026-11-10T13:01:00+08:00",
    )


def test_general_licence_commitment_over_time(imported: Callable[..., Any]) -> None:
    gl = scenario.CN_GENERAL_LICENCES
    # As known on 2025-11-10 (fact sheet only): a unilateral claim without a deadline.
    early = imported("commitment", gl, "2025-11-10", "2025-11-10")
    assert early.unilateral and early.due_by is None
    assert early.status_at(t("2025-11-10")) == "pledged"
    # From 2025-11-14 the reported deadline is known.
    nov14 = imported("commitment", gl, "2025-11-14", "2025-11-14")
    assert nov14.due_by == dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
    assert nov14.status_at(t("2025-11-14")) == "pledged"
    assert nov14.reciprocates == (scenario.US_AFFILIATES_SUSPENSION,)
    # Past due on 2025-12-01, whatever is known later (the licences date from 12-02).
    assert (
        imported("commitment", gl, "2025-12-01", "2025-12-01").status_at(t("2025-12-01"))
        == "overdue"
    )
    assert imported("commitment", gl, "2025-12-01").status_at(t("2025-12-01")) == "overdue"
    # Known on 12-03 the licences exist but MOFCOM has not yet confirmed: still overdue.
    assert (
        imported("commitment", gl, "2025-12-03", "2025-12-03").status_at(t("2025-12-03"))
        == "overdue"
    )
    dec5 = imported("commitment", gl, "2025-12-05", "2025-12-05")
    assert dec5.status_at(t("2025-12-05")) == "partially-implemented"
    assert dec5.unilateral
    assert dec5.first_implemented_at() == dt.datetime(2025, 12, 2, tzinfo=dt.UTC)


def test_busan_commitments_and_reciprocity(imported: Callable[..., Any]) -> None:
    at = "2025-11-14"
    expected = {
        "busan-us-fentanyl-tariff-cut": ("US", (), "2025-11-10T00:01:00-05:00"),
        "busan-us-reciprocal-tariff-suspension": ("US", (), "2025-11-10T00:01:00-05:00"),
        "busan-us-affiliates-rule-suspension": ("US", (), "2025-11-10T00:00:00-05:00"),
        "busan-us-port-fees-suspension": ("US", (), "2025-11-10T00:01:00-05:00"),
        "busan-cn-counter-tariff-suspension": (
            "CN",
            ("busan-us-reciprocal-tariff-suspension",),
            "2025-11-10T13:01:00+08:00",
        ),
        "busan-cn-ag-tariff-removal": (
            "CN",
            ("busan-us-fentanyl-tariff-cut",),
            "2025-11-10T13:01:00+08:00",
        ),
        "busan-cn-october-measures-suspension": (
            "CN",
            ("busan-us-affiliates-rule-suspension",),
            "2025-11-07T00:00:00+08:00",
        ),
        "busan-cn-port-fees-suspension": (
            "CN",
            ("busan-us-port-fees-suspension",),
            "2025-11-10T13:01:00+08:00",
        ),
    }
    for commitment_id, (obligor, reciprocates, since) in expected.items():
        c = imported("commitment", commitment_id, at, at)
        assert (c.obligor, c.reciprocates, c.unilateral) == (obligor, reciprocates, False)
        assert c.status_at(t(at)) == "implemented", commitment_id
        assert c.first_implemented_at().isoformat() == since, commitment_id
    # The tariff and port-fee pairs took effect at the same instant on both sides.
    us = imported("commitment", "busan-us-port-fees-suspension", at, at)
    cn = imported("commitment", "busan-cn-port-fees-suspension", at, at)
    assert us.first_implemented_at() == cn.first_implemented_at()
    # Geneva's truce ended when Busan's continuation began.
    for side in ("geneva-us-tariff-suspension", "geneva-cn-tariff-suspension"):
        c = imported("commitment", side, at, at)
        assert c.status_at(t("2025-06-01")) == "implemented"
        assert c.status_at(t(at)) == "implementation-ended"
    assert imported("agreement", scenario.GENEVA, at, at).status_at(t(at)) == "expired"
    assert imported("agreement", scenario.BUSAN, at, at).status_at(t(at)) == "in-force"


def test_licences_and_applications_on_2025_12_05(imported: Callable[..., Any]) -> None:
    at = "2025-12-05"
    jl = imported("licence", "cn-gl-2025-jl-mag-001", at, at)
    assert jl.status_at(t(at)) == "active" and jl.licence_type == "general"
    assert jl.items["1C905.a"].remaining == 19000
    assert jl.valid_until == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    for licence_id in scenario.GENERAL_LICENCES:
        licence = imported("licence", licence_id, at, at)
        assert licence.status_at(t(at)) == "active"
        assert imported("licence", licence_id, "2025-12-01") is None  # granted 12-02
    military = imported("application", scenario.MILITARY_APPLICATION_DEC1, at, at)
    assert military.decision is None  # decided by the projections, not recorded here
    end_user = imported("party", military.submitted.end_user, "2025-12-01")
    assert end_user.is_military() and military.submitted.destination == "US"
    civil = imported("application", scenario.CIVIL_APPLICATION_DEC1, at, at)
    assert civil.submitted.licence_id is None
    licensed = imported("application", scenario.LICENSED_APPLICATION_DEC3, at, at)
    assert licensed.submitted.licence_id == "cn-gl-2025-jl-mag-001"


def test_named_parties_cover_the_real_magnet_makers() -> None:
    named: set[str] = set()
    for e in EVENTS:
        cls = EVENT_TYPES_BY_NAME[e["type"]]
        if e["type"] == "EventRetracted":
            continue
        named |= named_parties(msgspec.convert(e, cls))
    assert {"jl-mag", "ningbo-yunsheng", "zhong-ke-san-huan", "US", "CN"} <= named


# --- the auditors' views on the scenario (projections) ----------------------------------


@pytest.fixture
def views(backend: Backend) -> Callable[..., Any]:
    """Run a view command with ``--output json`` on a ledger holding the scenario."""
    env = backend.env()

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, [*args, "--output", "json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    run("import", "--backfill", str(scenario.scenario_path()))
    run.env = env  # type: ignore[attr-defined]
    return run


def test_findings_report_the_missed_deadline_and_the_unilateral_claim(
    views: Callable[..., Any],
) -> None:
    gl = f"commitment:{scenario.CN_GENERAL_LICENCES}"

    def findings(at: str) -> dict[tuple[str, str], dict[str, Any]]:
        body = views("findings", "--as-of", at, "--known-at", at)
        return {(f["kind"], f["subject"]): f for f in body["findings"]}

    dec1 = findings("2025-12-01")
    assert dec1[("commitment-overdue", gl)]["details"]["due_by"] == "2025-12-01T00:00:00Z"
    one_sided = dec1[("one-sided-implementation", gl)]
    assert "busan-us-affiliates-rule-suspension" in one_sided["summary"]
    assert dec1[("commitment-overdue", gl)]["details"]["days_overdue"] == 1  # due Nov 30
    dec5 = findings("2025-12-05")
    late = dec5[("late-implementation", gl)]
    # Due by the end of November (UTC: the reports name no zone), first licences reported
    # for 2 December: 2 days late as people count (1 December would be 1 day).
    assert late["details"] == {
        "due_by": "2025-12-01T00:00:00Z",
        "implemented_at": "2025-12-02T00:00:00Z",
        "days_late": 2,
        "hours_late": 24.0,
    }
    assert "missing the deadline (2025-11-30) by 2 days" in late["summary"]
    # In Beijing's calendar the same instants are due through 1 December (08:00 Beijing)
    # and met on 2 December (08:00): 1 day late.
    body = views("--tz", "Asia/Shanghai", "findings", "--as-of", "2025-12-05")
    assert body["tz"] == "Asia/Shanghai"
    (late_beijing,) = [
        f for f in body["findings"] if (f["kind"], f["subject"]) == ("late-implementation", gl)
    ]
    assert late_beijing["details"]["days_late"] == 1
    assert "missing the deadline (2025-12-01) by 1 day" in late_beijing["summary"]
    assert dec5[("unilateral-claim", gl)]["details"]["asserted_by"] == ["US"]
    assert ("commitment-overdue", gl) not in dec5  # partially implemented by then
    # No other Busan pledge is flagged: both sides implemented the rest.
    # (Ahead of time, the general licences outlast the Affiliates-rule suspension: see
    # test_misaligned_ends_and_facts_resting_on_reports.)
    assert {s for k, s in dec5 if s.startswith("commitment:busan-") and k != "misaligned-ends"} == {
        gl
    }
    nov14 = findings("2025-11-14")
    assert ("commitment-overdue", gl) not in nov14 and ("unilateral-claim", gl) in nov14


def test_misaligned_ends_and_facts_resting_on_reports(views: Callable[..., Any]) -> None:
    """From the instruments: BIS suspends the Affiliates rule through 9 November 2026
    (ends 2026-11-10 00:00 EST = 05:00Z); Ann.70 suspends the October measures until 10
    November 2026 Beijing (ends 2026-11-11 00:00 +08:00 = 2026-11-10 16:00Z); the first
    general licences (Reuters, 2 December 2025) run one year, to 2026-12-02 00:00Z.  In
    UTC days the Affiliates pair ends on 10 November on both sides (no finding) while
    the licences outlast the Affiliates suspension by 21 days (10 Nov -> 1 Dec); in
    Washington's days the Affiliates suspension ends on the 9th, Ann.70's on the 10th."""
    us = scenario.US_AFFILIATES_SUSPENSION

    def misaligned(*tz: str) -> dict[frozenset[str], dict[str, Any]]:
        body = views(*tz, "findings", "--kind", "misaligned-ends", "--as-of", "2025-12-05")
        return {frozenset(f["details"]["commitments"]): f for f in body["findings"]}

    utc = misaligned()
    gl = utc.pop(frozenset({us, scenario.CN_GENERAL_LICENCES}))
    assert not utc
    assert gl["details"]["gap_days"] == 21 and gl["subject"] == f"commitment:{us}"
    assert gl["details"]["ends"] == {
        us: "2026-11-10T00:00:00-05:00",
        scenario.CN_GENERAL_LICENCES: "2026-12-02T00:00:00Z",
    }
    assert "through 2026-11-10" in gl["summary"] and "through 2026-12-01" in gl["summary"]
    washington = misaligned("--tz", "America/New_York")
    october = washington[frozenset({us, scenario.CN_OCTOBER_SUSPENSION})]
    assert october["details"]["gap_days"] == 1 and october["details"]["gap_hours"] == 11.0
    assert washington[frozenset({us, scenario.CN_GENERAL_LICENCES})]["details"]["gap_days"] == 22
    # Before the licences, as of 14 November: in UTC days every Busan pair ends together.
    nov14 = views("findings", "--kind", "misaligned-ends", "--as-of", "2025-11-14")
    assert nov14["findings"] == []

    body = views("findings", "--kind", "rests-on-reports", "--as-of", "2025-12-05")
    on_reports = sorted(f["subject"] for f in body["findings"])
    assert on_reports == sorted(
        [
            f"commitment:{scenario.CN_GENERAL_LICENCES}",  # the deadline's retraction (R1)
            *(f"licence:{licence}" for licence in scenario.GENERAL_LICENCES),
            *(f"party:{maker}" for maker in ("jl-mag", "ningbo-yunsheng", "zhong-ke-san-huan")),
        ]
    )
    assert all(f["details"]["standing"] == "reported" for f in body["findings"])


def test_reported_claims_are_held_as_claims(views: Callable[..., Any]) -> None:
    """R1 (Discovery Alert, 14 November 2025) relays a claim that military-use applications
    are rejected automatically from 1 December 2025; the WSJ (11 November) reports China
    weighing a VEU regime.  Both are claims, unverified.  Set against the instruments: on
    1 December 2025 (Beijing) Ann.70 suspends every clause of Ann.61, whose Art.1(1)/(2)
    were to apply from that day and so never took effect."""
    body = views(
        "--tz", "Asia/Shanghai", "findings", "--kind", "unverified-claim", "--as-of", "2025-12-05"
    )
    found = {f["subject"]: f for f in body["findings"]}
    assert set(found) == {f"claim:{scenario.VEU_PLAN}", f"claim:{scenario.AUTO_REJECTION_CLAIM}"}
    auto = found[f"claim:{scenario.AUTO_REJECTION_CLAIM}"]
    assert auto["details"]["takes_effect_at"] == "2025-12-01T00:00:00+08:00"
    assert auto["details"]["reported_by"] == ["Discovery Alert", "WION"]
    held = {
        row["clause_id"]: (row["status"], row["never_in_force"])
        for row in auto["details"]["held"][f"measure:{scenario.ANN61}"]
    }
    assert held == {
        "cl.1.1": ("suspended", True),
        "cl.1.2": ("suspended", True),
        "cl.1.3": ("suspended", False),
        "cl.2": ("suspended", False),
        "cl.3": ("suspended", False),
    }
    assert "cl.1.1 suspended (never in force)" in auto["summary"]
    # Known on 12 November only the VEU report was in; nothing was contradicted.
    nov12 = views("findings", "--kind", "unverified-claim", "--kind", "claim-contradicted",
                  "--as-of", "2025-11-12", "--known-at", "2025-11-12")  # fmt: skip
    assert [f["subject"] for f in nov12["findings"]] == [f"claim:{scenario.VEU_PLAN}"]
    assert not views("findings", "--kind", "claim-contradicted", "--as-of", "2025-12-05")[
        "findings"
    ]


def test_asymmetry_of_the_busan_pairs(views: Callable[..., Any]) -> None:
    def pairs(at: str) -> dict[frozenset[str], dict[str, Any]]:
        body = views("asymmetry", "--as-of", at, "--known-at", at)
        return {frozenset(p["commitments"]): p for p in body["pairs"]}

    gl_pair = frozenset({scenario.CN_GENERAL_LICENCES, scenario.US_AFFILIATES_SUSPENSION})
    october_pair = frozenset({scenario.CN_OCTOBER_SUSPENSION, scenario.US_AFFILIATES_SUSPENSION})
    nov14 = pairs("2025-11-14")
    assert len([p for p in nov14.values() if p["agreement_id"] == scenario.BUSAN]) == 5
    gl = nov14[gl_pair]
    assert (gl["state"], gl["implemented_first"], gl["other_pending"]) == ("one-sided", "US", True)
    # The Affiliates rule suspended from 10 November (00:00 EST = 05:00Z): one-sided on
    # 10, 11, 12, 13 and 14 November: 4 days from the 10th to the 14th.
    assert (gl["one_sided_since"], gl["one_sided_days"]) == ("2025-11-10T00:00:00-05:00", 4)
    assert gl["one_sided_hours"] == 115.0  # 05:00Z on the 10th to the end of the 14th UTC
    # Ann.70 suspends the October measures from 7 November 00:00 Beijing (6 November
    # 16:00Z); the US step follows on 10 November 05:00Z.  In UTC days 6 -> 10: 4 days;
    # in Beijing's calendar 7 -> 10 (13:00 Beijing): 3 days.
    october = nov14[october_pair]
    assert (october["implemented_first"], october["one_sided_days"]) == ("CN", 4)
    beijing = {
        frozenset(p["commitments"]): p
        for p in views(
            "--tz",
            "Asia/Shanghai",
            "asymmetry",
            "--as-of",
            "2025-11-14",
            "--known-at",
            "2025-11-14",
        )["pairs"]
    }
    assert beijing[october_pair]["one_sided_days"] == 3
    assert beijing[gl_pair]["one_sided_days"] == 4  # 10 November 13:00 to 14 November
    for commitments, pair in nov14.items():
        if pair["agreement_id"] == scenario.BUSAN and scenario.US_AFFILIATES_SUSPENSION not in (
            commitments
        ):
            assert pair["state"] == "both-implemented" and pair["one_sided_days"] == 0
    # One-sided from 10 November to the first general licences of 2 December: 22 days
    # (not the 21 whole days and 19 hours that elapsed).
    dec5 = pairs("2025-12-05")[gl_pair]
    assert dec5["one_sided_days"] == 22 and "partially-implemented" in dec5["statuses"]
    assert dec5["one_sided_hours"] == 21 * 24 + 19


def test_dates_in_the_issuers_calendar(backend: Backend) -> None:
    """MOFCOM suspends Ann.46 Art.2 "until 27 November 2026" (Beijing): the suspension ends
    at 2026-11-28T00:00+08:00.  Read in Beijing days, 27 November is still suspended and
    the table says "through 2026-11-27"; the UTC day 27 November ends at 07:59 on the 28th
    in Beijing, after the end.  BIS suspends the Affiliates rule through 9 November 2026
    (ends 2026-11-10T00:00 EST): through 2026-11-09 in Washington's days."""
    env = backend.env()
    run_ = CliRunner().invoke
    assert (
        run_(cli, ["import", "--backfill", str(scenario.scenario_path())], env=env).exit_code == 0
    )

    def status(*args: str, env_: dict[str, str] | None = None) -> dict[tuple[str, str], Any]:
        result = run_(cli, [*args, "-o", "json"], env=env_ or env)
        assert result.exit_code == 0, result.output
        body = json.loads(result.output)
        return {(c["measure_id"], c["clause_id"]): c for c in body["clauses"]} | {
            ("tz", ""): body["tz"]
        }

    art2 = (scenario.ANN46, "cl.2")
    beijing = status("--tz", "Asia/Shanghai", "measures", "--as-of", "2026-11-27")
    assert beijing[art2]["status"] == "suspended" and beijing[("tz", "")] == "Asia/Shanghai"
    utc = status("measures", "--as-of", "2026-11-27")
    assert utc[art2]["status"] == "in-force" and utc[("tz", "")] == "UTC"
    # LEDGER_TZ does what --tz does.
    from_env = status(
        "measures", "--as-of", "2026-11-27", env_={**env, "LEDGER_TZ": "Asia/Shanghai"}
    )
    assert from_env[art2]["status"] == "suspended"
    assert (
        status("--tz", "Asia/Shanghai", "measures", "--as-of", "2026-11-28")[art2]["status"]
        == "in-force"
    )

    def table(*args: str) -> str:
        result = run_(cli, [*args, "--as-of", "2025-11-14", "--known-at", "2025-11-14"], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    def line(text: str, measure: str, clause: str) -> set[str]:
        """The words of the clause's "when" (from -o csv: the table's cells wrap)."""
        import csv
        import io

        rows = csv.DictReader(io.StringIO(text))
        (row,) = [r for r in rows if (r["measure_id"], r["clause_id"]) == (measure, clause)]
        return set(row["when"].split())

    assert "Days are Asia/Shanghai days." in table("--tz", "Asia/Shanghai", "measures")
    suspended = ("measures", "--status", "suspended", "-o", "csv")
    in_beijing = table("--tz", "Asia/Shanghai", *suspended)
    assert {"through", "2026-11-27"} <= line(in_beijing, scenario.ANN46, "cl.2")
    in_utc = table(*suspended)
    assert {"through", "2026-11-27"} <= line(in_utc, scenario.ANN46, "cl.2")  # 16:00Z on the 27th
    affiliates = "us-bis-affiliates-rule"
    in_washington = table("--tz", "America/New_York", *suspended)
    assert {"through", "2026-11-09"} <= line(in_washington, affiliates, "cl.1")
    assert {"through", "2026-11-10"} <= line(in_utc, affiliates, "cl.1")
    # Ann.70 suspends the October measures "until 10 November 2026" (Beijing).
    # Ann.55 was to apply from 8 November 2025; Ann.70 suspended it from the 7th.
    assert line(in_beijing, "cn-ann-2025-55", "cl.1") == {
        "through",
        "2026-11-10,",
        "never",
        "in",
        "force",
    }
    # A zone that does not exist is a usage error, one line, nothing else.
    bad = run_(cli, ["--tz", "Asia/Atlantis", "measures"], env=env)
    assert bad.exit_code == 2 and "unknown time zone 'Asia/Atlantis'" in bad.output
    assert "Traceback" not in bad.output
    bad_json = run_(cli, ["--tz", "Nowhere", "measures", "-o", "json"], env=env)
    assert bad_json.exit_code == 2 and json.loads(bad_json.output)["field"] == "--tz"


def test_never_in_force_and_in_force_spans(views: Callable[..., Any]) -> None:
    """From the instruments: Ann.46 (3 December 2024, on publication) was in force until
    MOFCOM suspended Art.2 from 9 November 2025 (Beijing): 3 December 2024 through 8
    November 2025, 341 Beijing days (29 + 304 + 8).  Ann.61 Art.1(3), 2 and 3 applied from
    its publication on 9 October 2025 until Ann.70 suspended them from 7 November: through
    6 November, 29 days.  Ann.61 Art.1(1) and 1(2) were to apply from 1 December 2025 and
    were suspended on 7 November: never in force."""
    on_nov14 = ("--as-of", "2025-11-14", "--known-at", "2025-11-14")

    def clauses(*args: str) -> dict[tuple[str, str], dict[str, Any]]:
        body = views(
            *args, "measures", "--measure", scenario.ANN46, "--measure", scenario.ANN61, *on_nov14
        )
        return {(c["measure_id"], c["clause_id"]): c for c in body["clauses"]}

    beijing = clauses("--tz", "Asia/Shanghai")
    art2 = beijing[(scenario.ANN46, "cl.2")]
    assert art2["in_force_spans"] == [
        {"start": "2024-12-03T00:00:00+08:00", "end": "2025-11-09T00:00:00+08:00", "days": 341}
    ]
    assert art2["status"] == "suspended" and art2["never_in_force"] is False
    military_ban = beijing[(scenario.ANN46, "cl.1")]  # still in force: open, days so far
    assert military_ban["in_force_spans"] == [
        {"start": "2024-12-03T00:00:00+08:00", "end": None, "days": 29 + 304 + 14}
    ]
    for clause_id in ("cl.1.3", "cl.2", "cl.3"):
        c = beijing[(scenario.ANN61, clause_id)]
        assert [s["days"] for s in c["in_force_spans"]] == [29], clause_id
        assert c["in_force_spans"][0]["end"] == "2025-11-07T00:00:00+08:00"
        assert c["never_in_force"] is False
    for clause_id in ("cl.1.1", "cl.1.2"):
        c = beijing[(scenario.ANN61, clause_id)]
        assert (c["status"], c["never_in_force"], c["in_force_spans"]) == ("suspended", True, [])
    # In UTC days Ann.46's first day is 2 December (16:00Z): one day more.
    assert clauses()[(scenario.ANN46, "cl.2")]["in_force_spans"][0]["days"] == 342

    # The table says so.
    result = CliRunner().invoke(
        cli,
        ["--tz", "Asia/Shanghai", "measures", "--measure", scenario.ANN61, *on_nov14],
        env=views.env,  # type: ignore[attr-defined]
    )
    assert result.exit_code == 0, result.output
    words = set(result.output.split())  # cells wrap: their words, not their lines
    assert {"never", "force", "29", "(2025-10-09", "2025-11-06)", "\u2013"} <= words

    # The US suspended the Affiliates rule from 10 November 2025 00:00 EST, through
    # 9 November 2026: on 5 December 2025 implemented for 26 days so far (21 + 5).
    body = views("commitments", "--as-of", "2025-12-05", "--known-at", "2025-12-05")
    (affiliates,) = [
        c for c in body["commitments"] if c["commitment_id"] == scenario.US_AFFILIATES_SUSPENSION
    ]
    assert affiliates["in_force_spans"] == [
        {"start": "2025-11-10T00:00:00-05:00", "end": "2026-11-10T00:00:00-05:00", "days": 26}
    ]


def test_licence_active_spans(views: Callable[..., Any]) -> None:
    """The first general licences: granted 2 December 2025 (00:00Z, as reported), valid
    one year, to 2026-12-02T00:00Z.  On 15 December 2025 JL Mag's licence had been active
    14 days (2-15 December), in UTC and in Beijing days alike (00:00Z is 08:00 in
    Beijing).  A year on, active 365 UTC days (2 December 2025 - 1 December 2026); in
    Beijing days its last day is 2 December 2026 (08:00), 366 days.

    Then an illustrative suspension, recorded now, from 1 March 2026 (Beijing) "until
    31 March" (ends 2026-04-01T00:00+08:00), and a reinstatement from 20 March (Beijing)
    recorded after it.  As of 30 June 2026, in Beijing days: active 2 December 2025 -
    28 February 2026 (30 + 31 + 28 = 89 days), suspended 1-19 March
    (19 days), active again since 20 March (12 + 30 + 31 + 30 = 103 days so far, through
    2 December 2026).  Known before the reinstatement: suspended 1-31 March (31 days),
    active since 1 April (91 days).  Known before either: one span, 211 days (2 December
    - 30 June: 30 + 31 + 28 + 31 + 30 + 31 + 30)."""
    jl = "cn-gl-2025-jl-mag-001"

    def licence(*args: str, tz: str = "UTC") -> dict[str, Any]:
        (row,) = views("--tz", tz, "licences", "--licence", jl, *args)["licences"]
        return row

    def spans(row: dict[str, Any], name: str) -> list[tuple[str, str | None, int]]:
        return [(s["start"], s["end"], s["days"]) for s in row[f"{name}_spans"]]

    granted, ends = "2025-12-02T00:00:00Z", "2026-12-02T00:00:00Z"
    on_dec15 = ("--as-of", "2025-12-15", "--known-at", "2025-12-15")
    for zone in ((), ("--tz", "Asia/Shanghai")):
        row = views(*zone, "licences", "--licence", jl, *on_dec15)["licences"][0]
        assert spans(row, "active") == [(granted, ends, 14)], zone
        assert spans(row, "suspended") == []
    later = ("--as-of", "2027-01-31", "--known-at", "2026-01-01")
    assert spans(licence(*later), "active") == [(granted, ends, 365)]
    assert spans(licence(*later, tz="Asia/Shanghai"), "active") == [(granted, ends, 366)]
    # Known at 1 December 2025: no licence yet.
    assert not views("licences", "--as-of", "2025-12-15", "--known-at", "2025-12-01")["licences"]

    source = [{"reference": "illustrative", "publisher": "test", "status": "illustrative"}]
    suspended = views(
        "append",
        json.dumps(
            {
                "type": "LicenceSuspended",
                "entity_id": jl,
                "effective_at": "2026-03-01T00:00:00+08:00",
                "until": "2026-04-01T00:00:00+08:00",
                "reason": "audit",
                "sources": source,
            }
        ),
    )
    views(
        "append",
        json.dumps(
            {
                "type": "LicenceReinstated",
                "entity_id": jl,
                "effective_at": "2026-03-20T00:00:00+08:00",
                "reason": "audit closed",
                "sources": source,
            }
        ),
    )
    between = suspended["recorded_at"]
    beijing = ("--as-of", "2026-06-30")
    march1, march20, april1 = (
        "2026-03-01T00:00:00+08:00",
        "2026-03-20T00:00:00+08:00",
        "2026-04-01T00:00:00+08:00",
    )
    now_known = licence(*beijing, tz="Asia/Shanghai")
    assert spans(now_known, "active") == [(granted, march1, 89), (march20, ends, 103)]
    assert spans(now_known, "suspended") == [(march1, march20, 19)]
    before_reinstatement = licence(*beijing, "--known-at", between, tz="Asia/Shanghai")
    assert spans(before_reinstatement, "active") == [(granted, march1, 89), (april1, ends, 91)]
    assert spans(before_reinstatement, "suspended") == [(march1, april1, 31)]
    before_both = licence(*beijing, "--known-at", "2026-01-01", tz="Asia/Shanghai")
    assert (spans(before_both, "active"), spans(before_both, "suspended")) == (
        [(granted, ends, 211)],
        [],
    )
    # As of 10 March, known now: suspended since 1 March, 10 days so far, to the end the
    # suspension set (the reinstatement of 20 March is not yet effective on the 10th).
    on_march10 = licence("--as-of", "2026-03-10", tz="Asia/Shanghai")
    assert on_march10["status"] == "suspended"
    assert spans(on_march10, "suspended") == [(march1, april1, 10)]
    assert spans(on_march10, "active") == [(granted, march1, 89)]

    # The table says so, in Beijing days (-o csv: the table's cells wrap).
    result = CliRunner().invoke(
        cli,
        ["--tz", "Asia/Shanghai", "licences", "--licence", jl, "--as-of", "2026-06-30"],
        env=views.env,  # type: ignore[attr-defined]
    )
    assert result.exit_code == 0, result.output
    words = set(result.output.split())  # cells wrap: their words, not their lines
    assert {"89", "(2025-12-02", "2026-02-28);", "suspended", "19", "(2026-03-01"} <= words
    assert {"2026-03-19);", "103", "(since", "2026-03-20,", "2026-12-02)"} <= words


def test_check_names_the_suspended_clauses(views: Callable[..., Any]) -> None:
    """The military end user's application of 1 December 2025 (11:00 Beijing): Ann.61's
    clauses would apply but Ann.70 suspends them; its Art.1(1)/1(2) never took effect."""
    (submitted,) = by_id(scenario.MILITARY_APPLICATION_DEC1, "ApplicationSubmitted")
    decision = views(
        "check",
        "--exporter", submitted["exporter"],
        "--end-user", submitted["end_user"],
        "--item", submitted["item"],
        "--quantity", submitted["quantity"],
        "--destination", submitted["destination"],
        "--end-use", submitted["end_use"],
        "--as-of", submitted["effective_at"],
    )["decision"]  # fmt: skip
    suspended = {
        (s["measure_id"], s["clause_id"]): s["never_in_force"]
        for s in decision["suspended_clauses"]
    }
    assert suspended == {
        (scenario.ANN61, "cl.1.1"): True,
        (scenario.ANN61, "cl.1.2"): True,
        (scenario.ANN61, "cl.1.3"): False,
        (scenario.ANN61, "cl.2"): False,
        (scenario.ANN61, "cl.3"): False,
    }
    assert {s["suspended_until"] for s in decision["suspended_clauses"]} == {
        "2026-11-11T00:00:00+08:00"
    }


def test_measures_and_licences_views(views: Callable[..., Any]) -> None:
    body = views("measures", "--as-of", "2025-11-14", "--known-at", "2025-11-14")
    status = {(c["measure_id"], c["clause_id"]): c for c in body["clauses"]}
    assert status[(scenario.ANN46, "cl.1")]["status"] == "in-force"
    assert status[(scenario.ANN46, "cl.2")]["status"] == "suspended"
    assert status[(scenario.ANN46, "cl.2")]["suspended_until"] == "2026-11-28T00:00:00+08:00"
    assert status[(scenario.ANN18, "cl.1")]["status"] == "in-force"
    suspended_61 = [k for k, c in status.items() if k[0] == scenario.ANN61]
    assert len(suspended_61) == 5
    assert all(status[k]["status"] == "suspended" for k in suspended_61)
    licences = views("licences", "--as-of", "2025-12-05", "--known-at", "2025-12-05")
    by_id = {lic["licence_id"]: lic for lic in licences["licences"]}
    assert sorted(by_id) == sorted(scenario.GENERAL_LICENCES)
    assert {lic["status"] for lic in by_id.values()} == {"active"}
    jl_items = {i["item"]: i for i in by_id["cn-gl-2025-jl-mag-001"]["items"]}
    assert (jl_items["1C905.a"]["remaining"], jl_items["1C905.a"]["used"]) == ("19000", "1000")
    assert not views("licences", "--as-of", "2025-11-14", "--known-at", "2025-11-14")["licences"]


def test_decisions_on_the_illustrative_applications(views: Callable[..., Any]) -> None:
    def check(application_id: str) -> dict[str, Any]:
        (submitted,) = by_id(application_id, "ApplicationSubmitted")
        args = [
            "check",
            "--exporter", submitted["exporter"],
            "--end-user", submitted["end_user"],
            "--item", submitted["item"],
            "--quantity", submitted["quantity"],
            "--destination", submitted["destination"],
            "--end-use", submitted["end_use"],
            "--as-of", submitted["effective_at"],
        ]  # fmt: skip
        return views(*args)["decision"]

    def fired(decision: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {(c["measure_id"], c["clause_id"], c["effect"]) for c in decision["fired_clauses"]}

    military = check(scenario.MILITARY_APPLICATION_DEC1)
    assert military["outcome"] == "rejected"
    assert (scenario.ANN46, "cl.1", "prohibited") in fired(military)
    assert not [c for c in fired(military) if c[0] == scenario.ANN61]  # suspended by Ann.70
    civil = check(scenario.CIVIL_APPLICATION_DEC1)
    assert civil["outcome"] == "rejected"
    assert fired(civil) == {(scenario.ANN18, "cl.1", "licence-required")}
    licensed = check(scenario.LICENSED_APPLICATION_DEC3)
    assert licensed["outcome"] == "approved"
    assert licensed["licence_id"] == "cn-gl-2025-jl-mag-001"
