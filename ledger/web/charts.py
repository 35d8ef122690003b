"""SVG timelines drawn on the server from the views' JSON rows (no script, no fetch).

Each chart is one ``<svg>`` with a ``viewBox`` (it scales to its container; on a narrow
screen its container scrolls sideways) and a ``<title>``/``<desc>``; the page shows the
same data as a table beside it.  Colours come from the stylesheet through classes, so
the Content-Security-Policy needs no inline style; data attributes carry the dates each
mark stands for (what the browser test reads), and the axis says how dates map to x.

The axis runs in UTC; a mark's day (its data attributes, the tables) is the instant's
day in the reading zone (the page's ``tz``), as the CLI's tables show it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

UTC = dt.UTC
WIDTH = 1000
LABEL = 260
"""Left margin for row labels."""
ROW = 26
AXIS = 34
DAY = dt.timedelta(days=1)
FIRST = dt.datetime.min.replace(tzinfo=UTC)
LAST = dt.datetime.max.replace(tzinfo=UTC)
"""The calendar's ends: an axis (its margins, its ticks) stops there, so a page asked
about 9999-12-31 or 0001-01-01 draws its timeline instead of overflowing."""


def shifted(t: dt.datetime, days: int) -> dt.datetime:
    """``t`` moved by ``days``, stopping at the calendar's ends."""
    try:
        return t + days * DAY
    except OverflowError:
        return LAST if days > 0 else FIRST


