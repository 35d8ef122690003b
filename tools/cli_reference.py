"""The command reference (docs/cli.md), generated from each command's ``--help``.

docs/cli.md holds a cog block that calls :func:`markdown`; regenerate it with
``python -m tools.cli_reference`` (runs cog on it).  tests/unit/test_docs.py fails when
the file is stale or a command is missing from it, so ``--help`` stays the single source.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from ledger.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "cli.md"
WIDTH = 100
"""Help is wrapped at a fixed width so the file does not depend on the terminal."""


def help_text(*args: str) -> str:
    result = CliRunner().invoke(
        cli, [*args, "--help"], prog_name="ledger", terminal_width=WIDTH, catch_exceptions=False
    )
    if result.exit_code != 0:
        raise RuntimeError(f"ledger {' '.join(args)} --help exited {result.exit_code}")
    return result.output.rstrip() + "\n"


def markdown() -> str:
    parts = ["## `ledger`\n\n```\n" + help_text() + "```\n"]
    for name in COMMANDS:
        parts.append(f"## `ledger {name}`\n\n```\n" + help_text(name) + "```\n")
        command = cli.get_command(click.Context(cli), name)
        if isinstance(command, click.Group):
            for sub in command.list_commands(click.Context(command)):
                text = help_text(name, sub)
                parts.append(f"### `ledger {name} {sub}`\n\n```\n" + text + "```\n")
    return "\n" + "\n".join(parts) + "\n"


def cog(*options: str) -> int:
    """Run cog over docs/cli.md (``--check`` to only compare); its exit status."""
    from cogapp import Cog

    return Cog().main(["cog", "-I", str(ROOT), *options, str(REFERENCE)])


if __name__ == "__main__":
    sys.exit(cog("-r", *sys.argv[1:]))
