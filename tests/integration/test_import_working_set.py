"""The streaming import's working set (``ledger.importing``): what it holds between chunks
stays within its budget in real bytes, and a file cycling through more entities than the
budget holds keeps most of them instead of evicting each just before its next turn.

The file is ``bench_import``'s shape in small: end users registered and vetted, licences
granted, then shipments round-robin over the licences (each naming its own end user), so
every chunk touches entities the budget cannot all hold.
"""

from __future__ import annotations

import gc
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

import ledger.importing as importing
from ledger.app import Ledger
from ledger.importing import import_lines

NAMESPACE = uuid.UUID("0b6f3f0e-2d4c-4a57-9a51-5b0f3c1d2e77")
SRC = [{"reference": "https://example.org/customs", "publisher": "GACC"}]
LICENCES = 120
CYCLES = 4


def _id(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, str(n)))


def _cycling_file() -> list[tuple[int | None, bytes]]:
    objs: list[dict[str, Any]] = [
        {"event_id": _id(0), "type": "PartyRegistered", "entity_id": "exporter",
         "name": "Exporter", "country": "CN", "roles": ["exporter"],
         "effective_at": "2025-01-01", "sources": SRC},
    ]  # fmt: skip
    for u in range(LICENCES):
        objs += [
            {"event_id": _id(1000 + u), "type": "PartyRegistered", "entity_id": f"buyer-{u}",
             "name": f"Buyer {u}", "country": "DE", "roles": ["end-user"],
             "effective_at": "2025-01-02", "sources": SRC},
            {"event_id": _id(2000 + u), "type": "PartyVetted", "entity_id": f"buyer-{u}",
             "outcome": "approved", "authority": "MOFCOM", "effective_at": "2025-06-01",
             "sources": SRC},
        ]  # fmt: skip
    for n in range(LICENCES):
        objs.append(
            {"event_id": _id(3000 + n), "type": "LicenceGranted", "entity_id": f"GL-{n}",
             "licence_type": "general", "issuer": "CN", "exporter": "exporter",
             "end_users": [f"buyer-{n}"],
             "items": [{"item": "1C902.a", "cap": "1000000", "unit": "kg"}],
             "destinations": ["DE"], "effective_at": "2025-12-02",
             "valid_until": "2026-12-01", "sources": SRC}
        )  # fmt: skip
    for s in range(LICENCES * CYCLES):
        n = s % LICENCES
        objs.append(
            {"event_id": _id(10_000 + s), "type": "LicenceUsageRecorded",
             "entity_id": f"GL-{n}", "shipment_id": f"S-{s}", "item": "1C902.a",
             "quantity": "2", "end_user": f"buyer-{n}", "destination": "DE",
             "effective_at": f"2026-01-{1 + s // 60 % 28:02d}T{8 + s % 60 // 6:02d}:"
                             f"{s % 6 * 10:02d}:00Z",
             "sources": SRC}
        )  # fmt: skip
    return [(n, json.dumps(o).encode()) for n, o in enumerate(objs, start=1)]


def _reachable_bytes(roots: list[object]) -> int:
    """The memory of everything reachable from ``roots`` (each object once), stopping at
    code, classes and modules (shared by the whole program, not held by the set)."""
    seen: set[int] = set()
    todo = list(roots)
    total = 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType) or callable(obj):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """Each trim's (budget, bytes the working set holds after it): the entities held,
    and the import's bookkeeping of them passed to the trim."""
    seen: list[tuple[int, int]] = []
    trim = importing._ImportWorkspace.trim

    def measured(self: importing._ImportWorkspace, *args: Any) -> None:
        trim(self, *args)
        budget = next(a for a in args if isinstance(a, int))
        books = [a for a in args if isinstance(a, dict | set)]
        seen.append((budget, _reachable_bytes([self.lean, self.entities, *books])))

    monkeypatch.setattr(importing._ImportWorkspace, "trim", measured)
    yield seen


def test_the_working_set_holds_no_more_than_its_budget(
    make_ledger: Callable[..., Ledger], trims: list[tuple[int, int]]
) -> None:
    """Counted at what the entities really take: before, a lean entity was counted as
    1,000 bytes and took 1,300-1,900 (a licence), so a 32 MB budget held ~45 MB."""
    lines = _cycling_file()
    budget = 200_000  # about three quarters of the 241 entities, lean
    result = import_lines(make_ledger(), lines, chunk_lines=40, workspace_bytes=budget)
    assert result.appended == len(lines)
    held = max(b for _, b in trims)
    assert held > budget // 2  # (the budget was used, not just kept)
    assert held <= budget * 1.1, held


def test_a_file_cycling_through_more_entities_than_the_budget_keeps_most(
    make_ledger: Callable[..., Ledger],
) -> None:
    """Least recently used evicts every entity just before its next turn when a file
    cycles through more than the budget holds (the benchmark's licences and end users,
    round-robin): each shipment then reloads its end user (2 events) and its licence
    (from its snapshot).  Evicting first the entities not touched again since they were
    loaded keeps the others: about half the end users are found held."""
    lines = _cycling_file()
    app = make_ledger()
    budget = 200_000
    before = app.events_loaded
    result = import_lines(app, lines, chunk_lines=40, workspace_bytes=budget)
    assert result.appended == len(lines)
    shipments = LICENCES * CYCLES
    # Least recently used: ~2 events per shipment (every end user reloaded).
    assert app.events_loaded - before < shipments


def test_the_working_set_holds_each_key_once(
    make_ledger: Callable[..., Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the import keeps about a held entity besides its state (its place in the
    least-recently-used order, whether it was touched again) is under the key object the
    working set holds it by.  Before, each chunk that touched an entity put its own copy
    of the key text in the order table and in a second table (a set) of the kept ones:
    three strings an entity (723 for these 241), and in the 1M-event benchmark's import
    40,000 more objects and a 2 MB set for its 20,000 held entities."""
    seen: list[tuple[int, int]] = []
    trim = importing._ImportWorkspace.trim

    def measured(self: importing._ImportWorkspace, *args: Any) -> None:
        trim(self, *args)
        books = [a for a in args if isinstance(a, dict | set)]
        keys = [k for table in (self.lean, self.entities, *books) for k in table]
        seen.append((len(self.lean) + len(self.entities), len({id(k) for k in keys})))

    monkeypatch.setattr(importing._ImportWorkspace, "trim", measured)
    lines = _cycling_file()
    result = import_lines(make_ledger(), lines, chunk_lines=40, workspace_bytes=10_000_000)
    assert result.appended == len(lines)
    entities, distinct_keys = seen[-1]
    assert entities == 2 * LICENCES + 1  # (all held: the budget is large)
    assert distinct_keys == entities
