"""--as-of / --known-at: backdated events and retractions, on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ledger.app import Ledger
from ledger.domain import state as st
from ledger.times import parse_query_time
from tests import factory as f


def types_at(app: Ledger, **kw: object) -> list[str]:
    return [f"{e.event.type}@{e.event.effective_at.date()}" for e in app.log(**kw)]  # type: ignore[arg-type]


def test_backdated_event_and_retraction(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    k1 = app.append_objects(f.licensed_world()).recorded_at
    k2 = app.append_objects([f.usage(effective_at="2025-12-20")]).recorded_at
    # Learned later: the licence had been suspended from 2025-12-15 (backdated).
    suspension = app.append_objects(
        [f.licence_event("LicenceSuspended", effective_at="2025-12-15")]
    )
    k3 = suspension.recorded_at
    # Later still: that suspension was recorded in error.
    k4 = app.retract(suspension.outcomes[0].event_id, "wrong licence").recorded_at
    assert k1 and k2 and k3 and k4 and k1 < k2 < k3 < k4

    everything = types_at(app, entity_kind="licence", entity_id="GL-1")
    assert everything == [
        "LicenceGranted@2025-12-02",
        "LicenceUsageRecorded@2025-12-20",
        "EventRetracted@" + str(k4.date()),
    ]

    # Known at k3 (before the retraction): the suspension is there, in effective order.
    at_k3 = types_at(app, entity_kind="licence", entity_id="GL-1", known_at=k3)
    assert at_k3 == [
        "LicenceGranted@2025-12-02",
        "LicenceSuspended@2025-12-15",
        "LicenceUsageRecorded@2025-12-20",
    ]
    # Known at k2: neither the suspension nor the retraction was known yet.
    at_k2 = types_at(app, entity_kind="licence", entity_id="GL-1", known_at=k2)
    assert at_k2 == ["LicenceGranted@2025-12-02", "LicenceUsageRecorded@2025-12-20"]
    # As of 2025-12-16 (bare date = end of day), known at k3.
    as_of = parse_query_time("2025-12-16")
    assert types_at(app, entity_kind="licence", entity_id="GL-1", known_at=k3, as_of=as_of) == [
        "LicenceGranted@2025-12-02",
        "LicenceSuspended@2025-12-15",
    ]
    # With --include-retracted after the retraction: the suspension is shown, marked.
    marked = [
        (e.event.type, e.retracted)
        for e in app.log(entity_kind="licence", entity_id="GL-1", include_retracted=True)
        if e.event.type == "LicenceSuspended"
    ]
    assert marked == [("LicenceSuspended", True)]

    # The folds agree: the licence was suspended on 2025-12-16 as known at k3, and was
    # never suspended as known now.
    events = app.entity("licence", "GL-1").events  # type: ignore[union-attr]
    then = st.state_at(events, as_of, k3)
    now_ = st.state_at(events, as_of, None)
    assert isinstance(then, st.LicenceState) and isinstance(now_, st.LicenceState)
    assert then.status_at(as_of) == "suspended"
    assert now_.status_at(as_of) == "active"


def test_query_bounds_with_bare_dates(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    app.append_objects(
        [
            f.party("a", effective_at="2025-11-14T23:59:00Z"),
            f.party("b", effective_at="2025-11-15T00:00:00Z"),
            f.party("c", effective_at="2025-11-15T07:30:00+08:00"),
        ]
    )
    day = parse_query_time("2025-11-14")
    # 2025-11-15 07:30 +08:00 is 2025-11-14 23:30 UTC: inside the end of the 14th (UTC).
    assert [e.event.entity_id for e in app.log(as_of=day)] == ["c", "a"]
    assert day == dt.datetime(2025, 11, 14, 23, 59, 59, 999999, tzinfo=dt.UTC)


def test_filters(make_ledger: Callable[..., Ledger]) -> None:
    app = make_ledger()
    app.append_objects(
        [
            *f.licensed_world(),
            f.agreement(),
            f.pledge("c1"),
            f.pledge("c2", obligor="US", beneficiary="CN"),
        ]
    )
    assert {e.event.type for e in app.log(types=["PartyRegistered"])} == {"PartyRegistered"}
    assert [e.event.entity_id for e in app.log(party="US")] == ["busan-2025", "c1", "c2"]
    assert [e.event.entity_id for e in app.log(entity_id="buyer")] == ["buyer", "buyer"]
    assert [e.event.type for e in app.log(entity_kind="commitment")] == [
        "CommitmentPledged",
        "CommitmentPledged",
    ]


def test_party_filter_names_whole_ids_only(make_ledger: Callable[..., Ledger]) -> None:
    """``--party`` is pre-filtered by the database on the payload's bytes; the answer
    must still be exactly the events that name the party."""
    odd = 'O\'Brien "Q" 100%_中'
    app = make_ledger()
    app.append_objects(
        [
            f.party("acme"),
            f.party("acme-2"),
            f.party(odd),
            # Mentions "acme" as a value of a field that names no party.
            f.party("bolt", name="acme"),
        ]
    )
    assert [e.event.entity_id for e in app.log(party="acme")] == ["acme"]
    assert [e.event.entity_id for e in app.log(party="acme-2")] == ["acme-2"]
    assert [e.event.entity_id for e in app.log(party=odd)] == [odd]
    assert [e.event.entity_id for e in app.log(party="acm")] == []


def test_party_filter_with_a_compressed_store(tmp_path: object) -> None:
    """Compressed payloads cannot be searched by the database: every event is decoded."""
    from tests.conftest import Backend

    backend = Backend("sqlite", tmp_path)  # type: ignore[arg-type]
    app = Ledger(backend.settings(), env={"COMPRESSOR_TOPIC": "zlib"})
    try:
        app.append_objects([f.party("acme"), f.party("bolt", name="acme")])
        assert app.msgspec_mapper.compressor is not None
        assert [e.event.entity_id for e in app.log(party="acme")] == ["acme"]
    finally:
        app.close()
        backend.cleanup()
