"""The HTTP API (``ledger web``) against the CLI, on the shipped scenario.

Every endpoint must answer exactly what ``ledger VIEW -o json`` prints for the same
options and (as_of, known_at): compared after parsing, any difference fails.  Then the
errors, the token rule, the security headers, paging, and the event stream resuming from
``Last-Event-ID`` while events are appended — over real HTTP (uvicorn on loopback).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import ConfigError, Settings
from ledger.scenario import MILITARY_APPLICATION_DEC1, scenario_path
from ledger.web.run import WebServer, check_access
from ledger.web.server import WebConfig, create_app
from tests import factory as f

TOKEN = "s3cret-token-for-tests-only"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web")
    result = CliRunner().invoke(
        cli, ["--home", str(path), "import", "--backfill", str(scenario_path())]
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[TestClient[Any]]:
    app = create_app(Settings.from_env({"LEDGER_HOME": str(home)}))
    with TestClient(app) as c:
        yield c


def cli_json(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--home", str(home), *args, "-o", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def api_json(client: TestClient[Any], path: str, params: list[tuple[str, str]]) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def military_request() -> list[tuple[str, str]]:
    app = Ledger(Settings.from_env({"LEDGER_HOME": "/nonexistent-unused"}))
    app.close()
    # The scenario's own application of 2025-12-01 (rejected: a military end user).
    import msgspec

    for line in scenario_path().read_text().splitlines():
        event = msgspec.json.decode(line)
        if event["entity_id"] == MILITARY_APPLICATION_DEC1 and event["type"] == (
            "ApplicationSubmitted"
        ):
            return [
                (name, str(event[name]))
                for name in ("exporter", "end_user", "item", "quantity", "unit", "destination")
            ] + [("end_use", event["end_use"])]
    raise AssertionError("the scenario has no military application")


WHEN = [
    ("2025-11-14", "2025-11-14"),
    ("2025-12-05", "2025-12-05"),
    ("2025-12-05", "2025-11-20"),
    ("2025-11-14T13:01:00+08:00", "2025-12-31T12:00:00Z"),
]

# (endpoint, query parameters, the CLI command and options that answer the same)
CASES: list[tuple[str, list[tuple[str, str]], list[str]]] = [
    ("/api/licences", [], ["licences"]),
    ("/api/licences", [("exporter", "jl-mag")], ["licences", "--exporter", "jl-mag"]),
    ("/api/licences", [("status", "active")], ["licences", "--status", "active"]),
    (
        "/api/licences",
        [("licence", "cn-gl-2025-jl-mag-001"), ("end_user", "example-de-drives")],
        ["licences", "--licence", "cn-gl-2025-jl-mag-001", "--end-user", "example-de-drives"],
    ),
    ("/api/commitments", [], ["commitments"]),
    (
        "/api/commitments",
        [("agreement", "busan-2025"), ("party", "CN")],
        ["commitments", "--agreement", "busan-2025", "--party", "CN"],
    ),
    ("/api/asymmetry", [], ["asymmetry"]),
    ("/api/asymmetry", [("agreement", "busan-2025")], ["asymmetry", "--agreement", "busan-2025"]),
    ("/api/measures", [], ["measures"]),
    ("/api/measures", [("status", "suspended")], ["measures", "--status", "suspended"]),
    ("/api/end-users", [], ["end-users"]),
    ("/api/end-users", [("all_roles", "true")], ["end-users", "--all-roles"]),
    ("/api/findings", [], ["findings"]),
    (
        "/api/findings",
        [("kind", "commitment-overdue"), ("kind", "late-implementation")],
        ["findings", "--kind", "commitment-overdue", "--kind", "late-implementation"],
    ),
]


@pytest.mark.parametrize(("as_of", "known_at"), WHEN)
def test_every_view_answers_what_the_cli_prints(
    home: Path, client: TestClient[Any], as_of: str, known_at: str
) -> None:
    when = [("as_of", as_of), ("known_at", known_at)]
    for path, params, command in CASES:
        expected = cli_json(home, *command, "--as-of", as_of, "--known-at", known_at)
        got = api_json(client, path, params + when)
        assert got == expected, (path, params)
        assert got["as_of"] and got["known_at"]  # the answer cites its (T, K)
        # format=csv: the CLI's CSV, byte for byte.
        result = CliRunner().invoke(
            cli,
            ["--home", str(home), *command, "--as-of", as_of, "--known-at", known_at, "-o", "csv"],
        )
        assert result.exit_code == 0, result.output
        response = client.get(path, params=[*params, *when, ("format", "csv")])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert response.content == result.stdout_bytes, (path, params)
    pairs = client.get("/api/asymmetry", params=[*when, ("pairs", "true"), ("format", "csv")])
    expected_pairs = CliRunner().invoke(
        cli,
        [
            "--home",
            str(home),
            "asymmetry",
            "--pairs",
            "--as-of",
            as_of,
            "--known-at",
            known_at,
            "-o",
            "csv",
        ],
    )
    assert pairs.content == expected_pairs.stdout_bytes and b"one_sided_days" in pairs.content


def test_check_answers_what_the_cli_prints(home: Path, client: TestClient[Any]) -> None:
    request = military_request()
    for as_of, known_at in WHEN[:3]:
        options = [x for name, value in request for x in (f"--{name.replace('_', '-')}", value)]
        expected = cli_json(home, "check", *options, "--as-of", as_of, "--known-at", known_at)
        got = api_json(client, "/api/check", [*request, ("as_of", as_of), ("known_at", known_at)])
        assert got == expected
    assert got["decision"]["outcome"] == "rejected"


def test_events_are_the_log_and_pages_cover_it(home: Path, client: TestClient[Any]) -> None:
    for options, params in [
        ([], []),
        (["--entity", "commitment:busan-cn-general-licences"], []),
        (["--type", "ClauseSuspended", "--type", "SuspensionEnded"], []),
        (["--party", "CN", "--include-retracted"], []),
        (["--order", "recorded", "--include-retracted"], []),
        (["--source-status", "reported", "--source-status", "claim"], []),
    ]:
        query = params + _log_params(options)
        expected = cli_json(
            home, "log", *options, "--as-of", "2025-12-05", "--known-at", "2025-12-05"
        )
        got = api_json(
            client,
            "/api/events",
            [*query, ("as_of", "2025-12-05"), ("known_at", "2025-12-05"), ("limit", "1000")],
        )
        assert got["events"] == expected, options
        assert got["next"] is None and got["truncated"] is False
    # Pages by position, in recorded order: together the whole record, in order, once.
    everything = cli_json(home, "log", "--order", "recorded", "--include-retracted")
    pages: list[Any] = []
    query = [("order", "recorded"), ("include_retracted", "true"), ("limit", "7")]
    after: int | None = None
    while True:
        page = api_json(client, "/api/events", query + ([("after", str(after))] if after else []))
        pages += page["events"]
        after = page["next"]
        if after is None:
            break
    assert pages == everything
    # One event, as `ledger show` gives it.
    event_id = everything[10]["event"]["event_id"]
    shown = cli_json(home, "show", event_id)
    assert api_json(client, f"/api/events/{event_id}", []) == shown


def _log_params(options: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(options):
        name = options[i].removeprefix("--").replace("-", "_")
        if name == "include_retracted":
            out.append((name, "true"))
            i += 1
        else:
            out.append((name, options[i + 1]))
            i += 2
    return out


def error(client: TestClient[Any], path: str, status: int, **kw: Any) -> dict[str, Any]:
    response = client.request(kw.pop("method", "GET"), path, **kw)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message", "field", "line"}
    assert "Traceback" not in response.text
    return body


def test_errors_are_json_with_the_cli_fields(client: TestClient[Any]) -> None:
    body = error(client, "/api/licences?as_of=yesterday", 400)
    assert body["field"] == "as_of" and "ISO-8601" in body["message"]
    assert error(client, "/api/licences?asof=2025-11-14", 400)["field"] == "asof"
    assert error(client, "/api/licences?status=lost", 400)["field"] == "status"
    assert error(client, "/api/findings?kind=nope", 400)["field"] == "kind"
    assert error(client, "/api/events?limit=0", 400)["field"] == "limit"
    assert error(client, "/api/events?limit=1001", 400)["field"] == "limit"
    assert error(client, "/api/events?after=3", 400)["field"] == "after"
    assert error(client, "/api/events?type=Nope", 400)["field"] == "type"
    assert error(client, "/api/events?source_status=rumour", 400)["field"] == "source_status"
    assert error(client, "/api/licences?format=xml", 400)["field"] == "format"
    assert error(client, "/api/events?format=csv", 400)["field"] == "format"
    assert error(client, "/api/events/not-a-uuid", 400)["field"] == "event_id"
    missing = error(client, "/api/events/01936f1e-5c1a-7c3e-9d2b-6f0a1b2c3d4e", 404)
    assert missing["rule"] == "unknown-reference"
    assert error(client, "/api/nothing-here", 404)["error"] == "NotFound"
    assert error(client, "/api/check?exporter=jl-mag", 400)["field"] == "quantity"
    check = "/api/check?exporter=a&end_user=b&item=c&destination=US&end_use=x&quantity="
    assert error(client, check + "1e-20", 400)["rule"] == "quantity-precision"
    assert error(client, check + "-1", 400)["field"] == "quantity"
    assert error(client, check + "1&destination=usa", 400)["field"] == "destination"
    # Read-only: nothing but GET (and HEAD) is routed.
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert error(client, "/api/licences", 405, method=method)["error"] == "MethodNotAllowed"
    # Bounded: a huge query string is refused before anything is parsed.
    assert error(client, "/api/licences?licence=" + "x" * 5000, 414)["field"] is None
    too_many = "&".join(f"licence=L{i}" for i in range(51))
    assert error(client, "/api/licences?" + too_many, 400)["field"] == "licence"
    assert error(client, "/api/licences?exporter=" + "x" * 201, 400)["field"] == "exporter"


def test_security_headers_cors_and_openapi(home: Path, client: TestClient[Any]) -> None:
    for path in ("/api/licences", "/nothing", "/healthz", "/openapi.json"):
        response = client.get(path, headers={"origin": "https://evil.example"})
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp  # no script at all
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in response.headers  # CORS off by default
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/licences",
        "/api/commitments",
        "/api/asymmetry",
        "/api/measures",
        "/api/end-users",
        "/api/findings",
        "/api/check",
        "/api/events",
        "/api/events/{event_id}",
        "/api/stream",
        "/healthz",
        "/readyz",
    ):
        assert set(spec["paths"][path]) == {"get"}, path
    names = {p["name"] for p in spec["paths"]["/api/licences"]["get"]["parameters"]}
    assert {"as_of", "known_at", "exporter", "status", "licence", "end_user"} <= names
    allowed = WebConfig(cors_origins=("https://dash.example",))
    with TestClient(create_app(Settings.from_env({"LEDGER_HOME": str(home)}), allowed)) as c:
        ok = c.get("/api/asymmetry", headers={"origin": "https://dash.example"})
        assert ok.headers["access-control-allow-origin"] == "https://dash.example"
        other = c.get("/api/asymmetry", headers={"origin": "https://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_health_and_readiness(home: Path, client: TestClient[Any]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/api/asymmetry")  # catches the views up
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.fixture
def live(home: Path) -> Iterator[WebServer]:
    server = WebServer(
        Settings.from_env({"LEDGER_HOME": str(home)}), "127.0.0.1", 0, WebConfig(token=TOKEN)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_token_rule(live: WebServer) -> None:
    import socket

    # Inherited by each connection: without it a keep-alive answer waited ~40 ms for
    # the client's delayed ACK between its headers and its body.
    assert live.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    url = live.url
    refused = httpx.get(f"{url}/api/licences")
    assert refused.status_code == 401
    assert refused.json()["error"] == "NotAuthorized"
    assert "Bearer" in refused.headers["www-authenticate"]
    wrong = httpx.get(f"{url}/api/licences", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{url}/api/events/{'0' * 8}").status_code == 401  # before anything
    good = httpx.get(f"{url}/api/licences", headers={"authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    basic = httpx.get(f"{url}/api/licences", auth=("auditor", TOKEN))  # a browser's sign-in
    assert basic.status_code == 200
    assert httpx.get(f"{url}/healthz").status_code == 200  # liveness needs no token
    # Without a token, only loopback: refused before anything starts.
    check_access("127.0.0.1", None)
    check_access("::1", None)
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        with pytest.raises(ConfigError, match="not a loopback address"):
            check_access(host, None)
    with pytest.raises(ConfigError, match="at least 16"):
        check_access("0.0.0.0", "short")


def test_cli_refuses_a_public_address_without_a_token(home: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--home", str(home), "web", "--host", "0.0.0.0"], env={"LEDGER_WEB_TOKEN": ""}
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --host 0.0.0.0 is not a loopback address: give --token or LEDGER_WEB_TOKEN "
        "(clients then send Authorization: Bearer TOKEN)"
    ]


def _sse(response: httpx.Response, count: int) -> list[tuple[int, dict[str, Any]]]:
    """The first ``count`` events of an SSE response: (id, data)."""
    out: list[tuple[int, dict[str, Any]]] = []
    event_id: int | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            assert event_id is not None
            out.append((event_id, json.loads("\n".join(data))))
            data, event_id = [], None
            if len(out) == count:
                break
    return out


def test_stream_resumes_from_last_event_id_while_events_are_appended(
    live: WebServer, home: Path
) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    app = Ledger(Settings.from_env({"LEDGER_HOME": str(home)}))
    head = app.head()
    stop = threading.Event()

    def append() -> None:
        for i in range(30):
            if stop.is_set():
                return
            app.append_objects([f.party(f"sse-party-{i}")])
            time.sleep(0.02)

    writer = threading.Thread(target=append)
    try:
        with httpx.Client(base_url=live.url, headers=auth, timeout=20) as http:
            # Resume from a position in the past: what was stored after it, then the new.
            resume_at = head - 5
            writer.start()
            with http.stream(
                "GET", "/api/stream", headers={"last-event-id": str(resume_at)}
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                first = _sse(response, 12)
            # The connection dropped; reconnect from the last id received, as EventSource does.
            last = first[-1][0]
            with http.stream("GET", "/api/stream", headers={"last-event-id": str(last)}) as r2:
                second = _sse(r2, head + 30 - last)
            writer.join()
            positions = [p for p, _ in first + second]
            assert positions == list(range(resume_at + 1, head + 31))  # none lost, none twice
            assert [e["entity_id"] for _, e in (first + second)[5:]] == [
                f"sse-party-{i}" for i in range(30)
            ]
            # Filters as `ledger watch --filter`: only the parties' events, from position 1.
            with http.stream(
                "GET", "/api/stream", params={"all": "true", "filter": "party:sse-party-3"}
            ) as r3:
                only = _sse(r3, 1)
            assert only[0][1]["entity_id"] == "sse-party-3"
            # since=TIME as `ledger watch --since`: the first event recorded at or after it.
            record = cli_json(home, "log", "--order", "recorded", "--include-retracted")
            since = dt.datetime(2025, 11, 14, tzinfo=dt.UTC)
            first = next(
                e for e in record if dt.datetime.fromisoformat(e["event"]["recorded_at"]) >= since
            )
            with http.stream("GET", "/api/stream", params={"since": "2025-11-14"}) as r4:
                ((position, event),) = _sse(r4, 1)
            assert position == first["position"] and event == first["event"]
            both = http.get("/api/stream", params={"since": "2025-11-14", "all": "true"})
            assert both.status_code == 400 and both.json()["field"] in ("all", "since")
            bad = http.get("/api/stream", params={"filter": "party", "all": "true", "limit": "x"})
            assert bad.status_code == 400 and bad.json()["field"] == "limit"
            covering = http.get("/api/stream", params=[("filter", "party"), ("filter", "party")])
            assert covering.status_code == 400 and covering.json()["field"] == "filter"
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        app.close()


PAGES = [
    "/",
    "/commitments?agreement=busan-2025&as_of=2025-11-14&known_at=2025-11-14",
    "/measures?as_of=2025-11-14&known_at=2025-11-14&issuer=CN&item=1C902.a",
    "/licences?as_of=2025-12-05&known_at=2025-12-05",
    "/licences/cn-gl-2025-jl-mag-001?as_of=2025-12-05",
    "/events",
    "/events?order=recorded&after=50&type=LicenceGranted",
    "/check",
    "/check?exporter=jl-mag&end_user=example-de-drives&item=1C905.a&quantity=10"
    "&destination=DE&end_use=motors&as_of=2025-12-05",
]


def test_pages_have_no_script_no_inline_style_and_escape_input(client: TestClient[Any]) -> None:
    html = {"accept": "text/html"}
    for page in PAGES:
        response = client.get(page, headers=html)
        assert response.status_code == 200, (page, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        text = response.text.lower()
        # The CSP allows neither: a page that used them would break in the browser.
        assert "<script" not in text and " style=" not in text and " on" + "click" not in text
        assert "what changed" in text or page.startswith("/check")
    hostile = "<script>alert(1)</script>"
    response = client.get("/events", params={"party": hostile}, headers=html)
    assert response.status_code == 200
    assert hostile not in response.text and "&lt;script&gt;" in response.text
    # Errors on a page are a page (for a browser), JSON for the API.
    missing = client.get("/licences/no-such-licence", headers=html)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    bad = client.get("/commitments?as_of=someday", headers=html)
    assert bad.status_code == 400 and "as_of" in bad.text and "<script" not in bad.text
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_tz_is_the_clis_tz(home: Path, client: TestClient[Any]) -> None:
    """tz= as the CLI's --tz: bare dates and the days in the answer in that calendar."""
    for path, command in (
        ("/api/measures", ["measures"]),
        ("/api/commitments", ["commitments"]),
        ("/api/findings", ["findings"]),
    ):
        when = ["--as-of", "2025-11-14", "--known-at", "2025-11-14"]
        result = CliRunner().invoke(
            cli, ["--home", str(home), "--tz", "Asia/Shanghai", *command, *when, "-o", "json"]
        )
        assert result.exit_code == 0, result.output
        params = [("as_of", "2025-11-14"), ("known_at", "2025-11-14"), ("tz", "Asia/Shanghai")]
        got = api_json(client, path, params)
        assert got == json.loads(result.stdout)
        assert got["tz"] == "Asia/Shanghai" and got["as_of"] == "2025-11-14T15:59:59.999999Z"
        csv = CliRunner().invoke(
            cli, ["--home", str(home), "--tz", "Asia/Shanghai", *command, *when, "-o", "csv"]
        )
        response = client.get(path, params=[*params, ("format", "csv")])
        assert response.content == csv.stdout_bytes
    # Each request has its own calendar: the next one without tz is UTC again.
    assert api_json(client, "/api/measures", [])["tz"] == "UTC"
    assert error(client, "/api/measures?tz=Mars/Olympus", 400)["field"] == "tz"


