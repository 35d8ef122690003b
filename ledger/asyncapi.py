"""An AsyncAPI 3.0 document of the ledger's NATS subjects, headers and payloads.

``ledger schema --asyncapi`` prints it.  Non-Python consumers generate types and
validators from it (the payload schemas are the same JSON Schemas ``ledger schema``
prints, one message per event type).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ledger import events as ev
from ledger import stream as st
from ledger.schemas import components

if TYPE_CHECKING:
    from ledger.config import Settings

_REF = "#/components/schemas/{name}"


def headers_schema() -> dict[str, Any]:
    """JSON Schema of the headers every published event carries."""
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "NATS headers of a ledger event (values are strings).",
        "required": [
            st.MSG_ID,
            st.POSITION,
            st.EVENT_TYPE,
            st.ENTITY,
            st.EFFECTIVE_AT,
            st.RECORDED_AT,
            st.SCHEMA_VERSION,
        ],
        "properties": {
            st.MSG_ID: {**text, "format": "uuid", "description": "The event id."},
            st.POSITION: {
                **text,
                "pattern": "^[0-9]+$",
                "description": "Position in the ledger's notification log; increases along "
                "the stream (may skip numbers).",
            },
            st.EVENT_TYPE: {
                **text,
                "title": "LedgerEventType",
                "enum": [cls.__name__ for cls in ev.EVENT_TYPES],
                "description": "The payload's type.",
            },
            st.ENTITY: {
                **text,
                "description": "kind:id of the event's entity; in the id, bytes outside "
                "printable ASCII and '%' are percent-encoded (%XX).",
            },
            st.EFFECTIVE_AT: {
                **text,
                "format": "date-time",
                "description": "When the fact takes effect (as in the payload).",
            },
            st.RECORDED_AT: {
                **text,
                "format": "date-time",
                "description": "When the ledger recorded it (as in the payload); "
                "non-decreasing along the stream.",
            },
            st.SCHEMA_VERSION: {**text, "pattern": "^[0-9]+$"},
            "Ledger-Leaf": {
                **text,
                "pattern": "^[0-9]+$",
                "description": "The event's leaf index in the ledger's RFC 9162 Merkle tree "
                "(0-based; consecutive along the stream); see the checkpoint stream "
                "{stream}_CHECKPOINTS.",
            },
            "Nats-Expected-Last-Msg-Id": {
                **text,
                "description": "Publisher bookkeeping (the previous event id); ignore.",
            },
            "Nats-Expected-Last-Sequence": {
                **text,
                "description": "Publisher bookkeeping; ignore.",
            },
        },
    }


_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)\.\s+(?=[A-Z(`'\"])")


def first_sentence(text: str) -> str:
    """The first sentence of ``text``, without its full stop: a stop ends a sentence when
    a capital (or an opening bracket or quote) follows, and not after "e.g", "i.e" or
    "etc" (the summary used to end at "(e.g")."""
    head = _SENTENCE_END.split(" ".join(text.split()), maxsplit=1)[0]
    return head.rstrip(".")


def asyncapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document for the configured subject prefix and stream."""
    from ledger.config import Settings

    settings = settings or Settings.from_env()
    prefix = settings.subject_prefix
    payload_refs, schemas = components(_REF)
    schemas["LedgerHeaders"] = headers_schema()
    messages: dict[str, Any] = {}
    for cls, ref in zip(ev.EVENT_TYPES, payload_refs, strict=True):
        name = cls.__name__
        doc = " ".join((cls.__doc__ or "").split())
        kind = cls.KIND or "the kind of the retracted event's entity"
        messages[name] = {
            "name": name,
            "title": name,
            "summary": first_sentence(doc) if doc else name,
            "description": f"{doc}\n\nSubject: {prefix}.{cls.KIND or '{entityKind}'}.{name}."
            f"{{entityId}} (entity kind: {kind}).",
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/LedgerHeaders"},
            "payload": ref,
            "correlationId": {"location": f"$message.header#/{st.MSG_ID}"},
        }
    channel_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Compliance ledger events",
            "version": "1",
            "description": (
                "Every event recorded by the ledger, published once per event id and in the "
                f"store's global order to the JetStream stream '{settings.stream}' "
                f"(subjects '{prefix}.>', file storage). Payloads are the events' JSON exactly "
                "as stored. Consume with a durable JetStream consumer; filter with subject "
                f"wildcards, e.g. '{prefix}.licence.>' or '{prefix}.*.LicenceGranted.*'."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"ledger": _server(settings)},
        "channels": {
            "events": {
                "address": f"{prefix}.{{entityKind}}.{{eventType}}.{{entityId}}",
                "title": "Ledger events",
                "description": (
                    "entityId is the entity id with every UTF-8 byte outside [A-Za-z0-9_-] "
                    "written as %XX (upper-case hex): 'GL.1' -> 'GL%2E1'. EventRetracted is "
                    "published under the kind and id of the entity whose event it retracts."
                ),
                "parameters": {
                    "entityKind": {
                        "enum": list(ev.ENTITY_KINDS),
                        "description": "The entity kind.",
                    },
                    "eventType": {
                        "enum": [cls.__name__ for cls in ev.EVENT_TYPES],
                        "description": "The event type (the payload's 'type').",
                    },
                    "entityId": {"description": "The percent-encoded entity id."},
                },
                "messages": channel_messages,
            }
        },
        "operations": {
            "receiveLedgerEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "summary": "Receive ledger events (JetStream consumer on the stream).",
                "messages": [{"$ref": f"#/channels/events/messages/{name}"} for name in messages],
            }
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def _server(settings: Settings) -> dict[str, Any]:
    """The configured NATS server, or a placeholder the reader fills in."""
    from urllib.parse import urlparse

    from ledger.config import redact_url

    urls = [u.strip() for u in (settings.resolved_nats_url() or "").split(",") if u.strip()]
    if urls:
        first = urlparse(urls[0] if "://" in urls[0] else f"nats://{urls[0]}")
        return {
            "host": f"{first.hostname}:{first.port or 4222}",
            "protocol": "nats",
            "description": "The configured NATS server"
            + (f" (one of {', '.join(redact_url(u) for u in urls)})" if len(urls) > 1 else "")
            + ": LEDGER_NATS_URL, or the URL of the running `ledger serve`.",
        }
    return {
        "host": "{host}",
        "protocol": "nats",
        "description": "Not configured when this document was generated: the deployment's "
        "NATS server (LEDGER_NATS_URL), or the URL `ledger serve` prints.",
        "variables": {
            "host": {
                "description": "host:port of a NATS server with JetStream, e.g. nats-1:4222",
                "examples": ["nats-1:4222", "127.0.0.1:4222"],
            }
        },
    }
