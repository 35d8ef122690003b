"""Costs that should not grow with history: append latency by history length, and peak
memory of import and rebuild by ledger size, each against its own baseline in one run.

    python benchmarks/bench_scale.py append [--sizes 0,1000,10000] [--repeat 5] [--postgres URL]
    python benchmarks/bench_scale.py memory [--sizes 100000,300000,1000000] [--postgres URL]
        [--import-only]
    python benchmarks/bench_scale.py postgres-import [--events 200000] --postgres URL
    python benchmarks/bench_scale.py rebuild [--sizes 100000,300000,1000000] [--keep DIR]
                                             [--budgets default,unlimited]

**append**: one licence is given N past shipments (imported in batches), then one more
shipment is appended to it, in a new ``Ledger`` each time (as ``ledger append`` does in
a new process), against registering a fresh party in the same ledger, alternately
``--repeat`` times; prints the median of each, the ratio (target: <= 1.3x at every N) and
how many stored events the licence append decoded (its snapshot spares the history).

**memory**: ``ledger import`` of an N-event file (``bench_import``'s generator) into a
fresh SQLite ledger, then ``ledger project --rebuild --once`` of its views, each in a
child process; prints each one's peak RSS (the largest process of the tree, from
``getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper process) and time (target: flat within
+-20 % across N).

**rebuild**: a ledger of N events with ``ledger_history``'s realistic mix (the
projection benchmark's: licences shipping over months, backdated withdrawals,
retractions), written as a file and ``ledger import``ed (setup, not timed), then, in one
run per N: the raw read+decode of every stored row (the baseline), and ``ledger project
--rebuild --once`` with the default entity-cache budget and with
``LEDGER_PROJECTOR_CACHE=unlimited``; prints each rebuild's events/s, its ratio to the
raw read+decode, and its peak RSS summed over the whole process tree (the projector and
its writer process, sampled every 20 ms from /proc), and the ratio in CPU time (the
raw loop's CPU per event against the whole command's, projector and writer process
together, start-up included: what the wall-clock ratio tends to when the two processes
do not get a core each, as on a loaded machine).  Targets: the bounded rebuild's peak
RSS flat within +-20 % across N, and its events/s >= 25 % of raw at 1M.

**postgres-import**: ``ledger import`` of an N-event file into a fresh PostgreSQL schema
against a raw ``COPY`` of the same lines into a one-column table of another fresh schema,
in one run; prints events/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LEDGER = str(Path(sys.executable).parent / "ledger")
SOURCE = {"reference": "https://example.org/customs", "publisher": "GACC"}


def _bench_import() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_import", ROOT / "benchmarks" / "bench_import.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipment(n: int, licence: str) -> dict[str, Any]:
    return {
        "type": "LicenceUsageRecorded",
        "entity_id": licence,
        "shipment_id": f"{licence}-S{n}",
        "item": "1C902.a",
        "quantity": "0.001",
        "end_user": "buyer",
        "destination": "DE",
        "effective_at": "2026-01-01T00:00:00Z",
        "sources": [SOURCE],
    }


def _world(licence: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "PartyRegistered",
            "entity_id": "exporter",
            "name": "Exporter",
            "country": "CN",
            "roles": ["exporter"],
            "effective_at": "2025-01-01",
            "sources": [SOURCE],
        },
        {
            "type": "PartyRegistered",
            "entity_id": "buyer",
            "name": "Buyer",
            "country": "DE",
            "roles": ["end-user"],
            "effective_at": "2025-01-01",
            "sources": [SOURCE],
        },
        {
            "type": "PartyVetted",
            "entity_id": "buyer",
            "outcome": "approved",
            "authority": "MOFCOM",
            "effective_at": "2025-06-01",
            "sources": [SOURCE],
        },
        {
            "type": "LicenceGranted",
            "entity_id": licence,
            "licence_type": "general",
            "issuer": "CN",
            "exporter": "exporter",
            "end_users": ["buyer"],
            "items": [{"item": "1C902.a", "cap": "1000000000", "unit": "kg"}],
            "destinations": ["DE"],
            "effective_at": "2025-12-02",
            "valid_until": "2026-12-01",
            "sources": [SOURCE],
        },
    ]


def append_latency(sizes: list[int], repeat: int, postgres: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        env = {"LEDGER_HOME": tmp, "LEDGER_ACTOR": "bench"}
        if postgres:
            env["LEDGER_DATABASE_URL"] = _fresh_schema(postgres)
        try:
            _append_latency(sizes, repeat, env)
        finally:
            if postgres:
                _drop_schema(postgres, env["LEDGER_DATABASE_URL"].rsplit("schema=", 1)[1])


def _append_latency(sizes: list[int], repeat: int, env: dict[str, str]) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings

    app = Ledger(Settings.from_env(env))
    app.append_objects(_world("GL-0")[:3])
    had = 0
    print(f"{'past events':>12} {'append (ms)':>12} {'fresh (ms)':>11} {'ratio':>6} {'decoded':>8}")
    for size in sizes:
        licence = f"GL-{size}"
        app.append_objects(_world(licence)[3:])
        while had < size:
            count = min(20_000, size - had)
            app.append_objects([_shipment(had + i, licence) for i in range(count)])
            had += count
        had = 0
        timed: list[float] = []
        fresh: list[float] = []
        decoded = 0
        for r in range(repeat):
            for target in ("licence", "party"):
                one = Ledger(Settings.from_env(env))
                obj: dict[str, Any] = (
                    _shipment(10**9 + r, licence)
                    if target == "licence"
                    else {
                        "type": "PartyRegistered",
                        "entity_id": f"fresh-{size}-{r}",
                        "name": "Fresh",
                        "country": "DE",
                        "roles": ["end-user"],
                        "effective_at": "2025-01-01",
                        "sources": [SOURCE],
                    }
                )
                started = time.perf_counter()
                one.append_objects([obj])
                (timed if target == "licence" else fresh).append(time.perf_counter() - started)
                if target == "licence":
                    decoded = max(decoded, getattr(one, "events_loaded", -1))
                one.close()
        a, b = statistics.median(timed), statistics.median(fresh)
        print(f"{size:>12,} {a * 1e3:>12.1f} {b * 1e3:>11.1f} {a / b:>6.2f} {decoded:>8,}")
    app.close()


def _peak(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of ``cmd`` run as the only child of a fresh process."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
        "print(rc, time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    rc, seconds, peak = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}): {out.stderr[-2000:]}")
    return float(seconds), int(peak)


def memory(sizes: list[int], postgres: str | None, rebuild: bool = True) -> None:
    generate = _bench_import().generate
    print(
        f"{'events':>10} {'import s':>9} {'import MiB':>11} {'rebuild s':>10} {'rebuild MiB':>12}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for size in sizes:
            path = Path(tmp) / f"events-{size}.jsonl"
            generate(path, size)
            env = {"LEDGER_HOME": f"{tmp}/home-{size}", "LEDGER_ACTOR": "bench"}
            if postgres:
                env["LEDGER_DATABASE_URL"] = _fresh_schema(postgres)
            imported = _peak([LEDGER, "import", str(path), "--no-progress"], env)
            rebuilt = _peak([LEDGER, "project", "--rebuild", "--once"], env) if rebuild else (0, 0)
            path.unlink()
            print(
                f"{size:>10,} {imported[0]:>9.1f} {imported[1] / 1024:>11.0f}"
                f" {rebuilt[0]:>10.1f} {rebuilt[1] / 1024:>12.0f}"
            )


def _tree_rss_kib(root: int) -> tuple[int, int]:
    """Resident memory (KiB) of ``root`` and all its descendants, from /proc: all of it
    (VmRSS), and the anonymous part alone (RssAnon: without the pages of files mapped
    into memory, such as the database SQLite reads through its memory map)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total = anon = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1])
        except OSError:
            continue
    return total, anon


