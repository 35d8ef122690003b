"""``ledger demo``: the whole product on the real 2025 scenario, in one command.

On the embedded defaults (SQLite in a fresh ledger home, an embedded nats-server on a free
port): import the scenario with ``--backfill``, relay it to JetStream, show a subscriber
receiving every event, then ask what an auditor asks — each question shown as the command
that answers it, and answered by that very command.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click

from ledger.cli.common import echo_json, handle_errors, output_option


def _on(day: str) -> list[str]:
    """As of a day, as the record stood that day."""
    return ["--as-of", day, "--known-at", day]


BEIJING_DAYS = ["--tz", "Asia/Shanghai"]
"""China's measures, decisions and licences read in Beijing's calendar, as MOFCOM's notices
are ("until 27 November" is a Beijing day); the bilateral questions stay in UTC days."""
IN_BEIJING = " (in Beijing's calendar, as MOFCOM's notices read: --tz Asia/Shanghai)"


def _questions(military: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(question, ledger command answering it) — what the narrative asks, in order."""
    request = [
        f"--{name.replace('_', '-')}={military[name]}"
        for name in ("exporter", "end_user", "item", "quantity", "unit", "destination", "end_use")
    ]
    return [
        (
            "Commitments and asymmetry under the Busan arrangement on 2025-11-14, "
            "as the record stood that day (UTC days)",
            ["asymmetry", *_on("2025-11-14")],
        ),
        (
            "The same on 2025-12-05, after the first general licences (UTC days)",
            ["asymmetry", *_on("2025-12-05")],
        ),
        (
            "Chinese export controls in force on 2025-11-14" + IN_BEIJING,
            [*BEIJING_DAYS, "measures", *_on("2025-11-14"), "--status", "in-force"],
        ),
        (
            "...and the ones suspended that day, through which day" + IN_BEIJING,
            [*BEIJING_DAYS, "measures", *_on("2025-11-14"), "--status", "suspended"],
        ),
        (
            "Would the military end user's Dy-magnet application of 2025-12-01 be allowed?"
            + IN_BEIJING,
            [*BEIJING_DAYS, "check", *_on("2025-12-01"), *request],
        ),
        ("Licences on 2025-12-05" + IN_BEIJING, [*BEIJING_DAYS, "licences", *_on("2025-12-05")]),
        (
            "What an auditor must look at on 2025-12-05 (UTC days)",
            ["findings", *_on("2025-12-05")],
        ),
    ]


def _run_command(globals_: list[str], args: list[str], *, capture: bool) -> tuple[int, str]:
    """Run one ledger command in process against the demo's ledger."""
    from ledger.cli.main import cli

    buffer = io.StringIO()
    code = 0
    redirect = contextlib.redirect_stdout(buffer) if capture else contextlib.nullcontext()
    with redirect:
        try:
            cli.main(args=[*globals_, *args], prog_name="ledger", standalone_mode=False)
        except SystemExit as exc:  # handle_errors exits with the command's code
            code = int(exc.code or 0)
    return code, buffer.getvalue()


def _military_application(app: Any) -> dict[str, Any]:
    from ledger.scenario import MILITARY_APPLICATION_DEC1

    entity = app.entity("application", MILITARY_APPLICATION_DEC1)
    submitted = next(e for e in entity.events if e.type == "ApplicationSubmitted")
    return {
        "exporter": submitted.exporter,
        "end_user": submitted.end_user,
        "item": submitted.item,
        "quantity": str(submitted.quantity),
        "unit": submitted.unit,
        "destination": submitted.destination,
        "end_use": submitted.end_use,
    }


async def _receive_all(url: str, settings: Any, expected: int, timeout: float) -> list[Any]:
    """Subscribe from the beginning and collect every event (at most ``timeout`` seconds).

    The consumer is ephemeral: a rerun on a kept home reads the whole stream again."""
    from ledger.subscriber import subscribe

    received: list[Any] = []
    deadline = time.monotonic() + timeout
    async with subscribe(url, settings=settings, start="beginning") as sub:
        while len(received) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            delivery = await sub.next_delivery(timeout=remaining)
            if delivery is None:
                break
            received.append(delivery)
    return received


