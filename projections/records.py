"""Per-entity view records: what each view stores about one entity, as pure functions.

A *record* is the compact, display-ready summary of an entity's fold (``ledger.domain.state``)
that the views store and the queries return.  It has two parts:

- the **static** part (a msgspec Struct per kind: ``LicenceRecord``, ``PartyRecord``, ...),
  fixed between two effective times at which the entity's events change it;
- the **timeline**: the statuses that move with time alone (a licence expiring, a
  suspension running out, a commitment falling overdue), as ``[(t_us, value), ...]``
  computed with the folds' own ``status_at(t)`` at every instant where it can change (the
  entity's *breakpoints*).  ``resolve(timeline, T)`` picks the value in force at ``T``.

So one stored record answers every as-of time inside its segment without recomputation,
and the fresh-fold path (``Folded`` over the visible events, then ``static_record`` and
``timeline``) produces exactly the same answers: the property tests check that.

Everything here is pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from ledger import events as ev
from ledger.domain import state as st
from ledger.domain.items import most_specific
from ledger.domain.licence import inactive_since
from ledger.times import EPOCH as _EPOCH
from ledger.times import to_us

Span = tuple[dt.datetime, dt.datetime | None]
"""[start, end): an exclusive end, None while open."""

INFINITY = 2**62
"""The open end of a valid-time or recorded-time interval (microseconds)."""

VIEW_KINDS: tuple[str, ...] = ("licence", "party", "measure", "commitment", "agreement")
"""Entity kinds with a stored view (applications are decided on demand, not viewed)."""
KIND_CODE: dict[str, int] = {kind: i + 1 for i, kind in enumerate(VIEW_KINDS)}


class _Rec(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, array_like=True, gc=False
):
    """Records hold only immutable values (no reference cycles): out of the cyclic GC."""

    pass


# --- licences ---------------------------------------------------------------------------


class ItemUse(_Rec, frozen=True, kw_only=False):
    item: str
    cap: Decimal
    used: Decimal
    unit: str

    @property
    def remaining(self) -> Decimal:
        # Computed, not stored: a subtraction costs a quarter of decoding one more Decimal
        # (a full licence listing decodes thousands of these).
        return self.cap - self.used


class LateUsage(_Rec, frozen=True, kw_only=True):
    """A shipment whose effective time falls where the licence was not in force."""

    usage_event: UUID
    shipment_id: str
    shipped_at: dt.datetime
    recorded_at: dt.datetime
    item: str
    quantity: Decimal
    licence_status: str
    """The licence's status at the shipment: withdrawn, suspended, expired, ..."""
    since: dt.datetime | None = None
    cause_event: UUID | None = None
    cause_recorded_at: dt.datetime | None = None


class LicenceRecord(_Rec, frozen=True, kw_only=True):
    licence_id: str
    licence_type: str
    issuer: str
    exporter: str
    end_users: tuple[str, ...]
    destinations: tuple[str, ...]
    items: tuple[ItemUse, ...]
    valid_from: dt.datetime
    valid_until: dt.datetime
    granted_event: UUID
    suspended_from: dt.datetime | None = None
    suspended_until: dt.datetime | None = None
    suspension_event: UUID | None = None
    withdrawn_at: dt.datetime | None = None
    surrendered_at: dt.datetime | None = None
    terminal_event: UUID | None = None
    shipments: int = 0
    late_usage: tuple[LateUsage, ...] = ()
    active_spans: tuple[Span, ...] = ()
    """When the licence was (or is scheduled to be) active, as its effective history
    says: see ``licence_periods``."""
    suspended_spans: tuple[Span, ...] = ()
    """The suspensions cut out of its validity."""

    # What ``ledger.domain.licence.coverage`` reads of a licence (``LicenceTerms``).
    def licensed_items(self) -> tuple[ItemUse, ...]:
        return self.items

    def licensed_item(self, code: str) -> ItemUse | None:
        return most_specific(self.items, code)

    def item_named(self, item: str) -> ItemUse | None:
        return next((i for i in self.items if i.item == item), None)


# --- parties ----------------------------------------------------------------------------


class ListingRecord(_Rec, frozen=True, kw_only=True):
    list_name: str
    list_kind: str
    authority: str
    listed_at: dt.datetime
    event_id: UUID


