"""The event contract: every fact the ledger records, as msgspec types.

These types are the public contract shared by the store, the NATS stream and
downstream consumers. Each event is a tagged JSON object whose ``type`` field names
its class; ``ledger schema`` prints the JSON Schema of all of them.

Every event carries the same envelope:

- ``event_id``      UUID; the operator may supply it (makes re-sends idempotent).
- ``entity_kind`` / ``entity_id``   the entity the event belongs to.  The kind is fixed
                    by the event type (``LicenceGranted`` belongs to a ``licence``), except
                    for ``EventRetracted``, which belongs to the entity of the event it retracts.
- ``effective_at``  when the fact takes effect in the world (operator-supplied).
- ``recorded_at``   when the ledger learned it (set by the ledger, never by the operator).
- ``actor``         who appended it.
- ``sources``       what the fact rests on (reference, publisher, date, official/reported).
- ``schema_version`` of the event type.

Times are RFC 3339 with an offset; offsets are kept exactly as given.  Fields named
``*_until``/``until``/``due_by`` are exclusive end instants: the fact holds up to, not
including, that instant.  Quantities are decimals, encoded as JSON strings.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, ClassVar, Literal, TypeAlias, get_args
from uuid import UUID

import msgspec

# --- value types ------------------------------------------------------------------------

Time = Annotated[
    dt.datetime,
    msgspec.Meta(tz=True, description="RFC 3339 date-time with a UTC offset"),
]
# Every pattern must mean the same to msgspec (Python's re.search) and to a JSON Schema
# validator (ECMAScript, where ``$`` is only the end of the input).  Python's ``$`` also
# matches before a final newline, so each pattern ends ``$(?!\n)``; and none uses ``\s``,
# ``\w`` or ``\d``, whose meanings differ between the two (U+FEFF, U+001C-U+001F, digits
# of other scripts): the character sets are spelt out.
_CONTROLS = r"\x00-\x1f\x7f-\x9f"
"""C0 controls, DEL and C1 controls (ESC sequences, NUL, carriage returns...)."""
_BIDI = r"\u202a-\u202e\u2066-\u2069"
"""Bidirectional-text embeddings, overrides and isolates: they reorder what a reader sees."""
_BLANK = r" \u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
"""Spaces and zero-width characters: nothing a reader can see."""
_END = r"$(?!\n)"

ID_PATTERN = (
    rf"^[^{_CONTROLS}{_BIDI}{_BLANK}]"
    rf"(?:[^{_CONTROLS}{_BIDI}]*[^{_CONTROLS}{_BIDI}{_BLANK}])?{_END}"
)
"""Ids, item codes and units: visible text, spaces inside only; no controls of any kind."""
CODE_PATTERN = rf"^[A-Z]{{2}}{_END}"
_TEXT_CHAR = r"[^\x00-\x08\x0b-\x1f\x7f-\x9f]"
"""Free text keeps tab and newline; other controls (NUL, ESC, CR, C1) are refused."""
TEXT_PATTERN = rf"^(?={_TEXT_CHAR}*?[^{_CONTROLS}{_BLANK}]){_TEXT_CHAR}*{_END}"
"""Required free text: something visible, not only spaces or line breaks."""
OPTIONAL_TEXT_PATTERN = rf"^{_TEXT_CHAR}*{_END}"
DECIMAL_PATTERN = rf"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?{_END}"
"""Quantities as text: ASCII digits, optional point and exponent.  msgspec's Decimal alone
would also take ' 1.5', '1_000', '1.5\\n' and other scripts' digits, which the published
schema refuses; intake holds quantities to this pattern too."""
_DECIMAL = re.compile(DECIMAL_PATTERN)
PATTERNS = (ID_PATTERN, CODE_PATTERN, TEXT_PATTERN, OPTIONAL_TEXT_PATTERN, DECIMAL_PATTERN)

Id = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=ID_PATTERN,
        description="Identifier: visible text without control characters, bidirectional-text "
        "controls or leading/trailing spaces (dots and spaces inside allowed); stored in "
        "Unicode normal form C",
    ),
]
Text = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=4000,
        pattern=TEXT_PATTERN,
        description="Text with something visible in it; tab and newline are the only "
        "control characters allowed",
    ),
]
OptionalText = Annotated[
    str,
    msgspec.Meta(
        max_length=4000,
        pattern=OPTIONAL_TEXT_PATTERN,
        description="Text; tab and newline are the only control characters allowed",
    ),
]
Code = Annotated[
    str,
    msgspec.Meta(
        pattern=CODE_PATTERN,
        description="ISO 3166-1 alpha-2 country (or 'EU') code of a government or destination",
    ),
]
ItemCode = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=ID_PATTERN,
        description="Control list code (e.g. 1C902.a), HS code (e.g. 8505.11) or item name",
    ),
]
Unit = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=20,
        pattern=ID_PATTERN,
        description="Unit of a quantity (kg, t, pieces...)",
    ),
]

QUANTITY_RANGE = "quantities are below 10^15 with at most 9 decimal places"
_QUANTITY_SCALE = 30
"""Quantities whose exponent is beyond +-30 are refused before anything writes them out:
in positional notation 1E+1000000000 is a gigabyte of zeros (the rules' own range is far
narrower; this only keeps their messages short)."""


def echo(given: object, limit: int = 40) -> str:
    """Input quoted back in a message, cut short."""
    text = str(given)
    return text if len(text) <= limit else text[:limit] + "…"


def quantity_syntax_error(given: object) -> str | None:
    """Why a quantity as given is not decimal text, or None."""
    if isinstance(given, str) and _DECIMAL.search(given):
        return None
    if isinstance(given, int | float) and not isinstance(given, bool):
        return (
            f'write quantities as decimal text, e.g. "{echo(given)}" (JSON numbers lose precision)'
        )
    return f"'{echo(given)}' is not a decimal number (digits, an optional point and exponent)"


def quantity_scale_error(value: Decimal, given: object) -> str | None:
    """Why a quantity cannot even be written out, or None (checked by exponent alone)."""
    if not value.is_finite():
        return None
    adjusted = value.adjusted()
    if -_QUANTITY_SCALE <= adjusted <= _QUANTITY_SCALE and (
        isinstance(given, str) and len(given) <= _QUANTITY_SCALE
    ):
        return None  # (the usual case, without building the digits' tuple)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and (adjusted > _QUANTITY_SCALE or exponent < -_QUANTITY_SCALE):
        return f"'{echo(given)}' is out of range: {QUANTITY_RANGE}"
    return None


MAX_EVENT_BYTES = 512 * 1024
"""An event's stored (and published) JSON is at most this long: well below NATS's default
``max_payload`` of 1 MiB, which a relay cannot publish past.  Intake refuses larger events."""
MAX_SOURCES = 50
MAX_PARTIES = 300
"""Countries, destinations and parties named in one list (there are ~250 countries)."""
MAX_ENTRIES = 1000
"""Items, end users, clauses and other lists of one event."""
Quantity = Annotated[Decimal, msgspec.Meta(description="Decimal quantity, encoded as a string")]

EntityKind = Literal[
    "agreement", "commitment", "measure", "party", "licence", "application", "claim"
]
ENTITY_KINDS: tuple[str, ...] = (
    "agreement",
    "commitment",
    "measure",
    "party",
    "licence",
    "application",
    "claim",
)


# Events are immutable values that cannot form reference cycles, so the structs opt out of
# the cyclic garbage collector (``gc=False``): bulk imports hold many of them at once.


SourceStatus = Literal["official", "reported", "claim", "illustrative"]


class Source(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """What a fact rests on."""

    reference: Text
    """URL, document number or citation."""
    publisher: Text
    """Who published it (MOFCOM, BIS, Reuters, ...)."""
    published_on: dt.date | None = None
    status: SourceStatus = "official"
    """What the source is.  ``official``: the issuing government's own text or statement,
    nothing else.  ``reported``: news and secondary reporting, even of an official act
    (cite it beside the instrument).  ``claim``: a report that something will happen or
    was said privately.  ``illustrative``: made-up example data."""
    note: OptionalText = ""


SOURCE_STATUSES: tuple[str, ...] = ("official", "reported", "claim", "illustrative")
"""Strongest first: a fact stands on the strongest source it cites."""


def source_standing(sources: tuple[Source, ...]) -> str | None:
    """The strongest status among a fact's sources (``official`` if any source is the
    government's own text), or None for a fact that cites none."""
    statuses = {s.status for s in sources}
    return next((status for status in SOURCE_STATUSES if status in statuses), None)


