"""Subject scheme, filters and the relay's wire format (no server needed)."""

from __future__ import annotations

import itertools
from email.parser import BytesParser
from urllib.parse import unquote

import pytest
from eventsourcing.persistence import Notification
from hypothesis import given
from hypothesis import strategies as hs

from ledger.relay import hpub_frame, outgoing_message
from ledger.subjects import (
    SubjectError,
    check_prefix,
    entity_id_from_token,
    entity_token,
    event_subject,
    filter_subject,
    header_text,
    parse_filter,
    parse_subject,
    subject_covers,
)


@pytest.mark.parametrize(
    ("entity_id", "token"),
    [
        ("JLM-GL-2025-001", "JLM-GL-2025-001"),
        ("GL.1", "GL%2E1"),
        ("Baotou Steel", "Baotou%20Steel"),
        ("a*b>c", "a%2Ab%3Ec"),
        ("50%", "50%25"),
        ("北方", "%E5%8C%97%E6%96%B9"),
        ("under_score", "under_score"),
    ],
)
def test_entity_token_encodes_every_unsafe_byte(entity_id: str, token: str) -> None:
    assert entity_token(entity_id) == token
    assert entity_id_from_token(token) == entity_id


@given(hs.text(min_size=1, max_size=60))
def test_entity_token_is_a_bijection_onto_safe_tokens(entity_id: str) -> None:
    token = entity_token(entity_id)
    assert token
    assert all(c.isascii() and (c.isalnum() or c in "_-%") for c in token)
    assert entity_id_from_token(token) == entity_id


@given(hs.text(min_size=1, max_size=60))
def test_header_text_is_printable_ascii_and_reversible(text: str) -> None:
    encoded = header_text(text)
    assert all(0x20 <= ord(c) < 0x7F for c in encoded)
    assert unquote(encoded) == text


def test_token_decoding_rejects_non_canonical_forms() -> None:
    for bad in ("GL.1", "a b", "%2e", "%2", "*", ">"):
        with pytest.raises(SubjectError):
            entity_id_from_token(bad)


def test_event_subject_and_parse_subject_round_trip() -> None:
    subject = event_subject("ledger", "licence", "LicenceGranted", "GL.1 x")
    assert subject == "ledger.licence.LicenceGranted.GL%2E1%20x"
    parts = parse_subject("ledger", subject)
    assert (parts.entity_kind, parts.event_type, parts.entity_id) == (
        "licence",
        "LicenceGranted",
        "GL.1 x",
    )
    assert parse_subject("acme.ledger", "acme.ledger.party.PartyVetted.p1").entity == "party:p1"
    with pytest.raises(SubjectError):
        parse_subject("ledger", "other.licence.LicenceGranted.x")


def test_filter_subject_builds_wildcards() -> None:
    assert filter_subject("ledger") == "ledger.>"
    assert filter_subject("ledger", kind="licence") == "ledger.licence.>"
    assert (
        filter_subject("ledger", event_type="LicenceGranted") == "ledger.licence.LicenceGranted.*"
    )
    assert filter_subject("ledger", event_type="EventRetracted") == "ledger.*.EventRetracted.*"
    assert filter_subject("ledger", entity_id="GL.1") == "ledger.*.*.GL%2E1"
    assert filter_subject("ledger", kind="licence", entity_id="GL.1") == "ledger.licence.*.GL%2E1"
    with pytest.raises(SubjectError, match="belong to licences"):
        filter_subject("ledger", kind="party", event_type="LicenceGranted")
    with pytest.raises(SubjectError, match="unknown entity kind"):
        filter_subject("ledger", kind="ship")
    with pytest.raises(SubjectError, match="unknown event type"):
        filter_subject("ledger", event_type="LicenseGranted")


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("licence:GL.1", "ledger.licence.*.GL%2E1"),
        ("*:GL.1", "ledger.*.*.GL%2E1"),
        ("party:Baotou Steel", "ledger.party.*.Baotou%20Steel"),
        ("licence:*", "ledger.licence.>"),
        ("licence", "ledger.licence.>"),
        ("LicenceGranted", "ledger.licence.LicenceGranted.*"),
        ("EventRetracted", "ledger.*.EventRetracted.*"),
        ("LicenceSuspended@licence:GL.1", "ledger.licence.LicenceSuspended.GL%2E1"),
        ("EventRetracted@licence:GL.1", "ledger.licence.EventRetracted.GL%2E1"),
        ("ledger.>", "ledger.>"),
        ("ledger.licence.*.GL%2E1", "ledger.licence.*.GL%2E1"),
        ("ledger.*.LicenceGranted.>", "ledger.*.LicenceGranted.>"),
    ],
)
def test_parse_filter_friendly_forms(text: str, subject: str) -> None:
    assert parse_filter(text, "ledger") == subject


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ship:1",
        "licence:",
        "Licence",
        "LicenseGranted@licence:1",
        "LicenceGranted@licence",
        "PartyVetted@licence:GL-1",
        "ledger.licence",
        "ledger.a.b.c.d",
        "ledger.>.x",
        "ledger.lic*.x.y",
    ],
)
def test_parse_filter_rejects_what_it_cannot_mean(text: str) -> None:
    with pytest.raises(SubjectError):
        parse_filter(text, "ledger")


