"""The ledger's boundary with eventsourcing and nats-py: no project module imports a
private name from them, and the few private names it still uses (the table in
docs/architecture.md) exist with the signatures the ledger calls them with, so a library
release that changes one fails here rather than in production."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import ledger

ROOT = Path(ledger.__file__).resolve().parent.parent
PACKAGES = ("ledger", "projections", "cli")
LIBRARIES = ("eventsourcing", "nats")


def project_modules() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if ".venv" not in path.parts
    ]


def test_no_project_module_imports_a_private_name_of_the_libraries() -> None:
    offending: list[str] = []
    modules = project_modules()
    assert len(modules) > 20  # the tree was found
    for path in modules:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            if node.module.split(".")[0] not in LIBRARIES:
                continue
            private_module = any(part.startswith("_") for part in node.module.split("."))
            for alias in node.names:
                if private_module or alias.name.startswith("_"):
                    offending.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert offending == []


def test_the_private_names_the_ledger_documents_still_exist() -> None:
    from eventsourcing.postgres import PostgresTrackingRecorder
    from eventsourcing.sqlite import SQLiteConnectionPool, SQLiteTrackingRecorder
    from nats.aio.client import Client

    # ledger/relay.py: pre-built HPUB frames queued and flushed.
    assert list(inspect.signature(Client._send_command).parameters)[:2] == ["self", "cmd"]
    assert "self" in inspect.signature(Client._flush_pending).parameters
    assert hasattr(Client(), "_flush_queue")
    # ledger/store/sqlite.py: the pool's factory method.
    assert list(inspect.signature(SQLiteConnectionPool._create_connection).parameters) == ["self"]
    # projections/store.py: tracking read and written in the caller's transaction.
    for recorder in (SQLiteTrackingRecorder, PostgresTrackingRecorder):
        assert len(inspect.signature(recorder._max_tracking_id).parameters) == 3
        assert len(inspect.signature(recorder._insert_tracking).parameters) == 3

    documented = (ROOT / "docs" / "architecture.md").read_text()
    for name in (
        "_send_command",
        "_flush_pending",
        "_flush_queue",
        "_create_connection",
        "_max_tracking_id",
        "_insert_tracking",
    ):
        assert name in documented