# --- the envelope -----------------------------------------------------------------------


class Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    tag=True,
    forbid_unknown_fields=True,
    gc=False,
):
    """Base of every ledger event (never instantiated itself)."""

    event_id: UUID
    entity_kind: str
    entity_id: Id
    effective_at: Time
    recorded_at: Time
    actor: Text
    sources: Annotated[tuple[Source, ...], msgspec.Meta(max_length=MAX_SOURCES)] = ()
    summary: OptionalText = ""
    """Optional one-line human description of the fact."""
    schema_version: Annotated[int, msgspec.Meta(ge=1)] = 1

    KIND: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1
    CREATES: ClassVar[bool] = False
    """True for the event that brings its entity into existence."""
    NEEDS_SOURCE: ClassVar[bool] = True
    """Facts about the world must cite a source; ledger bookkeeping need not."""

    @property
    def type(self) -> str:
        return type(self).__name__

    @property
    def entity(self) -> str:
        """``kind:id``: the key of the entity's event stream."""
        return f"{self.entity_kind}:{self.entity_id}"


# --- agreements -------------------------------------------------------------------------


class AgreementReached(Event, kw_only=True, frozen=True):
    """Parties reached an arrangement (e.g. the Busan arrangement of 2025-10-30)."""

    entity_kind: Literal["agreement"] = "agreement"
    title: Text
    parties: Annotated[tuple[Code, ...], msgspec.Meta(min_length=2, max_length=MAX_PARTIES)]
    valid_until: Time | None = None
    extendable: bool = False
    KIND = "agreement"
    CREATES = True