def test_a_blocked_view_holds_up_no_other_request(postgres_backend: Any) -> None:
    """A view that waits on its store (here: a table lock; in production, every licence of
    a large ledger) answers in a worker thread: meanwhile liveness, the other views and
    the event stream are served.  On the event loop, everything waited for it."""
    import psycopg

    from tests.conftest import POSTGRES_URL

    env = postgres_backend.env()
    result = CliRunner().invoke(
        cli, ["import", "--backfill", str(scenario_path())], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    settings = Settings.from_env(env)
    schema = postgres_backend.schemas[-1]
    server = WebServer(settings, "127.0.0.1", 0, WebConfig())
    server.start()
    blocked: dict[str, Any] = {}
    try:
        httpx.get(f"{server.url}/api/licences", timeout=60).raise_for_status()  # views built
        with psycopg.connect(POSTGRES_URL) as lock:
            lock.execute(f'LOCK TABLE "{schema}".views_current IN ACCESS EXCLUSIVE MODE')

            def licences() -> None:
                blocked["response"] = httpx.get(f"{server.url}/api/licences", timeout=60)

            waiting = threading.Thread(target=licences)
            waiting.start()
            with psycopg.connect(POSTGRES_URL, autocommit=True) as watch:
                for _ in range(600):  # until the request waits for the lock
                    row = watch.execute(
                        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE NOT l.granted AND c.relname = 'views_current'"
                    ).fetchone()
                    if row and row[0]:
                        break
                    time.sleep(0.05)
                else:
                    pytest.fail("the licences request never reached the lock")
            # The loop is free: these answer while the licences request still waits.
            assert httpx.get(f"{server.url}/healthz", timeout=15).status_code == 200
            events = httpx.get(f"{server.url}/api/events", params={"limit": "3"}, timeout=15)
            assert events.status_code == 200 and len(events.json()["events"]) == 3
            assert waiting.is_alive() and "response" not in blocked
            lock.rollback()
        waiting.join(60)
        assert blocked["response"].status_code == 200
        assert blocked["response"].json()["licences"]
    finally:
        server.stop()


def test_the_licence_page_and_api_give_its_active_spans(client: TestClient[Any]) -> None:
    """JL Mag's general licence, granted 2 December 2025 (00:00Z) for a year: on
    5 December active 4 days so far, through 1 December 2026; the API's JSON is the
    CLI's (active_spans, suspended_spans)."""
    page = client.get(
        "/licences/cn-gl-2025-jl-mag-001?as_of=2025-12-05", headers={"accept": "text/html"}
    )
    assert page.status_code == 200
    assert "active 4 days so far (since 2025-12-02, through 2026-12-01)" in page.text
    body = client.get(
        "/api/licences", params={"licence": "cn-gl-2025-jl-mag-001", "as_of": "2025-12-05"}
    ).json()
    (row,) = body["licences"]
    assert row["active_spans"] == [
        {"start": "2025-12-02T00:00:00Z", "end": "2026-12-02T00:00:00Z", "days": 4}
    ]
    assert row["suspended_spans"] == []


@pytest.mark.parametrize(
    "when",
    [
        "as_of=9999-12-31",
        "as_of=9999-12-31T23:59:59-05:00&known_at=9999-12-31",
        "as_of=0001-01-01&known_at=0001-01-01",
        "as_of=0001-01-01T00:00:00%2B14:00&tz=Pacific/Kiritimati",
    ],
)
def test_pages_at_the_ends_of_the_calendar(client: TestClient[Any], when: str) -> None:
    """A page asked about the calendar's last (or first) day draws its timeline: the
    axis, its margins and its ticks stop at the calendar's ends (the API answered; the
    pages were a 500, the axis overflowing 9999-12-31)."""
    html = {"accept": "text/html"}
    for page in ("/?", "/commitments?agreement=busan-2025&", "/measures?", "/licences?"):
        url = page + when
        response = client.get(url, headers=html)
        assert response.status_code == 200, (url, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        # A timeline of eight thousand years still has a readable number of ticks.
        assert response.text.count('class="tick"') <= 40, url


def test_text_answers_name_their_charset_once(client: TestClient[Any]) -> None:
    """Pages, error pages, the stylesheet and CSV say ``charset=utf-8`` once (they said
    it twice: the server adds it to every text/ type)."""
    html = {"accept": "text/html"}
    for path, headers, expected in (
        ("/licences?as_of=2025-12-05", html, "text/html; charset=utf-8"),
        ("/licences/no-such-licence", html, "text/html; charset=utf-8"),
        ("/static/style.css", {}, "text/css; charset=utf-8"),
        ("/api/licences?format=csv", {}, "text/csv; charset=utf-8"),
    ):
        assert client.get(path, headers=headers).headers["content-type"] == expected, path
