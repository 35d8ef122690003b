"""The record proves itself: building the tree, checkpoints, proofs, verification.

What ``ledger key``, ``checkpoint``, ``prove``, ``verify`` and ``verify-proof`` call.
The tree lives in the store (``ledger.store.tree``); the hashing and proof algebra in
``ledger.merkle``; the signed notes in ``ledger.checkpoint``.  Everything reads through
one transaction (``recorder.tree_port()``), so a verification sees one consistent
snapshot while appends go on.

``verify_proof`` needs no database: an auditor checks a proof handed to them with the
ledger's public key alone.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
import operator
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledger import merkle
from ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    SigningKey,
    VerifierKey,
    load_signing_key,
    open_checkpoint,
)
from ledger.errors import InputError, LedgerError

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.store.tree import Port, TreeTables

PROOF_FORMAT = "ledger-inclusion-proof/1"
MAX_PROOF_BYTES = 16 * 1024 * 1024
"""A proof file larger than this is refused unread (an event is at most a few MB)."""
BUILD_CHUNK = 50_000
VERIFY_PAGE = 4096


class VerificationError(LedgerError):
    """The record does not verify: ``position`` names the first place it fails."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "position": self.position}


def signing_key(settings: Settings) -> SigningKey:
    """The key that signs checkpoints: ``LEDGER_SIGNING_KEY`` (must exist), else the
    home's ``signing.key``, made on first use (mode 0600)."""
    if settings.signing_key is not None:
        try:
            return load_signing_key(settings.signing_key, create_name=None)
        except CheckpointError as exc:
            raise InputError(f"LEDGER_SIGNING_KEY: {exc}", field="LEDGER_SIGNING_KEY") from None
    name = key_name(settings)
    try:
        return load_signing_key(settings.signing_key_path, create_name=name)
    except CheckpointError as exc:
        raise InputError(str(exc), field="LEDGER_SIGNING_KEY") from None


def key_name(settings: Settings) -> str:
    """The name of a key made here: ``LEDGER_ORIGIN`` (refused naming it, not the key
    file, when it cannot be a key name), else ``export-control-ledger/<random>``."""
    from ledger.checkpoint import check_key_name

    if settings.origin is None:
        return f"export-control-ledger/{uuid.uuid4().hex[:12]}"
    try:
        return check_key_name(settings.origin)
    except CheckpointError:
        raise InputError(
            f"LEDGER_ORIGIN={settings.origin!r} cannot name a key: it must be non-empty, "
            "without spaces, newlines or '+' (e.g. example.org/export-ledger)",
            field="LEDGER_ORIGIN",
        ) from None


def verifier_key(text: str) -> VerifierKey:
    """A pinned verifier key given on the command line (the key itself or a file)."""
    from pathlib import Path

    candidate = text.strip()
    if "+" not in candidate or "\n" in candidate:
        try:
            candidate = Path(text).read_text()[:4096].strip()
        except OSError as exc:
            raise InputError(f"cannot read the key {text}: {exc.strerror}", field="--key") from None
        except UnicodeDecodeError:
            raise InputError(
                f"--key: {text} holds no key (it is not UTF-8 text); give the key or a file "
                "holding what `ledger key` prints",
                field="--key",
            ) from None
    try:
        return VerifierKey.parse(candidate)
    except CheckpointError as exc:
        raise InputError(f"--key: {exc}", field="--key") from None


def _tables(app: Ledger) -> TreeTables:
    tables: TreeTables = app.recorder.tree  # type: ignore[attr-defined]
    return tables


def _port(app: Ledger, *, write: bool = False) -> Any:
    return app.recorder.tree_port(write=write)  # type: ignore[attr-defined]


# --- building -----------------------------------------------------------------------------


def pending(app: Ledger) -> int:
    """How many events stored before the tree existed it does not cover yet."""
    with _port(app) as port:
        return _tables(app).pending(port)


