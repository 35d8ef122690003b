"""`ledger key / checkpoint / prove / verify / verify-proof` as an auditor runs them."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from tests import factory as f
from tests.conftest import Backend


def jsonl(events: list[dict]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


@pytest.fixture
def env(backend: Backend) -> dict[str, str]:
    return backend.env()


def runner(env: dict[str, str]) -> Callable[..., Result]:
    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env)

    return invoke


def test_an_auditor_pins_the_key_keeps_checkpoints_and_checks_proofs(
    env: dict[str, str], tmp_path: Path, backend: Backend
) -> None:
    run = runner(env)
    assert run("import", "-", input=jsonl([f.party(f"p{i}") for i in range(12)])).exit_code == 0
    key = run("key")
    assert key.exit_code == 0, key.output
    pub = tmp_path / "ledger.pub"
    pub.write_text(key.output)
    key_file = Path(env["LEDGER_HOME"]) / "signing.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert json.loads(run("key", "-o", "json").output)["verifier_key"] == key.output.strip()

    first = run("checkpoint")
    assert first.exit_code == 0 and first.output.splitlines()[1] == "12"
    kept = tmp_path / "checkpoint-12.txt"
    kept.write_text(first.output)
    as_json = json.loads(run("checkpoint", "-o", "json").output)
    assert as_json["tree_size"] == 12 and as_json["checkpoint"] == first.output

    assert run("append", json.dumps(f.party("late"))).exit_code == 0
    ok = run("verify", "--key", str(pub))
    assert ok.exit_code == 0 and "OK: 13 events" in ok.output, ok.output
    since = run("verify", "--since", str(kept), "--key", str(pub), "-o", "json")
    assert since.exit_code == 0, since.output
    assert json.loads(since.output)[("old_size")] == 12

    events = json.loads(run("log", "--order", "recorded", "-o", "json").output)
    event_id = events[4]["event"]["event_id"]
    proof = run("prove", event_id, "-o", "json")
    assert proof.exit_code == 0, proof.output
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(proof.output)
    body = json.loads(proof.output)
    assert (body["leaf_index"], body["tree_size"]) == (4, 13)
    old = json.loads(run("prove", event_id, "--checkpoint", str(kept), "-o", "json").output)
    assert old["tree_size"] == 12

    # Offline: no ledger, no database reachable.
    offline = runner(
        {
            "LEDGER_HOME": str(tmp_path / "nowhere"),
            "LEDGER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        }
    )
    checked = offline("verify-proof", str(proof_file), "--key", str(pub))
    assert checked.exit_code == 0, checked.output
    assert f"event {event_id} is leaf 4 of the 13 events" in checked.output
    assert not (tmp_path / "nowhere").exists()

    altered = dict(body, event=body["event"].replace('"p4"', '"p5"'))
    (tmp_path / "altered.json").write_text(json.dumps(altered))
    bad = offline("verify-proof", str(tmp_path / "altered.json"), "--key", str(pub))
    assert bad.exit_code == 1 and "not the hash of its event" in bad.output
    del altered["leaf_hash"]
    (tmp_path / "altered.json").write_text(json.dumps(altered))
    bad = offline("verify-proof", str(tmp_path / "altered.json"), "--key", str(pub))
    assert bad.exit_code == 1 and "does not verify" in bad.output
    other_key = "someone+00000000+" + "A" * 44
    for args, code in [
        ((str(proof_file), "--key", other_key), 2),  # a malformed key
        ((str(tmp_path / "missing.json"), "--key", str(pub)), 2),
    ]:
        result = offline("verify-proof", *args)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "content, code",
    [
        (b"not json", 2),
        (b"[]", 2),
        (b'{"format": "ledger-inclusion-proof/1"}', 2),
        (b"\xff\xfe", 2),
        (b" " * (17 * 1024 * 1024), 2),
    ],
)
def test_verify_proof_refuses_what_is_not_a_proof(
    tmp_path: Path, content: bytes, code: int
) -> None:
    path = tmp_path / "proof.json"
    path.write_bytes(content)
    from ledger.checkpoint import SigningKey

    pub = SigningKey.generate("ledger/x").verifier.text()
    result = CliRunner().invoke(cli, ["verify-proof", str(path), "--key", pub, "-o", "json"])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert json.loads(result.output.strip().splitlines()[-1])["error"] == "InputError"


def test_verify_exits_1_naming_the_edited_position(sqlite_backend: Backend) -> None:
    env = sqlite_backend.env()
    run = runner(env)
    assert run("import", "-", input=jsonl([f.party(f"p{i}") for i in range(6)])).exit_code == 0
    db = Path(env["LEDGER_HOME"]) / "ledger.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), "
            "'\"DE\"', '\"RU\"') AS BLOB) WHERE rowid = 3"
        )
    result = run("verify")
    assert result.exit_code == 1
    assert "position 3" in result.output and "Traceback" not in result.output
    as_json = run("verify", "-o", "json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.output.strip().splitlines()[-1])["position"] == 3


def test_prove_and_verify_refuse_bad_arguments(sqlite_backend: Backend, tmp_path: Path) -> None:
    env = sqlite_backend.env()
    run = runner(env)
    assert run("append", json.dumps(f.party("a"))).exit_code == 0
    for args, code, words in [
        (("prove", "not-a-uuid"), 2, "not an event id"),
        (("prove", "0f8c2d4e-8f0a-4e1b-9c55-3a1d2b7e6f10"), 2, "no event"),
        (("verify", "--since", str(tmp_path / "missing.txt")), 2, "cannot read"),
        (("verify", "--key", "garbage+key"), 2, "--key"),
    ]:
        result = run(*args)
        assert result.exit_code == code, (args, result.output)
        assert words in result.output and "Traceback" not in result.output
    junk = tmp_path / "junk.txt"
    junk.write_text("origin\n1\nAAAA\n\n— origin AAAAAAAA\n")
    result = run("verify", "--since", str(junk))
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_a_missing_signing_key_appends_nothing(sqlite_backend: Backend, tmp_path: Path) -> None:
    env = {**sqlite_backend.env(), "LEDGER_SIGNING_KEY": str(tmp_path / "absent.key")}
    result = runner(env)("append", json.dumps(f.party("a")))
    assert result.exit_code == 2 and "no signing key" in result.output
    assert "Nothing was appended" in result.output


def test_verify_views_compares_the_stored_views_with_a_fresh_fold(
    env: dict[str, str], backend: Backend
) -> None:
    from ledger.scenario import scenario_path

    run = runner(env)
    assert run("import", "--backfill", str(scenario_path())).exit_code == 0
    assert run("project", "--once").exit_code == 0
    ok = run("verify", "--views", "-o", "json")
    assert ok.exit_code == 0, ok.output
    counts = json.loads(ok.output)["views"]
    assert counts["licences"] > 0 and counts["measures"] > 0 and counts["commitments"] > 0
    if backend.name != "sqlite":
        return
    db = Path(env["LEDGER_HOME"]) / "ledger.db"
    with sqlite3.connect(db) as conn:  # a licence's cap raised in the stored views only
        changed = conn.execute(
            "UPDATE views_data SET static = CAST(replace(CAST(static AS TEXT), "
            "'\"20000\"', '\"90000\"') AS BLOB) WHERE instr(CAST(static AS TEXT), '20000') > 0"
        ).rowcount
    assert changed > 0
    bad = run("verify", "--views")
    assert bad.exit_code == 1, bad.output
    assert "stored view licences" in bad.output and "field items" in bad.output
    assert "Traceback" not in bad.output
    assert run("verify").exit_code == 0  # the record itself is intact


def test_an_operator_generates_the_production_key_and_the_ledger_signs_with_it(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    """`ledger key --generate FILE` makes the key LEDGER_SIGNING_KEY names (as in
    deploy/compose.yaml); it never replaces a key file, and appends are signed with it."""
    key_file = tmp_path / "keys" / "signing.key"
    env = {**sqlite_backend.env(), "LEDGER_ORIGIN": "acme.example/ledger"}
    made = runner(env)("key", "--generate", str(key_file), "-o", "json")
    assert made.exit_code == 0, made.output
    public = json.loads(made.output)
    assert public["name"] == "acme.example/ledger"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = key_file.read_bytes()
    again = runner(env)("key", "--generate", str(key_file))
    assert again.exit_code == 2 and "never replaced" in again.output
    assert key_file.read_bytes() == before

    run = runner({**env, "LEDGER_SIGNING_KEY": str(key_file)})
    assert run("key").output.strip() == public["verifier_key"]
    assert run("append", json.dumps(f.party("a"))).exit_code == 0
    assert run("checkpoint").output.startswith("acme.example/ledger\n1\n")
    pub = tmp_path / "ledger.pub"
    pub.write_text(public["verifier_key"])
    checked = runner(env)("verify", "--key", str(pub))
    assert checked.exit_code == 0, checked.output
    # The home made no key of its own.
    assert not (Path(env["LEDGER_HOME"]) / "signing.key").exists()


def test_verify_and_prove_without_a_key_in_the_home_ask_for_one_and_make_none(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    """An auditor's copy of the database has no signing key: checking against a key
    made on the spot would fail every signature (and the next append would be signed
    by it), so verify and prove ask for --key instead."""
    env = sqlite_backend.env()
    run = runner(env)
    appended = run("append", json.dumps(f.party("a")), "-o", "json")
    assert appended.exit_code == 0
    key_file = Path(env["LEDGER_HOME"]) / "signing.key"
    pub = tmp_path / "ledger.pub"
    pub.write_text(run("key").output)
    key_file.rename(tmp_path / "kept.key")
    event_id = json.loads(run("log", "-o", "json").output)[0]["event"]["event_id"]
    for args in (("verify",), ("prove", event_id)):
        refused = run(*args)
        assert refused.exit_code == 2, refused.output
        assert "no signing key" in refused.output and "--key" in refused.output
        assert not key_file.exists()
    assert run("verify", "--key", str(pub)).exit_code == 0
    assert run("prove", event_id, "--key", str(pub)).exit_code == 0


def test_watch_verify_in_a_home_with_no_key_asks_for_one_and_makes_none(
    sqlite_backend: Backend,
) -> None:
    """The same rule as verify and prove (Settings.has_signing_key): watch --verify
    takes the home's key only if there is one, and never makes one."""
    env = {**sqlite_backend.env(), "LEDGER_NATS_URL": "nats://127.0.0.1:4222"}
    result = runner(env)("watch", "--verify", "--all")
    assert result.exit_code == 2, result.output
    assert "--verify needs the ledger's public key" in result.output
    assert not (Path(env["LEDGER_HOME"]) / "signing.key").exists()