class PartyRecord(_Rec, frozen=True, kw_only=True):
    party_id: str
    name: str
    country: str
    roles: tuple[str, ...]
    registered_at: dt.datetime
    registered_event: UUID
    vetting: str | None = None
    vetting_authority: str | None = None
    vetted_at: dt.datetime | None = None
    vetting_until: dt.datetime | None = None
    vetting_event: UUID | None = None
    classification: str | None = None
    classification_event: UUID | None = None
    listings: tuple[ListingRecord, ...] = ()
    end_user_class: str = "civil"
    military: bool = False


# --- measures ---------------------------------------------------------------------------


class SuspensionRecord(_Rec, frozen=True, kw_only=True):
    event_id: UUID
    start: dt.datetime
    until: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    ended_event: UUID | None = None
    instrument: str = ""


class ClauseRecord(_Rec, frozen=True, kw_only=True):
    clause_id: str
    effect: str
    items: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    end_user_classes: tuple[str, ...] = ()
    effective_at: dt.datetime
    description: str = ""
    suspensions: tuple[SuspensionRecord, ...] = ()
    revoked_at: dt.datetime | None = None
    revoked_event: UUID | None = None


class MeasureRecord(_Rec, frozen=True, kw_only=True):
    measure_id: str
    issuer: str
    title: str
    instrument: str
    published_at: dt.datetime
    published_event: UUID
    clauses: tuple[ClauseRecord, ...]


# --- commitments and agreements ---------------------------------------------------------


class ImplementationRecord(_Rec, frozen=True, kw_only=True):
    event_id: UUID
    at: dt.datetime
    extent: str
    instrument: str
    until: dt.datetime | None = None


class CommitmentRecord(_Rec, frozen=True, kw_only=True):
    commitment_id: str
    agreement_id: str
    obligor: str
    beneficiary: str
    asserted_by: tuple[str, ...]
    category: str
    description: str
    pledged_at: dt.datetime
    pledge_event: UUID
    due_by: dt.datetime | None = None
    reciprocates: tuple[str, ...] = ()
    acknowledged_at: dt.datetime | None = None
    unilateral: bool = False
    implementations: tuple[ImplementationRecord, ...] = ()
    ended_at: dt.datetime | None = None
    end_kind: str | None = None
    end_event: UUID | None = None


class AgreementRecord(_Rec, frozen=True, kw_only=True):
    agreement_id: str
    title: str
    parties: tuple[str, ...]
    reached_at: dt.datetime
    reached_event: UUID
    valid_until: dt.datetime | None = None
    extendable: bool = False


Record = LicenceRecord | PartyRecord | MeasureRecord | CommitmentRecord | AgreementRecord


def ref_of(value: Any) -> str | None:
    """What a listing filters an entity by, from its record or its folded state: a
    licence's exporter, a commitment's agreement (None for other kinds)."""
    if isinstance(value, LicenceRecord | st.LicenceState):
        return value.exporter
    if isinstance(value, CommitmentRecord | st.CommitmentState):
        return value.agreement_id
    return None


RECORD_TYPES: dict[str, type[Record]] = {
    "licence": LicenceRecord,
    "party": PartyRecord,
    "measure": MeasureRecord,
    "commitment": CommitmentRecord,
    "agreement": AgreementRecord,
}

# Timeline values per kind: licence/agreement: status; party: vetting status; commitment:
# [status, id of the implementation in force or null]; measure: one
# [status, suspension event id or null, suspension end or null] per clause.
Timeline = tuple[tuple[int, Any], ...]


# --- a licence's active and suspended spans ---------------------------------------------


def licence_periods(
    s: st.LicenceState, start: dt.datetime, stop: dt.datetime | None
) -> tuple[list[Span], list[Span]]:
    """Where ``s``, left unchanged, makes the licence active and suspended within
    [start, stop) (None: for ever): active from its validity's start to its end or its
    withdrawal or surrender, with the suspension cut out.  Using up the caps ends no span
    (``exhausted`` is about quantities: the licence is still valid)."""
    lo = max(start, s.valid_from)
    ended = s.withdrawn_at if s.withdrawn_at is not None else s.surrendered_at
    hi = s.valid_until if ended is None else min(s.valid_until, ended)
    if stop is not None:
        hi = min(hi, stop)
    if hi <= lo:
        return [], []
    if s.suspended_from is None:
        return [(lo, hi)], []
    cut_from = max(lo, s.suspended_from)
    cut_to = hi if s.suspended_until is None else min(hi, s.suspended_until)
    if cut_to <= cut_from:
        return [(lo, hi)], []
    active: list[Span] = [(a, b) for a, b in ((lo, cut_from), (cut_to, hi)) if a < b]
    return active, [(cut_from, cut_to)]


