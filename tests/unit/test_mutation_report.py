"""The mutation report merges runs made in different checkouts (tools/mutation.py).

Engineers run mutmut on different modules in different worktrees; each report must keep
what the checked-in report says of the modules it did not run, with the commit they were
run on, instead of dropping them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tools import mutation

CHECKED_IN = """\
# Mutation testing report

Reported on commit aaaaaaa. Modules not run yet: none.

| module | mutants | killed | survived | equivalent | no tests | not checked | score | run on |
|---|---:|---:|---:|---:|---:|---:|---:|---|
| ledger.domain.party | 10 | 8 | 1 | 1 | 0 | 0 | 88.9 % | bbbbbbb |
| ledger.intake | 20 | 10 | 5 | 0 | 0 | 5 | 66.7 % | ccccccc |
| **all** | 30 | 18 | 6 | 1 | 0 | 5 | 75.0 % |  |

## Surviving mutants not judged equivalent (2)

- `ledger.domain.party.x_register__mutmut_3`
- `ledger.intake.x_parse__mutmut_9`
"""

OLD_FORMAT_ROW = "| ledger.times | 4 | 3 | 1 | 0 | 0 | 0 | 75.0 % |"


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    report = tmp_path / "mutation.md"
    report.write_text(CHECKED_IN.replace("| **all**", OLD_FORMAT_ROW + "\n| **all**"))
    stage = tmp_path / ".mutation"
    (stage / "mutants").mkdir(parents=True)
    (stage / "runs.json").write_text(json.dumps({"ledger.intake": "ddddddd"}))
    monkeypatch.setattr(mutation, "REPORT", report)
    monkeypatch.setattr(mutation, "STAGE", stage)
    monkeypatch.setattr(mutation, "RUNS", stage / "runs.json")
    monkeypatch.setattr(mutation, "EQUIVALENT", tmp_path / "none.txt")
    monkeypatch.setattr(mutation, "_commit", lambda: "eeeeeee")
    return tmp_path


def test_the_checked_in_rows_are_read_with_their_commit(checkout: Path) -> None:
    rows, survivors = mutation.checked_in()
    assert rows["ledger.domain.party"] == (
        Counter({"killed": 8, "survived": 1, "equivalent": 1}),
        "bbbbbbb",
    )
    # A row written before the "run on" column takes the report's own commit.
    assert rows["ledger.times"][1] == "aaaaaaa"
    assert survivors == [
        "ledger.domain.party.x_register__mutmut_3",
        "ledger.intake.x_parse__mutmut_9",
    ]


def _report_of_one_intake_run(monkeypatch: pytest.MonkeyPatch) -> str:
    """The report after a run here of ledger.intake with one mutant killed, one surviving."""
    monkeypatch.setattr(
        mutation,
        "results",
        lambda: {
            "ledger.intake.x_parse__mutmut_1": "killed",
            "ledger.intake.x_parse__mutmut_2": "survived",
        },
    )
    mutation.report()
    return mutation.REPORT.read_text()


def test_a_module_run_here_replaces_its_row_and_the_others_are_kept(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _report_of_one_intake_run(monkeypatch)
    assert "| ledger.intake | 2 | 1 | 1 | 0 | 0 | 0 | 50.0 % | ddddddd |" in text
    assert "| ledger.domain.party | 10 | 8 | 1 | 1 | 0 | 0 | 88.9 % | bbbbbbb |" in text
    assert "| ledger.times | 4 | 3 | 1 | 0 | 0 | 0 | 75.0 % | aaaaaaa |" in text
    assert "| **all** | 16 | 12 | 3 | 1 | 0 | 0 | 80.0 % |  |" in text
    # The intake survivors are this run's; party's are kept from the checked-in report.
    assert "- `ledger.intake.x_parse__mutmut_2`" in text
    assert "ledger.intake.x_parse__mutmut_9" not in text
    assert "- `ledger.domain.party.x_register__mutmut_3`" in text
    assert "Surviving mutants not judged equivalent (2)" in text


def test_the_equivalent_count_is_of_mutants_and_a_listed_name_matching_none_is_named(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heading counts the equivalent mutants of the table (this run's and the kept
    rows'), not the lines of the list: a listed name that is no surviving mutant of a
    module run here (killed since, or no longer generated) is named for removal, and is
    not read back as a survivor by the next report."""
    listed = checkout / "equivalent.txt"
    listed.write_text(
        "# comment\n"
        "ledger.intake.x_parse__mutmut_2 surviving: counted\n"
        "ledger.intake.x_parse__mutmut_1 killed since\n"
        "ledger.intake.x_parse__mutmut_7 no longer generated\n"
        "ledger.domain.party.x_register__mutmut_5 of a module not run here: not judged\n"
    )
    monkeypatch.setattr(mutation, "EQUIVALENT", listed)
    text = _report_of_one_intake_run(monkeypatch)
    # intake's one equivalent here and party's one from the checked-in row.
    assert "| **all** | 16 | 12 | 2 | 2 | 0 | 0 | 85.7 % |  |" in text
    assert "## Equivalent mutants (2; reasons in tests/mutation-equivalent.txt)" in text
    unmatched = text.split("## Listed as equivalent but not a surviving mutant (2)", 1)[1]
    assert unmatched.count("- `") == 2
    assert "- `ledger.intake.x_parse__mutmut_1`" in unmatched
    assert "- `ledger.intake.x_parse__mutmut_7`" in unmatched
    assert mutation.checked_in()[1] == ["ledger.domain.party.x_register__mutmut_3"]


def test_a_modules_integration_tests_are_run_only_when_it_is_mutated() -> None:
    decisions_apply = "tests/integration/test_decision_apply.py"
    assert mutation.selected_tests(["ledger/domain/licence.py"]) == mutation.TESTS
    for globs in (["ledger/projections/*.py"], ["ledger/projections/decisions.py"]):
        assert mutation.selected_tests(globs) == [*mutation.TESTS, decisions_apply]
    assert mutation.selected_tests(mutation.MODULES).count(decisions_apply) == 1
    # Each names a file of the repository (the staged copy has the same tests/).
    for tests in mutation.MODULE_TESTS.values():
        assert all((mutation.ROOT / test).is_file() for test in tests)
