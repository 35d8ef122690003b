"""``ledger key``, ``checkpoint``, ``prove``, ``verify`` and ``verify-proof``: the record
proves itself (see the README's "Verifying the record")."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ledger.cli.common import echo_json, handle_errors, open_ledger, output_option

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.checkpoint import VerifierKey

KEY_HELP = (
    "The ledger's public key to check signatures against (the key text or a file holding "
    "it), as pinned from `ledger key`. Default: the key of this ledger home."
)
MAX_CHECKPOINT_FILE = 64 * 1024


def _read_small(path: str, what: str, limit: int) -> bytes:
    from ledger.errors import InputError

    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field=what) from None
    if len(data) > limit:
        raise InputError(f"{path} is larger than {limit} bytes", field=what)
    return data


def _read_checkpoint(path: str, option: str) -> str:
    from ledger.errors import InputError

    data = _read_small(path, option, MAX_CHECKPOINT_FILE)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a UTF-8 checkpoint", field=option) from None


def _key(app: Ledger, key: str | None) -> VerifierKey:
    """--key, else this home's key; never one made here (it would verify nothing the
    ledger signed, and then sign the next append with the wrong key)."""
    from ledger.audit import verifier_key
    from ledger.errors import InputError

    if key:
        return verifier_key(key)
    config = app.settings
    if not config.has_signing_key:
        raise InputError(
            f"this ledger home has no signing key ({config.signing_key_path}) and "
            "LEDGER_SIGNING_KEY is not set: pass the ledger's public key with --key KEY "
            "(`ledger key` prints it where the key is)",
            field="--key",
        )
    return app.signing_key().verifier


def _built(app: Ledger) -> None:
    """Catch the tree up with events stored before it (reporting progress on stderr)."""
    from ledger.audit import build_tree, pending

    left = pending(app)
    if not left:
        return
    click.echo(f"Building the Merkle tree over {left:,} events stored before it ...", err=True)

    def progress(done: int, total: int) -> None:
        click.echo(f"  {done:,} / {total:,} events", err=True)

    build_tree(app, progress=progress)


@click.command()
@click.option(
    "--generate",
    "generate",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Make a new signing key in FILE (mode 0600; never replaces a file) and print its "
    "public key: for LEDGER_SIGNING_KEY in production. Its name is LEDGER_ORIGIN, or "
    "export-control-ledger/<random>.",
)
@output_option("table", "json")
@click.pass_context
@handle_errors
def key(ctx: click.Context, generate: str | None, output: str) -> None:
    """Print the public key that verifies this ledger's checkpoints.

    Auditors pin it: every checkpoint, proof and verification is checked against it.
    The private key is made on the first write (`signing.key` in the ledger home, mode
    0600), or read from the file LEDGER_SIGNING_KEY names.  LEDGER_ORIGIN names a key
    made here (the checkpoints' origin line).  A ledger's key never changes: appends
    signed by another key are refused.

    \b
    Examples:
      ledger key > ledger.pub
      ledger verify --key ledger.pub
      ledger key --generate /etc/ledger/signing.key   # then LEDGER_SIGNING_KEY=that file
    """
    from ledger.cli.common import settings

    if generate is not None:
        from pathlib import Path

        from ledger.audit import key_name
        from ledger.checkpoint import CheckpointError, create_signing_key
        from ledger.errors import InputError

        name = key_name(settings(ctx))
        try:
            verifier = create_signing_key(Path(generate), name).verifier
        except CheckpointError as exc:
            raise InputError(str(exc), field="--generate") from None
    else:
        from ledger.audit import signing_key

        verifier = signing_key(settings(ctx)).verifier
    if output == "json":
        echo_json(
            {
                "name": verifier.name,
                "key_id": verifier.key_id.hex(),
                "verifier_key": verifier.text(),
            }
        )
    else:
        click.echo(verifier.text())


@click.command()
@output_option("table", "json")
@click.pass_context
@handle_errors
def checkpoint(ctx: click.Context, output: str) -> None:
    """Print the latest signed checkpoint (tree size and root hash of the log).

    One checkpoint is signed with every append batch, in the same transaction.  It is
    a C2SP tlog-checkpoint in a signed note: the origin (this ledger's name), the number
    of events, the base64 Merkle root, then the Ed25519 signature line.  Keep it: later,
    `ledger verify --since FILE` proves the ledger only grew since.

    \b
    Examples:
      ledger checkpoint > checkpoint-2025-12-01.txt
      ledger checkpoint -o json
    """
    import base64

    from ledger.audit import latest_checkpoint
    from ledger.checkpoint import Checkpoint, split_note
    from ledger.errors import LedgerError

    with open_ledger(ctx, existing=True) as app:
        _built(app)
        note = latest_checkpoint(app)
    if note is None:
        raise LedgerError("the ledger has no events yet, so no checkpoint")
    if output == "json":
        body, _ = split_note(note)
        cp = Checkpoint.parse(body)
        echo_json(
            {
                "origin": cp.origin,
                "tree_size": cp.size,
                "root_hash": base64.b64encode(cp.root_hash).decode(),
                "checkpoint": note,
            }
        )
    else:
        click.echo(note, nl=False)


@click.command()
@click.argument("event_id")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Prove against this kept checkpoint instead of the latest one ('-': stdin).",
)
@click.option("--key", "key_text", help=KEY_HELP)
@output_option("table", "json")
@click.pass_context
@handle_errors
def prove(
    ctx: click.Context,
    event_id: str,
    checkpoint_file: str | None,
    key_text: str | None,
    output: str,
) -> None:
    """Print an inclusion proof: EVENT_ID is in the log the checkpoint signs.

    With -o json it prints what `ledger verify-proof` checks offline: the leaf index,
    the tree size, the event's exact JSON line, its leaf hash, the audit path (base64
    hashes, leaf side first) and the signed checkpoint.  The proof is verified before
    it is printed.

    \b
    Examples:
      ledger prove 0f8c2d4e-8f0a-4e1b-9c55-3a1d2b7e6f10 -o json > proof.json
      ledger prove EVENT_ID --checkpoint checkpoint-2025-12-01.txt -o json
      ledger verify-proof proof.json --key ledger.pub
    """
    import uuid

    from ledger.audit import prove as make_proof
    from ledger.errors import InputError

    try:
        wanted = uuid.UUID(event_id)
    except ValueError:
        raise InputError(f"'{event_id}' is not an event id (a UUID)", field="EVENT_ID") from None
    note = _read_checkpoint(checkpoint_file, "--checkpoint") if checkpoint_file else None
    with open_ledger(ctx, existing=True) as app:
        _built(app)
        proof = make_proof(app, wanted, checkpoint=note, key=_key(app, key_text))
    if output == "json":
        echo_json(proof)
        return
    click.echo(
        f"Event {proof['event_id']} (position {proof['position']}) is leaf "
        f"{proof['leaf_index']} of the {proof['tree_size']:,} events this checkpoint signs; "
        f"audit path of {len(proof['audit_path'])} hashes verified:\n"
    )
    click.echo(proof["checkpoint"], nl=False)
    click.echo("\n(-o json prints the whole proof, for `ledger verify-proof`.)", err=True)


@click.command()
@click.option(
    "--since",
    "since_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Prove with a consistency proof that the ledger is an append-only extension of "
    "this kept checkpoint (fast: reads O(log n) rows).",
)
@click.option(
    "--views",
    is_flag=True,
    help="Also check that the stored views answer what a fresh fold of the events answers.",
)
@click.option("--key", "key_text", help=KEY_HELP)
@output_option("table", "json")
@click.pass_context
@handle_errors
def verify(
    ctx: click.Context,
    since_file: str | None,
    views: bool,
    key_text: str | None,
    output: str,
) -> None:
    """Check that the stored record is the one the signed checkpoints commit to.

    Recomputes every event's leaf hash from its stored bytes and checks it against the
    Merkle tree, every stored node, every checkpoint's root and signature.  Exit 1
    naming the first position that does not match: an event edited, deleted, inserted
    or moved, or the tree's own tables edited.  Exit 0 when all holds.  --views also
    compares every stored view (licences, parties, measures, commitments, asymmetry,
    findings) at several dates with a fresh fold of the events.

    \b
    Examples:
      ledger verify --key ledger.pub
      ledger verify --since checkpoint-2025-12-01.txt --key ledger.pub
      ledger verify --views -o json
    """
    from ledger.audit import consistency
    from ledger.audit import verify as verify_all

    note = _read_checkpoint(since_file, "--since") if since_file else None
    result: dict[str, Any] = {}
    with open_ledger(ctx, existing=True) as app:
        _built(app)
        pinned = _key(app, key_text)
        if note is not None:
            proof = consistency(app, note, key=pinned)
            result = {"ok": True, "check": "consistency", **proof}
            text = (
                f"OK: the ledger ({proof['new_size']:,} events) is an append-only extension of "
                f"the checkpoint of {proof['old_size']:,} events (consistency proof of "
                f"{len(proof['consistency_path'])} hashes)."
            )
        else:
            report = verify_all(app, key=pinned)
            import base64

            result = {
                "ok": True,
                "check": "full",
                "events": report.events,
                "checkpoints": report.checkpoints,
                "root_hash": base64.b64encode(report.root).decode(),
                "checkpoint": report.checkpoint,
            }
            text = (
                f"OK: {report.events:,} events match the Merkle tree; "
                f"{report.checkpoints:,} signed checkpoint(s) verified by {pinned.name}+"
                f"{pinned.key_id.hex()}."
            )
            if report.unsigned_after is not None:
                text += f" (Events from position {report.unsigned_after} are not signed yet.)"
        if views:
            from ledger.audit import verify_views

            counts = verify_views(app)
            result["views"] = counts
            text += (
                "\nOK: the stored views equal a fresh fold of the events ("
                + ", ".join(f"{n:,} {name} rows" for name, n in counts.items())
                + ")."
            )
    if output == "json":
        echo_json(result)
    else:
        click.echo(text)


@click.command("verify-proof")
@click.argument("proof_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--key", "key_text", required=True, help="The ledger's public key (or its file).")
@output_option("table", "json")
@handle_errors
def verify_proof(proof_file: str, key_text: str, output: str) -> None:
    """Check an inclusion proof offline, with the ledger's public key alone.

    PROOF_FILE is what `ledger prove -o json` printed ('-': stdin).  No database is
    read: exit 0 if the event is in the log the signed checkpoint commits to, 1 if the
    proof does not verify, 2 if the file is not a proof.

    \b
    Examples:
      ledger verify-proof proof.json --key ledger.pub
      ledger verify-proof proof.json --key 'ledger/x+1a2b3c4d+AXt...'
    """
    from ledger.audit import MAX_PROOF_BYTES, load_proof, verifier_key
    from ledger.audit import verify_proof as check

    pinned = verifier_key(key_text)
    result = check(load_proof(_read_small(proof_file, "PROOF", MAX_PROOF_BYTES)), pinned)
    if output == "json":
        echo_json(
            {
                "ok": True,
                "origin": result.origin,
                "tree_size": result.tree_size,
                "leaf_index": result.leaf_index,
                "event_id": result.event_id,
            }
        )
    else:
        click.echo(
            f"OK: event {result.event_id or '(hash only)'} is leaf {result.leaf_index} of the "
            f"{result.tree_size:,} events of {result.origin}, signed by {pinned.name}+"
            f"{pinned.key_id.hex()}."
        )
