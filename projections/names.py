"""The names the views answer with (finding kinds, statuses), in one place.

Kept free of imports so the CLI can offer them as choices without loading the views;
``projections.api`` re-exports them.
"""

from __future__ import annotations

FINDING_KINDS: tuple[str, ...] = (
    "late-usage",
    "licensed-end-user-listed",
    "commitment-overdue",
    "late-implementation",
    "unilateral-claim",
    "one-sided-implementation",
)
LICENCE_STATUSES: tuple[str, ...] = (
    "active",
    "suspended",
    "withdrawn",
    "surrendered",
    "expired",
    "exhausted",
)
CLAUSE_STATUSES: tuple[str, ...] = ("in-force", "suspended", "not-yet-effective", "revoked")
