"""The ledger's aggregate helpers (``ledger.domain.aggregate``, ``ledger.domain.state``):
which entities an event's rules consult, the repository's projector, and the
bitemporal fold of one entity.  Pure: no services."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from ledger import events as ev
from ledger.domain import aggregate
from ledger.domain.aggregate import project_entity, references
from ledger.domain.party import PartyState
from ledger.domain.state import state_at
from tests import factory as f
from tests.unit.test_rules import Ledgerless


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def one(obj: dict[str, Any], ledger: Ledgerless | None = None) -> ev.Event:
    return (ledger or Ledgerless()).event(obj)


def test_the_entities_an_events_rules_consult(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its own entity, then every party, agreement, commitment and licence it names."""
    # The fields are found once per event type: start from none found, so that what is
    # checked is finding them (not what an earlier test left).
    monkeypatch.setattr(aggregate, "_references_of_type", {})
    licence = f.licence(end_users=["buyer", "b2"])
    assert references(one(licence)) == ["licence:GL-1", "party:jl-mag", "party:buyer", "party:b2"]
    assert references(one(f.application(licence_id="GL-1"))) == [
        "application:APP-1",
        "party:jl-mag",
        "party:buyer",
        "licence:GL-1",
    ]
    # No licence named: nothing looked up for it.
    assert references(one(f.application())) == [
        "application:APP-1",
        "party:jl-mag",
        "party:buyer",
    ]
    assert references(one(f.pledge("c1", reciprocates=["c0", "c2"]))) == [
        "commitment:c1",
        "agreement:busan-2025",
        "commitment:c0",
        "commitment:c2",
    ]
    assert references(one(f.party("x"))) == ["party:x"]
    # Asked again of the same type (the fields are then cached per type).
    assert references(one(f.licence("GL-2"))) == ["licence:GL-2", "party:jl-mag", "party:buyer"]


@dataclass
class Stored:
    originator_id: str
    originator_version: int
    event: ev.Event


def test_the_projector_rebuilds_an_entity_from_stored_events() -> None:
    ledger = Ledgerless()
    registered, vetting = ledger.append(f.party("x"), f.vetted("x"))
    entity = project_entity(None, [Stored("party:x", 1, registered)])
    assert entity is not None
    assert (entity.id, entity.version, entity.events) == ("party:x", 1, [registered])
    same = project_entity(entity, [Stored("party:x", 2, vetting)])
    assert same is entity
    assert (entity.version, entity.events) == (2, [registered, vetting])
    state = entity.state()
    assert isinstance(state, PartyState) and state.vetting == "approved"
    assert project_entity(None, []) is None


def test_state_at_an_effective_and_a_known_time() -> None:
    """As of a time (effective at or before it) and as known at a time (recorded at or
    before it, retractions recorded by then applied)."""
    ledger = Ledgerless()
    registered, vetting, listing = ledger.append(
        f.party("x"), f.vetted("x", effective_at="2025-06-01"), f.listed("x")
    )
    registered = msgspec.structs.replace(registered, recorded_at=utc("2025-01-01"))
    vetting = msgspec.structs.replace(vetting, recorded_at=utc("2025-06-01"))
    late = msgspec.structs.replace(listing, recorded_at=utc("2026-01-01"))
    retraction = msgspec.structs.replace(
        one(
            {"type": "EventRetracted", "retracted_event_id": str(vetting.event_id), "reason": "x"},
            ledger,
        ),
        recorded_at=utc("2026-02-01"),
    )
    events = [registered, vetting, late, retraction]

    def seen(as_of: str | None, known_at: str | None) -> tuple[str | None, list[str]]:
        state = state_at(
            events,
            None if as_of is None else utc(as_of),
            None if known_at is None else utc(known_at),
        )
        assert isinstance(state, PartyState)
        return state.vetting, list(state.listings)

    listed = ["CN military end users"]
    assert seen(None, None) == (None, listed)
    assert seen("2025-05-31T23:59:59", None) == (None, [])
    assert seen("2025-06-01", "2026-01-31T23:59:59") == ("approved", listed)
    assert seen("2025-06-01", "2026-01-01") == ("approved", listed)
    assert seen("2025-06-01", "2025-12-31T23:59:59") == ("approved", [])
    assert seen(None, "2026-02-01") == (None, listed)
    assert state_at(events, utc("2024-12-31T23:59:59")) is None
