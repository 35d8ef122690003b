"""Shipped config is tested config: the 3-node NATS cluster of deploy/ runs from the very
files in deploy/, with ports remapped to free loopback ports, TLS certificates and nkeys
made here as the README says; the relay publishes to a replicated stream on it; a node is
killed while publishing; no acknowledged event is lost; a subscriber's key cannot publish.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.app import Ledger
from ledger.nats_server import find_nats_server
from tests import factory as f
from tests.conftest import Backend

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NATS_CONF = DEPLOY / "nats" / "nats.conf"
COMPOSE = DEPLOY / "compose.yaml"
NODES = ("nats-1", "nats-2", "nats-3")
ROLE_OF_SERVICE = {"relay": "relay", "projector": "projector", "cli": "subscriber"}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_compose_wires_the_cluster_and_the_services() -> None:
    services = compose()["services"]
    for node in NODES:
        service = services[node]
        assert "./nats/nats.conf:/etc/nats/nats.conf:ro" in service["volumes"]
        env = service["environment"]
        assert env["NATS_SERVER_NAME"] == node
        routes = {env[f"NATS_ROUTE_{i}"] for i in (1, 2, 3)}
        assert routes == {f"nats-route://{n}:{env['NATS_CLUSTER_PORT']}" for n in NODES}
    # Every variable the config file uses is set for every node.
    used = {word[1:] for word in NATS_CONF.read_text().split() if word.startswith("$NATS_")}
    for node in NODES:
        assert used <= set(services[node]["environment"]), used - set(services[node]["environment"])
    # The services run real commands of this CLI, against all three nodes, replicated.
    from click.testing import CliRunner

    from ledger.cli.main import cli

    for name in ("relay", "projector"):
        command = services[name]["command"][0]
        assert CliRunner().invoke(cli, [command, "--help"]).exit_code == 0, command
    env_example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "ledger.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env_example["LEDGER_STREAM_REPLICAS"] == "3"
    assert all(f"tls://{n}:4222" in env_example["LEDGER_NATS_URL"] for n in NODES)
    assert env_example["LEDGER_DATABASE_URL"].startswith("postgresql://")
    assert env_example["LEDGER_NATS_CA"] == "/etc/ledger/ca.pem"
    # Each ledger service holds its own role's seed and the CA, nothing else of NATS's.
    for name, role in ROLE_OF_SERVICE.items():
        service = services[name]
        assert service["environment"]["LEDGER_NATS_NKEY_SEED"] == "/run/secrets/nats.nk"
        mounts = [v for v in service["volumes"] if "/nats/" in v]
        assert sorted(mounts) == sorted(
            [
                f"./nats/keys/{role}.nk:/run/secrets/nats.nk:ro",
                "./nats/tls/ca.pem:/etc/ledger/ca.pem:ro",
            ]
        )
    # Appends (the cli service) sign with the ledger's one key, mounted read-only from the
    # file the README's `ledger key --generate` makes; no other service holds it.
    assert services["cli"]["environment"]["LEDGER_SIGNING_KEY"] == "/run/secrets/signing.key"
    assert "./keys/signing.key:/run/secrets/signing.key:ro" in services["cli"]["volumes"]
    for name in ("relay", "projector"):
        assert "LEDGER_SIGNING_KEY" not in services[name]["environment"]
        assert not any("signing" in v for v in services[name]["volumes"])
    readme = (DEPLOY.parent / "README.md").read_text()
    assert "ledger key --generate deploy/keys/signing.key" in readme
    assert "deploy/keys/" in (DEPLOY.parent / ".gitignore").read_text().splitlines()
    for node in NODES:
        assert "./nats/permissions.conf:/etc/nats/permissions.conf:ro" in services[node]["volumes"]
        assert "./nats/tls:/etc/nats/tls:ro" in services[node]["volumes"]


def test_the_shipped_permissions_are_the_ledgers_roles() -> None:
    """deploy/nats/permissions.conf is what ledger.nats_auth generates (the embedded
    server's permissions): one definition of who may do what."""
    from ledger.nats_auth import permissions_conf

    assert (DEPLOY / "nats" / "permissions.conf").read_text() == permissions_conf()


def test_the_documented_compose_commands_pass_the_env_file_compose_interpolates() -> None:
    """compose interpolates ${VAR} in compose.yaml from the shell or --env-file, not from
    the services' env_file: every documented command passes --env-file deploy/ledger.env,
    and that file (from the example) defines every variable compose.yaml requires."""
    import re

    header = COMPOSE.read_text()
    readme = (DEPLOY.parent / "README.md").read_text()
    deploy_section = readme.split("<!-- section:deploy -->")[1].split("<!-- /section:deploy")[0]
    commands = [
        line
        for text in (header, deploy_section)
        for line in text.splitlines()
        if "docker compose" in line
    ]
    assert len(commands) >= 3  # the header's two, the README's alias
    for command in commands:
        assert "docker compose --env-file deploy/ledger.env -f deploy/compose.yaml" in command, (
            command
        )
    required = set(re.findall(r"\$\{(\w+):\?", header))
    keys = {"NATS_RELAY_NKEY", "NATS_PROJECTOR_NKEY", "NATS_SUBSCRIBER_NKEY"}
    assert required == {"POSTGRES_PASSWORD", *keys}
    example = (DEPLOY / "ledger.env.example").read_text()
    defined = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line}
    assert required - keys <= defined
    # The keys come from the command the example (and compose's error) names.
    assert "python -m ledger.nats_auth deploy/nats/keys >> deploy/ledger.env" in example
    from ledger.nats_auth import main

    assert main([]) == 2
    assert "cp deploy/ledger.env.example deploy/ledger.env" in header