@pytest.mark.parametrize(
    ("wide", "narrow", "covers"),
    [
        ("ledger.licence.>", "ledger.licence.LicenceGranted.*", True),
        ("ledger.licence.>", "ledger.licence.>", True),
        ("ledger.>", "ledger.party.>", True),
        ("ledger.*.*.x", "ledger.party.*.x", True),
        ("ledger.party.>", "ledger.>", False),
        ("ledger.party.*.x", "ledger.*.*.x", False),
        ("ledger.licence.*.GL-1", "ledger.*.LicenceGranted.*", False),  # they only intersect
        ("ledger.*.LicenceGranted.*", "ledger.licence.*.GL-1", False),
        ("ledger.party.>", "ledger.licence.>", False),
        ("ledger.licence.>", "ledger.licence", False),  # '>' needs at least one token
    ],
)
def test_subject_covers(wide: str, narrow: str, covers: bool) -> None:
    assert subject_covers(wide, narrow) is covers


def _matches(pattern: str, subject: str) -> bool:
    """NATS matching, spelt out: ``*`` one token, a final ``>`` one or more."""
    tp, ts = pattern.split("."), subject.split(".")
    if tp[-1] == ">":
        return len(ts) >= len(tp) and all(p in ("*", t) for p, t in zip(tp[:-1], ts, strict=False))
    return len(ts) == len(tp) and all(p in ("*", t) for p, t in zip(tp, ts, strict=True))


# Filters of up to 4 tokens over x, y; subjects of up to 5 tokens over x, y and w (a
# token no filter names), so every way two filters can differ shows in some subject.
_PATTERNS = hs.builds(
    lambda tokens, rest: ".".join(tokens + ([">"] if rest else [])),
    hs.lists(hs.sampled_from(["x", "y", "*"]), min_size=1, max_size=3),
    hs.booleans(),
)
_SUBJECTS = [".".join(p) for n in range(1, 6) for p in itertools.product("xyw", repeat=n)]


@given(_PATTERNS, _PATTERNS)
def test_cover_agrees_with_matching(a: str, b: str) -> None:
    assert subject_covers(a, b) == all(_matches(a, s) for s in _SUBJECTS if _matches(b, s))


def test_prefix_validation() -> None:
    assert check_prefix("acme.ledger") == "acme.ledger"
    for bad in ("", "a b", "a.*", "a.>", "a..b"):
        with pytest.raises(SubjectError):
            check_prefix(bad)


def test_hpub_frame_is_what_nc_publish_would_send() -> None:
    """The relay's pre-built frame equals the generic publish of the same message."""
    payload = (
        b'{"type":"PartyRegistered","event_id":"01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e",'
        b'"entity_kind":"party","entity_id":"Baotou\\r\\nSteel. \xe5\x8c\x97 50%",'
        b'"effective_at":"2025-11-10T13:01:00+08:00","recorded_at":"2025-11-14T00:00:00Z",'
        b'"actor":"t","name":"B","country":"CN","roles":["exporter"]}'
    )
    notification = Notification(
        id=42,
        originator_id="party:x",
        originator_version=1,
        topic="PartyRegistered",
        state=payload,
    )
    message = outgoing_message("ledger", notification, payload)
    frame, event_id = hpub_frame(
        "ledger", notification, payload, "_INBOX.r.1.42", "Nats-Expected-Last-Sequence: 7"
    )
    assert event_id == "01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e"
    head, rest = frame.split(b"\r\n", 1)
    op, subject, reply, header_size, total_size = head.decode().split(" ")
    assert (op, subject, reply) == ("HPUB", message.subject, "_INBOX.r.1.42")
    header_block = rest[: int(header_size)]
    assert rest[int(header_size) : int(total_size)] == payload
    assert rest[int(total_size) :] == b"\r\n"
    assert header_block.startswith(b"NATS/1.0\r\n") and header_block.endswith(b"\r\n\r\n")
    parsed = dict(BytesParser().parsebytes(header_block[len(b"NATS/1.0\r\n") :]).items())
    assert parsed == {**message.headers, "Nats-Expected-Last-Sequence": "7"}
    assert message.headers == {
        "Nats-Msg-Id": "01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e",
        "Ledger-Position": "42",
        "Ledger-Event-Type": "PartyRegistered",
        "Ledger-Entity": "party:Baotou%0D%0ASteel. %E5%8C%97 50%25",
        "Ledger-Effective-At": "2025-11-10T13:01:00+08:00",
        "Ledger-Recorded-At": "2025-11-14T00:00:00Z",
        "Ledger-Schema-Version": "1",
    }
    assert message.subject == (
        "ledger.party.PartyRegistered.Baotou%0D%0ASteel%2E%20%E5%8C%97%2050%25"
    )
    # With its leaf index, both ways of building the message carry Ledger-Leaf alike.
    with_leaf = outgoing_message("ledger", notification, payload, 41)
    frame, _ = hpub_frame("ledger", notification, payload, "_INBOX.r.1.42", "X: 1", leaf=41)
    block = frame.split(b"\r\n", 1)[1][: int(frame.split(b"\r\n", 1)[0].split(b" ")[3])]
    parsed = dict(BytesParser().parsebytes(block[len(b"NATS/1.0\r\n") :]).items())
    assert parsed == {**with_leaf.headers, "X": "1"}
    assert with_leaf.headers["Ledger-Leaf"] == "41"
