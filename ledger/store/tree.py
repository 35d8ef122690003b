"""The Merkle tree of the log, stored beside the events and written with them.

Three tables per events table ``T`` (both backends):

- ``T_merkle_batches``: one row per append batch (per run of consecutive positions):
  its first leaf index and first position, the tree size after it, the tree's frontier
  after it (``merkle.Frontier.to_bytes``) and the signed checkpoint of that size.  Leaf
  *i* is the event at ``first_position + (i - first_leaf)`` of the batch holding *i*: on
  PostgreSQL positions may skip numbers, leaf indexes never do.
- ``T_merkle_leaves``: the leaf hashes, packed 16 to a row (``block`` = leaf // 16); the
  last row grows until it holds 16.
- ``T_merkle_nodes``: the root of every perfect subtree of 16 leaves or more
  (``level`` >= 4, ``idx``), written as it completes.
- ``T_merkle_meta``: ``build_until``, the newest event when the tree was first built
  over a ledger from before it (absent for a ledger born with the tree).

An append reads the last batch's frontier (O(1) rows), adds the new leaves (O(log n)
node hashes, about 1/8 of a row per event) and signs one checkpoint (and one at each
multiple of ``CHECKPOINT_EVERY`` leaves it crosses); a proof reads
O(log n) rows.  The recorders call ``TreeTables.extend`` inside the transaction that
inserts the events, after they hold the write lock, so tree, checkpoint and events
commit together or not at all.  ``TreeBehind`` is raised when events exist that the
tree does not cover: for a ledger from before the tree, ``build_chunk`` catches it up,
in resumable chunks, each its own transaction; any other such event was not written by
the ledger and is never taken into the tree (``ledger verify`` names it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import IntegrityError

from ledger import merkle
from ledger.checkpoint import Checkpoint, CheckpointError, SigningKey, split_note
from ledger.errors import LedgerError

CHECKPOINT_EVERY = 50_000
"""A checkpoint is signed at every tree size that is a multiple of this, inside an append
batch as at its end (as ``ledger upgrade`` builds the tree in signed chunks of 50,000):
so no genuine record has more than this many leaves between two signed checkpoints, and
a consumer verifying the bus may refuse to hold more (``ledger.bus_verify``).  Records
from before this rule (one signature per append batch, of any size) need a larger bound
there (``LEDGER_VERIFY_MAX_PENDING``)."""

BLOCK_LEVEL = 4
BLOCK = 1 << BLOCK_LEVEL
"""Leaf hashes per row of the leaves table; nodes are stored from this level up."""


class TreeBehind(IntegrityError):
    """Stored events exist that the Merkle tree does not cover: build the tree first."""


class SigningKeyMismatch(LedgerError):
    """The signing key is not the one that signed this ledger's checkpoints."""


class TreeError(Exception):
    """The stored tree cannot answer (missing or malformed rows): it was edited."""


class Port(Protocol):
    """The few database operations the tree needs (one cursor, one transaction)."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]: ...

    def pages(
        self, sql: str, size: int, params: Sequence[Any] = ()
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows in lists of at most ``size`` (no Python step per row: a verify)."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


@dataclass(frozen=True)
class Batch:
    first_leaf: int
    first_position: int
    size: int
    frontier: bytes
    checkpoint: str | None

    @property
    def count(self) -> int:
        return self.size - self.first_leaf

    @property
    def last_position(self) -> int:
        return self.first_position + self.count - 1


@dataclass
class Tip:
    """The tree as an append finds it: its frontier, the last position it covers, the
    hashes already in its last, partial leaf block, and the newest signed checkpoint
    (whose key must sign the next one)."""

    frontier: merkle.Frontier
    covered: int
    head: bytes
    signed: str | None = None


@dataclass(frozen=True)
class Extension:
    """The rows that add a write's events to the tree (``TreeTables.extension``), the
    last batch row signed; ``tip`` is the tree they leave, for the write's next insert."""

    batches: list[tuple[int, int, int, bytes, str | None]]
    leaves: list[tuple[int, bytes]]
    nodes: list[tuple[int, int, bytes]]
    tip: Tip

    @property
    def batch(self) -> Batch:
        """One batch spanning the new rows (the first's start, the last's end)."""
        first, last = self.batches[0], self.batches[-1]
        return Batch(first[0], first[1], last[2], last[3], last[4])


