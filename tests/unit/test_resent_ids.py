"""Re-sent event ids (``ledger.intake.check_resent`` / ``check_repeated``): the one rule
that the batch append and the streaming import both apply.  Pure: no services."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from uuid import UUID

import pytest

from ledger import events as ev
from ledger.errors import ConflictError
from ledger.intake import Submission, check_repeated, check_resent, parse_json
from ledger.store.index import IndexEntry

NOW = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
EVENT_ID = "0190a000-0000-7000-8000-000000000001"


def submission(
    line: int = 3, *, dated: bool = True, now: dt.datetime = NOW, **changes: Any
) -> Submission:
    obj: dict[str, Any] = {
        "event_id": EVENT_ID,
        "type": "PartyRegistered",
        "entity_id": "acme",
        "name": "Acme",
        "country": "DE",
        "roles": ["end-user"],
        "effective_at": "2025-01-01T00:00:00Z",
        "sources": [{"reference": "https://example.org/r", "publisher": "X"}],
        **changes,
    }
    if not dated:
        del obj["effective_at"]
    return parse_json(json.dumps(obj), line=line, actor="tester", now=now)


def entry(of: Submission) -> IndexEntry:
    return IndexEntry(
        position=7,
        event_id=UUID(EVENT_ID),
        event_type="PartyRegistered",
        entity_kind="party",
        entity_id="acme",
        effective_us=0,
        recorded_us=0,
        content_hash=of.content_hash,
    )


def never(_: UUID) -> ev.Event | None:
    raise AssertionError("the stored event is read only for a defaulted effective time")


def test_the_same_content_resent_is_accepted_without_reading_the_stored_event() -> None:
    s = submission()
    check_resent(s, entry(s), never)


def test_other_content_under_a_stored_id_is_refused_naming_the_stored_event() -> None:
    stored = submission()
    with pytest.raises(ConflictError) as refused:
        check_resent(submission(name="Other"), entry(stored), never)
    assert (refused.value.rule, refused.value.field, refused.value.line) == (
        "event-id-reused",
        "event_id",
        3,
    )
    assert refused.value.message == (
        f"event {EVENT_ID} is already recorded (position 7, PartyRegistered on party:acme) "
        "with different content"
    )


def test_a_retry_that_left_the_effective_time_to_the_ledger_matches_the_stored_event() -> None:
    first = submission(dated=False)
    # The retry is parsed later, so the ledger defaults a later effective time.
    retry = submission(dated=False, now=NOW + dt.timedelta(seconds=5))
    assert retry.effective_defaulted
    assert retry.content_hash != first.content_hash
    check_resent(retry, entry(first), lambda _: first.event)
    # The stored event unreadable, or different beyond its effective time: refused.
    with pytest.raises(ConflictError):
        check_resent(retry, entry(first), lambda _: None)
    other = submission(dated=False, name="Other")
    with pytest.raises(ConflictError):
        check_resent(retry, entry(first), lambda _: other.event)


def test_a_dated_event_never_matches_by_its_content_without_the_effective_time() -> None:
    stored = submission()
    moved = submission(effective_at="2025-02-01T00:00:00Z")
    with pytest.raises(ConflictError):
        check_resent(moved, entry(stored), lambda _: stored.event)


def test_an_id_twice_in_one_batch_needs_the_same_content() -> None:
    first = submission(line=1)
    check_repeated(submission(line=4), first.content_hash, 1)
    with pytest.raises(ConflictError) as refused:
        check_repeated(submission(line=4, name="Other"), first.content_hash, 1)
    assert refused.value.line == 4
    assert refused.value.message == (
        f"event {EVENT_ID} appears twice in the batch with different content (first on line 1)"
    )
    with pytest.raises(ConflictError) as unnumbered:
        check_repeated(submission(line=4, name="Other"), first.content_hash, None)
    assert unnumbered.value.message.endswith("with different content")


def test_an_id_twice_in_one_batch_is_refused_under_the_rule_on_the_event_id() -> None:
    first = submission(line=1)
    with pytest.raises(ConflictError) as refused:
        check_repeated(submission(line=4, name="Other"), first.content_hash, 1)
    assert (refused.value.rule, refused.value.field, refused.value.line) == (
        "event-id-reused",
        "event_id",
        4,
    )


def test_a_retry_reads_the_stored_event_under_its_own_id() -> None:
    first = submission(dated=False)
    retry = submission(dated=False, now=NOW + dt.timedelta(seconds=5))
    check_resent(retry, entry(first), {UUID(EVENT_ID): first.event}.get)
