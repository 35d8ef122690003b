"""The ledger opens, appends and reads back on both backends."""

from __future__ import annotations

from tests.conftest import SOURCE


def test_append_and_read_back(ledger) -> None:
    result = ledger.append_objects(
        [
            {
                "type": "PartyRegistered",
                "entity_id": "jl-mag",
                "name": "JL Mag Rare-Earth",
                "country": "CN",
                "roles": ["exporter"],
                "effective_at": "2025-01-01",
                "sources": [SOURCE],
            }
        ]
    )
    assert [o.status for o in result.outcomes] == ["appended"]
    entries = list(ledger.log())
    assert [e.event.type for e in entries] == ["PartyRegistered"]
    assert entries[0].position == result.outcomes[0].position == ledger.head()
