"""Parties (exporters, end users, governments): state, fold step, rules, and what makes
an end user eligible for a licence.

An end user is *military* when classified military or on a military end-user list; a
licence may name only end users that are registered, vetted-approved and not military
on the day it names them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from ledger import events as ev
from ledger.domain.facts import Check, Facts, day, require, shared, shared_names, window
from ledger.errors import RuleViolation
from ledger.times import end_text

MILITARY_LIST = "military-end-user"
"""The list kind that makes an end user military."""
SUSPECT_LISTS = frozenset({MILITARY_LIST, "restricted"})
"""List kinds on which a licensed end user is a finding (``licensed-end-user-listed``)."""


@dataclass(slots=True)
class Listing:
    list_name: str
    list_kind: str
    authority: str
    listed_at: dt.datetime
    event_id: UUID


@dataclass(slots=True)
class PartyState:
    party_id: str
    name: str
    country: str
    roles: tuple[str, ...]
    registered_at: dt.datetime
    vetting: str | None = None
    vetting_authority: str | None = None
    vetted_at: dt.datetime | None = None
    vetting_until: dt.datetime | None = None
    vetting_event_id: UUID | None = None
    classification: str | None = None
    classification_event_id: UUID | None = None
    listings: dict[str, Listing] = field(default_factory=dict)
    event_ids: list[UUID] = field(default_factory=list)

    def vetting_at(self, t: dt.datetime) -> str:
        """approved | rejected | expired | not-vetted."""
        if self.vetting is None:
            return "not-vetted"
        if self.vetting_until is not None and t >= self.vetting_until:
            return "expired"
        return self.vetting

    def is_military(self) -> bool:
        """Classified military, or on a military end-user list."""
        return self.classification == "military" or any(
            item.list_kind == MILITARY_LIST for item in self.listings.values()
        )

    def end_user_class(self) -> str:
        if self.is_military():
            return "military"
        return self.classification or "civil"

    def apply(self, e: ev.Event) -> None:
        self.event_ids.append(e.event_id)
        if isinstance(e, ev.PartyVetted):
            self.vetting = shared(e.outcome)
            self.vetting_authority = shared(e.authority)
            self.vetted_at = e.effective_at
            self.vetting_until = e.valid_until
            self.vetting_event_id = e.event_id
        elif isinstance(e, ev.PartyClassified):
            self.classification = e.classification
            self.classification_event_id = e.event_id
        elif isinstance(e, ev.PartyListed):
            self.listings[e.list_name] = Listing(
                e.list_name, e.list_kind, e.authority, e.effective_at, e.event_id
            )
        elif isinstance(e, ev.PartyDelisted):
            self.listings.pop(e.list_name, None)


def new_party(e: ev.PartyRegistered) -> PartyState:
    return PartyState(
        party_id=shared(e.entity_id),  # (the licences naming it hold the same string)
        name=e.name,
        country=shared(e.country),
        roles=shared_names(e.roles),
        registered_at=e.effective_at,
        event_ids=[e.event_id],
    )


# --- licensable end users ---------------------------------------------------------------


def check_end_users(
    facts: Facts,
    end_users: Sequence[str],
    at: dt.datetime,
    field: str,
    *,
    already: Collection[str] = (),
) -> None:
    """Each end user is registered, not military and vetted-approved at ``at`` (what a
    licence needs of the end users it names).  ``already``: end users the licence names
    already, not checked again; a refusal still names the end user's index in the whole
    list (``end_users[1]``), the field as the operator wrote it."""
    for i, party_id in enumerate(end_users):
        if party_id in already:
            continue
        name = f"{field}[{i}]"
        require(facts, "party", party_id, name, PartyState)
        party = facts.state("party", party_id, at)
        if not isinstance(party, PartyState):
            raise RuleViolation(
                "end-user-not-vetted",
                f"end user '{party_id}' is not registered on {day(at)}",
                field=name,
            )
        if party.is_military():
            raise RuleViolation(
                "end-user-military",
                f"end user '{party_id}' is listed or classified as military on {day(at)}",
                field=name,
            )
        vetting = party.vetting_at(at)
        if vetting != "approved":
            detail = {
                "not-vetted": "has never been vetted",
                "rejected": "was rejected at vetting",
                "expired": f"vetting expired at {end_text(party.vetting_until)}"
                if party.vetting_until is not None
                else "vetting expired",
            }[vetting]
            raise RuleViolation(
                "end-user-not-vetted",
                f"end user '{party_id}' is not vetted-approved on {day(at)} ({detail})",
                field=name,
            )


# --- rules ------------------------------------------------------------------------------


def _party_vetted(e: ev.PartyVetted, facts: Facts) -> None:
    require(facts, "party", e.entity_id, "entity_id", PartyState)
    window(e.effective_at, e.valid_until, "valid_until")


def _party_listed(e: ev.PartyListed, facts: Facts) -> None:
    require(facts, "party", e.entity_id, "entity_id", PartyState)
    party = facts.state("party", e.entity_id, e.effective_at)
    if isinstance(party, PartyState) and e.list_name in party.listings:
        since = party.listings[e.list_name].listed_at
        raise RuleViolation(
            "already-listed",
            f"party '{e.entity_id}' is already on '{e.list_name}' since {day(since)}",
            field="list_name",
        )


def _party_delisted(e: ev.PartyDelisted, facts: Facts) -> None:
    require(facts, "party", e.entity_id, "entity_id", PartyState)
    party = facts.state("party", e.entity_id, e.effective_at)
    if not isinstance(party, PartyState) or e.list_name not in party.listings:
        raise RuleViolation(
            "not-listed",
            f"party '{e.entity_id}' is not on '{e.list_name}' on {day(e.effective_at)}",
            field="list_name",
        )


def _party_exists(e: ev.Event, facts: Facts) -> None:
    require(facts, "party", e.entity_id, "entity_id", PartyState)


CHECKS: dict[type[ev.Event], Check] = {
    ev.PartyVetted: _party_vetted,
    ev.PartyClassified: _party_exists,
    ev.PartyListed: _party_listed,
    ev.PartyDelisted: _party_delisted,
}
