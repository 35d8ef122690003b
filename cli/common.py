"""Shared CLI plumbing: opening the ledger, time options, output formats, errors.

Commands stay thin: parse options, call the ledger, render.  Errors from the ledger become
one clear line on stderr (or a JSON object with ``--output json``) and an exit code:
2 malformed input, 1 rule violation / conflict / unreachable store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def settings(ctx: click.Context | None = None) -> Settings:
    from ledger.config import Settings

    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    overrides: dict[str, str] = root.obj or {}
    return Settings.from_env({**os.environ, **overrides})


@contextmanager
def open_ledger(
    ctx: click.Context | None = None, *, existing: bool = False, writes: bool = False
) -> Iterator[Ledger]:
    """The ledger application for this invocation's configuration.

    ``existing``: for commands that only read, a SQLite ledger that is not there is an
    error (a mistyped --home would otherwise create an empty ledger and answer "nothing").
    ``writes``: for commands that append, a SQLite ledger that is not there yet is made
    only if the command succeeds (``first_write``): a first append or import that fails
    leaves nothing behind.
    """
    from ledger.app import Ledger
    from ledger.config import ConfigError

    config = settings(ctx)
    path = config.sqlite_path if config.backend == "sqlite" else None
    new = path is not None and str(path) != ":memory:" and not path.exists()
    if existing and new:
        raise ConfigError(
            f"no ledger at {path}: check --home / LEDGER_HOME (a ledger is created by its "
            "first `ledger append` or `ledger import`)"
        )
    from ledger.store.home import first_write

    with first_write(config) if writes and new else contextlib.nullcontext(config) as config:
        app = Ledger(config)
        try:
            yield app
        finally:
            app.close()


def emit_error(exc: BaseException, *, as_json: bool) -> None:
    from ledger.errors import LedgerError

    if as_json:
        body = (
            exc.to_dict()
            if isinstance(exc, LedgerError)
            else {
                "error": type(exc).__name__,
                "message": str(exc),
            }
        )
        click.echo(json.dumps(body), err=True)
    else:
        click.secho(f"Error: {exc}", fg="red", err=True)


def handle_errors(func: F) -> F:
    """Turn ledger, configuration and store errors into messages and exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import sqlite3

        from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError

        from ledger.config import ConfigError
        from ledger.errors import LedgerError
        from ledger.times import TimeParseError

        as_json = kwargs.get("output") in JSON_OUTPUTS
        try:
            return func(*args, **kwargs)
        except LedgerError as exc:
            emit_error(exc, as_json=as_json)
            if not as_json and _is_write():
                click.echo("Nothing was appended.", err=True)
            sys.exit(exc.exit_code)
        except (ConfigError, TimeParseError) as exc:
            emit_error(exc, as_json=as_json)
            sys.exit(2)
        except (PersistenceError, sqlite3.Error) as exc:
            reachable = not isinstance(exc, InterfaceError | OperationalError | sqlite3.Error)
            what = "the store refused the operation" if reachable else "the store is unavailable"
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "couldn't get a connection" in detail:
                detail = _why_unreachable() or detail
            emit_error(
                RuntimeError(f"{what}: {detail} ({settings().redacted_url})"), as_json=as_json
            )
            sys.exit(1)
        except BrokenPipeError:  # e.g. `ledger log | head`
            sys.stderr.close()
            sys.exit(0)

    return wrapper  # type: ignore[return-value]


def _why_unreachable() -> str | None:
    """PostgreSQL's reason, when its connection pool only timed out."""
    try:
        config = settings()
        if config.backend != "postgres":
            return None
        from ledger.store.postgres import why_unreachable

        return why_unreachable(config.eventsourcing_env())
    except Exception:  # the original error stands
        return None


def _is_write() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.command.name in ("append", "import", "retract", "apply"))


def require_text(value: str, option: str) -> str:
    """Free text an option must give (a reason, an end use): blank text says nothing, so
    it is refused like missing text (the event contract only asks for one character)."""
    from ledger.errors import InputError

    if not value.strip():
        raise InputError("must not be blank", field=option)
    return value


