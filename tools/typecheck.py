"""Type-check the installed import root (``ledger``, ``ledger.projections``, ``ledger.cli``).

The repository keeps ``projections/`` and ``cli/`` beside ``ledger/`` and the package maps
them under ``ledger`` (pyproject's ``package-dir``).  mypy does not follow that mapping, so
this builds the installed layout out of symlinks in a temporary folder and checks it there.

    python tools/typecheck.py [MYPY ARGS ...]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"projections": ROOT / "projections", "cli": ROOT / "cli"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ledger-typecheck-") as tmp:
        package = Path(tmp) / "ledger"
        package.mkdir()
        for entry in (ROOT / "ledger").iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        for name, target in MAPPED.items():
            (package / name).symlink_to(target)
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            *sys.argv[1:],
            str(package),
        ]
        return subprocess.run(command, cwd=tmp).returncode


if __name__ == "__main__":
    sys.exit(main())
