"""``shared_names``: repeated tuples of names (roles, destinations) held once (and a
licence decoded from its snapshot holds the shared values again).  A working
set of 20,000 parties held its own ("end-user",) each; the values must not change, and
the table of shared tuples must stop at its cap."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from ledger.domain import facts
from ledger.domain.licence import ItemState, LicenceState
from ledger.store.snapshots import decode_snapshot, encode_snapshot


def _fresh(*parts: str) -> tuple[str, ...]:
    # Built at run time, so neither the tuple nor its strings are the compiler's constants.
    return tuple("".join([p, ""]) for p in parts)


def test_equal_tuples_come_back_as_one_object_with_the_same_values() -> None:
    first = facts.shared_names(_fresh("end-user", "consignee"))
    again = facts.shared_names(_fresh("end-user", "consignee"))
    assert first == ("end-user", "consignee")
    assert again is first
    assert first[0] is facts.shared_names(_fresh("end-user"))[0]


def test_the_table_of_shared_tuples_stops_at_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts, "_SHARED_NAMES", {})
    monkeypatch.setattr(facts, "SHARED_NAMES_MAX", 1)
    kept = facts.shared_names(_fresh("a"))
    assert facts.shared_names(_fresh("a")) is kept
    over = facts.shared_names(_fresh("b"))
    assert over == ("b",)
    assert facts.shared_names(_fresh("b")) is not over  # not kept: the table is full
    assert len(facts._SHARED_NAMES) == 1


def test_a_licence_decoded_from_its_snapshot_shares_its_repeated_values() -> None:
    """A snapshot decodes every string afresh; an import reloading thousands of licences
    from their snapshots held "general", "CN", "kg" and the item codes once for each.
    Decoded, the state holds the objects a granted licence holds, and equals it."""
    at = dt.datetime(2025, 12, 2, tzinfo=dt.UTC)
    state = LicenceState(
        licence_id="GL-1",
        licence_type=facts.shared("general"),
        issuer=facts.shared("CN"),
        exporter=facts.shared("exporter-0"),
        end_users=(facts.shared("buyer-1"),),
        items={"1C902.a": ItemState(facts.shared("1C902.a"), Decimal(10), facts.shared("kg"))},
        destinations=facts.shared_names(("DE",)),
        valid_from=at,
        valid_until=at + dt.timedelta(days=365),
        granted_event_id=uuid.uuid4(),
    )
    decoded = decode_snapshot(encode_snapshot(state, at))
    assert decoded is not None and decoded.state == state
    got = decoded.state
    assert got.licence_type is state.licence_type and got.issuer is state.issuer
    assert got.exporter is state.exporter and got.end_users[0] is state.end_users[0]
    assert got.destinations is state.destinations
    ((code, item),) = got.items.items()
    assert code is state.items["1C902.a"].item and item.item is code
    assert item.unit is state.items["1C902.a"].unit
