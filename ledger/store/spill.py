"""Where entities evicted from a bounded working set wait: a private temporary file.

Its users are the projector (a views rebuild) and ``ledger import`` where the store
keeps no page cache in this process (PostgreSQL: its two-tier working set,
``ledger.importing``); it lives with the store's modules because nothing in it is
either's.  An evicted entity used to come back by
replaying its events from the store, which made a small budget slow: entities evicted and
replayed batch after batch, each through the store's B-trees.  Kept here as it was
evicted, it comes back in one read, so the budget can be small enough to be reached by a
small ledger too.

The file is append-only: an eviction writes its entities' encodings at the end in one write,
and an index in memory (key -> offset and length packed in one int: ~60 bytes an entity
besides its key, not an event) finds each in one read.  It is the only thing kept for
every entity evicted, so it grows with the number of entities (~18,800 at 1M events in a
rebuild), and is kept compact: a tuple of two ints an entity was ~100 bytes more (1.7 MB
at 1M events, 3 Dec 2026).  It was a SQLite table first; with its 1 MiB page cache each
restore read ~17 pages through the B-tree and each eviction rewrote pages in place, and at
the 16 MB default a 1M-event rebuild spent half its wall time waiting on those reads (93 s
against 48 s with the same file on tmpfs, 3 Dec 2026).  When stale copies make up more
than half of the file it is rewritten with the live ones, so it stays within twice what is
evicted.

The file is its process's alone and lives as long as the spill (an unnamed temporary file:
deleted as soon as it is created).  Each copy carries a keyed digest of its key and bytes
(BLAKE2b, a key drawn when the spill is made and held only in memory): a copy changed on
disk behind the process's back, or moved to another key, is refused before it is decoded,
so the default codec (pickle) only ever reads bytes this spill wrote.  The projector
spills an entity only once its rows are written and empties the spill whenever it starts
over from what is stored (``Projector._reload``), so what comes back is exactly what
reloading the entity from the store would give.
"""

from __future__ import annotations

import hmac
import os
import pickle
import secrets
import tempfile
from collections.abc import Callable, Iterable, KeysView, Sequence
from hashlib import blake2b
from itertools import islice
from typing import IO, Any

from ledger.errors import StoreError

COMPACT_BYTES = 32 << 20
"""The file is never rewritten below this size (a small spill is not worth it)."""

_LENGTH_BITS = 32
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
COMPACT_WRITE_BYTES = 256 << 10
"""A compaction writes the copies it moves in batches of this many bytes."""
READ_GAP = 4096
READ_SPAN = 64 << 10
"""With ``batched``, ``take`` reads copies less than ``READ_GAP`` bytes apart in one read
of at most ``READ_SPAN`` bytes (under glibc's threshold for a mapping of its own: a
larger buffer freed raises that threshold, and the heap then keeps what such took)."""
DIGEST_BYTES = 16
"""Each copy starts with this many bytes of its keyed digest."""


class SpillTampered(StoreError):
    """A spilled copy does not match its digest: the file was changed behind the
    process's back (or the disk returned other bytes)."""


def _pickle(entity: Any) -> bytes:
    return pickle.dumps(entity, pickle.HIGHEST_PROTOCOL)


