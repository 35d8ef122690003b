"""Reported claims: state, fold step and rules.

A claim is what someone is reported to have said will happen, was decided or was said
privately (``ClaimReported``), held as a claim and never as the fact it claims, until it
is resolved: ``confirmed`` or ``contradicted`` by facts the ledger holds
(``ClaimResolved``).  Until then it is ``unverified``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from uuid import UUID

from ledger import events as ev
from ledger.domain.facts import NOUN, Check, Facts, day
from ledger.errors import InputError, RuleViolation


@dataclass
class ClaimState:
    claim_id: str
    reported: ev.ClaimReported
    resolution: ev.ClaimResolved | None = None
    event_ids: list[UUID] = field(default_factory=list)

    def status_at(self, t: dt.datetime) -> str:
        """unverified | confirmed | contradicted."""
        if self.resolution is not None and self.resolution.effective_at <= t:
            return self.resolution.outcome
        return "unverified"

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.ClaimResolved):
            self.resolution = e


def new_claim(e: ev.ClaimReported) -> ClaimState:
    return ClaimState(claim_id=e.entity_id, reported=e, event_ids=[e.event_id])


def parse_ref(ref: str, field_: str) -> tuple[str, str]:
    """``kind:id`` into its parts (a malformed one is an input error)."""
    kind, sep, entity_id = ref.partition(":")
    if not sep or kind not in NOUN or not entity_id:
        raise InputError(
            f"'{ref}' is not an entity reference: use kind:id with kind one of "
            f"{', '.join(NOUN)} (e.g. measure:cn-ann-2025-61)",
            field=field_,
        )
    return kind, entity_id


def _require_refs(refs: tuple[str, ...], facts: Facts, field_: str) -> None:
    for ref in refs:
        kind, entity_id = parse_ref(ref, field_)
        if facts.state(kind, entity_id, None) is None:
            noun, verb = NOUN[kind]
            raise RuleViolation(
                "unknown-reference", f"{noun} '{entity_id}' was never {verb}", field=field_
            )


def _claim_reported(e: ev.ClaimReported, facts: Facts) -> None:
    _require_refs(e.about, facts, "about")


def _claim_resolved(e: ev.ClaimResolved, facts: Facts) -> None:
    state = facts.state("claim", e.entity_id, None)
    if state is None:
        raise RuleViolation(
            "unknown-reference", f"claim '{e.entity_id}' was never reported", field="entity_id"
        )
    assert isinstance(state, ClaimState)
    if state.resolution is not None:
        raise RuleViolation(
            "already-resolved",
            f"claim '{e.entity_id}' was {state.resolution.outcome} on "
            f"{day(state.resolution.effective_at)}",
            field="entity_id",
        )
    _require_refs(e.evidence, facts, "evidence")


CHECKS: dict[type[ev.Event], Check] = {
    ev.ClaimReported: _claim_reported,
    ev.ClaimResolved: _claim_resolved,
}
