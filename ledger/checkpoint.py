"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519.

A checkpoint says "the log named *origin* has *size* leaves and this root hash"::

    <origin>
    <size>
    <base64 root hash>

signed as a note: the body, a blank line, then one line per signature,
``— <key name> <base64(4-byte key id || Ed25519 signature of the body)>``.  The key id is
the first four bytes of ``SHA-256(name || "\\n" || 0x01 || public key)``.  A verifier key
is written ``<name>+<hex key id>+<base64(0x01 || public key)>`` (what ``ledger key``
prints and an auditor pins); the private key is written as Go's ``note`` package does,
``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``.  The signature itself is the
``cryptography`` package's Ed25519; nothing cryptographic is written here.

API:

- ``Checkpoint(origin, size, root_hash)``: ``body()``, ``Checkpoint.parse(body)``.
- ``SigningKey``: ``generate(name)``, ``parse(text)`` (the note form or a PEM PKCS#8
  Ed25519 key), ``text()``, ``verifier``, ``sign(body) -> note text``.
- ``VerifierKey``: ``parse(text)``, ``text()``, ``name``, ``key_id``.
- ``sign_checkpoint(checkpoint, key)`` and ``open_checkpoint(note, verifier)``; the
  latter checks the signature and the format and raises ``CheckpointError`` otherwise.
- ``load_signing_key(path, name=...)``: read the key, or make it (mode 0600) when absent.
- ``create_signing_key(path, name)``: make a new key file; never replaces one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALG_ED25519 = 0x01
MAX_NOTE_BYTES = 64 * 1024
"""Notes longer than this are refused unread (a checkpoint is ~200 bytes)."""
MAX_SIGNATURES = 100
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
KEY_FILE_NAME = "signing.key"

_NAME = re.compile(r"[^\s+]+")


