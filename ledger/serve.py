"""``ledger serve``'s process supervision: the lock on the home, the embedded NATS
server, and the services (relay, projector, web) run as threads until a stop is asked
or one of them dies.  The CLI command parses, calls these and reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ledger.config import redact_url
from ledger.errors import LedgerError

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.config import Settings

JOIN_SECONDS = 30.0
"""How long a stopping service may take to drain and record its position."""


class ServeError(LedgerError):
    """serve cannot start (one line, exit 1)."""


class ServeLock:
    """``$LEDGER_HOME/serve.lock``: an exclusive ``flock`` held for the life of ``serve``.

    The file names its holder (pid, NATS URL); the lock itself dies with the process, so
    a ``serve`` killed with SIGKILL leaves nothing to clean up.
    """

    def __init__(self, config: Settings):
        self.path = config.home / "serve.lock"
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; if another process holds it, return that holder's description."""
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 4096).decode(errors="replace").strip()
            os.close(fd)
            return text or "pid unknown"
        self._fd = fd
        self.record(None)
        return None

    def record(self, url: str | None) -> None:
        import os

        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        text = f"pid {os.getpid()}" + (f", NATS {redact_url(url)}" if url else "")
        os.pwrite(self._fd, (text + "\n").encode(), 0)

    def release(self) -> None:
        import os

        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)

    def held_by_another(self) -> bool:
        """Whether some other process holds the lock (a ``serve`` is running)."""
        import fcntl
        import os

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --- the embedded NATS server ------------------------------------------------------------


def start_embedded(config: Settings) -> tuple[str, Any]:
    """Start the embedded nats-server and record its URL in ``$LEDGER_HOME/nats.url``.

    Refused (``ServeError``) while a server recorded there still answers."""
    import asyncio

    from ledger import stream as st
    from ledger.nats_auth import embedded_server

    recorded = config.resolved_nats_url()
    if recorded:

        async def alive() -> bool:
            try:
                nc = await st.connect(
                    recorded, connect_timeout=1, **config.nats_options("subscriber")
                )
            except st.NatsUnavailable:
                return False
            await nc.close()
            return True

        if asyncio.run(alive()):
            raise ServeError(
                f"a NATS server recorded in {config.nats_url_file} is running at "
                f"{redact_url(recorded)} "
                "(another `ledger serve`?); stop it or set LEDGER_NATS_URL to use it"
            )
    server = embedded_server(config)
    url = server.start()
    config.nats_url_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.nats_url_file.with_suffix(".tmp")
    tmp.write_text(url + "\n")
    tmp.replace(config.nats_url_file)
    return url, server


def stop_embedded(config: Settings, url: str, server: Any) -> None:
    """Forget the recorded URL (if it is still ours), then stop the server."""
    try:
        if config.nats_url_file.read_text().strip() == url:
            config.nats_url_file.unlink()
    except OSError:
        pass
    server.stop()


# --- the services ---------------------------------------------------------------------------


class Services:
    """The relay and the projector (each a thread), and the web server if one is given.

    ``run`` starts them and waits for the stop event; if one of them dies, it stops the
    others and says which (and why).
    """

    def __init__(
        self,
        app: Ledger,
        url: str,
        *,
        projector: bool = True,
        web: Any = None,
        log: logging.Logger | None = None,
    ):
        from ledger.projections.runner import ProjectorTotals
        from ledger.relay import Relay

        self.log = log or logging.getLogger("ledger.serve")
        self.config = app.settings
        self.relay = Relay(app, url)
        self.projector_totals: ProjectorTotals | None = ProjectorTotals() if projector else None
        self.web = web
        self.errors: dict[str, BaseException] = {}
        self.threads: list[threading.Thread] = []

    def _thread(self, name: str, target: Callable[..., object], *args: Any) -> None:
        self.threads.append(
            threading.Thread(target=self._logged(target, name), args=args, name=name, daemon=True)
        )

    def _logged(self, target: Callable[..., object], name: str) -> Callable[..., object]:
        """``target`` in a thread: its exception is logged and kept in ``errors[name]``."""

        def run(*args: Any) -> None:
            from ledger.relay import RelayError

            try:
                target(*args)
            except RelayError as exc:  # an operational refusal, explained in one line
                self.errors[name] = exc
                self.log.error("%s stopped: %s", name, exc)
            except Exception as exc:
                self.errors[name] = exc
                self.log.exception("%s failed", name)

        return run

    def run(
        self, stop: threading.Event, *, say: Callable[[str], None] = print
    ) -> tuple[str, str] | None:
        """Run until ``stop`` is set; returns (service, why) if one of them died."""
        self._thread("relay", self.relay.run_forever, stop)
        if self.projector_totals is not None:
            from ledger.projections.runner import run_forever

            self._thread("projector", run_forever, self.config, stop, self.projector_totals)
        for t in self.threads:
            t.start()
        if self.web is not None:
            self.web.start()
            say(f"Web {self.web.url}/")
        say(
            f"Relaying to stream {self.config.stream}"
            + ("; projector running" if self.projector_totals is not None else "")
            + ". Ctrl-C or SIGTERM stops."
        )
        failed: tuple[str, str] | None = None
        while not stop.wait(0.5):
            dead = next((t for t in self.threads if not t.is_alive()), None)
            if dead is not None:  # one service died: stop the others, report it
                error = self.errors.get(dead.name)
                failed = (dead.name, first_line(error) if error else "stopped unexpectedly")
                break
            if self.web is not None and not self.web.is_alive():
                failed = ("web", "the web server stopped unexpectedly")
                break
        stop.set()
        if self.web is not None:
            self.web.stop()
        for t in self.threads:
            t.join(timeout=JOIN_SECONDS)
        return failed
