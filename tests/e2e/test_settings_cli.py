"""Settings a user gets wrong (every LEDGER_* variable and the database URL): one line
naming the bad value and what is expected, exit 2, before anything is created, connected
or retried; and settings that must not be dropped silently (a database URL's libpq
parameters).  Found by trying each variable with malformed values."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from ledger.nats_server import EmbeddedNats
from tests.conftest import POSTGRES_URL, Backend, require_postgres
from tests.nats_fixtures import (
    nats_server_fixture,  # noqa: F401 - the nats_server fixture
    run_ledger,
)


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def _one_line(result: Result, exit_code: int, *expected: str) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for text in expected:
        assert text in lines[0], result.output
    return lines[0]


NATS_SETTINGS = [
    ("LEDGER_STREAM", "a b", "LEDGER_STREAM='a b' contains ' ': a JetStream stream name"),
    ("LEDGER_STREAM", "a.b", "LEDGER_STREAM='a.b' contains '.'"),
    ("LEDGER_STREAM", "x" * 300, "LEDGER_STREAM is 300 bytes long: at most 243"),
    ("LEDGER_SUBJECT_PREFIX", ">", "LEDGER_SUBJECT_PREFIX: subject prefix '>' must be"),
    ("LEDGER_STREAM_REPLICAS", "99", "LEDGER_STREAM_REPLICAS='99' must be at most 5"),
    ("LEDGER_DUPLICATE_WINDOW", "99999999999h", "is longer than JetStream can hold"),
    ("LEDGER_DUPLICATE_WINDOW", "nan", "LEDGER_DUPLICATE_WINDOW='nan' must be positive"),
]


@pytest.mark.nats
@pytest.mark.parametrize(("name", "value", "message"), NATS_SETTINGS)
def test_nats_settings_jetstream_cannot_take_are_refused_at_once(
    sqlite_backend: Backend, nats_server: EmbeddedNats, name: str, value: str, message: str
) -> None:
    """The NATS client raised a traceback on a stream name with a space or a dot, or on
    a '>' prefix; the relay took a name, replica count or window the server refuses for
    an outage and retried it until it gave up (exit 1)."""
    env = {**sqlite_backend.env(), "LEDGER_NATS_URL": nats_server.url, name: value}
    _one_line(_run(env, "log"), 2, message)  # before the ledger is opened
    for args in (
        ["relay", "--once", "--give-up-after", "5"],
        ["watch", "--all", "--timeout", "1"],
        ["status"],
    ):
        _one_line(_run(env, *args), 2, message)


@pytest.mark.nats
def test_a_file_that_is_no_nkey_seed_is_refused_naming_it(
    sqlite_backend: Backend, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    seed = tmp_path / "relay.nk"
    seed.write_bytes(b"\xff\xfe not a seed\n")
    env = {
        **sqlite_backend.env(),
        "LEDGER_NATS_URL": nats_server.url,
        "LEDGER_NATS_NKEY_SEED": str(seed),
    }
    for args in (["relay", "--once", "--give-up-after", "5"], ["watch", "--all", "--timeout", "1"]):
        _one_line(_run(env, *args), 2, f"LEDGER_NATS_NKEY_SEED='{seed}' does not hold an nkey seed")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "names no file"),
        ("sqlite:///", "names a directory"),
        ("sqlite:///{home}", "names a directory"),
    ],
)
def test_a_sqlite_url_naming_no_file_is_a_configuration_error(
    tmp_path: Path, url: str, message: str
) -> None:
    """SQLite said only 'unable to open database file', exit 1, as if the store were down."""
    env = {"LEDGER_HOME": str(tmp_path), "LEDGER_DATABASE_URL": url.format(home=tmp_path)}
    for args in (["log"], ["append", "{}"], ["import", "-"]):
        _one_line(
            _run(env, *args), 2, f"LEDGER_DATABASE_URL '{env['LEDGER_DATABASE_URL']}'", message
        )


def _url(query: str) -> str:
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}{query}"


def _schema_exists(schema: str) -> bool:
    with psycopg.connect(POSTGRES_URL) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return found.fetchone() is not None


@pytest.mark.parametrize("name", ["my-ledger", "a;b", "with space", "9lives", "x" * 64])
def test_a_schema_name_the_library_cannot_use_is_refused_before_it_is_created(
    tmp_path: Path, name: str
) -> None:
    """The schema was created, then the command failed on a syntax error (exit 1): the
    eventsourcing library names the schema unquoted in one statement."""
    require_postgres()
    schema = f"{name}{uuid.uuid4().hex[:6]}" if len(name) < 60 else name
    env = {"LEDGER_HOME": str(tmp_path), "LEDGER_DATABASE_URL": _url(f"schema={schema}")}
    try:
        _one_line(_run(env, "log"), 2, f"?schema={schema!r} is not usable", "ASCII letters")
        assert not _schema_exists(schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_database_urls_libpq_parameters_are_used_not_dropped(tmp_path: Path) -> None:
    """``?sslmode=require`` was dropped (with every parameter but the schema): the ledger
    connected without TLS.  Now it is libpq's, like any other parameter; one libpq does
    not know is a configuration error; a parameter repeating the URL's parts is refused."""
    require_postgres()
    with psycopg.connect(POSTGRES_URL) as conn:
        ssl = conn.execute("SHOW ssl").fetchone()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    home = {"LEDGER_HOME": str(tmp_path)}
    try:
        named = {
            **home,
            "LEDGER_DATABASE_URL": _url(f"schema={schema}&application_name=ue-{schema}"),
        }
        assert _run(named, "project", "--once").exit_code == 0
        if ssl is not None and ssl[0] == "off":
            # The server has no TLS: requiring it must fail, with libpq's reason.
            required = {**home, "LEDGER_DATABASE_URL": _url(f"schema={schema}&sslmode=require")}
            line = _one_line(_run(required, "log"), 1, "the store is unavailable")
            assert "SSL" in line, line
        bogus = {**home, "LEDGER_DATABASE_URL": _url(f"schema={schema}&bogus=1")}
        _one_line(_run(bogus, "log"), 2, 'invalid connection option "bogus"', "?sslmode=require")
        twice = {**home, "LEDGER_DATABASE_URL": _url(f"schema={schema}&schema=other")}
        _one_line(_run(twice, "log"), 2, "gives ?schema= more than once")
        host = {**home, "LEDGER_DATABASE_URL": _url(f"schema={schema}&host=elsewhere")}
        _one_line(_run(host, "log"), 2, "?host= repeats a part of the URL itself")
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_an_unreachable_postgresql_says_why(tmp_path: Path) -> None:
    """The pool's 'couldn't get a connection after 10.00 sec' said nothing of why: a
    database that does not exist, a server that refuses.  libpq's reason is given."""
    require_postgres()
    missing = f"ledger_missing_{uuid.uuid4().hex[:8]}"
    base = POSTGRES_URL.split("?")[0].rsplit("/", 1)[0]
    env = {"LEDGER_HOME": str(tmp_path), "LEDGER_DATABASE_URL": f"{base}/{missing}"}
    done = run_ledger(env, "log")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f'database "{missing}" does not exist' in lines[0], lines[0]


