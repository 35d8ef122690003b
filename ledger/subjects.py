"""NATS subjects of ledger events, and the filters subscribers use to select them.

Every event is published on::

    {prefix}.{entity_kind}.{EventType}.{entity_token}

for example ``ledger.licence.LicenceGranted.JLM-GL-2025-001``.  ``prefix`` is
``LEDGER_SUBJECT_PREFIX`` (default ``ledger``; it may itself contain dots).  An
``EventRetracted`` is published under the kind and id of the entity whose event it retracts,
so a filter on one entity also sees its retractions.

``entity_token`` is the entity id with every byte outside ``[A-Za-z0-9_-]`` of its UTF-8
encoding written as ``%XX`` (upper-case hex): ids may contain dots, spaces, ``*``, ``>``
and ``%``, none of which may appear raw in a subject token.  ``GL.1`` becomes ``GL%2E1``,
``Baotou Steel`` becomes ``Baotou%20Steel``.  The encoding is a bijection, so a subject
names exactly one entity and ``entity_id_from_token`` recovers the id.

Filters (for JetStream consumers) replace any of the last three tokens with ``*``:
``ledger.licence.>`` (every licence event), ``ledger.*.LicenceGranted.*`` (one type),
``ledger.licence.*.GL%2E1`` (one entity).  ``parse_filter`` turns the friendly forms
accepted by ``ledger watch --filter`` into such subjects; no filter of one consumer may
cover another (``subject_covers``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.events import ENTITY_KINDS, EVENT_TYPES_BY_NAME, KIND_OF_TYPE

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_ENCODED_TOKEN = re.compile(r"^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+$")
_PREFIX_TOKEN = re.compile(r"^[^\s.*>]+$")


class SubjectError(ValueError):
    """A subject, filter or prefix that is not valid."""


def check_prefix(prefix: str) -> str:
    """Validate a subject prefix: one or more dot-separated tokens without wildcards."""
    if not prefix or not all(_PREFIX_TOKEN.match(t) for t in prefix.split(".")):
        raise SubjectError(
            f"subject prefix '{prefix}' must be dot-separated tokens without spaces, "
            "'*' or '>' (e.g. 'ledger' or 'acme.ledger')"
        )
    return prefix


_HEADER_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def _ascii_table(safe: frozenset[int]) -> dict[int, str]:
    return str.maketrans({chr(b): f"%{b:02X}" for b in range(128) if b not in safe})


_ASCII_TOKEN_TABLE = _ascii_table(_SAFE)
_ASCII_HEADER_TABLE = _ascii_table(_HEADER_SAFE)


def entity_token(entity_id: str) -> str:
    """The subject token of an entity id (percent-encoding every unsafe UTF-8 byte)."""
    if _SAFE_TOKEN.match(entity_id):
        return entity_id
    if entity_id.isascii():
        return entity_id.translate(_ASCII_TOKEN_TABLE)
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in entity_id.encode())


def header_text(text: str) -> str:
    """Text made safe for a NATS header value, reversibly.

    Printable ASCII other than ``%`` stays as it is (``GL.1``, ``Baotou Steel``); every
    other UTF-8 byte (control characters, non-ASCII, ``%``) becomes ``%XX``.  Undo with
    ``urllib.parse.unquote``.
    """
    if text.isascii():
        return text.translate(_ASCII_HEADER_TABLE)
    return "".join(chr(b) if b in _HEADER_SAFE else f"%{b:02X}" for b in text.encode())


def entity_id_from_token(token: str) -> str:
    """Inverse of ``entity_token``."""
    if not _ENCODED_TOKEN.match(token):
        raise SubjectError(f"'{token}' is not an encoded entity id")
    if "%" not in token:
        return token
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "%":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(token[i]))
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise SubjectError(f"'{token}' does not encode UTF-8 text") from None


def event_subject(prefix: str, entity_kind: str, event_type: str, entity_id: str) -> str:
    """The subject an event is published on."""
    return f"{prefix}.{entity_kind}.{event_type}.{entity_token(entity_id)}"


def stream_subjects(prefix: str) -> list[str]:
    """The subjects the ledger's stream captures."""
    return [f"{prefix}.>"]


@dataclass(frozen=True)
class SubjectParts:
    entity_kind: str
    event_type: str
    entity_id: str

    @property
    def entity(self) -> str:
        return f"{self.entity_kind}:{self.entity_id}"


def parse_subject(prefix: str, subject: str) -> SubjectParts:
    """Split a published subject into kind, type and entity id."""
    head = prefix + "."
    if not subject.startswith(head):
        raise SubjectError(f"subject '{subject}' does not start with '{head}'")
    parts = subject[len(head) :].split(".")
    if len(parts) != 3:
        raise SubjectError(f"subject '{subject}' is not {head}KIND.TYPE.ENTITY")
    kind, event_type, token = parts
    return SubjectParts(kind, event_type, entity_id_from_token(token))


