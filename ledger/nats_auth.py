"""Who may do what on the ledger's NATS server: roles, permissions, credentials.

Three roles, each a NATS user with its own permissions:

- ``relay``: the stream's only writer.  Publishes to ``{prefix}.>`` and may use the whole
  JetStream API (create, update, purge the stream).
- ``projector``: reads the stream and manages its own durable consumer
  (``ledger.stream.PROJECTOR_CONSUMER``) only.
- ``subscriber`` (``ledger watch``, ``ledger status``, ``subscribe()``): reads the stream
  and creates, reads from, acks and deletes consumers, except the projector's and the
  named services'.
- a named service (``ledger access add NAME``): a downstream service with its own key.  It
  reads like a subscriber, and its durable consumer ``NAME`` is its own: no other reader
  (the shared subscriber key included) may create, update, read from, ack or delete it, and
  the service may not touch the projector's or another service's.

Neither reader may publish to ``{prefix}.>``, purge, delete or edit the stream or its
messages: anything not allowed is refused by the server ("Permissions Violation").

The embedded server (``ledger serve``) authenticates each role with an nkey: the seeds
are generated once into ``$LEDGER_HOME/nats-auth/{role}.nk`` (mode 0600, directory 0700),
and the server's configuration lists only their public keys.  Clients of a ledger home
find the seed of their role there; with ``LEDGER_NATS_URL`` (a server of your own) they
use the credentials configured in the environment instead (see ``ledger.config``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from ledger.config import Settings
    from ledger.nats_server import EmbeddedNats

Role: TypeAlias = Literal["relay", "projector", "subscriber"]
ROLES: tuple[Role, ...] = ("relay", "projector", "subscriber")

AUTH_DIR = "nats-auth"
SERVICES_DIR = "services"
"""Under ``AUTH_DIR``: one seed per named service, ``{name}.nk``."""


@dataclass(frozen=True)
class Service:
    """A named downstream service: a reader whose durable consumer ``name`` is its own."""

    name: str


def _api(stream: str, *operations: str) -> list[str]:
    return [f"$JS.API.{op.format(stream=stream)}" for op in operations]


def _consumer(stream: str, consumer: str) -> list[str]:
    """Every subject that creates, updates, reads, fetches from, acks or deletes the
    consumer ``consumer`` of ``stream`` (its filtered create forms included)."""
    own = f"{stream}.{consumer}"
    return [
        *_api(
            stream,
            f"CONSUMER.CREATE.{own}",
            f"CONSUMER.CREATE.{own}.>",
            f"CONSUMER.DURABLE.CREATE.{own}",
            f"CONSUMER.INFO.{own}",
            f"CONSUMER.DELETE.{own}",
            f"CONSUMER.MSG.NEXT.{own}",
        ),
        f"$JS.ACK.{own}.>",
    ]


def permissions(
    role: Role | Service,
    *,
    stream: str,
    prefix: str,
    services: Iterable[str] = (),
) -> dict[str, Any]:
    """The NATS permissions of ``role`` on ``stream`` (subjects ``{prefix}.>``).

    ``services`` are the named services' names (their durable consumers): no reader but
    the service itself may use the consumer of that name.
    """
    from ledger.stream import PROJECTOR_CONSUMER

    checkpoints = f"{stream}_CHECKPOINTS"  # ledger.bus_verify.checkpoint_stream
    if role == "relay":
        return {
            "publish": {"allow": [f"{prefix}.>", f"{prefix}-checkpoint.>", "$JS.API.>"]},
            "subscribe": {"allow": ["_INBOX.>"]},
        }
    reading = _api(
        stream,
        "INFO",
        "STREAM.NAMES",
        "STREAM.INFO.{stream}",
        "STREAM.MSG.GET.{stream}",
        "DIRECT.GET.{stream}",
        "DIRECT.GET.{stream}.>",
        f"STREAM.INFO.{checkpoints}",
        f"STREAM.MSG.GET.{checkpoints}",
        f"DIRECT.GET.{checkpoints}",
        f"DIRECT.GET.{checkpoints}.>",
    )
    if role == "projector":
        return {
            "publish": {"allow": reading + _consumer(stream, PROJECTOR_CONSUMER)},
            "subscribe": {"allow": ["_INBOX.>"]},
        }
    if role == "subscriber" or isinstance(role, Service):
        consumers = [
            *_api(
                stream,
                "CONSUMER.CREATE.{stream}",
                "CONSUMER.CREATE.{stream}.>",
                "CONSUMER.DURABLE.CREATE.{stream}.>",
                "CONSUMER.INFO.{stream}.>",
                "CONSUMER.DELETE.{stream}.>",
                "CONSUMER.MSG.NEXT.{stream}.>",
                "CONSUMER.NAMES.{stream}",
                "CONSUMER.LIST.{stream}",
            ),
            f"$JS.ACK.{stream}.>",
        ]
        mine = role.name if isinstance(role, Service) else None
        others = [PROJECTOR_CONSUMER, *sorted(n for n in set(services) if n != mine)]
        # A deny wins over an allow: whatever the broad allows above, the consumers of
        # the projector and of every other named service stay out of reach.
        not_theirs = [subject for name in others for subject in _consumer(stream, name)]
        # The checkpoint subject: a verifying subscriber's wake-up when a checkpoint is
        # published (it reads the checkpoint stream, which it may read anyway).
        hints = f"{prefix}-checkpoint.{stream}"  # ledger.bus_verify.checkpoint_subject
        return {
            "publish": {"allow": reading + consumers, "deny": not_theirs},
            "subscribe": {"allow": ["_INBOX.>", hints]},
        }
    raise ValueError(f"unknown NATS role {role!r}: one of {', '.join(ROLES)}")


# --- the embedded server's nkeys ----------------------------------------------------------


def seed_file(home: Path, role: Role) -> Path:
    return home / AUTH_DIR / f"{role}.nk"


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file that only its owner can read (0600 from the start)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def ensure_seeds(home: Path) -> dict[Role, str]:
    """Each role's public nkey, generating missing seeds into ``$LEDGER_HOME/nats-auth``."""
    return ensure_seeds_in(home / AUTH_DIR)


