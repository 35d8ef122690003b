"""``shared_names``: repeated tuples of names (roles, destinations) held once.  A working
set of 20,000 parties held its own ("end-user",) each; the values must not change, and
the table of shared tuples must stop at its cap."""

from __future__ import annotations

import pytest

from ledger.domain import facts


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
