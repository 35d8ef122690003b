"""`ledger schema --asyncapi` as its consumers' tools read it: the official AsyncAPI CLI
(from npm) validates it, and its model generator names every type (no
``AnonymousSchema_NN``).  Message summaries are whole sentences."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.asyncapi import first_sentence
from ledger.cli.main import cli
from tests.node_tools import ASYNCAPI_CLI, npm_tools


@pytest.fixture(scope="module")
def asyncapi(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = npm_tools("asyncapi-cli", ASYNCAPI_CLI)
    work = tmp_path_factory.mktemp("asyncapi")
    # No usage metrics sent from tests (the CLI asks its own config file), no config noise.
    metrics = work / "analytics.json"
    metrics.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true"}))
    env = {
        **os.environ,
        "ASYNCAPI_METRICS_CONFIG_PATH": str(metrics),
        "SUPPRESS_NO_CONFIG_WARNING": "1",
        "HOME": str(work),
    }
    binary = root / "node_modules" / ".bin" / "asyncapi"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), *args], env=env, capture_output=True, text=True, timeout=300
        )

    return run


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    result = CliRunner().invoke(cli, ["schema", "--asyncapi"], env={"LEDGER_HOME": str(home)})
    assert result.exit_code == 0, result.output
    path = home / "ledger.asyncapi.json"
    path.write_text(result.output)
    return path


def test_the_official_cli_validates_the_document(asyncapi: Any, document: Path) -> None:
    proc = asyncapi("validate", str(document), "--fail-severity", "warn")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is valid" in proc.stdout + proc.stderr


def test_generated_models_are_all_named(asyncapi: Any, document: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    proc = asyncapi("generate", "models", "typescript", str(document), "-o", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(p.stem for p in out.glob("*.ts"))
    assert "LicenceGranted" in names and "LicenceGrantedLicenceType" in names
    assert [n for n in names if "Anonymous" in n] == []


def test_summaries_are_whole_first_sentences(document: Path) -> None:
    """The summary was cut at the first ". ", so 'e.g. the Busan arrangement' ended one
    at '(e.g'."""
    messages = json.loads(document.read_text())["components"]["messages"]
    summaries = {name: m["summary"] for name, m in messages.items()}
    assert summaries["AgreementReached"] == (
        "Parties reached an arrangement (e.g. the Busan arrangement of 2025-10-30)"
    )
    for name, summary in summaries.items():
        assert summary.count("(") == summary.count(")"), (name, summary)
        assert not summary.endswith(("e.g", "i.e")), (name, summary)


def test_first_sentence() -> None:
    assert first_sentence("One thing. Another.") == "One thing"
    assert first_sentence("Lapsed (e.g. a deadline passed). Then more.") == (
        "Lapsed (e.g. a deadline passed)"
    )
    assert first_sentence("Lists (validated end users, etc. and more).") == (
        "Lists (validated end users, etc. and more)"
    )
    assert first_sentence("No stop at all") == "No stop at all"
