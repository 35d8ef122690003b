"""`ledger demo` end to end, as the README runs it: its answers match the hand-checked
expectations of docs/scenario.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.scenario import load

LEDGER = str(Path(sys.executable).parent / "ledger")


def clean_env(tmp_path: Path) -> dict[str, str]:
    """No ledger configuration at all (the demo must not need or touch any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["HOME"] = str(tmp_path / "home")  # a default ledger home would land here
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return env


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [LEDGER, "demo", "--output", "json"],
        env=clean_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp / "home").exists() and not (tmp / "xdg").exists()
    body: dict[str, Any] = json.loads(proc.stdout)
    assert not Path(body["home"]).exists(), "the temporary ledger is removed"
    return body


def answer(report: dict[str, Any], number: int) -> Any:
    question = report["questions"][number - 1]
    assert question["exit_code"] == 0
    return question["answer"]


def test_whole_pipeline(report: dict[str, Any]) -> None:
    events = len(load())
    assert report["imported"] == {"events": events, "duplicates": 0, "head": events}
    assert report["relayed"] == events
    assert report["subscriber"]["received"] == events
    assert report["subscriber"]["in_order"] is True
    assert report["nats_url"].startswith("nats://127.0.0.1:")
    assert not report["nats_url"].endswith(":4222")
    assert isinstance(report["seconds"], float)  # its speed: benchmarks/bench_demo.py


def party_row(asym: dict[str, Any], agreement: str, party: str) -> dict[str, Any]:
    return next(
        p for p in asym["parties"] if p["agreement_id"] == agreement and p["party"] == party
    )


def pair(asym: dict[str, Any], commitment: str) -> dict[str, Any]:
    return next(p for p in asym["pairs"] if commitment in p["commitments"])


def test_asymmetry_on_2025_11_14_as_known_then(report: dict[str, Any]) -> None:
    asym = answer(report, 1)
    cn = party_row(asym, "busan-2025", "CN")
    us = party_row(asym, "busan-2025", "US")
    assert cn["counts"]["pledged"] == 5 and cn["counts"]["implemented"] == 4
    assert cn["pending"] == ["busan-cn-general-licences"]
    assert cn["unilateral_claims"] == ["busan-cn-general-licences"]
    assert cn["overdue"] == []  # due by 2025-12-01: not yet
    assert us["counts"] == {**us["counts"], "pledged": 4, "implemented": 4, "pending": 0}
    gl = pair(asym, "busan-cn-general-licences")
    assert gl["implemented_first"] == "US"
    assert gl["one_sided_since"] == "2025-11-10T00:00:00-05:00"
    assert gl["other_pending"] is True and gl["one_sided_days"] == 4
    october = pair(asym, "busan-cn-october-measures-suspension")
    # Ann.70 from 7 November 00:00 Beijing (6 November UTC) to the US step of 10 November:
    # 4 UTC days (the demo asks its asymmetry questions in UTC).
    assert october["implemented_first"] == "CN" and october["one_sided_days"] == 4
    # 00:01 EST = 13:01 Beijing: the tariff steps took effect at the same instant.
    tariffs = pair(asym, "busan-cn-counter-tariff-suspension")
    assert tariffs["implemented_first"] == "both" and tariffs["one_sided_days"] == 0


def test_asymmetry_on_2025_12_05(report: dict[str, Any]) -> None:
    asym = answer(report, 2)
    gl = pair(asym, "busan-cn-general-licences")
    assert gl["statuses"][gl["commitments"].index("busan-cn-general-licences")] == (
        "partially-implemented"
    )
    assert gl["one_sided_days"] == 22 and gl["other_pending"] is False  # 10 Nov -> 2 Dec


def clauses(measures: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["measure_id"], c["clause_id"]): c for c in measures["clauses"]}


def test_measures_on_2025_11_14(report: dict[str, Any]) -> None:
    in_force = clauses(answer(report, 3))
    suspended = clauses(answer(report, 4))
    assert ("cn-ann-2024-46", "cl.1") in in_force  # the military ban stays
    assert ("cn-ann-2025-18", "cl.1") in in_force  # medium/heavy rare earths: licence
    assert ("cn-ann-2024-46", "cl.2") not in in_force
    assert suspended[("cn-ann-2024-46", "cl.2")]["suspended_until"] == "2026-11-28T00:00:00+08:00"
    ann61 = [c for (m, _), c in suspended.items() if m == "cn-ann-2025-61"]
    assert len(ann61) == 5 and all(
        c["suspended_until"] == "2026-11-11T00:00:00+08:00" for c in ann61
    )
    assert ("us-bis-affiliates-rule", "cl.1") in suspended


def test_chinese_questions_are_answered_in_beijing_days(report: dict[str, Any]) -> None:
    zones = [q["answer"]["tz"] for q in report["questions"]]
    assert zones == ["UTC", "UTC", *["Asia/Shanghai"] * 4, "UTC"]
    for question in report["questions"][2:6]:
        assert question["command"][1:3] == ["--tz", "Asia/Shanghai"]
        assert "Beijing's calendar" in question["question"]
    # Ann.46 Art.2 "until 27 November 2026": ends 2026-11-28T00:00+08:00, so the 14
    # November question is asked up to the end of that day in Beijing.
    assert answer(report, 3)["as_of"] == "2025-11-14T15:59:59.999999Z"


