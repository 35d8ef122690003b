"""The built wheel: one import root (``ledger``), and the demo runs from it alone."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["ledger"]
    roots = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert roots == {"ledger"}
    for module in ("ledger/cli/main.py", "ledger/projections/api.py", "ledger/py.typed"):
        assert module in names
    assert wheel.name.startswith("export_control_ledger-")


def test_the_demo_runs_from_the_unpacked_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("LEDGER_HOME", None)
    where = subprocess.run(
        [sys.executable, "-c", "import ledger.cli.main as m; print(m.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.strip().startswith(str(site)), where
    demo = subprocess.run(
        [sys.executable, "-c", "from ledger.cli.main import main; main()", "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    assert "Done in" in demo.stdout


def _metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode()


def test_the_wheel_declares_its_licence_and_platforms(wheel: Path) -> None:
    """An SPDX licence expression with the licence text shipped beside it, classifiers
    that say POSIX (serve needs fcntl), and no made-up project URLs."""
    metadata = _metadata(wheel)
    headers = [line for line in metadata.split("\n\n", 1)[0].splitlines()]
    assert "License-Expression: Apache-2.0" in headers
    assert "License-File: LICENSE" in headers
    with zipfile.ZipFile(wheel) as archive:
        (licence,) = [n for n in archive.namelist() if n.endswith("/licenses/LICENSE")]
        text = archive.read(licence).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert (ROOT / "LICENSE").read_text() == text
    classifiers = [h.split(": ", 1)[1] for h in headers if h.startswith("Classifier: ")]
    assert "Operating System :: POSIX" in classifiers
    assert not any("Windows" in c or c.startswith("License ::") for c in classifiers)
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers
    assert not any(h.startswith("Project-URL:") for h in headers)
