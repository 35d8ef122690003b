"""PostgreSQL `?schema=X`: created on first use when the user may create it; otherwise one
clear line that says how to create it (PostgreSQL's "schema does not exist" came at the
first write and said nothing of what to do)."""

from __future__ import annotations

import contextlib
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli
from tests import factory as f
from tests.conftest import POSTGRES_URL, require_postgres

pytestmark = pytest.mark.postgres

LIMITED_ROLE = "ledger_test_no_create"
"""A login role without CREATE on the database: it may not create schemas."""


def _url(schema: str, user: str | None = None) -> str:
    parts = urlsplit(POSTGRES_URL)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}"
    sep = "&" if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=f"{parts.query}{sep}schema={schema}"))


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql)


def _schema_exists(schema: str) -> bool:
    import psycopg

    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        return row is not None


def test_a_missing_schema_is_created(tmp_path: object) -> None:
    require_postgres()
    schema = f"t_new_{uuid.uuid4().hex[:10]}"
    env = {"LEDGER_HOME": str(tmp_path), "LEDGER_DATABASE_URL": _url(schema)}
    try:
        import json

        result = CliRunner().invoke(cli, ["append", json.dumps(f.party("x"))], env=env)
        assert result.exit_code == 0, result.output
        assert _schema_exists(schema)
        log = CliRunner().invoke(cli, ["log", "-o", "jsonl"], env=env)
        assert log.exit_code == 0 and '"entity_id":"x"' in log.output
    finally:
        _admin_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_schema_the_user_may_not_create_is_one_clear_line(tmp_path: object) -> None:
    import json

    import psycopg

    require_postgres()
    with contextlib.suppress(psycopg.errors.DuplicateObject):  # made by an earlier run
        _admin_execute(f'CREATE ROLE "{LIMITED_ROLE}" LOGIN')
    schema = f"t_denied_{uuid.uuid4().hex[:10]}"
    env = {"LEDGER_HOME": str(tmp_path), "LEDGER_DATABASE_URL": _url(schema, LIMITED_ROLE)}
    result = CliRunner().invoke(cli, ["append", json.dumps(f.party("x"))], env=env)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f'Error: schema "{schema}" does not exist'), result.output
    assert f'CREATE SCHEMA "{schema}" AUTHORIZATION "{LIMITED_ROLE}"' in lines[0]
    assert "Traceback" not in result.output
    assert not _schema_exists(schema)
