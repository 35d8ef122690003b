"""``ledger access``: named keys for downstream services on the ledger's NATS server.

Every reader may read the stream; a named service also owns its durable consumer, so no
other reader can delete it, fetch from it (taking its events) or ack on its behalf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ledger.cli.common import echo_json, handle_errors, output_option

if TYPE_CHECKING:
    from ledger.config import Settings


def _name(value: str) -> str:
    from ledger.errors import InputError
    from ledger.nats_auth import AccessError, check_service_name

    try:
        return check_service_name(value)
    except AccessError as exc:
        raise InputError(str(exc), field="NAME") from None


def _reload(config: Settings) -> int | None:
    """Reload the home's embedded server when it is the one in use (not LEDGER_NATS_URL)."""
    from ledger.nats_auth import reload_embedded_server

    return None if config.nats_url else reload_embedded_server(config)


def _server_note(config: Settings, pid: int | None) -> str:
    if config.nats_url:
        return (
            "LEDGER_NATS_URL names a server this command does not manage: add the user "
            "below to its configuration (`-o json` prints it as `nats_user`) and reload it."
        )
    if pid is not None:
        return f"The running embedded NATS server (pid {pid}) reloaded its permissions."
    return "No embedded NATS server is running here: `ledger serve` admits it when it starts."


@click.group()
def access() -> None:
    """Give a downstream service its own key to the ledger's NATS stream.

    A named service reads the stream like any subscriber, and its durable consumer (of
    the same name) is its own: no other reader, the shared subscriber key included, may
    create, fetch from, ack on or delete it, and the service may not touch the
    projector's or another service's.  Each service's secret seed is kept in the ledger
    home (mode 0600); give the file to that service only.  A running `ledger serve`
    reloads its permissions at once.

    \b
    Examples:
      ledger access add billing
      LEDGER_NATS_NKEY_SEED=$(ledger access add billing -o json | jq -r .seed_file) \\
        ledger watch --durable billing
      ledger access list
      ledger access remove billing
    """


@access.command("add")
@click.argument("name")
@output_option("table", "json")
@click.pass_context
@handle_errors
def add(ctx: click.Context, name: str, output: str) -> None:
    """Make (or show) the key of service NAME and admit it.

    NAME: 1 to 64 ASCII letters, digits, '-' or '_'; it is also the name of the
    service's durable consumer.  Adding a name that exists keeps its key.

    \b
    Examples:
      ledger access add billing
      ledger access add billing -o json
    """
    from ledger.cli.common import settings
    from ledger.nats_auth import add_service, service_user, services

    config = settings(ctx)
    name = _name(name)
    seed, public_key, created = add_service(config.home, name)
    pid = _reload(config)
    user = service_user(
        name,
        public_key,
        stream=config.stream,
        prefix=config.subject_prefix,
        others=services(config.home),
    )
    if output == "json":
        echo_json(
            {
                "service": name,
                "created": created,
                "public_key": public_key,
                "seed_file": str(seed),
                "durable": name,
                "reloaded_pid": pid,
                "nats_user": user,
            }
        )
        return
    verb = "Added" if created else "Kept"
    click.echo(f"{verb} service '{name}' (public key {public_key}).")
    click.echo(f"Its secret seed: {seed} (give this file to the service only).")
    click.echo(
        f"It connects with LEDGER_NATS_NKEY_SEED={seed} and owns the durable consumer "
        f"'{name}' (ledger watch --durable {name}, or subscribe(durable={name!r}))."
    )
    click.echo(_server_note(config, pid))
    if config.nats_url:
        import json

        click.echo(json.dumps(user, indent=2))


@access.command("list")
@output_option("table", "json")
@click.pass_context
@handle_errors
def list_(ctx: click.Context, output: str) -> None:
    """List the named services of this ledger home and their public keys.

    \b
    Examples:
      ledger access list
      ledger access list -o json
    """
    from ledger.cli.common import settings
    from ledger.nats_auth import service_seed_file, services

    config = settings(ctx)
    found = services(config.home)
    rows: list[dict[str, Any]] = [
        {
            "service": name,
            "public_key": key,
            "seed_file": str(service_seed_file(config.home, name)),
        }
        for name, key in found.items()
    ]
    if output == "json":
        echo_json(rows)
        return
    if not rows:
        click.echo("No named services (add one with `ledger access add NAME`).")
        return
    width = max(len(row["service"]) for row in rows)
    for row in rows:
        click.echo(f"{row['service']:<{width}}  {row['public_key']}")


@access.command("remove")
@click.argument("name")
@output_option("table", "json")
@click.pass_context
@handle_errors
def remove(ctx: click.Context, name: str, output: str) -> None:
    """Revoke service NAME: its key is deleted and no longer admitted.

    A running `ledger serve` reloads at once and disconnects the service.  Its durable
    consumer stays on the stream (delete it with the NATS tools if it is not coming back).

    \b
    Examples:
      ledger access remove billing
    """
    from ledger.cli.common import settings
    from ledger.errors import InputError
    from ledger.nats_auth import AccessError, remove_service

    config = settings(ctx)
    name = _name(name)
    try:
        remove_service(config.home, name)
    except AccessError as exc:
        raise InputError(str(exc), field="NAME") from None
    pid = _reload(config)
    if output == "json":
        echo_json({"service": name, "removed": True, "reloaded_pid": pid})
        return
    click.echo(f"Removed service '{name}'.")
    click.echo(_server_note(config, pid).replace("admits it when", "reads the change when"))
