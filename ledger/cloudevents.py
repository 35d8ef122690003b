"""Ledger events as CloudEvents 1.0 (JSON event format, structured mode).

For integrators whose tooling consumes CloudEvents (Knative, Azure Event Grid, Argo
Events, ...): ``ledger watch -o cloudevents`` prints one per line.  The mapping:

==================  =======================================================================
CloudEvents         ledger
==================  =======================================================================
``specversion``     ``"1.0"``
``id``              the event id (``event_id``): unique, and the same on every redelivery
``source``          ``urn:export-control-ledger:stream:<STREAM>`` (the JetStream stream the
                    deployment publishes to, LEDGER by default): id + source is unique
``type``            ``ledger.<EventType>``, e.g. ``ledger.LicenceGranted``
``time``            the recorded time (``recorded_at``): when the ledger learned the fact
``subject``         the entity, ``kind:id`` (``licence:GL-1``)
``datacontenttype`` ``application/json``
``dataschema``      ``urn:export-control-ledger:schema:event:<EventType>`` (the ``$id`` of
                    ``ledger schema --type <EventType>``)
``data``            the event's JSON exactly as stored (what ``ledger watch -o jsonl``
                    prints and NATS carries)
``effectiveat``     extension: the effective time (``effective_at``), RFC 3339
``ledgerposition``  extension: the position in the ledger's notification log (integer)
==================  =======================================================================
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from ledger.schemas import ID_PREFIX

SPEC_VERSION = "1.0"
TYPE_PREFIX = "ledger."


def source(stream: str) -> str:
    return f"urn:export-control-ledger:stream:{stream}"


def to_cloudevent(
    *,
    event_id: str,
    event_type: str,
    entity: str,
    recorded_at: dt.datetime | str,
    effective_at: dt.datetime | str,
    position: int,
    stream: str,
    payload: bytes,
) -> dict[str, Any]:
    """One event as a CloudEvent (a dict to encode with msgspec: ``data`` is raw JSON)."""
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": source(stream),
        "type": TYPE_PREFIX + event_type,
        "time": _rfc3339(recorded_at),
        "subject": entity,
        "datacontenttype": "application/json",
        "dataschema": f"{ID_PREFIX}event:{event_type}",
        "effectiveat": _rfc3339(effective_at),
        "ledgerposition": position,
        "data": msgspec.Raw(payload),
    }


def from_delivery(delivery: Any, stream: str) -> dict[str, Any]:
    """The CloudEvent of a ``ledger.subscriber.Delivery``."""
    event = delivery.event
    return to_cloudevent(
        event_id=str(event.event_id),
        event_type=event.type,
        entity=event.entity,
        recorded_at=event.recorded_at,
        effective_at=event.effective_at,
        position=delivery.position,
        stream=stream,
        payload=delivery.payload,
    )


def _rfc3339(value: dt.datetime | str) -> str:
    if isinstance(value, str):
        return value
    from ledger.times import iso

    return iso(value)
