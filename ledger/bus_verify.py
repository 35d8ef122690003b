"""The Merkle tree on the bus: leaf indexes, published checkpoints, a verifying consumer.

Each event message carries its leaf index (``Ledger-Leaf``).  After each batch it has
published, the relay publishes the signed checkpoints of the store's append batches it
has now published in full to the stream ``{stream}_CHECKPOINTS`` (subject
``{prefix}-checkpoint.{stream}``), one message per checkpoint::

    {"size": 1200, "last_position": 1200, "checkpoint": "<signed note>",
     "frontier": "<base64 of the tree's frontier at that size>"}

A ``StreamVerifier`` recomputes the tree from the messages it is fed, in leaf order, and
releases events only once a checkpoint covering them verifies: its signature against the
pinned key, its root against the root of the leaves received.  A consumer that starts
mid-stream starts verifying at the checkpoint just before its start: that message's
frontier, checked against the signed root, is the tree up to there.  Whatever does not
belong (an unexpected leaf index: missing, reordered, inserted; other bytes than those
the checkpoint signed) raises ``BusVerificationError`` naming the exact position.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ledger import merkle

if TYPE_CHECKING:
    from nats.js.manager import JetStreamManager

    from ledger.app import Ledger
    from ledger.checkpoint import VerifierKey
    from ledger.store.tree import Batch

LEAF = "Ledger-Leaf"
TREE_SIZE = "Ledger-Tree-Size"
MAX_CHECKPOINT_MESSAGE = 64 * 1024 + 4096


def checkpoint_stream(stream: str) -> str:
    return f"{stream}_CHECKPOINTS"


def checkpoint_subject(prefix: str, stream: str) -> str:
    return f"{prefix}-checkpoint.{stream}"


class BusVerificationError(RuntimeError):
    """A message on the bus that does not belong to the signed tree."""

    def __init__(self, message: str, *, position: int | None = None, leaf: int | None = None):
        super().__init__(message)
        self.position = position
        self.leaf = leaf


class CheckpointMessage(msgspec.Struct):
    size: int
    last_position: int
    checkpoint: str
    frontier: str


_checkpoint_decoder = msgspec.json.Decoder(CheckpointMessage)


# --- the relay's side ---------------------------------------------------------------------


def _tables_and_port(app: Ledger) -> tuple[Any, Any]:
    recorder: Any = app.recorder
    return recorder.tree, recorder.tree_port()


def leaf_indexes(app: Ledger, positions: Sequence[int]) -> dict[int, int]:
    """The leaf index of each stored position (none for events the tree does not cover
    yet: a ledger from before the tree, until it is built)."""
    if not positions:
        return {}
    tables, port_cm = _tables_and_port(app)
    lo, hi = positions[0], positions[-1]
    with port_cm as port:
        first = tables.batch_of_position(port, lo)
        rows = port.all(
            tables.sql(
                f"SELECT first_leaf, first_position, size FROM {tables.batches} "
                "WHERE first_position > ? AND first_position <= ? ORDER BY first_position"
            ),
            (lo, hi),
        )
    spans = [(b.first_leaf, b.first_position, b.size) for b in ([first] if first else [])]
    spans += [(int(a), int(b), int(c)) for a, b, c in rows]
    out: dict[int, int] = {}
    i = 0
    for position in positions:
        while i + 1 < len(spans) and spans[i + 1][1] <= position:
            i += 1
        if not spans:
            break
        first_leaf, first_position, size = spans[i]
        leaf = first_leaf + (position - first_position)
        if position >= first_position and leaf < size:
            out[position] = leaf
    return out


def signed_batches(app: Ledger, after_size: int, upto_position: int) -> list[Batch]:
    """The signed append batches ending after tree size ``after_size`` and at or before
    position ``upto_position`` (what the relay has published in full)."""
    tables, port_cm = _tables_and_port(app)
    with port_cm as port:
        start = tables.batch_of_leaf(port, after_size)
        first_leaf = start.first_leaf if start is not None else after_size
        out = []
        for batch in tables.batches_from(port, first_leaf):
            if batch.last_position > upto_position:
                break
            if batch.size > after_size and batch.checkpoint:
                out.append(batch)
    return out


async def ensure_checkpoint_stream(
    jsm: JetStreamManager, stream: str, prefix: str, *, replicas: int = 1
) -> None:
    """Create the checkpoint stream if missing (file storage, every checkpoint kept)."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    name = checkpoint_stream(stream)
    try:
        await jsm.stream_info(name)
    except NotFoundError:
        await jsm.add_stream(
            StreamConfig(
                name=name,
                description=f"Signed checkpoints of the events in {stream} (ledger relay)",
                subjects=[checkpoint_subject(prefix, stream)],
                storage=StorageType.FILE,
                num_replicas=replicas,
                allow_direct=True,
            )
        )


