"""``decisions.apply``: an application and its automatic decision recorded in one batch,
through a real ledger (the CLI's ``ledger apply`` calls it; no unit test can, it appends).

On SQLite only: ``apply`` hands the batch to ``Ledger.append_objects``, which the store
tests check on both stores.  tools/mutation.py runs this file against the mutants of
``projections/decisions.py`` (the only tests that reach ``apply``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from ledger import events as ev
from ledger.app import Ledger
from ledger.errors import InputError, RuleViolation
from ledger.projections import decisions
from ledger.projections.decisions import Request
from ledger.projections.query import Views
from ledger.times import now
from tests import factory as f
from tests.conftest import Backend

DATE = dt.datetime(2026, 1, 15, 9, 30, tzinfo=dt.UTC)
REQUEST = Request(
    exporter="jl-mag",
    end_user="buyer",
    item="1C902.a",
    quantity=Decimal("10"),
    unit="kg",
    destination="DE",
    end_use="magnets for motors",
    date=DATE,
)


@pytest.fixture
def ledger(sqlite_backend: Backend) -> Iterator[Ledger]:
    app = Ledger(sqlite_backend.settings())
    # A licence required for the item: the decision then names the licence covering it.
    app.append_objects(
        [
            *f.licensed_world(),
            f.measure(
                "M1",
                clauses=[
                    {
                        "clause_id": "lr",
                        "effect": "licence-required",
                        "items": ["1C902.a"],
                        "destinations": ["DE"],
                        "effective_at": "2025-11-01",
                    }
                ],
            ),
        ]
    )
    yield app
    app.close()


def recorded(app: Ledger, application_id: str) -> tuple[ev.Event, ...]:
    entity = app.entity("application", application_id)
    assert entity is not None
    return tuple(entity.events)


def test_apply_records_the_application_and_the_decision_it_took(ledger: Ledger) -> None:
    views = Views(ledger, mode="fold")
    request = dataclasses.replace(REQUEST, licence_id="GL-1")
    decision, result = decisions.apply(ledger, views, "APP-1", request, summary="first lot")
    assert decision == decisions.check(views, request, None)
    assert (decision.outcome, decision.licence_id) == ("approved", "GL-1")
    assert [(o.type, o.entity) for o in result.appended] == [
        ("ApplicationSubmitted", "application:APP-1"),
        ("ApplicationDecided", "application:APP-1"),
    ]
    submitted, decided = recorded(ledger, "APP-1")
    assert isinstance(submitted, ev.ApplicationSubmitted)
    assert (submitted.exporter, submitted.end_user, submitted.quantity) == (
        "jl-mag",
        "buyer",
        Decimal("10"),
    )
    assert (submitted.licence_id, submitted.summary, submitted.effective_at) == (
        "GL-1",
        "first lot",
        DATE,
    )
    assert isinstance(decided, ev.ApplicationDecided)
    assert (decided.outcome, decided.licence_id) == ("approved", "GL-1")
    assert [(c.measure_id, c.clause_id) for c in decided.fired_clauses] == [("M1", "lr")]
    assert list(decided.reasons) == decision.reasons + decision.notes


def test_apply_without_a_summary_records_none(ledger: Ledger) -> None:
    decisions.apply(ledger, Views(ledger, mode="fold"), "APP-2", REQUEST)
    submitted, _ = recorded(ledger, "APP-2")
    assert submitted.summary == ""


def test_apply_refuses_an_application_dated_ahead_of_the_clock_and_records_nothing(
    ledger: Ledger,
) -> None:
    head = ledger.head()
    ahead = dataclasses.replace(REQUEST, date=now() + decisions.FUTURE_TOLERANCE * 3)
    with pytest.raises(InputError) as refused:
        decisions.apply(ledger, Views(ledger, mode="fold"), "APP-3", ahead)
    assert refused.value.field == "date"
    assert "cannot be dated in the future" in refused.value.message
    assert ledger.head() == head and ledger.entity("application", "APP-3") is None


def test_apply_refuses_an_invalid_request_before_its_date(ledger: Ledger) -> None:
    """The request is validated first: an empty exporter dated ahead is refused for the
    exporter."""
    bad = dataclasses.replace(REQUEST, exporter="", date=now() + decisions.FUTURE_TOLERANCE * 3)
    with pytest.raises(InputError) as refused:
        decisions.apply(ledger, Views(ledger, mode="fold"), "APP-4", bad)
    assert refused.value.field == "exporter"


def test_an_application_id_recorded_before_is_refused_naming_the_request_field(
    ledger: Ledger,
) -> None:
    """The ledger's refusal of the batch names the request's field (application_id), not
    the event's (entity_id) on a line of a batch the caller never wrote."""
    views = Views(ledger, mode="fold")
    decisions.apply(ledger, views, "APP-5", REQUEST)
    head = ledger.head()
    with pytest.raises(RuleViolation) as refused:
        decisions.apply(ledger, views, "APP-5", REQUEST)
    assert (refused.value.field, refused.value.line) == ("application_id", None)
    assert ledger.head() == head
