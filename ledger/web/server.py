"""The ASGI application of ``ledger web``: security, errors, health, and the parts together.

Read-only by construction: every route is a GET.  What guards it:

- a bearer token (``--token`` / ``LEDGER_WEB_TOKEN``) when one is configured, required on
  any address that is not loopback (``ledger web`` refuses to start without one there);
  the same token is accepted as HTTP Basic's password, so a browser can sign in;
- CORS off unless origins are configured;
- security headers on every answer, a Content-Security-Policy with no inline script;
- bounded input: query strings, values per parameter, page sizes, concurrent streams.

Errors are JSON with the CLI's fields (``error``, ``message``, ``field``, ``line``, and
``rule`` for a rule) and status codes: 400 bad input, 401 no or wrong token, 404 unknown,
405 not a GET, 414 query too long, 503 store unavailable or views catching up; 500 with
no detail (it is logged) for anything else.  Pages get the same as a small HTML page.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import html
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import LedgerError, RuleViolation, StoreError
from ledger.web.params import MAX_QUERY_BYTES

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.projections.query import Views

log = logging.getLogger("ledger.web")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-resource-policy", "same-origin"),
]
OPEN_PATHS = frozenset({"/healthz"})
"""Answered without a token: liveness says nothing about the ledger."""


@dataclass
class WebConfig:
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_streams: int = 32
    """Concurrent ``/api/stream`` connections at most (each holds a poller)."""
    stream_poll: float = 0.25
    """Seconds between store polls of an idle ``/api/stream``."""
    zone: str = "UTC"
    """The calendar of bare dates and days when a request gives no ``tz`` (``--tz``)."""


@dataclass
class WebState:
    """What the handlers share: the ledger (one application, one pool of connections)."""

    app: Ledger
    config: WebConfig
    streams: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.streams = threading.BoundedSemaphore(self.config.max_streams)

    def views(self) -> Views:
        from ledger.projections.query import Views

        return Views(self.app)


def state_of(request: Request[Any, Any, Any]) -> WebState:
    state: WebState = request.app.state.web
    return state


# --- errors ------------------------------------------------------------------------------


class TooLong(HTTPException):
    status_code = 414


def _status_of(exc: Exception, path: str) -> int:
    from eventsourcing.persistence import PersistenceError

    from ledger.errors import InputError
    from ledger.times import TimeParseError

    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, RuleViolation) and exc.rule == "unknown-reference":
        return 404
    if isinstance(exc, StoreError | PersistenceError):
        return 503
    if isinstance(exc, InputError | RuleViolation | TimeParseError):
        return 400
    if isinstance(exc, LedgerError):
        return 400
    return 500


def error_body(exc: Exception, status: int) -> dict[str, Any]:
    """The CLI's JSON error fields for an exception answered with ``status``."""
    from ledger.config import ConfigError

    if isinstance(exc, LedgerError):
        return exc.to_dict()
    field_name = None
    if status == 500:
        return {"error": "InternalError", "message": "internal error", "field": None, "line": None}
    if status == 503 and not isinstance(exc, HTTPException | ConfigError):
        message = "the store is unavailable"
        return {"error": "StoreError", "message": message, "field": None, "line": None}
    if isinstance(exc, HTTPException):
        name = {
            400: "InputError",
            401: "NotAuthorized",
            404: "NotFound",
            405: "MethodNotAllowed",
            414: "InputError",
        }.get(status, type(exc).__name__)
        message = exc.detail
        extra = exc.extra if isinstance(exc.extra, list) else []
        if extra and isinstance(extra[0], dict):  # Litestar's validation: the parameter
            field_name = extra[0].get("key")
            message = f"{extra[0].get('message', message)}"
        return {"error": name, "message": message, "field": field_name, "line": None}
    return {"error": type(exc).__name__, "message": str(exc), "field": None, "line": None}


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    from ledger.projections.answers import encode

    status = _status_of(exc, request.url.path)
    if status == 500:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    body = error_body(exc, status)
    headers: dict[str, str] = {}
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="ledger", Basic realm="ledger"'
    if isinstance(exc, HTTPException) and exc.headers:
        headers.update(exc.headers)
    if _wants_html(request):
        from ledger.web.pages import error_page

        return Response(
            error_page(status, body),
            status_code=status,
            media_type="text/html",
            headers=headers,
        )
    return Response(
        encode(body), status_code=status, media_type="application/json", headers=headers
    )


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path in ("/healthz", "/readyz", "/openapi.json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def reject_unknown_parameters(request: Request[Any, Any, Any]) -> None:
    """``before_request``: a query parameter the handler does not take is an error (400),
    so a typo (``asof=``) never widens an answer silently."""
    from ledger.errors import InputError

    allowed = _parameters_of(request.route_handler)
    for name in request.query_params:
        if name not in allowed and name != "tz":
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise InputError(f"unknown parameter (this takes {takes})", field=name[:80])


def read_days_in_zone(request: Request[Any, Any, Any]) -> None:
    """``before_request``: the calendar of bare dates and of the days an answer shows, as
    the CLI's ``--tz``: the ``tz`` parameter, else the server's zone.  Set for this
    request's task only (each request runs in a context of its own)."""
    from ledger.errors import InputError
    from ledger.times import TimeParseError, load_zone, start_reading_in

    name = request.query_params.get("tz") or state_of(request).config.zone
    try:
        zone = load_zone(name[:200])
    except TimeParseError as exc:
        raise InputError(str(exc), field="tz") from None
    start_reading_in(zone)


async def before_request(request: Request[Any, Any, Any]) -> None:
    """Async, so it runs in the request's own task: the zone it sets reaches the handler
    (a sync hook would run in a worker thread, in a copy of the context)."""
    reject_unknown_parameters(request)
    read_days_in_zone(request)


@functools.cache
def _parameters_of(handler: Any) -> frozenset[str]:
    path_params = {"event_id", "licence_id"}
    names = handler.parsed_fn_signature.parameters
    return frozenset(n for n in names if n not in ("request", *path_params))


# --- middleware --------------------------------------------------------------------------


def guard(config: WebConfig) -> Callable[[ASGIApp], ASGIApp]:
    """Token check and query bound for every HTTP request, before routing."""
    expected = config.token.encode() if config.token else None

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
                    raise TooLong(detail=f"the query is longer than {MAX_QUERY_BYTES} bytes")
                if expected is not None and scope["path"] not in OPEN_PATHS:
                    presented = _presented_token(scope)
                    if presented is None or not hmac.compare_digest(presented, expected):
                        raise NotAuthorizedException(
                            detail="a valid token is required (Authorization: Bearer TOKEN)"
                        )
            await app(scope, receive, send)

        return wrapped

    return middleware


def _presented_token(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name != b"authorization":
            continue
        scheme, _, credentials = value.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer":
            return credentials.strip()
        if scheme == b"basic":  # a browser's sign-in dialog: the token is the password
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                return None
            return decoded.partition(b":")[2]
    return None


async def security_headers(message: Message, scope: Scope) -> None:
    """``before_send``: the security headers on every response, errors included."""
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        for name, value in SECURITY_HEADERS:
            headers[name] = value


# --- health ------------------------------------------------------------------------------


@get("/healthz", sync_to_thread=False, tags=["health"], summary="Liveness")
def healthz() -> Response[bytes]:
    """The server is up (answers without a token)."""
    return Response(b'{"status":"ok"}', media_type="application/json")


@get("/readyz", sync_to_thread=True, tags=["health"], summary="Readiness")
def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Ready when the stored views hold every stored event (503 while they catch up)."""
    from ledger.projections.answers import encode

    state = state_of(request)
    v = state.views()
    head = state.app.head()
    position = v.store.position()
    ready = position >= head
    body = {"status": "ready" if ready else "catching-up", "head": head, "views": position}
    return Response(encode(body), status_code=200 if ready else 503, media_type="application/json")


@get("/openapi.json", sync_to_thread=False, include_in_schema=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    from ledger.projections.answers import encode

    return Response(encode(request.app.openapi_schema.to_schema()), media_type="application/json")


# --- the application ---------------------------------------------------------------------


def create_app(settings: Settings, config: WebConfig | None = None) -> Litestar:
    """The web application over the ledger that ``settings`` names (opened here, closed on
    shutdown)."""
    from ledger.app import Ledger
    from ledger.web import api, pages

    config = config or WebConfig()
    ledger_app = Ledger(settings)
    state = WebState(ledger_app, config)

    def close() -> None:
        ledger_app.close()

    cors = (
        CORSConfig(allow_origins=list(config.cors_origins), allow_methods=["GET"])
        if config.cors_origins
        else None
    )
    app = Litestar(
        route_handlers=[healthz, readyz, openapi_json, *api.HANDLERS, *pages.HANDLERS],
        exception_handlers={Exception: handle_exception},
        middleware=[guard(config)],
        before_request=before_request,
        before_send=[security_headers],
        cors_config=cors,
        on_shutdown=[close],
        request_max_body_size=1024,  # nothing is ever posted
        openapi_config=OpenAPIConfig(
            title="ledger",
            version="1",
            description=(
                "Read-only HTTP API of the export-control compliance ledger: the views of "
                "`ledger VIEW -o json`, the log, export checks and a live event stream."
            ),
            path="/_openapi",
        ),
        debug=False,
    )
    app.state.web = state
    return app


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)