def build_tree(
    app: Ledger,
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = BUILD_CHUNK,
) -> int:
    """Build the tree over the events of a ledger from before it (an upgrade).

    Works in chunks, each its own write transaction with a signed checkpoint: stopped
    at any point, it resumes where the last chunk committed.  ``progress(done, total)``
    is called after each chunk.  Returns how many events were added.
    """
    from eventsourcing.persistence import OperationalError

    tables = _tables(app)
    payload_of = app.msgspec_mapper.payload
    signer = app.signing_key()
    total = pending(app)
    done = 0
    while True:
        try:
            with _port(app, write=True) as port:
                added = tables.build_chunk(port, payload_of, signer, chunk)
        except OperationalError as exc:  # another writer (SQLite: busy); try again
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            continue
        if added == 0:
            return done
        done += added
        if progress is not None:
            progress(done, max(total, done))


# --- for consumers of the log (the relay, subscribers) ----------------------------------


def leaf_indexes(app: Ledger, positions: Sequence[int]) -> list[int | None]:
    """The leaf index of each position (None: not in the tree), in one read.

    On SQLite leaf = position - 1; on PostgreSQL positions may skip numbers, so the
    batch rows map them.  What a message's leaf index header is made from."""
    if not positions:
        return []
    tables = _tables(app)
    low, high = min(positions), max(positions)
    with _port(app) as port:
        first = tables.batch_of_position(port, low)
        rows = port.all(
            tables.sql(
                f"SELECT first_leaf, first_position, size FROM {tables.batches} "
                "WHERE first_position >= ? AND first_position <= ? ORDER BY first_position"
            ),
            (low, high),
        )
    runs = [(b.first_position, b.first_leaf, b.size) for b in [first] if b is not None]
    runs += [(int(r[1]), int(r[0]), int(r[2])) for r in rows]
    starts = [r[0] for r in runs]
    out: list[int | None] = []
    for p in positions:
        i = bisect.bisect_right(starts, p) - 1
        if i < 0:
            out.append(None)
            continue
        first_position, first_leaf, size = runs[i]
        leaf = first_leaf + (p - first_position)
        out.append(leaf if leaf < size else None)
    return out


def signed_checkpoints(app: Ledger, *, after_size: int = 0) -> list[tuple[int, str]]:
    """The signed checkpoints of trees larger than ``after_size``, oldest first, as
    (tree size, note): what the relay publishes for verifying consumers."""
    tables = _tables(app)
    with _port(app) as port:
        rows = port.all(
            tables.sql(
                f"SELECT size, checkpoint FROM {tables.batches} "
                "WHERE size > ? AND checkpoint IS NOT NULL ORDER BY first_leaf"
            ),
            (after_size,),
        )
    return [(int(size), str(note)) for size, note in rows]


# --- checkpoints and proofs ---------------------------------------------------------------


def latest_checkpoint(app: Ledger) -> str | None:
    """The newest signed checkpoint (None for an empty ledger)."""
    with _port(app) as port:
        batch = _tables(app).last_signed_batch(port)
    return None if batch is None else batch.checkpoint