class CheckpointError(ValueError):
    """A note, checkpoint or key that is malformed or does not verify."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CheckpointError(f"{what} is not valid base64") from None


def check_key_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise CheckpointError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte id of an Ed25519 key in signed notes."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """The public half: what an auditor pins."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def text(self) -> str:
        """``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # base64 may hold "+"
        if len(parts) != 3:
            raise CheckpointError("a verifier key is <name>+<hex key id>+<base64 key>")
        name, hex_id, encoded = parts
        check_key_name(name)
        raw = _b64decode(encoded, "the verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("the verifier key is not an Ed25519 key (0x01 + 32 bytes)")
        key = cls(name, raw[1:])
        if hex_id.lower() != key.key_id.hex():
            raise CheckpointError("the verifier key's id does not match its name and key")
        return key

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """The private half, used by the writer (``ledger append``/``import``)."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(check_key_name(name), Ed25519PrivateKey.generate())

    @property
    def seed(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def verifier(self) -> VerifierKey:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return VerifierKey(self.name, public)

    def text(self) -> str:
        """``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`` (Go's note format)."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str, *, name: str | None = None) -> SigningKey:
        """The note form, or a PEM PKCS#8 Ed25519 key (then ``name`` names it)."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            if name is None:
                raise CheckpointError("a PEM signing key needs a name (LEDGER_ORIGIN)")
            try:
                pem = serialization.load_pem_private_key(text.encode(), password=None)
            except (ValueError, TypeError) as exc:
                raise CheckpointError(f"the PEM signing key cannot be read: {exc}") from None
            if not isinstance(pem, Ed25519PrivateKey):
                raise CheckpointError("the PEM signing key is not an Ed25519 key")
            return cls(check_key_name(name), pem)
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise CheckpointError("a signing key is PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
        _, _, key_name, hex_id, encoded = parts
        check_key_name(key_name)
        raw = _b64decode(encoded, "the signing key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("the signing key is not an Ed25519 key (0x01 + 32 bytes)")
        key = cls(key_name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if hex_id.lower() != key.verifier.key_id.hex():
            raise CheckpointError("the signing key's id does not match its name and key")
        return key

    def sign(self, body: str) -> str:
        """The signed note: the body, a blank line, and this key's signature line."""
        _check_body(body)
        signature = self.private_key.sign(body.encode())
        encoded = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{body}\n{SIGNATURE_PREFIX}{self.name} {encoded}\n"


def _check_body(body: str) -> None:
    if not body.endswith("\n"):
        raise CheckpointError("a note's text ends with a newline")
    if "\n\n" in body:
        raise CheckpointError("a note's text has no blank lines")
    if any(c < " " and c != "\n" for c in body):
        raise CheckpointError("a note's text has no control characters other than newlines")


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str | bytes) -> tuple[str, list[Signature]]:
    """A signed note's text and its signature lines (not yet verified)."""
    if len(note) > MAX_NOTE_BYTES:
        raise CheckpointError(f"the note is longer than {MAX_NOTE_BYTES} bytes")
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("the note is not UTF-8") from None
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("the note has no signature block (a blank line, then signatures)")
    body, block = note[: cut + 1], note[cut + 2 :]
    _check_body(body)
    if not block.endswith("\n"):
        raise CheckpointError("the note's signature block ends with a newline")
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError(f"not a signature line: {line[:80]!r}")
        fields = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise CheckpointError(f"not a signature line: {line[:80]!r}")
        raw = _b64decode(fields[1], "a signature")
        if len(raw) < 5:
            raise CheckpointError("a signature is a key id and at least one byte")
        signatures.append(Signature(check_key_name(fields[0]), raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise CheckpointError("the note has no signatures (or too many)")
    return body, signatures


def open_note(note: str | bytes, verifier: VerifierKey) -> str:
    """The note's text, if ``verifier`` signed it; else ``CheckpointError``."""
    body, signatures = split_note(note)
    for sig in signatures:
        if sig.name == verifier.name and sig.key_id == verifier.key_id:
            if verifier.verify(body.encode(), sig.signature):
                return body
            raise CheckpointError(f"the signature by {verifier.name} does not verify")
    raise CheckpointError(
        f"the note is not signed by the key {verifier.name}+{verifier.key_id.hex()}"
    )


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: the log's name (origin), its size and its root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root_hash).decode(),
            *self.extensions,
        ]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CheckpointError("a checkpoint is an origin, a size and a root hash, one a line")
        origin, size_text, root_text, *extensions = lines[:-1]
        if not origin:
            raise CheckpointError("the checkpoint's origin line is empty")
        if not size_text.isascii() or not size_text.isdigit() or size_text != str(int(size_text)):
            raise CheckpointError(f"the checkpoint's size {size_text[:30]!r} is not a number")
        root_hash = _b64decode(root_text, "the checkpoint's root hash")
        if len(root_hash) != 32:
            raise CheckpointError("the checkpoint's root hash is not 32 bytes")
        if any(not line for line in extensions):
            raise CheckpointError("the checkpoint has an empty extension line")
        return cls(origin, int(size_text), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey) -> str:
    return key.sign(checkpoint.body())


def open_checkpoint(
    note: str | bytes, verifier: VerifierKey, *, origin: str | None = None
) -> Checkpoint:
    """The checkpoint in ``note``, if ``verifier`` signed it (and it names ``origin``,
    when given: a checkpoint of another log proves nothing about this one)."""
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"the checkpoint is for {checkpoint.origin!r}, not for this ledger ({origin!r})"
        )
    return checkpoint


def load_signing_key(path: Path, *, create_name: str | None = None) -> SigningKey:
    """The signing key in ``path``.  When the file is absent and ``create_name`` is given,
    a new key of that name is made there first, mode 0600, atomically (two writers
    starting together end up with the same key)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if create_name is None:
            raise CheckpointError(f"no signing key at {path}") from None
        return _create_key(path, create_name)
    except OSError as exc:
        raise CheckpointError(f"cannot read the signing key {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} holds no signing key (it is not UTF-8 text)") from None
    return SigningKey.parse(text, name=create_name)


def create_signing_key(path: Path, name: str) -> SigningKey:
    """A new signing key of that name written to ``path`` (mode 0600); an existing file
    is never replaced (a ledger's key, once its checkpoints are signed, must not change)."""
    if path.exists():
        raise CheckpointError(f"{path} already exists: a signing key is never replaced")
    try:
        key = _create_key(path, name)
    except OSError as exc:
        raise CheckpointError(f"cannot write the signing key {path}: {exc.strerror}") from None
    if SigningKey.parse(path.read_text()).seed != key.seed:
        raise CheckpointError(f"{path} already exists: a signing key is never replaced")
    return key


def _create_key(path: Path, name: str) -> SigningKey:
    key = SigningKey.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key.text() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)  # fails if another writer made one first
        except FileExistsError:
            return SigningKey.parse(path.read_text())
    finally:
        temporary.unlink(missing_ok=True)
    return key