def filter_subject(
    prefix: str,
    *,
    kind: str | None = None,
    event_type: str | None = None,
    entity_id: str | None = None,
) -> str:
    """A filter subject selecting events by entity kind, event type and/or entity id.

    Omitted parts match anything: ``filter_subject("ledger")`` is ``ledger.>``.
    """
    if kind is not None and kind not in ENTITY_KINDS:
        raise SubjectError(f"unknown entity kind '{kind}' (one of {', '.join(ENTITY_KINDS)})")
    if event_type is not None:
        if event_type not in EVENT_TYPES_BY_NAME:
            raise SubjectError(f"unknown event type '{event_type}'; see `ledger schema --types`")
        type_kind = KIND_OF_TYPE.get(event_type)
        if kind is not None and type_kind is not None and type_kind != kind:
            raise SubjectError(f"{event_type} events belong to {type_kind}s, not {kind}s")
        kind = kind or type_kind
    if kind is None and event_type is None and entity_id is None:
        return f"{prefix}.>"
    if event_type is None and entity_id is None:
        return f"{prefix}.{kind}.>"
    token = "*" if entity_id is None else entity_token(entity_id)
    return f"{prefix}.{kind or '*'}.{event_type or '*'}.{token}"


def parse_filter(text: str, prefix: str) -> str:
    """A filter subject from one of the friendly forms ``ledger watch --filter`` accepts.

    - ``licence:GL.1``: every event of one entity (``*:GL.1`` for that id of any kind);
    - ``licence``: every event of an entity kind;
    - ``LicenceGranted``: every event of a type;
    - ``LicenceGranted@licence:GL.1``: one type on one entity;
    - a raw subject starting with the prefix, e.g. ``ledger.licence.*.GL%2E1``.
    """
    value = text.strip()
    if not value:
        raise SubjectError("empty filter")
    if value == f"{prefix}.>" or value.startswith(prefix + "."):
        _check_raw_filter(value, prefix)
        return value
    event_type: str | None = None
    if "@" in value:
        event_type, _, value = value.partition("@")
        if event_type not in EVENT_TYPES_BY_NAME:
            raise SubjectError(f"unknown event type '{event_type}' in filter '{text}'")
    kind, sep, entity_id = value.partition(":")
    if sep:
        if kind != "*" and kind not in ENTITY_KINDS:
            raise SubjectError(
                f"unknown entity kind '{kind}' in filter '{text}' "
                f"(one of {', '.join(ENTITY_KINDS)}, or '*')"
            )
        if not entity_id:
            raise SubjectError(f"filter '{text}' names no entity id after ':'")
        return filter_subject(
            prefix,
            kind=None if kind == "*" else kind,
            event_type=event_type,
            entity_id=None if entity_id == "*" else entity_id,
        )
    if event_type is not None:
        raise SubjectError(f"filter '{text}': after '@' give KIND:ID, e.g. licence:GL-1")
    if value in ENTITY_KINDS:
        return filter_subject(prefix, kind=value)
    if value in EVENT_TYPES_BY_NAME:
        return filter_subject(prefix, event_type=value)
    raise SubjectError(
        f"filter '{text}' is not KIND:ID (e.g. licence:GL.1), a kind (e.g. licence), an "
        f"event type (e.g. LicenceGranted), TYPE@KIND:ID, or a subject starting with "
        f"'{prefix}.'"
    )


def subject_covers(wide: str, narrow: str) -> bool:
    """Whether every subject filter ``narrow`` matches is matched by ``wide`` too (``*``
    matches one token, ``>`` one or more final tokens).

    JetStream refuses a consumer one of whose filters covers another (the same filter
    twice included); filters that only intersect (``ledger.licence.*.GL-1`` and
    ``ledger.*.LicenceGranted.*``) it accepts, and delivers a message matching both once
    (nats-server 2.15; some earlier releases refused those too, once connected).
    """
    tw, tn = wide.split("."), narrow.split(".")
    for i, w in enumerate(tw):
        if w == ">":
            return len(tn) > i
        if i >= len(tn) or tn[i] == ">" or w not in ("*", tn[i]):
            return False
    return len(tw) == len(tn)


def parse_filters(texts: Sequence[str], prefix: str) -> list[str]:
    """The subjects of one consumer's filters (``parse_filter`` each); ``SubjectError``
    if one covers another, which JetStream would refuse only once connected."""
    subjects = [parse_filter(t, prefix) for t in texts]
    for i in range(len(subjects)):
        for j in range(i):
            for wide, narrow in ((j, i), (i, j)):
                if subject_covers(subjects[wide], subjects[narrow]):
                    a, b, sa, sb = texts[wide], texts[narrow], subjects[wide], subjects[narrow]
                    refused = "JetStream refuses a filter that covers another"
                    if sa == sb:
                        raise SubjectError(
                            f"'{a}' and '{b}' are the same filter ({sa}): {refused}; give it once"
                        )
                    raise SubjectError(
                        f"'{a}' already selects every event '{b}' does ({sa} covers {sb}): "
                        f"{refused}; drop '{b}'"
                    )
    return subjects


def _check_raw_filter(subject: str, prefix: str) -> None:
    tokens = subject[len(prefix) + 1 :].split(".")
    for i, token in enumerate(tokens):
        if not token or any(c.isspace() for c in token):
            raise SubjectError(f"subject '{subject}' has an empty or blank token")
        if token == ">" and i != len(tokens) - 1:
            raise SubjectError(f"subject '{subject}': '>' must be the last token")
        if ("*" in token and token != "*") or (">" in token and token != ">"):
            raise SubjectError(f"subject '{subject}': wildcards must be whole tokens")
    if len(tokens) > 3 or (len(tokens) < 3 and tokens[-1] != ">"):
        raise SubjectError(
            f"subject '{subject}' is not {prefix}.KIND.TYPE.ENTITY (tokens may be '*', "
            "or end with '>')"
        )