def test_the_image_creates_ledger_home_for_its_user() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    env = next(line for line in lines if line.startswith("ENV LEDGER_HOME="))
    home = env.split("=", 1)[1]
    user = next(i for i, line in enumerate(lines) if line == "USER ledger")
    before_user = " ".join(lines[:user])
    assert lines.index(env) < user
    assert 'install -d -o ledger -g ledger "$LEDGER_HOME"' in before_user
    assert home == "/var/lib/ledger"


def make_tls_files(directory: Path) -> Path:
    """A CA and a node certificate (for nats-1..3, localhost and 127.0.0.1; server and
    client use, for the routes' mutual TLS) as deploy/nats/tls holds them."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("ledger test CA"))
        .issuer_name(name("ledger test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in (*NODES, "localhost")]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("nats"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(cert.public_bytes(pem))
    (directory / "server-key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory


class Cluster:
    """The three nodes of compose.yaml, started from deploy/nats/nats.conf on loopback."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        services = compose()["services"]
        # Client and monitoring ports are picked by each server itself (-1; read back from
        # its ports file), so nothing can take them between choosing and binding.  Route
        # ports must be known before any node starts (every node lists all routes), so
        # those are chosen here: a small window, for three ports.
        self.client_ports: dict[str, int] = {}
        self.cluster_ports = {n: free_port() for n in NODES}
        self.env: dict[str, dict[str, str]] = {}
        # As the README says: the roles' seeds and public keys, and the TLS files.
        from ledger.nats_auth import ensure_seeds_in

        keys = ensure_seeds_in(tmp / "keys")
        tls = make_tls_files(tmp / "tls")
        for node in NODES:
            env = {k: str(v) for k, v in services[node]["environment"].items()}
            routes = {}
            for i, other in enumerate(NODES, start=1):
                assert env[f"NATS_ROUTE_{i}"] == f"nats-route://{other}:6222"
                routes[f"NATS_ROUTE_{i}"] = f"nats-route://127.0.0.1:{self.cluster_ports[other]}"
            env.update(
                NATS_HOST="127.0.0.1",
                NATS_CLIENT_PORT="-1",
                NATS_HTTP_PORT="-1",
                NATS_CLUSTER_PORT=str(self.cluster_ports[node]),
                NATS_STORE_DIR=str(tmp / node),
                NATS_TLS_CERT=str(tls / "server.pem"),
                NATS_TLS_KEY=str(tls / "server-key.pem"),
                NATS_TLS_CA=str(tls / "ca.pem"),
                **{f"NATS_{role.upper()}_NKEY": key for role, key in keys.items()},
                **routes,
            )
            self.env[node] = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def options(self, role: str) -> dict[str, Any]:
        """``nats.connect`` options of a client holding ``role``'s seed and the CA."""
        from ledger.nats_auth import NatsCredentials

        credentials = NatsCredentials(
            nkey_seed_file=self.tmp / "keys" / f"{role}.nk", ca_file=self.tmp / "tls" / "ca.pem"
        )
        return credentials.connect_options()

    @property
    def url(self) -> str:
        return ",".join(f"tls://127.0.0.1:{p}" for p in self.client_ports.values())

    def start(self, node: str) -> None:
        from ledger.nats_server import _read_port

        log = (self.tmp / f"{node}.log").open("ab")
        ports_dir = self.tmp / f"ports-{node}"
        ports_dir.mkdir(exist_ok=True)
        binary = find_nats_server()
        proc = subprocess.Popen(
            [str(binary), "-c", str(NATS_CONF), "--ports_file_dir", str(ports_dir)],
            env={**os.environ, **self.env[node]},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[node] = proc
        ports_file = ports_dir / f"{binary.name}_{proc.pid}.ports"
        deadline = time.monotonic() + 60
        while (port := _read_port(ports_file)) is None:
            assert proc.poll() is None, f"{node} exited while starting:\n{self.logs()}"
            assert time.monotonic() < deadline, f"{node} did not start:\n{self.logs()}"
            time.sleep(0.02)
        self.client_ports[node] = port

    def kill(self, node: str) -> None:
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n" + (self.tmp / f"{n}.log").read_text(errors="replace")[-3000:]
            for n in NODES
            if (self.tmp / f"{n}.log").exists()
        )


