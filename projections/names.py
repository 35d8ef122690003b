"""The names the views answer with (finding kinds, statuses) and how they write a
quantity, in one place.

Kept free of heavy imports so the CLI can use them without loading the views;
``ledger.projections.api`` re-exports the names.
"""

from __future__ import annotations

from ledger.domain.quantities import quantity_text

__all__ = ["CLAUSE_STATUSES", "FINDING_KINDS", "LICENCE_STATUSES", "quantity_text"]

FINDING_KINDS: tuple[str, ...] = (
    "late-usage",
    "licensed-end-user-listed",
    "commitment-overdue",
    "late-implementation",
    "unilateral-claim",
    "one-sided-implementation",
    "misaligned-ends",
    "rests-on-reports",
    "unverified-claim",
    "claim-contradicted",
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