def _tree_peak(cmd: list[str], env: dict[str, str]) -> tuple[float, tuple[int, int], str]:
    """Seconds, peak RSS of the whole process tree (KiB: all, anonymous) and stdout of
    ``cmd``."""
    return _tree_run(cmd, env)[:3]


def _tree_run(cmd: list[str], env: dict[str, str]) -> tuple[float, tuple[int, int], str, float]:
    """``_tree_peak``, and the CPU seconds (user + system) of the whole process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = (0, 0)
    while process.poll() is None:
        total, anon = _tree_rss_kib(process.pid)
        peak = (max(peak[0], total), max(peak[1], anon))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({process.returncode}): {err[-2000:]}")
    # The child's and, once it has waited for them, its children's (the writer process).
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, peak, out, cpu


def _history_file(path: Path, total: int) -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import msgspec
    from ledger_history import history

    encode = msgspec.json.encode
    count = 0
    with path.open("wb") as f:
        for batch in history(total):
            for obj in batch:
                f.write(encode(obj) + b"\n")
                count += 1
    return count


def _raw_read_decode(env: dict[str, str], stop: int | None = None) -> tuple[int, float, float]:
    """Events, seconds and CPU seconds of reading and decoding every stored row (up to
    position ``stop``): the raw loop a rebuild is measured against (bench_rebuild_phases
    uses it too)."""
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.store.codec import decode_event

    app = Ledger(Settings.from_env(env))
    try:
        started, cpu = time.perf_counter(), time.process_time()
        count = last = 0
        while True:
            rows = app.read_stored(last, 20_000, stop=stop)
            if not rows:
                break
            for _, topic, state in rows:
                if state is not None:
                    decode_event(state, topic)
            count += len(rows)
            last = rows[-1][0]
        return count, time.perf_counter() - started, time.process_time() - cpu
    finally:
        app.close()


def rebuild_memory(
    sizes: list[int], postgres: str | None, keep: Path | None, budgets: list[str]
) -> None:
    print(
        f"{'events':>10} {'raw ev/s':>9} {'budget':>9} {'rebuild ev/s':>12} {'of raw':>7} "
        f"{'CPU':>6} {'tree MiB':>9} {'anon MiB':>9} {'evicted':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = keep or Path(tmp)
        for size in sizes:
            home = root / f"home-{size}"
            env = {"LEDGER_HOME": str(home), "LEDGER_ACTOR": "bench"}
            if postgres:
                env["LEDGER_DATABASE_URL"] = _fresh_schema(postgres)
            if postgres or not (home / "imported").exists():
                path = Path(tmp) / f"history-{size}.jsonl"
                _history_file(path, size)
                subprocess.run(
                    [LEDGER, "import", str(path), "--no-progress"],
                    env={**os.environ, **env},
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                path.unlink()
                (home / "imported").touch()
            events, raw, raw_cpu = min(_raw_read_decode(env) for _ in range(2))
            for budget in budgets:
                _seconds, peak, out, cpu = _tree_run(
                    [LEDGER, "project", "--rebuild", "--once", "-o", "json"],
                    {**env, "LEDGER_PROJECTOR_CACHE": "" if budget == "default" else budget},
                )
                result = json.loads(out)
                rate = result["applied"] / result["seconds"]
                # CPU: the same ratio in CPU time (the raw loop's against the projector's
                # and its writer's together), which the machine's load moves far less.
                print(
                    f"{events:>10,} {events / raw:>9,.0f} {budget:>9} "
                    f"{rate:>12,.0f} {rate / (events / raw):>7.1%} "
                    f"{raw_cpu / events / (cpu / result['applied']):>6.1%} {peak[0] / 1024:>9.0f} "
                    f"{peak[1] / 1024:>9.0f} {result['evicted']:>9,}",
                    flush=True,
                )


def _fresh_schema(url: str) -> str:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}schema={schema}"


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def postgres_import(events: int, url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        path = Path(tmp) / "events.jsonl"
        _bench_import().generate(path, events)
        raw_url, ledger_url = _fresh_schema(url), _fresh_schema(url)
        try:
            _postgres_import(events, url, path, raw_url, ledger_url, tmp)
        finally:  # (both schemas: a 1M run left ~1 GB behind)
            for used in (raw_url, ledger_url):
                _drop_schema(url, used.rsplit("schema=", 1)[1])


def _postgres_import(
    events: int, url: str, path: Path, raw_url: str, ledger_url: str, tmp: str
) -> None:
    import psycopg

    # Raw: the same lines COPYed into a one-column table, one transaction.
    schema = raw_url.rsplit("schema=", 1)[1]
    with psycopg.connect(url) as conn:
        conn.execute(f'CREATE TABLE "{schema}".t (id bigserial PRIMARY KEY, payload bytea)')
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f'COPY "{schema}".t (payload) FROM STDIN') as copy:
            for line in path.open("rb"):
                copy.write_row((line.rstrip(b"\n"),))
        conn.commit()
        raw = time.perf_counter() - started
    env = {"LEDGER_HOME": f"{tmp}/home", "LEDGER_DATABASE_URL": ledger_url}
    seconds, peak = _peak([LEDGER, "import", str(path), "--no-progress"], env)
    print(
        f"{events:,} events into PostgreSQL: raw COPY {events / raw:,.0f} events/s, "
        f"ledger import {events / seconds:,.0f} events/s ({raw / seconds:.1%}"
        f" of raw), import peak RSS {peak / 1024:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["append", "memory", "rebuild", "postgres-import"])
    parser.add_argument("--sizes", default=None, help="Comma-separated sizes.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument(
        "--budgets", help="rebuild: LEDGER_PROJECTOR_CACHE values, in order (default,unlimited)"
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="rebuild: keep (and reuse) the SQLite ledgers here"
    )
    parser.add_argument(
        "--import-only", action="store_true", help="memory: measure the import, not the rebuild"
    )
    args = parser.parse_args()
    if args.what == "append":
        sizes = [int(s) for s in (args.sizes or "0,1000,10000,50000,200000").split(",")]
        append_latency(sizes, args.repeat, args.postgres)
    elif args.what == "memory":
        sizes = [int(s) for s in (args.sizes or "100000,300000").split(",")]
        memory(sizes, args.postgres, rebuild=not args.import_only)
    elif args.what == "rebuild":
        sizes = [int(s) for s in (args.sizes or "100000,300000,1000000").split(",")]
        budgets = (args.budgets or "default,unlimited").split(",")
        rebuild_memory(sizes, args.postgres, args.keep, budgets)
    else:
        if not args.postgres:
            raise SystemExit("postgres-import needs --postgres URL")
        postgres_import(args.events, args.postgres)


if __name__ == "__main__":
    main()