def _joined(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Spans in order, those that meet end to start made one."""
    out: list[Span] = []
    for a, b in spans:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out)


@dataclass
class LicencePast:
    """A licence's spans before ``since`` (the effective time of the last event that
    changed its terms), settled: each event changes the licence from its own time on, so
    what the state said about the time before it stands."""

    since: dt.datetime
    active: list[Span] = field(default_factory=list)
    suspended: list[Span] = field(default_factory=list)

    def settle(self, s: st.LicenceState, t: dt.datetime) -> None:
        if t <= self.since:
            return
        active, suspended = licence_periods(s, self.since, t)
        self.active += active
        self.suspended += suspended
        self.since = t

    def spans(self, s: st.LicenceState) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
        """Active and suspended spans over all time: the settled past, then what the
        current state schedules."""
        active, suspended = licence_periods(s, self.since, None)
        return _joined([*self.active, *active]), _joined([*self.suspended, *suspended])


# --- folding with findings --------------------------------------------------------------


@dataclass
class Folded:
    """A fold in effective order, plus what a view needs beyond the domain state.

    For licences it notes every shipment whose effective time falls where the licence was
    not in force (the late-knowledge conflicts the rules could not see at append time).
    """

    state: st.State | None = None
    late_usage: list[LateUsage] = field(default_factory=list)
    causes: dict[UUID, ev.Event] = field(default_factory=dict)
    past: LicencePast | None = None

    def step(self, e: ev.Event, status: str | None = None) -> None:
        """Fold one more event.  ``status``: the licence's status at a shipment's time, when
        the caller already knows it (from the state's timeline)."""
        state = self.state
        if isinstance(state, st.LicenceState):
            if isinstance(e, ev.LicenceUsageRecorded):
                if status is None:
                    status = state.status_at(e.effective_at)
                # (Each shipment id occurs once in a licence's history: duplicate-shipment.)
                if status != "active":
                    self.late_usage.append(self._late(state, e, status))
                state.use(e)  # what st.evolve does for it, without the dispatch
                return
            elif isinstance(e, ev.LicenceSuspended | ev.LicenceWithdrawn | ev.LicenceSurrendered):
                self.causes[e.event_id] = e
            if self.past is not None:
                self.past.settle(state, e.effective_at)
        self.state = st.evolve(state, e)
        if self.past is None and isinstance(self.state, st.LicenceState):
            self.past = LicencePast(self.state.valid_from)

    def _late(self, licence: st.LicenceState, e: ev.LicenceUsageRecorded, status: str) -> LateUsage:
        cause_id = licence.cause_of(status)
        cause = self.causes.get(cause_id) if cause_id is not None else None
        return LateUsage(
            usage_event=e.event_id,
            shipment_id=e.shipment_id,
            shipped_at=e.effective_at,
            recorded_at=e.recorded_at,
            item=e.item,
            quantity=e.quantity,
            licence_status=status,
            since=inactive_since(licence, status),
            cause_event=cause_id,
            cause_recorded_at=cause.recorded_at if cause is not None else None,
        )


def fold_visible(events: Iterable[ev.Event]) -> Folded:
    """Fold already-visible events (effective order)."""
    folded = Folded()
    for e in events:
        folded.step(e)
    return folded


# --- static records ---------------------------------------------------------------------


def _licence(f: Folded, s: st.LicenceState) -> LicenceRecord:
    active, suspended = f.past.spans(s) if f.past is not None else ((), ())
    return LicenceRecord(
        licence_id=s.licence_id,
        licence_type=s.licence_type,
        issuer=s.issuer,
        exporter=s.exporter,
        end_users=s.end_users,
        destinations=s.destinations,
        items=tuple(
            ItemUse(item=i.item, cap=i.cap, used=i.used, unit=i.unit) for i in s.items.values()
        ),
        valid_from=s.valid_from,
        valid_until=s.valid_until,
        granted_event=s.granted_event_id,
        suspended_from=s.suspended_from,
        suspended_until=s.suspended_until,
        suspension_event=s.suspension_event_id,
        withdrawn_at=s.withdrawn_at,
        surrendered_at=s.surrendered_at,
        terminal_event=s.terminal_event_id,
        shipments=s.shipment_count,
        late_usage=tuple(f.late_usage),
        active_spans=active,
        suspended_spans=suspended,
    )


def _party(s: st.PartyState) -> PartyRecord:
    return PartyRecord(
        party_id=s.party_id,
        name=s.name,
        country=s.country,
        roles=s.roles,
        registered_at=s.registered_at,
        registered_event=s.event_ids[0],
        vetting=s.vetting,
        vetting_authority=s.vetting_authority,
        vetted_at=s.vetted_at,
        vetting_until=s.vetting_until,
        vetting_event=s.vetting_event_id,
        classification=s.classification,
        classification_event=s.classification_event_id,
        listings=tuple(
            ListingRecord(
                list_name=x.list_name,
                list_kind=x.list_kind,
                authority=x.authority,
                listed_at=x.listed_at,
                event_id=x.event_id,
            )
            for x in s.listings.values()
        ),
        end_user_class=s.end_user_class(),
        military=s.is_military(),
    )


def _measure(s: st.MeasureState) -> MeasureRecord:
    return MeasureRecord(
        measure_id=s.measure_id,
        issuer=s.issuer,
        title=s.title,
        instrument=s.instrument,
        published_at=s.published_at,
        published_event=s.event_ids[0],
        clauses=tuple(
            ClauseRecord(
                clause_id=c.clause.clause_id,
                effect=c.clause.effect,
                items=c.clause.items,
                destinations=c.clause.destinations,
                end_user_classes=c.clause.end_user_classes,
                effective_at=c.clause.effective_at,
                description=c.clause.description,
                suspensions=tuple(
                    SuspensionRecord(
                        event_id=x.event_id,
                        start=x.start,
                        until=x.until,
                        ended_at=x.ended_at,
                        ended_event=x.ended_event_id,
                        instrument=x.instrument,
                    )
                    for x in c.suspensions
                ),
                revoked_at=c.revoked_at,
                revoked_event=c.revoked_event_id,
            )
            for c in s.clauses.values()
        ),
    )


def _commitment(s: st.CommitmentState) -> CommitmentRecord:
    return CommitmentRecord(
        commitment_id=s.commitment_id,
        agreement_id=s.agreement_id,
        obligor=s.obligor,
        beneficiary=s.beneficiary,
        asserted_by=s.asserted_by,
        category=s.category,
        description=s.description,
        pledged_at=s.pledged_at,
        pledge_event=s.pledge_event_id,
        due_by=s.due_by,
        reciprocates=s.reciprocates,
        acknowledged_at=s.acknowledged_at,
        unilateral=s.unilateral,
        implementations=tuple(
            ImplementationRecord(
                event_id=i.event_id,
                at=i.at,
                extent=i.extent,
                instrument=i.instrument,
                until=i.until,
            )
            for i in s.implementations
        ),
        ended_at=s.ended_at,
        end_kind=s.end_kind,
        end_event=s.end_event_id,
    )


def _agreement(s: st.AgreementState) -> AgreementRecord:
    return AgreementRecord(
        agreement_id=s.agreement_id,
        title=s.title,
        parties=s.parties,
        reached_at=s.reached_at,
        reached_event=s.event_ids[0],
        valid_until=s.valid_until,
        extendable=s.extendable,
    )


def static_record(f: Folded) -> Record | None:
    """The static part of an entity's record (None before it exists or if not viewed)."""
    s = f.state
    if isinstance(s, st.LicenceState):
        return _licence(f, s)
    if isinstance(s, st.PartyState):
        return _party(s)
    if isinstance(s, st.MeasureState):
        return _measure(s)
    if isinstance(s, st.CommitmentState):
        return _commitment(s)
    if isinstance(s, st.AgreementState):
        return _agreement(s)
    return None


def next_record(previous: Record | None, f: Folded, e: ev.Event) -> Record | None:
    """``static_record(f)`` after ``f`` stepped through ``e``, reusing ``previous``.

    A shipment changes a licence's record only in the used quantity of one item, the
    number of shipments and perhaps the late-usage list; rebuilding the rest for every
    shipment would dominate a rebuild.
    """
    s = f.state
    if (
        type(e) is ev.LicenceUsageRecorded
        and type(previous) is LicenceRecord
        and type(s) is st.LicenceState
    ):
        return _after_shipment(previous, f, s, s.licensed_item(e.item))
    return static_record(f)


def shipped(
    previous: Record | None, f: Folded, e: ev.LicenceUsageRecorded, status: str
) -> LicenceRecord:
    """Fold a shipment into a licence's fold ``f``, whose record is ``previous``, and
    return the record after it: ``f.step(e, status)`` then ``next_record``, with the item
    the shipment draws on looked up once (a rebuild does this for most of its events).
    ``status``: the licence's status at the shipment's time."""
    s = f.state
    assert type(s) is st.LicenceState and type(previous) is LicenceRecord
    if status != "active":
        f.late_usage.append(f._late(s, e, status))
    return _after_shipment(previous, f, s, s.use(e))


def _after_shipment(
    previous: LicenceRecord, f: Folded, s: st.LicenceState, item: st.ItemState | None
) -> LicenceRecord:
    """A licence's record after a shipment that drew on ``item`` (folded into ``s``)."""
    items = previous.items
    if item is not None:
        code = item.item  # the licensed item drawn on (the shipment's code or a prefix)
        if len(items) == 1 and items[0].item == code:
            items = (ItemUse(code, item.cap, item.used, item.unit),)
        else:
            items = tuple(  # a list first: faster than a generator on this hot path
                [
                    ItemUse(i.item, item.cap, item.used, i.unit) if i.item == code else i
                    for i in items
                ]
            )
    late = previous.late_usage
    if len(f.late_usage) != len(late):
        late = tuple(f.late_usage)
    return msgspec.structs.replace(
        previous, items=items, shipments=s.shipment_count, late_usage=late
    )


# --- the timeline of time-driven statuses -----------------------------------------------


def _breakpoints(s: st.State) -> list[dt.datetime]:
    """Every instant at which ``dynamic(s, t)`` may change with t alone."""
    out: list[dt.datetime | None]
    if isinstance(s, st.LicenceState):
        out = [s.valid_from, s.valid_until, s.suspended_from, s.suspended_until]
    elif isinstance(s, st.PartyState):
        out = [s.vetting_until]
    elif isinstance(s, st.MeasureState):
        out = []
        for c in s.clauses.values():
            out += [c.clause.effective_at, c.revoked_at]
            for x in c.suspensions:
                out += [x.start, x.end]
    elif isinstance(s, st.CommitmentState):
        out = [s.due_by, s.ended_at]
        for i in s.implementations:
            out += [i.at, i.until]
    elif isinstance(s, st.AgreementState):
        out = [s.reached_at, s.valid_until]
    else:
        out = []
    return [t for t in out if t is not None]


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def dynamic(s: st.State, t: dt.datetime) -> Any:
    """The time-driven part of a record at ``t`` (JSON-able)."""
    if isinstance(s, st.LicenceState | st.AgreementState):
        return s.status_at(t)
    if isinstance(s, st.PartyState):
        return s.vetting_at(t)
    if isinstance(s, st.CommitmentState):
        current = s.current_implementation(t)
        return [s.status_at(t), None if current is None else str(current.event_id)]
    if isinstance(s, st.MeasureState):
        out: list[list[str | None]] = []
        for c in s.clauses.values():
            status = c.status_at(t)
            suspension = c.suspension_at(t) if status == "suspended" else None
            out.append(
                [
                    status,
                    None if suspension is None else str(suspension.event_id),
                    None if suspension is None else _iso(suspension.end),
                ]
            )
        return out
    return None


ORIGIN = -INFINITY
"""Timeline key of the value in force before the first breakpoint."""
_TICK = dt.timedelta(microseconds=1)


def timeline(s: st.State) -> Timeline:
    """The time-driven values of a state over all time: ``((t_us, value), ...)``.

    The first entry (at ``ORIGIN``) holds before the first breakpoint; each later one from
    its instant on.  Independent of where the state's segment starts, so every row showing
    this state shares it.
    """
    points = sorted(set(_breakpoints(s)))
    if not points:
        return ((ORIGIN, dynamic(s, _EPOCH)),)
    out: list[tuple[int, Any]] = [(ORIGIN, dynamic(s, points[0] - _TICK))]
    for t in points:
        value = dynamic(s, t)
        if value != out[-1][1]:
            out.append((to_us(t), value))
    return tuple(out)


def timeline_key(s: st.State) -> tuple[Any, ...] | None:
    """Everything ``dynamic(s, t)`` reads, for states whose timeline is worth caching.

    Licences (most events are shipments, which rarely change the timeline): the inputs
    of ``LicenceState.status_at``, ``is_exhausted()`` last (the projector compares just
    that after a shipment, the one input a shipment can change).  None: do not cache.
    """
    if isinstance(s, st.LicenceState):
        return (
            s.valid_from,
            s.valid_until,
            s.suspended_from,
            s.suspended_until,
            s.withdrawn_at,
            s.surrendered_at,
            s.is_exhausted(),
        )
    return None


def resolve(tl: Sequence[Sequence[Any]], t_us: int) -> Any:
    """The timeline value in force at ``t_us``."""
    # Timelines are a handful of entries: a scan beats building a list to bisect.
    value = tl[0][1]
    for at, v in tl:
        if at > t_us:
            break
        value = v
    return value


# --- encoding ---------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_timeline_decoder = msgspec.json.Decoder(tuple[tuple[int, Any], ...])
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(cls) for kind, cls in RECORD_TYPES.items()
}


