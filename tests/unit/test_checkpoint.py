"""Signed checkpoints: format, signatures, and interoperability with other implementations.

Two independent checks that our notes are what other signed-note verifiers accept:

- the published example of Go's ``golang.org/x/mod/sumdb/note`` (its note_test.go: the
  PeterNeumann key pair, text and signature).  Ed25519 is deterministic, so signing that
  text with that key must give the published note byte for byte, and our verifier must
  accept it and refuse its alterations;
- a verifier written here from the C2SP signed-note spec on top of the pure-Python
  Ed25519 of RFC 8032 section 6 (no ``cryptography``): it verifies our checkpoints.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest

from ledger import checkpoint as cp
from ledger import merkle

GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


# --- RFC 8032 section 6 (reference Ed25519, verification only) ------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(p: tuple[int, ...], q: tuple[int, ...]) -> tuple[int, ...]:
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s: int, p: tuple[int, ...]) -> tuple[int, ...]:
    q: tuple[int, ...] = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p: tuple[int, ...], q: tuple[int, ...]) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decompress(s: bytes) -> tuple[int, ...] | None:
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


_GY = 4 * pow(5, P - 2, P) % P
_G = (_recover_x(_GY, 0), _GY, 1, _recover_x(_GY, 0) * _GY % P)  # type: ignore[operator]


def rfc8032_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    a = _decompress(public)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L or len(signature) != 64:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))  # type: ignore[arg-type]


def spec_open_note(note: str, verifier_key: str) -> str:
    """A C2SP signed-note verifier, written from the spec (not from ledger.checkpoint)."""
    name, key_hash, key_b64 = verifier_key.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 1 and len(key) == 33
    assert hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() == key_hash
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    for line in sigs.splitlines():
        dash, sig_name, sig_b64 = line.split(" ")
        assert dash == "\u2014"
        blob = base64.b64decode(sig_b64)
        if sig_name == name and blob[:4].hex() == key_hash:
            if rfc8032_verify(key[1:], text.encode(), blob[4:]):
                return text
            raise ValueError("bad signature")
    raise ValueError("no signature by that key")


# --- tests ------------------------------------------------------------------------------


def test_signing_reproduces_gos_published_note() -> None:
    key = cp.SigningKey.parse(GO_SIGNER_KEY)
    assert key.name == "PeterNeumann"
    assert key.verifier.text() == GO_VERIFIER_KEY
    assert key.text() == GO_SIGNER_KEY
    assert key.sign(GO_TEXT) == GO_NOTE
    verifier = cp.VerifierKey.parse(GO_VERIFIER_KEY)
    assert cp.open_note(GO_NOTE, verifier) == GO_TEXT
    assert cp.open_note(GO_NOTE.encode(), verifier) == GO_TEXT
    with pytest.raises(cp.CheckpointError, match="does not verify"):
        cp.open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)


def test_the_independent_verifier_checks_itself_on_gos_note() -> None:
    assert spec_open_note(GO_NOTE, GO_VERIFIER_KEY) == GO_TEXT
    with pytest.raises(ValueError):
        spec_open_note(GO_NOTE.replace("problem,", "problem;"), GO_VERIFIER_KEY)


def test_checkpoints_verify_with_an_independent_implementation() -> None:
    key = cp.SigningKey.generate("ledger.example/compliance")
    tree_root = merkle.root([merkle.leaf_hash(b'{"a":1}'), merkle.leaf_hash(b'{"a":2}')])
    note = cp.sign_checkpoint(cp.Checkpoint(key.name, 2, tree_root), key)
    body = spec_open_note(note, key.verifier.text())
    origin, size, root_b64 = body.splitlines()
    assert (origin, size, base64.b64decode(root_b64)) == (key.name, "2", tree_root)
    opened = cp.open_checkpoint(note, cp.VerifierKey.parse(key.verifier.text()), origin=key.name)
    assert opened == cp.Checkpoint(key.name, 2, tree_root)
    with pytest.raises(ValueError):
        spec_open_note(note.replace("\n2\n", "\n3\n"), key.verifier.text())
    with pytest.raises(cp.CheckpointError):
        cp.open_checkpoint(note.replace("\n2\n", "\n3\n"), key.verifier)


def test_open_checkpoint_refuses() -> None:
    key = cp.SigningKey.generate("log-a")
    other = cp.SigningKey.generate("log-a")
    good = cp.sign_checkpoint(cp.Checkpoint("log-a", 5, b"\x07" * 32), key)
    with pytest.raises(cp.CheckpointError, match="not signed by the key"):
        cp.open_checkpoint(good, other.verifier)
    with pytest.raises(cp.CheckpointError, match="not for this ledger"):
        cp.open_checkpoint(good, key.verifier, origin="log-b")
    bad_bodies = [
        "log-a\n5\n",  # no root
        "log-a\n05\n" + base64.b64encode(b"\x07" * 32).decode() + "\n",  # leading zero
        "log-a\n-5\n" + base64.b64encode(b"\x07" * 32).decode() + "\n",
        "log-a\n5\n" + base64.b64encode(b"\x07" * 31).decode() + "\n",
        "log-a\n5\nnot base64!\n",
        "\n5\n" + base64.b64encode(b"\x07" * 32).decode() + "\n",
    ]
    for body in bad_bodies:
        if "\n\n" in body or not body.endswith("\n"):
            with pytest.raises(cp.CheckpointError):
                key.sign(body)
            continue
        with pytest.raises(cp.CheckpointError):
            cp.open_checkpoint(key.sign(body), key.verifier)
    for note in ["", "no signatures\n", good[:-1], good + "junk\n", "x" * 70000, b"\xff\n\n"]:
        with pytest.raises(cp.CheckpointError):
            cp.open_checkpoint(note, key.verifier)


def test_keys_refuse_malformed_text() -> None:
    for text in [
        "",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcmQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # alg 2
    ]:
        with pytest.raises(cp.CheckpointError):
            cp.VerifierKey.parse(text)
    with pytest.raises(cp.CheckpointError):
        cp.SigningKey.parse(GO_SIGNER_KEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(cp.CheckpointError):
        cp.SigningKey.parse(GO_VERIFIER_KEY)


def test_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / cp.KEY_FILE_NAME
    with pytest.raises(cp.CheckpointError, match="no signing key"):
        cp.load_signing_key(path)
    made = cp.load_signing_key(path, create_name="ledger/test")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = cp.load_signing_key(path, create_name="ignored")
    assert again.verifier == made.verifier and again.name == "ledger/test"
    assert [p.name for p in path.parent.iterdir()] == [cp.KEY_FILE_NAME]


def test_pem_keys_are_accepted(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = cp.SigningKey.generate("x")
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "key.pem"
    path.write_text(pem)
    loaded = cp.load_signing_key(path, create_name="ledger/prod")
    assert loaded.verifier.public_key == key.verifier.public_key
    assert loaded.name == "ledger/prod"
    with pytest.raises(cp.CheckpointError):
        cp.SigningKey.parse(pem)
