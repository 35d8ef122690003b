"""Where entities evicted from a bounded working set wait: a private temporary file.

Its user is the projector (a views rebuild); it lives with the store's modules because
nothing in it is the projector's (``ledger import``'s working set was measured with it:
docs/performance.md, "Import at 2M events").  An evicted entity used to come back by
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
from typing import IO, Any

from ledger.errors import StoreError

COMPACT_BYTES = 32 << 20
"""The file is never rewritten below this size (a small spill is not worth it)."""

_LENGTH_BITS = 32
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
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
    ``what``: how errors name the spill's user."""

    def __init__(
        self,
        dumps: Callable[[Any], bytes] = _pickle,
        loads: Callable[[bytes], Any] = pickle.loads,
        what: str = "spill",
    ) -> None:
        self._dumps = dumps
        self._what = what
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
        dumps, sign = self._dumps, self._sign
        blobs = [sign(e.key, dumps(e)) for e in entities]
        fd = self._fd()
        data = b"".join(blobs)
        _write_all(fd, data, self._end)
        where, offset = self._where, self._end
        live = self._live
        for entity, blob in zip(entities, blobs, strict=True):
            old = where.get(entity.key)
            if old is not None:
                live -= old & _LENGTH_MASK
            length = len(blob)
            if length > _LENGTH_MASK:
                raise ValueError(f"{self._what}: an entity of {length} bytes")
            where[entity.key] = offset << _LENGTH_BITS | length
            live += length
            offset += length
        self._live = live
        self._end = offset
        self.spilled += len(entities)
        if self._end > COMPACT_BYTES and self._end > 2 * self._live:
            self._compact()

    def take(self, keys: Iterable[str]) -> dict[str, Any]:
        """The entities kept under these keys (those there are).  A copy stays behind:
        an entity leaves the cache again only by eviction, which replaces it."""
        if self._file is None:
            return {}
        where = self._where
        found_at = sorted((where[k], k) for k in keys if k in where)  # in file order
        fd, loads, opened = self._file.fileno(), self._loads, self._opened
        return {
            key: loads(opened(key, _read_all(fd, at & _LENGTH_MASK, at >> _LENGTH_BITS)))
            for at, key in found_at
        }

    def _digest(self, key: str, blob: bytes | memoryview) -> bytes:
        named = key.encode()
        digest = self._keyed.copy()
        digest.update(len(named).to_bytes(4, "big"))  # (so key and bytes cannot trade places)
        digest.update(named)
        digest.update(blob)
        return digest.digest()

    def _sign(self, key: str, blob: bytes) -> bytes:
        return self._digest(key, blob) + blob

    def _opened(self, key: str, copy: bytes) -> bytes:
        """The encoded entity in ``copy`` once its digest is checked."""
        blob = copy[DIGEST_BYTES:]
        if not hmac.compare_digest(copy[:DIGEST_BYTES], self._digest(key, blob)):
            raise SpillTampered(
                f"{self._what}: the copy of {key} in its temporary file was changed behind "
                "this process's back; nothing was written from it"
            )
        return blob

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def keys(self) -> KeysView[str]:
        """The keys kept here (a live view: tested many at a time without a call each)."""
        return self._where.keys()

    def __len__(self) -> int:
        """How many entities are kept here."""
        return len(self._where)

    def _compact(self) -> None:
        """Rewrite the file with only the latest copies, in file order."""
        assert self._file is not None
        old, old_fd = self._file, self._file.fileno()
        new = tempfile.TemporaryFile(prefix="ledger-spill-")  # noqa: SIM115
        new_fd, end = new.fileno(), 0
        where: dict[str, int] = {}
        chunk: list[bytes] = []
        chunk_at = 0
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
        old.close()
        self._file, self._where, self._end, self._live = new, where, end, end
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