class AgreementExtended(Event, kw_only=True, frozen=True):
    """The agreement's term was extended."""

    entity_kind: Literal["agreement"] = "agreement"
    valid_until: Time
    KIND = "agreement"


# --- commitments ------------------------------------------------------------------------


class CommitmentPledged(Event, kw_only=True, frozen=True):
    """A party's pledge under an agreement.

    A pledge asserted only by the beneficiary (``obligor`` not in ``asserted_by``) is a
    unilateral claim until the obligor acknowledges it.
    """

    entity_kind: Literal["commitment"] = "commitment"
    agreement_id: Id
    obligor: Code
    beneficiary: Code
    asserted_by: Annotated[tuple[Code, ...], msgspec.Meta(min_length=1, max_length=MAX_PARTIES)]
    category: Text
    """e.g. export-controls, tariffs, port-fees, purchases."""
    description: Text
    due_by: Time | None = None
    reciprocates: Annotated[tuple[Id, ...], msgspec.Meta(max_length=MAX_ENTRIES)] = ()
    """Commitment ids this pledge is given in return for."""
    KIND = "commitment"
    CREATES = True


class CommitmentAcknowledged(Event, kw_only=True, frozen=True):
    """The obligor confirmed a pledge that had been asserted by the other side."""

    entity_kind: Literal["commitment"] = "commitment"
    party: Code
    KIND = "commitment"


class CommitmentImplemented(Event, kw_only=True, frozen=True):
    """The obligor implemented the pledge, in full or in part, by an instrument.

    The implementation is in force from ``effective_at`` until ``in_force_until``.
    """

    entity_kind: Literal["commitment"] = "commitment"
    extent: Literal["full", "partial"]
    instrument: Text
    in_force_until: Time | None = None
    KIND = "commitment"


class CommitmentReversed(Event, kw_only=True, frozen=True):
    """The obligor reversed (undid) the pledge or its implementation."""

    entity_kind: Literal["commitment"] = "commitment"
    reason: Text
    KIND = "commitment"


class CommitmentLapsed(Event, kw_only=True, frozen=True):
    """The pledge lapsed unimplemented (e.g. its deadline passed and it was abandoned)."""

    entity_kind: Literal["commitment"] = "commitment"
    reason: Text
    KIND = "commitment"


# --- measures (control rules) and clauses -----------------------------------------------

Effect = Literal[
    "licence-required",
    "prohibited",
    "denied-in-principle",
    "enhanced-review",
    "tariff",
    "fee",
    "other",
]
"""What a clause does.  The first four are export controls that decide applications;
``tariff``, ``fee`` and ``other`` are recorded for context only."""