encode: Callable[[Any], bytes] = _encoder.encode
"""A record or timeline as stored (the encoder's method itself: one call per event in a
rebuild)."""


def decoder(kind: str) -> Callable[[bytes], Record]:
    """The typed decoder of a kind's records."""
    return _decoders[kind].decode


def decode_record(kind: str, data: bytes) -> Record:
    result: Record = _decoders[kind].decode(data)
    return result


def timeline_decoder() -> Callable[[bytes], Timeline]:
    return _timeline_decoder.decode


def decode_timeline(data: bytes) -> Timeline:
    return _timeline_decoder.decode(data)


# --- segments of current knowledge ------------------------------------------------------


@dataclass(slots=True)
class Segment:
    """The record in force over valid time ``[vf, vt)`` (microseconds)."""

    vf: int
    vt: int
    static: bytes
    timeline: bytes


def segments(events: Sequence[ev.Event], known_at: dt.datetime | None = None) -> list[Segment]:
    """The entity's records over all valid time, as known at ``known_at`` (None: all).

    One segment per effective time at which the record changes; adjacent equal records
    merge (the timeline anchored at the first carries on through the merged span).
    """
    return fold_segments(st.visible(events, None, known_at))[0]


def fold_segments(
    seen: Sequence[ev.Event], since: int | None = None
) -> tuple[list[Segment], Folded]:
    """Segments of already-visible events (effective order), and the complete fold.

    With ``since`` (microseconds) only the segments from ``since`` on are built, the first
    one starting at ``since``: the records before it are not computed (the events are
    folded all the same).
    """
    out: list[Segment] = []
    folded = Folded()
    i, n = 0, len(seen)
    if since is not None:
        while i < n and to_us(seen[i].effective_at) <= since:
            folded.step(seen[i])
            i += 1
        record = static_record(folded)
        if record is not None:
            assert folded.state is not None
            out.append(Segment(since, INFINITY, encode(record), encode(timeline(folded.state))))
    while i < n:
        t = seen[i].effective_at
        while i < n and seen[i].effective_at == t:
            folded.step(seen[i])
            i += 1
        record = static_record(folded)
        if record is None:
            continue
        data = encode(record)
        if out and out[-1].static == data:
            continue
        assert folded.state is not None
        start = to_us(t)
        if out:
            out[-1].vt = start
        out.append(Segment(start, INFINITY, data, encode(timeline(folded.state))))
    return out, folded


def record_at(
    events: Sequence[ev.Event], as_of: dt.datetime, known_at: dt.datetime | None
) -> tuple[Record, Any] | None:
    """The fresh-fold answer for one entity: (static record, time-driven value at as_of)."""
    folded = fold_visible(st.visible(events, as_of, known_at))
    rec = static_record(folded)
    if rec is None:
        return None
    assert folded.state is not None
    return rec, dynamic(folded.state, as_of)


Dyn = Callable[[st.State, dt.datetime], Any]
