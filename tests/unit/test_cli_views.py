"""The view commands share one skeleton (``ledger.cli.views.view_command``): the same
options in the same places, and the same path from options to answer."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from ledger.cli import views
from ledger.cli.main import cli

VIEWS = {"licences", "commitments", "asymmetry", "measures", "end-users", "findings", "check"}
REQUEST = [
    *("--exporter", "ex", "--end-user", "eu", "--item", "1C902.a", "--quantity", "1"),
    *("--destination", "US", "--end-use", "motors"),
]


def commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    out = {}
    for name in cli.list_commands(ctx):  # type: ignore[attr-defined]
        command = cli.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None
        out[name] = command
    return out


def test_every_view_command_gets_the_shared_options() -> None:
    registered = commands()
    assert {c.name for c in views.VIEW_COMMANDS} == VIEWS
    for command in views.VIEW_COMMANDS:
        assert registered[str(command.name)] is command, command.name
        params = [p for p in command.params if isinstance(p, click.Option)]
        as_of, known_at, *own, fold, output = params
        assert (as_of.opts, as_of.metavar) == (["--as-of"], "TIME"), command.name
        assert (known_at.opts, known_at.metavar) == (["--known-at"], "TIME"), command.name
        assert "bare date means the end of that day in the --tz zone" in str(as_of.help)
        assert (fold.opts, fold.is_flag) == (["--fold"], True), command.name
        assert output.opts == ["--output", "-o"] and output.default == "table", command.name
        assert list(getattr(output.type, "choices", ())) == (
            ["table", "json"] if command.name == "check" else ["table", "json", "jsonl", "csv"]
        ), command.name
        assert own, command.name  # its own options sit between the shared ones


def test_a_command_taking_known_at_is_a_view_command_or_reads_the_log() -> None:
    """A new as-of view cannot skip the shared skeleton unnoticed."""
    for name, command in commands().items():
        if any(p.name == "known_at" for p in command.params):
            assert command in views.VIEW_COMMANDS or name == "log", name


def test_every_view_command_reports_a_missing_ledger_the_same_way(tmp_path: Path) -> None:
    """The shared path opens an existing ledger only, and errors follow -o json."""
    missing = tmp_path / "nowhere"
    for command in views.VIEW_COMMANDS:
        extra = REQUEST if command.name == "check" else []
        result = CliRunner().invoke(
            cli, ["--home", str(missing), str(command.name), *extra, "-o", "json"]
        )
        assert result.exit_code == 2, (command.name, result.output)
        error = json.loads(result.output)
        assert error["error"] == "ConfigError" and "no ledger at" in error["message"]
        assert not missing.exists(), command.name