class TreeTables:
    """SQL for one events table's tree tables (``?`` placeholders; ``%s`` for psycopg)."""

    def __init__(
        self,
        events: str,
        position_column: str,
        batches: str,
        leaves: str,
        nodes: str,
        meta: str,
        *,
        postgres: bool,
    ):
        self.events, self.position = events, position_column
        self.batches, self.leaves, self.nodes, self.meta = batches, leaves, nodes, meta
        self.postgres = postgres
        integer, blob = ("bigint", "bytea") if postgres else ("INTEGER", "BLOB")
        self.create_statements = [
            f"CREATE TABLE IF NOT EXISTS {batches} ("
            f"first_leaf {integer} PRIMARY KEY, first_position {integer} NOT NULL UNIQUE, "
            f"size {integer} NOT NULL, frontier {blob} NOT NULL, checkpoint TEXT)",
            f"CREATE TABLE IF NOT EXISTS {leaves} (block {integer} PRIMARY KEY, hashes {blob} "
            "NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {nodes} (level {integer} NOT NULL, idx {integer} "
            f"NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, idx))"
            + ("" if postgres else " WITHOUT ROWID"),
            f"CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value {integer} NOT NULL)",
        ]

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def blob(self, column: str) -> str:
        """A binary column as bytes even if it was overwritten with text (SQLite's
        ``replace()`` or ``||`` on a BLOB give TEXT, which the driver would decode)."""
        return column if self.postgres else f"CAST({column} AS BLOB)"

    # --- reading ------------------------------------------------------------------------

    @property
    def _batch_columns(self) -> str:
        return f"first_leaf, first_position, size, {self.blob('frontier')}, checkpoint"

    def _batch(self, row: tuple[Any, ...] | None) -> Batch | None:
        if row is None:
            return None
        return Batch(int(row[0]), int(row[1]), int(row[2]), bytes(row[3]), row[4])

    def last_batch(self, port: Port) -> Batch | None:
        return self._batch(
            port.one(
                f"SELECT {self._batch_columns} FROM {self.batches} ORDER BY first_leaf DESC LIMIT 1"
            )
        )

    def last_signed_batch(self, port: Port) -> Batch | None:
        return self._batch(
            port.one(
                f"SELECT {self._batch_columns} FROM {self.batches} WHERE checkpoint IS NOT NULL "
                "ORDER BY first_leaf DESC LIMIT 1"
            )
        )

    def batch_of_leaf(self, port: Port, leaf: int) -> Batch | None:
        batch = self._batch(
            port.one(
                self.sql(
                    f"SELECT {self._batch_columns} FROM {self.batches} WHERE first_leaf <= ? "
                    "ORDER BY first_leaf DESC LIMIT 1"
                ),
                (leaf,),
            )
        )
        return batch if batch is not None and leaf < batch.size else None

    def batch_of_position(self, port: Port, position: int) -> Batch | None:
        batch = self._batch(
            port.one(
                self.sql(
                    f"SELECT {self._batch_columns} FROM {self.batches} WHERE first_position <= ? "
                    "ORDER BY first_position DESC LIMIT 1"
                ),
                (position,),
            )
        )
        return batch if batch is not None and position <= batch.last_position else None

    def batches_from(self, port: Port, first_leaf: int = 0) -> Iterator[Batch]:
        for row in port.stream(
            self.sql(
                f"SELECT {self._batch_columns} FROM {self.batches} WHERE first_leaf >= ? "
                "ORDER BY first_leaf"
            ),
            (first_leaf,),
        ):
            batch = self._batch(row)
            assert batch is not None
            yield batch

    def leaf_block(self, port: Port, block: int) -> bytes:
        row = port.one(
            self.sql(f"SELECT {self.blob('hashes')} FROM {self.leaves} WHERE block = ?"), (block,)
        )
        return b"" if row is None else bytes(row[0])

    def untracked_events(self, port: Port, covered: int) -> int:
        """How many stored events come after position ``covered`` (the tree's last)."""
        row = port.one(
            self.sql(f"SELECT COUNT(*) FROM {self.events} WHERE {self.position} > ?"),
            (covered,),
        )
        return 0 if row is None else int(row[0])

    # --- writing ------------------------------------------------------------------------

    def tip_query(self, *, before: bool = False) -> str:
        """One statement reading what ``tip_from_row`` needs: the last batch, the newest
        stored position (below the parameter, with ``before``), the hashes of the last
        partial leaf block and the newest signed checkpoint (one round trip on
        PostgreSQL, where the separate reads took four)."""
        below = f" WHERE {self.position} < ?" if before else ""
        return self.sql(
            f"SELECT b.first_leaf, b.first_position, b.size, b.frontier, b.checkpoint, "
            f"(SELECT MAX({self.position}) FROM {self.events}{below}), "
            f"(SELECT {self.blob('hashes')} FROM {self.leaves} "
            f"WHERE block = b.size / {BLOCK}), "
            f"(SELECT checkpoint FROM {self.batches} WHERE checkpoint IS NOT NULL "
            "ORDER BY first_leaf DESC LIMIT 1) "
            f"FROM (SELECT 1 AS one) o LEFT JOIN (SELECT first_leaf, first_position, size, "
            f"{self.blob('frontier')} AS frontier, checkpoint FROM {self.batches} "
            "ORDER BY first_leaf DESC LIMIT 1) b ON 1 = 1"
        )

    def tip_from_row(self, row: Sequence[Any]) -> Tip:
        """The tip from a row of ``tip_query``, checked to cover every stored event it
        saw; else ``TreeBehind``."""
        first_leaf, first_position, size, frontier_bytes, checkpoint, top, head, signed = row
        last = (
            None
            if first_leaf is None
            else Batch(
                int(first_leaf), int(first_position), int(size), bytes(frontier_bytes), checkpoint
            )
        )
        frontier = merkle.Frontier() if last is None else merkle.Frontier.from_bytes(last.frontier)
        covered = 0 if last is None else last.last_position
        stored = 0 if top is None else int(top)
        if stored != covered:
            raise TreeBehind(
                f"the Merkle tree covers the events up to position {covered} but the store "
                f"holds events up to position {stored}: build the tree first"
            )
        block, offset = divmod(frontier.size, BLOCK)
        head = bytes(head) if offset and head is not None else b""
        if len(head) != offset * merkle.HASH_SIZE:
            raise TreeError(f"the stored leaf block {block} is not {offset} hashes long")
        return Tip(frontier, covered, head, signed)

    def tip(self, port: Port, *, before: int | None = None) -> Tip:
        """The tree's newest state, checked to cover every stored event (those before
        position ``before``, when the new events are already inserted); else
        ``TreeBehind``.  Call with the write lock held."""
        if before is None:
            row = port.one(self.tip_query())
        else:
            row = port.one(self.tip_query(before=True), (before,))
        assert row is not None  # (the query always yields its one row)
        return self.tip_from_row(row)

    def extension(
        self,
        tip: Tip,
        positions: Sequence[int],
        payloads: Sequence[bytes],
        signer: SigningKey | None,
        *,
        sign_end: bool = True,
    ) -> Extension:
        """The rows adding these events (their positions and exact JSON bytes) to the
        tree at ``tip``, the last batch row carrying its signed checkpoint (none without
        ``signer``; not with ``sign_end=False``: a chunk of a larger insert), and so does
        each row ending at a multiple of ``CHECKPOINT_EVERY`` leaves.  Computed, not
        written: ``write`` or ``postgres_ctes`` writes them.

        Refuses (``SigningKeyMismatch``) when the ledger's previous checkpoint was signed
        by another key: a second writer with a key of its own (a PostgreSQL ledger
        written from two homes without ``LEDGER_SIGNING_KEY``) would otherwise leave
        checkpoints that the pinned key does not verify."""
        if signer is not None and tip.signed is not None:
            _check_signer(signer, tip.signed)
        frontier = merkle.Frontier.from_bytes(tip.frontier.to_bytes())  # (tip stays as read)
        leaves = merkle.leaf_hashes(payloads)
        nodes: list[tuple[int, int, bytes]] = []
        frontier.on_node = lambda level, index, h: nodes.append((level, index, h))
        frontier.min_level = BLOCK_LEVEL
        first_leaf = frontier.size
        rows: list[tuple[int, int, int, bytes, str | None]] = []
        signed = tip.signed
        every = CHECKPOINT_EVERY
        start = 0
        for run_end in [*_run_ends(positions), len(positions)]:
            while start < run_end:
                # A row ends at the run's end or at the next multiple of CHECKPOINT_EVERY.
                run_first = frontier.size
                stop = min(run_end, start + every - run_first % every)
                frontier.extend(leaves[start:stop])
                note = None
                if signer is not None and (
                    frontier.size % every == 0 or (sign_end and stop == len(positions))
                ):
                    note = signer.sign(
                        Checkpoint(signer.name, frontier.size, frontier.root()).body()
                    )
                    signed = note
                rows.append((run_first, positions[start], frontier.size, frontier.to_bytes(), note))
                start = stop
        frontier.on_node = None
        leaf_rows = _leaf_rows(first_leaf, tip.head, leaves)
        last_hashes = leaf_rows[-1][1]
        head = last_hashes if len(last_hashes) < BLOCK * merkle.HASH_SIZE else b""
        return Extension(rows, leaf_rows, nodes, Tip(frontier, positions[-1], head, signed))

    def write(self, port: Port, extension: Extension) -> Batch:
        """Write an extension's rows (inside the transaction that inserted its events,
        with the write lock held since its tip was read)."""
        port.executemany(
            self.sql(f"INSERT INTO {self.batches} VALUES (?, ?, ?, ?, ?)"), extension.batches
        )
        port.executemany(
            self.sql(
                f"INSERT INTO {self.leaves} VALUES (?, ?) "
                "ON CONFLICT (block) DO UPDATE SET hashes = excluded.hashes"
            ),
            extension.leaves,
        )
        if extension.nodes:
            port.executemany(
                self.sql(f"INSERT INTO {self.nodes} VALUES (?, ?, ?)"), extension.nodes
            )
        return extension.batch

    def postgres_ctes(self, extension: Extension) -> tuple[str, list[Any]]:
        """An extension's rows as data-modifying common table expressions (``%b``
        placeholders: rows passed as column arrays, in binary) and their parameters: the
        PostgreSQL recorder prefixes them to the statement that inserts the index rows,
        so the tree costs no round trip of its own.  Bounded by the chunk of events they
        come from (at most ``INSERT_CHUNK_ROWS``)."""
        assert self.postgres
        batches = [list(c) for c in zip(*extension.batches, strict=True)]
        leaves = [list(c) for c in zip(*extension.leaves, strict=True)]
        nodes = [list(c) for c in zip(*extension.nodes, strict=True)] or [[], [], []]
        return (
            f"ledger_batched AS (INSERT INTO {self.batches} "
            "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::bytea[], "
            "%b::text[])), "
            f"ledger_leaves AS (INSERT INTO {self.leaves} "
            "SELECT * FROM unnest(%b::bigint[], %b::bytea[]) "
            "ON CONFLICT (block) DO UPDATE SET hashes = excluded.hashes), "
            f"ledger_nodes AS (INSERT INTO {self.nodes} "
            "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::bytea[]))",
            [*batches, *leaves, *nodes],
        )

    def extend(
        self,
        port: Port,
        tip: Tip,
        positions: Sequence[int],
        payloads: Sequence[bytes],
        signer: SigningKey | None,
    ) -> Batch:
        """Add these events to the tree at ``tip`` and sign it (``extension``, then
        ``write``)."""
        return self.write(port, self.extension(tip, positions, payloads, signer))

    def _build_until(self, port: Port, last: Batch | None, *, start: bool) -> int:
        """The last position a migration covers: the newest event when the tree was
        first built over a ledger from before it (recorded in the meta table).  A ledger
        born with the tree has none (0): an event it does not cover was not written by
        the ledger, and is never built into the tree."""
        row = port.one(self.sql(f"SELECT value FROM {self.meta} WHERE name = ?"), ("build_until",))
        if row is not None:
            return int(row[0])
        if last is not None:
            return 0
        top = port.one(f"SELECT MAX({self.position}) FROM {self.events}")
        until = 0 if top is None or top[0] is None else int(top[0])
        if start and until:
            port.execute(self.sql(f"INSERT INTO {self.meta} VALUES (?, ?)"), ("build_until", until))
        return until

    def pending(self, port: Port) -> int:
        """How many stored events a migration still has to add to the tree."""
        last = self.last_batch(port)
        covered = 0 if last is None else last.last_position
        until = self._build_until(port, last, start=False)
        if until <= covered:
            return 0
        row = port.one(
            self.sql(
                f"SELECT COUNT(*) FROM {self.events} WHERE {self.position} > ? "
                f"AND {self.position} <= ?"
            ),
            (covered, until),
        )
        return 0 if row is None else int(row[0])

    def build_chunk(
        self,
        port: Port,
        payload_of: Callable[[bytes], bytes],
        signer: SigningKey | None,
        limit: int,
    ) -> int:
        """Add up to ``limit`` of the events stored before the tree existed (a ledger
        from before it); returns how many were added.  Call in a write transaction."""
        last = self.last_batch(port)
        covered = 0 if last is None else last.last_position
        until = self._build_until(port, last, start=True)
        rows = port.all(
            self.sql(
                f"SELECT {self.position}, {self.blob('state')} FROM {self.events} "
                f"WHERE {self.position} > ? AND {self.position} <= ? "
                f"ORDER BY {self.position} LIMIT ?"
            ),
            (covered, until, limit),
        )
        if not rows:
            return 0
        tip = self.tip(port, before=int(rows[0][0]))
        self.extend(
            port, tip, [int(r[0]) for r in rows], [payload_of(bytes(r[1])) for r in rows], signer
        )
        return len(rows)