async def wait_for_jetstream(url: str, options: dict[str, Any], timeout: float = 60.0) -> None:
    import nats

    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(
                url.split(","), connect_timeout=2, max_reconnect_attempts=0, **options
            )
            try:
                await nc.jetstream().account_info()  # needs an elected meta leader
                return
            finally:
                await nc.close()
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.5)
    raise AssertionError(f"JetStream cluster not ready: {last!r}")


async def stream_leader(url: str, stream: str, options: dict[str, Any]) -> str:
    import nats

    nc = await nats.connect(url.split(","), connect_timeout=5, **options)
    try:
        info = await nc.jsm().stream_info(stream)
        assert info.cluster is not None and info.cluster.leader
        return str(info.cluster.leader)
    finally:
        await nc.close()


async def stream_contents(
    url: str, stream: str, options: dict[str, Any], timeout: float = 60
) -> tuple[list[str], int]:
    """(Nats-Msg-Id of every message in sequence order, replicas) read from the cluster.

    Read again from the start while the cluster answers 503 "JetStream system temporarily
    unavailable": after a node dies it can still be settling when the relay is done (seen
    in CI), and what is stored is the question here, not how soon it can be read.
    """
    import nats
    from nats.js.errors import ServiceUnavailableError

    deadline = time.monotonic() + timeout
    while True:
        nc = await nats.connect(url.split(","), connect_timeout=5, **options)
        try:
            jsm = nc.jsm()
            info = await jsm.stream_info(stream)
            ids = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await jsm.get_msg(stream, seq)
                assert msg.headers is not None
                ids.append(msg.headers["Nats-Msg-Id"])
            return ids, info.config.num_replicas or 1
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
        finally:
            await nc.close()
        await asyncio.sleep(0.5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    for node in NODES:
        c.start(node)
    try:
        asyncio.run(wait_for_jetstream(c.url, c.options("subscriber")))
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop_all()


def test_no_acknowledged_event_is_lost_when_a_node_dies(
    cluster: Cluster, sqlite_backend: Backend
) -> None:
    from ledger.relay import Relay

    app = Ledger(sqlite_backend.settings())
    app.append_objects([f.party(f"p{i}") for i in range(200)])
    relay = Relay(app, cluster.url, replicas=3, nats_options=cluster.options("relay"))
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            relay.run_forever(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="relay", daemon=True)
    thread.start()
    try:
        # Keep appending while the relay publishes; kill the stream's leader in the middle
        # of it, forcing a leader election under load.
        victim = ""
        for batch in range(1, 31):
            app.append_objects([f.party(f"b{batch}-{i}") for i in range(50)])
            if batch == 10:
                victim = asyncio.run(
                    stream_leader(cluster.url, app.settings.stream, cluster.options("subscriber"))
                )
                cluster.kill(victim)
            time.sleep(0.02)
        head = app.head()
        deadline = time.monotonic() + 120
        while relay.tracked_position() < head and time.monotonic() < deadline and not errors:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert relay.tracked_position() == head == 1700, cluster.logs()

    # Every acknowledged event is on the surviving nodes, exactly once, in log order.
    reader = cluster.options("subscriber")
    ids, replicas = asyncio.run(stream_contents(cluster.url, app.settings.stream, reader))
    expected = [str(e.event.event_id) for e in app.log(order="recorded")]
    assert replicas == 3
    assert ids == expected

    # The killed node comes back and catches up: the stream still holds everything.
    cluster.start(victim)
    asyncio.run(wait_for_jetstream(cluster.url, reader))
    ids_after, _ = asyncio.run(stream_contents(cluster.url, app.settings.stream, reader))
    assert ids_after == expected
    app.close()
    json.dumps(relay.stats.to_dict())  # stats stay serialisable for `ledger status`


def test_on_the_cluster_only_the_relay_writes_and_only_over_tls(
    cluster: Cluster, sqlite_backend: Backend
) -> None:
    from ledger import stream as st
    from ledger.relay import Relay

    app = Ledger(sqlite_backend.settings())
    try:
        app.append_objects([f.party(f"p{i}") for i in range(10)])
        relay = Relay(app, cluster.url, replicas=3, nats_options=cluster.options("relay"))
        assert relay.run_once().published == 10

        async def as_subscriber() -> list[str]:
            errors: list[str] = []

            async def on_error(exc: Exception) -> None:
                errors.append(str(exc).lower())

            nc = await st.connect(cluster.url, error_cb=on_error, **cluster.options("subscriber"))
            try:
                js, jsm = nc.jetstream(timeout=2), nc.jsm(timeout=2)
                forged = {"Nats-Msg-Id": "forged", "Ledger-Position": "11"}
                for request in (
                    lambda: js.publish("ledger.party.PartyRegistered.x", b"{}", headers=forged),
                    lambda: jsm.purge_stream("LEDGER"),
                ):
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(request(), 30)
                assert (await jsm.stream_info("LEDGER")).state.messages == 10
            finally:
                await nc.close()
            return errors

        errors = asyncio.run(as_subscriber())
        assert any('permissions violation for publish to "ledger.party' in e for e in errors)
        assert any("stream.purge.ledger" in e for e in errors)

        async def connect(**options: Any) -> None:
            nc = await st.connect(cluster.url, connect_timeout=2, **options)
            await nc.close()

        with pytest.raises(st.NatsRefused):  # TLS, but no key
            asyncio.run(connect(tls=cluster.options("subscriber")["tls"]))
        with pytest.raises(st.NatsUnavailable, match="LEDGER_NATS_CA"):  # CA unknown
            seed = cluster.options("subscriber")["nkeys_seed"]
            asyncio.run(connect(nkeys_seed=seed))
    finally:
        app.close()