EndUserClass = Literal["civil", "military", "military-affiliated"]


class Clause(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """One operative provision of a measure."""

    clause_id: Id
    effect: Effect
    items: Annotated[tuple[ItemCode, ...], msgspec.Meta(max_length=MAX_ENTRIES)] = ()
    """Control codes / HS codes / item names covered; empty means every item."""
    destinations: Annotated[tuple[Code, ...], msgspec.Meta(max_length=MAX_PARTIES)] = ()
    """Destinations covered; empty means every destination."""
    end_user_classes: Annotated[tuple[EndUserClass, ...], msgspec.Meta(max_length=3)] = ()
    """End-user classes covered; empty means every end user."""
    effective_at: Time
    """When the clause comes into force (may differ from the measure's publication)."""
    description: OptionalText = ""


class MeasurePublished(Event, kw_only=True, frozen=True):
    """A control measure was published with its clauses (``effective_at`` = publication)."""

    entity_kind: Literal["measure"] = "measure"
    issuer: Code
    title: Text
    instrument: Text
    clauses: Annotated[tuple[Clause, ...], msgspec.Meta(min_length=1, max_length=MAX_ENTRIES)]
    KIND = "measure"
    CREATES = True


class ClauseSuspended(Event, kw_only=True, frozen=True):
    """A clause is suspended from ``effective_at`` until ``until`` (open-ended if absent).

    A suspension may begin before the clause ever took effect.
    """

    entity_kind: Literal["measure"] = "measure"
    clause_id: Id
    until: Time | None = None
    instrument: Text
    KIND = "measure"


class SuspensionEnded(Event, kw_only=True, frozen=True):
    """The suspension of a clause in force at ``effective_at`` ended then."""

    entity_kind: Literal["measure"] = "measure"
    clause_id: Id
    instrument: OptionalText = ""
    KIND = "measure"


class MeasureRevoked(Event, kw_only=True, frozen=True):
    """Clauses of a measure (all of them when ``clause_ids`` is empty) were revoked."""

    entity_kind: Literal["measure"] = "measure"
    clause_ids: Annotated[tuple[Id, ...], msgspec.Meta(max_length=MAX_ENTRIES)] = ()
    reason: Text
    KIND = "measure"


# --- parties: exporters and end users ---------------------------------------------------

PartyRole = Literal["exporter", "end-user", "consignee", "importer"]
ListKind = Literal["validated-end-user", "military-end-user", "restricted"]


class PartyRegistered(Event, kw_only=True, frozen=True):
    """An exporter, end user or other transaction party became known to the ledger."""

    entity_kind: Literal["party"] = "party"
    name: Text
    country: Code
    roles: Annotated[tuple[PartyRole, ...], msgspec.Meta(min_length=1, max_length=4)]
    KIND = "party"
    CREATES = True


class PartyVetted(Event, kw_only=True, frozen=True):
    """An authority vetted the party: approved or rejected, optionally until a date."""

    entity_kind: Literal["party"] = "party"
    outcome: Literal["approved", "rejected"]
    authority: Text
    valid_until: Time | None = None
    KIND = "party"


class PartyClassified(Event, kw_only=True, frozen=True):
    """The party was classified as a civil, military or military-affiliated end user."""

    entity_kind: Literal["party"] = "party"
    classification: EndUserClass
    authority: Text
    KIND = "party"


class PartyListed(Event, kw_only=True, frozen=True):
    """The party was put on a list (validated end users, military end users, ...)."""

    entity_kind: Literal["party"] = "party"
    list_name: Text
    list_kind: ListKind
    authority: Text
    KIND = "party"


class PartyDelisted(Event, kw_only=True, frozen=True):
    """The party was taken off a list."""

    entity_kind: Literal["party"] = "party"
    list_name: Text
    authority: Text
    KIND = "party"


# --- licences ---------------------------------------------------------------------------


class LicenceItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """An item a licence covers, with its quantity cap."""

    item: ItemCode
    cap: Quantity
    unit: Unit = "kg"
    description: OptionalText = ""


class LicenceGranted(Event, kw_only=True, frozen=True):
    """An export licence was granted; valid from ``effective_at`` until ``valid_until``.

    General licences cover repeated exports to one or more vetted end users for at most
    36 months; single licences one end user, at most 12 months, used up by one shipment.
    """

    entity_kind: Literal["licence"] = "licence"
    licence_type: Literal["general", "single"]
    issuer: Code
    exporter: Id
    end_users: Annotated[tuple[Id, ...], msgspec.Meta(min_length=1, max_length=MAX_ENTRIES)]
    items: Annotated[tuple[LicenceItem, ...], msgspec.Meta(min_length=1, max_length=MAX_ENTRIES)]
    destinations: Annotated[tuple[Code, ...], msgspec.Meta(min_length=1, max_length=MAX_PARTIES)]
    valid_until: Time
    KIND = "licence"
    CREATES = True


class LicenceAmended(Event, kw_only=True, frozen=True):
    """Terms of a licence changed; fields left out keep their value."""

    entity_kind: Literal["licence"] = "licence"
    valid_until: Time | None = None
    end_users: Annotated[tuple[Id, ...], msgspec.Meta(max_length=MAX_ENTRIES)] | None = None
    items: Annotated[tuple[LicenceItem, ...], msgspec.Meta(max_length=MAX_ENTRIES)] | None = None
    destinations: Annotated[tuple[Code, ...], msgspec.Meta(max_length=MAX_PARTIES)] | None = None
    reason: Text
    KIND = "licence"


class LicenceSuspended(Event, kw_only=True, frozen=True):
    """The licence is suspended from ``effective_at`` (until ``until`` or reinstatement)."""

    entity_kind: Literal["licence"] = "licence"
    reason: Text
    until: Time | None = None
    KIND = "licence"


class LicenceReinstated(Event, kw_only=True, frozen=True):
    """A suspended licence is in force again."""

    entity_kind: Literal["licence"] = "licence"
    reason: OptionalText = ""
    KIND = "licence"


class LicenceWithdrawn(Event, kw_only=True, frozen=True):
    """The issuer withdrew the licence (terminal)."""

    entity_kind: Literal["licence"] = "licence"
    reason: Text
    KIND = "licence"


class LicenceSurrendered(Event, kw_only=True, frozen=True):
    """The holder gave the licence up (terminal)."""

    entity_kind: Literal["licence"] = "licence"
    reason: OptionalText = ""
    KIND = "licence"


class LicenceUsageRecorded(Event, kw_only=True, frozen=True):
    """A shipment under the licence (``effective_at`` = shipment date).

    Idempotent by ``shipment_id``: the same shipment recorded again is a no-op.
    """

    entity_kind: Literal["licence"] = "licence"
    shipment_id: Id
    item: ItemCode
    quantity: Quantity
    end_user: Id
    destination: Code
    KIND = "licence"


# --- export applications ----------------------------------------------------------------


class ApplicationSubmitted(Event, kw_only=True, frozen=True):
    """An exporter applied to export an item to an end user."""

    entity_kind: Literal["application"] = "application"
    exporter: Id
    end_user: Id
    item: ItemCode
    quantity: Quantity
    unit: Unit = "kg"
    destination: Code
    end_use: Text
    licence_id: Id | None = None
    """The licence the exporter means to ship under, if any."""
    KIND = "application"
    CREATES = True
    NEEDS_SOURCE = False


class FiredClause(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A clause that applied to a decision."""

    measure_id: Id
    clause_id: Id
    effect: Effect


class ApplicationDecided(Event, kw_only=True, frozen=True):
    """The automatic decision on an application, against the rules in force then."""

    entity_kind: Literal["application"] = "application"
    outcome: Literal["approved", "rejected"]
    fired_clauses: tuple[FiredClause, ...] = ()
    licence_id: Id | None = None
    """The licence that covers the export, when one does."""
    end_user_status: OptionalText = ""
    reasons: tuple[str, ...] = ()
    KIND = "application"
    NEEDS_SOURCE = False


# --- reported claims ----------------------------------------------------------------------

EntityRef = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=ID_PATTERN,
        description="An entity as kind:id, e.g. measure:cn-ann-2025-61 (the ledger checks "
        "that it names an entity it holds)",
    ),
]


class ClaimReported(Event, kw_only=True, frozen=True):
    """A claim or announcement as reported: that something will happen, was decided or
    was said privately, which no official text confirms yet.  The ledger holds it as a
    claim (never as the fact it claims) so it can later show whether it came true.

    ``claimant`` is who is said to have made it; the ``sources`` say who reported it
    (status ``claim`` or ``reported``); ``about`` names the entities it concerns;
    ``takes_effect_at`` is when it was said to take effect, if it was.
    """

    entity_kind: Literal["claim"] = "claim"
    claimant: Text
    says: Text
    about: tuple[EntityRef, ...] = ()
    takes_effect_at: Time | None = None
    KIND = "claim"
    CREATES = True


class ClaimResolved(Event, kw_only=True, frozen=True):
    """What became of a claim: ``confirmed`` or ``contradicted`` by the facts named in
    ``evidence`` (entities as kind:id, e.g. the measure whose instrument settles it)."""

    entity_kind: Literal["claim"] = "claim"
    outcome: Literal["confirmed", "contradicted"]
    evidence: Annotated[tuple[EntityRef, ...], msgspec.Meta(min_length=1)]
    reason: Text
    KIND = "claim"


# --- corrections ------------------------------------------------------------------------


class EventRetracted(Event, kw_only=True, frozen=True):
    """A correction: the named event was wrong.

    Queries known at or after the retraction's ``recorded_at`` ignore the retracted event;
    queries known before it still show it.  The retraction belongs to the entity of the
    event it retracts (``entity_kind``/``entity_id`` are filled in by the ledger).
    """

    entity_kind: EntityKind
    retracted_event_id: UUID
    reason: Text
    NEEDS_SOURCE = False


AnyEvent: TypeAlias = (
    AgreementReached
    | AgreementExtended
    | CommitmentPledged
    | CommitmentAcknowledged
    | CommitmentImplemented
    | CommitmentReversed
    | CommitmentLapsed
    | MeasurePublished
    | ClauseSuspended
    | SuspensionEnded
    | MeasureRevoked
    | PartyRegistered
    | PartyVetted
    | PartyClassified
    | PartyListed
    | PartyDelisted
    | LicenceGranted
    | LicenceAmended
    | LicenceSuspended
    | LicenceReinstated
    | LicenceWithdrawn
    | LicenceSurrendered
    | LicenceUsageRecorded
    | ApplicationSubmitted
    | ApplicationDecided
    | ClaimReported
    | ClaimResolved
    | EventRetracted
)
"""Union of every event type, discriminated by ``type``: decode with this.  The one list
of the event types: ``EVENT_TYPES`` is read from it."""

EVENT_TYPES: tuple[type[Event], ...] = get_args(AnyEvent)
"""Every event type, in the contract's order (``AnyEvent``'s)."""

EVENT_TYPES_BY_NAME: dict[str, type[Event]] = {cls.__name__: cls for cls in EVENT_TYPES}
KIND_OF_TYPE: dict[str, str] = {cls.__name__: cls.KIND for cls in EVENT_TYPES if cls.KIND}
"""Entity kind of each event type (EventRetracted takes the kind of what it retracts)."""

END_TIME_FIELDS = frozenset({"valid_until", "until", "in_force_until", "due_by"})
"""Exclusive end instants: a bare date means through the end of that day (UTC)."""
START_TIME_FIELDS = frozenset({"effective_at"})
"""Start instants: a bare date means the start of that day (UTC)."""


def named_parties(event: Event) -> frozenset[str]:
    """Every party an event names: governments, exporters, end users."""
    names: set[str] = set()
    for field in (
        "obligor",
        "beneficiary",
        "issuer",
        "exporter",
        "end_user",
        "party",
        "destination",
    ):
        value = getattr(event, field, None)
        if isinstance(value, str):
            names.add(value)
    for field in ("asserted_by", "end_users", "destinations"):
        values = getattr(event, field, None)
        if values:
            names.update(values)
    if isinstance(event, AgreementReached):
        names.update(event.parties)
    if event.entity_kind == "party":
        names.add(event.entity_id)
    return frozenset(names)


def schema() -> dict[str, object]:
    """JSON Schema (2020-12) of every event type, as one union (``ledger.schemas``)."""
    from ledger.schemas import event_schema

    return event_schema()