def instant(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day(value: Any) -> str:
    """The day of an instant in the reading zone (``tz``, as the CLI's ``--tz``), as the
    CLI's tables show it (``''`` for none)."""
    from ledger.projections.views import day as view_day

    return view_day(instant(value))


@dataclass(frozen=True)
class Axis:
    start: dt.datetime
    end: dt.datetime
    x0: float = LABEL
    x1: float = WIDTH - 10

    @classmethod
    def around(
        cls, instants: Iterable[dt.datetime | None], *, before: int = 3, after: int = 7
    ) -> Axis:
        known = [t.astimezone(UTC) for t in instants if t is not None]
        if not known:
            now = dt.datetime.now(UTC)
            known = [now]
        lo = shifted(_midnight(min(known)), -before)
        hi = shifted(_midnight(max(known)), after + 1)
        return cls(lo, hi)

    def x(self, t: dt.datetime) -> float:
        span = (self.end - self.start).total_seconds()
        f = (t.astimezone(UTC) - self.start).total_seconds() / span
        return round(self.x0 + max(0.0, min(1.0, f)) * (self.x1 - self.x0), 2)

    def attributes(self) -> str:
        return (
            f'data-axis-start="{self.start.isoformat()}" data-axis-end="{self.end.isoformat()}" '
            f'data-x0="{self.x0}" data-x1="{self.x1}"'
        )

    def ticks(self) -> list[dt.datetime]:
        days = (self.end - self.start).days
        if days <= 45:
            step = 7 if days > 14 else 1
            first = self.start
            return [first + i * step * DAY for i in range(days // step + 1)]
        months = days / 30.5
        if months > 36:
            # Whole years; over centuries (an as-of date near 9999) every few years, so
            # that there are never more than about 24 ticks.
            step = max(1, -(-int(months / 12) // 24))
            year0 = self.start.year + ((self.start.month, self.start.day) != (1, 1))
            return [
                dt.datetime(year, 1, 1, tzinfo=UTC)
                for year in range(year0 + (-year0 % step), self.end.year + 1, step)
                if dt.datetime(year, 1, 1, tzinfo=UTC) <= self.end
            ]
        every = 1 if months <= 12 else 3
        out = []
        t = self.start.replace(day=1)
        while t <= self.end:
            if t >= self.start and (t.month - 1) % every == 0:
                out.append(t)
            if (t.year, t.month) == (dt.MAXYEAR, 12):
                break
            t = t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)
        return out

    def tick_label(self, t: dt.datetime) -> str:
        days = (self.end - self.start).days
        if days <= 45:
            return t.strftime("%b %d")
        return f"{t.year:04d}-{t.month:02d}" if days > 400 else t.strftime("%b %Y")


def _midnight(t: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(t.astimezone(UTC).date(), dt.time(), UTC)


def _axis_marks(axis: Axis, height: float) -> list[str]:
    out = []
    for t in axis.ticks():
        x = axis.x(t)
        out.append(
            f'<line class="grid" x1="{x}" y1="{AXIS - 6}" x2="{x}" y2="{height}" />'
            f'<text class="tick" x="{x}" y="{AXIS - 12}" text-anchor="middle">'
            f"{escape(axis.tick_label(t))}</text>"
        )
    return out


def _as_of_line(axis: Axis, as_of: dt.datetime, height: float) -> str:
    x = axis.x(as_of)
    return (
        f'<line class="as-of" x1="{x}" y1="{AXIS - 4}" x2="{x}" y2="{height}" '
        f'data-as-of="{escape(as_of.isoformat())}" />'
        f'<text class="as-of-label" x="{x + 4}" y="{height - 4}">as of {day(as_of)}</text>'
    )


def _svg(
    axis: Axis, height: float, title: str, desc: str, body: Sequence[str], name: str
) -> Markup:
    return Markup(
        f'<svg class="chart {name}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{name}-title {name}-desc" {axis.attributes()} '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{name}-title">{escape(title)}</title>'
        f'<desc id="{name}-desc">{escape(desc)}</desc>' + "".join(body) + "</svg>"
    )


def _bar(
    axis: Axis, cls: str, start: dt.datetime, end: dt.datetime, y: float, h: float, **data: str
) -> str:
    x0, x1 = axis.x(start), axis.x(end)
    attrs = " ".join(
        f'data-{k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in data.items()
    )
    return (
        f'<rect class="{cls}" x="{x0}" y="{y}" width="{max(x1 - x0, 1.5)}" height="{h}" {attrs} />'
    )


def _label(text: str, y: float, cls: str = "label") -> str:
    shown = text if len(text) <= 38 else text[:37] + "…"
    return f'<text class="{cls}" x="6" y="{y}"><title>{escape(text)}</title>{escape(shown)}</text>'


# --- commitments -----------------------------------------------------------------------


def commitments_chart(report: dict[str, Any], agreement: str, name: str) -> Markup:
    """One agreement's commitments, one row each, grouped by reciprocal pair: the pledge
    (circle), the due date (tick), implemented spans (bars), reversal or lapse (cross),
    the stretch a pair was one-sided (shaded, with its length), and the as-of line."""
    as_of = instant(report["as_of"])
    assert as_of is not None
    rows = [c for c in report["commitments"] if c["agreement_id"] == agreement]
    by_id = {c["commitment_id"]: c for c in rows}
    pairs = [p for p in report["pairs"] if p["agreement_id"] == agreement]
    order: list[tuple[str, dict[str, Any] | None]] = []
    seen: set[str] = set()
    for pair in pairs:
        members = [m for m in pair["commitments"] if m in by_id and m not in seen]
        for m in members:
            order.append((m, pair))
            seen.add(m)
    order += [(c["commitment_id"], None) for c in rows if c["commitment_id"] not in seen]
    agreement_date = next((instant(p["agreement_date"]) for p in pairs), None)
    moments: list[dt.datetime | None] = [as_of, agreement_date]
    for c in rows:
        moments += [instant(c["pledged_at"]), instant(c["due_by"]), instant(c["ended_at"])]
        moments += [instant(start) for start, _ in c["implemented_spans"]]
    # Ends beyond the as-of date are not drawn (what is known to hold up to T is).
    axis = Axis.around(t for t in moments if t is None or t <= shifted(as_of, 60))
    height = AXIS + ROW * len(order) + 22
    body = _axis_marks(axis, height)
    y_of = {cid: AXIS + i * ROW for i, (cid, _) in enumerate(order)}
    # One-sided stretches first, behind the rows they span.
    drawn: set[int] = set()
    for _, pair in order:
        if pair is None or id(pair) in drawn:
            continue
        drawn.add(id(pair))
        since, until = instant(pair["one_sided_since"]), instant(pair["one_sided_until"])
        if since is None or until is None or until <= since:
            continue
        ys = [y_of[m] for m in pair["commitments"] if m in y_of]
        top, bottom = min(ys), max(ys) + ROW
        body.append(
            _bar(
                axis,
                "one-sided" + (" open" if pair["state"] == "one-sided" else ""),
                since,
                until,
                top + 1,
                bottom - top - 2,
                pair=" ".join(pair["commitments"]),
                from_=day(since),
                until=day(until),
                days=str(pair["one_sided_days"]),
                state=pair["state"],
            )
        )
        if pair["state"] == "one-sided":  # closed stretches: in the table (and tooltip)
            body.append(
                f'<text class="one-sided-label" x="{axis.x(until) + 4}" y="{top + 16}">'
                f"one-sided {escape(pair['one_sided_for'] or '')}</text>"
            )
    for cid, _ in order:
        c = by_id[cid]
        y = y_of[cid]
        mid = y + ROW / 2
        body.append(_label(f"{c['obligor']}→{c['beneficiary']} {cid}", mid + 4))
        body.append(f'<line class="track" x1="{axis.x0}" y1="{mid}" x2="{axis.x1}" y2="{mid}" />')
        for start, end in c["implemented_spans"]:
            s, e = instant(start), instant(end)
            assert s is not None
            stop = min(e, as_of) if e is not None else as_of
            if stop > s:
                body.append(
                    _bar(
                        axis,
                        "implemented",
                        s,
                        stop,
                        y + 6,
                        ROW - 12,
                        commitment=cid,
                        from_=day(s),
                        until=day(e) if e else "",
                    )
                )
        pledged = instant(c["pledged_at"])
        if pledged is not None:
            body.append(
                f'<circle class="pledge" cx="{axis.x(pledged)}" cy="{mid}" r="5" '
                f'data-commitment="{escape(cid)}" data-day="{day(pledged)}">'
                f"<title>pledged {day(pledged)}</title></circle>"
            )
        due = instant(c["due_by"])
        if due is not None:
            x = axis.x(due)
            body.append(
                f'<path class="due{" overdue" if c["overdue"] else ""}" '
                f'd="M{x} {y + 3} L{x} {y + ROW - 3} M{x - 5} {y + 3} L{x + 5} {y + 3}" '
                f'data-commitment="{escape(cid)}" data-day="{day(due)}">'
                f"<title>due by {day(due)}</title></path>"
            )
        ended = instant(c["ended_at"])
        if ended is not None and c["status"] in ("reversed", "lapsed"):
            x = axis.x(ended)
            body.append(
                f'<path class="ended" d="M{x - 5} {mid - 5} L{x + 5} {mid + 5} M{x - 5} '
                f'{mid + 5} L{x + 5} {mid - 5}" data-commitment="{escape(cid)}" '
                f'data-day="{day(ended)}"><title>{c["status"]} {day(ended)}</title></path>'
            )
    body.append(_as_of_line(axis, as_of, height))
    return _svg(
        axis,
        height,
        f"Commitments under {agreement}",
        "One row per commitment, grouped by reciprocal pair: pledge (circle), due date "
        "(tick), implemented spans (bars), reversal or lapse (cross), one-sided stretches "
        "(shaded) and the as-of date (vertical line). The table below has the same data.",
        body,
        name,
    )


# --- measures ---------------------------------------------------------------------------


def clause_segments(
    c: dict[str, Any], start: dt.datetime, end: dt.datetime
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """A clause row's states over ``[start, end)``: not yet effective, in force (its
    ``in_force_spans``, the view's own), suspended (the gaps between them, and the
    suspension in force on the as-of date up to its end), revoked."""
    effective = instant(c["effective_at"])
    revoked = instant(c["revoked_at"])
    assert effective is not None
    stop = revoked or end
    out: list[tuple[str, dt.datetime, dt.datetime]] = []
    if effective > start:
        out.append(("not-yet-effective", start, effective))
    cursor = effective
    for span in c["in_force_spans"]:
        s, e = instant(span["start"]), instant(span["end"])
        assert s is not None
        if s > cursor:
            out.append(("suspended", cursor, s))
        out.append(("in-force", s, e or stop))
        cursor = e or stop
    if cursor < stop:
        if c["status"] == "suspended":
            until = instant(c["suspended_until"])
            out.append(("suspended", cursor, min(until, stop) if until else stop))
            if until is not None and until < stop:
                out.append(("in-force", until, stop))  # as scheduled on the as-of date
        elif c["status"] == "not-yet-effective":
            out.append(("in-force", cursor, stop))  # scheduled
    if revoked is not None:
        out.append(("revoked", revoked, end))
    return [(state, a, b) for state, a, b in out if b > a]


def measures_chart(
    clauses: Sequence[dict[str, Any]], as_of: dt.datetime, name: str = "measures"
) -> Markup:
    """Each clause on a shared axis: not yet effective, in force, suspended, revoked (see
    ``clause_segments``); and the as-of line."""
    moments: list[dt.datetime | None] = [as_of]
    for c in clauses:
        moments += [instant(c["effective_at"]), instant(c["revoked_at"])]
        moments.append(instant(c["suspended_until"]))
    axis = Axis.around(moments, before=30, after=30)
    height = AXIS + ROW * len(clauses) + 22
    body = _axis_marks(axis, height)
    for i, c in enumerate(clauses):
        key = f"{c['measure_id']}/{c['clause_id']}"
        y = AXIS + i * ROW
        body.append(_label(f"{key} {c['effect']}", y + ROW / 2 + 4))
        for state, s, e in clause_segments(c, axis.start, axis.end):
            body.append(
                _bar(
                    axis,
                    f"clause {state}",
                    s,
                    e,
                    y + 6,
                    ROW - 12,
                    clause=key,
                    state=state,
                    from_=day(s),
                    until=day(e),
                )
            )
    body.append(_as_of_line(axis, as_of, height))
    return _svg(
        axis,
        height,
        "Clauses of the measures",
        "One row per clause: not yet effective (light blue), in force (dark blue), "
        "suspended (amber), revoked (grey); the vertical line is the as-of date. The table "
        "below has the same data.",
        body,
        name,
    )


# --- licences ---------------------------------------------------------------------------


def licences_chart(rows: Sequence[dict[str, Any]], as_of: dt.datetime, name: str) -> Markup:
    """Each licence's validity on a shared axis (suspension shaded, withdrawal or
    surrender marked), and the as-of line."""
    moments: list[dt.datetime | None] = [as_of]
    for r in rows:
        moments += [instant(r["valid_from"]), instant(r["valid_until"])]
    axis = Axis.around(moments, before=14, after=14)
    height = AXIS + ROW * len(rows) + 22
    body = _axis_marks(axis, height)
    for i, r in enumerate(rows):
        y = AXIS + i * ROW
        lid = r["licence_id"]
        body.append(_label(f"{lid} ({r['status']})", y + ROW / 2 + 4))
        start, end = instant(r["valid_from"]), instant(r["valid_until"])
        assert start is not None and end is not None
        cut = instant(r["withdrawn_at"]) or instant(r["surrendered_at"])
        body.append(
            _bar(
                axis,
                "validity",
                start,
                min(end, cut) if cut else end,
                y + 6,
                ROW - 12,
                licence=lid,
                from_=day(start),
                until=day(end),
            )
        )
        # Every suspension cut out of its validity (the view's suspended_spans), not only
        # the one in force on the as-of date.
        for span in r.get("suspended_spans", ()):
            s, u = instant(span["start"]), instant(span["end"])
            if s is not None:
                body.append(
                    _bar(axis, "suspended", s, u or end, y + 6, ROW - 12, licence=lid, from_=day(s))
                )
        if cut is not None:
            x = axis.x(cut)
            body.append(
                f'<path class="ended" d="M{x - 5} {y + 8} L{x + 5} {y + 18} M{x - 5} {y + 18} '
                f'L{x + 5} {y + 8}" data-licence="{escape(lid)}" data-day="{day(cut)}" />'
            )
    body.append(_as_of_line(axis, as_of, height))
    return _svg(
        axis,
        height,
        "Licence validity",
        "One row per licence: its validity (bar), a suspension (amber), a withdrawal or "
        "surrender (cross); the vertical line is the as-of date. The table has the same data.",
        body,
        name,
    )


def quantity_bar(used: Any, cap: Any) -> Markup:
    """Remaining quantity against the cap, as a small horizontal bar."""
    from decimal import Decimal

    cap_d, used_d = Decimal(str(cap)), Decimal(str(used))
    share = float(min(Decimal(1), used_d / cap_d)) if cap_d > 0 else 1.0
    remaining = 1.0 - share
    return Markup(
        '<svg class="quantity" viewBox="0 0 200 14" role="img" aria-hidden="true" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<rect class="cap" x="0" y="1" width="200" height="12" />'
        f'<rect class="remaining" x="0" y="1" width="{round(200 * remaining, 2)}" height="12" '
        f'data-remaining-share="{remaining:.4f}" /></svg>'
    )
