"""Mutation testing of the domain and view logic with mutmut.

    python -m tools.mutation [run|report] [--workers N] [--module GLOB ...]

mutmut (3.x) copies the code to mutate into ``mutants/`` and runs, for each mutant, only
the tests that reached the mutated function, in forked workers.  It finds that code on
``sys.path``, so it needs the *installed* layout (``ledger.projections`` inside
``ledger/``), which the repository maps with ``package-dir``.  This script therefore
stages that layout under ``.mutation/`` (copies of ledger/, projections/ and cli/, the
tests, a pyproject with the mutmut settings), runs mutmut there, and writes the report
``docs/mutation.md``: the score per module and every surviving mutant, each either
listed in ``tests/mutation-equivalent.txt`` with the reason it cannot be killed, or a
gap to close with a test.  Results are kept in ``.mutation/`` between runs: mutmut only
re-tests functions that changed.

The report names, per module, the commit its run was made on.  A module with no result in
this checkout's ``.mutation/`` (run elsewhere, by another engineer or an earlier session)
keeps its row and its survivors from the checked-in report, so modules can be run on
different machines and reported together.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".mutation"
REPORT = ROOT / "docs" / "mutation.md"
EQUIVALENT = ROOT / "tests" / "mutation-equivalent.txt"
RUNS = STAGE / "runs.json"
"""module -> the commit its last run was made on (written by ``run``)."""

MODULES = [
    "ledger/domain/*.py",
    "ledger/intake.py",
    "ledger/times.py",
    "ledger/projections/records.py",
    "ledger/projections/decisions.py",
    "ledger/projections/findings.py",
    "ledger/projections/views.py",
]
"""The domain and view logic (globs in the installed layout): rules, folds, status and
timeline computation, asymmetry, findings, decisions, intake and backfill checks."""

TESTS = [
    "tests/unit",
    # These read the repository itself (its docs, git's ignore rules), not the code.
    "--ignore=tests/unit/test_docs.py",
    "--ignore=tests/unit/test_secrets.py",
    # This tests the mutation tool itself (it imports tools/, which is not staged).
    "--ignore=tests/unit/test_mutation_report.py",
    "--deselect=tests/unit/test_library_boundary.py::test_the_private_names_the_ledger_documents_still_exist",
]
"""The pure unit tests: mutmut runs, per mutant, those that reach the mutated function.
(The integration tests would kill more through the ledger on a database, at many times
the cost; the rules' cases are unit tests for this reason.)"""

MODULE_TESTS = {
    "ledger/projections/decisions.py": ["tests/integration/test_decision_apply.py"],
}
"""Integration tests added to ``TESTS`` when their module is mutated: the only tests that
reach a function through a real ledger (``decisions.apply`` appends; SQLite only, a few
seconds).  mutmut runs them, as any test, only for the mutants of functions they reach."""

PER_RUN = ["-p", "no:cacheprovider", "--no-header"]
"""Added to every pytest run, the per-mutant ones included (mutmut gives those the test
ids alone, not ``TESTS``): no ``.pytest_cache`` written after each mutant."""

PROFILE = "dev"
"""The Hypothesis profile under mutation: each mutant runs only the tests that reach the
mutated function, and a property's first 20 derandomized examples are enough to reach
it; the 200 of ``ci`` made the property tests most of a run's time."""

PYPROJECT = """\
[tool.mutmut]
source_paths = ["ledger"]
only_mutate = {modules}
pytest_add_cli_args_test_selection = {tests}
pytest_add_cli_args = {per_run}

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
markers = ["postgres", "nats", "slow"]
"""


def _sync(source: Path, target: Path) -> None:
    """Mirror ``source`` into ``target``, every file stamped now.

    mutmut re-mutates a file only when the source is newer than its copy in ``mutants/``,
    and it copies the files it does not mutate there, stamped at that time: with the
    sources' own mtimes kept (``copy2``), a module not mutated by the previous run stayed
    unmutated in this one.  Re-mutating costs milliseconds, and results are kept by each
    function's hash."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        copy_function=shutil.copy,
    )


def selected_tests(modules: list[str]) -> list[str]:
    """``TESTS`` and the integration tests of the modules these globs match."""
    extra = [
        test
        for module, tests in MODULE_TESTS.items()
        if any(fnmatch.fnmatch(module, glob) for glob in modules)
        for test in tests
    ]
    return TESTS + extra


def stage(modules: list[str]) -> None:
    STAGE.mkdir(exist_ok=True)
    package = STAGE / "ledger"
    _sync(ROOT / "ledger", package)
    _sync(ROOT / "projections", package / "projections")
    _sync(ROOT / "cli", package / "cli")
    _sync(ROOT / "tests", STAGE / "tests")
    (STAGE / "pyproject.toml").write_text(
        PYPROJECT.format(
            modules=json.dumps(modules),
            tests=json.dumps(selected_tests(modules)),
            per_run=json.dumps(PER_RUN),
        ),
        encoding="utf-8",
    )
    # Which tests reach which function: after a run over some modules the file was found
    # holding no function at all, and a later run over other modules that loads it
    # leaves their mutants without tests.  Collecting it afresh takes about 10 s.
    (STAGE / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)


def run(workers: int | None, modules: list[str], again: bool = False) -> int:
    names: list[str] = []
    if again:
        # mutmut keeps a result until the mutated function changes; new tests change no
        # function, so the mutants they may kill are named to be checked again.
        names = [
            name
            for name, status in results().items()
            if status in ("survived", "no tests")
            and any(fnmatch.fnmatch(_path(name), glob) for glob in modules)
        ]
        if not names:
            print("No surviving mutant in these modules.")
            return 0
    stage(modules)
    command = [sys.executable, "-m", "mutmut", "run"]
    if workers:
        command += ["--max-children", str(workers)]
    command += names
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LEDGER_HYPOTHESIS_PROFILE"] = PROFILE
    status = subprocess.run(command, cwd=STAGE, env=env).returncode
    _record_run(modules)
    return status


def _modules(globs: list[str]) -> set[str]:
    """The dotted names of the modules these installed-layout globs match, read from the
    repository (``ledger/projections/`` is its ``projections/``; ``__init__`` has no code)."""
    names: set[str] = set()
    for glob in globs:
        prefix, root, pattern = "ledger", ROOT / "ledger", glob.removeprefix("ledger/")
        if pattern.startswith("projections/"):
            prefix, root = "ledger.projections", ROOT / "projections"
            pattern = pattern.removeprefix("projections/")
        names |= {
            ".".join((prefix, *path.relative_to(root).with_suffix("").parts))
            for path in root.glob(pattern)
            if path.name != "__init__.py"
        }
    return names


def _record_run(globs: list[str]) -> None:
    runs = json.loads(RUNS.read_text(encoding="utf-8")) if RUNS.exists() else {}
    commit = _commit()
    for module in _modules(globs):
        runs[module] = commit
    RUNS.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def results() -> dict[str, str]:
    """mutant name -> status, from ``mutmut results --all true``."""
    # mutmut reports the modules its configuration names: all of them, not only those of
    # the last ``--module`` run.
    config = STAGE / "pyproject.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        re.sub(r"(?m)^only_mutate = .*$", f"only_mutate = {json.dumps(MODULES)}", text),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=STAGE,
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            out[name] = status
    return out


def _path(mutant: str) -> str:
    """ledger/domain/party.py for ledger.domain.party.xǁPartyStateǁapply__mutmut_1."""
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0].replace(".", "/") + ".py"


def equivalent() -> dict[str, str]:
    """Mutants judged equivalent (no test can tell them apart), with the reason."""
    out: dict[str, str] = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                out[name] = reason.strip()
    return out


COLUMNS = ["mutants", "killed", "survived", "equivalent", "no tests", "not checked"]
"""The counted columns of the report's table, in order (``mutants`` is their total)."""


def _module_of(mutant: str) -> str:
    # mutmut names mutants <module>.x_<function>__mutmut_N or <module>.xǁClassǁmethod...
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]