def ensure_seeds_in(directory: Path) -> dict[Role, str]:
    """Each role's public nkey, generating missing seeds into ``directory/{role}.nk``."""
    import nkeys

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    public: dict[Role, str] = {}
    for role in ROLES:
        path = directory / f"{role}.nk"
        if not path.exists():
            seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
            _write_private(path, seed + b"\n")
        path.chmod(0o600)
        keys = nkeys.from_seed(bytearray(path.read_bytes().strip()))
        public[role] = keys.public_key.decode()
        keys.wipe()
    return public


# --- named services ------------------------------------------------------------------------


class AccessError(ValueError):
    """A service name that cannot be used, or one that is not registered."""


def check_service_name(name: str) -> str:
    """``name`` if it can name a service (and so its durable consumer), else AccessError.

    The name becomes a subject token in the server's permissions and a file name: ASCII
    letters, digits, ``-`` and ``_`` only, at most 64 characters, not the projector's.
    """
    from ledger.stream import PROJECTOR_CONSUMER

    if (
        not name
        or len(name) > 64
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    ):
        shown = name if len(name) <= 70 else name[:67] + "..."
        raise AccessError(
            f"service name {shown!r} is not usable: 1 to 64 ASCII letters, digits, '-' or '_'"
        )
    if name == PROJECTOR_CONSUMER:
        raise AccessError(f"{name!r} is the projector's consumer; choose another name")
    return name


def service_seed_file(home: Path, name: str) -> Path:
    return home / AUTH_DIR / SERVICES_DIR / f"{check_service_name(name)}.nk"


def _public_key(path: Path) -> str:
    import nkeys

    keys = nkeys.from_seed(bytearray(path.read_bytes().strip()))
    try:
        return keys.public_key.decode()
    finally:
        keys.wipe()


def services(home: Path) -> dict[str, str]:
    """The named services of a ledger home: name -> public nkey, by name."""
    directory = home / AUTH_DIR / SERVICES_DIR
    if not directory.is_dir():
        return {}
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.nk")):
        try:
            name = check_service_name(path.stem)
        except AccessError:
            continue  # not a seed this module wrote
        found[name] = _public_key(path)
    return found


def add_service(home: Path, name: str) -> tuple[Path, str, bool]:
    """Make (or keep) the seed of service ``name``: its path, public key, and whether it
    was made now."""
    import nkeys

    path = service_seed_file(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    for directory in (path.parent.parent, path.parent):
        directory.chmod(0o700)
    created = not path.exists()
    if created:
        _write_private(path, nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER) + b"\n")
    path.chmod(0o600)
    return path, _public_key(path), created


def remove_service(home: Path, name: str) -> None:
    """Forget service ``name``: its seed is deleted, so its key is no longer admitted."""
    path = service_seed_file(home, name)
    if not path.exists():
        raise AccessError(f"no service named {name!r} in {path.parent}")
    path.unlink()


def service_user(
    name: str, public_key: str, *, stream: str, prefix: str, others: Iterable[str]
) -> dict[str, Any]:
    """The server configuration's user entry for service ``name`` (a server of your own
    lists it beside the ledger's roles)."""
    return {
        "nkey": public_key,
        "permissions": permissions(
            Service(name), stream=stream, prefix=prefix, services=[name, *others]
        ),
    }


def server_authorization(home: Path, *, stream: str, prefix: str) -> str:
    """The ``authorization`` block of the embedded server's configuration."""
    named = services(home)
    users = [
        {
            "nkey": key,
            "permissions": permissions(role, stream=stream, prefix=prefix, services=named),
        }
        for role, key in ensure_seeds(home).items()
    ]
    users += [
        service_user(name, key, stream=stream, prefix=prefix, others=named)
        for name, key in named.items()
    ]
    # JSON is valid NATS configuration syntax, and quotes every subject safely.
    return "authorization " + json.dumps({"users": users}, indent=2) + "\n"


# --- what a client presents ---------------------------------------------------------------


