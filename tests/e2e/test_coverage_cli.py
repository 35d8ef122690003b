"""`ledger check` and `ledger append` agree on what a licence covers, as a user runs them.

Issue 12's reproduction: licence GL-1 caps item 1C902 (1,000 kg) and measure M1 requires
a licence for 1C902.  `check` approved 100 kg of 1C902.a citing GL-1, then `append`
refused to record that shipment under GL-1 ('item-not-licensed'): the two answered from
two copies of the rule.  Both now ask ``ledger.domain.licence.coverage``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import factory as f
from tests.conftest import Backend

LEDGER = str(Path(sys.executable).parent / "ledger")

WORLD = [
    f.exporter("ex"),
    f.party("eu"),
    f.vetted("eu", effective_at="2025-01-15"),
    f.licence(
        "GL-1",
        exporter="ex",
        end_users=["eu"],
        items=[{"item": "1C902", "cap": "1000", "unit": "kg"}],
        destinations=["US"],
        effective_at="2025-02-01",
        valid_until="2026-02-01",
    ),
    f.measure(
        "M1",
        clauses=[
            {
                "clause_id": "lr",
                "effect": "licence-required",
                "items": ["1C902"],
                "effective_at": "2024-12-03",
            }
        ],
    ),
]


def ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LEDGER, *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def check(env: dict[str, str], quantity: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return ledger(
        env,
        "check",
        "--exporter",
        "ex",
        "--end-user",
        "eu",
        "--item",
        "1C902.a",
        "--quantity",
        quantity,
        "--destination",
        "US",
        "--end-use",
        "motors",
        "--as-of",
        "2025-03-01",
        *extra,
    )


def shipment(shipment_id: str, quantity: str) -> str:
    return json.dumps(
        f.usage(
            "GL-1",
            shipment=shipment_id,
            item="1C902.a",
            quantity=quantity,
            end_user="eu",
            destination="US",
            effective_at="2025-03-01",
        )
    )


def test_check_and_append_agree_both_ways(backend: Backend, tmp_path: Path) -> None:
    env = backend.env()
    batch = tmp_path / "world.jsonl"
    batch.write_text("".join(json.dumps(e) + "\n" for e in WORLD))
    assert ledger(env, "import", str(batch)).returncode == 0

    # check approves citing GL-1 -> the shipment is recorded under GL-1.
    approved = check(env, "100")
    assert approved.returncode == 0, approved.stderr
    assert "APPROVED" in approved.stdout
    assert "covered by licence GL-1 (1,000 kg remaining)" in approved.stdout
    recorded = ledger(env, "append", shipment("S-1", "100"))
    assert recorded.returncode == 0, recorded.stderr
    assert "Appended LicenceUsageRecorded on licence:GL-1" in recorded.stdout

    # check refuses what is left over -> the ledger refuses to record it.
    over = check(env, "901")
    assert "REJECTED" in over.stdout
    assert "GL-1: only 900 kg of 1C902 remain" in over.stdout
    refused = ledger(env, "append", shipment("S-2", "901"))
    assert refused.returncode == 1
    assert "[rule: usage-exceeds-cap]" in refused.stderr
    assert "Traceback" not in refused.stderr

    # Units are never converted: GL-1 caps 1C902 in kg.
    tonnes = check(env, "0.001", "--unit", "t")
    assert "REJECTED" in tonnes.stdout
    assert "GL-1: caps 1C902.a in kg, not t (units are not converted)" in tonnes.stdout

    # What remains, both agree on.
    rest = check(env, "900")
    assert "APPROVED" in rest.stdout and "(900 kg remaining)" in rest.stdout
    assert ledger(env, "append", shipment("S-3", "900")).returncode == 0
    spent = check(env, "1")
    assert "REJECTED" in spent.stdout and "GL-1: exhausted on 2025-03-01" in spent.stdout
    assert "[rule: licence-exhausted]" in ledger(env, "append", shipment("S-4", "1")).stderr
