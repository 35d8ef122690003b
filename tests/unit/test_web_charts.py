"""The measures timeline's segments come from the view's in-force spans, so a suspension
that ended before the as-of date is drawn too (the first chart drew only the suspension
in force on the as-of date: a clause suspended in January and in force again in April
showed as in force throughout)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ledger.web.charts import clause_segments

UTC = dt.UTC


def t(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=UTC)


def clause(**kw: Any) -> dict[str, Any]:
    return {
        "effective_at": t("2025-01-01"),
        "revoked_at": None,
        "status": "in-force",
        "suspended_until": None,
        "in_force_spans": [],
        **kw,
    }


def states(c: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (state, a.date().isoformat(), b.date().isoformat())
        for state, a, b in clause_segments(c, t("2024-12-01"), t("2026-01-01"))
    ]


def test_a_suspension_that_ended_before_the_as_of_date_is_drawn() -> None:
    spans = [
        {"start": t("2025-01-01"), "end": t("2025-02-01"), "days": 31},
        {"start": t("2025-04-01"), "end": None, "days": 100},
    ]
    assert states(clause(in_force_spans=spans)) == [
        ("not-yet-effective", "2024-12-01", "2025-01-01"),
        ("in-force", "2025-01-01", "2025-02-01"),
        ("suspended", "2025-02-01", "2025-04-01"),
        ("in-force", "2025-04-01", "2026-01-01"),
    ]


def test_suspended_on_the_as_of_date_then_in_force_again_as_scheduled() -> None:
    spans = [{"start": t("2025-01-01"), "end": t("2025-06-01"), "days": 151}]
    c = clause(status="suspended", suspended_until=t("2025-09-01"), in_force_spans=spans)
    assert states(c)[1:] == [
        ("in-force", "2025-01-01", "2025-06-01"),
        ("suspended", "2025-06-01", "2025-09-01"),
        ("in-force", "2025-09-01", "2026-01-01"),
    ]


def test_never_in_force_and_revoked() -> None:
    never = clause(status="suspended", suspended_until=None)
    assert states(never)[1:] == [("suspended", "2025-01-01", "2026-01-01")]
    spans = [{"start": t("2025-01-01"), "end": t("2025-03-01"), "days": 59}]
    revoked = clause(status="revoked", revoked_at=t("2025-03-01"), in_force_spans=spans)
    assert states(revoked)[1:] == [
        ("in-force", "2025-01-01", "2025-03-01"),
        ("revoked", "2025-03-01", "2026-01-01"),
    ]
    scheduled = clause(status="not-yet-effective", effective_at=t("2025-12-01"))
    assert states(scheduled) == [
        ("not-yet-effective", "2024-12-01", "2025-12-01"),
        ("in-force", "2025-12-01", "2026-01-01"),
    ]


def test_a_licence_chart_draws_every_suspension_cut_out() -> None:
    """Suspended in January and again in March, active on the as-of date in June: both
    suspensions are drawn (the chart drew only the one in force on the as-of date)."""
    from ledger.web.charts import licences_chart

    row = {
        "licence_id": "GL-1",
        "status": "active",
        "valid_from": t("2025-12-02"),
        "valid_until": t("2026-12-02"),
        "withdrawn_at": None,
        "surrendered_at": None,
        "suspended_from": None,
        "suspended_until": None,
        "suspended_spans": [
            {"start": t("2026-01-10"), "end": t("2026-02-01"), "days": 22},
            {"start": t("2026-03-01"), "end": t("2026-03-20"), "days": 19},
        ],
    }
    svg = str(licences_chart([row], t("2026-06-30"), "licence"))
    assert svg.count('class="suspended"') == 2
    assert 'data-from="2026-01-10"' in svg and 'data-from="2026-03-01"' in svg