@click.command()
@click.option(
    "--home",
    "demo_home",
    type=click.Path(file_okay=False),
    help="Keep the demo's ledger here: a new directory or one an earlier demo kept, never "
    "another ledger (default: a temporary directory, removed afterwards).",
)
@click.option(
    "--web",
    "with_web",
    is_flag=True,
    help="Then serve the demo's ledger with `ledger web` on 127.0.0.1 until Ctrl-C, printing "
    "the URL of the Busan commitments timeline as of 2025-11-14.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="With --web: the port (0: a free one).",
)
@output_option("table", "json")
@click.pass_context
@handle_errors
def demo(ctx: click.Context, demo_home: str | None, with_web: bool, port: int, output: str) -> None:
    """Run the real 2025 scenario end to end on the embedded defaults.

    Imports the US-China critical-minerals facts of 2023-2025 (measures, the Geneva and
    Busan arrangements and both sides' commitments, the November 2025 suspensions, the
    first general licences) into a fresh SQLite ledger with their historical recorded
    times, relays them to an embedded NATS JetStream server, shows a subscriber
    receiving every event, and answers an auditor's questions as of past dates.  Ignores
    LEDGER_DATABASE_URL and LEDGER_NATS_URL, and LEDGER_HOME too (a demo never writes
    into your ledger): the ledger is kept only where --home names it, given after `demo`
    or before it.

    \b
    Examples:
      ledger demo
      ledger demo --home ./demo-ledger     # keep the ledger to explore it afterwards
      ledger --home ./demo-ledger demo     # the same
      ledger demo --output json
      ledger demo --web                    # then browse it at http://127.0.0.1:8080/
    """
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.intake import iter_lines
    from ledger.nats_auth import embedded_server
    from ledger.relay import Relay
    from ledger.scenario import scenario_path
    from ledger.times import iso_seconds

    as_json = output == "json"
    say = (lambda *a, **k: None) if as_json else click.echo
    web = None
    started = time.perf_counter()
    if demo_home is None:
        demo_home = _global_home(ctx)
    keep = demo_home is not None
    home = Path(demo_home) if demo_home else Path(tempfile.mkdtemp(prefix="ledger-demo-"))
    home.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{(home / 'ledger.db').resolve()}"
    settings = Settings.from_env(
        {"LEDGER_HOME": str(home), "LEDGER_DATABASE_URL": database_url, "LEDGER_ACTOR": "demo"}
    )
    report: dict[str, Any] = {"home": str(home), "store": database_url}
    app = Ledger(settings)
    try:
        _refuse_a_ledger_not_the_demos(app, home)
    except BaseException:
        app.close()
        raise
    server = embedded_server(settings)
    try:
        url = server.start()
        report["nats_url"] = url
        say(click.style("Ledger demo: the 2025 US-China critical-minerals record", bold=True))
        say(f"  ledger home   {home}{'' if keep else '  (temporary)'}")
        say(f"  store         {database_url}")
        say(f"  NATS          {url}  (embedded nats-server, JetStream)")

        # 1. Import the scenario with its historical recorded times.
        with scenario_path().open("rb") as f:
            submissions = app.parse_lines(iter_lines(f), backfill=True)
        result = app.append(submissions, backfill=True)
        recorded = [s.event.recorded_at for s in submissions]
        report["imported"] = {
            "events": len(result.appended),
            "duplicates": len(result.duplicates),
            "head": app.head(),
        }
        say(
            f"\nImported {len(result.appended)} events (ledger import --backfill), recorded "
            f"{iso_seconds(min(recorded))[:10]} .. {iso_seconds(max(recorded))[:10]}: "
            f"positions 1-{app.head()}."
        )

        # 2. Relay to JetStream, and 3. a subscriber receives every event.
        stats = Relay(app, url).run_once()
        say(
            f"Relayed {stats.published} events to stream {settings.stream} "
            f"(subjects {settings.subject_prefix}.>), exactly once, in order."
        )
        received = asyncio.run(_receive_all(url, settings, app.head(), timeout=30.0))
        positions = [d.position for d in received]
        in_order = positions == sorted(positions) == list(range(1, app.head() + 1))
        kinds = Counter(d.event.entity_kind for d in received)
        report["relayed"] = stats.published
        report["subscriber"] = {
            "received": len(received),
            "in_order": in_order,
            "by_kind": dict(kinds),
        }
        say(
            f"A subscriber received {len(received)}/{app.head()} typed events"
            f"{' in order' if in_order else ''}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + "."
        )
        if received:
            last = received[-1]
            say(f"  last: {last.subject}  ({last.event_type}, position {last.position})")

        # 4. The auditor's questions, each answered by the command that answers it.
        questions = _questions(_military_application(app))
        # The answers run as commands of their own: they inherit the demo's --color.
        colour = {True: "always", False: "never", None: "auto"}[ctx.color]
        globals_ = ["--home", str(home), "--database-url", database_url, "--color", colour]
        answers = []
        for number, (question, args) in enumerate(questions, start=1):
            say("\n" + click.style(f"{number}. {question}", bold=True))
            say(click.style("$ ledger " + " ".join(_quote(a) for a in args), fg="cyan"))
            if as_json:
                code, text = _run_command(globals_, [*args, "--output", "json"], capture=True)
                answers.append(
                    {
                        "question": question,
                        "command": ["ledger", *args],
                        "exit_code": code,
                        "answer": json.loads(text or "null"),
                    }
                )
            else:
                sys.stdout.flush()
                code, _ = _run_command(globals_, args, capture=False)
            if code != 0:
                raise click.ClickException(f"`ledger {' '.join(args)}` failed ({code})")
        report["questions"] = answers

        # 5. The record proves itself: the signed checkpoint and one inclusion proof.
        report["proof"] = _prove_one(app, globals_, say, as_json, len(questions) + 1)
        if with_web:  # bound now: a port in use fails before the temporary home goes
            from ledger.times import zone_name
            from ledger.web.run import WebError, WebServer
            from ledger.web.server import WebConfig

            try:
                web = WebServer(settings, "127.0.0.1", port, WebConfig(zone=zone_name()))
            except WebError as exc:
                raise click.ClickException(str(exc)) from None
            report["web"] = web.url + BUSAN_TIMELINE
    finally:
        app.close()
        server.stop()
        if not keep and web is None:
            shutil.rmtree(home, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - started, 2)
    if web is not None:
        _serve(web, home, keep=keep, report=report if as_json else None)
        return
    if as_json:
        echo_json(report)
    else:
        # The commands above name no home: say where --home goes (before the command).
        click.echo(
            f"\nDone in {report['seconds']} s."
            + (
                f" Explore the ledger with the commands above as `ledger --home "
                f"{_quote(str(home))} COMMAND ...`."
                if keep
                else " The temporary ledger was removed; keep one with `ledger demo --home "
                "DIR`, then explore it with the commands above as `ledger --home DIR "
                "COMMAND ...`."
            )
        )


