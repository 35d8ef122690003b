"""The ``ledger`` command: a click group whose subcommands load on demand.

Each subcommand lives in its own module and imports the heavy parts of the ledger
(eventsourcing, database drivers, nats) inside its function, so ``ledger --help`` and
simple commands start fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# name -> "module:attribute"; order is the order of ``ledger --help``.
COMMANDS: dict[str, str] = {
    "append": "cli.write:append",
    "import": "cli.write:import_",
    "retract": "cli.write:retract",
    "log": "cli.read:log",
    "show": "cli.read:show",
    "schema": "cli.read:schema",
    "licences": "cli.views:licences",
    "commitments": "cli.views:commitments",
    "asymmetry": "cli.views:asymmetry",
    "measures": "cli.views:measures",
    "end-users": "cli.views:end_users",
    "findings": "cli.views:findings",
    "check": "cli.views:check",
    "apply": "cli.views:apply",
    "project": "cli.views:project",
    "relay": "cli.stream:relay",
    "watch": "cli.stream:watch",
    "status": "cli.stream:status",
    "serve": "cli.stream:serve",
    "demo": "cli.demo:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="ledger", prog_name="ledger")
@click.option(
    "--home",
    envvar="LEDGER_HOME",
    type=click.Path(file_okay=False),
    help="Ledger home: SQLite file, embedded NATS store. [env: LEDGER_HOME; "
    "default: ~/.local/share/ledger]",
)
@click.option(
    "--database-url",
    envvar="LEDGER_DATABASE_URL",
    help="sqlite:///PATH or postgresql://USER[:PASS]@HOST[:PORT]/DB[?schema=S]. "
    "[env: LEDGER_DATABASE_URL; default: SQLite in the home]",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None) -> None:
    """An event-sourced ledger of export-control compliance facts.

    Every fact (a licence granted, a clause suspended, a commitment implemented) is an
    immutable event with two times: when it takes effect (effective time) and when the
    ledger learned it (recorded time).  Query any past state with --as-of and what the
    ledger knew then with --known-at.

    \b
    Examples:
      ledger import scenario.jsonl          # append a batch (all or nothing)
      ledger log --entity licence:GL-1      # history of one licence
      ledger log --as-of 2025-11-14 --known-at 2025-11-14
      ledger schema > events.schema.json    # the event contract
    """
    overrides: dict[str, str] = {}
    if home:
        overrides["LEDGER_HOME"] = home
    if database_url:
        overrides["LEDGER_DATABASE_URL"] = database_url
    ctx.obj = overrides


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="ledger", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