def checked_in() -> tuple[dict[str, tuple[Counter[str], str]], list[str]]:
    """The rows (counts, commit run on) and surviving mutants of the checked-in report."""
    rows: dict[str, tuple[Counter[str], str]] = {}
    survivors: list[str] = []
    if not REPORT.exists():
        return rows, survivors
    text = REPORT.read_text(encoding="utf-8")
    header = re.search(r"Reported on commit (\w+)", text)
    default_commit = header.group(1) if header else "unknown"
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ledger.") and len(cells) in (8, 9):
            counts: Counter[str] = Counter()
            for column, cell in zip(COLUMNS[1:], cells[2:7], strict=True):
                counts[column] = int(cell)
            commit = cells[8] if len(cells) == 9 else default_commit
            rows[cells[0]] = (counts, commit)
        elif line.startswith("- `ledger.") and section.startswith("## Surviving"):
            survivors.append(line[3:].rstrip("`"))
    return rows, survivors


def report() -> int:
    statuses = results() if (STAGE / "mutants").exists() else {}
    known = equivalent()
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for name, status in sorted(statuses.items()):
        state = "equivalent" if status == "survived" and name in known else status
        by_module[_module_of(name)][state] += 1
        if status == "survived" and name not in known:
            survivors.append(name)
    # A listed name of a module run here that is not a surviving mutant (killed since, or
    # no longer generated after its function changed) counts nowhere: named for removal.
    unmatched = sorted(
        name for name in known if _module_of(name) in by_module and statuses.get(name) != "survived"
    )
    runs = json.loads(RUNS.read_text(encoding="utf-8")) if RUNS.exists() else {}
    run_on = {module: runs.get(module, _commit()) for module in by_module}
    # Modules run elsewhere keep what the checked-in report says of them.
    rows, old_survivors = checked_in()
    for module, (counts, commit) in rows.items():
        if module not in by_module:
            by_module[module] = counts
            run_on[module] = commit
            survivors += [name for name in old_survivors if _module_of(name) == module]
    survivors.sort()
    lines = [
        "# Mutation testing report",
        "",
        "Generated by `python -m tools.mutation report` after `python -m tools.mutation run`",
        "(mutmut over the domain and view logic; see the script's docstring).",
        f"Reported on commit {_commit()}. "
        f"Modules not run yet: {', '.join(_unrun(by_module)) or 'none'}.",
        "Each module's row names the commit its run was made on; functions changed since",
        "are re-checked by the next `run`.",
        "",
        "Score = killed (incl. timeouts) / (mutants checked - equivalent ones); mutants not",
        "yet checked (a run stopped early) are counted apart and not scored.",
        "",
        "| module | mutants | killed | survived | equivalent | no tests | not checked | score "
        "| run on |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    totals: Counter[str] = Counter()
    for module, counts in sorted(by_module.items()):
        totals.update(counts)
        lines.append(_row(module, counts, run_on[module]))
    lines.append(_row("**all**", totals, ""))
    lines += ["", f"## Surviving mutants not judged equivalent ({len(survivors)})", ""]
    lines += [f"- `{name}`" for name in survivors] or ["None."]
    lines += [
        "",
        f"## Equivalent mutants ({totals['equivalent']}; reasons in tests/mutation-equivalent.txt)",
    ]
    if unmatched:
        lines += [
            "",
            f"## Listed as equivalent but not a surviving mutant ({len(unmatched)})",
            "",
            "Killed, or no longer generated: remove them from tests/mutation-equivalent.txt.",
            "",
        ]
        lines += [f"- `{name}`" for name in unmatched]
    REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[8 : 10 + len(by_module) + 1]))
    return 0