def _open(note: str, key: VerifierKey, what: str) -> Checkpoint:
    try:
        return open_checkpoint(note, key, origin=key.name)
    except CheckpointError as exc:
        raise VerificationError(f"{what}: {exc}") from None


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def prove(
    app: Ledger, event_id: uuid.UUID, *, checkpoint: str | None = None, key: VerifierKey
) -> dict[str, Any]:
    """An inclusion proof of the event against the latest checkpoint (or ``checkpoint``,
    a signed note an auditor kept), checked before it is returned."""
    from ledger.store.tree import StoredTree, TreeError

    entry = app.index.lookup([event_id]).get(event_id)
    if entry is None:
        raise InputError(f"no event {event_id} in the ledger", field="EVENT_ID")
    tables = _tables(app)
    with _port(app) as port:
        if checkpoint is None:
            latest = tables.last_signed_batch(port)
            if latest is None or latest.checkpoint is None:
                raise VerificationError("the ledger has no signed checkpoint yet")
            note = latest.checkpoint
        else:
            note = checkpoint
        target = _open(note, key, "the checkpoint")
        batch = tables.batch_of_position(port, entry.position)
        if batch is None:
            raise VerificationError(
                f"position {entry.position} is not in the Merkle tree", entry.position
            )
        leaf = batch.first_leaf + (entry.position - batch.first_position)
        if leaf >= target.size:
            raise VerificationError(
                f"event {event_id} (position {entry.position}) was recorded after the "
                f"checkpoint of size {target.size}",
                entry.position,
            )
        row = port.one(
            tables.sql(
                f"SELECT {tables.blob('state')} FROM {tables.events} WHERE {tables.position} = ?"
            ),
            (entry.position,),
        )
        if row is None:
            raise VerificationError(f"position {entry.position}: the event is missing")
        data = app.msgspec_mapper.payload(bytes(row[0]))
        tree = StoredTree(tables, port)
        try:
            path = merkle.inclusion_proof(tree, leaf, target.size)
        except TreeError as exc:
            raise VerificationError(f"the stored tree cannot prove it: {exc}") from None
    proof = {
        "format": PROOF_FORMAT,
        "event_id": str(event_id),
        "position": entry.position,
        "leaf_index": leaf,
        "tree_size": target.size,
        "event": data.decode(),
        "leaf_hash": _b64(merkle.leaf_hash(data)),
        "audit_path": [_b64(h) for h in path],
        "checkpoint": note,
    }
    verify_proof(proof, key)  # a proof that does not verify is never handed out
    return proof


@dataclass(frozen=True)
class ProofResult:
    origin: str
    tree_size: int
    leaf_index: int
    event_id: str | None


