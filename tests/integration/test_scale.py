"""Production scale: imports of any size into PostgreSQL, in one transaction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from ledger.app import Ledger
from tests.conftest import Backend

LEDGER = str(Path(sys.executable).parent / "ledger")
NAMESPACE = uuid.UUID("0b6c2f43-2d7e-4f0e-9a39-7a0d5f1c3e21")


def write_import_file(path: Path, total: int, licences: int = 500) -> None:
    """``total`` valid events: an exporter, a vetted end user, licences, then shipments."""
    src = [{"reference": "https://example.org/customs", "publisher": "GACC"}]
    head: list[dict[str, object]] = [
        {
            "type": "PartyRegistered",
            "entity_id": "exporter",
            "name": "Exporter",
            "country": "CN",
            "roles": ["exporter"],
            "effective_at": "2025-01-01",
        },
        {
            "type": "PartyRegistered",
            "entity_id": "buyer",
            "name": "Buyer",
            "country": "DE",
            "roles": ["end-user"],
            "effective_at": "2025-01-02",
        },
        {
            "type": "PartyVetted",
            "entity_id": "buyer",
            "outcome": "approved",
            "authority": "MOFCOM",
            "effective_at": "2025-06-01",
        },
    ]
    head += [
        {
            "type": "LicenceGranted",
            "entity_id": f"GL-{n}",
            "licence_type": "general",
            "issuer": "CN",
            "exporter": "exporter",
            "end_users": ["buyer"],
            "items": [{"item": "1C902.a", "cap": "100000000", "unit": "kg"}],
            "destinations": ["DE"],
            "effective_at": "2025-12-02",
            "valid_until": "2026-12-01",
        }
        for n in range(licences)
    ]
    with path.open("w") as out:
        for i in range(total):
            if i < len(head):
                obj = head[i]
            else:
                n = i - len(head)
                obj = {
                    "type": "LicenceUsageRecorded",
                    "entity_id": f"GL-{n % licences}",
                    "shipment_id": f"S-{n}",
                    "item": "1C902.a",
                    "quantity": "1.5",
                    "end_user": "buyer",
                    "destination": "DE",
                    "effective_at": f"2026-0{1 + n * 8 // total}-01T08:00:00Z",
                }
            obj["sources"] = src
            obj["event_id"] = str(uuid.uuid5(NAMESPACE, str(i)))
            out.write(json.dumps(obj, separators=(",", ":")) + "\n")


def test_postgres_imports_200k_events_in_one_transaction(
    postgres_backend: Backend, tmp_path: Path
) -> None:
    """Before the write path left psycopg's pipeline mode, an import of ~15,000 events or
    more hung for good (the client and the server both waiting: psycopg issue 685)."""
    total = 200_000
    path = tmp_path / "events.jsonl"
    write_import_file(path, total)
    ledger_env = postgres_backend.env()
    env = {**os.environ, **ledger_env}

    first = subprocess.run(
        [LEDGER, "import", str(path), "-o", "json", "--no-progress"],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr.decode()
    body = json.loads(first.stdout)
    assert body["appended"] == total
    positions = [e["position"] for e in body["events"]]
    assert positions == sorted(set(positions))  # one each, in line order
    assert (body["first_position"], body["last_position"]) == (positions[0], positions[-1])
    app = Ledger(postgres_backend.settings(ledger_env))
    try:
        assert app.index.count_events() == total
        assert app.head() == positions[-1]
        del body, positions

        again = subprocess.run(
            [LEDGER, "import", str(path), "-o", "json", "--no-progress"],
            env=env,
            capture_output=True,
            timeout=600,
        )
        assert again.returncode == 0, again.stderr.decode()
        second = json.loads(again.stdout)
        assert (second["appended"], second["duplicates"]) == (0, total)
        assert app.index.count_events() == total
    finally:
        app.close()
