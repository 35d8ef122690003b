"""The ``ledger`` command: a click group whose subcommands load on demand.

Each subcommand lives in its own module and imports the heavy parts of the ledger
(eventsourcing, database drivers, nats) inside its function, so ``ledger --help`` and
simple commands start fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

# name -> "module:attribute"; order is the order of ``ledger --help``.
COMMANDS: dict[str, str] = {
    "append": "ledger.cli.write:append",
    "import": "ledger.cli.write:import_",
    "retract": "ledger.cli.write:retract",
    "log": "ledger.cli.read:log",
    "show": "ledger.cli.read:show",
    "schema": "ledger.cli.read:schema",
    "licences": "ledger.cli.views:licences",
    "commitments": "ledger.cli.views:commitments",
    "asymmetry": "ledger.cli.views:asymmetry",
    "measures": "ledger.cli.views:measures",
    "end-users": "ledger.cli.views:end_users",
    "findings": "ledger.cli.views:findings",
    "check": "ledger.cli.views:check",
    "apply": "ledger.cli.views:apply",
    "project": "ledger.cli.views:project",
    "relay": "ledger.cli.stream:relay",
    "watch": "ledger.cli.stream:watch",
    "status": "ledger.cli.stream:status",
    "health": "ledger.cli.stream:health",
    "serve": "ledger.cli.stream:serve",
    "web": "ledger.cli.web:web",
    "key": "ledger.cli.audit:key",
    "checkpoint": "ledger.cli.audit:checkpoint",
    "prove": "ledger.cli.audit:prove",
    "verify": "ledger.cli.audit:verify",
    "verify-proof": "ledger.cli.audit:verify_proof",
    "access": "ledger.cli.access:access",
    "demo": "ledger.cli.demo:demo",
}


def _wants_json(args: list[str]) -> bool:
    """True if the command line asks for ``-o json``/``jsonl`` (read before click parses it,
    so that click's own errors, a bad option value say, can answer in JSON too)."""
    json_outputs = ("json", "jsonl", "cloudevents")
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-o", "--output") and i + 1 < len(args):
            if args[i + 1] in json_outputs:
                return True
        elif any(
            arg.startswith(prefix) and arg[len(prefix) :] in json_outputs
            for prefix in ("--output=", "-o")
        ):
            return True
    return False


def _usage_error_json(exc: click.ClickException) -> str:
    """Click's error in the shape of the ledger's JSON errors (error, message, field)."""
    import json

    field = None
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        field = max(exc.param.opts, key=len) if exc.param.opts else exc.param.name
    elif isinstance(exc, click.NoSuchOption):
        field = exc.option_name
    body = {"error": "UsageError", "message": exc.format_message(), "field": field, "line": None}
    return json.dumps(body)


class LazyGroup(click.Group):
    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not _wants_json(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        # As click's standalone mode, except that its errors are JSON on stderr.
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(_usage_error_json(exc), err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

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
@click.version_option(package_name="export-control-ledger", prog_name="ledger")
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
@click.option(
    "--color",
    "--colour",
    "color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour in messages and decisions: auto = only on a terminal, and never when "
    "NO_COLOR is set (https://no-color.org).",
)
@click.option(
    "--tz",
    "tz",
    envvar="LEDGER_TZ",
    metavar="ZONE",
    help="Calendar of bare query dates and of every day shown or counted: an IANA zone "
    "such as Asia/Shanghai or America/New_York. JSON keeps exact instants. "
    "[env: LEDGER_TZ; default: UTC]",
)
@click.pass_context
def cli(
    ctx: click.Context, home: str | None, database_url: str | None, color: str, tz: str | None
) -> None:
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
      ledger --color never licences         # no colour even on a terminal (or NO_COLOR=1)
      ledger --tz Asia/Shanghai measures --as-of 2026-11-27   # Beijing's 27 November
      eval "$(_LEDGER_COMPLETE=bash_source ledger)"   # shell completion (zsh_source, fish_source)
    """
    ctx.color = color_setting(color)
    overrides: dict[str, str] = {}
    if home:
        overrides["LEDGER_HOME"] = home
    if database_url:
        overrides["LEDGER_DATABASE_URL"] = database_url
    ctx.obj = overrides
    _read_days_in(ctx, tz)


def _read_days_in(ctx: click.Context, name: str | None) -> None:
    """Set the reading zone for this invocation (reset when it ends, so in-process
    callers such as tests start from UTC again)."""
    from ledger.times import TimeParseError, load_zone, start_reading_in

    try:
        zone = load_zone(name) if name else load_zone("UTC")
    except TimeParseError as exc:
        tz_option = next(p for p in ctx.command.params if p.name == "tz")
        raise click.BadParameter(str(exc), ctx=ctx, param=tz_option) from None
    ctx.call_on_close(start_reading_in(zone))


def color_setting(choice: str, environ: dict[str, str] | None = None) -> bool | None:
    """click's ``Context.color`` for ``--color``: True forces colour, False strips it, None
    lets click colour only a terminal.  NO_COLOR (set and not empty) turns auto off; an
    explicit ``--color always`` still wins, as no-color.org asks."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    env = os.environ if environ is None else environ
    return False if env.get("NO_COLOR") else None


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="ledger", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
