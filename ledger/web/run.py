"""Running the web application under uvicorn: on a socket we bind ourselves (so a port in
use is one clear error, and port 0 picks a free one), in the foreground (``ledger web``)
or in a thread next to other services (``ledger serve --web``, ``ledger demo --web``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ledger.config import ConfigError

if TYPE_CHECKING:
    import uvicorn

    from ledger.config import Settings
    from ledger.web.server import WebConfig

TOKEN_ENV = "LEDGER_WEB_TOKEN"
MIN_TOKEN = 16
"""Shorter tokens are refused: a bearer token is the only lock on a non-loopback address."""


class WebError(RuntimeError):
    """The server could not start (the address is taken, say)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_access(host: str, token: str | None) -> None:
    """Refuse (``ConfigError``, exit 2) a non-loopback address without a token, and a token
    too short to be one."""
    if token is not None and len(token) < MIN_TOKEN:
        raise ConfigError(
            f"the web token must be at least {MIN_TOKEN} characters "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"--host {host} is not a loopback address: give --token or {TOKEN_ENV} "
            "(clients then send Authorization: Bearer TOKEN)"
        )


def token_from_env(token: str | None) -> str | None:
    return token if token is not None else (os.environ.get(TOKEN_ENV) or None)


class WebServer:
    """uvicorn serving ``create_app(settings, config)`` on ``host:port``."""

    def __init__(self, settings: Settings, host: str, port: int, config: WebConfig):
        check_access(host, config.token)
        self.settings = settings
        self.host = host
        self.config = config
        self.socket = self._bind(host, port)
        self.port = self.socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: an answer's headers and body go out as two
        # writes, and with Nagle the body waited for the client's delayed ACK (~40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            sock.close()
            raise WebError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        sock.listen(128)
        sock.set_inheritable(True)
        return sock

    def _uvicorn(self) -> uvicorn.Server:
        import uvicorn

        from ledger.web.server import create_app

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                """SIGINT/SIGTERM stop the server gracefully, and that is all: uvicorn's
                own version raises the signal again afterwards, killing the command
                before it can say "Stopped." and exit 0."""
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handled = (signal.SIGINT, signal.SIGTERM)
                previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
                try:
                    yield
                finally:
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)

        app = create_app(self.settings, self.config)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        return Server(config)

    def run(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM."""
        self._server = self._uvicorn()
        self._server.run(sockets=[self.socket])

    def start(self) -> None:
        """Serve in a thread (``stop`` ends it); returns once it accepts connections."""
        self._server = server = self._uvicorn()
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self.socket]}, name="web", daemon=True
        )
        self._thread.start()
        while not server.started and self._thread.is_alive():
            threading.Event().wait(0.02)
        if not server.started:
            raise WebError("the web server stopped while starting")

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.socket.close()
