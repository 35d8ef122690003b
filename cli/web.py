"""``ledger web``: the read-only HTTP API and the auditor's pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ledger.cli.common import handle_errors, settings

F = TypeVar("F", bound=Callable[..., Any])


def web_options(func: F) -> F:
    """``--host``, ``--port``, ``--token``, ``--cors-origin`` (shared with serve and demo)."""
    for option in reversed(
        [
            click.option(
                "--host",
                default="127.0.0.1",
                show_default=True,
                help="Address to listen on; any but loopback needs --token.",
            ),
            click.option(
                "--port",
                type=click.IntRange(0, 65535),
                default=8080,
                show_default=True,
                help="Port (0: a free one, printed).",
            ),
            click.option(
                "--token",
                envvar="LEDGER_WEB_TOKEN",
                metavar="TOKEN",
                help="Require Authorization: Bearer TOKEN (or TOKEN as the HTTP Basic "
                "password) on every request but /healthz; at least 16 characters. Prefer "
                "the environment: a command line is visible to other users. "
                "[env: LEDGER_WEB_TOKEN]",
            ),
            click.option(
                "--cors-origin",
                "cors_origins",
                multiple=True,
                metavar="ORIGIN",
                help="Allow cross-origin GETs from this origin (repeatable; default: none).",
            ),
        ]
    ):
        func = option(func)
    return func


def web_config(token: str | None, cors_origins: tuple[str, ...]) -> Any:
    """The server's settings; its default calendar is this invocation's ``--tz``."""
    from ledger.times import zone_name
    from ledger.web.server import WebConfig

    return WebConfig(token=token or None, cors_origins=tuple(cors_origins), zone=zone_name())


@click.command()
@web_options
@click.option(
    "--no-projector",
    is_flag=True,
    help="Do not keep the stored views current (queries still catch them up).",
)
@click.pass_context
@handle_errors
def web(
    ctx: click.Context,
    host: str,
    port: int,
    token: str | None,
    cors_origins: tuple[str, ...],
    no_projector: bool,
) -> None:
    """Serve the read-only HTTP API and the auditor's pages.

    Every view has an endpoint with the CLI's options as query parameters and its
    `-o json` answer (/api/licences, /api/commitments, /api/asymmetry, /api/measures,
    /api/end-users, /api/findings, /api/check, /api/events, /api/events/ID); /api/stream
    sends new events as Server-Sent Events; /openapi.json describes them all; /healthz
    and /readyz are for probes.  The pages (/, /commitments, /measures, /licences,
    /events, /check) draw the same answers as tables and SVG timelines.  Nothing writes.
    On an address other than loopback it refuses to start without a token.  It keeps
    the stored views current, as `ledger project` does (--no-projector: it does not).

    \b
    Examples:
      ledger web                                   # http://127.0.0.1:8080/
      ledger web --port 0                          # a free port, printed
      LEDGER_WEB_TOKEN=$(openssl rand -hex 24) ledger web --host 0.0.0.0
      curl -s 'http://127.0.0.1:8080/api/licences?exporter=jl-mag&as_of=2025-12-05'
      curl -sN 'http://127.0.0.1:8080/api/stream?filter=licence'
    """
    import threading

    from ledger.cli.common import open_ledger
    from ledger.web.run import WebError, WebServer

    config = settings(ctx)
    with open_ledger(ctx, existing=True):
        pass  # a mistyped --home is an error now, not an empty ledger served
    try:
        server = WebServer(config, host, port, web_config(token, cors_origins))
    except WebError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    projector = None
    if not no_projector:
        from ledger.projections.runner import run_forever

        projector = threading.Thread(
            target=run_forever, args=(config, stop), name="projector", daemon=True
        )
        projector.start()
    click.echo(f"Serving {server.url}/ (read-only). Ctrl-C or SIGTERM stops.")
    try:
        server.run()
    finally:
        stop.set()
        if projector is not None:
            projector.join(timeout=30)
    click.echo("Stopped.")
