"""The ledger's aggregate helpers (``ledger.domain.aggregate``, ``ledger.domain.state``):
which entities an event's rules consult, the repository's projector, and the
bitemporal fold of one entity.  Pure: no services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from ledger import events as ev
from ledger.domain import aggregate
from ledger.domain import state as st
from ledger.domain.aggregate import (
    LATER_EVENTS_REPLAYED,
    Entity,
    Loaded,
    Workspace,
    project_entity,
    references,
)
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


# The working set: what a workspace reads, and when.


class Store:
    """Stored events by entity key, and the reads a workspace asked of them (in order)."""

    def __init__(self, stored: dict[str, list[ev.Event]]) -> None:
        self.stored = stored
        self.reads: list[list[str]] = []

    def load(self, keys: list[str]) -> dict[str, list[Stored]]:
        self.reads.append(list(keys))
        return {
            key: [Stored(key, n, e) for n, e in enumerate(self.stored[key], start=1)]
            for key in keys
            if key in self.stored
        }


def party_history() -> tuple[Ledgerless, list[ev.Event]]:
    ledger = Ledgerless()
    return ledger, ledger.append(f.party("x"), f.vetted("x"))


def test_a_workspace_reads_the_entities_not_loaded_once_with_their_versions() -> None:
    _, history = party_history()
    store = Store({"party:x": history})
    workspace = Workspace(store.load)
    workspace.prefetch(["party:x", "party:y", "party:x"])
    assert store.reads == [["party:x", "party:y"]]
    x = workspace.entity("party", "x")
    assert (x.id, x.version, x.events) == ("party:x", 2, history)
    assert isinstance(x.state(), PartyState)
    # Not stored: an empty entity at version 0, asked about without reading again.
    y = workspace.entity("party", "y")
    assert (y.id, y.version, y.events, y.state()) == ("party:y", 0, [], None)
    workspace.prefetch(["party:y", "party:x"])
    assert store.reads == [["party:x", "party:y"]]


def test_a_workspace_reads_an_entity_when_first_asked_about_its_state() -> None:
    _, history = party_history()
    store = Store({"party:x": history})
    workspace = Workspace(store.load)
    state = workspace.state("party", "x", None)
    assert isinstance(state, PartyState) and state.vetting == "approved"
    assert workspace.events("party", "x") == history
    assert store.reads == [["party:x"]]


def test_an_event_added_to_an_entity_not_loaded_follows_its_stored_events() -> None:
    ledger, history = party_history()
    store = Store({"party:x": history})
    workspace = Workspace(store.load)
    (listing,) = ledger.append(f.listed("x"))
    entity = workspace.add(listing)
    assert store.reads == [["party:x"]]
    assert (entity.id, entity.version, entity.events) == ("party:x", 3, [*history, listing])
    assert workspace.entity("party", "x") is entity
    state = entity.state()
    assert isinstance(state, PartyState) and list(state.listings) == ["CN military end users"]


def licence_from_snapshot(ledger: Ledgerless) -> tuple[Entity, ev.Event]:
    grant = ledger.event(f.licence())

    def history() -> list[ev.Event]:
        raise AssertionError("the history was read")

    entity = Entity.from_snapshot(
        "licence:GL-1", 1, st.fold([grant]), grant.effective_at, history, lambda ids: {}
    )
    return entity, grant


class Snapshots:
    """A snapshot loader: the licence from its snapshot, the others' events read with it
    (``with_events``) or left to the workspace's loader."""

    def __init__(self, licence: Entity, store: Store, with_events: bool) -> None:
        self.licence = licence
        self.store = store
        self.with_events = with_events
        self.asked: list[tuple[list[str], Mapping[str, Sequence[str]]]] = []

    def __call__(self, keys: list[str], shipments: Mapping[str, Sequence[str]]) -> Loaded:
        self.asked.append((list(keys), shipments))
        found = {k: self.licence for k in keys if k == self.licence.id}
        rest = [k for k in keys if k not in found]
        events = {k: [Stored(k, 1, self.store.stored[k][0])] for k in rest}
        return Loaded(found, events if self.with_events else None)


@pytest.mark.parametrize("with_events", [True, False], ids=["events-read-too", "events-apart"])
def test_a_workspace_takes_entities_from_snapshots_and_reads_only_the_others(
    with_events: bool,
) -> None:
    ledger = Ledgerless()
    licence, _ = licence_from_snapshot(ledger)
    registered = ledger.event(f.party("x"))
    store = Store({"party:x": [registered]})
    snapshots = Snapshots(licence, store, with_events)
    workspace = Workspace(store.load, snapshots)
    hint = {"licence:GL-1": ["S-1"]}
    workspace.prefetch(["licence:GL-1", "party:x"], shipments=hint)
    assert snapshots.asked == [(["licence:GL-1", "party:x"], hint)]
    # The party's events: read with the snapshots, or by the loader for it alone.
    assert store.reads == ([] if with_events else [["party:x"]])
    assert workspace.entity("licence", "GL-1") is licence
    party = workspace.entity("party", "x")
    assert (party.id, party.version, party.events) == ("party:x", 1, [registered])
    # Everything loaded: neither is asked again.
    workspace.prefetch(["party:x", "licence:GL-1"])
    assert len(snapshots.asked) == 1 and len(store.reads) == (0 if with_events else 1)


