"""Shared fixtures: a ledger on SQLite and on PostgreSQL, each isolated per test.

Property tests (Hypothesis) run under one of three profiles, chosen with
``LEDGER_HYPOTHESIS_PROFILE``:

- ``ci`` (the default, so the README's test command is what CI runs): 200 examples per
  property, derandomized, so a run is reproducible and a failure recurs on every machine;
- ``dev``: 20 derandomized examples, for a quick loop while editing;
- ``nightly``: 5,000 examples with a fresh random seed each run (``tools/test-nightly.sh``).

PostgreSQL: ``LEDGER_TEST_POSTGRES_URL`` (default: the local server's ``test`` database
with trust auth).  Each test gets its own schema, dropped afterwards.  When the server is
unreachable the PostgreSQL tests skip, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from ledger.app import Ledger
from ledger.config import Settings

POSTGRES_URL = os.environ.get(
    "LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_SLOW_EXAMPLES = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("ci", max_examples=200, derandomize=True, **_SLOW_EXAMPLES)
settings.register_profile("dev", max_examples=20, derandomize=True, **_SLOW_EXAMPLES)
settings.register_profile(
    "nightly", max_examples=5000, derandomize=False, database=None, **_SLOW_EXAMPLES
)
settings.load_profile(os.environ.get("LEDGER_HYPOTHESIS_PROFILE", "ci"))
BACKENDS = ["sqlite", "postgres"]

_postgres_checked: bool | None = None


def postgres_available() -> bool:
    global _postgres_checked
    if _postgres_checked is None:
        try:
            import psycopg

            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _postgres_checked = True
        except Exception:
            _postgres_checked = False
    return _postgres_checked


def require_postgres() -> None:
    if not postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {POSTGRES_URL}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}")


class Backend:
    """Creates isolated ledger configurations for one backend."""

    def __init__(self, name: str, tmp_path: Path):
        self.name = name
        self.tmp_path = tmp_path
        self.schemas: list[str] = []

    def env(self, home: Path | None = None) -> dict[str, str]:
        """Environment variables for a fresh, isolated ledger (also for subprocesses)."""
        home = home or self.tmp_path / f"home-{uuid.uuid4().hex[:8]}"
        env = {"LEDGER_HOME": str(home), "LEDGER_ACTOR": "test"}
        if self.name == "postgres":
            schema = f"t_{uuid.uuid4().hex[:12]}"
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            self.schemas.append(schema)
            sep = "&" if "?" in POSTGRES_URL else "?"
            env["LEDGER_DATABASE_URL"] = f"{POSTGRES_URL}{sep}schema={schema}"
        return env

    def settings(self, env: dict[str, str] | None = None) -> Settings:
        return Settings.from_env(env or self.env())

    def cleanup(self) -> None:
        if not self.schemas:
            return
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        require_postgres()
    b = Backend(request.param, tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend("sqlite", tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def postgres_backend(tmp_path: Path) -> Iterator[Backend]:
    require_postgres()
    b = Backend("postgres", tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def make_ledger(backend: Backend) -> Iterator[Callable[..., Ledger]]:
    """Open ledgers on the parametrised backend (closed after the test)."""
    opened: list[Ledger] = []

    def make(env: dict[str, str] | None = None) -> Ledger:
        app = Ledger(backend.settings(env))
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.close()


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger()


SOURCE: dict[str, Any] = {
    "reference": "https://example.org/notice-1",
    "publisher": "MOFCOM",
    "published_on": "2025-11-07",
    "status": "official",
}