def _check_signer(signer: SigningKey, previous: str) -> None:
    """``SigningKeyMismatch`` unless ``signer`` signed the ``previous`` checkpoint."""
    try:
        _, signatures = split_note(previous)
    except CheckpointError:
        signatures = []
    verifier = signer.verifier
    if not any(sig.name == verifier.name and sig.key_id == verifier.key_id for sig in signatures):
        raise SigningKeyMismatch(
            "this ledger's checkpoints are signed by another key than "
            f"{verifier.name}+{verifier.key_id.hex()}: set LEDGER_SIGNING_KEY to the "
            "ledger's key (nothing was written)"
        )


def _leaf_rows(first_leaf: int, head: bytes, leaves: list[bytes]) -> list[tuple[int, bytes]]:
    """Rows of the leaves table for new leaves from ``first_leaf`` (``head``: the hashes
    already in its block)."""
    rows: list[tuple[int, bytes]] = []
    block, offset = divmod(first_leaf, BLOCK)
    i = 0
    if offset:
        i = BLOCK - offset
        rows.append((block, head + b"".join(leaves[:i])))
        block += 1
    while i < len(leaves):
        rows.append((block, b"".join(leaves[i : i + BLOCK])))
        i += BLOCK
        block += 1
    return rows


def _run_ends(positions: Sequence[int]) -> list[int]:
    """Indexes where a new run of consecutive positions starts."""
    if positions[-1] - positions[0] == len(positions) - 1:  # increasing: one run
        return []
    return [i for i in range(1, len(positions)) if positions[i] != positions[i - 1] + 1]


