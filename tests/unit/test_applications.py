"""Export applications' rules and fold (``ledger.domain.application``): each refusal
with its exact message and field.  Pure: no services."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.domain.application import ApplicationState
from ledger.errors import RuleViolation
from tests import factory as f
from tests.unit.test_rules import Ledgerless


def decided(aid: str = "APP-1", outcome: str = "approved", **kw: Any) -> dict[str, Any]:
    base = {"outcome": outcome, "effective_at": "2025-12-03"}
    return {"type": "ApplicationDecided", "entity_id": aid, "sources": [], **base, **kw}


PARTIES = [f.exporter(), f.party("buyer")]


@pytest.mark.parametrize(
    ("setup", "bad", "expected"),
    [
        pytest.param(
            [f.party("buyer")],
            f.application(),
            ("unknown-reference", "exporter", "party 'jl-mag' was never registered"),
            id="unknown exporter",
        ),
        pytest.param(
            [f.exporter()],
            f.application(),
            ("unknown-reference", "end_user", "party 'buyer' was never registered"),
            id="unknown end user",
        ),
        pytest.param(
            [f.exporter(effective_at="2025-12-04"), f.party("buyer")],
            f.application(),
            (
                "unknown-reference",
                "exporter",
                "party 'jl-mag' was registered with effect from 2025-12-04, after the "
                "application's date (2025-12-03)",
            ),
            id="exporter registered after the application's date",
        ),
        pytest.param(
            [f.exporter(), f.party("buyer", effective_at="2025-12-03T12:00:00Z")],
            f.application(),
            (
                "unknown-reference",
                "end_user",
                "party 'buyer' was registered with effect from 2025-12-03T12:00Z, after "
                "the application's date (2025-12-03)",
            ),
            id="end user registered later that day",
        ),
        pytest.param(
            PARTIES,
            f.application(licence_id="GL-9"),
            ("unknown-reference", "licence_id", "licence 'GL-9' was never granted"),
            id="application under an unknown licence",
        ),
        pytest.param(
            PARTIES,
            f.application(quantity="0"),
            ("positive-quantity", "quantity", "must be greater than 0, got 0"),
            id="nothing applied for",
        ),
        pytest.param(
            [],
            decided(),
            ("unknown-reference", "entity_id", "application 'APP-1' was never submitted"),
            id="deciding an unknown application",
        ),
        pytest.param(
            [*PARTIES, f.application()],
            decided(licence_id="GL-9"),
            ("unknown-reference", "licence_id", "licence 'GL-9' was never granted"),
            id="decided under an unknown licence",
        ),
        pytest.param(
            [*PARTIES, f.application(), decided(outcome="rejected")],
            decided(effective_at="2025-12-04"),
            (
                "already-decided",
                "entity_id",
                "application 'APP-1' was decided on 2025-12-03 (rejected)",
            ),
            id="decided twice",
        ),
    ],
)
def test_application_rules(setup: list[dict], bad: dict, expected: tuple[str, str, str]) -> None:
    ledger = Ledgerless()
    ledger.append(*setup)
    with pytest.raises(RuleViolation) as caught:
        ledger.append(bad)
    assert (caught.value.rule, caught.value.field, caught.value.message) == expected


def test_an_application_under_a_licence_folds_with_its_decision() -> None:
    ledger = Ledgerless()
    ledger.append(*f.licensed_world())
    submitted, decision = ledger.append(
        f.application(licence_id="GL-1"), decided(licence_id="GL-1")
    )
    state = ledger.facts.state("application", "APP-1", None)
    assert isinstance(state, ApplicationState)
    assert (state.application_id, state.submitted, state.decision) == (
        "APP-1",
        submitted,
        decision,
    )
    assert state.event_ids == [submitted.event_id, decision.event_id]
