"""The JSON Schemas the ledger publishes, in a form strict validators and code
generators accept.

msgspec writes the schemas; three of its habits are changed here:

- ``discriminator`` (an OpenAPI keyword, not JSON Schema) is dropped: ajv in strict mode
  refuses unknown keywords (``x-`` keys too), and the union still validates, since each
  member's ``type`` property is a one-value enum.
- ``"format": "decimal"`` (not a JSON Schema format; strict ajv refuses unknown formats)
  becomes a ``pattern`` of decimal text, so ``"lots"`` no longer validates as a quantity.
- Enums get a ``title`` (the type and property they belong to): without one, code
  generators name each of them ``AnonymousSchema_NN``.

Two documents: the stored events (what ``ledger log -o jsonl`` prints and NATS carries:
``ledger schema``) and operator input (what ``ledger append``/``import`` read:
``ledger schema --input``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ledger import events as ev

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:export-control-ledger:schema:"
"""``$id`` of the documents: a URN (the project has no public URL that would serve them)."""

DECIMAL_PATTERN = ev.DECIMAL_PATTERN
"""Decimal text: digits with an optional point and exponent (how a quantity is written and
how the ledger writes it back, e.g. ``1E+3``); intake holds quantities to it."""

LEDGER_FILLED = ("event_id", "effective_at", "actor")
"""Fields the ledger fills in when operator input leaves them out."""


def portable(node: Any, name: str = "") -> Any:
    """``node`` (a msgspec JSON Schema) rewritten in place for strict validators and code
    generators (see the module docstring); ``name`` names the enums found under it."""
    if isinstance(node, list):
        for item in node:
            portable(item, name)
        return node
    if not isinstance(node, dict):
        return node
    node.pop("discriminator", None)
    if node.get("format") == "decimal":
        del node["format"]
        node["pattern"] = DECIMAL_PATTERN
    if "enum" in node and "title" not in node and name:
        node["title"] = name
    here = node.get("title", name) if "properties" in node else name
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for prop, sub in value.items():
                portable(sub, here + _camel(prop))
        elif key == "$defs" and isinstance(value, dict):
            for def_name, sub in value.items():
                portable(sub, def_name)
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
            portable(value, name)
        elif key == "additionalProperties" and isinstance(value, dict):
            portable(value, name + "Value")
    return node


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def event_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of every stored event type, as one union."""
    out = portable(msgspec.json.schema(ev.AnyEvent))
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": ID_PREFIX + "event",
        "title": "Ledger event",
        "description": "An event as the ledger stores and publishes it (`ledger log -o jsonl`, "
        "NATS payloads).",
        **out,
    }


def event_type_schema(cls: type[ev.Event]) -> dict[str, Any]:
    """JSON Schema of one stored event type."""
    out = portable(msgspec.json.schema(cls))
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": ID_PREFIX + f"event:{cls.__name__}",
        "title": cls.__name__,
        **out,
    }


def components(ref_template: str) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """Each event type's ``$ref`` and the shared schemas, for documents that keep their
    schemas elsewhere (AsyncAPI's components)."""
    refs, schemas = msgspec.json.schema_components(ev.EVENT_TYPES, ref_template=ref_template)
    for name, schema in schemas.items():
        portable(schema, name)
    return refs, schemas


def input_schema() -> dict[str, Any]:
    """JSON Schema of what operators write (one ``ledger append`` argument, one line of
    ``ledger import``): the stored event without ``recorded_at`` (the ledger sets it),
    with ``event_id``, ``effective_at`` and ``actor`` optional (the ledger fills them in),
    ``entity_kind`` optional (implied by the type; for a retraction, taken with
    ``entity_id`` from the retracted event), and a bare date allowed wherever a time is
    (the start of that day UTC for ``effective_at``, through its end for the
    ``*_until``/``until``/``due_by`` ends)."""
    refs, schemas = msgspec.json.schema_components(ev.EVENT_TYPES, ref_template="#/$defs/{name}")
    for cls in ev.EVENT_TYPES:
        body = schemas[cls.__name__]
        body["properties"].pop("recorded_at", None)
        optional = {*LEDGER_FILLED, "recorded_at", "entity_kind"}
        if cls is ev.EventRetracted:
            optional.add("entity_id")
        body["required"] = [f for f in body.get("required", []) if f not in optional]
    for name, schema in schemas.items():
        _allow_bare_dates(schema)
        portable(schema, name)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": ID_PREFIX + "input",
        "title": "Ledger input event",
        "description": "One event as an operator writes it: an argument of `ledger append`, "
        "a line of `ledger import` (without --backfill, whose lines carry recorded_at and "
        "follow `ledger schema`).",
        "anyOf": list(refs),
        "$defs": schemas,
    }


def _allow_bare_dates(node: Any) -> None:
    """Every date-time in ``node`` also takes a bare date (``2025-12-02``)."""
    if isinstance(node, list):
        for item in node:
            _allow_bare_dates(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("format") == "date-time":
        del node["format"]
        node["anyOf"] = [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
        ]
        node["description"] = (
            "RFC 3339 date-time with a UTC offset, or a bare date (YYYY-MM-DD, UTC)"
        )
        return
    for value in node.values():
        _allow_bare_dates(value)
