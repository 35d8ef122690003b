"""Property tests of the stored views over random histories, on both backends.

Histories are generated as batches of random operations (shipments, suspensions,
withdrawals, amendments, clause suspensions and revocations, listings, vetting,
implementations, reversals, retractions...), with effective times before and after
their recorded times.  Operations the ledger rejects are dropped, so every history is
one the ledger accepts.  Each batch is recorded at its own (backfilled) recorded time.

1. The stored views, kept current batch by batch as a live projector would, answer
   every (as-of, known-at) exactly as a fresh fold of the same events does.
2. An answer for (T, K) does not change when events recorded after K are appended.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import hypothesis
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from ledger.app import Ledger
from ledger.errors import LedgerError
from ledger.projections import api
from ledger.projections.query import Views
from ledger.projections.runner import catch_up, new_projector
from ledger.times import from_us, to_us
from tests import oracle
from tests.conftest import SOURCE, Backend

S = [SOURCE]
BASE = dt.datetime(2025, 11, 1, tzinfo=dt.UTC)
KINDS = ("licence", "party", "measure", "commitment", "agreement")
OPS = (
    "usage",
    "usage",
    "usage",
    "suspend",
    "suspend",
    "reinstate",
    "withdraw",
    "surrender",
    "amend",
    "clause-suspend",
    "clause-suspend",
    "suspension-end",
    "revoke",
    "list",
    "delist",
    "classify",
    "vet",
    "implement",
    "implement",
    "reverse",
    "lapse",
    "acknowledge",
    "retract",
    "fill",  # a shipment of exactly what is left of an item's cap (the cap's boundary)
    "fill",
    "overfill",  # one unit more than is left (the ledger must refuse it)
    "at-mark",  # a shipment at the very instant of another event of its licence
)


def _day(n: int, hour: int = 0) -> str:
    return (BASE + dt.timedelta(days=n, hours=hour)).isoformat().replace("+00:00", "Z")


def base_events() -> list[dict[str, Any]]:
    party = {"type": "PartyRegistered", "sources": S, "effective_at": _day(-30)}
    events: list[dict[str, Any]] = [
        {**party, "entity_id": "x", "name": "Exporter", "country": "CN", "roles": ["exporter"]}
    ]
    for u in ("u1", "u2", "u3"):
        events += [
            {**party, "entity_id": u, "name": u, "country": "US", "roles": ["end-user"]},
            {
                "type": "PartyVetted",
                "entity_id": u,
                "outcome": "approved",
                "authority": "MOFCOM",
                "valid_until": _day(50),
                "effective_at": _day(-29),
                "sources": S,
            },
        ]
    events += [
        {
            "type": "MeasurePublished",
            "entity_id": "M",
            "issuer": "CN",
            "title": "M",
            "instrument": "Ann. 1",
            "effective_at": _day(-20),
            "sources": S,
            "clauses": [
                {
                    "clause_id": "a",
                    "effect": "licence-required",
                    "items": ["1C902"],
                    "effective_at": _day(5),
                },
                {
                    "clause_id": "b",
                    "effect": "prohibited",
                    "end_user_classes": ["military"],
                    "effective_at": _day(-20),
                },
            ],
        },
        {
            "type": "AgreementReached",
            "entity_id": "A",
            "title": "A",
            "parties": ["US", "CN"],
            "effective_at": _day(-10),
            "sources": S,
        },
        {
            "type": "CommitmentPledged",
            "entity_id": "cu",
            "agreement_id": "A",
            "obligor": "US",
            "beneficiary": "CN",
            "asserted_by": ["US"],
            "category": "tariffs",
            "description": "d",
            "due_by": _day(10),
            "effective_at": _day(-10),
            "sources": S,
        },
        {
            "type": "CommitmentPledged",
            "entity_id": "cc",
            "agreement_id": "A",
            "obligor": "CN",
            "beneficiary": "US",
            "asserted_by": ["US"],
            "category": "controls",
            "description": "d",
            "due_by": _day(20),
            "reciprocates": ["cu"],
            "effective_at": _day(-10),
            "sources": S,
        },
        {
            "type": "LicenceGranted",
            "entity_id": "L1",
            "licence_type": "general",
            "issuer": "CN",
            "exporter": "x",
            "end_users": ["u1", "u2"],
            "items": [{"item": "1C902.a", "cap": "1000"}, {"item": "1C903", "cap": "500"}],
            "destinations": ["US"],
            "valid_until": _day(60),
            "effective_at": _day(-5),
            "sources": S,
        },
        {
            "type": "LicenceGranted",
            "entity_id": "L2",
            "licence_type": "single",
            "issuer": "CN",
            "exporter": "x",
            "end_users": ["u3"],
            "items": [{"item": "1C902.a", "cap": "100"}],
            "destinations": ["US"],
            "valid_until": _day(40),
            "effective_at": _day(0),
            "sources": S,
        },
    ]
    return events


def _left(log: oracle.RawLog, licence: str, item: str) -> Decimal | None:
    """What is left of ``item``'s cap on ``licence`` with every recorded shipment counted
    (the naive replay of tests/oracle.py, as of the end of time)."""
    state = oracle.licences(log, dt.datetime.max.replace(tzinfo=dt.UTC), None).get(licence)
    if state is None or item not in state.caps:
        return None
    return state.caps[item] - state.used[item]


def make_event(
    op: str, a: int, b: int, day: int, appended: list[str], log: oracle.RawLog | None = None
) -> dict[str, Any] | list[dict[str, Any]] | None:
    """One candidate event, or a few (the ledger may reject them; they are then dropped)."""
    lic = ("L1", "L2")[a % 2]
    party = ("u1", "u2", "u3")[a % 3]
    clause = ("a", "b")[a % 2]
    commitment = ("cu", "cc")[a % 2]
    common = {"effective_at": _day(day, b % 24), "sources": S}
    if op == "usage":
        user = ("u1", "u2")[b % 2] if lic == "L1" else "u3"
        return {
            "type": "LicenceUsageRecorded",
            "entity_id": lic,
            "shipment_id": f"s{a}-{b}",
            "item": ("1C902.a", "1C903")[b % 2] if lic == "L1" else "1C902.a",
            "quantity": str(1 + b % 300),
            "end_user": user,
            "destination": "US",
            **common,
        }
    if op == "suspend":
        until = {"until": _day(day + 1 + b % 10)} if b % 2 else {}
        return {"type": "LicenceSuspended", "entity_id": lic, "reason": "r", **until, **common}
    if op == "reinstate":
        return {"type": "LicenceReinstated", "entity_id": lic, **common}
    if op == "withdraw":
        return {"type": "LicenceWithdrawn", "entity_id": lic, "reason": "r", **common}
    if op == "surrender":
        return {"type": "LicenceSurrendered", "entity_id": lic, **common}
    if op == "amend":
        if b % 2:
            return {
                "type": "LicenceAmended",
                "entity_id": lic,
                "reason": "r",
                "valid_until": _day(day + 5 + b % 30),
                **common,
            }
        return {
            "type": "LicenceAmended",
            "entity_id": lic,
            "reason": "r",
            "items": [{"item": "1C902.a", "cap": str(500 + b % 1000)}],
            **common,
        }
    if op == "clause-suspend":
        until = {"until": _day(day + 1 + b % 15)} if b % 3 else {}
        return {
            "type": "ClauseSuspended",
            "entity_id": "M",
            "clause_id": clause,
            "instrument": "i",
            **until,
            **common,
        }
    if op == "suspension-end":
        return {"type": "SuspensionEnded", "entity_id": "M", "clause_id": clause, **common}
    if op == "revoke":
        return {
            "type": "MeasureRevoked",
            "entity_id": "M",
            "clause_ids": [clause],
            "reason": "r",
            **common,
        }
    if op == "list":
        return {
            "type": "PartyListed",
            "entity_id": party,
            "list_name": f"list{b % 2}",
            "list_kind": ("military-end-user", "restricted")[b % 2],
            "authority": "BIS",
            **common,
        }
    if op == "delist":
        return {
            "type": "PartyDelisted",
            "entity_id": party,
            "list_name": f"list{b % 2}",
            "authority": "BIS",
            **common,
        }
    if op == "classify":
        return {
            "type": "PartyClassified",
            "entity_id": party,
            "classification": ("civil", "military", "military-affiliated")[b % 3],
            "authority": "MOFCOM",
            **common,
        }
    if op == "vet":
        return {
            "type": "PartyVetted",
            "entity_id": party,
            "outcome": ("approved", "rejected")[b % 2],
            "authority": "MOFCOM",
            "valid_until": _day(day + 1 + b % 40),
            **common,
        }
    if op == "implement":
        until = {"in_force_until": _day(day + 1 + b % 20)} if b % 3 == 0 else {}
        return {
            "type": "CommitmentImplemented",
            "entity_id": commitment,
            "extent": ("full", "partial")[b % 2],
            "instrument": "i",
            **until,
            **common,
        }
    if op == "reverse":
        return {"type": "CommitmentReversed", "entity_id": commitment, "reason": "r", **common}
    if op == "lapse":
        return {"type": "CommitmentLapsed", "entity_id": commitment, "reason": "r", **common}
    if op == "acknowledge":
        return {
            "type": "CommitmentAcknowledged",
            "entity_id": commitment,
            "party": ("US", "CN")[a % 2],
            **common,
        }
    if op in ("fill", "overfill") and log is not None:
        # An item with something left (the other one first when this one is used up), so
        # that fills in turn use up every item of a general licence.
        items = ("1C902.a", "1C903")[:: 1 if b % 2 else -1] if lic == "L1" else ("1C902.a",)
        open_items = [(i, x) for i in items if (x := _left(log, lic, i)) is not None and x > 0]
        if not open_items:
            return None
        # 'fill' ships what is left of every item (a general licence is then used up),
        # 'overfill' one unit more than is left of one item.
        if op == "overfill":
            open_items = open_items[:1]
        usage = make_event("usage", a, b, day, appended)
        assert isinstance(usage, dict)
        return [
            {
                **usage,
                "item": item,
                "quantity": str(left + (1 if op == "overfill" else 0)),
                "shipment_id": f"f{a}-{b}-{n}",
            }
            for n, (item, left) in enumerate(open_items)
        ]
    if op == "at-mark" and log is not None:
        marks = sorted(
            {e["effective_at"] for e in log.events if e["entity_id"] == lic and e["_position"] > 1}
        )
        event = make_event("usage", a, b, day, appended)
        if not marks or not isinstance(event, dict):
            return None
        return {**event, "effective_at": marks[b % len(marks)], "shipment_id": f"m{a}-{b}"}
    if op == "retract" and appended:
        return {
            "type": "EventRetracted",
            "retracted_event_id": appended[b % len(appended)],
            "reason": "wrong",
        }
    return None


Op = tuple[str, int, int, int]
histories = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(OPS),
            st.integers(0, 5),
            st.integers(0, 10_000),
            st.integers(-15, 70),
        ),
        min_size=1,
        max_size=8,
    ),
    min_size=2,
    max_size=6,
)


def record(
    app: Ledger,
    batches: list[list[Op]],
    *,
    first_batch: int = 0,
    tally: Counter[str] | None = None,
) -> list[dt.datetime]:
    """Append the base history and the batches (dropping rejected events); returns the
    recorded time of each batch appended.  ``tally`` counts candidates, rejections and
    licences used up exactly (reported to Hypothesis as events, too).

    A batch whose first operation has ``a == 5`` is recorded at the same instant as the
    batch before it (two backfills recorded at the ledger's latest recorded time)."""
    tally = Counter() if tally is None else tally
    times: list[dt.datetime] = []
    if first_batch == 0:
        recorded = BASE - dt.timedelta(days=40)
        _append(app, base_events(), recorded, Counter())  # the base is not a candidate
        times.append(recorded)
    recorded = BASE + dt.timedelta(days=12 * first_batch, hours=5)
    for i, ops in enumerate(batches, start=first_batch):
        if not (ops and ops[0][1] == 5 and i > first_batch):
            recorded = BASE + dt.timedelta(days=12 * i, hours=5)
        appended = _event_ids(app)
        log = oracle.RawLog.read(app)
        events: list[dict[str, Any]] = []
        for op in ops:
            made = make_event(*op, appended, log)
            events += made if isinstance(made, list) else [made] if made is not None else []
        if _append(app, events, recorded, tally) and (not times or times[-1] != recorded):
            times.append(recorded)
    final = oracle.licences(oracle.RawLog.read(app), dt.datetime.max.replace(tzinfo=dt.UTC), None)
    tally["used up exactly"] += sum(
        1 for state in final.values() for i in state.caps if state.used[i] == state.caps[i]
    )
    tally["general licence used up"] += sum(
        1
        for lid, state in final.items()
        if lid == "L1" and all(state.used[i] >= state.caps[i] for i in state.caps)
    )
    if currently_in_test_context():  # reported with --hypothesis-show-statistics
        share = tally["rejected"] / tally["candidates"] if tally["candidates"] else 0.0
        hypothesis.event(f"rejected {round(share, 1):.0%} of candidate events")
        if tally["used up exactly"]:
            hypothesis.event("an item used up exactly")
    return times


def _event_ids(app: Ledger) -> list[str]:
    return [
        str(entry.event.event_id)
        for entry in app.log(order="recorded", include_retracted=True)
        if entry.event.type != "EventRetracted"
    ]


def _append(
    app: Ledger, events: list[dict[str, Any]], recorded: dt.datetime, tally: Counter[str]
) -> bool:
    stamp = recorded.isoformat().replace("+00:00", "Z")
    events = [{**e, "recorded_at": stamp} for e in events]
    tally["candidates"] += len(events)
    while events:
        try:
            app.append_objects([dict(e) for e in events], backfill=True)
            return True
        except LedgerError as exc:
            line = exc.line or 1
            tally["rejected"] += 1
            tally[f"rejected {events[line - 1]['type']}"] += 1
            del events[line - 1]
    return False


def assert_oracle_agrees(
    views: Views, log: oracle.RawLog, t: dt.datetime, k: dt.datetime | None
) -> None:
    """The views' licences and clauses as of T, known at K, are what the naive replay of
    the raw log (tests/oracle.py) says they are."""
    expected = oracle.licences(log, t, k)
    got = {
        row["licence_id"]: (
            row["status"],
            {i["item"]: (Decimal(i["cap"]), Decimal(i["used"])) for i in row["items"]},
            row["shipments"],
        )
        for row in api.licences(views, t, k)
    }
    want = {
        lid: (o.status, {i: (o.caps[i], o.used[i]) for i in o.caps}, o.shipments)
        for lid, o in expected.items()
    }
    assert got == want, ("licences", t, k)
    clauses = {
        f"{r['measure_id']}/{r['clause_id']}": r["status"] for r in api.measures(views, t, k)
    }
    assert clauses == oracle.clauses(log, t, k), ("clauses", t, k)


def answers(v: Views, as_of: dt.datetime, known_at: dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {k: v.records(k, as_of, known_at) for k in KINDS}
    out["findings"] = [f.to_dict() for f in api.all_findings(v, as_of, known_at)]
    out["asymmetry"] = api.asymmetry(v, as_of, known_at)
    return out


def probe_times(
    times: list[dt.datetime], picks: list[tuple[int, int]]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """(T, K) pairs around the history: known-at just before/at/after each batch."""
    lo, hi = to_us(BASE - dt.timedelta(days=45)), to_us(BASE + dt.timedelta(days=90))
    k_lo, k_hi = to_us(times[0]) - 1, to_us(times[-1]) + 1
    out = []
    for t_pick, k_pick in picks:
        t = from_us(lo + t_pick * (hi - lo) // 1000)
        if k_pick % 3 == 0:
            k = times[k_pick % len(times)]  # exactly at a batch's recorded time
        else:
            k = from_us(k_lo + k_pick * (k_hi - k_lo) // 1000)
        out.append((t, k))
    return out


PICKS = st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=6, max_size=12)
PROPERTY_SETTINGS = settings()  # the profile's (tests/conftest.py): 200 derandomized in CI


def instants(app: Ledger) -> list[dt.datetime]:
    """Every instant the history mentions (effective times and ends of windows)."""
    out: set[dt.datetime] = set()
    for entry in app.log(include_retracted=True):
        e = entry.event
        out.add(e.effective_at)
        for name in ("until", "valid_until", "due_by", "in_force_until"):
            value = getattr(e, name, None)
            if isinstance(value, dt.datetime):
                out.add(value)
    return sorted(out)


@PROPERTY_SETTINGS
@given(batches=histories, picks=PICKS, near=st.lists(st.integers(0, 10**6), max_size=16))
def test_live_stored_views_equal_a_fresh_fold(
    backend: Backend, batches: list[list[Op]], picks: list[tuple[int, int]], near: list[int]
) -> None:
    app = Ledger(backend.settings())
    try:
        projector = new_projector(app)
        times = record(app, batches[:1])
        catch_up(app, projector)
        for i, ops in enumerate(batches[1:], start=1):
            times += record(app, [ops], first_batch=i)
            catch_up(app, projector)  # live: the views follow batch by batch
        stored, fold = Views(app, mode="stored"), Views(app, mode="fold")
        log = oracle.RawLog.read(app)
        for t, k in probe_times(times, picks):
            assert answers(stored, t, k) == answers(fold, t, k), (t, k)
            assert_oracle_agrees(stored, log, t, k)
        # Just before, at and after the instants where statuses change with time alone.
        marks = instants(app)
        for n in near:
            t = marks[n % len(marks)] + dt.timedelta(microseconds=(n % 3) - 1)
            k = times[(n // 3) % len(times)] if n % 2 else None
            for kind in KINDS:
                assert stored.records(kind, t, k) == fold.records(kind, t, k), (kind, t, k)
            assert_oracle_agrees(stored, log, t, k)
    finally:
        app.close()


def _inside(spans: list[dict[str, Any]], t: dt.datetime) -> bool:
    return any(
        dt.datetime.fromisoformat(str(s["start"])) <= t
        and (s["end"] is None or t < dt.datetime.fromisoformat(str(s["end"])))
        for s in spans
    )


@PROPERTY_SETTINGS
@given(batches=histories, picks=PICKS, near=st.lists(st.integers(0, 10**6), max_size=12))
def test_licence_spans_follow_the_status_the_oracle_replays(
    backend: Backend, batches: list[list[Op]], picks: list[tuple[int, int]], near: list[int]
) -> None:
    """A licence's active and suspended spans as of T, known at K, say at every earlier
    instant s what the naive replay of the events effective by s says its status was:
    active (or exhausted: using up the caps ends no span) inside an active span,
    suspended inside a suspended span, neither otherwise."""
    app = Ledger(backend.settings())
    try:
        times = record(app, batches)
        catch_up(app, new_projector(app))
        stored = Views(app, mode="stored")
        log = oracle.RawLog.read(app)
        marks = instants(app)
        # Every instant the history names, and some a microsecond either side.
        probes = sorted(
            {
                *marks,
                *(marks[n % len(marks)] + dt.timedelta(microseconds=(n % 3) - 1) for n in near),
            }
        )
        status_at: dict[tuple[dt.datetime, dt.datetime], dict[str, oracle.Licence]] = {}
        for t, k in probe_times(times, picks):
            for row in api.licences(stored, t, k):
                lid = row["licence_id"]
                for s in [*(p for p in probes if p <= t), t]:
                    if (s, k) not in status_at:
                        status_at[s, k] = oracle.licences(log, s, k)
                    then = status_at[s, k].get(lid)
                    status = then.status if then is not None else "not granted yet"
                    where = (lid, status, s, t, k)
                    assert _inside(row["active_spans"], s) == (status in ("active", "exhausted")), (
                        where
                    )
                    assert _inside(row["suspended_spans"], s) == (status == "suspended"), where
    finally:
        app.close()


@PROPERTY_SETTINGS
@given(batches=histories, picks=PICKS, cut=st.integers(1, 5))
def test_answers_are_stable_when_later_knowledge_arrives(
    backend: Backend, batches: list[list[Op]], picks: list[tuple[int, int]], cut: int
) -> None:
    app = Ledger(backend.settings())
    try:
        cut = min(cut, len(batches) - 1)
        times = record(app, batches[:cut])
        catch_up(app, new_projector(app))
        known = times[-1]
        probes = [(t, min(k, known)) for t, k in probe_times(times, picks)]
        before = {p: answers(Views(app, mode="stored"), *p) for p in probes}
        record(app, batches[cut:], first_batch=cut)
        catch_up(app, new_projector(app))
        for p in probes:
            assert answers(Views(app, mode="stored"), *p) == before[p], p
            assert answers(Views(app, mode="fold"), *p) == before[p], p
    finally:
        app.close()


def test_the_first_end_of_a_licence_stands(backend: Backend) -> None:
    """Withdrawn on day 4, then a surrender effective day 3 recorded later: the licence
    was surrendered on day 3 (found by the oracle; the views said 'withdrawn', the state
    giving a withdrawal precedence whatever the order)."""
    app = Ledger(backend.settings())
    try:
        record(
            app,
            [
                [("usage", 0, 2, 0), ("withdraw", 0, 0, 4)],
                [("surrender", 0, 0, 3), ("vet", 0, 0, 0)],
            ],
        )
        catch_up(app, new_projector(app))
        t = BASE + dt.timedelta(days=10)
        for views in (Views(app, mode="stored"), Views(app, mode="fold")):
            [row] = api.licences(views, t, None, ids=["L1"])
            assert (row["status"], row["withdrawn_at"]) == ("surrendered", None)
            assert row["surrendered_at"] == BASE + dt.timedelta(days=3)
            assert_oracle_agrees(views, oracle.RawLog.read(app), t, None)
    finally:
        app.close()


def test_generated_histories_are_plausible(sqlite_backend: Backend) -> None:
    """The generator reaches the boundaries it aims at, and the ledger rejects a
    plausible share of its candidates: a rule that rejects too much (or a generator that
    only produces what is refused) would otherwise leave the properties testing little."""
    tally: Counter[str] = Counter()

    @settings(max_examples=40, derandomize=True, database=None)
    @given(batches=histories)
    def run(batches: list[list[Op]]) -> None:
        app = Ledger(sqlite_backend.settings())
        try:
            record(app, batches, tally=tally)
        finally:
            app.close()

    run()
    share = tally["rejected"] / tally["candidates"]
    assert 0.05 < share < 0.6, tally
    assert tally["used up exactly"] > 0, tally
    assert tally["general licence used up"] > 0, tally
    assert tally["rejected LicenceUsageRecorded"] < tally["candidates"] / 2, tally


def test_generated_histories_exercise_late_knowledge(backend: Backend) -> None:
    """The generator produces backdated events, retractions and rejected candidates."""
    app = Ledger(backend.settings())
    try:
        ops: list[list[Op]] = [
            [("usage", 0, 5, 10), ("usage", 0, 6, 11)],  # recorded on day 0
            [("withdraw", 0, 1, 8), ("usage", 0, 8, 9)],  # day 12: withdrawal backdated to 8
            [("retract", 0, 0, 0)],  # day 24
        ]
        record(app, ops)
        catch_up(app, new_projector(app))
        entries = list(app.log(order="recorded", include_retracted=True))
        [withdrawal] = [e.event for e in entries if e.event.type == "LicenceWithdrawn"]
        assert withdrawal.effective_at < withdrawal.recorded_at
        assert [e.event.type for e in entries].count("LicenceUsageRecorded") == 2  # 1 rejected
        assert entries[-1].event.type == "EventRetracted"
        v = Views(app, mode="stored")
        t = BASE + dt.timedelta(days=20)
        assert [r["status"] for r in api.licences(v, t, None, ids=["L1"])] == ["withdrawn"]
        late = api.all_findings(v, t, None, kinds=["late-usage"])
        assert [f.details["shipment_id"] for f in late] == ["s0-5", "s0-6"]
        before = api.all_findings(v, t, BASE + dt.timedelta(days=1), kinds=["late-usage"])
        assert before == []
    finally:
        app.close()
