"""The aggregate's cached folds (``ledger.domain.aggregate.Entity``) against a fresh fold.

``Entity`` keeps the state over all effective times incrementally and a cursor for the
state as of earlier times, so that events effective before later ones (shipments before
a scheduled suspension) cost a step, not a refold.  Whatever the order events arrive in,
after every event both must equal ``fold(visible(events, as_of))``.  Pure: no services.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st_

from ledger import events as ev
from ledger.domain import state as st
from ledger.domain.aggregate import LATER_EVENTS_REPLAYED, Entity
from ledger.intake import parse_object
from tests import factory as f

T0 = dt.datetime(2025, 12, 2, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def at(day: int, minute: int = 0) -> str:
    return (T0 + dt.timedelta(days=day, minutes=minute)).isoformat()


def typed(obj: dict[str, Any], known: dict[UUID, tuple[str, str]]) -> ev.Event:
    event = parse_object(obj, actor="t", now=NOW, resolve_retracted=known.get).event
    known[event.event_id] = (event.entity_kind, event.entity_id)
    return event


# Licence events at chosen days (0-300 after the grant): shipments, and the events that
# change the licence's terms or status.
day = st_.integers(min_value=-5, max_value=300)
licence_event = st_.one_of(
    st_.tuples(st_.just("usage"), day, st_.integers(1, 50)),
    st_.tuples(
        st_.sampled_from(
            ["LicenceSuspended", "LicenceReinstated", "LicenceAmended", "LicenceWithdrawn"]
        ),
        day,
        st_.just(0),
    ),
    st_.tuples(st_.just("retract"), st_.integers(0, 1000), st_.just(0)),
)


def build(spec: list[tuple[str, int, int]]) -> list[ev.Event]:
    known: dict[UUID, tuple[str, str]] = {}
    out = [typed(f.licence(items=[{"item": "1C902.a", "cap": "100000", "unit": "kg"}]), known)]
    for n, (kind, when, qty) in enumerate(spec):
        if kind == "usage":
            obj = f.usage(shipment=f"S-{n}", quantity=str(qty), effective_at=at(when, n))
        elif kind == "retract":
            facts = [e for e in out if not isinstance(e, ev.EventRetracted)]
            target = facts[when % len(facts)]
            obj = {
                "type": "EventRetracted",
                "retracted_event_id": str(target.event_id),
                "reason": "entered in error",
                "actor": "t",
            }
        else:
            obj = f.licence_event(kind, effective_at=at(when, n))
        out.append(typed(obj, known))
    return out


# At least 300 (cheap, and the edges need that many), more under a bigger profile, but
# the `dev` profile's count in the quick loop and under mutation testing.
EXAMPLES = settings.default.max_examples
if EXAMPLES >= 200:
    EXAMPLES = max(300, EXAMPLES)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    spec=st_.lists(licence_event, max_size=40),
    probes=st_.lists(st_.integers(-10, 320), min_size=1, max_size=4),
)
def test_cached_folds_equal_a_fresh_fold_after_every_event(
    spec: list[tuple[str, int, int]], probes: list[int]
) -> None:
    events = build(spec)
    entity = Entity("licence:GL-1")
    for i, event in enumerate(events):
        entity.add(event)
        so_far = events[: i + 1]
        assert entity.state() == st.fold(st.visible(so_far))
        # Between events, and exactly at the times events take effect.
        times = [T0 + dt.timedelta(days=p, hours=12) for p in probes]
        times += [event.effective_at, so_far[probes[0] % len(so_far)].effective_at]
        for t in times:
            assert entity.state(t) == st.fold(st.visible(so_far, t)), (i, t)
        assert entity.state() == st.fold(st.visible(so_far))  # the cursor left it alone
        expected = folded_shipments(so_far)
        for e in so_far:
            if isinstance(e, ev.LicenceUsageRecorded):
                assert entity.shipment(e.shipment_id) == expected.get(e.shipment_id), (i, e)


def folded_shipments(events: list[ev.Event]) -> dict[str, ev.LicenceUsageRecorded]:
    """The shipments the fold applies: the visible usage events after the grant."""
    out: dict[str, ev.LicenceUsageRecorded] = {}
    state: st.State | None = None
    for e in st.visible(events):
        if state is not None and isinstance(e, ev.LicenceUsageRecorded):
            out[e.shipment_id] = e
        state = st.evolve(state, e)
    return out


def test_a_copied_licence_state_is_independent() -> None:
    known: dict[UUID, tuple[str, str]] = {}
    grant = typed(f.licence(), known)
    state = st.fold([grant])
    assert isinstance(state, st.LicenceState)
    copy = state.copy()
    copy.apply(typed(f.usage(shipment="S-x", quantity="5", effective_at=at(3)), known))
    assert copy.items["1C902.a"].used == 5 and copy.shipment_count == 1
    assert state.items["1C902.a"].used == 0 and state.shipment_count == 0


def test_shipments_before_a_scheduled_suspension_cost_a_step_each() -> None:
    """The case the cursor exists for: without it, each shipment refolded the licence
    (O(n^2) in a batch).  Counted in fold steps, not timed."""
    known: dict[UUID, tuple[str, str]] = {}
    grant = typed(f.licence(items=[{"item": "1C902.a", "cap": "100000", "unit": "kg"}]), known)
    suspension = typed(f.licence_event("LicenceSuspended", effective_at=at(280)), known)
    entity = Entity("licence:GL-1")
    entity.add(grant)
    entity.add(suspension)
    steps = 0
    original = st.evolve

    def counting(state: st.State | None, e: ev.Event) -> st.State | None:
        nonlocal steps
        steps += 1
        return original(state, e)

    shipments = [
        typed(f.usage(shipment=f"S-{n}", quantity="1", effective_at=at(1, n)), known)
        for n in range(400)
    ]
    import ledger.domain.state as state_module

    state_module.evolve = counting
    try:
        started = time.perf_counter()
        for s in shipments:
            # What the rules ask for each shipment: the state then, and over all time.
            assert entity.state(s.effective_at) is not None
            assert entity.state() is not None
            entity.add(s)
        elapsed = time.perf_counter() - started
    finally:
        state_module.evolve = original
    # Each shipment: one cursor step, a copy, and the later events folded again.
    assert steps <= len(shipments) * (2 + LATER_EVENTS_REPLAYED), (steps, elapsed)
    assert steps < 5 * len(shipments), steps  # one later event here: ~3 steps each
    whole = entity.state()
    assert isinstance(whole, st.LicenceState)
    assert whole.items["1C902.a"].used == 400 and whole.suspended_from is not None


@settings(max_examples=max(300, settings.default.max_examples), deadline=None)
@given(
    spec=st_.lists(licence_event, max_size=40),
    cut=st_.integers(0, 40),
    probes=st_.lists(st_.integers(-10, 320), min_size=1, max_size=4),
)
def test_an_entity_from_a_snapshot_answers_as_one_from_its_events(
    spec: list[tuple[str, int, int]], cut: int, probes: list[int]
) -> None:
    """Loaded from a snapshot taken after any prefix of its history, then given the rest:
    after every event the same states (over all times and as of any time) and the same
    shipments as a fresh fold, loading the history only when a question needs it."""
    events = build(spec)
    taken = events[: 1 + cut % len(events)]
    seen = st.visible(taken)
    state = st.fold(seen)
    if not isinstance(state, st.LicenceState):
        return  # the grant was retracted: no snapshot is taken
    shipments = folded_shipments(taken)
    entity = Entity.from_snapshot(
        "licence:GL-1",
        len(taken),
        state.copy(),
        seen[-1].effective_at,
        lambda: list(taken),
        lambda ids: {s: shipments[s] for s in ids if s in shipments},
    )
    assert entity.version == len(taken)
    for i in range(len(taken), len(events) + 1):
        if i > len(taken):
            entity.add(events[i - 1])
        so_far = events[:i]
        assert entity.version == len(so_far)
        assert entity.state() == st.fold(st.visible(so_far))
        expected = folded_shipments(so_far)
        for e in so_far:
            if isinstance(e, ev.LicenceUsageRecorded):
                assert entity.shipment(e.shipment_id) == expected.get(e.shipment_id), (i, e)
    for t in [T0 + dt.timedelta(days=p, hours=12) for p in probes]:  # (these may read it)
        assert entity.state(t) == st.fold(st.visible(events, t)), t
    assert entity.events == events


def test_an_entity_from_a_snapshot_folds_later_events_without_its_history() -> None:
    known: dict[UUID, tuple[str, str]] = {}
    grant = typed(f.licence(items=[{"item": "1C902.a", "cap": "100000", "unit": "kg"}]), known)
    state = st.fold([grant])
    assert isinstance(state, st.LicenceState)

    def history() -> list[ev.Event]:
        raise AssertionError("the history was read")

    entity = Entity.from_snapshot(
        "licence:GL-1", 1, state, grant.effective_at, history, lambda ids: {}
    )
    for n in range(1, 4):
        usage = typed(f.usage(shipment=f"S-{n}", quantity="2", effective_at=at(n)), known)
        entity.add(usage)
        assert entity.state(usage.effective_at) is entity.state()
        assert entity.shipment(f"S-{n}") == usage and entity.shipment("S-x") is None
    whole = entity.state()
    assert isinstance(whole, st.LicenceState) and whole.shipment_count == 3
    assert whole.items["1C902.a"].used == 6 and entity.version == 4
