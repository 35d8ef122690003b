"""Several processes appending at once, including to the same licence, lose nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ledger.app import Ledger
from ledger.domain import state as st
from tests import factory as f
from tests.conftest import Backend

WORKER = textwrap.dedent(
    """
    import json, sys
    from ledger.app import Ledger
    from ledger.errors import RuleViolation
    worker, attempts = int(sys.argv[1]), int(sys.argv[2])
    app = Ledger()
    appended = rejected = 0
    for i in range(attempts):
        usage = json.loads(sys.argv[3])
        usage["shipment_id"] = f"W{worker}-{i}"
        try:
            app.append_objects([usage])
            appended += 1
        except RuleViolation as exc:
            assert exc.rule in ("usage-exceeds-cap", "licence-exhausted"), exc
            rejected += 1
        # Interleave writes to other entities too.
        party = json.loads(sys.argv[4])
        party["entity_id"] = f"p-{worker}-{i}"
        app.append_objects([party])
    print(json.dumps({"appended": appended, "rejected": rejected}))
    app.close()
    """
)


def run_workers(env: dict[str, str], workers: int, attempts: int) -> list[dict[str, int]]:
    usage = f.usage(quantity="10")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(w),
                str(attempts),
                json.dumps(usage),
                json.dumps(f.party("x")),
            ],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_concurrent_appends_to_one_licence_respect_the_cap(backend: Backend) -> None:
    env = backend.env()
    app = Ledger(backend.settings(env))
    app.append_objects(f.licensed_world())  # cap 1000 kg of 1C902.a
    workers, attempts = 4, 40  # 160 shipments of 10 kg race for 1000 kg
    results = run_workers(env, workers, attempts)

    appended = sum(r["appended"] for r in results)
    rejected = sum(r["rejected"] for r in results)
    assert appended == 100, results  # exactly the cap: no lost update, no overspend
    assert rejected == workers * attempts - 100

    licence = app.entity("licence", "GL-1")
    assert licence is not None
    usages = [e for e in licence.events if e.type == "LicenceUsageRecorded"]
    assert len(usages) == 100
    assert len({u.shipment_id for u in usages}) == 100  # type: ignore[attr-defined]
    state = st.state_at(licence.events)
    assert isinstance(state, st.LicenceState)
    assert state.items["1C902.a"].remaining == 0
    # Every party write landed too, and positions are unique and ordered by commit.
    parties = list(app.log(entity_kind="party", order="recorded"))
    assert len(parties) == 3 + workers * attempts  # jl-mag, buyer, buyer vetted
    positions = [e.position for e in app.log(order="recorded")]
    assert positions == sorted(set(positions))
    recorded = [e.event.recorded_at for e in app.log(order="recorded")]
    assert recorded == sorted(recorded)
    app.close()


def test_concurrent_cli_appends_wait_for_the_lock(sqlite_backend: Backend, tmp_path: Path) -> None:
    """Many `ledger append` processes at once on one SQLite file: all succeed."""
    env = {**os.environ, **sqlite_backend.env()}
    ledger = str(Path(sys.executable).parent / "ledger")
    procs = [
        subprocess.Popen(
            [ledger, "append", json.dumps(f.party(f"p{i}"))],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(12)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    app = Ledger(sqlite_backend.settings({k: env[k] for k in ("LEDGER_HOME", "LEDGER_ACTOR")}))
    assert app.head() == 12
    app.close()


def test_processes_starting_together_on_a_fresh_store(backend: Backend) -> None:
    """Several processes creating the tables of an empty store at once all succeed."""
    env = {**os.environ, **backend.env()}
    code = (
        "import sys, json; from ledger.app import Ledger; app = Ledger(); "
        "app.append_objects([json.loads(sys.argv[1])]); app.close()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(f.party(f"p{i}"))],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    app = Ledger(backend.settings({k: env[k] for k in env if k.startswith("LEDGER_")}))
    assert app.index.count_events() == 6  # positions may skip numbers on PostgreSQL
    app.close()