class EntitySpill:
    """Evicted entities by key (see the module docstring).  ``dumps`` and ``loads``: how
    an entity is kept (pickle by default; the projector passes its own, faster codec).
    ``what``: how errors name the spill's user.  ``batched``: see ``_batched``."""

    def __init__(
        self,
        dumps: Callable[[Any], bytes] = _pickle,
        loads: Callable[[bytes | memoryview], Any] = pickle.loads,
        what: str = "spill",
        batched: bool = False,
    ) -> None:
        self._dumps = dumps
        self._what = what
        self._batched = batched
        """Read runs of copies at once, and write and compact without a whole copy of
        what is written or of the index (the import's: it keeps ~30,000 entities here at
        1M events, and a trim's peak was 6.6 MiB with the joined writes and the sorted
        index of a compaction, 1.7 without; one read a copy was 6 % of its CPU, 4 Dec
        2026).  The projector keeps one read a copy and the sorted compaction until a
        rebuild is measured with these in more runs: its 1M-event tree peaked at 175-179
        MiB with them and 173-177 without, within one machine's noise, not settled."""
        self._keyed = blake2b(key=secrets.token_bytes(32), digest_size=DIGEST_BYTES)
        """Keyed once, copied for each digest (a quarter cheaper than keying each)."""
        self._loads = loads
        self._file: IO[bytes] | None = None
        self._where: dict[str, int] = {}
        """Key -> where its latest copy is in the file: offset << 32 | length."""
        self._end = 0
        self._live = 0
        """Bytes of the latest copies (the rest of the file is stale)."""
        self.spilled = 0
        """Entities written here since the start (each eviction counts)."""
        self.compactions = 0

    def _fd(self) -> int:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="ledger-spill-")  # noqa: SIM115
            self._end = 0
        return self._file.fileno()

    def put(self, entities: Sequence[Any]) -> None:
        """Keep these entities (objects with a ``key``), replacing any earlier copy."""
        if not entities:
            return
        dumps, digest = self._dumps, self._digest
        # Each copy: its digest, then its bytes.  With ``batched`` they go to the file
        # as they are, many to a system call, not joined into one buffer first (a copy
        # of everything written).
        parts = [digest(e.key, blob) + blob for e in entities for blob in (dumps(e),)]
        try:
            if self._batched:
                _write_parts(self._fd(), parts, self._end)
            else:
                _write_all(self._fd(), b"".join(parts), self._end)
        except OSError as exc:
            raise self._failed(exc) from exc
        where, offset = self._where, self._end
        live = self._live
        for n, entity in enumerate(entities):
            old = where.get(entity.key)
            if old is not None:
                live -= old & _LENGTH_MASK
            length = len(parts[n])
            if length > _LENGTH_MASK:
                raise ValueError(f"{self._what}: an entity of {length} bytes")
            where[entity.key] = offset << _LENGTH_BITS | length
            live += length
            offset += length
        self._live = live
        self._end = offset
        self.spilled += len(entities)
        if self._end > COMPACT_BYTES and self._end > 2 * self._live:
            if self._batched:
                self._compact()
            else:
                self._compact_sorted()

    def take(self, keys: Iterable[str]) -> dict[str, Any]:
        """The entities kept under these keys (those there are).  A copy stays behind:
        an entity leaves the cache again only by eviction, which replaces it."""
        if self._file is None:
            return {}
        where = self._where
        found_at = sorted((where[k], k) for k in keys if k in where)  # in file order
        fd, loads, opened = self._file.fileno(), self._loads, self._opened
        out: dict[str, Any] = {}
        # Copies written by one eviction lie together: one read for each run of them
        # (a gap of at most READ_GAP bytes, READ_SPAN at most), not one for each copy.
        first, count = 0, len(found_at)
        span = READ_SPAN if self._batched else 0
        while first < count:
            start = found_at[first][0] >> _LENGTH_BITS
            end = start + (found_at[first][0] & _LENGTH_MASK)
            last = first + 1
            while last < count:
                at = found_at[last][0]
                offset, length = at >> _LENGTH_BITS, at & _LENGTH_MASK
                if offset - end > READ_GAP or offset + length - start > span:
                    break
                end = max(end, offset + length)
                last += 1
            try:
                read = _read_all(fd, end - start, start)
            except OSError as exc:
                raise self._failed(exc) from exc
            # (one copy: its bytes as read, as the projector's codec was measured with)
            data = memoryview(read) if last - first > 1 else read
            for at, key in found_at[first:last]:
                offset = (at >> _LENGTH_BITS) - start
                out[key] = loads(opened(key, data[offset : offset + (at & _LENGTH_MASK)]))
            first = last
        return out

    def _failed(self, exc: OSError) -> StoreError:
        return StoreError(
            f"{self._what}: its temporary file ({tempfile.gettempdir()}) failed: {exc}"
        )

    def _digest(self, key: str, blob: bytes | memoryview) -> bytes:
        named = key.encode()
        digest = self._keyed.copy()
        digest.update(len(named).to_bytes(4, "big"))  # (so key and bytes cannot trade places)
        digest.update(named)
        digest.update(blob)
        return digest.digest()

    def _opened(self, key: str, copy: bytes | memoryview) -> bytes | memoryview:
        """The encoded entity in ``copy`` once its digest is checked."""
        blob = copy[DIGEST_BYTES:]
        if not hmac.compare_digest(copy[:DIGEST_BYTES], self._digest(key, blob)):
            raise SpillTampered(
                f"{self._what}: the copy of {key} in its temporary file was changed behind "
                "this process's back; nothing was written from it"
            )
        return blob

    def oldest(self, count: int) -> list[str]:
        """The ``count`` keys kept here longest (in the order each was first put)."""
        return list(islice(self._where, max(0, count)))

    def forget(self, keys: Iterable[str]) -> None:
        """Drop these keys' copies (their bytes become stale: ``put``'s compaction)."""
        where = self._where
        for key in keys:
            at = where.pop(key, None)
            if at is not None:
                self._live -= at & _LENGTH_MASK

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def keys(self) -> KeysView[str]:
        """The keys kept here (a live view: tested many at a time without a call each)."""
        return self._where.keys()

    def __len__(self) -> int:
        """How many entities are kept here."""
        return len(self._where)

    def _compact_sorted(self) -> None:
        """Rewrite the file with only the latest copies, in file order, into a new index."""
        assert self._file is not None
        old, old_fd = self._file, self._file.fileno()
        new = tempfile.TemporaryFile(prefix="ledger-spill-")  # noqa: SIM115
        new_fd, end = new.fileno(), 0
        where: dict[str, int] = {}
        chunk: list[bytes] = []
        chunk_at = 0
        try:
            for key, at in sorted(self._where.items(), key=lambda kv: kv[1]):
                length = at & _LENGTH_MASK
                chunk.append(_read_all(old_fd, length, at >> _LENGTH_BITS))
                where[key] = end << _LENGTH_BITS | length
                end += length
                if end - chunk_at >= 1 << 20:
                    _write_all(new_fd, b"".join(chunk), chunk_at)
                    chunk, chunk_at = [], end
            if chunk:
                _write_all(new_fd, b"".join(chunk), chunk_at)
        except OSError as exc:
            new.close()  # (the old file and index are as they were)
            raise self._failed(exc) from exc
        old.close()
        self._file, self._where, self._end, self._live = new, where, end, end
        self.compactions += 1

    def _compact(self) -> None:
        """``_compact_sorted`` with ``batched``: the copies in the index's order (the order
        entities were first spilled), the index updated in place: a second index, and the
        copies sorted, were ~5 MiB more at the peak of an import keeping 30,000 entities
        here (4 Dec 2026)."""
        assert self._file is not None
        old, old_fd = self._file, self._file.fileno()
        new = tempfile.TemporaryFile(prefix="ledger-spill-")  # noqa: SIM115
        new_fd, end = new.fileno(), 0
        where = self._where
        chunk: list[bytes] = []
        chunk_at = 0
        try:
            for key, at in where.items():  # (values replaced, none added: allowed)
                length = at & _LENGTH_MASK
                chunk.append(_read_all(old_fd, length, at >> _LENGTH_BITS))
                where[key] = end << _LENGTH_BITS | length
                end += length
                if end - chunk_at >= COMPACT_WRITE_BYTES:
                    _write_parts(new_fd, chunk, chunk_at)
                    chunk, chunk_at = [], end
            if chunk:
                _write_parts(new_fd, chunk, chunk_at)
        except BaseException as exc:
            new.close()
            self.clear()  # (the index is half moved: nothing in it can be trusted now)
            if isinstance(exc, OSError):
                raise self._failed(exc) from exc
            raise
        old.close()
        self._file, self._end, self._live = new, end, end
        self.compactions += 1

    def clear(self) -> None:
        """Forget every entity (the projector starts over from what is stored)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._where = {}
        self._end = self._live = 0

    @property
    def file_bytes(self) -> int:
        """The file's size (latest copies and stale ones)."""
        return self._end


_PARTS_PER_CALL = 512
"""Buffers ``_write_parts`` hands to one ``pwritev`` (IOV_MAX is 1,024 on Linux)."""


def _write_parts(fd: int, parts: Sequence[bytes], offset: int) -> None:
    """Write ``parts`` one after another from ``offset``, many to a system call."""
    for first in range(0, len(parts), _PARTS_PER_CALL):
        group = parts[first : first + _PARTS_PER_CALL]
        size = sum(map(len, group))
        written = os.pwritev(fd, group, offset)
        if written < size:  # (a short write: the rest as one buffer)
            _write_all(fd, b"".join(group)[written:], offset + written)
        offset += size


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _read_all(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise OSError(f"spill: {length - got} bytes missing at {offset + got}")
        parts.append(more)
        got += len(more)
    return b"".join(parts)