def checkpoint_payload(batch: Batch) -> bytes:
    assert batch.checkpoint is not None
    return msgspec.json.encode(
        CheckpointMessage(
            size=batch.size,
            last_position=batch.last_position,
            checkpoint=batch.checkpoint,
            frontier=base64.b64encode(batch.frontier).decode(),
        )
    )


# --- the consumer's side ------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedCheckpoint:
    size: int
    last_position: int
    root: bytes
    frontier: merkle.Frontier


def open_checkpoint_message(data: bytes, key: VerifierKey) -> VerifiedCheckpoint:
    """A checkpoint message whose signature and frontier check out, or
    ``BusVerificationError``."""
    from ledger.checkpoint import CheckpointError, open_checkpoint

    if len(data) > MAX_CHECKPOINT_MESSAGE:
        raise BusVerificationError(f"a checkpoint message of {len(data)} bytes is too large")
    try:
        message = _checkpoint_decoder.decode(data)
        checkpoint = open_checkpoint(message.checkpoint, key, origin=key.name)
        frontier = merkle.Frontier.from_bytes(base64.b64decode(message.frontier, validate=True))
    except (msgspec.MsgspecError, CheckpointError, ValueError) as exc:
        raise BusVerificationError(f"a checkpoint message does not verify: {exc}") from None
    if checkpoint.size != message.size or frontier.size != message.size:
        raise BusVerificationError(
            f"a checkpoint message says size {message.size}, its signed checkpoint "
            f"{checkpoint.size}, its frontier {frontier.size}"
        )
    if frontier.root() != checkpoint.root_hash:
        raise BusVerificationError(
            f"the frontier published with the checkpoint of size {message.size} is not the "
            "signed tree"
        )
    return VerifiedCheckpoint(message.size, message.last_position, checkpoint.root_hash, frontier)


@dataclass
class StreamVerifier:
    """Recomputes the tree from event messages fed in stream order and releases them
    once a signed checkpoint covers them (see the module doc)."""

    base: merkle.Frontier
    """The tree up to the last verified checkpoint."""
    leaves: list[bytes] = field(default_factory=list)
    """Leaf hashes received after it."""
    pending: list[tuple[int, Any]] = field(default_factory=list)
    """(position, item) of those leaves, not yet released."""

    @classmethod
    def starting_at(cls, checkpoint: VerifiedCheckpoint | None) -> StreamVerifier:
        return cls(merkle.Frontier() if checkpoint is None else checkpoint.frontier.copy())

    @property
    def verified_size(self) -> int:
        return self.base.size

    @property
    def next_leaf(self) -> int:
        return self.base.size + len(self.leaves)

    def add(self, leaf_header: str | None, position: int, payload: bytes, item: Any) -> None:
        """One event message, in stream order; ``BusVerificationError`` if its leaf index
        is not the next one."""
        expected = self.next_leaf
        if leaf_header is None or not leaf_header.isdigit() or len(leaf_header) > 19:
            raise BusVerificationError(
                f"the message at position {position} carries no valid {LEAF} "
                f"({leaf_header!r}): not published by the relay",
                position=position,
            )
        leaf = int(leaf_header)
        if leaf != expected:
            what = "missing" if leaf > expected else "repeated or reordered"
            raise BusVerificationError(
                f"the message at position {position} is leaf {leaf}, but leaf {expected} "
                f"comes next: leaves {what} (forged, reordered or lost messages)",
                position=position,
                leaf=leaf,
            )
        self.leaves.append(merkle.leaf_hash(payload))
        self.pending.append((position, item))

    def check(self, checkpoint: VerifiedCheckpoint) -> list[Any]:
        """Verify the leaves received up to ``checkpoint``'s size against its root; the
        items it covers, released in order (nothing if it is older or not reached)."""
        size = checkpoint.size
        if size <= self.base.size or size > self.next_leaf:
            return []
        count = size - self.base.size
        tree = self.base.copy()
        tree.extend(self.leaves[:count])
        if tree.root() != checkpoint.root:
            first = self.pending[0][0]
            last = self.pending[count - 1][0]
            raise BusVerificationError(
                f"the messages at positions {first}-{last} do not add up to the signed tree "
                f"of size {size}: at least one of them was forged or altered",
                position=first,
            )
        released = [item for _, item in self.pending[:count]]
        del self.pending[:count]
        del self.leaves[:count]
        self.base = tree
        return released