class StoredTree:
    """The stored tree as a ``merkle.NodeSource`` (read through one port/transaction)."""

    def __init__(self, tables: TreeTables, port: Port):
        self.tables, self.port = tables, port
        self._blocks: dict[int, bytes] = {}

    def leaves_of_block(self, block: int) -> list[bytes]:
        data = self._blocks.get(block)
        if data is None:
            data = self._blocks[block] = self.tables.leaf_block(self.port, block)
        return [data[i : i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]

    def leaf(self, index: int) -> bytes:
        hashes = self.leaves_of_block(index // BLOCK)
        try:
            return hashes[index % BLOCK]
        except IndexError:
            raise TreeError(f"leaf {index} is not in the stored tree") from None

    def node(self, level: int, index: int) -> bytes:
        if level >= BLOCK_LEVEL:
            row = self.port.one(
                self.tables.sql(
                    f"SELECT {self.tables.blob('hash')} FROM {self.tables.nodes} "
                    "WHERE level = ? AND idx = ?"
                ),
                (level, index),
            )
            if row is None:
                raise TreeError(f"the stored tree has no node at level {level}, index {index}")
            return bytes(row[0])
        first = index << level
        hashes = self.leaves_of_block(first // BLOCK)
        offset = first % BLOCK
        part = hashes[offset : offset + (1 << level)]
        if len(part) != 1 << level:
            raise TreeError(f"the stored tree lacks leaves {first}-{first + (1 << level) - 1}")
        return merkle.perfect_root(part)