@dataclass(frozen=True)
class NatsCredentials:
    """How a client authenticates: at most one of user/password, a credentials (JWT)
    file or an nkey seed file, plus a CA file to verify the server's TLS certificate."""

    user: str | None = None
    password: str | None = None
    creds_file: Path | None = None
    nkey_seed_file: Path | None = None
    ca_file: Path | None = None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        options: dict[str, Any] = {}
        if self.user is not None:
            options["user"] = self.user
            options["password"] = self.password or ""
        if self.creds_file is not None:
            options["user_credentials"] = str(self.creds_file)
        if self.nkey_seed_file is not None:
            options["nkeys_seed"] = str(self.nkey_seed_file)
        if self.ca_file is not None:
            import ssl

            options["tls"] = ssl.create_default_context(cafile=str(self.ca_file))
        return options

    @property
    def configured(self) -> bool:
        return any(
            v is not None for v in (self.user, self.creds_file, self.nkey_seed_file, self.ca_file)
        )


def _check_seed_file(path: Path) -> None:
    """A seed file the NATS client can use (it raised a traceback from inside the
    connection on one that held anything else): read as the client reads it."""
    import nkeys

    from ledger.config import ConfigError

    try:
        nkeys.from_seed(bytearray(path.read_bytes().strip()))
    except Exception:
        raise ConfigError(
            f"LEDGER_NATS_NKEY_SEED='{path}' does not hold an nkey seed (one line "
            "starting with SU, as `python -m ledger.nats_auth` or `nsc` write it)"
        ) from None


def credentials_from_env(env: Mapping[str, str]) -> NatsCredentials:
    """``LEDGER_NATS_USER``/``LEDGER_NATS_PASSWORD``, ``LEDGER_NATS_CREDS``,
    ``LEDGER_NATS_NKEY_SEED`` and ``LEDGER_NATS_CA``; files must exist and be readable."""
    from ledger.config import ConfigError

    def file(name: str) -> Path | None:
        value = env.get(name)
        if not value:
            return None
        path = Path(value).expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ConfigError(f"{name}='{value}' is not a readable file")
        return path

    user = env.get("LEDGER_NATS_USER") or None
    password = env.get("LEDGER_NATS_PASSWORD") or None
    if password is not None and user is None:
        raise ConfigError("LEDGER_NATS_PASSWORD is set without LEDGER_NATS_USER")
    credentials = NatsCredentials(
        user=user,
        password=password,
        creds_file=file("LEDGER_NATS_CREDS"),
        nkey_seed_file=file("LEDGER_NATS_NKEY_SEED"),
        ca_file=file("LEDGER_NATS_CA"),
    )
    if credentials.nkey_seed_file is not None:
        _check_seed_file(credentials.nkey_seed_file)
    chosen = [
        name
        for name, value in (
            ("LEDGER_NATS_USER", credentials.user),
            ("LEDGER_NATS_CREDS", credentials.creds_file),
            ("LEDGER_NATS_NKEY_SEED", credentials.nkey_seed_file),
        )
        if value is not None
    ]
    if len(chosen) > 1:
        raise ConfigError(f"choose one way to authenticate to NATS, not {' and '.join(chosen)}")
    return credentials


def embedded_server(settings: Settings) -> EmbeddedNats:
    """The embedded server of a ledger home (``$LEDGER_HOME/nats``), admitting only the
    ledger's roles with their permissions (seeds generated on first use)."""
    from ledger.nats_server import EmbeddedNats

    authorization = server_authorization(
        settings.home, stream=settings.stream, prefix=settings.subject_prefix
    )
    return EmbeddedNats(settings.home / "nats", authorization=authorization)


def reload_embedded_server(settings: Settings) -> int | None:
    """Have the home's embedded server, if one is running (``ledger serve``), admit
    exactly the roles and named services the home holds now.  Its pid, or None."""
    return embedded_server(settings).reload(
        server_authorization(settings.home, stream=settings.stream, prefix=settings.subject_prefix)
    )


def permissions_conf(*, stream: str = "LEDGER", prefix: str = "ledger") -> str:
    """NATS configuration defining each role's permissions as a variable
    (``LEDGER_RELAY_PERMISSIONS``, ...), for a server configuration to ``include``:
    ``deploy/nats/permissions.conf`` is this text (a test keeps them equal)."""
    lines = [
        "# Generated from ledger.nats_auth.permissions (stream LEDGER, subjects ledger.>);",
        "# tests/e2e/test_deploy.py checks this file is what it generates. Do not edit.",
        "",
    ]
    for role in ROLES:
        body = json.dumps(permissions(role, stream=stream, prefix=prefix), indent=2)
        lines.append(f"LEDGER_{role.upper()}_PERMISSIONS = {body}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m ledger.nats_auth DIR``: make the roles' seeds in DIR (kept if there)
    and print their public keys as the NATS_*_NKEY lines deploy/ledger.env needs."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m ledger.nats_auth DIR   (e.g. deploy/nats/keys)", file=sys.stderr)
        return 2
    for role, key in ensure_seeds_in(Path(args[0])).items():
        print(f"NATS_{role.upper()}_NKEY={key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
