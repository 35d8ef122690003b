"""The Merkle tree on the bus: leaf indexes, published checkpoints, a verifying consumer.

Each event message carries its leaf index (``Ledger-Leaf``).  After each batch it has
published, the relay publishes the signed checkpoints of the store's append batches it
has now published in full to the stream ``{stream}_CHECKPOINTS`` (subject
``{prefix}-checkpoint.{stream}``), one message per checkpoint::

    {"size": 1200, "last_position": 1200, "checkpoint": "<signed note>",
     "frontier": "<base64 of the tree's frontier at that size>",
     "after": 1100, "leaves": "<base64 of the leaf hashes 1100..1199>"}

``after``/``leaves`` are the leaf hashes the checkpoint adds to the one published before
it.  A batch of more than ``LEAVES_INLINE`` leaves has them in messages of their own on
the same subject just before its checkpoint (header ``Ledger-Leaves``: the first leaf;
payload: up to ``LEAVES_INLINE`` raw 32-byte hashes).  A consumer only needs them when
the leaves it received do not add up to the signed root: then (checked against the
signed root, so a forger cannot supply them) they name the exact message that differs.
So it keeps none of them in memory while it reads: whoever holds the relay's key can
publish any number, and a consumer that kept them would grow without end.  It counts
those that belong to no checkpoint (``CheckpointFeed.ignored_leaves``) and, only on a
mismatch, reads back the few just before the checkpoint that failed.  The exception:
a stream whose head its limits dropped (``max_msgs``, ``max_age``, ``max_bytes``) in
the middle of a batch.  The leaves between the checkpoint before its first message and
that message are in no event message any more; the published hashes of those leaves
(and only those: at most one batch, folded into a frontier as they are read, never
kept) stand in for them, and the next checkpoint's signed root checks them together
with the messages received (``StreamVerifier.purged_to``; ``prime(purged_head=True)``).

A ``StreamVerifier`` recomputes the tree from the messages it is fed, in leaf order, and
releases events only once a checkpoint covering them verifies: its signature against the
pinned key, its root against the root of the leaves received.  The store signs a
checkpoint at least every ``ledger.store.tree.CHECKPOINT_EVERY`` leaves, so a consumer
may refuse to hold more unverified events than that (``HoldBound``, the one rule of
``subscribe(max_pending=)`` and the NATS projector): forged events with consecutive leaf
indexes then cannot make it grow, and a consumer stalled at that bound says so.  A
consumer that starts mid-stream starts verifying at the checkpoint just before its
start: that message's frontier, checked against the signed root, is the tree up to
there.  Whatever does not belong (an unexpected leaf index: missing, reordered,
inserted; other bytes than those the checkpoint signed) raises
``BusVerificationError`` naming the exact position.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ledger import merkle

if TYPE_CHECKING:
    from nats.js.manager import JetStreamManager

    from ledger.app import Ledger
    from ledger.checkpoint import VerifierKey
    from ledger.store.tree import Batch

log = logging.getLogger("ledger.bus_verify")

LEAF = "Ledger-Leaf"
TREE_SIZE = "Ledger-Tree-Size"
LEAVES = "Ledger-Leaves"
LEAVES_INLINE = 1024
"""Leaf hashes per message (in a checkpoint message, or in one of its own)."""
MAX_CHECKPOINT_MESSAGE = 2 * LEAVES_INLINE * merkle.HASH_SIZE + 64 * 1024
LOCATE_SCAN_SLACK = 64
"""On a mismatch, how many checkpoint-stream messages beyond the ones a checkpoint's
leaves need are read back looking for them (others may have been published between)."""


def checkpoint_stream(stream: str) -> str:
    return f"{stream}_CHECKPOINTS"


def checkpoint_subject(prefix: str, stream: str) -> str:
    return f"{prefix}-checkpoint.{stream}"


class BusVerificationError(RuntimeError):
    """A message on the bus that does not belong to the signed tree."""

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        leaf: int | None = None,
        expected_leaf: int | None = None,
    ):
        super().__init__(message)
        self.position = position
        self.leaf = leaf
        self.expected_leaf = expected_leaf
        """For a message with an unexpected leaf index: the leaf that was to come next."""


class TreeMismatch(BusVerificationError):
    """The leaves received do not add up to a signed root, and the leaf hashes at hand
    did not say which message differs (the feed then reads the relay's back)."""


def leaves_messages_needed(after: int, size: int) -> int:
    """How many ``LEAVES`` messages the relay publishes for a checkpoint of ``size``
    after one of ``after``."""
    count = size - after
    return 0 if count <= LEAVES_INLINE else -(-count // LEAVES_INLINE)


class CheckpointMessage(msgspec.Struct):
    size: int
    last_position: int
    checkpoint: str
    frontier: str
    after: int = -1
    leaves: str = ""


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


def checkpoint_messages(
    app: Ledger, stream: str, after_size: int, upto_position: int
) -> list[tuple[int, bytes, dict[str, str]]]:
    """What the relay publishes to the checkpoint subject once it has published the
    events up to ``upto_position`` and the checkpoints up to tree size ``after_size``:
    (tree size published after it, payload, headers), in order: each signed batch's
    ``LEAVES`` messages (if its leaves do not fit in it), then its checkpoint."""
    from ledger import stream as st

    out: list[tuple[int, bytes, dict[str, str]]] = []
    after = after_size
    for batch in signed_batches(app, after_size, upto_position):
        leaves = stored_leaves(app, after, batch.size)
        for first, data in leaves_messages(after, leaves):
            out.append((after, data, {st.MSG_ID: f"{stream}:leaves:{first}", LEAVES: str(first)}))
        headers = {
            st.MSG_ID: f"{stream}:{batch.size}",
            TREE_SIZE: str(batch.size),
            st.POSITION: str(batch.last_position),
        }
        out.append((batch.size, checkpoint_payload(batch, after=after, leaves=leaves), headers))
        after = batch.size
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


def stored_leaves(app: Ledger, start: int, end: int) -> bytes:
    """The stored leaf hashes of leaves ``start`` to ``end - 1``, concatenated."""
    from ledger.store.tree import BLOCK

    if end <= start:
        return b""
    tables, port_cm = _tables_and_port(app)
    with port_cm as port:
        rows = port.all(
            tables.sql(
                f"SELECT {tables.blob('hashes')} FROM {tables.leaves} "
                "WHERE block >= ? AND block <= ? ORDER BY block"
            ),
            (start // BLOCK, (end - 1) // BLOCK),
        )
    data = b"".join(bytes(r[0]) for r in rows)
    skip = (start % BLOCK) * merkle.HASH_SIZE
    return data[skip : skip + (end - start) * merkle.HASH_SIZE]


def checkpoint_payload(batch: Batch, *, after: int = -1, leaves: bytes = b"") -> bytes:
    """The checkpoint message of ``batch``; ``leaves``: the leaf hashes from leaf
    ``after`` to it, when there are at most ``LEAVES_INLINE`` (else published apart)."""
    assert batch.checkpoint is not None
    inline = after >= 0 and len(leaves) <= LEAVES_INLINE * merkle.HASH_SIZE
    return msgspec.json.encode(
        CheckpointMessage(
            size=batch.size,
            last_position=batch.last_position,
            checkpoint=batch.checkpoint,
            frontier=base64.b64encode(batch.frontier).decode(),
            after=after if inline else -1,
            leaves=base64.b64encode(leaves).decode() if inline else "",
        )
    )


def leaves_messages(after: int, leaves: bytes) -> list[tuple[int, bytes]]:
    """(first leaf, payload) of the messages that carry ``leaves`` (from leaf ``after``)
    when they do not fit in the checkpoint message; none when they do."""
    step = LEAVES_INLINE * merkle.HASH_SIZE
    if after < 0 or len(leaves) <= step:
        return []
    return [
        (after + i // merkle.HASH_SIZE, leaves[i : i + step]) for i in range(0, len(leaves), step)
    ]


# --- the consumer's side ------------------------------------------------------------------

REJECTED_PREFIX = "rejected."
"""Rows ``rejected.{consumer}.{kind}`` of the tree's meta table count the messages a
consumer with the ledger's database (the NATS projector: ``views``) did not apply:
``malformed`` (not a ledger event, or not the store's bytes) and ``refused`` (not in
the signed tree: forged, altered, reordered, missing).  ``ledger status`` shows them."""


def record_rejections(app: Ledger, consumer: str, counts: dict[str, int]) -> None:
    """Add ``counts`` (by kind) to the consumer's persisted rejection counts."""
    tables, _ = _tables_and_port(app)
    rows = [(f"{REJECTED_PREFIX}{consumer}.{kind}", n) for kind, n in counts.items() if n]
    if not rows:
        return
    sql = tables.sql(
        f"INSERT INTO {tables.meta} AS m VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = m.value + excluded.value"
    )
    recorder: Any = app.recorder
    with recorder.datastore.transaction(commit=True) as cursor:
        for row in rows:
            cursor.execute(sql, row)


def read_rejections(app: Ledger) -> dict[str, dict[str, int]]:
    """The persisted rejection counts: ``{consumer: {kind: count}}`` (none: ``{}``)."""
    tables, port_cm = _tables_and_port(app)
    with port_cm as port:
        rows = port.all(
            tables.sql(f"SELECT name, value FROM {tables.meta} WHERE name LIKE ?"),
            (f"{REJECTED_PREFIX}%",),
        )
    out: dict[str, dict[str, int]] = {}
    for name, value in rows:
        consumer, _, kind = str(name)[len(REJECTED_PREFIX) :].rpartition(".")
        out.setdefault(consumer, {})[kind] = int(value)
    return out


@dataclass(frozen=True)
class VerifiedCheckpoint:
    size: int
    last_position: int
    root: bytes
    frontier: merkle.Frontier
    after: int = -1
    leaves: bytes = b""
    """The leaf hashes from leaf ``after`` to ``size`` as published (not yet checked)."""


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
        leaves = base64.b64decode(message.leaves, validate=True)
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
    if leaves and (
        len(leaves) != (message.size - message.after) * merkle.HASH_SIZE or message.after < 0
    ):
        leaves = b""  # not usable to locate a difference; the root check stands alone
    return VerifiedCheckpoint(
        message.size,
        message.last_position,
        checkpoint.root_hash,
        frontier,
        message.after if leaves else -1,
        leaves,
    )


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
    received: list[float] = field(default_factory=list)
    """``time.monotonic()`` when each of them was added (``held_since``)."""
    purged_to: int = 0
    """With a stream whose head was dropped by its limits: leaves ``base.size`` to
    ``purged_to - 1`` are in no message any more (the first one there is leaf
    ``purged_to``).  Their hashes come from those the relay published for the next
    checkpoint (``fill``), trusted only once that checkpoint's signed root verifies."""
    filling: merkle.Frontier | None = None
    """``base`` extended with the published hashes of those leaves received so far."""

    @staticmethod
    def _published_range(start: int, end: int, pieces: dict[int, bytes]) -> bytes:
        """The published leaf hashes ``start`` to ``end - 1`` from ``pieces`` (first leaf:
        hashes), or empty if some are not there."""
        out = bytearray()
        at = start
        while at < end:
            for first, data in pieces.items():
                if first <= at < first + len(data) // merkle.HASH_SIZE:
                    out += data[(at - first) * merkle.HASH_SIZE :]
                    at = first + len(data) // merkle.HASH_SIZE
                    break
            else:
                return b""
        return bytes(out[: (end - start) * merkle.HASH_SIZE])

    def locate(
        self, checkpoint: VerifiedCheckpoint, published: dict[int, bytes] | None = None
    ) -> BusVerificationError:
        """The error for leaves that do not add up to ``checkpoint``'s root: the exact
        message, from the leaf hashes the relay published (``published``: the ``LEAVES``
        messages, by first leaf; and those inline in the checkpoint), checked against the
        signed root first; else the range of positions."""
        size, h = checkpoint.size, merkle.HASH_SIZE
        gap = self.gap
        count = size - self.base.size - gap
        pieces = dict(published or {})
        if checkpoint.leaves:
            pieces[checkpoint.after] = checkpoint.leaves
        published_leaves = self._published_range(self.base.size, size, pieces)
        if published_leaves:
            signed = [published_leaves[i : i + h] for i in range(0, len(published_leaves), h)]
            tree = self.base.copy()
            tree.extend(signed)
            if tree.root() == checkpoint.root:
                for j in range(count):
                    if self.leaves[j] != signed[gap + j]:
                        position = self.pending[j][0]
                        leaf = self.base.size + gap + j
                        return BusVerificationError(
                            f"the message at position {position} (leaf {leaf}) is not the "
                            f"event the signed tree of size {size} holds there: forged or "
                            "altered",
                            position=position,
                            leaf=leaf,
                        )
                if gap:
                    return BusVerificationError(
                        f"the leaf hashes first read for leaves {self.base.size}-"
                        f"{self.purged_to - 1} (dropped from the stream's head) are not the "
                        f"signed tree's of size {size}: forged {LEAVES} messages",
                        leaf=self.base.size,
                    )
        first = self.pending[0][0]
        last = self.pending[count - 1][0]
        return TreeMismatch(
            f"the messages at positions {first}-{last} do not add up to the signed tree "
            f"of size {size}: at least one of them was forged or altered",
            position=first,
        )

    @classmethod
    def starting_at(cls, checkpoint: VerifiedCheckpoint | None) -> StreamVerifier:
        return cls(merkle.Frontier() if checkpoint is None else checkpoint.frontier.copy())

    @property
    def verified_size(self) -> int:
        return self.base.size

    @property
    def next_leaf(self) -> int:
        return max(self.base.size, self.purged_to) + len(self.leaves)

    @property
    def held_since(self) -> float | None:
        """``time.monotonic()`` when the oldest event held now was received; None when
        none is held.  Its age is how long the consumer has waited for a checkpoint."""
        return self.received[0] if self.received else None

    @property
    def gap(self) -> int:
        """Leaves between the verified tree and the first one received (a purged head)."""
        return max(0, self.purged_to - self.base.size)

    def fill(self, first_leaf: int, hashes: bytes) -> None:
        """Published leaf hashes (from leaf ``first_leaf``): those of the purged leaves
        not yet filled, in order, are taken; anything else is left.  Not trusted: the
        next checkpoint's root checks them with the leaves received after them."""
        tree = self.filling if self.filling is not None else self.base.copy()
        h = merkle.HASH_SIZE
        if not self.gap or first_leaf > tree.size or len(hashes) % h:
            return
        start = (tree.size - first_leaf) * h
        end = (self.purged_to - first_leaf) * h
        taken = hashes[start:end]
        if taken:
            tree.extend([taken[i : i + h] for i in range(0, len(taken), h)])
            self.filling = tree

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
                expected_leaf=expected,
            )
        self.leaves.append(merkle.leaf_hash(payload))
        self.pending.append((position, item))
        self.received.append(time.monotonic())

    def check(self, checkpoint: VerifiedCheckpoint) -> list[Any]:
        """Verify the leaves received up to ``checkpoint``'s size against its root; the
        items it covers, released in order (nothing if it is older or not reached)."""
        size = checkpoint.size
        if size <= self.base.size or size > self.next_leaf:
            return []
        gap = self.gap
        if gap and size <= self.purged_to:
            # A signed checkpoint within the purged leaves: its frontier is the tree there.
            self.base, self.filling = checkpoint.frontier.copy(), None
            return []
        if gap:
            filled = self.filling.size if self.filling is not None else self.base.size
            if filled < self.purged_to:
                raise BusVerificationError(
                    f"leaves {filled}-{self.purged_to - 1} were dropped from the stream's "
                    f"head and the checkpoint stream does not carry their hashes for the "
                    f"checkpoint of size {size}: the events from leaf {self.purged_to} on "
                    "cannot be verified from there; start at a later position",
                    position=self.pending[0][0] if self.pending else None,
                    leaf=self.purged_to,
                )
            assert self.filling is not None
            tree = self.filling.copy()
        else:
            tree = self.base.copy()
        count = size - tree.size
        tree.extend(self.leaves[:count])
        if tree.root() != checkpoint.root:
            raise self.locate(checkpoint)
        released = [item for _, item in self.pending[:count]]
        del self.pending[:count]
        del self.received[:count]
        del self.leaves[:count]
        self.base, self.filling, self.purged_to = tree, None, 0
        return released

    def plausible_leaves(self, first_leaf: int, hashes: bytes) -> bool:
        """Whether a ``LEAVES`` message could be the relay's for the next checkpoint: a
        whole number of hashes, at most ``LEAVES_INLINE``, starting at or after the
        verified tree, on the relay's ``LEAVES_INLINE`` steps from it."""
        count, extra = divmod(len(hashes), merkle.HASH_SIZE)
        return (
            not extra
            and 0 < count <= LEAVES_INLINE
            and first_leaf >= self.base.size
            and (first_leaf - self.base.size) % LEAVES_INLINE == 0
        )


class CheckpointFeed:
    """Reads the checkpoint stream for a ``StreamVerifier``: where a consumer starts,
    then each checkpoint published since, in stream order.  ``LEAVES`` messages are
    counted, not kept (see the module doc)."""

    def __init__(self, jsm: JetStreamManager, stream: str, key: VerifierKey):
        self.jsm, self.stream, self.key = jsm, checkpoint_stream(stream), key
        self.seq = 1
        """The next message of the checkpoint stream to read."""
        self.run_start = 1
        """The first message after the last checkpoint read (where the ``LEAVES``
        messages of the next one are)."""
        self._run_leaves = 0
        """Plausible ``LEAVES`` messages read since ``run_start``."""
        self.ahead = 0
        """The size of a checkpoint read whose events have not all arrived yet (0: none)."""
        self.ignored_leaves = 0
        """``LEAVES`` messages read that belong to no checkpoint: malformed, stale, off
        the relay's steps, or more than the checkpoint after them needs (forged, by
        whoever holds the relay's key); counted and logged, never kept."""

    async def start(self, next_leaf: int) -> VerifiedCheckpoint | None:
        """Position the feed for a consumer whose first message is leaf ``next_leaf``;
        the signed checkpoint at or before it (None: verify from the empty tree).
        Errors from the stream (none there yet) propagate."""
        from ledger import stream as st

        def beyond(msg: Any) -> bool | None:
            size = st.parse_position(st.header(msg, TREE_SIZE))
            return None if size is None else size > next_leaf

        seq = await st.first_seq_where(self.jsm, self.stream, beyond)
        # The LEAVES messages published just before that checkpoint belong to it.
        msg = None
        while seq > 1:
            msg = await st.get_msg(self.jsm, self.stream, seq - 1)
            if msg is None or st.header(msg, LEAVES) is None:
                break
            seq -= 1
            msg = None
        self.seq = self.run_start = seq
        if next_leaf > 0 and msg is not None:
            return open_checkpoint_message(msg.data or b"", self.key)
        return None

    async def poll(
        self, verifier: StreamVerifier
    ) -> AsyncIterator[tuple[VerifiedCheckpoint, list[Any]]]:
        """Read what was published since and verify what it covers: each checkpoint
        with the items it released (``BusVerificationError`` for what does not belong)."""
        from ledger import stream as st

        while verifier.pending:
            msg = await st.get_msg(self.jsm, self.stream, self.seq)
            if msg is None:
                break
            first = st.header(msg, LEAVES)
            if first is not None:
                if first.isdigit() and len(first) <= 19:
                    plausible = verifier.plausible_leaves(int(first), msg.data or b"")
                else:
                    plausible = False
                if plausible:
                    self._run_leaves += 1
                    verifier.fill(int(first), msg.data or b"")
                else:
                    self._ignore(1, f"seq {self.seq} ({LEAVES} {first[:24]!r})")
                self.seq += 1
                continue
            checkpoint = open_checkpoint_message(msg.data or b"", self.key)
            if checkpoint.size > verifier.next_leaf:
                self.ahead = checkpoint.size
                break  # its events have not all arrived yet
            self.ahead = 0
            needed = leaves_messages_needed(verifier.verified_size, checkpoint.size)
            if self._run_leaves > needed:
                self._ignore(
                    self._run_leaves - needed,
                    f"seq {self.run_start}-{self.seq - 1}, before the checkpoint of size "
                    f"{checkpoint.size}, which needs {needed}",
                )
            checkpoint_seq = self.seq
            self.seq += 1
            if checkpoint.leaves:
                verifier.fill(checkpoint.after, checkpoint.leaves)
            try:
                released = verifier.check(checkpoint)
            except TreeMismatch:
                published = await self._published_before(checkpoint_seq, verifier, checkpoint)
                raise verifier.locate(checkpoint, published) from None
            self.run_start, self._run_leaves = self.seq, 0
            yield checkpoint, released

    def _ignore(self, count: int, where: str) -> None:
        self.ignored_leaves += count
        log.warning(
            "%d %s message(s) in %s belong to no checkpoint (%s): not kept; whoever wrote "
            "them holds the relay's credential",
            count,
            LEAVES,
            self.stream,
            where,
        )

    async def _published_before(
        self, checkpoint_seq: int, verifier: StreamVerifier, checkpoint: VerifiedCheckpoint
    ) -> dict[int, bytes]:
        """The relay's ``LEAVES`` messages for ``checkpoint`` (at ``checkpoint_seq``),
        read back from just before it: at most the number it needs plus
        ``LOCATE_SCAN_SLACK``, the newest of each first leaf."""
        from ledger import stream as st

        needed = leaves_messages_needed(verifier.verified_size, checkpoint.size)
        found: dict[int, bytes] = {}
        seq = checkpoint_seq - 1
        while seq >= self.run_start and checkpoint_seq - seq <= needed + LOCATE_SCAN_SLACK:
            msg = await st.get_msg(self.jsm, self.stream, seq)
            seq -= 1
            first = st.header(msg, LEAVES) if msg is not None else None
            if msg is None or first is None or not first.isdigit() or len(first) > 19:
                continue
            data = msg.data or b""
            if verifier.plausible_leaves(int(first), data) and int(first) < checkpoint.size:
                found.setdefault(int(first), data)
                if len(found) >= needed:
                    break
        return found


DEFAULT_STALL_TIMEOUT = 300.0
"""Seconds a verifying consumer waits at its bound of held events for a checkpoint
(``LEDGER_VERIFY_STALL_TIMEOUT``) before it stops with ``HoldStalled``."""


class HoldError(RuntimeError):
    """A verifying consumer cannot go on within its bound of held events (``HoldBound``):
    the next checkpoint is further away than the bound."""


class HoldStalled(HoldError):
    """A verifying consumer waited at its bound for longer than its stall timeout and no
    signed checkpoint covered what it holds."""


@dataclass
class HoldBound:
    """How many events a verifying consumer (``subscribe(verify=True)``, the NATS
    projector) holds while no signed checkpoint covers them, and what it does at that
    bound: one rule for both (``LEDGER_VERIFY_MAX_PENDING``,
    ``LEDGER_VERIFY_STALL_TIMEOUT``).

    A genuine ledger signs a checkpoint at least every ``CHECKPOINT_EVERY`` leaves (the
    default bound), so a consumer at the bound has the checkpoint covering what it holds
    coming: it fetches no more (``room``) and waits for it.  Only forged events (by
    whoever holds the relay's credential), a relay that stopped publishing checkpoints or
    a record from before that rule keep it there.  The last raises ``HoldError`` at once,
    naming the bound it needs (the next checkpoint, already read, shows how far away it
    is).  For the others the stall is logged as a warning when it begins, and after
    ``stall_timeout`` seconds with no checkpoint covering anything held it is logged at
    error level and raised (``HoldStalled``): a consumer that silently stops delivering
    is worse than one that stops with a reason."""

    limit: int
    stream: str
    logger: logging.Logger
    who: str
    """What holds the events, for the messages ("a verifying subscriber")."""
    setting: str
    """How to raise the bound, for the messages."""
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT
    stalled_since: float | None = None
    """``time.monotonic()`` when the consumer reached the bound with the verified tree
    where it still is; None while below the bound."""
    _stalled_at: int = -1

    def room(self, verifier: StreamVerifier) -> int:
        """How many more messages may be fetched now (0 at the bound)."""
        return max(0, self.limit - len(verifier.pending))

    def at_bound(self, verifier: StreamVerifier, feed: CheckpointFeed, position: int) -> bool:
        """Whether ``verifier`` holds as many events as the bound allows (nothing more may
        be fetched); ``HoldError`` when the next checkpoint is beyond the bound,
        ``HoldStalled`` after ``stall_timeout`` seconds there.  ``position``: the newest
        one verified, for the messages."""
        from ledger.store.tree import CHECKPOINT_EVERY

        held = len(verifier.pending)
        if held < self.limit:
            self.stalled_since = None
            return False
        beyond = feed.ahead - verifier.verified_size
        if beyond > self.limit:
            raise HoldError(
                f"the next signed checkpoint in {self.stream} (tree size {feed.ahead}) "
                f"covers {beyond} events past the verified tree, more than the "
                f"{self.limit} {self.who} holds (max_pending): a record from before "
                f"checkpoints were signed every {CHECKPOINT_EVERY:,} events. "
                f"Set {self.setting} to at least {beyond}"
            )
        now = time.monotonic()
        if self.stalled_since is None or self._stalled_at != verifier.verified_size:
            self._stalled_at, self.stalled_since = verifier.verified_size, now
            self.logger.warning(
                "%s holds %d events of %s past position %d that no signed checkpoint "
                "covers (max_pending); fetching no more until one does: forged events "
                "(whoever wrote them holds the relay's credential) or a relay not "
                "publishing checkpoints",
                self.who,
                held,
                self.stream,
                position,
            )
            return True
        waited = now - self.stalled_since
        if self.stall_timeout is not None and waited >= self.stall_timeout:
            message = (
                f"{self.who} has held {held} events of {self.stream} past position "
                f"{position} for {waited:.0f} s, its bound (max_pending), and no signed "
                "checkpoint covers them: forged events (whoever published them holds the "
                "relay's credential) or a relay that publishes no checkpoints. Check the "
                "relay (`ledger status`: its position and the stream's) and the messages "
                f"after position {position} in {self.stream}; nothing past it was handed "
                "out or applied"
            )
            self.logger.error("%s", message)
            raise HoldStalled(message)
        return True


async def prime(
    jsm: JetStreamManager,
    stream: str,
    key: VerifierKey,
    next_leaf: int,
    first_seq: int,
    *,
    purged_head: bool = False,
) -> tuple[StreamVerifier, CheckpointFeed]:
    """A verifier for a consumer whose first message (stream sequence ``first_seq``) is
    leaf ``next_leaf``: from the signed checkpoint at or before it (its frontier), then
    the messages in between, read from the stream directly (their items are None).
    With ``purged_head``, leaves between that checkpoint and the stream's first event
    (dropped by the stream's limits or age) are taken from the leaf hashes published
    for the next checkpoint (``StreamVerifier.purged_to``); without it their absence
    raises ``BusVerificationError`` (leaves missing) when the stream is read.  Errors
    from the checkpoint stream (none yet) propagate."""
    from ledger import stream as st

    feed = CheckpointFeed(jsm, stream, key)
    start = await feed.start(next_leaf)
    verifier = StreamVerifier.starting_at(start)
    if verifier.next_leaf < next_leaf:
        seq = await st.seq_for_position(jsm, stream, start.last_position + 1 if start else 1)
        if purged_head:
            first = await first_event_leaf(jsm, stream)
            if first is not None and first[0] == seq and verifier.next_leaf < first[1]:
                verifier.purged_to = min(first[1], next_leaf)
        while verifier.next_leaf < next_leaf and seq < first_seq:
            msg = await st.get_msg(jsm, stream, seq)
            seq += 1
            position = st.parse_position(st.header(msg, st.POSITION)) if msg else None
            if msg is None or position is None:
                continue
            verifier.add(st.header(msg, LEAF), position, msg.data or b"", None)
    return verifier, feed


async def first_event_leaf(
    jsm: JetStreamManager, stream: str, *, scan_limit: int = 1000
) -> tuple[int, int] | None:
    """(stream sequence, leaf index) of the stream's first message that carries a
    position and a leaf index (looking at most ``scan_limit`` messages past junk), or
    None."""
    from ledger import stream as st

    info = await jsm.stream_info(stream)
    first = max(info.state.first_seq, 1)
    for seq in range(first, min(info.state.last_seq, first + scan_limit - 1) + 1):
        msg = await st.get_msg(jsm, stream, seq)
        if msg is None or st.parse_position(st.header(msg, st.POSITION)) is None:
            continue
        leaf = st.header(msg, LEAF)
        if leaf is not None and leaf.isdigit() and len(leaf) <= 19:
            return seq, int(leaf)
        return None
    return None
