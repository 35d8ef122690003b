"""The views' writes in a second process, for long catch-ups and rebuilds.

Applying a batch of events (Python) and writing the previous batch's rows (SQLite or
PostgreSQL) take about the same time.  In one process they take turns; in a thread they
would still take turns, because the writer needs the GIL back after every row it steps
through.  So a long catch-up hands each batch's ``Changes`` to this process and applies
the next batch meanwhile: two CPUs instead of one.

The protocol keeps the projector's guarantees: one write in flight at a time, each in one
transaction with its tracking record (``ViewStore.write``), and an error — another
projector moved the views (``ViewsMoved``), a database error, this process gone — raised
in the projector at its next ``wait()``, which then reloads from what is stored.  If the
projector's process dies, the write in flight either commits whole or not at all, and
this process exits when its pipe closes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.errors import StoreError

if TYPE_CHECKING:
    from ledger.config import Settings
    from ledger.projections.store import Changes, ViewStore

_encoder = msgspec.msgpack.Encoder()
_STOP = b""


class ProcessWriter:
    """A view writer process on the ledger's database (see the module docstring)."""

    def __init__(self, settings: Settings):
        # A fresh interpreter running this module (not multiprocessing's spawn, which
        # re-imports the caller's main script: a script without a __main__ guard, or
        # `python -c`, would break): pickled jobs over its stdin, results on its stdout.
        root = str(Path(__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ledger.projections.writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._jobs = Connection(os.dup(self._process.stdin.fileno()), readable=False)
        self._results = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()
        self.in_flight: int | None = None
        """The position the write in flight moves the views to (None: none in flight)."""
        self.written = 0
        """Batches this process has written."""
        self._sender: threading.Thread | None = None
        self._send_error: OSError | None = None
        self._send(settings)

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, changes: Changes, expected: int, position: int) -> None:
        """Start writing ``changes`` (``ViewStore.write`` arguments); returns at once."""
        if self.in_flight is not None:
            raise RuntimeError("a write is already in flight: wait() for it first")
        # Encoded here (msgpack: a third of pickle's time, holding the GIL); the tens of
        # megabytes go down the pipe from a thread, which waits on the pipe without the
        # GIL while the next batch is applied.
        blob = _encoder.encode(
            (
                expected,
                position,
                {f.name: getattr(changes, f.name) for f in dataclasses.fields(changes)},
            )
        )
        self._sender = threading.Thread(
            target=self._send_blob, args=(blob,), name="views-writer-send", daemon=True
        )
        self._sender.start()
        self.in_flight = position

    def _send_blob(self, blob: bytes) -> None:
        try:
            self._jobs.send_bytes(blob)
        except OSError as exc:
            self._send_error = exc

    def wait(self) -> int | None:
        """Wait for the write in flight and return its position (None if none was), or
        raise its error."""
        if self.in_flight is None:
            return None
        position, self.in_flight = self.in_flight, None
        if self._sender is not None:
            self._sender.join()
            self._sender = None
        error, self._send_error = self._send_error, None
        if error is not None:
            raise self._gone() from error
        try:
            status, value = self._results.recv()
        except (EOFError, OSError) as exc:
            raise self._gone() from exc
        if status == "error":
            raise value
        self.written += 1
        return position

    def close(self) -> None:
        """Let the write in flight finish, then stop the process."""
        if self._sender is not None:
            self._sender.join()
            self._sender = None
        with contextlib.suppress(OSError):  # already gone
            self._jobs.send_bytes(_STOP)
        self._jobs.close()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a write stuck for a minute
            self._process.kill()
            self._process.wait()
        self._results.close()

    def kill(self) -> None:
        """Stop the process at once (a write in flight is rolled back)."""
        self._process.kill()
        self._process.wait()

    def _send(self, obj: Any) -> None:
        try:
            self._jobs.send(obj)
        except OSError as exc:
            raise self._gone() from exc

    def _gone(self) -> StoreError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        return StoreError(
            f"the views writer process exited (exit code {self._process.returncode}); "
            "the views stay at their last complete batch"
        )


def _fixed_mmap_threshold() -> None:
    """Blocks of 128 KiB and more in memory maps of their own, returned to the system
    when freed (glibc only; elsewhere nothing).

    Each batch arrives as a blob of 1-2.3 MB (growing with the ledger's records).  glibc
    serves a block that large from a memory map, but when one is freed it raises its
    threshold above that size (its dynamic threshold), so the later blobs come from the
    heap and leave holes in it.  Fixed, the writer's memory between batches stays at
    33-34 MiB from 200k to 1M events instead of 35.7-38.2 (3 Dec 2026).  Set here, not
    through ``MALLOC_MMAP_THRESHOLD_``: the environment is the user's, and the projector's
    process is not changed."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    M_MMAP_THRESHOLD = -3
    mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def _serve() -> None:
    _fixed_mmap_threshold()
    # Ctrl-C reaches the whole process group: the projector decides (it closes the pipe
    # after the write in flight), so a write is never cut off by the keyboard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Results go to the real stdout; anything else printed goes to stderr, not the pipe.
    results = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    jobs = Connection(os.dup(0), writable=False)
    try:
        settings = jobs.recv()
    except EOFError:
        return
    from ledger.app import Ledger
    from ledger.projections.stores import view_store

    app = Ledger(settings)
    try:
        store = view_store(app)
        while True:
            result = _write_next(jobs, store)
            if result is None:
                return  # stopped, or the projector is gone
            results.send(result)
    finally:
        app.close()


def _write_next(jobs: Connection, store: ViewStore) -> tuple[str, Any] | None:
    """Read the next batch and write it; None at the end.  The blob and the rows are
    dropped as soon as they are used, and all of it on return: nothing of a batch is
    still held while the next one arrives and is decoded."""
    from ledger.projections.store import Changes

    try:
        job = jobs.recv_bytes()
    except EOFError:
        return None
    if job == _STOP:
        return None
    expected, position, fields = msgspec.msgpack.decode(job)
    del job
    changes = Changes(**fields)  # rows as lists: both stores take any sequence
    del fields
    try:
        store.write(changes, expected, position)
    except Exception as exc:
        return ("error", _portable(exc))
    return ("ok", position)


def _portable(exc: Exception) -> Exception:
    """The error itself if it survives pickling, else a StoreError that names it."""
    try:
        restored: Any = pickle.loads(pickle.dumps(exc))
    except Exception:
        return StoreError(f"writing the views failed: {type(exc).__name__}: {exc}")
    return restored  # type: ignore[no-any-return]


if __name__ == "__main__":
    _serve()
