"""A deliberately naive second opinion on the key views, for the property tests only.

It answers "what did licence L and clause C look like as of T, as known at K?" by
replaying the raw event log for that one (T, K): plain dicts decoded from the stored
JSON, a list sorted by effective time, and a loop.  It shares no code with the
production folds (``ledger.domain``, ``ledger.projections``) — only the event log as
the store hands it out — so a wrong rule written once and used everywhere in production
(a flipped boundary, a day where an instant was meant, a branch ignored) shows up as a
disagreement with it.

The rules it encodes are the README's, read as an auditor would:

- An observer at (T, K) sees the events recorded at or before K that no retraction
  recorded at or before K withdrew, and of those the ones effective at or before T, in
  effective order (ties: the order they were recorded).
- A licence's items and caps are the grant's, replaced by a later amendment's list;
  an item's use is the sum of the shipments of that item seen while it was on the
  licence (an amendment keeps the use of the items it keeps).
- A licence is withdrawn or surrendered once such an event is seen; otherwise expired
  from its (possibly amended) end; otherwise suspended inside the window of the last
  suspension not lifted by a later reinstatement; otherwise exhausted (a single licence
  after one shipment, a general one when every item is used up); otherwise active.
- A clause is revoked once a revocation naming it (or naming none) is seen; suspended
  inside a suspension's window, which ends at its ``until`` or at the first
  ``SuspensionEnded`` inside it; not yet effective before its own effective time;
  otherwise in force.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger.app import Ledger

Event = dict[str, Any]


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass
class RawLog:
    """The store's events as plain dicts, in recorded (global) order."""

    events: list[Event]

    @classmethod
    def read(cls, app: Ledger) -> RawLog:
        out: list[Event] = []
        import msgspec

        for entry in app.log(order="recorded", include_retracted=True):
            raw = json.loads(msgspec.json.encode(entry.event))
            raw["_position"] = entry.position
            raw["_effective"] = _time(raw["effective_at"])
            raw["_recorded"] = _time(raw["recorded_at"])
            out.append(raw)
        return cls(out)

    def seen(self, as_of: dt.datetime, known_at: dt.datetime | None) -> list[Event]:
        known = [e for e in self.events if known_at is None or e["_recorded"] <= known_at]
        withdrawn = {e["retracted_event_id"] for e in known if e["type"] == "EventRetracted"}
        facts = [
            e
            for e in known
            if e["type"] != "EventRetracted"
            and e["event_id"] not in withdrawn
            and e["_effective"] <= as_of
        ]
        return sorted(facts, key=lambda e: (e["_effective"], e["_position"]))


@dataclass
class Licence:
    status: str
    caps: dict[str, Decimal]
    used: dict[str, Decimal] = field(default_factory=dict)
    shipments: int = 0


def licences(log: RawLog, as_of: dt.datetime, known_at: dt.datetime | None) -> dict[str, Licence]:
    out: dict[str, Licence] = {}
    for licence_id in sorted({e["entity_id"] for e in log.events if e["type"] == "LicenceGranted"}):
        events = [e for e in log.seen(as_of, known_at) if e["entity_id"] == licence_id]
        grants = [i for i, e in enumerate(events) if e["type"] == "LicenceGranted"]
        if not grants:
            continue  # not granted yet as of T (or the grant is unknown at K)
        events = events[grants[0] :]  # nothing happens to a licence before it exists
        grant = events[0]
        caps = {i["item"]: Decimal(i["cap"]) for i in grant["items"]}
        used = {item: Decimal(0) for item in caps}
        valid_until = _time(grant["valid_until"])
        suspended: tuple[dt.datetime, dt.datetime | None] | None = None
        ended = ""
        shipments: set[str] = set()
        for e in events[1:]:
            kind = e["type"]
            if kind == "LicenceUsageRecorded":
                shipments.add(e["shipment_id"])
                if e["item"] in used:
                    used[e["item"]] += Decimal(e["quantity"])
            elif kind == "LicenceAmended":
                if e.get("valid_until"):
                    valid_until = _time(e["valid_until"])
                if e.get("items") is not None:
                    caps = {i["item"]: Decimal(i["cap"]) for i in e["items"]}
                    used = {item: used.get(item, Decimal(0)) for item in caps}
            elif kind == "LicenceSuspended":
                suspended = (e["_effective"], _time(e.get("until")))
            elif kind == "LicenceReinstated":
                suspended = None
            elif kind == "LicenceWithdrawn" and not ended:
                ended = "withdrawn"
            elif kind == "LicenceSurrendered" and not ended:
                ended = "surrendered"
        assert valid_until is not None
        if ended:
            status = ended
        elif as_of >= valid_until:
            status = "expired"
        elif suspended and suspended[0] <= as_of and (suspended[1] is None or as_of < suspended[1]):
            status = "suspended"
        elif (grant["licence_type"] == "single" and shipments) or (
            grant["licence_type"] != "single" and all(used[i] >= caps[i] for i in caps)
        ):
            status = "exhausted"
        else:
            status = "active"
        out[licence_id] = Licence(status, caps, used, len(shipments))
    return out


def clauses(log: RawLog, as_of: dt.datetime, known_at: dt.datetime | None) -> dict[str, str]:
    """``"measure/clause" -> status`` as of T, as known at K."""
    seen = log.seen(as_of, known_at)
    out: dict[str, str] = {}
    for published in (e for e in seen if e["type"] == "MeasurePublished"):
        measure = published["entity_id"]
        events = [e for e in seen if e["entity_id"] == measure]
        for clause in published["clauses"]:
            cid = clause["clause_id"]
            revoked = any(
                e["type"] == "MeasureRevoked"
                and (not e.get("clause_ids") or cid in e["clause_ids"])
                for e in events
            )
            windows: list[list[dt.datetime | None]] = []  # [start, end]
            for e in events:
                if e.get("clause_id") != cid:
                    continue
                if e["type"] == "ClauseSuspended":
                    windows.append([e["_effective"], _time(e.get("until"))])
                elif e["type"] == "SuspensionEnded":
                    t = e["_effective"]
                    for w in windows:
                        start, end = w
                        assert start is not None
                        if start <= t and (end is None or t < end):
                            w[1] = t
                            break
            suspended = any(
                start is not None and start <= as_of and (end is None or as_of < end)
                for start, end in windows
            )
            if revoked:
                status = "revoked"
            elif suspended:
                status = "suspended"
            elif as_of < dt.datetime.fromisoformat(clause["effective_at"]):
                status = "not-yet-effective"
            else:
                status = "in-force"
            out[f"{measure}/{cid}"] = status
    return out
