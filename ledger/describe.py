"""One-line human descriptions of events, for logs, tables and narratives."""

from __future__ import annotations

import datetime as dt

from ledger import events as ev
from ledger.times import short, through_text


def _until(t: dt.datetime | None) -> str:
    """An exclusive end shown as the last day it covers when it falls on a midnight of the
    reading zone (``--tz``), else as the exact instant."""
    return through_text(t)


def describe(e: ev.Event) -> str:
    """What the event says, in one line (its ``summary`` when the operator gave one)."""
    if e.summary:
        return e.summary
    match e:
        case ev.AgreementReached():
            return f"{e.title} between {', '.join(e.parties)}"
        case ev.AgreementExtended():
            return f"extended {_until(e.valid_until)}"
        case ev.CommitmentPledged():
            claim = "" if e.obligor in e.asserted_by else " (claimed by the other side)"
            due = f", due {_until(e.due_by)}" if e.due_by else ""
            return f"{e.obligor} pledges to {e.beneficiary}: {e.description}{due}{claim}"
        case ev.CommitmentAcknowledged():
            return f"{e.party} acknowledges the pledge"
        case ev.CommitmentImplemented():
            window = f", in force {_until(e.in_force_until)}" if e.in_force_until else ""
            return f"implemented ({e.extent}) by {e.instrument}{window}"
        case ev.CommitmentReversed():
            return f"reversed: {e.reason}"
        case ev.CommitmentLapsed():
            return f"lapsed: {e.reason}"
        case ev.MeasurePublished():
            return f"{e.issuer} {e.instrument}: {e.title} ({len(e.clauses)} clause(s))"
        case ev.ClauseSuspended():
            return f"clause {e.clause_id} suspended {_until(e.until)} by {e.instrument}"
        case ev.SuspensionEnded():
            return f"suspension of clause {e.clause_id} ended"
        case ev.MeasureRevoked():
            which = ", ".join(e.clause_ids) if e.clause_ids else "all clauses"
            return f"revoked {which}: {e.reason}"
        case ev.PartyRegistered():
            return f"{e.name} ({e.country}; {', '.join(e.roles)})"
        case ev.PartyVetted():
            until = f" {_until(e.valid_until)}" if e.valid_until else ""
            return f"vetted {e.outcome} by {e.authority}{until}"
        case ev.PartyClassified():
            return f"classified {e.classification} by {e.authority}"
        case ev.PartyListed():
            return f"listed on {e.list_name} ({e.list_kind})"
        case ev.PartyDelisted():
            return f"removed from {e.list_name}"
        case ev.LicenceGranted():
            items = ", ".join(f"{i.item} ≤{i.cap} {i.unit}" for i in e.items)
            return (
                f"{e.licence_type} licence: {e.exporter} → {', '.join(e.end_users)} "
                f"({', '.join(e.destinations)}); {items}; {_until(e.valid_until)}"
            )
        case ev.LicenceAmended():
            return f"amended: {e.reason}"
        case ev.LicenceSuspended():
            return f"suspended: {e.reason}"
        case ev.LicenceReinstated():
            return "reinstated" + (f": {e.reason}" if e.reason else "")
        case ev.LicenceWithdrawn():
            return f"withdrawn: {e.reason}"
        case ev.LicenceSurrendered():
            return "surrendered" + (f": {e.reason}" if e.reason else "")
        case ev.LicenceUsageRecorded():
            return (
                f"shipment {e.shipment_id}: {e.quantity} of {e.item} to {e.end_user} "
                f"({e.destination})"
            )
        case ev.ApplicationSubmitted():
            return (
                f"{e.exporter} applies to export {e.quantity} {e.unit} of {e.item} to "
                f"{e.end_user} ({e.destination}) for {e.end_use}"
            )
        case ev.ApplicationDecided():
            why = "; ".join(e.reasons)
            return f"{e.outcome}" + (f": {why}" if why else "")
        case ev.ClaimReported():
            when = f" (said to take effect {short(e.takes_effect_at)})" if e.takes_effect_at else ""
            return f"claim, unverified: {e.claimant} is reported to say: {e.says}{when}"
        case ev.ClaimResolved():
            return f"claim {e.outcome} by {', '.join(e.evidence)}: {e.reason}"
        case ev.EventRetracted():
            return f"retracts {e.retracted_event_id}: {e.reason}"
    return e.type  # pragma: no cover