BUSAN_TIMELINE = "/commitments?agreement=busan-2025&as_of=2025-11-14&known_at=2025-11-14"
"""The page the demo's narrative describes: Busan as of 2025-11-14, as known that day."""


def _serve(web: Any, home: Path, *, keep: bool, report: dict[str, Any] | None) -> None:
    """Serve the demo's ledger until Ctrl-C/SIGTERM; a temporary home goes afterwards."""
    if report is not None:
        echo_json(report)
    else:
        click.echo(
            f"\nServing the demo's ledger (read-only); the Busan timeline as of 2025-11-14:\n"
            f"  {web.url}{BUSAN_TIMELINE}\n"
            + ("Ctrl-C stops." if keep else "Ctrl-C stops and removes the temporary ledger.")
        )
    sys.stdout.flush()
    try:
        web.run()
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def _prove_one(
    app: Any, globals_: list[str], say: Any, as_json: bool, number: int
) -> dict[str, Any]:
    """Print the latest signed checkpoint, then prove one licence grant against it and
    check the proof as an auditor would, offline, with the public key alone."""
    from ledger import audit

    key = app.signing_key().verifier
    note = audit.latest_checkpoint(app)
    entry = next(iter(app.log(types=["LicenceGranted"])))
    event_id = str(entry.event.event_id)
    say(
        "\n"
        + click.style(f"{number}. Can an auditor check the record without trusting us?", bold=True)
    )
    say(click.style("$ ledger checkpoint", fg="cyan"))
    say(note, nl=False)
    proof = audit.prove(app, entry.event.event_id, key=key)
    checked = audit.verify_proof(proof, key)
    say(click.style(f"$ ledger prove {event_id} -o json > proof.json", fg="cyan"))
    say(click.style('$ ledger verify-proof proof.json --key "$(ledger key)"', fg="cyan"))
    say(
        f"OK: event {event_id} ({entry.event.type} {entry.event.entity_id}) is leaf "
        f"{checked.leaf_index} of the {checked.tree_size} events of {checked.origin}, "
        f"signed by {key.name}+{key.key_id.hex()}."
    )
    return {
        "checkpoint": note,
        "verifier_key": key.text(),
        "event_id": event_id,
        "leaf_index": checked.leaf_index,
        "tree_size": checked.tree_size,
        "verified": True,
    }


def _refuse_a_ledger_not_the_demos(app: Any, home: Path) -> None:
    """The demo imports the scenario into a new ledger or one an earlier demo kept (the
    scenario's first event at position 1).  Pointed at another ledger, it started an
    embedded NATS server in that home and then failed on the scenario's first line
    (recorded times earlier than the ledger's) with a message about backfills."""
    import json
    from uuid import UUID

    from ledger.errors import InputError
    from ledger.scenario import scenario_path

    head = app.head()
    if head == 0:
        return
    with scenario_path().open("rb") as f:
        first = UUID(json.loads(f.readline())["event_id"])
    entry = app.get_event(first)
    if entry is None or entry.position != 1:
        raise InputError(
            f"{home} holds a ledger that is not a demo's ({head:,} events): the demo "
            "writes the 2025 record only into a new directory or one an earlier demo kept",
            field="--home",
        )


def _global_home(ctx: click.Context) -> str | None:
    """``ledger --home DIR demo``: the global --home when given on the command line (not
    LEDGER_HOME from the environment, which names the user's own ledger)."""
    from click.core import ParameterSource

    root = ctx.find_root()
    if root.get_parameter_source("home") != ParameterSource.COMMANDLINE:
        return None
    home = root.params.get("home")
    return str(home) if home else None


def _quote(arg: str) -> str:
    """Shell-quote an argument for display (``--end-use="..."`` keeps its option name)."""
    import shlex

    return (
        shlex.quote(arg)
        if "=" not in arg
        else arg.split("=", 1)[0] + "=" + shlex.quote(arg.split("=", 1)[1])
    )
