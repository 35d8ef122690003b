"""Events recorded under an older, looser contract stay readable after a constraint was
tightened (issue 16 B): the record is never edited, so intake may refuse a trailing
newline in an id or a carriage return in a summary today, but the events that hold them
must still be logged, shown, folded into the views and published."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import msgspec
import pytest
from click.testing import CliRunner

from ledger import events as ev
from ledger.app import Ledger
from ledger.cli.main import cli
from ledger.config import Settings
from ledger.intake import _submission
from ledger.store.codec import decode_event, encode_event
from tests.conftest import Backend

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def _older(entity_id: str, **fields: object) -> ev.PartyRegistered:
    """A party event as an older ledger accepted it (struct constructors check nothing)."""
    return ev.PartyRegistered(
        event_id=uuid.uuid4(),
        entity_id=entity_id,
        effective_at=NOW,
        recorded_at=NOW,
        actor="old ledger",
        name="Acme\r\nRare Earths",
        country="DE",
        roles=("end-user",),
        sources=(ev.Source(reference="  ", publisher="MOFCOM"),),
        **fields,  # type: ignore[arg-type]
    )


def test_the_codec_reads_what_looser_contracts_accepted() -> None:
    event = _older("acme\n", summary="\x1b[1mbold\x1b[0m")
    data = encode_event(event)
    assert decode_event(data, "PartyRegistered") == event
    assert decode_event(data) == event
    assert isinstance(decode_event(data).sources[0], ev.Source)  # type: ignore[attr-defined]


def test_older_events_stay_readable(backend: Backend) -> None:
    env = backend.env()
    older = _older("acme\n")
    ledger = Ledger(Settings.from_env(env))
    try:
        ledger.append([_submission(older, None, False, False)])
    finally:
        ledger.close()
    runner = CliRunner()
    log = runner.invoke(cli, ["log", "-o", "jsonl"], env=env)
    assert log.exit_code == 0, log.output
    assert json.loads(log.output)["entity_id"] == "acme\n"
    shown = runner.invoke(cli, ["show", str(older.event_id), "-o", "json"], env=env)
    assert shown.exit_code == 0, shown.output
    folded = runner.invoke(cli, ["end-users", "--fold", "-o", "json"], env=env)
    assert folded.exit_code == 0, folded.output
    assert [p["party_id"] for p in json.loads(folded.output)["parties"]] == ["acme\n"]
    projected = runner.invoke(cli, ["project", "--once"], env=env)
    assert projected.exit_code == 0, projected.output
    stored = runner.invoke(cli, ["end-users", "-o", "json"], env=env)
    assert json.loads(stored.output)["source"] == "views"
    assert [p["party_id"] for p in json.loads(stored.output)["parties"]] == ["acme\n"]


def test_the_projector_reads_stored_events_as_the_codec_does() -> None:
    """The views projector decodes what it reads from the store without checking the
    contract's constraints again (``decode_stored``: they were checked at append): every
    event comes out equal to ``decode_event``'s, of the same class once ``contract``
    makes a loose shipment one, older looser records included; what even the types
    refuse raises ``decode_event``'s error."""
    from ledger.store.codec import LooseShipment, contract, decode_stored

    shipment = ev.LicenceUsageRecorded(
        event_id=uuid.uuid4(),
        entity_id="GL-1\n",  # an older contract's trailing newline
        effective_at=NOW,
        recorded_at=NOW,
        actor="old ledger",
        sources=(ev.Source(reference="  ", publisher="MOFCOM", note="\x1b"),),
        shipment_id="S-1",
        item="1C902.a",
        quantity=ev.Decimal("1.5"),
        end_user="buyer",
        destination="US",
    )
    granted = ev.LicenceGranted(
        event_id=uuid.uuid4(),
        entity_id="GL-1",
        effective_at=NOW,
        recorded_at=NOW,
        actor="ledger",
        sources=(ev.Source(reference="MOFCOM 2025/1", publisher="MOFCOM"),),
        licence_type="general",
        issuer="CN",
        exporter="jl-mag",
        end_users=("buyer",),
        items=(ev.LicenceItem(item="1C902.a", cap=ev.Decimal(1000), unit="kg"),),
        destinations=("DE",),
        valid_until=NOW + dt.timedelta(days=300),
    )
    current = msgspec.structs.replace(shipment, entity_id="GL-1", sources=granted.sources)
    samples = [encode_event(e) for e in (shipment, current, granted, _older("acme\n"))]
    for data in samples:
        topic = json.loads(data)["type"]
        expected = decode_event(data, topic)
        loose = decode_stored(data, topic)
        assert (type(loose) is LooseShipment) == (topic == "LicenceUsageRecorded")
        assert type(contract(loose)) is type(expected)
        assert contract(loose) == expected
        assert isinstance(contract(loose).sources[0], ev.Source)
    wrong = json.loads(samples[0])
    wrong["quantity"] = ["15"]  # a list: not even the types hold
    data = json.dumps(wrong).encode()
    with pytest.raises(msgspec.ValidationError) as refused:
        decode_event(data, "LicenceUsageRecorded")
    with pytest.raises(msgspec.ValidationError, match=re.escape(str(refused.value))):
        decode_stored(data, "LicenceUsageRecorded")
