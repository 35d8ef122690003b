"""Licences: state, fold step, rules, and whether a licence covers a shipment.

A licence is general (repeated exports, one or more end users, at most 36 months) or
single (one end user, at most 12 months, used up by its shipment).  Its status at a time
(``status_at``) is derived: active, not-yet-valid, suspended, expired, exhausted,
withdrawn or surrendered.

``coverage`` decides whether a licence covers a shipment, for the append rule
(``LicenceUsageRecorded``) and the export decision (``ledger check``/``apply``) alike:
the licence is active at the shipment's time, one of its items covers the item code
(``ledger.domain.items``: prefix at a dot boundary, the most specific item; units never
converted), it names the end user and the destination, and the quantity fits what
remains of that item both at that time and over the licence's whole life (shipments
effective later already count against the cap).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from ledger import events as ev
from ledger.domain.facts import Check, Facts, day, require, shared, shared_names, window
from ledger.domain.items import most_specific
from ledger.domain.party import PartyState, check_end_users
from ledger.domain.quantities import check_quantity, quantity_text
from ledger.errors import RuleViolation
from ledger.times import add_months, end_text, local_day, through_text

GENERAL_LICENCE_MAX_MONTHS = 36
SINGLE_LICENCE_MAX_MONTHS = 12


@dataclass(slots=True)
class ItemState:
    item: str
    cap: Decimal
    unit: str
    used: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal:
        return self.cap - self.used


@dataclass(slots=True)
class LicenceState:
    licence_id: str
    licence_type: str
    issuer: str
    exporter: str
    end_users: tuple[str, ...]
    items: dict[str, ItemState]
    destinations: tuple[str, ...]
    valid_from: dt.datetime
    valid_until: dt.datetime
    granted_event_id: UUID
    suspended_from: dt.datetime | None = None
    suspended_until: dt.datetime | None = None
    suspension_event_id: UUID | None = None
    withdrawn_at: dt.datetime | None = None
    surrendered_at: dt.datetime | None = None
    terminal_event_id: UUID | None = None
    shipment_count: int = 0
    """Shipments folded in.  The state stays bounded whatever the history (it is what an
    append's snapshot holds): which shipment ids are recorded is asked of the ledger
    (``Facts.shipment``: the entity's events, or the store's shipment index)."""

    def copy(self) -> LicenceState:
        """An independent copy: folding more events into it leaves this one unchanged."""
        return replace(
            self,
            items={k: ItemState(i.item, i.cap, i.unit, i.used) for k, i in self.items.items()},
        )

    def licensed_items(self) -> Sequence[ItemState]:
        return list(self.items.values())

    def licensed_item(self, code: str) -> ItemState | None:
        """The item a shipment of ``code`` draws on: the most specific that covers it."""
        exact = self.items.get(code)  # the most specific there can be; nearly always
        return exact if exact is not None else most_specific(self.items.values(), code)

    def item_named(self, item: str) -> ItemState | None:
        return self.items.get(item)

    def is_suspended_at(self, t: dt.datetime) -> bool:
        return (
            self.suspended_from is not None
            and self.suspended_from <= t
            and (self.suspended_until is None or t < self.suspended_until)
        )

    def is_exhausted(self) -> bool:
        if self.licence_type == "single":
            return self.shipment_count > 0
        for item in self.items.values():  # noqa: SIM110 - a plain loop is faster on the hot path
            if item.cap > item.used:
                return False
        return True

    def status_at(self, t: dt.datetime) -> str:
        """active | suspended | withdrawn | surrendered | expired | exhausted |
        not-yet-valid."""
        if self.withdrawn_at is not None:
            return "withdrawn"
        if self.surrendered_at is not None:
            return "surrendered"
        if t < self.valid_from:
            return "not-yet-valid"
        if t >= self.valid_until:
            return "expired"
        if self.is_suspended_at(t):
            return "suspended"
        if self.is_exhausted():
            return "exhausted"
        return "active"

    def cause_of(self, status: str) -> UUID | None:
        """The event that put the licence in ``status`` (None: time or usage did)."""
        if status in ("withdrawn", "surrendered"):
            return self.terminal_event_id
        if status == "suspended":
            return self.suspension_event_id
        return None

    def use(self, e: ev.LicenceUsageRecorded) -> ItemState | None:
        """Fold a shipment in; returns the item it drew on (None: no item covers it)."""
        # Shipment ids are unique among a licence's folded events (duplicate-shipment),
        # so counting them counts distinct shipments.
        self.shipment_count += 1
        item = self.licensed_item(e.item)
        if item is not None:
            item.used += e.quantity
        return item

    def apply(self, e: ev.Event) -> None:
        if isinstance(e, ev.LicenceUsageRecorded):
            self.use(e)
        elif isinstance(e, ev.LicenceAmended):
            if e.valid_until is not None:
                self.valid_until = e.valid_until
            if e.end_users is not None:
                self.end_users = e.end_users
            if e.destinations is not None:
                self.destinations = e.destinations
            if e.items is not None:
                used = {k: v.used for k, v in self.items.items()}
                self.items = {
                    i.item: ItemState(i.item, i.cap, i.unit, used.get(i.item, Decimal(0)))
                    for i in e.items
                }
        elif isinstance(e, ev.LicenceSuspended):
            self.suspended_from = e.effective_at
            self.suspended_until = e.until
            self.suspension_event_id = e.event_id
        elif isinstance(e, ev.LicenceReinstated):
            self.suspended_from = None
            self.suspended_until = None
            self.suspension_event_id = None
        elif (
            isinstance(e, ev.LicenceWithdrawn | ev.LicenceSurrendered)
            and self.terminal_event_id is None
        ):
            # The first end stands: a licence surrendered on day 3 is no longer there to
            # be withdrawn on day 4 (a backdated surrender can arrive after the withdrawal).
            if isinstance(e, ev.LicenceWithdrawn):
                self.withdrawn_at = e.effective_at
            else:
                self.surrendered_at = e.effective_at
            self.terminal_event_id = e.event_id


def new_licence(e: ev.LicenceGranted) -> LicenceState:
    return LicenceState(
        licence_id=e.entity_id,
        licence_type=shared(e.licence_type),
        issuer=shared(e.issuer),
        exporter=shared(e.exporter),
        end_users=tuple(map(shared, e.end_users)),
        items={i.item: ItemState(shared(i.item), i.cap, shared(i.unit)) for i in e.items},
        destinations=shared_names(e.destinations),
        valid_from=e.effective_at,
        valid_until=e.valid_until,
        granted_event_id=e.event_id,
    )


def share_values(state: LicenceState) -> LicenceState:
    """``state`` holding the strings ``new_licence`` shares (returned; changed in place):
    for a state decoded from a snapshot, whose every string is decoded afresh.  An import
    reloading thousands of licences from their snapshots held "general", "CN", "kg", the
    exporter, the item codes and the destinations once for each (~400 bytes a licence)."""
    state.licence_type = shared(state.licence_type)
    state.issuer = shared(state.issuer)
    state.exporter = shared(state.exporter)
    state.end_users = tuple(map(shared, state.end_users))
    state.destinations = shared_names(state.destinations)
    items = {}
    for code, item in state.items.items():
        item.item = shared(item.item)
        item.unit = shared(item.unit)
        items[shared(code)] = item
    state.items = items
    return state


# --- coverage ---------------------------------------------------------------------------


class ItemTerms(Protocol):
    @property
    def item(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def cap(self) -> Decimal: ...
    @property
    def remaining(self) -> Decimal: ...


class LicenceTerms(Protocol):
    """What coverage reads of a licence: its folded state, or the views' record of it."""

    @property
    def licence_id(self) -> str: ...
    @property
    def end_users(self) -> tuple[str, ...]: ...
    @property
    def destinations(self) -> tuple[str, ...]: ...
    @property
    def valid_from(self) -> dt.datetime: ...
    @property
    def valid_until(self) -> dt.datetime: ...
    @property
    def suspended_from(self) -> dt.datetime | None: ...
    @property
    def withdrawn_at(self) -> dt.datetime | None: ...
    @property
    def surrendered_at(self) -> dt.datetime | None: ...
    def licensed_items(self) -> Sequence[ItemTerms]: ...
    def licensed_item(self, code: str) -> ItemTerms | None: ...
    def item_named(self, item: str) -> ItemTerms | None: ...


def inactive_since(licence: LicenceTerms, status: str) -> dt.datetime | None:
    """Since when a licence not active has had ``status`` (None: not known by a time)."""
    return {
        "withdrawn": licence.withdrawn_at,
        "surrendered": licence.surrendered_at,
        "expired": licence.valid_until,
        "suspended": licence.suspended_from,
        "not-yet-valid": licence.valid_from,
    }.get(status)


@dataclass(frozen=True)
class Gap:
    """Why a licence does not cover a shipment."""

    rule: str
    """The append rule's name (``item-not-licensed``, ``usage-exceeds-cap``, ...)."""
    field: str
    """The usage event's field at fault."""
    message: str
    """The append rule's sentence."""
    reason: str
    """The same, as the export decision words it for one candidate licence."""


@dataclass(frozen=True)
class Coverage:
    gap: Gap | None
    """None: the licence covers the shipment."""
    item: ItemTerms | None = None
    """The licensed item the shipment draws on."""
    remaining: Decimal | None = None
    """What remains of that item before the shipment (at its time and over the life)."""

    @property
    def covered(self) -> bool:
        return self.gap is None


def coverage(
    licence: LicenceTerms,
    status: str,
    at: dt.datetime,
    item: str,
    unit: str | None,
    quantity: Decimal,
    end_user: str,
    destination: str,
    whole: LicenceTerms | None = None,
) -> Coverage:
    """Whether ``licence`` (as of ``at``, where its status is ``status``) covers shipping
    ``quantity`` of ``item`` to ``end_user`` in ``destination``.

    ``unit``: the unit the quantity is in (None: the licensed item's own, as for a
    recorded shipment).  ``whole``: the licence over all effective times, whose later
    shipments count against the cap too.
    """
    gap, drawn, remaining = _coverage(
        licence, status, at, item, unit, quantity, end_user, destination, whole
    )
    return Coverage(gap, drawn, remaining)


def _coverage(
    licence: LicenceTerms,
    status: str,
    at: dt.datetime,
    item: str,
    unit: str | None,
    quantity: Decimal,
    end_user: str,
    destination: str,
    whole: LicenceTerms | None = None,
) -> tuple[Gap | None, ItemTerms | None, Decimal | None]:
    """``coverage``'s answer as its three parts: the rule that records every shipment
    asks only whether there is a gap, and a frozen ``Coverage`` is ~0.8 us to build."""
    lid = licence.licence_id
    if status != "active":
        on = local_day(at).isoformat()  # (only a refusal says the day: not per shipment)
        since = inactive_since(licence, status) if status != "not-yet-valid" else None
        if status == "expired":
            # The stored end is exclusive: expired since 2026-12-02T00:00Z is "at the end
            # of 2026-12-01", the day the licence was last valid.
            state_text = f"expired at {end_text(licence.valid_until)}"
        else:
            state_text = f"{status} since {day(since)}" if since else status
        return (
            Gap(
                f"licence-{status}",
                "effective_at",
                f"licence '{lid}' is {state_text}; no shipment on {day(at)} can be "
                "recorded under it",
                f"{status} on {on}",
            ),
            None,
            None,
        )
    drawn = licence.licensed_item(item)
    if drawn is None:
        codes = ", ".join(i.item for i in licence.licensed_items())
        return (
            Gap(
                "item-not-licensed",
                "item",
                f"licence '{lid}' does not cover '{item}' (covers: {codes})",
                f"does not cover {item}",
            ),
            None,
            None,
        )
    if unit is not None and drawn.unit != unit:
        return (
            Gap(
                "unit-not-licensed",
                "unit",
                f"licence '{lid}' caps '{drawn.item}' in {drawn.unit}, not {unit} "
                "(units are not converted)",
                f"caps {item} in {drawn.unit}, not {unit} (units are not converted)",
            ),
            drawn,
            None,
        )
    if end_user not in licence.end_users:
        return (
            Gap(
                "end-user-not-licensed",
                "end_user",
                f"licence '{lid}' does not name end user '{end_user}'",
                f"does not name end user {end_user}",
            ),
            drawn,
            None,
        )
    if destination not in licence.destinations:
        return (
            Gap(
                "destination-not-licensed",
                "destination",
                f"licence '{lid}' does not cover destination {destination}",
                f"does not cover destination {destination}",
            ),
            drawn,
            None,
        )
    remaining = drawn.remaining
    later = whole.item_named(drawn.item) if whole is not None else None
    if later is not None and later.remaining < remaining:
        remaining = later.remaining
    if quantity > remaining:
        return (
            Gap(
                "usage-exceeds-cap",
                "quantity",
                f"quantity {quantity} {drawn.unit} of '{item}' exceeds the remaining "
                f"{remaining} {drawn.unit} (cap {drawn.cap})",
                f"only {quantity_text(remaining)} {drawn.unit} of {drawn.item} remain",
            ),
            drawn,
            remaining,
        )
    return None, drawn, remaining


def covers(
    licence: LicenceState,
    item: str,
    unit: str | None,
    quantity: Decimal,
    end_user: str,
    destination: str,
    at: dt.datetime,
    whole: LicenceState | None = None,
) -> bool:
    """``licence`` (its state as of ``at``) covers the shipment (see ``coverage``)."""
    status = licence.status_at(at)
    return (
        _coverage(licence, status, at, item, unit, quantity, end_user, destination, whole)[0]
        is None
    )


# --- rules ------------------------------------------------------------------------------


def check_validity(licence_type: str, start: dt.datetime, until: dt.datetime) -> None:
    window(start, until, "valid_until")
    months = GENERAL_LICENCE_MAX_MONTHS if licence_type == "general" else SINGLE_LICENCE_MAX_MONTHS
    limit = add_months(start, months)
    if until > limit:
        raise RuleViolation(
            f"{licence_type}-licence-max-{months}-months",
            f"a {licence_type} licence may be valid for at most {months} months: "
            f"valid from {day(start)}, so {through_text(limit)} at the latest, not "
            f"{through_text(until)}",
            field="valid_until",
        )


def _check_items(items: Sequence[ev.LicenceItem], field: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.item in seen:
            raise RuleViolation(
                "duplicate-item", f"item '{item.item}' appears twice", field=f"{field}[{i}].item"
            )
        seen.add(item.item)
        check_quantity(item.cap, f"{field}[{i}].cap")


def _single_end_user(licence_type: str, end_users: Sequence[str]) -> None:
    if licence_type == "single" and len(end_users) != 1:
        raise RuleViolation(
            "single-licence-one-end-user",
            f"a single licence names exactly one end user, got {len(end_users)}",
            field="end_users",
        )


def _licence_granted(e: ev.LicenceGranted, facts: Facts) -> None:
    check_validity(e.licence_type, e.effective_at, e.valid_until)
    _single_end_user(e.licence_type, e.end_users)
    if len(set(e.end_users)) != len(e.end_users):
        raise RuleViolation("duplicate-end-user", "an end user appears twice", field="end_users")
    _check_items(e.items, "items")
    require(facts, "party", e.exporter, "exporter", PartyState)
    check_end_users(facts, e.end_users, e.effective_at, "end_users")


def _licence_at(facts: Facts, e: ev.Event, whole: LicenceState | None = None) -> LicenceState:
    if whole is None:
        whole = require(facts, "licence", e.entity_id, "entity_id", LicenceState)
    licence = facts.state("licence", e.entity_id, e.effective_at)
    if not isinstance(licence, LicenceState):
        raise RuleViolation(
            "licence-not-yet-valid",
            f"licence '{e.entity_id}' is valid only from {day(whole.valid_from)}",
            field="effective_at",
        )
    return licence


def _not_terminated(licence: LicenceState) -> None:
    if licence.withdrawn_at is not None:
        raise RuleViolation(
            "licence-withdrawn",
            f"licence '{licence.licence_id}' was withdrawn on {day(licence.withdrawn_at)}",
            field="entity_id",
        )
    if licence.surrendered_at is not None:
        raise RuleViolation(
            "licence-surrendered",
            f"licence '{licence.licence_id}' was surrendered on {day(licence.surrendered_at)}",
            field="entity_id",
        )


def _licence_amended(e: ev.LicenceAmended, facts: Facts) -> None:
    licence = _licence_at(facts, e)
    _not_terminated(licence)
    if e.valid_until is None and e.end_users is None and e.items is None and e.destinations is None:
        raise RuleViolation(
            "empty-amendment",
            "an amendment changes at least one of valid_until, end_users, items, destinations",
            field="valid_until",
        )
    if e.valid_until is not None:
        check_validity(licence.licence_type, licence.valid_from, e.valid_until)
    if e.end_users is not None:
        _single_end_user(licence.licence_type, e.end_users)
        check_end_users(facts, e.end_users, e.effective_at, "end_users", already=licence.end_users)
    if e.destinations is not None and not e.destinations:
        raise RuleViolation("no-destination", "a licence needs a destination", field="destinations")
    if e.items is not None:
        if not e.items:
            raise RuleViolation("no-item", "a licence needs an item", field="items")
        _check_items(e.items, "items")
        whole = facts.state("licence", e.entity_id, None)
        assert isinstance(whole, LicenceState)
        for i, item in enumerate(e.items):
            used = whole.items[item.item].used if item.item in whole.items else Decimal(0)
            if item.cap < used:
                raise RuleViolation(
                    "cap-below-usage",
                    f"cap {item.cap} {item.unit} of '{item.item}' is below the {used} "
                    "already shipped",
                    field=f"items[{i}].cap",
                )


def _licence_suspended(e: ev.LicenceSuspended, facts: Facts) -> None:
    licence = _licence_at(facts, e)
    _not_terminated(licence)
    window(e.effective_at, e.until, "until")
    status = licence.status_at(e.effective_at)
    if status == "suspended":
        raise RuleViolation(
            "already-suspended",
            f"licence '{e.entity_id}' is already suspended since {day(licence.suspended_from)}",
            field="effective_at",
        )
    if status == "expired":
        raise RuleViolation(
            "licence-expired",
            f"licence '{e.entity_id}' expired at {end_text(licence.valid_until)}",
            field="effective_at",
        )


def _licence_reinstated(e: ev.LicenceReinstated, facts: Facts) -> None:
    licence = _licence_at(facts, e)
    _not_terminated(licence)
    if not licence.is_suspended_at(e.effective_at):
        raise RuleViolation(
            "not-suspended",
            f"licence '{e.entity_id}' is not suspended on {day(e.effective_at)}",
            field="effective_at",
        )


def _licence_terminated(e: ev.LicenceWithdrawn | ev.LicenceSurrendered, facts: Facts) -> None:
    _not_terminated(_licence_at(facts, e))


def same_shipment(a: ev.LicenceUsageRecorded, b: ev.LicenceUsageRecorded) -> bool:
    """Two usage records describe the same shipment (idempotent re-recording)."""
    return (
        a.shipment_id == b.shipment_id
        and a.item == b.item
        and a.quantity == b.quantity
        and a.end_user == b.end_user
        and a.destination == b.destination
        and a.effective_at == b.effective_at
    )


def recorded_shipment(e: ev.LicenceUsageRecorded, facts: Facts) -> UUID | None:
    """A shipment id is recorded once on a licence: the usage event already recording
    this very shipment (``same_shipment``: recording it again appends nothing), None for
    a new shipment, ``duplicate-shipment`` for the id recorded with other details.
    ``rules.check`` asks it, once a shipment, before every other rule."""
    if not isinstance(facts.state("licence", e.entity_id, None), LicenceState):
        return None  # (an unknown licence: the shipment rule names it)
    previous = facts.shipment(e.entity_id, e.shipment_id)
    if previous is None:
        return None
    if same_shipment(previous, e):
        return previous.event_id
    raise RuleViolation(
        "duplicate-shipment",
        f"shipment '{e.shipment_id}' is already recorded on licence '{e.entity_id}' "
        f"(event {previous.event_id}) with different details",
        field="shipment_id",
    )


def _usage_recorded(e: ev.LicenceUsageRecorded, facts: Facts) -> None:
    # (A shipment id recorded before was asked about first: ``recorded_shipment``.)
    whole = require(facts, "licence", e.entity_id, "entity_id", LicenceState)
    check_quantity(e.quantity, "quantity")
    licence = _licence_at(facts, e, whole)
    at = e.effective_at
    gap = _coverage(
        licence,
        licence.status_at(at),
        at,
        e.item,
        None,
        e.quantity,
        e.end_user,
        e.destination,
        whole,
    )[0]
    if gap is not None:
        raise RuleViolation(gap.rule, gap.message, field=gap.field)


CHECKS: dict[type[ev.Event], Check] = {
    ev.LicenceGranted: _licence_granted,
    ev.LicenceAmended: _licence_amended,
    ev.LicenceSuspended: _licence_suspended,
    ev.LicenceReinstated: _licence_reinstated,
    ev.LicenceWithdrawn: _licence_terminated,
    ev.LicenceSurrendered: _licence_terminated,
    ev.LicenceUsageRecorded: _usage_recorded,
}
