"""Which item codes a licence item or a clause covers: decided once, here.

A pattern covers an item code when they are equal, or when the pattern is a prefix of
the code at a dot boundary: ``1C902`` covers ``1C902.a`` and ``1C902.a.1``, ``8505``
covers ``8505.11``; ``1C90`` covers neither, and ``1C902.a`` does not cover ``1C902``.

A shipment draws on the most specific licensed item that covers its code (the longest
pattern), whatever its unit; its quantity is in that item's unit. Units are never
converted: an export asked about in another unit than the item's is not covered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar


def item_matches(pattern: str, item: str) -> bool:
    """Exact match, or ``pattern`` is a prefix of ``item`` at a dot boundary."""
    return item == pattern or item.startswith(pattern + ".")


class Coded(Protocol):
    @property
    def item(self) -> str: ...


C = TypeVar("C", bound=Coded)


def most_specific(items: Iterable[C], code: str) -> C | None:
    """The item whose pattern covers ``code`` most specifically (None: none covers it)."""
    best: C | None = None
    for candidate in items:
        pattern = candidate.item
        if item_matches(pattern, code) and (best is None or len(pattern) > len(best.item)):
            best = candidate
    return best
