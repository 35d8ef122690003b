"""Node tools that check what the ledger publishes the way its consumers will: ajv (JSON
Schema, strict mode) and the official AsyncAPI CLI.

Each tool set is installed with npm into its own folder of a cache the tests own
(``LEDGER_TEST_NODE_CACHE``, default ``~/.cache/ledger-tests/node``; never a global
install), at pinned versions, once: later runs reuse it while its package.json is
unchanged.  Where node or npm is not installed the tests that need them skip; anything
else that fails (npm cannot reach the registry, say) fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_CACHE = Path(
    os.environ.get("LEDGER_TEST_NODE_CACHE", Path.home() / ".cache" / "ledger-tests" / "node")
)

AJV = {"ajv": "8.20.0", "ajv-formats": "3.0.1"}
ASYNCAPI_CLI = {"@asyncapi/cli": "6.2.0"}


def require_node() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    return node


def npm_tools(name: str, packages: dict[str, str], *, timeout: float = 900) -> Path:
    """The folder holding ``packages`` installed (its node_modules), installing them first
    if needed.  A lock keeps concurrent test runs from installing over each other."""
    import fcntl

    require_node()
    root = NODE_CACHE / name
    root.mkdir(parents=True, exist_ok=True)
    manifest = json.dumps({"private": True, "dependencies": packages}, indent=2, sort_keys=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / ".installed"
        if done.exists() and done.read_text() == manifest:
            return root
        done.unlink(missing_ok=True)
        (root / "package.json").write_text(manifest)
        proc = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"npm install {list(packages)} failed:\n{proc.stderr[-4000:]}"
        done.write_text(manifest)
    return root
