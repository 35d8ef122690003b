"""Secrets stay out of what the ledger prints and what it ships: URL redaction, and the
files that keep operators' passwords out of git and out of the image's build context."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ledger.config import redact_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ledger:s3cret@db:5432/ledger", "postgresql://ledger:***@db:5432/ledger"),
        ("postgresql://ledger:s3,c@ret@db/ledger", "postgresql://ledger:***@db/ledger"),
        ("postgresql://db/ledger?sslmode=require&password=s3cret", None),
        ("postgresql://db/ledger?PASSWORD=s3cret#x", None),
        ("postgresql://ledger@db/ledger?schema=a", "postgresql://ledger@db/ledger?schema=a"),
        ("nats://alice:s3cret@nats-1:4222", "nats://alice:***@nats-1:4222"),
        ("nats://s3cret@nats-1:4222", "nats://***@nats-1:4222"),  # a token
        (
            "nats://alice:s3cret@nats-1:4222, tls://bob:s3cret@nats-2:4222",
            "nats://alice:***@nats-1:4222, tls://bob:***@nats-2:4222",
        ),
        ("alice:s3cret@nats-1:4222", "alice:***@nats-1:4222"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("sqlite:////var/lib/ledger/ledger.db", "sqlite:////var/lib/ledger/ledger.db"),
    ],
)
def test_urls_are_printed_without_their_secrets(url: str, shown: str | None) -> None:
    redacted = redact_url(url)
    assert "s3cret" not in redacted and "s3,c" not in redacted
    if shown is not None:
        assert redacted == shown
    else:
        assert "password=***" in redacted.lower()


def test_the_operators_env_file_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/ledger.env"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/ledger.env (the passwords) is not in .gitignore"
    example = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/ledger.env.example"], cwd=ROOT, check=False
    )
    assert example.returncode == 1


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides
    (``!`` re-includes); ``*`` stays within a path segment, ``**`` crosses them."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out)

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw[1:] if negated else raw
        compiled = regex(pattern.strip("/"))
        if any(compiled.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_the_image_build_context_holds_only_what_the_dockerfile_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for secret_or_bulk in (
        ".git/HEAD",
        ".venv/bin/python",
        "deploy/ledger.env",
        "deploy/nats/keys/relay.nk",
        "deploy/nats/tls/server-key.pem",
        "ledger/__pycache__/app.cpython-312.pyc",
        ".mypy_cache/x.json",
        ".hypothesis/examples/x",
        "build/lib/ledger/app.py",
        "tests/conftest.py",
    ):
        assert _dockerignore_excludes(patterns, secret_or_bulk), secret_or_bulk
    copied = []
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.extend(line.split()[1:-1])
    assert copied, "the Dockerfile copies nothing?"
    for source in copied:
        inside = source.rstrip("/") + ("/__init__.py" if (ROOT / source).is_dir() else "")
        assert not _dockerignore_excludes(patterns, inside), source
