"""A new SQLite ledger made by its first write, all or nothing.

A first ``append``, ``import``, ``retract`` or ``apply`` into a home with no ledger builds
the database (and the home's signing key, when it is made then) in a private directory
beside it and puts it in place only once the command has succeeded: a first write that
fails leaves nothing behind, so the next command still finds no ledger ("no ledger at
...", the guard against a mistyped ``--home``) and the next first write makes the key
with the ``LEDGER_ORIGIN`` it is given then.  First writes to one new home take turns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.config import Settings


@contextmanager
def first_write(config: Settings) -> Iterator[Settings]:
    """The settings of a new SQLite ledger built in a private directory beside its
    database (its signing key too, when the home's is made here), moved into place only
    once the command has succeeded; on any failure the directory goes, with any
    directory made for it, and nothing is left behind: the next command finds no ledger,
    as before (read commands: "no ledger at ..."), and the next first write makes the
    key with the ``LEDGER_ORIGIN`` it is given then.

    First writes to one new home take turns (``_lock_directory``): the second finds the
    first's ledger and appends to it.  Moved by hard links, which never replace a file:
    a process that made the ledger some other way meanwhile (the library, ``serve``)
    keeps it, and this command fails, nothing appended, asking to run it again (it is
    then an append to that ledger).  Deleting a database that another process may
    already have opened could lose what that process writes; this never shows an
    unfinished database to another process at all.
    """
    from pathlib import Path

    from ledger.config import ConfigError

    path = config.sqlite_path.absolute()
    key_path = config.signing_key_path
    make_key = config.signing_key is None and not key_path.exists()
    made: list[Path] = []  # directories made here, removed again on failure
    prefix = f".{path.name}-new-"
    try:
        for directory in {path.parent, key_path.parent} if make_key else {path.parent}:
            made += [d for d in [directory, *directory.parents] if not d.exists()]
            directory.mkdir(parents=True, exist_ok=True)
        lock = _lock_directory(path.parent, made)
    except OSError as exc:
        _remove_made(made)
        raise ConfigError(
            f"cannot use {exc.filename or path.parent} for the ledger's database: {exc.strerror}"
        ) from None
    try:
        if path.exists():
            # Another first write finished while this one waited for the lock: this
            # command is an ordinary write to that ledger (its key is there too).
            yield config
            return
        yield from _build_and_link(config, path, key_path, make_key, made, prefix)
    finally:
        os.close(lock)


def _build_and_link(
    config: Settings, path: Any, key_path: Any, make_key: bool, made: list[Any], prefix: str
) -> Iterator[Settings]:
    """``first_write``'s body, with the directory's lock held."""
    import dataclasses
    import shutil
    import sqlite3
    import tempfile
    from pathlib import Path

    from ledger.config import ConfigError
    from ledger.errors import StoreError
    from ledger.store.wake import mark_commit

    try:
        _remove_abandoned(path.parent, prefix)
        scratch = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=path.parent))
    except OSError as exc:
        _remove_made(made)
        raise ConfigError(
            f"cannot use {exc.filename or path.parent} for the ledger's database: {exc.strerror}"
        ) from None
    # Asked again with the lock held: a first write that waited may find the key made.
    make_key = make_key and not key_path.exists()
    done = False
    try:
        new = dataclasses.replace(config, database_url=f"sqlite:///{scratch / path.name}")
        if make_key:
            from ledger.audit import key_name
            from ledger.checkpoint import create_signing_key

            create_signing_key(scratch / key_path.name, key_name(config))
            new = dataclasses.replace(new, signing_key=scratch / key_path.name)
        yield new
        built = scratch / path.name
        # All of it in the database file (the ledger closed it: normally a no-op).
        connection = sqlite3.connect(built)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        try:
            if make_key:
                os.link(scratch / key_path.name, key_path)
            os.link(built, path)
        except FileExistsError as exc:
            raise StoreError(
                f"another process created {exc.filename2 or path} while this command ran, "
                "so this one's ledger was not put there; run the command again to append "
                "to that ledger"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot create {exc.filename2 or path}: {exc.strerror}") from None
        for directory in {path.parent, key_path.parent}:
            _fsync_directory(directory)
        mark_commit(str(path))
        done = True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not done:
            _remove_made(made)


def _lock_directory(directory: Any, made: list[Any]) -> int:
    """An exclusive ``flock`` on the directory of a ledger being made, held until the
    first write has put it in place or given up: first writes to one new home take turns,
    and the second finds the first's ledger and appends to it, as concurrent appends to an
    existing ledger wait for SQLite's lock.  A first write that failed removes the
    directory it made, so a waiter that then holds a lock on a removed directory makes it
    again and locks that one."""
    import fcntl

    while True:
        fd = os.open(directory, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(directory)
        except FileNotFoundError:
            current = None
        held = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)
        made += [d for d in [directory, *directory.parents] if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)


def _remove_made(made: list[Any]) -> None:
    """The directories a failed first write made (deepest first; only if empty)."""
    for directory in sorted(made, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()


def _remove_abandoned(directory: Any, prefix: str) -> None:
    """Private directories of first writes whose process is gone (killed midway: the
    database inside was never put in place, and may be large)."""
    import shutil

    for candidate in directory.glob(f"{prefix}*"):
        pid = candidate.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or not candidate.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(candidate, ignore_errors=True)
        except OSError:
            pass  # alive (another user's): not ours to remove


def _fsync_directory(directory: Any) -> None:
    """Make a new name in ``directory`` durable (a commit is durable when a command returns)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
