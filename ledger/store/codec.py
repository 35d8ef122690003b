"""Storing events with msgspec instead of the library's JSON transcoder.

``Recorded`` is the domain-event object the eventsourcing library handles: a public event
plus its place in the entity's stream (originator id = ``kind:id``, version).  The
``MsgspecMapper`` turns it into the library's ``StoredEvent`` (topic = event type name,
state = the event's compact JSON, exactly what NATS consumers receive).  ``IndexRow`` holds
the event-index columns (event id, the two times, content hash) that the ledger's
recorders write in the same transaction; they travel to the recorder as the
``index_rows`` keyword of ``insert_events`` (the library passes keywords through, as in its
own searchable-timestamps example).  Decoding is typed: each topic has its own msgspec
decoder, so a stored row comes back as the right class, validated.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent

from ledger import events as ev
from ledger.times import EPOCH

_encoder = msgspec.json.Encoder()
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(cls) for name, cls in ev.EVENT_TYPES_BY_NAME.items()
}
_any_decoder: msgspec.json.Decoder[ev.AnyEvent] = msgspec.json.Decoder(ev.AnyEvent)


def encode_event(event: ev.Event) -> bytes:
    return _encoder.encode(event)


def encode_event_value(value: Any) -> bytes:
    """One value as the event encoder writes it (e.g. a time, to find it in an encoding)."""
    return _encoder.encode(value)


def decode_event(data: bytes, type_name: str | None = None) -> ev.Event:
    """Typed decode of a stored/published payload (by type name when known)."""
    if type_name is not None:
        decoder = _decoders.get(type_name)
        if decoder is not None:
            result: ev.Event = decoder.decode(data)
            return result
    return _any_decoder.decode(data)


def content_hash(event: ev.Event, *, without_effective: bool = False) -> bytes:
    """What makes two appends of one event id "the same content".

    The ledger's own stamps are left out (``recorded_at``, ``actor``).  The stored hash
    covers everything else, ``effective_at`` included, so an exported event re-sent with
    its full content matches.  ``without_effective`` leaves ``effective_at`` out too: a
    retried send of input that gave no effective time (the ledger filled in "now" each
    time) is compared with the stored event that way.
    """
    neutral = msgspec.structs.replace(
        event,
        recorded_at=EPOCH,
        actor="-",
        **({"effective_at": EPOCH} if without_effective else {}),
    )
    return hashlib.blake2b(_encoder.encode(neutral), digest_size=16).digest()


NEUTRAL_STAMPS = b'"recorded_at":%s,"actor":%s' % (_encoder.encode(EPOCH), _encoder.encode("-"))
"""The ledger's stamps as ``content_hash`` neutralises them, as they appear in an encoding."""


class Recorded(msgspec.Struct, frozen=True):
    """A ledger event in its entity's stream (implements DomainEventProtocol)."""

    originator_id: str
    originator_version: int
    event: ev.Event


class IndexRow(NamedTuple):
    """The event-index columns of one stored event (written with it, same transaction)."""

    event_id: UUID
    event_type: str
    entity_kind: str
    entity_id: str
    effective_us: int
    recorded_us: int
    content_hash: bytes
    retracts: UUID | None
    originator_version: int


class MsgspecMapper(Mapper[str]):
    """Mapper using msgspec for typed encoding/decoding (compression/cipher still apply)."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        recorded: Recorded = domain_event
        event = recorded.event
        state = _encoder.encode(event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            recorded.originator_id, recorded.originator_version, type(event).__name__, state
        )

    def stored_event(
        self, originator_id: str, originator_version: int, topic: str, payload: bytes
    ) -> StoredEvent:
        """``to_stored_event`` for an event already encoded (``encode_event``)."""
        if self.compressor:
            payload = self.compressor.compress(payload)
        if self.cipher:
            payload = self.cipher.encrypt(payload)
        return StoredEvent(originator_id, originator_version, topic, payload)

    def payload(self, state: bytes) -> bytes:
        """The event's JSON bytes from stored state (undoing cipher/compression if any)."""
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return state

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event = decode_event(self.payload(stored_event.state), stored_event.topic)
        return Recorded(
            originator_id=str(stored_event.originator_id),
            originator_version=stored_event.originator_version,
            event=event,
        )
