"""In-force spans and "never in force" from a clause's record (pure, no services)."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

import msgspec

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


def test_one_instrument_suspending_clauses_to_different_ends_is_flagged() -> None:
    from ledger.projections.findings import misaligned_suspension_ends
    from ledger.projections.query import Resolved

    def measure(measure_id: str, until: str) -> Resolved:
        suspended = rec.SuspensionRecord(
            event_id=uuid4(), start=at("2025-11-07"), until=at(until), instrument="Ann.70"
        )
        record = rec.MeasureRecord(
            measure_id=measure_id,
            issuer="CN",
            title="t",
            instrument="i",
            published_at=at("2025-01-01"),
            published_event=uuid4(),
            clauses=(msgspec.structs.replace(clause("2025-01-01"), suspensions=(suspended,)),),
        )
        return Resolved(measure_id, record, None)

    same = [measure("m1", "2026-11-11"), measure("m2", "2026-11-11")]
    assert misaligned_suspension_ends(same, at("2025-12-01")) == []
    apart = [measure("m1", "2026-11-11"), measure("m2", "2026-11-14")]
    [finding] = misaligned_suspension_ends(apart, at("2025-12-01"))
    assert finding.subject == "instrument:Ann.70" and finding.details["gap_days"] == 3
    assert (
        "m1/c through 2026-11-10" in finding.summary
        and "m2/c through 2026-11-13" in finding.summary
    )
    # Once the suspensions are over, nothing is scheduled: no finding.
    assert misaligned_suspension_ends(apart, at("2026-12-01")) == []