def verify_proof(proof: Any, key: VerifierKey) -> ProofResult:
    """Check an inclusion proof (``prove``'s JSON) with the public key alone."""
    if not isinstance(proof, dict) or proof.get("format") != PROOF_FORMAT:
        raise InputError(f"not a ledger inclusion proof (format {PROOF_FORMAT})")
    try:
        index = proof["leaf_index"]
        size = proof["tree_size"]
        note = proof["checkpoint"]
        path_text = proof["audit_path"]
    except KeyError as exc:
        raise InputError(f"the proof has no {exc.args[0]}") from None
    if not (isinstance(index, int) and isinstance(size, int) and isinstance(note, str)):
        raise InputError("leaf_index and tree_size are integers and checkpoint is a string")
    if not isinstance(path_text, list) or len(path_text) > 64:
        raise InputError("audit_path is a list of at most 64 hashes")
    try:
        path = [base64.b64decode(h, validate=True) for h in path_text]
        given_leaf = proof.get("leaf_hash")
        leaf_from_hash = None if given_leaf is None else base64.b64decode(given_leaf, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise InputError("the proof's hashes are not base64") from None
    if any(len(h) != merkle.HASH_SIZE for h in path):
        raise InputError("the audit path's hashes are 32 bytes")
    event = proof.get("event")
    if event is not None:
        if not isinstance(event, str):
            raise InputError("event is the event's JSON line, as a string")
        leaf = merkle.leaf_hash(event.encode())
        if leaf_from_hash is not None and leaf_from_hash != leaf:
            raise VerificationError("the proof's leaf_hash is not the hash of its event")
    elif leaf_from_hash is not None and len(leaf_from_hash) == merkle.HASH_SIZE:
        leaf = leaf_from_hash
    else:
        raise InputError("the proof has neither the event nor its 32-byte leaf_hash")
    checkpoint = _open(note, key, "the proof's checkpoint")
    if checkpoint.size != size:
        raise VerificationError(
            f"the proof is for a tree of {size} events, its checkpoint for {checkpoint.size}"
        )
    try:
        merkle.verify_inclusion(index, size, leaf, path, checkpoint.root_hash)
    except merkle.ProofError as exc:
        raise VerificationError(f"the inclusion proof does not verify: {exc}") from None
    event_id = proof.get("event_id")
    return ProofResult(
        checkpoint.origin, size, index, event_id if isinstance(event_id, str) else None
    )


def load_proof(data: bytes) -> Any:
    if len(data) > MAX_PROOF_BYTES:
        raise InputError(f"the proof file is larger than {MAX_PROOF_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"the proof is not JSON: {exc}") from None


def consistency(app: Ledger, old_note: str, *, key: VerifierKey) -> dict[str, Any]:
    """Prove that the ledger today extends the one ``old_note`` (a kept checkpoint) saw."""
    from ledger.store.tree import StoredTree, TreeError

    old = _open(old_note, key, "the old checkpoint")
    tables = _tables(app)
    with _port(app) as port:
        latest = tables.last_signed_batch(port)
        if latest is None or latest.checkpoint is None:
            raise VerificationError("the ledger has no signed checkpoint")
        new = _open(latest.checkpoint, key, "the ledger's latest checkpoint")
        if old.size > new.size:
            raise VerificationError(
                f"the old checkpoint has {old.size} events, more than the ledger's "
                f"{new.size}: events were removed",
                new.size + 1,
            )
        try:
            path = merkle.consistency_proof(StoredTree(tables, port), old.size, new.size)
        except TreeError as exc:
            raise VerificationError(f"the stored tree cannot prove it: {exc}") from None
    try:
        merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, path)
    except merkle.ProofError as exc:
        raise VerificationError(
            f"the ledger is not an append-only extension of the checkpoint of size "
            f"{old.size}: {exc}"
        ) from None
    return {
        "old_size": old.size,
        "new_size": new.size,
        "consistency_path": [_b64(h) for h in path],
        "old_checkpoint": old_note,
        "new_checkpoint": latest.checkpoint,
    }


# --- full verification --------------------------------------------------------------------


@dataclass
class Report:
    events: int = 0
    checkpoints: int = 0
    tree_size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    checkpoint: str | None = None
    unsigned_after: int | None = None
    notes: list[str] = field(default_factory=list)


def verify(app: Ledger, *, key: VerifierKey) -> Report:
    """Recompute every leaf from the stored events and check it against the stored tree,
    every stored node, every batch's frontier and checkpoint, and the signature of every
    checkpoint.  Raises ``VerificationError`` naming the first position that fails.

    The hot path works a page of ``VERIFY_PAGE`` rows at a time with no Python step per
    row beyond its leaf hash: the run of a page in a batch is checked by its two end
    positions (positions are unique and sorted, so the right ends mean no gap and no
    extra row), its leaf hashes against the stored ones as one joined ``bytes``
    comparison, and each level of new nodes arrives in one call; only a failure looks row
    by row, to name the first position that fails (docs/performance.md, "Merkle tree")."""
    from ledger.app import gc_paused
    from ledger.store.tree import BLOCK, BLOCK_LEVEL

    tables = _tables(app)
    mapper = app.msgspec_mapper
    plain = not mapper.cipher and not mapper.compressor  # stored bytes are the JSON line
    payload_of = mapper.payload
    report = Report()

    computed_nodes: dict[int, bytearray] = {}

    def keep(level: int, index: int, h: bytes) -> None:
        computed_nodes.setdefault(level, bytearray()).extend(h)

    def keep_level(level: int, first: int, hashes: list[bytes]) -> None:
        computed_nodes.setdefault(level, bytearray()).extend(b"".join(hashes))

    frontier = merkle.Frontier(on_node=keep, on_nodes=keep_level, min_level=BLOCK_LEVEL)
    with _port(app) as port, gc_paused():
        # When the stored positions are exactly those the batches give the leaves (a few
        # counts say so), the rows are read without their position: on failure or doubt,
        # with it, and every run of a page is checked by its end positions.
        exact = _positions_are_the_trees(tables, port)
        payload = operator.itemgetter(0 if exact else 1)
        pages = port.pages(
            f"SELECT {'' if exact else tables.position + ', '}{tables.blob('state')} "
            f"FROM {tables.events} ORDER BY {tables.position}",
            VERIFY_PAGE,
        )
        batches = tables.batches_from(port)
        stored_leaves = _LeafStream(
            port.pages(
                f"SELECT block, {tables.blob('hashes')} FROM {tables.leaves} ORDER BY block",
                max(1, VERIFY_PAGE // BLOCK),
            )
        )
        batch = next(batches, None)
        leaf = 0  # the next leaf index
        for page in pages:
            payloads = map(payload, page)
            hashes = merkle.leaf_hashes(payloads if plain else map(payload_of, payloads))
            count = len(page)
            i = 0
            while i < count:
                if batch is None:
                    position = None if exact else page[i][0]
                    raise VerificationError(
                        f"position {position}: an event that no checkpoint covers "
                        "(a row inserted behind the ledger's back, or the tree not built)",
                        position,
                    )
                # The rows of this page that fall in this batch.
                take = min(batch.size - leaf, count - i)
                expected_first = batch.first_position + (leaf - batch.first_leaf)
                if not exact and (
                    page[i][0] != expected_first
                    or page[i + take - 1][0] != expected_first + take - 1
                ):
                    _name_position_gap([r[0] for r in page[i : i + take]], expected_first)
                mine = hashes if take == count else hashes[i : i + take]
                stored = stored_leaves.take(take)
                if stored != b"".join(mine):
                    positions = (
                        list(range(expected_first, expected_first + take))
                        if exact
                        else [r[0] for r in page[i : i + take]]
                    )
                    _name_leaf_mismatch(stored, mine, positions, leaf)
                frontier.extend(mine)
                leaf += take
                i += take
                if leaf == batch.size:
                    _check_batch(batch, frontier, key, report)
                    batch = next(batches, None)
        if batch is not None:
            missing = batch.first_position + (leaf - batch.first_leaf)
            raise VerificationError(
                f"position {missing}: the event is missing (the tree has {batch.size} "
                f"events, the store {leaf})",
                missing,
            )
        if stored_leaves.take_rest():
            raise VerificationError(
                f"the stored tree has more leaves than the {leaf} events (tree tables edited)"
            )
        _check_nodes(tables, port, computed_nodes, BLOCK_LEVEL)
    report.events = leaf
    report.tree_size = frontier.size
    report.root = frontier.root()
    return report


def _positions_are_the_trees(tables: TreeTables, port: Port) -> bool:
    """True if the stored events' positions are exactly those the batches give the leaves
    (leaf ``i`` of a batch at ``first_position + i - first_leaf``), in leaf order.

    Positions are unique integers: when the batches' position ranges increase, each
    range holds as many rows as it has numbers, and the table holds no more rows than
    that, the rows in position order are those positions and no others.  Counted by
    SQL over maximal runs of adjacent ranges (one run on SQLite: the table's size, its
    first and its last position), with no row read."""
    runs: list[list[int]] = []
    size = 0
    for first_leaf, first_position, batch_size in port.stream(
        f"SELECT first_leaf, first_position, size FROM {tables.batches} ORDER BY first_leaf"
    ):
        first_leaf, first_position, batch_size = (
            int(first_leaf),
            int(first_position),
            int(batch_size),
        )
        if batch_size <= size:
            return False
        low = first_position + (size - first_leaf)
        high = first_position + (batch_size - 1 - first_leaf)
        if runs and low == runs[-1][1] + 1:
            runs[-1][1] = high
        elif runs and low <= runs[-1][1]:
            return False
        else:
            runs.append([low, high])
        size = batch_size
    row = port.one(f"SELECT count(*) FROM {tables.events}")
    if row is None or int(row[0]) != size:
        return False
    if not runs:
        return True
    if len(runs) == 1:  # all rows inside [low, high], as many as its numbers
        low, high = runs[0]
        first = port.one(f"SELECT min({tables.position}) FROM {tables.events}")
        last = port.one(f"SELECT max({tables.position}) FROM {tables.events}")
        return first is not None and last is not None and (first[0], last[0]) == (low, high)
    for low, high in runs:
        row = port.one(
            tables.sql(
                f"SELECT count(*) FROM {tables.events} WHERE {tables.position} >= ? "
                f"AND {tables.position} <= ?"
            ),
            (low, high),
        )
        if row is None or int(row[0]) != high - low + 1:
            return False
    return True


class _LeafStream:
    """The stored leaf hashes, read a page of blocks at a time, handed out by count."""

    def __init__(self, pages: Iterator[list[tuple[Any, ...]]]):
        self.pages = pages
        self.buffer = bytearray()
        self.next_block = 0

    def _fill(self, need: int) -> None:
        while len(self.buffer) < need:
            rows = next(self.pages, None)
            if rows is None:
                return
            first = self.next_block
            numbers = [r[0] for r in rows]
            data = [r[1] for r in rows]
            if numbers != list(range(first, first + len(rows))) or any(
                len(d) % merkle.HASH_SIZE for d in data
            ):
                for expected, (number, block) in enumerate(zip(numbers, data, strict=True), first):
                    if number != expected or len(block) % merkle.HASH_SIZE:
                        raise VerificationError(
                            f"the stored tree's leaf block {number} is out of place or "
                            f"malformed (tree tables edited; expected block {expected})"
                        )
            self.next_block += len(rows)
            self.buffer += b"".join(data)

    def take(self, count: int) -> bytes:
        need = count * merkle.HASH_SIZE
        self._fill(need)
        out = bytes(self.buffer[:need])
        del self.buffer[:need]
        return out

    def take_rest(self) -> bytes:
        self._fill(1 << 62)
        return bytes(self.buffer)


def _name_position_gap(run: list[int], expected_first: int) -> None:
    expected = expected_first
    for p in run:
        if p > expected:
            raise VerificationError(f"position {expected}: the event is missing", expected)
        if p < expected:
            raise VerificationError(
                f"position {p}: an event the tree does not have (a row inserted)", p
            )
        expected += 1
    raise AssertionError("unreachable")  # pragma: no cover


def _name_leaf_mismatch(stored: bytes, mine: list[bytes], run: list[int], first_leaf: int) -> None:
    for j, h in enumerate(mine):
        if stored[j * merkle.HASH_SIZE : (j + 1) * merkle.HASH_SIZE] != h:
            raise VerificationError(
                f"position {run[j]} (leaf {first_leaf + j}): the stored event's bytes are "
                "not those the Merkle tree recorded (the event, or the tree, was edited)",
                run[j],
            )
    raise VerificationError(
        f"the stored tree lacks leaves from leaf {first_leaf + len(stored) // 32}",
        run[len(stored) // 32] if len(stored) // 32 < len(run) else None,
    )


def _check_batch(batch: Any, frontier: merkle.Frontier, key: VerifierKey, report: Report) -> None:
    if batch.frontier != frontier.to_bytes():
        raise VerificationError(
            f"position {batch.last_position}: the stored tree state after it does not match "
            "the events (tree tables edited)",
            batch.last_position,
        )
    if batch.checkpoint is None:
        report.unsigned_after = report.unsigned_after or batch.first_position
        return
    report.unsigned_after = None
    checkpoint = _open(batch.checkpoint, key, f"the checkpoint of size {batch.size}")
    if checkpoint.size != batch.size or checkpoint.root_hash != frontier.root():
        raise VerificationError(
            f"position {batch.last_position}: the signed checkpoint of size {checkpoint.size} "
            f"does not match the events up to here (size {frontier.size})",
            batch.last_position,
        )
    report.checkpoints += 1
    report.checkpoint = batch.checkpoint


def _check_nodes(
    tables: TreeTables, port: Port, computed: dict[int, bytearray], min_level: int
) -> None:
    """Every stored node equals the one recomputed; none is missing or extra.

    One comparison of the stored (level, idx) keys and of the joined hashes against the
    computed ones; only if they differ are the rows walked to name the first that does."""
    rows = port.all(
        f"SELECT level, idx, {tables.blob('hash')} FROM {tables.nodes} ORDER BY level, idx"
    )
    levels = sorted(computed)
    counts = [len(computed[lv]) // merkle.HASH_SIZE for lv in levels]
    expected_levels = list(itertools.chain.from_iterable(map(itertools.repeat, levels, counts)))
    expected_idxs = list(itertools.chain.from_iterable(map(range, counts)))
    if (
        [r[0] for r in rows] == expected_levels
        and [r[1] for r in rows] == expected_idxs
        and b"".join([r[2] for r in rows]) == b"".join([computed[lv] for lv in levels])
    ):
        return
    _name_node_mismatch(rows, computed, min_level)


def _name_node_mismatch(
    rows: list[tuple[Any, ...]], computed: dict[int, bytearray], min_level: int
) -> None:
    level_of_next = min_level
    expected = computed.get(level_of_next, bytearray())
    index = 0
    for level, idx, h in rows:
        level, idx, h = int(level), int(idx), bytes(h)
        while level > level_of_next:
            if index * 32 != len(expected):
                break
            level_of_next += 1
            expected = computed.get(level_of_next, bytearray())
            index = 0
        if level != level_of_next or idx != index:
            raise VerificationError(
                f"the stored tree has a node at level {level}, index {idx} that the events "
                "do not make (tree tables edited)"
            )
        if expected[index * 32 : index * 32 + 32] != h:
            first = idx << level
            raise VerificationError(
                f"the stored tree's node over leaves {first}-{first + (1 << level) - 1} "
                "does not match the events (tree tables edited)"
            )
        index += 1
    missing = index * 32 != len(expected) or any(
        len(v) for lv, v in computed.items() if lv > level_of_next
    )
    if missing:
        raise VerificationError("nodes of the stored tree are missing (tree tables edited)")


# --- the stored views -------------------------------------------------------------------


def verify_views(app: Ledger, *, instants: int = 4) -> dict[str, int]:
    """Check that the stored views answer exactly what a fresh fold of the events answers.

    The stored views are first brought up to the store's head (as any query does); then
    every view (licences, parties, measures, commitments, asymmetry, findings) is asked
    at ``instants`` effective times spread over the record (and now), as known now, of
    both paths: ``Views(mode="stored")`` and ``Views(mode="fold")``.  Raises
    ``VerificationError`` naming the first view, time and row that differ; returns the
    number of rows compared per view.
    """
    import msgspec

    from ledger.projections import api
    from ledger.projections.query import Views
    from ledger.times import now

    stored, fold = Views(app, mode="stored"), Views(app, mode="fold")
    stored.catch_up()
    times = [now()]
    effective = sorted(
        {e.event.effective_at for e in app.log(order="recorded", include_retracted=True)}
    )
    if effective:
        step = max(1, len(effective) // instants)
        times += effective[::step][:instants]
    counts: dict[str, int] = {}
    questions: list[tuple[str, Callable[[Views, Any], Any]]] = [
        ("licences", lambda v, t: api.licences(v, t, None)),
        ("end-users", lambda v, t: api.end_users(v, t, None, role=None)),
        ("measures", lambda v, t: api.measures(v, t, None)),
        ("commitments", lambda v, t: api.commitments(v, t, None)),
        ("asymmetry", lambda v, t: [api.asymmetry(v, t, None)]),
        ("findings", lambda v, t: api.all_findings(v, t, None)),
    ]
    encode = msgspec.json.encode
    for name, ask in questions:
        for t in times:
            mine, fresh = ask(stored, t), ask(fold, t)
            counts[name] = counts.get(name, 0) + len(fresh)
            if encode(mine) == encode(fresh):
                continue
            for a, b in itertools.zip_longest(mine, fresh):
                if encode(a) != encode(b):
                    raise VerificationError(
                        f"the stored view {name} as of {t.isoformat()} differs from a fresh "
                        f"fold of the events: {_difference(a, b)}"
                    )
    return counts


def _difference(stored: Any, fresh: Any) -> str:
    """The first field that differs between two rows, in words."""
    import msgspec

    def short(value: Any) -> str:
        text = msgspec.json.encode(value).decode() if value is not None else "(no row)"
        return text if len(text) <= 200 else text[:200] + "..."

    if isinstance(stored, dict) and isinstance(fresh, dict):
        row = next((str(v) for k, v in fresh.items() if k.endswith("_id")), "")
        for field_name in dict.fromkeys([*fresh, *stored]):
            a, b = stored.get(field_name), fresh.get(field_name)
            if msgspec.json.encode(a) != msgspec.json.encode(b):
                return f"row {row}, field {field_name}: stored {short(a)}, fold {short(b)}"
    return f"stored {short(stored)}, fold {short(fresh)}"
