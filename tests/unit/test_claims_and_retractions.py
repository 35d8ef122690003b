"""The rules and folds of reported claims (``ledger.domain.claim``) and of retractions
(``ledger.domain.rules``): each refusal with its exact message.  Pure: no services."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ledger.domain.claim import ClaimState, parse_ref
from ledger.errors import InputError, RuleViolation
from tests import factory as f
from tests.unit.test_rules import Ledgerless


def claim(**kw: Any) -> dict[str, Any]:
    base = {
        "claimant": "MOFCOM, as reported",
        "says": "Military-use applications are rejected automatically.",
        "about": ["measure:cn-ann-46"],
        "effective_at": "2025-11-14",
    }
    return {"type": "ClaimReported", "entity_id": "c1", "sources": [f.SRC], **base, **kw}


def resolved(outcome: str = "contradicted", **kw: Any) -> dict[str, Any]:
    base = {
        "outcome": outcome,
        "evidence": ["measure:cn-ann-46"],
        "reason": "the clause it relies on is suspended",
        "effective_at": "2025-12-05",
    }
    return {"type": "ClaimResolved", "entity_id": "c1", "sources": [f.SRC], **base, **kw}


def utc(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def refused(ledger: Ledgerless, obj: dict[str, Any]) -> tuple[str, str | None, str]:
    with pytest.raises(RuleViolation) as caught:
        ledger.append(obj)
    return caught.value.rule, caught.value.field, caught.value.message


def test_a_claim_is_unverified_until_the_day_it_is_resolved() -> None:
    ledger = Ledgerless()
    reported, resolution = ledger.append(f.measure(), claim(), resolved("confirmed"))[1:]
    state = ledger.facts.state("claim", "c1", None)
    assert isinstance(state, ClaimState)
    assert (state.claim_id, state.reported, state.resolution) == ("c1", reported, resolution)
    assert state.event_ids == [reported.event_id, resolution.event_id]
    assert state.status_at(utc("2025-12-04T23:59:59")) == "unverified"
    assert state.status_at(utc("2025-12-05")) == "confirmed"


def test_a_claim_resolved_only_once() -> None:
    ledger = Ledgerless()
    ledger.append(f.measure(), claim(), resolved())
    assert refused(ledger, resolved("confirmed", effective_at="2025-12-06")) == (
        "already-resolved",
        "entity_id",
        "claim 'c1' was contradicted on 2025-12-05",
    )


@pytest.mark.parametrize(
    ("setup", "bad", "expected"),
    [
        pytest.param(
            [],
            claim(),
            ("unknown-reference", "about", "measure 'cn-ann-46' was never published"),
            id="claim about an unknown measure",
        ),
        pytest.param(
            [f.party("x")],
            claim(about=["party:x", "licence:GL-9"]),
            ("unknown-reference", "about", "licence 'GL-9' was never granted"),
            id="claim about a known party and an unknown licence",
        ),
        pytest.param(
            [f.measure()],
            resolved(),
            ("unknown-reference", "entity_id", "claim 'c1' was never reported"),
            id="resolving an unknown claim",
        ),
        pytest.param(
            [f.measure(), claim()],
            resolved(evidence=["measure:cn-ann-46", "party:nobody"]),
            ("unknown-reference", "evidence", "party 'nobody' was never registered"),
            id="evidence never recorded",
        ),
    ],
)
def test_claim_rules(setup: list[dict], bad: dict, expected: tuple[str, str, str]) -> None:
    ledger = Ledgerless()
    ledger.append(*setup)
    assert refused(ledger, bad) == expected


def test_a_claim_about_nothing_is_recorded() -> None:
    ledger = Ledgerless()
    ledger.append(claim(about=[]))
    assert ledger.facts.state("claim", "c1", None) is not None


@pytest.mark.parametrize("ref", ["measure", "measure:", ":x", "thing:x", "measurex"])
def test_a_malformed_reference_is_an_input_error(ref: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_ref(ref, "about")
    assert caught.value.field == "about"
    assert str(caught.value.message) == (
        f"'{ref}' is not an entity reference: use kind:id with kind one of agreement, "
        "commitment, measure, party, licence, application, claim (e.g. measure:cn-ann-2025-61)"
    )


def test_a_reference_parts() -> None:
    assert parse_ref("measure:cn:ann:46", "about") == ("measure", "cn:ann:46")


def retraction(event_id: Any, **kw: Any) -> dict[str, Any]:
    return {"type": "EventRetracted", "retracted_event_id": str(event_id), "reason": "typo", **kw}


def test_retractions() -> None:
    ledger = Ledgerless()
    registered, vetting = ledger.append(f.party("x"), f.vetted("x"))
    [first] = ledger.append(retraction(vetting.event_id))
    assert refused(ledger, retraction(vetting.event_id)) == (
        "already-retracted",
        "retracted_event_id",
        f"event {vetting.event_id} was already retracted (event {first.event_id})",
    )
    assert refused(ledger, retraction(first.event_id)) == (
        "cannot-retract-retraction",
        "retracted_event_id",
        "a retraction cannot be retracted; append the corrected fact instead",
    )
    other = ledger.append(f.party("y"))[0]
    wrong_entity = retraction(other.event_id, entity_kind="party", entity_id="x")
    assert refused(ledger, wrong_entity) == (
        "unknown-reference",
        "retracted_event_id",
        f"no event {other.event_id} on party 'x'",
    )
    ledger.append(retraction(registered.event_id))  # another event of the same party


def test_a_claim_about_a_malformed_reference_is_refused_on_about() -> None:
    ledger = Ledgerless()
    with pytest.raises(InputError) as caught:
        ledger.append(claim(about=["cn-ann-46"]))
    assert caught.value.field == "about"


def test_a_retraction_dated_before_the_entity_came_to_be_is_accepted() -> None:
    """A retraction acts on what is known, whatever its effective date: one dated before
    the party was registered is not refused as 'before-creation' as other events are."""
    ledger = Ledgerless()
    _, vetting = ledger.append(f.party("x", effective_at="2025-06-01"), f.vetted("x"))
    [retracted] = ledger.append(retraction(vetting.event_id, effective_at="2025-01-01"))
    assert retracted.effective_at < vetting.effective_at
