"""A realistic synthetic ledger history for benchmarks (deterministic for a given seed).

``history(total, seed)`` yields *batches* of event objects (JSON-ready dicts) in the order
an operator would append them: day by day over three years of effective time, each batch
appended at once (so it gets one recorded time).  The mix is what a busy compliance desk
records: thousands of end users and their vetting, control measures and their suspensions,
an agreement with reciprocal commitments, many general (and some single) licences, and
mostly shipments under them and export applications with their decisions.

Late knowledge is part of the mix: some withdrawals are recorded weeks after they took
effect (so shipments recorded meanwhile conflict with them), some end users named by
licences are later put on a military end-user list, and a few shipments are retracted.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from typing import Any

UTC = dt.UTC
NAMESPACE = uuid.UUID("0b8a4c52-4d0e-4b8e-8f5e-3e2f7d1c9a10")
SOURCE = [
    {"reference": "https://example.org/bench", "publisher": "MOFCOM", "status": "illustrative"}
]
START = dt.datetime(2023, 6, 1, tzinfo=UTC)
DAYS = 1095
ITEMS = [
    "1C902.a",
    "1C902.b",
    "1C903",
    "1C904",
    "1C905",
    "1C906",
    "1C907",
    "1C908",
    "1C911.a",
    "1C912",
    "8505.11",
    "2805.30",
    "8112.92",
    "8101.94",
    "2504.10",
]
COUNTRIES = ["US", "DE", "JP", "KR", "NL", "FR", "IT", "GB", "IN", "MX"]

Obj = dict[str, Any]


def _t(day: float) -> str:
    return (START + dt.timedelta(days=day)).isoformat().replace("+00:00", "Z")


class _Ids:
    def __init__(self, seed: int):
        self.seed = seed
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return str(uuid.uuid5(NAMESPACE, f"{self.seed}:{self.n}"))


def history(total: int = 1_000_000, seed: int = 7, batch_events: int = 1) -> Iterator[list[Obj]]:
    """Batches of event objects, ``total`` events in all (about): one day's events per
    batch (several days when a day has fewer than ``batch_events``)."""
    batch: list[Obj] = []
    for _day, day_events in daily(total, seed):
        batch.extend(day_events)
        if len(batch) >= batch_events:
            yield batch
            batch = []
    if batch:
        yield batch


def daily(total: int = 1_000_000, seed: int = 7) -> Iterator[tuple[int, list[Obj]]]:
    """``(day, events)`` for each day (counted from ``START``) on which events are
    appended, in effective order within the day; late knowledge is on a later day."""
    rng = random.Random(seed)
    new_id = _Ids(seed)
    days: list[list[tuple[float, Obj]]] = [[] for _ in range(DAYS + 60)]

    def at(day: float, obj: Obj, recorded_day: float | None = None) -> Obj:
        """Schedule ``obj`` effective ``day``, appended on ``recorded_day`` (default same)."""
        obj["effective_at"] = _t(day)
        obj.setdefault("event_id", new_id())
        if obj["type"] not in ("ApplicationSubmitted", "ApplicationDecided", "EventRetracted"):
            obj["sources"] = SOURCE
        slot = int(recorded_day if recorded_day is not None else day)
        days[min(slot, len(days) - 1)].append((day, obj))
        return obj

    exporters = max(4, total // 2500)
    end_users = max(10, total // 170)
    licences = max(5, total // 80)
    applications = int(total * 0.17)

    # --- agreement and commitments (small, but the asymmetry view's input) ---------------
    at(
        0,
        {
            "type": "AgreementReached",
            "entity_id": "geneva",
            "title": "Geneva joint statement",
            "parties": ["US", "CN"],
        },
    )
    at(
        700,
        {
            "type": "AgreementReached",
            "entity_id": "busan",
            "title": "Busan arrangement",
            "parties": ["US", "CN"],
            "valid_until": _t(1065),
            "extendable": True,
        },
    )
    for pair in range(15):
        agreement, base = ("geneva", 5) if pair < 5 else ("busan", 702)
        us, cn = f"c-{pair}-us", f"c-{pair}-cn"
        at(
            base,
            {
                "type": "CommitmentPledged",
                "entity_id": us,
                "agreement_id": agreement,
                "obligor": "US",
                "beneficiary": "CN",
                "asserted_by": ["US", "CN"],
                "category": "tariffs",
                "description": f"US concession {pair}",
                "due_by": _t(base + 30),
            },
        )
        asserted = ["US"] if pair % 4 == 3 else ["US", "CN"]  # some unilateral claims
        at(
            base,
            {
                "type": "CommitmentPledged",
                "entity_id": cn,
                "agreement_id": agreement,
                "obligor": "CN",
                "beneficiary": "US",
                "asserted_by": asserted,
                "category": "export-controls",
                "description": f"CN concession {pair}",
                "due_by": _t(base + 30),
                "reciprocates": [us],
            },
        )
        at(
            base + 8,
            {
                "type": "CommitmentImplemented",
                "entity_id": us,
                "extent": "full",
                "instrument": f"EO {pair}",
            },
        )
        if pair % 3:
            at(
                base + 8 + 5 * (pair % 7),
                {
                    "type": "CommitmentImplemented",
                    "entity_id": cn,
                    "extent": "partial" if pair % 5 == 0 else "full",
                    "instrument": f"Announcement {pair}",
                },
                recorded_day=base + 10 + 5 * (pair % 7),
            )

    # --- control measures -----------------------------------------------------------------
    for m in range(30):
        day = rng.uniform(0, DAYS - 30)
        clauses = []
        for c in range(rng.randint(1, 4)):
            clauses.append(
                {
                    "clause_id": f"cl{c + 1}",
                    "effect": rng.choice(
                        ["licence-required"] * 4
                        + ["prohibited", "enhanced-review", "denied-in-principle", "fee"]
                    ),
                    "items": rng.sample(ITEMS, rng.randint(1, 3)),
                    "destinations": [] if rng.random() < 0.5 else rng.sample(COUNTRIES, 2),
                    "end_user_classes": [] if rng.random() < 0.6 else ["military"],
                    "effective_at": _t(day + rng.choice([0, 0, 30])),
                }
            )
        at(
            day,
            {
                "type": "MeasurePublished",
                "entity_id": f"M-{m}",
                "issuer": "CN",
                "title": f"Measure {m}",
                "instrument": f"Announcement {m}/2024",
                "clauses": clauses,
            },
        )
        if m % 3 == 0:
            start = day + 60
            at(
                start,
                {
                    "type": "ClauseSuspended",
                    "entity_id": f"M-{m}",
                    "clause_id": "cl1",
                    "until": _t(start + 365),
                    "instrument": f"Suspension {m}",
                },
            )
            if m % 2 == 0:
                at(
                    start + 100,
                    {"type": "SuspensionEnded", "entity_id": f"M-{m}", "clause_id": "cl1"},
                )

    # --- parties --------------------------------------------------------------------------
    for x in range(exporters):
        at(
            rng.uniform(0, 20),
            {
                "type": "PartyRegistered",
                "entity_id": f"EXP-{x}",
                "name": f"Exporter {x}",
                "country": "CN",
                "roles": ["exporter"],
            },
        )
    country_of: dict[int, str] = {}
    listed_on: dict[int, float] = {}
    for u in range(end_users):
        country_of[u] = rng.choice(COUNTRIES)
        reg = rng.uniform(0, 40)
        at(
            reg,
            {
                "type": "PartyRegistered",
                "entity_id": f"EU-{u}",
                "name": f"End user {u}",
                "country": country_of[u],
                "roles": ["end-user"],
            },
        )
        at(
            reg + 5,
            {
                "type": "PartyVetted",
                "entity_id": f"EU-{u}",
                "outcome": "approved",
                "authority": "MOFCOM",
                "valid_until": _t(DAYS + 400),
            },
        )
        if u % 40 == 7:
            at(
                reg + 6,
                {
                    "type": "PartyClassified",
                    "entity_id": f"EU-{u}",
                    "classification": "military-affiliated",
                    "authority": "MOFCOM",
                },
            )
        if u % 200 == 11:  # listed later: licences granted before then name them
            listed_on[u] = rng.uniform(300, DAYS - 100)
            at(
                listed_on[u],
                {
                    "type": "PartyListed",
                    "entity_id": f"EU-{u}",
                    "list_name": "MEU list",
                    "list_kind": "military-end-user",
                    "authority": "BIS",
                },
            )

    # --- licences and shipments -----------------------------------------------------------
    shipments_total = total - len([1 for d in days for _ in d]) - 2 * applications - licences
    # Some shipments fall outside a validity or a suspension and are not made: aim higher.
    per_licence = max(1.0, 1.16 * shipments_total / licences)
    shipment_no = 0
    usage_ids: list[tuple[float, str, str]] = []
    for n in range(licences):
        general = rng.random() < 0.85
        grant = rng.uniform(45, DAYS - 60)
        length = rng.uniform(200, 1090) if general else rng.uniform(30, 360)
        until = grant + length
        users = [
            u
            for u in rng.sample(range(end_users), 3 if general else 1)
            if listed_on.get(u, 1e9) > grant
        ][: rng.randint(1, 3) if general else 1]
        if not users:
            continue
        items = rng.sample(ITEMS, rng.randint(1, 2))
        lid = f"{'GL' if general else 'SL'}-{n}"
        exporter = f"EXP-{rng.randrange(exporters)}"
        destinations = sorted({country_of[u] for u in users})
        at(
            grant,
            {
                "type": "LicenceGranted",
                "entity_id": lid,
                "licence_type": "general" if general else "single",
                "issuer": "CN",
                "exporter": exporter,
                "end_users": [f"EU-{u}" for u in users],
                "items": [{"item": i, "cap": "1000000", "unit": "kg"} for i in items],
                "destinations": destinations,
                "valid_until": _t(until),
            },
        )
        stop = min(until, DAYS) - 0.5
        late_withdrawal = None
        if rng.random() < 0.03 and stop - grant > 40:
            late_withdrawal = rng.uniform(grant + 20, stop - 10)
            stop = late_withdrawal + 8  # shipments continue, unaware, for a few days
            at(
                late_withdrawal,
                {"type": "LicenceWithdrawn", "entity_id": lid, "reason": "end-use concerns"},
                recorded_day=late_withdrawal + 10,
            )
        suspended = None
        if late_withdrawal is None and rng.random() < 0.03 and stop - grant > 80:
            suspended = rng.uniform(grant + 10, stop - 60)
            at(suspended, {"type": "LicenceSuspended", "entity_id": lid, "reason": "audit"})
            at(suspended + 30, {"type": "LicenceReinstated", "entity_id": lid})
        if rng.random() < 0.04 and stop - grant > 30:
            at(
                grant + 20,
                {
                    "type": "LicenceAmended",
                    "entity_id": lid,
                    "reason": "cap raised",
                    "items": [{"item": i, "cap": "2000000", "unit": "kg"} for i in items],
                },
            )
        count = 1 if not general else max(1, int(rng.expovariate(1 / per_licence)))
        if stop <= grant:
            continue
        for _ in range(count):
            day = rng.uniform(grant, stop)
            if suspended is not None and suspended <= day < suspended + 30:
                day += 30
                if day >= stop:
                    continue
            shipment_no += 1
            u = rng.choice(users)
            obj = at(
                day,
                {
                    "type": "LicenceUsageRecorded",
                    "entity_id": lid,
                    "shipment_id": f"S-{shipment_no}",
                    "item": rng.choice(items),
                    "quantity": str(rng.randint(1, 400)),
                    "end_user": f"EU-{u}",
                    "destination": country_of[u],
                },
            )
            if shipment_no % 2000 == 17:
                usage_ids.append((day, obj["event_id"], lid))
    for day, event_id, _lid in usage_ids:
        at(
            day + 12,
            {
                "type": "EventRetracted",
                "retracted_event_id": event_id,
                "reason": "duplicate customs declaration",
            },
        )

    # --- applications ---------------------------------------------------------------------
    for a in range(applications):
        day = rng.uniform(60, DAYS)
        u = rng.randrange(end_users)
        common = {"entity_id": f"APP-{a}"}
        at(
            day,
            {
                "type": "ApplicationSubmitted",
                **common,
                "exporter": f"EXP-{rng.randrange(exporters)}",
                "end_user": f"EU-{u}",
                "item": rng.choice(ITEMS),
                "quantity": str(rng.randint(10, 5000)),
                "destination": country_of[u],
                "end_use": "magnet manufacturing",
            },
        )
        at(
            day,
            {
                "type": "ApplicationDecided",
                **common,
                "outcome": "approved" if rng.random() < 0.8 else "rejected",
                "reasons": ["generated"],
            },
        )

    for day, day_events in enumerate(days):
        if day_events:
            day_events.sort(key=lambda pair: pair[0])
            yield day, [obj for _, obj in day_events]
