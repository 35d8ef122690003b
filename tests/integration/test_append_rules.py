"""Rules through the application: a rejected event appends nothing, a batch names the
offending line, retractions and late knowledge.  (Each rule's own cases are pure unit
tests: ``tests/unit/test_rules.py``.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.app import Ledger
from ledger.errors import RuleViolation
from tests import factory as f
from tests.conftest import Backend

W = f.licensed_world  # exporter jl-mag, vetted end user buyer, general licence GL-1


@pytest.fixture
def app(sqlite_backend: Backend) -> Iterator[Ledger]:
    ledger = Ledger(sqlite_backend.settings())
    yield ledger
    ledger.close()


def test_rejection_in_a_batch_names_the_line_and_appends_nothing(app: Ledger) -> None:
    batch = [*W(), f.usage(quantity="900"), f.usage(shipment="S-2", quantity="200")]
    with pytest.raises(RuleViolation) as caught:
        app.append_objects(batch)
    assert caught.value.line == 6
    assert caught.value.rule == "usage-exceeds-cap"
    assert str(caught.value).startswith("line 6: quantity: ")
    assert app.head() == 0


def test_retraction_rules(app: Ledger) -> None:
    result = app.append_objects([f.party("x")])
    wrong = result.outcomes[0].event_id
    retraction = app.retract(wrong, "registered by mistake").outcomes[0].event_id
    with pytest.raises(RuleViolation) as again:
        app.retract(wrong, "twice")
    assert again.value.rule == "already-retracted"
    assert again.value.field == "retracted_event_id"
    with pytest.raises(RuleViolation) as meta:
        app.retract(retraction, "undo")
    assert meta.value.rule == "cannot-retract-retraction"


def test_retracted_creation_frees_the_id(app: Ledger) -> None:
    """A registration retracted as wrong no longer exists: the id can be registered again,
    and events on it are unknown references until then."""
    wrong = app.append_objects([f.party("x", name="Wrong Name")]).outcomes[0].event_id
    app.retract(wrong, "wrong company")
    with pytest.raises(RuleViolation) as caught:
        app.append_objects([f.vetted("x")])
    assert caught.value.rule == "unknown-reference"
    assert app.append_objects([f.party("x")]).outcomes[0].status == "appended"


def test_retracted_withdrawal_unblocks_the_licence(app: Ledger) -> None:
    """After a wrongly recorded withdrawal is retracted, the licence is usable again."""
    result = app.append_objects([*W(), f.licence_event("LicenceWithdrawn")])
    withdrawal = result.outcomes[-1].event_id
    app.retract(withdrawal, "withdrawn in error")
    appended = app.append_objects([f.usage(effective_at="2026-03-05")])
    assert appended.outcomes[0].status == "appended"


def test_late_knowledge_conflict_is_accepted(app: Ledger) -> None:
    """A withdrawal recorded after a shipment it predates is a finding, not a rejection."""
    app.append_objects([*W(), f.usage(effective_at="2026-03-05")])
    result = app.append_objects([f.licence_event("LicenceWithdrawn", effective_at="2026-03-01")])
    assert result.outcomes[0].status == "appended"