EVENT = (
    '{"type": "PartyRegistered", "entity_id": "p1", "name": "P", "country": "CN", '
    '"roles": ["exporter"], "effective_at": "2025-01-01", '
    '"sources": [{"reference": "https://example.org/p1", "publisher": "MOFCOM"}]}'
)


def test_key_files_that_are_not_text_and_origins_that_are_no_names(tmp_path: Path) -> None:
    """A binary LEDGER_SIGNING_KEY (or --key file) was a UnicodeDecodeError traceback; an
    LEDGER_ORIGIN that cannot be a key name was blamed on LEDGER_SIGNING_KEY or --generate.
    --since names itself, not --checkpoint, when its file is not a checkpoint."""
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x00\x85\xff binary\n")
    home = {"LEDGER_HOME": str(tmp_path / "home"), "LEDGER_ACTOR": "test"}
    _one_line(
        _run({**home, "LEDGER_SIGNING_KEY": str(binary)}, "append", EVENT, "-o", "json"),
        2,
        f"{binary} holds no signing key (it is not UTF-8 text)",
        '"field": "LEDGER_SIGNING_KEY"',
    )
    for args in (["append", EVENT], ["key", "--generate", str(tmp_path / "new.key")]):
        line = _one_line(
            _run({**home, "LEDGER_ORIGIN": "a b"}, *args, "-o", "json"),
            2,
            "LEDGER_ORIGIN='a b' cannot name a key",
            '"field": "LEDGER_ORIGIN"',
        )
        assert "LEDGER_SIGNING_KEY" not in line and "--generate" not in line
    assert not (tmp_path / "new.key").exists()
    assert _run(home, "append", EVENT).exit_code == 0
    _one_line(_run(home, "verify", "--key", str(binary)), 2, f"--key: {binary} holds no key")
    line = _one_line(_run(home, "verify", "--since", str(binary), "-o", "json"), 2)
    assert '"field": "--since"' in line, line
