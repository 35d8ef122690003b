"""Configuration from the environment (see the README's Configuration table).

- ``LEDGER_HOME``: SQLite file, embedded NATS store, ``nats.url``
  (default ``$XDG_DATA_HOME/ledger`` or ``~/.local/share/ledger``).
- ``LEDGER_DATABASE_URL``: ``sqlite:///PATH`` (default: ``ledger.db`` in the home) or
  ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?schema=NAME]``.
- ``LEDGER_NATS_URL``: NATS server(s); default: the URL the embedded server recorded.
- ``LEDGER_STREAM`` (``LEDGER``), ``LEDGER_SUBJECT_PREFIX`` (``ledger``),
  ``LEDGER_STREAM_REPLICAS`` (1), ``LEDGER_DUPLICATE_WINDOW`` (``2m``).
- ``LEDGER_ACTOR``: default ``actor`` of appended events (the OS user name).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

SQLITE_LOCK_TIMEOUT_SECONDS = 60


class ConfigError(ValueError):
    pass


_NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_SECRET_QUERY = re.compile(
    r"((?:^|[?&;])[^=&;#]*(?:password|passwd|token|secret)[^=&;#]*=)[^&;#]*", re.I
)


def redact_url(url: str) -> str:
    """``url`` fit to print: the password of ``user:password@`` (and a NATS token, which
    is the whole userinfo of ``nats://token@host``) and query parameters such as
    ``?password=`` become ``***``.  A comma-separated list of NATS servers is redacted
    server by server."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "," in url and (not sep or scheme.strip().lower() in _NATS_SCHEMES):
        return ",".join(redact_url(part) for part in url.split(","))
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        if colon:
            netloc = f"{user}:***@{hostport}"
        elif scheme.strip().lower() in _NATS_SCHEMES or not sep:
            netloc = f"***@{hostport}"
    tail = _SECRET_QUERY.sub(r"\1***", tail)
    return f"{scheme}{sep}{netloc}{tail}"


def default_home(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "ledger"


def _default_actor(environ: Mapping[str, str]) -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return environ.get("USER", "operator")


def _seconds(name: str, text: str | None, default: float) -> float:
    """A duration from the environment: ``90``, ``90s``, ``2m``, ``1h``."""
    if not text:
        return default
    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    scale = units.get(value[-1:], 0)
    try:
        number = float(value[:-1] if scale else value)
    except ValueError:
        raise ConfigError(f"{name}='{text}' is not a duration such as 120s, 2m or 1h") from None
    if number <= 0:
        raise ConfigError(f"{name}='{text}' must be positive")
    return number * (scale or 1)


def _positive_int(name: str, text: str | None, default: int) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}='{text}' is not a whole number") from None
    if value < 1:
        raise ConfigError(f"{name}='{text}' must be at least 1")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    nats_url: str | None = None
    stream: str = "LEDGER"
    subject_prefix: str = "ledger"
    actor: str = "operator"
    extra: dict[str, str] = field(default_factory=dict)
    stream_replicas: int = 1
    """``LEDGER_STREAM_REPLICAS``: JetStream replicas of the stream (1, or 3 in a cluster)."""
    duplicate_window: float = 120.0
    """``LEDGER_DUPLICATE_WINDOW`` (seconds; ``2m`` in the environment)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        # Absolute: a relative home must not turn into a path under / inside the URL.
        home = (
            Path(env["LEDGER_HOME"]).expanduser() if env.get("LEDGER_HOME") else default_home(env)
        ).absolute()
        database_url = env.get("LEDGER_DATABASE_URL") or f"sqlite:///{home / 'ledger.db'}"
        if database_url.startswith(("postgresql:", "postgres:")):
            try:
                urlparse(database_url).port  # noqa: B018 - the driver fails less clearly
            except ValueError as exc:
                raise ConfigError(f"LEDGER_DATABASE_URL: {exc}") from None
        return cls(
            home=home,
            database_url=database_url,
            nats_url=env.get("LEDGER_NATS_URL") or None,
            stream=env.get("LEDGER_STREAM") or "LEDGER",
            subject_prefix=env.get("LEDGER_SUBJECT_PREFIX") or "ledger",
            actor=env.get("LEDGER_ACTOR") or _default_actor(env),
            stream_replicas=_positive_int(
                "LEDGER_STREAM_REPLICAS", env.get("LEDGER_STREAM_REPLICAS"), 1
            ),
            duplicate_window=_seconds(
                "LEDGER_DUPLICATE_WINDOW", env.get("LEDGER_DUPLICATE_WINDOW"), 120.0
            ),
        )

    @property
    def backend(self) -> str:
        scheme = urlparse(self.database_url).scheme
        if scheme in ("postgresql", "postgres"):
            return "postgres"
        if scheme == "sqlite":
            return "sqlite"
        raise ConfigError(
            f"LEDGER_DATABASE_URL '{self.redacted_url}' is neither sqlite:///PATH nor "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?schema=NAME]"
        )

    @property
    def redacted_url(self) -> str:
        """The database URL fit to print (see ``redact_url``)."""
        return redact_url(self.database_url)

    @property
    def sqlite_path(self) -> Path:
        parsed = urlparse(self.database_url)
        path = unquote(parsed.path)
        if parsed.netloc:  # sqlite://relative/path (two slashes)
            path = parsed.netloc + path
        if path.startswith("//"):  # sqlite:////abs/path (four slashes) is /abs/path too
            path = path[1:]
        return Path(path)

    @property
    def nats_url_file(self) -> Path:
        """Where ``ledger serve`` records the embedded server's URL."""
        return self.home / "nats.url"

    def resolved_nats_url(self) -> str | None:
        """``LEDGER_NATS_URL``, else the URL the running embedded server recorded."""
        if self.nats_url:
            return self.nats_url
        try:
            text = self.nats_url_file.read_text().strip()
        except OSError:
            return None
        return text or None

    def eventsourcing_env(self) -> dict[str, str]:
        """Environment for the eventsourcing library's infrastructure factory."""
        env = {"ORIGINATOR_ID_TYPE": "text", "CREATE_TABLE": "yes"}
        if self.backend == "sqlite":
            path = self.sqlite_path
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot use {path.parent} for the ledger's database: {exc.strerror}"
                ) from None
            env.update(
                PERSISTENCE_MODULE="ledger.store.sqlite:LedgerSQLiteFactory",
                SQLITE_DBNAME=str(path),
                SQLITE_LOCK_TIMEOUT=str(SQLITE_LOCK_TIMEOUT_SECONDS),
            )
        else:
            parsed = urlparse(self.database_url)
            query = parse_qs(parsed.query)
            dbname = unquote(parsed.path.lstrip("/"))
            if not dbname:
                raise ConfigError(f"LEDGER_DATABASE_URL '{self.redacted_url}' names no database")
            env.update(
                PERSISTENCE_MODULE="ledger.store.postgres:LedgerPostgresFactory",
                POSTGRES_DBNAME=dbname,
                POSTGRES_HOST=parsed.hostname or "127.0.0.1",
                POSTGRES_PORT=str(parsed.port or 5432),
                POSTGRES_USER=unquote(parsed.username or getpass.getuser()),
                POSTGRES_PASSWORD=unquote(parsed.password or ""),
                POSTGRES_SCHEMA=query.get("schema", ["public"])[0],
                POSTGRES_CONNECT_TIMEOUT="10",
                POSTGRES_POOL_SIZE="2",
                POSTGRES_MAX_OVERFLOW="4",
            )
        env.update(self.extra)
        return env