def test_a_workspace_with_every_entity_from_a_snapshot_reads_no_events() -> None:
    licence, _ = licence_from_snapshot(Ledgerless())
    store = Store({})
    snapshots = Snapshots(licence, store, with_events=False)
    workspace = Workspace(store.load, snapshots)
    workspace.prefetch(["licence:GL-1"])
    # No shipment hint given: the loader is handed an empty one.
    assert snapshots.asked == [(["licence:GL-1"], {})]
    assert store.reads == []
    assert workspace.entity("licence", "GL-1") is licence


# The entity's cached folds: what they cost, counted in fold steps and refolds.


def test_an_entity_from_a_snapshot_keeps_its_key_and_folds_an_event_at_its_latest_time() -> None:
    """An event effective exactly when the snapshot's latest event took effect is in
    effective order: folded onto the snapshot's state, the history is not read."""
    ledger = Ledgerless()
    entity, grant = licence_from_snapshot(ledger)
    assert (entity.id, entity.version) == ("licence:GL-1", 1)
    usage = ledger.event(f.usage(quantity="7", effective_at=grant.effective_at.isoformat()))
    entity.add(usage)
    assert entity.from_snapshot_still and entity.version == 2
    state = entity.state()
    assert isinstance(state, st.LicenceState) and state.items["1C902.a"].used == 7


class Steps:
    """Counts the fold's steps (``state.evolve``) and whole refolds (``state.fold``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.steps = self.refolds = 0
        evolve, fold = st.evolve, st.fold

        def counted_evolve(state: st.State | None, e: ev.Event) -> st.State | None:
            self.steps += 1
            return evolve(state, e)

        def counted_fold(events: Any) -> st.State | None:
            self.refolds += 1
            return fold(events)

        monkeypatch.setattr(st, "evolve", counted_evolve)
        monkeypatch.setattr(st, "fold", counted_fold)


def licence_with_shipments(ledger: Ledgerless, days: list[int]) -> list[ev.Event]:
    grant = ledger.event(f.licence(items=[{"item": "1C902.a", "cap": "100000", "unit": "kg"}]))
    return [grant] + [
        ledger.event(f.usage(shipment=f"S-{n}", quantity="1", effective_at=f"2026-01-{d:02d}"))
        for n, d in enumerate(days)
    ]


def test_an_event_at_the_latest_effective_time_is_folded_in_one_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = Ledgerless()
    events = licence_with_shipments(ledger, [5, 5])
    entity = Entity("licence:GL-1")
    for e in events[:2]:
        entity.add(e)
    assert entity.state() is not None  # folded from its events once
    steps = Steps(monkeypatch)
    entity.add(events[2])  # effective when the latest one is
    assert (steps.steps, steps.refolds) == (1, 0)
    assert entity.state() == st.fold(st.visible(events))


@pytest.mark.parametrize(
    ("later", "refolded"),
    [(LATER_EVENTS_REPLAYED, False), (LATER_EVENTS_REPLAYED + 1, True)],
    ids=["at-the-limit", "one-over"],
)
def test_a_backdated_licence_event_replays_up_to_the_limit_of_later_events(
    later: int, refolded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before LATER_EVENTS_REPLAYED later events or fewer, a backdated shipment is folded
    onto the state just before it and those events replayed; before more, the licence is
    refolded.  Either way the state is a fresh fold's."""
    ledger = Ledgerless()
    events = licence_with_shipments(ledger, [20] * later + [3])
    entity = Entity("licence:GL-1")
    for e in events[:-1]:
        entity.add(e)
    assert entity.state() is not None
    steps = Steps(monkeypatch)
    entity.add(events[-1])
    whole = entity.state()
    assert steps.refolds == int(refolded)
    assert whole == st.fold(st.visible(events))
    assert isinstance(whole, st.LicenceState) and whole.items["1C902.a"].used == later + 1


def test_an_entity_built_with_its_events_answers_from_them() -> None:
    ledger = Ledgerless()
    events = licence_with_shipments(ledger, [5, 9])
    entity = Entity("licence:GL-1", list(events), version=3)
    assert entity.version == 3 and entity.events == events
    assert entity.state() == st.fold(events)
    assert entity.max_effective == events[-1].effective_at
    assert Entity("licence:GL-2").version == 0


def test_an_entity_from_a_snapshot_holds_only_the_events_added_since_until_it_loads_them() -> None:
    """What the import's working set counts: a snapshot's entity holds the events added
    since (not its history) and names its snapshot's version until the history is loaded;
    an entity from its events holds them all and names no snapshot."""
    ledger = Ledgerless()
    grant = ledger.event(f.licence())
    usages = [
        ledger.event(f.usage(shipment=f"S-{n}", effective_at=f"2026-01-0{n}")) for n in (1, 2)
    ]
    entity = Entity.from_snapshot(
        "licence:GL-1", 1, st.fold([grant]), grant.effective_at, lambda: [grant], lambda ids: {}
    )
    assert (entity.snapshot_version, entity.events_held) == (1, 0)
    for n, usage in enumerate(usages, start=1):
        entity.add(usage)
        assert (entity.snapshot_version, entity.events_held) == (1, n)
    assert entity.events == [grant, *usages]  # the history loaded
    assert (entity.snapshot_version, entity.events_held) == (None, 3)
    plain = Entity("licence:GL-1", [grant, *usages])
    assert (plain.snapshot_version, plain.events_held) == (None, 3)
