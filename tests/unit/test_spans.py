"""In-force spans and "never in force" from a clause's record (pure, no services)."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

from ledger.projections import records as rec
from ledger.projections.views import clause_in_force_spans, spans_as_of, subtract


def at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T00:00:00+00:00")


def clause(
    effective: str, *suspensions: tuple[str, str | None], revoked: str | None = None
) -> rec.ClauseRecord:
    return rec.ClauseRecord(
        clause_id="c",
        effect="prohibited",
        effective_at=at(effective),
        suspensions=tuple(
            rec.SuspensionRecord(
                event_id=uuid4(), start=at(start), until=None if end is None else at(end)
            )
            for start, end in suspensions
        ),
        revoked_at=None if revoked is None else at(revoked),
    )


def test_suspensions_are_cut_out_and_overlaps_merge() -> None:
    c = clause("2025-01-03", ("2025-01-15", "2025-02-01"), ("2025-01-20", "2025-02-10"))
    assert clause_in_force_spans(c) == [
        (at("2025-01-03"), at("2025-01-15")),
        (at("2025-02-10"), None),
    ]
    # 3 January through 14 January: 12 days, both ends counted.
    assert spans_as_of(clause_in_force_spans(c), at("2025-03-01"))[0]["days"] == 12


def test_never_in_force() -> None:
    # Suspended (open-ended) before it took effect; revoked before it took effect.
    assert clause_in_force_spans(clause("2025-12-01", ("2025-11-07", None))) == []
    assert clause_in_force_spans(clause("2025-12-01", revoked="2025-11-20")) == []
    # A suspension that ends: in force from then on, not before.
    assert clause_in_force_spans(clause("2025-12-01", ("2025-11-07", "2026-11-11"))) == [
        (at("2026-11-11"), None)
    ]
    # Revoked after it took effect: one span, to the revocation.
    assert clause_in_force_spans(clause("2025-01-01", revoked="2025-01-11")) == [
        (at("2025-01-01"), at("2025-01-11"))
    ]


def test_spans_begun_after_the_as_of_date_are_not_shown() -> None:
    spans = clause_in_force_spans(clause("2025-12-01", ("2025-11-07", "2026-11-11")))
    assert spans_as_of(spans, at("2025-12-05")) == []
    assert subtract((at("2025-01-01"), None), []) == [(at("2025-01-01"), None)]