def _unrun(done: dict[str, Counter[str]]) -> list[str]:
    """The modules of MODULES with no result."""
    return sorted(_modules(MODULES) - set(done))


def _commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


def _row(module: str, counts: Counter[str], run_on: str) -> str:
    killed = counts["killed"] + counts["timeout"]
    total = sum(counts.values())
    scored = total - counts["equivalent"] - counts["not checked"]
    score = f"{100 * killed / scored:.1f} %" if scored else "-"
    return (
        f"| {module} | {total} | {killed} | {counts['survived']} | {counts['equivalent']} "
        f"| {counts['no tests']} | {counts['not checked']} | {score} | {run_on} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Mutation testing (mutmut) of the domain logic.")
    parser.add_argument("action", choices=["run", "report"], nargs="?", default="run")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--module",
        action="append",
        metavar="GLOB",
        help="mutate only these (installed-layout globs, e.g. ledger/domain/licence.py); "
        "repeatable; default: all of MODULES. Earlier results are kept, so modules can "
        "be run one at a time and reported together.",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="check the surviving (and untested) mutants of these modules again, after "
        "tests were added",
    )
    args = parser.parse_args()
    if args.action == "run":
        status = run(args.workers, args.module or MODULES, args.again)
        if status != 0:
            return status
    return report()


if __name__ == "__main__":
    sys.exit(main())