def test_military_application_is_rejected_by_ann46_cl1(report: dict[str, Any]) -> None:
    decision = answer(report, 5)["decision"]
    assert decision["outcome"] == "rejected"
    fired = {(c["measure_id"], c["clause_id"]): c["effect"] for c in decision["fired_clauses"]}
    assert fired[("cn-ann-2024-46", "cl.1")] == "prohibited"
    assert not any(m == "cn-ann-2025-61" for m, _ in fired)  # suspended before taking effect
    assert decision["reasons"][0].startswith("prohibited: cn-ann-2024-46/cl.1")


def test_licences_on_2025_12_05(report: dict[str, Any]) -> None:
    licences = {row["licence_id"]: row for row in answer(report, 6)["licences"]}
    assert set(licences) == {
        "cn-gl-2025-jl-mag-001",
        "cn-gl-2025-ningbo-yunsheng-001",
        "cn-gl-2025-zhong-ke-san-huan-001",
    }
    assert {row["status"] for row in licences.values()} == {"active"}
    jl = {i["item"]: i for i in licences["cn-gl-2025-jl-mag-001"]["items"]}
    assert jl["1C905.a"]["remaining"] == "19000"


def test_findings_report_the_missed_deadline(report: dict[str, Any]) -> None:
    findings = answer(report, 7)["findings"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_kind.setdefault(f["kind"], []).append(f)
    late = by_kind["late-implementation"]
    assert [f["subject"] for f in late] == ["commitment:busan-cn-general-licences"]
    assert late[0]["details"]["days_late"] == 2  # due 30 November, met 2 December
    assert [f["subject"] for f in by_kind["unilateral-claim"]] == [
        "commitment:busan-cn-general-licences"
    ]
    # Pledges implemented on time are not overdue, even once their implementation ended.
    assert "commitment-overdue" not in by_kind, by_kind.get("commitment-overdue")


def test_text_narrative(tmp_path: Path) -> None:
    proc = subprocess.run(
        [LEDGER, "demo"], env=clean_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    events = len(load())
    assert f"A subscriber received {events}/{events} typed events in order" in out
    assert "$ ledger asymmetry --as-of 2025-11-14 --known-at 2025-11-14" in out
    assert "REJECTED" in out and "prohibited: cn-ann-2024-46/cl.1" in out
    # The Chinese measures in Beijing days, and the table says so.
    assert "$ ledger --tz Asia/Shanghai measures --as-of 2025-11-14" in out
    assert "Days are Asia/Shanghai days." in out
    assert "late-implementation" in out and "commitment:busan-cn-general-licences" in out
    assert out.rstrip().endswith("as `ledger --home DIR COMMAND ...`.")


def test_a_kept_demo_says_how_to_explore_it(tmp_path: Path) -> None:
    """The commands the demo prints name no home; its last line says where --home goes
    (before the command: `ledger log --home X` is a usage error)."""
    env = clean_env(tmp_path)
    home = tmp_path / "kept"
    proc = subprocess.run(
        [LEDGER, "demo", "--home", str(home)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    hint = proc.stdout.rstrip().splitlines()[-1]
    assert f"`ledger --home {home} COMMAND ...`" in hint, hint
    explored = subprocess.run(
        [LEDGER, "--home", str(home), "log", "--limit", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert explored.returncode == 0 and explored.stdout.strip(), explored.stderr


def test_rerun_on_a_kept_home(tmp_path: Path) -> None:
    """`--home` keeps the ledger: a second run imports nothing new and still shows every
    event reaching a subscriber (no consumer left waiting for events it already had)."""
    env = clean_env(tmp_path)
    home = str(tmp_path / "kept")
    for imported in (len(load()), 0):
        proc = subprocess.run(
            [LEDGER, "demo", "--home", home, "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        body = json.loads(proc.stdout)
        assert body["imported"]["events"] == imported
        assert body["subscriber"]["received"] == len(load()) and body["subscriber"]["in_order"]


def test_a_home_holding_another_ledger_is_left_alone(tmp_path: Path) -> None:
    """`demo --home DIR` on a ledger that is not a demo's: one line, exit 2, before any
    NATS server starts there (it started one in that home, made its keys, then failed on
    the scenario's first line with a message about backfills, exit 1)."""
    env = clean_env(tmp_path)
    home = tmp_path / "mine"
    party = {
        "type": "PartyRegistered",
        "entity_id": "mine",
        "name": "Mine",
        "country": "US",
        "roles": ["exporter"],
        "effective_at": "2025-01-01",
        "sources": [{"reference": "https://example.org/mine", "publisher": "Mine"}],
    }
    mine = subprocess.run(
        [LEDGER, "--home", str(home), "append", json.dumps(party)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert mine.returncode == 0, mine.stderr
    before = sorted(p.name for p in home.iterdir())
    proc = subprocess.run(
        [LEDGER, "demo", "--home", str(home)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (
        f"Error: --home: {home} holds a ledger that is not a demo's (1 events): the demo "
        "writes the 2025 record only into a new directory or one an earlier demo kept"
    )
    assert sorted(p.name for p in home.iterdir()) == before  # no nats/, no nats-auth/
