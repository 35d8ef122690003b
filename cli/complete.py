"""Shell completion of values: event types, entity kinds, entity ids, watch filters.

click generates the shell scripts (``_LEDGER_COMPLETE=bash_source ledger``; see
docs/commands.md) and asks these callbacks for the candidates of an option.  Entity ids come from
the store (the ledger named by ``--home``/``--database-url`` on the command line being
completed, else the environment); completion never creates a ledger and never fails: on
any error it offers nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import CompletionItem

MAX_CANDIDATES = 200
"""At most this many ids offered at once (a shell lists them all)."""

ENTITY_KINDS = ("agreement", "commitment", "measure", "party", "licence", "application", "claim")
"""As ``ledger.events.ENTITY_KINDS`` (kept here: completion must start fast)."""


def event_types(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from ledger.events import EVENT_TYPES

    return [
        CompletionItem(cls.__name__, help=(cls.__doc__ or "").strip().splitlines()[0])
        for cls in EVENT_TYPES
        if cls.__name__.startswith(incomplete)
    ]


def entity_ids(kind: str) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    """Ids of the stored entities of ``kind`` (for ``--licence``, ``--party``, ...)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        prefix = f"{kind}:"
        return [
            CompletionItem(key[len(prefix) :]) for key in _entity_keys(ctx, prefix + incomplete)
        ]

    return complete


def entities(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """``KIND:ID`` for ``log --entity``: the kinds first, then the ids of the kind typed."""
    kind, sep, _ = incomplete.partition(":")
    if not sep:
        return [CompletionItem(f"{k}:") for k in ENTITY_KINDS if k.startswith(incomplete)]
    if kind not in ENTITY_KINDS:
        return []
    return [CompletionItem(key) for key in _entity_keys(ctx, incomplete)]


def watch_filters(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """``watch --filter``: kinds, event types, ``KIND:ID`` and ``TYPE@KIND:ID``."""
    type_name, at, entity = incomplete.partition("@")
    if at:
        return [CompletionItem(f"{type_name}@{c.value}") for c in entities(ctx, param, entity)]
    if ":" in incomplete:
        return entities(ctx, param, incomplete)
    kinds = [CompletionItem(k) for k in ENTITY_KINDS if k.startswith(incomplete)]
    kinds += [CompletionItem(f"{k}:") for k in ENTITY_KINDS if k.startswith(incomplete)]
    return kinds + event_types(ctx, param, incomplete)


def _entity_keys(ctx: click.Context, prefix: str) -> list[str]:
    try:
        from ledger.app import Ledger
        from ledger.config import Settings

        root = ctx.find_root()
        overrides = {}
        if root.params.get("home"):
            overrides["LEDGER_HOME"] = str(root.params["home"])
        if root.params.get("database_url"):
            overrides["LEDGER_DATABASE_URL"] = str(root.params["database_url"])
        config = Settings.from_env({**os.environ, **overrides})
        if config.backend == "sqlite" and not config.sqlite_path.exists():
            return []  # never create a ledger to complete a word
        app = Ledger(config)
        try:
            return app.index.entity_keys(prefix, MAX_CANDIDATES)
        finally:
            app.close()
    except Exception:  # completion offers nothing rather than a traceback in the shell
        return []
