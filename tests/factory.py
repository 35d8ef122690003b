"""Builders of valid event JSON objects for tests (override any field with keywords)."""

from __future__ import annotations

from typing import Any

SRC = {
    "reference": "https://example.org/notice",
    "publisher": "MOFCOM",
    "published_on": "2025-11-07",
    "status": "official",
}


def _event(type_: str, entity_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "entity_id": entity_id, "sources": [SRC], **fields}


def party(pid: str = "buyer", *, roles: tuple[str, ...] = ("end-user",), **kw: Any) -> dict:
    base = {
        "name": pid.title(),
        "country": "DE",
        "roles": list(roles),
        "effective_at": "2025-01-01",
    }
    return _event("PartyRegistered", pid, **{**base, **kw})


def exporter(pid: str = "jl-mag", **kw: Any) -> dict:
    return party(pid, roles=("exporter",), country="CN", **kw)


def vetted(pid: str = "buyer", outcome: str = "approved", **kw: Any) -> dict:
    base = {"outcome": outcome, "authority": "MOFCOM", "effective_at": "2025-06-01"}
    return _event("PartyVetted", pid, **{**base, **kw})


def classified(pid: str, classification: str = "military", **kw: Any) -> dict:
    base = {"classification": classification, "authority": "MOFCOM", "effective_at": "2025-06-01"}
    return _event("PartyClassified", pid, **{**base, **kw})


def listed(
    pid: str,
    list_name: str = "CN military end users",
    list_kind: str = "military-end-user",
    **kw: Any,
) -> dict:
    base = {
        "list_name": list_name,
        "list_kind": list_kind,
        "authority": "MOFCOM",
        "effective_at": "2025-06-01",
    }
    return _event("PartyListed", pid, **{**base, **kw})


def delisted(pid: str, list_name: str = "CN military end users", **kw: Any) -> dict:
    base = {"list_name": list_name, "authority": "MOFCOM", "effective_at": "2025-09-01"}
    return _event("PartyDelisted", pid, **{**base, **kw})


def licence(lid: str = "GL-1", **kw: Any) -> dict:
    base = {
        "licence_type": "general",
        "issuer": "CN",
        "exporter": "jl-mag",
        "end_users": ["buyer"],
        "items": [{"item": "1C902.a", "cap": "1000", "unit": "kg"}],
        "destinations": ["DE"],
        "effective_at": "2025-12-02",
        "valid_until": "2026-12-01",
    }
    return _event("LicenceGranted", lid, **{**base, **kw})


def usage(lid: str = "GL-1", shipment: str = "S-1", quantity: str = "100", **kw: Any) -> dict:
    base = {
        "shipment_id": shipment,
        "item": "1C902.a",
        "quantity": quantity,
        "end_user": "buyer",
        "destination": "DE",
        "effective_at": "2025-12-10",
    }
    return _event("LicenceUsageRecorded", lid, **{**base, **kw})


def licence_event(type_: str, lid: str = "GL-1", **kw: Any) -> dict:
    defaults: dict[str, dict[str, Any]] = {
        "LicenceSuspended": {"reason": "investigation", "effective_at": "2026-01-10"},
        "LicenceReinstated": {"reason": "cleared", "effective_at": "2026-02-01"},
        "LicenceWithdrawn": {"reason": "end user diverted goods", "effective_at": "2026-03-01"},
        "LicenceSurrendered": {"reason": "no longer needed", "effective_at": "2026-03-01"},
        "LicenceAmended": {
            "reason": "cap raised",
            "effective_at": "2026-01-05",
            "items": [{"item": "1C902.a", "cap": "2000", "unit": "kg"}],
        },
    }
    return _event(type_, lid, **{**defaults.get(type_, {}), **kw})


def licensed_world(lid: str = "GL-1", **licence_kw: Any) -> list[dict]:
    """Exporter, a vetted end user and a general licence: the usual starting point."""
    return [exporter(), party("buyer"), vetted("buyer"), licence(lid, **licence_kw)]


def agreement(aid: str = "busan-2025", **kw: Any) -> dict:
    base = {
        "title": "Busan arrangement",
        "parties": ["US", "CN"],
        "effective_at": "2025-10-30",
        "valid_until": "2026-11-09",
        "extendable": True,
    }
    return _event("AgreementReached", aid, **{**base, **kw})


def pledge(cid: str, obligor: str = "CN", beneficiary: str = "US", **kw: Any) -> dict:
    base = {
        "agreement_id": "busan-2025",
        "obligor": obligor,
        "beneficiary": beneficiary,
        "asserted_by": [obligor],
        "category": "export-controls",
        "description": f"pledge {cid}",
        "effective_at": "2025-11-01",
    }
    return _event("CommitmentPledged", cid, **{**base, **kw})


def implemented(cid: str, **kw: Any) -> dict:
    base = {"extent": "full", "instrument": "Announcement 70", "effective_at": "2025-11-10"}
    return _event("CommitmentImplemented", cid, **{**base, **kw})


def measure(mid: str = "cn-ann-46", **kw: Any) -> dict:
    base = {
        "issuer": "CN",
        "title": "Export controls to the US",
        "instrument": "MOFCOM Announcement 46/2024",
        "effective_at": "2024-12-03",
        "clauses": [
            {
                "clause_id": "cl1",
                "effect": "prohibited",
                "destinations": ["US"],
                "end_user_classes": ["military"],
                "effective_at": "2024-12-03",
            },
            {
                "clause_id": "cl2",
                "effect": "denied-in-principle",
                "items": ["gallium"],
                "destinations": ["US"],
                "effective_at": "2024-12-03",
            },
        ],
    }
    return _event("MeasurePublished", mid, **{**base, **kw})


def suspended(mid: str = "cn-ann-46", clause: str = "cl2", **kw: Any) -> dict:
    base = {
        "clause_id": clause,
        "instrument": "MOFCOM Announcement 72/2025",
        "effective_at": "2025-11-09",
        "until": "2026-11-27",
    }
    return _event("ClauseSuspended", mid, **{**base, **kw})


def application(aid: str = "APP-1", **kw: Any) -> dict:
    base = {
        "exporter": "jl-mag",
        "end_user": "buyer",
        "item": "1C902.a",
        "quantity": "10",
        "destination": "DE",
        "end_use": "motors",
        "effective_at": "2025-12-03",
    }
    event = _event("ApplicationSubmitted", aid, **{**base, **kw})
    event["sources"] = []
    return event