def not_blank(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A filter given empty (``--exporter "$ID"`` with ``ID`` unset) is a usage error:
    ``log --entity ''`` listed every event, the views' filters matched nothing; either
    way the script's mistake went unseen."""
    for given in value if isinstance(value, tuple) else (value,):
        if given is not None and not given.strip():
            raise click.BadParameter("must not be empty")
    return value


def parse_time_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> dt.datetime | None:
    from ledger.times import TimeParseError, parse_query_time

    if value is None:
        return None
    try:
        return parse_query_time(value)
    except TimeParseError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_known_at_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> dt.datetime | None:
    """``--known-at``: a time not yet reached is now (the ledger cannot know yet what it
    will know), so the answer is fixed at the instant the query ran, and says so."""
    from ledger.times import iso_seconds, now

    known_at = parse_time_option(ctx, param, value)
    current = now()
    if known_at is not None and known_at > current:
        click.echo(
            f"Note: --known-at {value} has not happened yet; answering as known now "
            f"({iso_seconds(current)})",
            err=True,
        )
        return current
    return known_at


def time_options(func: F) -> F:
    """``--as-of`` and ``--known-at`` (bare date = end of that day in the --tz zone)."""
    func = click.option(
        "--known-at",
        callback=parse_known_at_option,
        metavar="TIME",
        help="What the ledger knew at TIME (recorded-time bound; a time still to come is "
        "now). Default: now.",
    )(func)
    func = click.option(
        "--as-of",
        callback=parse_time_option,
        metavar="TIME",
        help="State of the world at TIME (effective-time bound; a bare date means the end "
        "of that day in the --tz zone, default UTC). Default: now.",
    )(func)
    return func


OUTPUT_FORMATS = ("table", "json", "jsonl", "csv")
"""The ``-o`` choices, in this order wherever a command offers them: ``table`` for people,
``json`` one document, ``jsonl`` one object per line (rows, events), ``csv`` tidy rows."""

OUTPUT_ALIASES = {"text": "table"}
"""Names scripts may still pass (``-o text`` was the plain format's name); not listed."""

JSON_OUTPUTS = ("json", "jsonl", "cloudevents")
"""Formats whose errors are JSON on stderr too."""


class OutputChoice(click.Choice):  # type: ignore[type-arg]
    """``click.Choice`` that also takes the hidden aliases (``text`` for ``table``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value in OUTPUT_ALIASES and value not in self.choices:
            value = OUTPUT_ALIASES[value]
        return super().convert(value, param, ctx)


def output_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """``-o/--output`` with ``choices`` (a subset of OUTPUT_FORMATS, and extras such as
    ``cloudevents``); the plain format is always called ``table``."""
    return click.option(
        "--output",
        "-o",
        type=OutputChoice(choices),
        default=default,
        show_default=True,
        help="Output format.",
    )


def metrics_options(func: F) -> F:
    """``--metrics-port`` / ``--metrics-address``: Prometheus ``/metrics`` of a service."""
    func = click.option(
        "--metrics-address",
        envvar="LEDGER_METRICS_ADDRESS",
        default="127.0.0.1",
        show_default=True,
        metavar="ADDRESS",
        help="Address the metrics endpoint listens on (loopback unless you choose another). "
        "[env: LEDGER_METRICS_ADDRESS]",
    )(func)
    func = click.option(
        "--metrics-port",
        envvar="LEDGER_METRICS_PORT",
        type=click.IntRange(0, 65535),
        metavar="PORT",
        help="Serve Prometheus metrics at http://ADDRESS:PORT/metrics (positions, lag, "
        "published/applied events, errors, poison messages); 0 picks a free port. The URL "
        "goes to stderr. [env: LEDGER_METRICS_PORT]",
    )(func)
    return func


@contextmanager
def metrics_server(ctx: click.Context, port: int | None, address: str) -> Iterator[Any]:
    """The metrics endpoint while the block runs (None without ``--metrics-port``)."""
    if port is None:
        yield None
        return
    from ledger.config import ConfigError
    from ledger.metrics import MetricsServer

    try:
        server = MetricsServer(settings(ctx), port, address)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}"
        ) from None
    click.echo(f"Metrics at {server.url}", err=True)
    try:
        yield server
    finally:
        server.stop()


def to_jsonable(obj: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(obj)


def echo_json(obj: Any) -> None:
    import msgspec

    click.echo(msgspec.json.encode(obj).decode())


def echo_jsonl(rows: Any) -> None:
    """One JSON object per line (``-o jsonl``): each row of what ``-o json`` wraps."""
    import msgspec

    encoder = msgspec.json.Encoder()
    for row in rows:
        sys.stdout.write(encoder.encode(row).decode() + "\n")


def render_table(
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    headers: dict[str, str] | None = None,
    width: int = 100,
    max_lines: int = 3,
) -> str:
    """A plain-text table that fits ``width`` columns.

    Cells wrap at spaces (and after hyphens) rather than being cut: ids, statuses and
    dates stay whole where the width allows, and only the last column — free text in
    every view — is shortened with an ellipsis after ``max_lines`` lines.  Columns give
    way in this order: the last column, then the others widest first down to their
    longest word, then free text down to words of 12 characters, then ids (the row's own
    id among them, widest first), then free text below that.  A view with more columns
    than fit will still split some ids: the fix there is fewer columns.
    """
    headers = headers or {}
    titles = [headers.get(c, c.replace("_", " ")) for c in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    # Widths are display columns (wcwidth): a CJK character takes two, a combining mark none.
    widths = [
        max([display_width(t)] + [display_width(r[i]) for r in cells]) for i, t in enumerate(titles)
    ]
    words = [
        max([display_width(w) for r in cells for w in r[i].split()] + [display_width(t)])
        for i, t in enumerate(titles)
    ]
    budget = width - 2 * (len(columns) - 1)
    last = len(columns) - 1
    middle = list(range(1, last))
    # Free text (values with spaces) splits before ids and codes do.
    prose = [i for i in range(1, last + 1) if any(" " in r[i] for r in cells)]
    stages: list[tuple[list[int], Callable[[int], int]]] = [
        ([last] if last else [], lambda i: min(widths[i], max(words[i], 24))),
        (middle, lambda i: words[i]),  # whole words
        ([last] if last else [], lambda i: 12),
        (prose, lambda i: min(words[i], 12)),  # free text wraps, its words (dates) whole
        # Ids split (after a hyphen where they have one) only when nothing else fits, the
        # widest first: the row's own id shares the room with the ids it points to
        # instead of squeezing them to a sliver.
        ([0, *middle], lambda i: 8 if i else 10),
        (prose, lambda i: 8),
    ]
    for allowed, floor in stages:
        while sum(widths) > budget:
            candidates = [i for i in allowed if widths[i] > floor(i)]
            if not candidates:
                break
            widths[max(candidates, key=lambda i: widths[i])] -= 1
    lines: list[str] = []

    def add(wrapped: list[list[str]]) -> None:
        for k in range(max(len(parts) for parts in wrapped)):
            lines.append(
                "  ".join(
                    pad(parts[k] if k < len(parts) else "", w)
                    for parts, w in zip(wrapped, widths, strict=True)
                ).rstrip()
            )

    # Titles wrap like cells (a narrowed column's title is never cut).
    add([_wrap(t, w, display_width(t) + 1) for t, w in zip(titles, widths, strict=True)])
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        add(
            [
                _wrap(c, w, max_lines if i == last and i else display_width(c) + 1)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ]
        )
    return "\n".join(lines)


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    if display_width(text) <= width:
        return [text]
    parts = _wrap_words(text, width) or [""]
    if len(parts) > max_lines:
        parts = parts[:max_lines]
        parts[-1] = fit(parts[-1] + " …", width).rstrip()
    return parts


def _wrap_words(text: str, width: int) -> list[str]:
    """Greedy wrap at spaces.  A word too long for a line of its own (an id) is split
    after its hyphens, and only a piece still too long is cut; a word that fits a line
    (a date, a status) is never split."""
    import re

    lines: list[str] = []
    line = ""
    for word in text.split():
        sep = " " if line else ""
        if display_width(line) + len(sep) + display_width(word) <= width:
            line += sep + word
            continue
        if display_width(word) <= width:
            lines.append(line)
            line = word
            continue
        pieces = [p for p in re.split(r"(?<=-)", word) if p]
        for k, piece in enumerate(pieces):
            sep = " " if line and k == 0 else ""
            while display_width(piece) > width:  # no hyphen left to split at: cut
                room = width - display_width(line) - len(sep)
                head = cut_to_width(piece, room)
                if not head and line:
                    lines.append(line)
                    line, sep = "", ""
                    continue
                head = head or piece[0]  # a column narrower than one wide character
                line += sep + head
                piece = piece[len(head) :]
                lines.append(line)
                line, sep = "", ""
            if display_width(line) + len(sep) + display_width(piece) <= width:
                line += sep + piece
            else:
                lines.append(line)
                line = piece
    if line:
        lines.append(line)
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dt.datetime):
        from ledger.times import iso

        return iso(value)
    return str(value)


def fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` display columns: padded, or cut with an ellipsis."""
    if display_width(text) <= width:
        return pad(text, width)
    return cut_to_width(text, max(0, width - 1)) + "…"


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: two per East Asian wide character, none per
    combining mark or control character (``len`` counts characters)."""
    if text.isascii() and text.isprintable():
        return len(text)
    from wcwidth import wcswidth, wcwidth

    width = wcswidth(text)
    return width if width >= 0 else sum(max(wcwidth(c), 0) for c in text)


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` display columns (``str.ljust`` by display width)."""
    return text + " " * max(0, width - display_width(text))


def cut_to_width(text: str, width: int) -> str:
    """The longest prefix of ``text`` that takes at most ``width`` display columns."""
    if display_width(text) <= width:
        return text
    used = 0
    for k, char in enumerate(text):
        used += display_width(char)
        if used > width:
            return text[:k]
    return text


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: str) -> str:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a
    leading apostrophe (OWASP's advice for CSV exports; a party named
    '=HYPERLINK(...)' is data, not a formula).  Plain numbers (-5, -0.25) are kept."""
    if cell.startswith(_FORMULA_STARTS) and not _is_number(cell):
        return "'" + cell
    return cell


def _is_number(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    whole, _, fraction = body.partition(".")
    return whole.isascii() and whole.isdigit() and (not fraction or fraction.isdigit())


class SafeCsvWriter:
    """``csv.writer`` on stdout whose every cell goes through ``csv_safe``."""

    def __init__(self) -> None:
        import csv

        self._writer = csv.writer(sys.stdout)

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([csv_safe(_cell(value)) for value in row])


def write_csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    writer = SafeCsvWriter()
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c) for c in columns])
