"""The 2025 US-China scenario as data: the single source of ``scenario.jsonl``.

Run ``python -m ledger.scenario.build`` to regenerate the JSONL after editing this file,
and ``python -m ledger.scenario.build --check`` to verify the shipped file matches it
(``tests/e2e/test_scenario.py`` does the same).

The story is told in chapters, one function each (``CHAPTERS``, in story order); the
sources they cite are one table in ``ledger/scenario/sources.py``.

Conventions (see ``docs/scenario.md`` for the reasoning):

- ``recorded_at`` is the day the fact became public (the instrument's publication, the
  report's date for reported facts), at a fixed 12:00Z; the
  file is ordered by recorded time (stable within a day, so references come first).
- Effective times are real: local midnight of the stated day in the issuer's zone
  (Beijing +08:00, Washington -05:00/-04:00, Geneva +02:00, Busan +09:00) unless the
  instrument names a time (China's 13:01 and the US 00:01 tariff times).  Facts known
  only to the day from reporting (the general licences of 2025-12-02) start at 00:00Z.
- End fields are exclusive instants.  A Chinese "until D" (至 D) is read as through the
  end of D in Beijing (D+1 00:00 +08:00); a US "through D" ends at D+1 00:00 Eastern;
  one-year windows that start at a named time (00:01 EST / 13:01 Beijing) end at that
  time a year later.
- Every event id is ``uuid5(NAMESPACE, key)`` with a readable key, so re-importing is
  idempotent.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger.scenario.sources import Src, as_claim, cite, illustrative, instrument

NAMESPACE = uuid.UUID("ec4fd7ed-5adf-5f3e-a46a-eab36d1ae2d4")
"""uuid5(NAMESPACE_URL, 'https://github.com/ledger/scenario/us-china-2025')."""
ACTOR = "scenario-2025"
RECORDED_TIME_OF_DAY = "T12:00:00Z"
OUTPUT = Path(__file__).with_name("scenario.jsonl")

# --- times ------------------------------------------------------------------------------

BEIJING = "+08:00"
EST = "-05:00"
EDT = "-04:00"


def beijing(day: str, time: str = "00:00:00") -> str:
    return f"{day}T{time}{BEIJING}"


def est(day: str, time: str = "00:00:00") -> str:
    return f"{day}T{time}{EST}"


def edt(day: str, time: str = "00:00:00") -> str:
    return f"{day}T{time}{EDT}"


def utc(day: str, time: str = "00:00:00") -> str:
    return f"{day}T{time}Z"


# --- events -----------------------------------------------------------------------------


class Scenario:
    """Collects events; ``lines()`` orders them by recorded time (stable within a day)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._ids: dict[str, str] = {}

    def add(
        self,
        type_: str,
        key: str,
        entity_id: str,
        *,
        effective_at: str,
        recorded_on: str,
        sources: Sequence[Src],
        summary: str,
        **fields: Any,
    ) -> str:
        """Add one event; returns its event id."""
        if key in self._ids:
            raise ValueError(f"duplicate event key {key!r}")
        event_id = self._ids[key] = str(uuid.uuid5(NAMESPACE, key))
        event: dict[str, Any] = {
            "type": type_,
            "event_id": event_id,
            "entity_id": entity_id,
            "effective_at": effective_at,
            "recorded_at": recorded_on + RECORDED_TIME_OF_DAY,
        }
        event.update(fields)
        event["sources"] = list(sources)
        event["summary"] = summary
        event["actor"] = ACTOR
        self.events.append(event)
        return event_id

    def event_id(self, key: str) -> str:
        """The id of the event added under ``key`` (an earlier chapter's event)."""
        return self._ids[key]

    def measure(
        self,
        measure_id: str,
        *,
        issuer: str,
        title: str,
        instrument_: str,
        published_at: str,
        recorded_on: str,
        clauses: Sequence[dict[str, Any]],
        sources: Sequence[Src],
        summary: str,
    ) -> str:
        # A tariff or port fee is levied by the issuer on goods or vessels arriving there:
        # its destination is the issuer, so it is context only for trade into that country.
        clauses = [
            _with_destination(c, issuer) if c["effect"] in ("tariff", "fee") else c for c in clauses
        ]
        return self.add(
            "MeasurePublished",
            f"measure/{measure_id}/published",
            measure_id,
            effective_at=published_at,
            recorded_on=recorded_on,
            sources=sources,
            summary=summary,
            issuer=issuer,
            title=title,
            instrument=instrument_,
            clauses=list(clauses),
        )

    def suspend(
        self,
        measure_id: str,
        clause_id: str,
        *,
        start: str,
        until: str | None,
        instrument_: str,
        recorded_on: str,
        sources: Sequence[Src],
        summary: str,
    ) -> str:
        fields: dict[str, Any] = {"clause_id": clause_id}
        if until is not None:
            fields["until"] = until
        fields["instrument"] = instrument_
        return self.add(
            "ClauseSuspended",
            f"measure/{measure_id}/{clause_id}/suspended/{start}",
            measure_id,
            effective_at=start,
            recorded_on=recorded_on,
            sources=sources,
            summary=summary,
            **fields,
        )

    def pledge(
        self,
        commitment_id: str,
        *,
        agreement_id: str,
        obligor: str,
        beneficiary: str,
        asserted_by: Sequence[str],
        category: str,
        description: str,
        effective_at: str,
        recorded_on: str,
        sources: Sequence[Src],
        summary: str,
        due_by: str | None = None,
        reciprocates: Sequence[str] = (),
        key_suffix: str = "",
    ) -> str:
        fields: dict[str, Any] = {
            "agreement_id": agreement_id,
            "obligor": obligor,
            "beneficiary": beneficiary,
            "asserted_by": list(asserted_by),
            "category": category,
            "description": description,
        }
        if due_by is not None:
            fields["due_by"] = due_by
        if reciprocates:
            fields["reciprocates"] = list(reciprocates)
        return self.add(
            "CommitmentPledged",
            f"commitment/{commitment_id}/pledged{key_suffix}",
            commitment_id,
            effective_at=effective_at,
            recorded_on=recorded_on,
            sources=sources,
            summary=summary,
            **fields,
        )

    def implemented(
        self,
        commitment_id: str,
        *,
        extent: str,
        instrument_: str,
        effective_at: str,
        in_force_until: str | None,
        recorded_on: str,
        sources: Sequence[Src],
        summary: str,
    ) -> str:
        fields: dict[str, Any] = {"extent": extent, "instrument": instrument_}
        if in_force_until is not None:
            fields["in_force_until"] = in_force_until
        return self.add(
            "CommitmentImplemented",
            f"commitment/{commitment_id}/implemented/{effective_at}",
            commitment_id,
            effective_at=effective_at,
            recorded_on=recorded_on,
            sources=sources,
            summary=summary,
            **fields,
        )

    def lines(self) -> list[str]:
        ordered = sorted(self.events, key=lambda e: e["recorded_at"])  # stable
        return [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in ordered]


def clause(
    clause_id: str,
    effect: str,
    effective_at: str,
    description: str,
    *,
    items: Sequence[str] = (),
    destinations: Sequence[str] = (),
    end_user_classes: Sequence[str] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {"clause_id": clause_id, "effect": effect}
    if items:
        out["items"] = list(items)
    if destinations:
        out["destinations"] = list(destinations)
    if end_user_classes:
        out["end_user_classes"] = list(end_user_classes)
    out["effective_at"] = effective_at
    out["description"] = description
    return out


def _with_destination(c: dict[str, Any], destination: str) -> dict[str, Any]:
    if "destinations" in c:
        return c
    out: dict[str, Any] = {}
    for key, value in c.items():
        if key == "effective_at":
            out["destinations"] = [destination]
        out[key] = value
    return out


# Item codes used consistently across measures, licences and applications.  Ann.18 and
# Ann.57 give control codes; the 2023/2024 measures name their items (gallium, ...).
RARE_EARTHS_ANN18 = ("1C902", "1C903", "1C904", "1C905", "1C906", "1C907", "1C908")
RARE_EARTHS_ANN57 = ("1C909", "1C910", "1C911", "1C912", "1C913")
DY_MAGNETS = "1C905.a"
"""Dysprosium metal, alloys and related products, incl. Dy-containing NdFeB magnets."""
TB_MAGNETS = "1C904.a"
SMCO_MAGNETS = "1C902.a"

# Entity ids the demo and tests refer to.
GENEVA = "geneva-2025"
BUSAN = "busan-2025"
ANN46 = "cn-ann-2024-46"
ANN18 = "cn-ann-2025-18"
ANN61 = "cn-ann-2025-61"
ANN62 = "cn-ann-2025-62"
OCTOBER_MEASURES = (
    "cn-ann-2025-55",
    "cn-ann-2025-56",
    "cn-ann-2025-57",
    "cn-ann-2025-58",
    ANN61,
    ANN62,
)
US_FENTANYL_CUT = "busan-us-fentanyl-tariff-cut"
US_RECIPROCAL_SUSPENSION = "busan-us-reciprocal-tariff-suspension"
US_AFFILIATES_SUSPENSION = "busan-us-affiliates-rule-suspension"
US_PORT_FEES_SUSPENSION = "busan-us-port-fees-suspension"
CN_COUNTER_TARIFF_SUSPENSION = "busan-cn-counter-tariff-suspension"
CN_AG_TARIFF_REMOVAL = "busan-cn-ag-tariff-removal"
CN_OCTOBER_SUSPENSION = "busan-cn-october-measures-suspension"
CN_PORT_FEES_SUSPENSION = "busan-cn-port-fees-suspension"
CN_GENERAL_LICENCES = "busan-cn-general-licences"
VEU_PLAN = "cn-veu-plan-2025-11"
AUTO_REJECTION_CLAIM = "cn-military-auto-rejection-2025-12-01"
GL_DEADLINE = utc("2025-12-01")
"""End of November 2025 (exclusive end; UTC because the reports give no zone)."""


FACT_SHEET = instrument(
    "White House fact sheet of 2025-11-01: President Donald J. Trump Strikes Deal on "
    "Economic and Trade Relations with China",
    "The White House",
    "2025-11-01",
)
BUSAN_AT = "2025-10-30T00:00:00+09:00"
GL_DESCRIPTION = (
    "Issue general licences valid for exports of rare earths, gallium, germanium, "
    "antimony and graphite for the benefit of US end users and their suppliers (per the "
    "White House, the de facto removal of the controls imposed since 2023)."
)


def chinese_controls_2020_24(s: Scenario) -> None:
    """The Chinese framework and control measures of 2020-2024."""
    s.measure(
        "cn-export-control-law",
        issuer="CN",
        title="Export Control Law of the People's Republic of China",
        instrument_="Export Control Law of the PRC (NPC Standing Committee, adopted 2020-10-17)",
        published_at=beijing("2020-10-17"),
        recorded_on="2020-10-17",
        clauses=[
            clause(
                "cl.1",
                "other",
                beijing("2020-12-01"),
                "Legal basis: exports of controlled items need a licence from the state "
                "export-control authority (in force 2020-12-01).",
            )
        ],
        sources=[
            instrument(
                "Export Control Law of the PRC, adopted 2020-10-17",
                "NPC Standing Committee",
                "2020-10-17",
            ),
            cite("S2"),
        ],
        summary="CN Export Control Law adopted (in force 2020-12-01)",
    )
    s.measure(
        "cn-ann-2023-23",
        issuer="CN",
        title="Export controls on gallium- and germanium-related items",
        instrument_="MOFCOM/GAC Announcement No. 23 of 2023",
        published_at=beijing("2023-07-03"),
        recorded_on="2023-07-03",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                beijing("2023-08-01"),
                "Gallium-related items need an export licence.",
                items=["gallium"],
            ),
            clause(
                "cl.2",
                "licence-required",
                beijing("2023-08-01"),
                "Germanium-related items need an export licence.",
                items=["germanium"],
            ),
        ],
        sources=[
            instrument("MOFCOM/GAC Announcement No. 23 of 2023", "MOFCOM; GAC", "2023-07-03"),
            cite("S10"),
        ],
        summary="CN Ann.23/2023: gallium and germanium licensing from 2023-08-01",
    )
    s.measure(
        "cn-graphite-2023",
        issuer="CN",
        title="Export controls on high-purity synthetic graphite and natural flake/spherical "
        "graphite",
        instrument_="MOFCOM/GAC announcement of 2023-10-20 on graphite items",
        published_at=beijing("2023-10-20"),
        recorded_on="2023-10-20",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                beijing("2023-12-01"),
                "Graphite items (high-purity synthetic; natural flake and spherical) need an "
                "export licence.",
                items=["graphite"],
            )
        ],
        sources=[
            instrument(
                "MOFCOM/GAC announcement of 2023-10-20 on graphite items",
                "MOFCOM; GAC",
                "2023-10-20",
            ),
            cite("S11"),
        ],
        summary="CN graphite licensing from 2023-12-01",
    )
    s.measure(
        "cn-tech-catalogue-2023",
        issuer="CN",
        title="Rare-earth extraction, separation and magnet-making technologies added to the "
        "export-prohibited technology catalogue",
        instrument_="MOFCOM/MOST revision of the Catalogue of Technologies Prohibited and "
        "Restricted from Export (2023-12-21)",
        published_at=beijing("2023-12-21"),
        recorded_on="2023-12-21",
        clauses=[
            clause(
                "cl.1",
                "prohibited",
                beijing("2023-12-21"),
                "Export of rare-earth extraction/separation, metal and alloy production and "
                "magnet-making technologies is prohibited.",
                items=[
                    "rare-earth extraction and separation technology",
                    "rare-earth metal and alloy production technology",
                    "rare-earth magnet manufacturing technology",
                ],
            )
        ],
        sources=[
            instrument(
                "Catalogue of Technologies Prohibited and Restricted from Export, as revised "
                "on 2023-12-21",
                "MOFCOM; MOST",
                "2023-12-21",
            ),
            cite("S12"),
        ],
        summary="CN prohibits export of rare-earth processing and magnet technologies",
    )
    s.measure(
        "cn-ann-2024-33",
        issuer="CN",
        title="Export controls on antimony and superhard-material items",
        instrument_="MOFCOM/GAC Announcement No. 33 of 2024",
        published_at=beijing("2024-08-15"),
        recorded_on="2024-08-15",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                beijing("2024-09-15"),
                "Antimony items need an export licence.",
                items=["antimony"],
            ),
            clause(
                "cl.2",
                "licence-required",
                beijing("2024-09-15"),
                "Superhard-material items need an export licence.",
                items=["superhard materials"],
            ),
        ],
        sources=[
            instrument("MOFCOM/GAC Announcement No. 33 of 2024", "MOFCOM; GAC", "2024-08-15"),
            cite("S13"),
        ],
        summary="CN Ann.33/2024: antimony and superhard-material licensing from 2024-09-15",
    )
    s.measure(
        "cn-dual-use-regulations",
        issuer="CN",
        title="Regulations on the Export Control of Dual-Use Items",
        instrument_="State Council Order No. 792 (2024-09-30)",
        published_at=beijing("2024-09-30"),
        recorded_on="2024-09-30",
        clauses=[
            clause(
                "cl.1",
                "other",
                beijing("2024-12-01"),
                "Licensing procedure for dual-use items, incl. general licences (in force "
                "2024-12-01).",
            )
        ],
        sources=[
            instrument("State Council Order No. 792", "State Council of the PRC", "2024-09-30"),
            cite("S3"),
        ],
        summary="CN Dual-Use Items Export Control Regulations (in force 2024-12-01)",
    )
    s.measure(
        "cn-dual-use-control-list",
        issuer="CN",
        title="Export Control List of Dual-Use Items (unified list, about 700 items)",
        instrument_="MOFCOM/GAC and others: Export Control List of Dual-Use Items (2024-11-15)",
        published_at=beijing("2024-11-15"),
        recorded_on="2024-11-15",
        clauses=[
            clause(
                "cl.1",
                "other",
                beijing("2024-12-01"),
                "The unified list of controlled dual-use items, effective with the Regulations.",
            )
        ],
        sources=[
            instrument(
                "Export Control List of Dual-Use Items of the PRC (published 2024-11-15)",
                "MOFCOM; GAC; and other PRC authorities",
                "2024-11-15",
            ),
            cite("S9"),
        ],
        summary="CN unified dual-use control list (effective 2024-12-01)",
    )
    s.measure(
        ANN46,
        issuer="CN",
        title="Strengthening export control of relevant dual-use items to the United States",
        instrument_="MOFCOM Announcement No. 46 of 2024",
        published_at=beijing("2024-12-03"),
        recorded_on="2024-12-03",
        clauses=[
            clause(
                "cl.1",
                "prohibited",
                beijing("2024-12-03"),
                "Art.1: no dual-use items to US military users or for military uses.",
                destinations=["US"],
                end_user_classes=["military"],
            ),
            clause(
                "cl.2",
                "denied-in-principle",
                beijing("2024-12-03"),
                "Art.2: exports of gallium, germanium, antimony and superhard-material "
                "dual-use items to the US are in principle not permitted.",
                items=["gallium", "germanium", "antimony", "superhard materials"],
                destinations=["US"],
            ),
            clause(
                "cl.2-graphite",
                "enhanced-review",
                beijing("2024-12-03"),
                "Art.2: stricter end-user and end-use review of graphite dual-use items to the US.",
                items=["graphite"],
                destinations=["US"],
            ),
        ],
        sources=[
            instrument("MOFCOM Announcement No. 46 of 2024", "MOFCOM", "2024-12-03"),
            cite("S14"),
        ],
        summary="CN Ann.46/2024: military ban and Ga/Ge/Sb/superhard denial for the US",
    )


def tariffs_2025(s: Scenario) -> None:
    """The 2025 tariffs: US fentanyl and reciprocal tariffs, Chinese counter-measures."""
    s.measure(
        "us-ieepa-fentanyl-tariff",
        issuer="US",
        title="Additional 10% duty on products of China (IEEPA, synthetic opioids)",
        instrument_="Executive Order 14195 of 2025-02-01",
        published_at=est("2025-02-01"),
        recorded_on="2025-02-01",
        clauses=[
            clause(
                "cl.1",
                "tariff",
                est("2025-02-04", "00:01:00"),
                "Additional ad valorem duty of 10% on products of China.",
            )
        ],
        sources=[
            instrument("Executive Order 14195 of 2025-02-01", "The White House", "2025-02-01"),
            cite(
                "S37",
                "later report: the fentanyl duty was 10% from 2025-02-04, 20% from 2025-03-04",
            ),
        ],
        summary="US fentanyl (IEEPA) duty of 10% on Chinese goods from 2025-02-04",
    )
    s.measure(
        "us-ieepa-fentanyl-tariff-increase",
        issuer="US",
        title="Fentanyl duty on products of China raised from 10% to 20%",
        instrument_="Executive Order 14228 of 2025-03-03",
        published_at=est("2025-03-03"),
        recorded_on="2025-03-04",
        clauses=[
            clause(
                "cl.1",
                "tariff",
                est("2025-03-04", "00:01:00"),
                "A further 10 percentage points on the IEEPA fentanyl duty (20% in total).",
            )
        ],
        sources=[
            instrument("Executive Order 14228 of 2025-03-03", "The White House", "2025-03-03"),
            cite("S37", "later report confirming the 10%->20% increase of 2025-03-04"),
        ],
        summary="US fentanyl duty raised from 10% to 20% from 2025-03-04",
    )
    s.measure(
        "cn-ag-counter-tariffs",
        issuer="CN",
        title="Additional tariffs of 10-15% on US agricultural products",
        instrument_="State Council Tariff Commission announcement of 2025-03-04",
        published_at=beijing("2025-03-04"),
        recorded_on="2025-03-04",
        clauses=[
            clause(
                "cl.1",
                "tariff",
                beijing("2025-03-10"),
                "Additional 15% on chicken, wheat, corn and cotton originating in the US.",
                items=["chicken", "wheat", "corn", "cotton"],
            ),
            clause(
                "cl.2",
                "tariff",
                beijing("2025-03-10"),
                "Additional 10% on sorghum, soybeans, pork, beef, aquatic products, fruit, "
                "vegetables and dairy products originating in the US.",
                items=[
                    "sorghum",
                    "soybeans",
                    "pork",
                    "beef",
                    "aquatic products",
                    "fruit",
                    "vegetables",
                    "dairy products",
                ],
            ),
        ],
        sources=[
            instrument(
                "State Council Tariff Commission announcement of 2025-03-04",
                "State Council Tariff Commission",
                "2025-03-04",
            ),
            cite("S25", "later report: these tariffs stop applying from 2025-11-10 13:01"),
        ],
        summary="CN counter-tariffs of 10-15% on US farm products from 2025-03-10",
    )
    s.measure(
        "us-reciprocal-tariff-cn",
        issuer="US",
        title="Reciprocal tariff on products of China: 34% (10% baseline + 24 points)",
        instrument_="Executive Order 14257 of 2025-04-02",
        published_at=edt("2025-04-02"),
        recorded_on="2025-04-02",
        clauses=[
            clause(
                "cl.1",
                "tariff",
                edt("2025-04-05", "00:01:00"),
                "Baseline reciprocal duty of 10%.",
            ),
            clause(
                "cl.2",
                "tariff",
                edt("2025-04-09", "00:01:00"),
                "China-specific additional 24 percentage points (34% in total); the part "
                "suspended by the Geneva and Busan arrangements.",
            ),
        ],
        sources=[
            instrument("Executive Order 14257 of 2025-04-02", "The White House", "2025-04-02"),
            cite("S17", "later report: Geneva suspends 24 of the 34 points"),
        ],
        summary="US reciprocal tariff of 34% on Chinese goods (10% + 24 points)",
    )
    s.measure(
        "cn-counter-tariff-34pct",
        issuer="CN",
        title="Additional 34% tariff on goods originating in the US (10% + 24 points)",
        instrument_="State Council Tariff Commission announcement of 2025-04-04",
        published_at=beijing("2025-04-04"),
        recorded_on="2025-04-04",
        clauses=[
            clause(
                "cl.1",
                "tariff",
                beijing("2025-04-10", "12:01:00"),
                "Additional 10% on goods originating in the US (the part retained).",
            ),
            clause(
                "cl.2",
                "tariff",
                beijing("2025-04-10", "12:01:00"),
                "Further 24 percentage points (34% in total); the part suspended under the "
                "Geneva and Busan arrangements.",
            ),
        ],
        sources=[
            instrument(
                "State Council Tariff Commission announcement of 2025-04-04",
                "State Council Tariff Commission",
                "2025-04-04",
            ),
            cite("S25", "later report: the 24% stays suspended, the 10% is kept"),
        ],
        summary="CN counter-tariff of 34% on US goods (10% + 24 points)",
    )
    s.measure(
        ANN18,
        issuer="CN",
        title="Export controls on medium and heavy rare earths: samarium, gadolinium, "
        "terbium, dysprosium, lutetium, scandium, yttrium",
        instrument_="MOFCOM/GAC Announcement No. 18 of 2025",
        published_at=beijing("2025-04-04"),
        recorded_on="2025-04-04",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                beijing("2025-04-04"),
                "Licence required for Sm (1C902), Gd (1C903), Tb (1C904), Dy (1C905), "
                "Lu (1C906), Sc (1C907) and Y (1C908) items: metals, alloys, targets, oxides, "
                "compounds and magnet materials containing them (e.g. 1C905.a covers "
                "Dy-containing NdFeB magnets). In force on publication.",
                items=RARE_EARTHS_ANN18,
            )
        ],
        sources=[
            instrument("MOFCOM/GAC Announcement No. 18 of 2025", "MOFCOM; GAC", "2025-04-04"),
            cite("S15"),
            cite("S16"),
        ],
        summary="CN Ann.18/2025: licensing of 7 medium/heavy rare earths (1C902-1C908)",
    )


def us_port_fees(s: Scenario) -> None:
    """The US port fees (announced in April, in force in October)."""
    s.measure(
        "us-section-301-port-fees",
        issuer="US",
        title="Section 301 fees on Chinese-owned, Chinese-operated and Chinese-built vessels "
        "calling at US ports",
        instrument_="USTR Section 301 action on China's targeting of the maritime, logistics "
        "and shipbuilding sectors (2025-04-17)",
        published_at=edt("2025-04-17"),
        recorded_on="2025-04-17",
        clauses=[
            clause(
                "cl.1",
                "fee",
                edt("2025-10-14"),
                "Port fees per net ton (or per container) on Chinese-linked vessels.",
            )
        ],
        sources=[
            instrument(
                "USTR notice of action, Section 301 investigation of China's targeting of the "
                "maritime, logistics and shipbuilding sectors",
                "Office of the US Trade Representative",
                "2025-04-17",
            ),
            cite("S21", "later report: the fees went into effect on 2025-10-14"),
        ],
        summary="US Section 301 port fees on Chinese-linked ships (from 2025-10-14)",
    )


def geneva(s: Scenario) -> None:
    """Geneva: the May truce and its August extension."""
    s.add(
        "AgreementReached",
        f"agreement/{GENEVA}/reached",
        GENEVA,
        effective_at="2025-05-12T00:00:00+02:00",
        recorded_on="2025-05-12",
        sources=[
            instrument(
                "Joint Statement on US-China Economic and Trade Meeting in Geneva",
                "The White House; MOFCOM",
                "2025-05-12",
            ),
            cite("S17"),
        ],
        summary="Geneva joint statement: 24-point tariff suspension for 90 days",
        title="Joint Statement on US-China Economic and Trade Meeting in Geneva",
        parties=["US", "CN"],
        valid_until=edt("2025-08-12", "00:01:00"),
    )
    geneva_sources = [
        instrument(
            "Joint Statement on US-China Economic and Trade Meeting in Geneva",
            "The White House; MOFCOM",
            "2025-05-12",
        ),
        cite("S17"),
    ]
    s.pledge(
        "geneva-us-tariff-suspension",
        agreement_id=GENEVA,
        obligor="US",
        beneficiary="CN",
        asserted_by=["US", "CN"],
        category="tariffs",
        description="Suspend 24 of the 34 points of the reciprocal tariff on Chinese goods "
        "for 90 days, keeping 10%, by 2025-05-14.",
        due_by=utc("2025-05-15"),
        effective_at="2025-05-12T00:00:00+02:00",
        recorded_on="2025-05-12",
        sources=geneva_sources,
        summary="Geneva: US to suspend 24 points of its 34% tariff for 90 days",
    )
    s.pledge(
        "geneva-cn-tariff-suspension",
        agreement_id=GENEVA,
        obligor="CN",
        beneficiary="US",
        asserted_by=["CN", "US"],
        category="tariffs",
        description="Suspend 24 of the 34 points of the counter-tariff on US goods for 90 "
        "days, keeping 10%, by 2025-05-14.",
        due_by=utc("2025-05-15"),
        reciprocates=["geneva-us-tariff-suspension"],
        effective_at="2025-05-12T00:00:00+02:00",
        recorded_on="2025-05-12",
        sources=geneva_sources,
        summary="Geneva: CN to suspend 24 points of its 34% counter-tariff for 90 days",
    )
    eo_geneva = "Executive Order 14298 of 2025-05-12"
    s.suspend(
        "us-reciprocal-tariff-cn",
        "cl.2",
        start=edt("2025-05-14", "00:01:00"),
        until=edt("2025-08-12", "00:01:00"),
        instrument_=eo_geneva,
        recorded_on="2025-05-12",
        sources=[instrument(eo_geneva, "The White House", "2025-05-12"), cite("S17")],
        summary="US suspends 24 points of the reciprocal tariff for 90 days (Geneva)",
    )
    s.implemented(
        "geneva-us-tariff-suspension",
        extent="full",
        instrument_=eo_geneva,
        effective_at=edt("2025-05-14", "00:01:00"),
        in_force_until=edt("2025-08-12", "00:01:00"),
        recorded_on="2025-05-12",
        sources=[instrument(eo_geneva, "The White House", "2025-05-12"), cite("S17")],
        summary="US implements the Geneva tariff suspension from 2025-05-14 00:01 EDT",
    )
    sctc_geneva = (
        "State Council Tariff Commission announcement implementing the Geneva joint statement"
    )
    s.suspend(
        "cn-counter-tariff-34pct",
        "cl.2",
        start=beijing("2025-05-14", "12:01:00"),
        until=beijing("2025-08-12", "12:01:00"),
        instrument_=sctc_geneva,
        recorded_on="2025-05-14",
        sources=[
            instrument(sctc_geneva, "State Council Tariff Commission", None),
            *geneva_sources,
        ],
        summary="CN suspends 24 points of its counter-tariff for 90 days (Geneva)",
    )
    s.implemented(
        "geneva-cn-tariff-suspension",
        extent="full",
        instrument_=sctc_geneva,
        effective_at=beijing("2025-05-14", "12:01:00"),
        in_force_until=beijing("2025-08-12", "12:01:00"),
        recorded_on="2025-05-14",
        sources=[
            instrument(sctc_geneva, "State Council Tariff Commission", None),
            *geneva_sources,
        ],
        summary="CN implements the Geneva tariff suspension from 2025-05-14 12:01 Beijing",
    )
    eo_august = (
        "Executive Order of 2025-08-11 extending the suspension of 24 points of the "
        "reciprocal tariff on China to 2025-11-10"
    )
    august_sources = [
        instrument(eo_august, "The White House", "2025-08-11"),
        cite("S18"),
        cite("S37"),
    ]
    s.add(
        "AgreementExtended",
        f"agreement/{GENEVA}/extended/2025-08-11",
        GENEVA,
        effective_at=edt("2025-08-11"),
        recorded_on="2025-08-11",
        sources=august_sources,
        summary="Geneva truce extended to 2025-11-10 00:01 EST (China mirrors from 2025-08-12)",
        valid_until=est("2025-11-10", "00:01:00"),
    )
    s.suspend(
        "us-reciprocal-tariff-cn",
        "cl.2",
        start=edt("2025-08-12", "00:01:00"),
        until=est("2025-11-10", "00:01:00"),
        instrument_=eo_august,
        recorded_on="2025-08-11",
        sources=august_sources,
        summary="US keeps 24 points of the reciprocal tariff suspended to 2025-11-10",
    )
    s.implemented(
        "geneva-us-tariff-suspension",
        extent="full",
        instrument_=eo_august,
        effective_at=edt("2025-08-12", "00:01:00"),
        in_force_until=est("2025-11-10", "00:01:00"),
        recorded_on="2025-08-11",
        sources=august_sources,
        summary="US extends the Geneva tariff suspension to 2025-11-10",
    )
    sctc_august = "State Council Tariff Commission announcement of 2025-08-12"
    august_cn_sources = [
        instrument(sctc_august, "State Council Tariff Commission", "2025-08-12"),
        cite("S18b"),
    ]
    s.suspend(
        "cn-counter-tariff-34pct",
        "cl.2",
        start=beijing("2025-08-12", "12:01:00"),
        until=beijing("2025-11-10", "13:01:00"),
        instrument_=sctc_august,
        recorded_on="2025-08-12",
        sources=august_cn_sources,
        summary="CN keeps 24 points of its counter-tariff suspended to 2025-11-10",
    )
    s.implemented(
        "geneva-cn-tariff-suspension",
        extent="full",
        instrument_=sctc_august,
        effective_at=beijing("2025-08-12", "12:01:00"),
        in_force_until=beijing("2025-11-10", "13:01:00"),
        recorded_on="2025-08-12",
        sources=august_cn_sources,
        summary="CN mirrors the extension of the Geneva tariff suspension from 2025-08-12",
    )


def october_2025(s: Scenario) -> None:
    """September/October 2025: the Affiliates rule and China's October measures."""
    s.measure(
        "us-bis-affiliates-rule",
        issuer="US",
        title="Affiliates rule: Entity List and Military End-User List restrictions extend to "
        "affiliates owned 50% or more by listed parties",
        instrument_="BIS interim final rule of 2025-09-29 (Expansion of End-User Controls to "
        "Cover Affiliates of Certain Listed Entities)",
        published_at=edt("2025-09-29"),
        recorded_on="2025-09-29",
        clauses=[
            clause(
                "cl.1",
                "other",
                edt("2025-09-29"),
                "Licence requirements of listed parties apply to their affiliates owned 50% "
                "or more (a US export control; recorded as 'other' because an ownership test "
                "cannot be expressed as items, destinations or end-user classes).",
            )
        ],
        sources=[
            instrument(
                "BIS interim final rule: Expansion of End-User Controls to Cover Affiliates of "
                "Certain Listed Entities",
                "US Department of Commerce, BIS",
                "2025-09-29",
            ),
            cite("S19"),
        ],
        summary="US BIS Affiliates (50%) rule in force from 2025-09-29",
    )
    nov8 = beijing("2025-11-08")
    s.measure(
        "cn-ann-2025-55",
        issuer="CN",
        title="Export controls on superhard-material items",
        instrument_="MOFCOM/GAC Announcement No. 55 of 2025",
        published_at=beijing("2025-10-09"),
        recorded_on="2025-10-09",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                nov8,
                "Synthetic diamond micropowder and single crystals, diamond wire saws and "
                "grinding wheels, DC arc plasma jet CVD equipment and technology need an "
                "export licence (from 2025-11-08).",
                items=[
                    "synthetic diamond micropowder",
                    "synthetic diamond single crystals",
                    "diamond wire saws",
                    "diamond grinding wheels",
                    "DC arc plasma jet CVD equipment and technology",
                ],
            )
        ],
        sources=[cite("MOFCOM-55"), cite("S20")],
        summary="CN Ann.55/2025: superhard materials, from 2025-11-08",
    )
    s.measure(
        "cn-ann-2025-56",
        issuer="CN",
        title="Export controls on certain rare-earth equipment and raw and auxiliary materials",
        instrument_="MOFCOM/GAC Announcement No. 56 of 2025",
        published_at=beijing("2025-10-09"),
        recorded_on="2025-10-09",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                nov8,
                "Rare-earth production equipment (extraction, kilns, hydrogen decrepitation "
                "furnaces, jet mills, ...) and raw/auxiliary materials need an export licence "
                "(from 2025-11-08).",
                items=["rare-earth production equipment", "rare-earth raw and auxiliary materials"],
            )
        ],
        sources=[
            instrument("MOFCOM/GAC Announcement No. 56 of 2025", "MOFCOM; GAC", "2025-10-09"),
            cite("S20"),
        ],
        summary="CN Ann.56/2025: rare-earth equipment and materials, from 2025-11-08",
    )
    s.measure(
        "cn-ann-2025-57",
        issuer="CN",
        title="Export controls on medium and heavy rare earths: holmium, erbium, thulium, "
        "europium, ytterbium",
        instrument_="MOFCOM/GAC Announcement No. 57 of 2025",
        published_at=beijing("2025-10-09"),
        recorded_on="2025-10-09",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                nov8,
                "Licence required for Ho (1C909), Er (1C910), Tm (1C911), Eu (1C912) and "
                "Yb (1C913) items (from 2025-11-08).",
                items=RARE_EARTHS_ANN57,
            )
        ],
        sources=[
            instrument("MOFCOM/GAC Announcement No. 57 of 2025", "MOFCOM; GAC", "2025-10-09"),
            cite("S20"),
        ],
        summary="CN Ann.57/2025: Ho, Er, Tm, Eu, Yb licensing, from 2025-11-08",
    )
    s.measure(
        "cn-ann-2025-58",
        issuer="CN",
        title="Export controls on lithium batteries and artificial graphite anode materials",
        instrument_="MOFCOM/GAC Announcement No. 58 of 2025",
        published_at=beijing("2025-10-09"),
        recorded_on="2025-10-09",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                nov8,
                "High-energy lithium-ion batteries, cathode materials, artificial graphite "
                "anode materials and related equipment/technology need an export licence "
                "(from 2025-11-08).",
                items=[
                    "lithium-ion batteries",
                    "lithium battery cathode materials",
                    "artificial graphite anode materials",
                ],
            )
        ],
        sources=[
            instrument("MOFCOM/GAC Announcement No. 58 of 2025", "MOFCOM; GAC", "2025-10-09"),
            cite("S20"),
        ],
        summary="CN Ann.58/2025: lithium batteries and graphite anodes, from 2025-11-08",
    )
    dec1 = beijing("2025-12-01")
    oct9 = beijing("2025-10-09")
    s.measure(
        ANN61,
        issuer="CN",
        title="Export controls on rare-earth items from abroad (extraterritorial rules)",
        instrument_="MOFCOM Announcement No. 61 of 2025",
        published_at=oct9,
        recorded_on="2025-10-09",
        clauses=[
            clause(
                "cl.1.1",
                "licence-required",
                dec1,
                "Art.1(1): foreign-made Annex 1 items containing 0.1% or more by value of "
                "Chinese-origin rare earths need a MOFCOM licence (0.1% de minimis; from "
                "2025-12-01).",
                items=RARE_EARTHS_ANN18,
            ),
            clause(
                "cl.1.2",
                "licence-required",
                dec1,
                "Art.1(2): foreign-made Annex 1 items produced with Chinese-origin rare-earth "
                "technologies need a MOFCOM licence (foreign direct product rule; from "
                "2025-12-01).",
                items=RARE_EARTHS_ANN18,
            ),
            clause(
                "cl.1.3",
                "licence-required",
                oct9,
                "Art.1(3): exports from abroad of Chinese-origin Annex 1 items need a MOFCOM "
                "licence (on publication).",
                items=RARE_EARTHS_ANN18,
            ),
            clause(
                "cl.2",
                "denied-in-principle",
                oct9,
                "Art.2: applications for overseas military users, and for importers and end "
                "users on the export control list or watch list (and their 50% affiliates), "
                "are in principle not approved.",
                items=RARE_EARTHS_ANN18,
                end_user_classes=["military"],
            ),
            clause(
                "cl.3",
                "denied-in-principle",
                oct9,
                "Art.3: applications for weapons of mass destruction, terrorism or military "
                "end uses are in principle not approved (end use modelled as the military "
                "end-user class).",
                items=RARE_EARTHS_ANN18,
                end_user_classes=["military"],
            ),
        ],
        sources=[
            instrument("MOFCOM Announcement No. 61 of 2025", "MOFCOM", "2025-10-09"),
            cite("S20-61"),
            cite("S20"),
        ],
        summary="CN Ann.61/2025: extraterritorial rare-earth rules (0.1% and FDP from "
        "2025-12-01; military users denied)",
    )
    s.measure(
        ANN62,
        issuer="CN",
        title="Export controls on rare-earth related technologies",
        instrument_="MOFCOM Announcement No. 62 of 2025",
        published_at=oct9,
        recorded_on="2025-10-09",
        clauses=[
            clause(
                "cl.1",
                "licence-required",
                oct9,
                "Rare-earth mining, separation, smelting, magnet-making and recycling "
                "technologies (1E902.a) and production-line assembly/maintenance technologies "
                "(1E902.b) may not be exported without a licence (on publication).",
                items=["1E902.a", "1E902.b"],
            )
        ],
        sources=[
            instrument("MOFCOM Announcement No. 62 of 2025", "MOFCOM", "2025-10-09"),
            cite("S20-62"),
            cite("S20-people"),
        ],
        summary="CN Ann.62/2025: rare-earth technologies (1E902.a/b), immediately",
    )
    s.measure(
        "cn-special-port-fees",
        issuer="CN",
        title="Special port fees on vessels owned, operated, built or flagged by the US",
        instrument_="Ministry of Transport announcement of 2025-10-10",
        published_at=beijing("2025-10-10"),
        recorded_on="2025-10-10",
        clauses=[
            clause(
                "cl.1",
                "fee",
                beijing("2025-10-14"),
                "Special port fees on US-linked vessels calling at Chinese ports (counter-"
                "measure to the US Section 301 fees).",
            )
        ],
        sources=[
            instrument(
                "Ministry of Transport announcement on special port fees for US vessels",
                "Ministry of Transport of the PRC",
                "2025-10-10",
            ),
            cite("S21", "later report: China's counter-fees started on 2025-10-14"),
        ],
        summary="CN special port fees on US-linked ships (from 2025-10-14)",
    )


def busan(s: Scenario) -> None:
    """Busan: the arrangement and the pledges of both sides."""
    s.add(
        "AgreementReached",
        f"agreement/{BUSAN}/reached",
        BUSAN,
        effective_at="2025-10-30T00:00:00+09:00",
        recorded_on="2025-10-30",
        sources=[cite("MOFCOM-1030"), cite("S22")],
        summary="Trump-Xi meeting in Busan: one-year, extendable arrangement",
        title="US-China arrangement of the Trump-Xi meeting in Busan (Kuala Lumpur consensus)",
        parties=["US", "CN"],
        valid_until=est("2026-11-10", "00:01:00"),
        extendable=True,
    )
    both = [FACT_SHEET, cite("MOFCOM-1030"), cite("S23")]
    s.pledge(
        US_FENTANYL_CUT,
        agreement_id=BUSAN,
        obligor="US",
        beneficiary="CN",
        asserted_by=["US", "CN"],
        category="tariffs",
        description="Lower the IEEPA fentanyl duty on Chinese goods from 20% to 10% from "
        "2025-11-10.",
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: US to cut the fentanyl duty from 20% to 10%",
    )
    s.pledge(
        US_RECIPROCAL_SUSPENSION,
        agreement_id=BUSAN,
        obligor="US",
        beneficiary="CN",
        asserted_by=["US", "CN"],
        category="tariffs",
        description="Keep 24 points of the 34% reciprocal tariff suspended for one more "
        "year, to 2026-11-10 (10% remains).",
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: US to keep the 24-point tariff suspension for a year",
    )
    s.pledge(
        US_AFFILIATES_SUSPENSION,
        agreement_id=BUSAN,
        obligor="US",
        beneficiary="CN",
        asserted_by=["US", "CN"],
        category="export-controls",
        description="Suspend the BIS Affiliates (50%) rule for one year.",
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: US to suspend the Affiliates rule for a year",
    )
    s.pledge(
        US_PORT_FEES_SUSPENSION,
        agreement_id=BUSAN,
        obligor="US",
        beneficiary="CN",
        asserted_by=["US", "CN"],
        category="port-fees",
        description="Suspend the Section 301 port fees and related maritime actions for one year.",
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: US to suspend the Section 301 port fees for a year",
    )
    s.pledge(
        CN_COUNTER_TARIFF_SUSPENSION,
        agreement_id=BUSAN,
        obligor="CN",
        beneficiary="US",
        asserted_by=["CN", "US"],
        category="tariffs",
        description="Keep 24 points of the 34% counter-tariff on US goods suspended for one "
        "year (10% remains).",
        reciprocates=[US_RECIPROCAL_SUSPENSION],
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: CN to keep its 24-point counter-tariff suspension for a year",
    )
    s.pledge(
        CN_AG_TARIFF_REMOVAL,
        agreement_id=BUSAN,
        obligor="CN",
        beneficiary="US",
        asserted_by=["CN", "US"],
        category="tariffs",
        description="Stop the additional 10-15% tariffs on US agricultural products imposed "
        "from 2025-03-10 in response to the fentanyl duty.",
        reciprocates=[US_FENTANYL_CUT],
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: CN to lift its counter-tariffs on US farm products",
    )
    s.pledge(
        CN_OCTOBER_SUSPENSION,
        agreement_id=BUSAN,
        obligor="CN",
        beneficiary="US",
        asserted_by=["CN", "US"],
        category="export-controls",
        description="Suspend for one year the export-control measures announced on "
        "2025-10-09 (Ann.55-58, 61, 62).",
        reciprocates=[US_AFFILIATES_SUSPENSION],
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: CN to suspend its October 2025 export controls for a year",
    )
    s.pledge(
        CN_PORT_FEES_SUSPENSION,
        agreement_id=BUSAN,
        obligor="CN",
        beneficiary="US",
        asserted_by=["CN", "US"],
        category="port-fees",
        description="Suspend the special port fees on US vessels for one year once the US "
        "suspension takes effect.",
        reciprocates=[US_PORT_FEES_SUSPENSION],
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=both,
        summary="Busan: CN to suspend its special port fees for a year",
    )
    s.pledge(
        CN_GENERAL_LICENCES,
        agreement_id=BUSAN,
        obligor="CN",
        beneficiary="US",
        asserted_by=["US"],
        category="export-controls",
        description=GL_DESCRIPTION,
        reciprocates=[US_AFFILIATES_SUSPENSION],
        effective_at=BUSAN_AT,
        recorded_on="2025-11-01",
        sources=[FACT_SHEET, cite("S23")],
        summary="Busan (US fact sheet only): CN to issue general licences for REs, Ga, Ge, "
        "Sb, graphite",
    )


def november_2025(s: Scenario) -> None:
    """November 2025: the implementations and suspensions."""
    eo_fentanyl = (
        "Executive Order of 2025-11-04 modifying the fentanyl duties on China (20% to 10%)"
    )
    fentanyl_sources = [instrument(eo_fentanyl, "The White House", "2025-11-04"), cite("S24")]
    s.add(
        "MeasureRevoked",
        "measure/us-ieepa-fentanyl-tariff-increase/revoked",
        "us-ieepa-fentanyl-tariff-increase",
        effective_at=est("2025-11-10", "00:01:00"),
        recorded_on="2025-11-04",
        sources=fentanyl_sources,
        summary="US fentanyl duty back to 10% from 2025-11-10 00:01 EST",
        clause_ids=["cl.1"],
        reason="Executive Order of 2025-11-04 lowers the fentanyl duty on Chinese goods from "
        "20% to 10% from 2025-11-10 00:01 EST.",
    )
    s.implemented(
        US_FENTANYL_CUT,
        extent="full",
        instrument_=eo_fentanyl,
        effective_at=est("2025-11-10", "00:01:00"),
        in_force_until=None,
        recorded_on="2025-11-04",
        sources=fentanyl_sources,
        summary="US implements the fentanyl duty cut from 2025-11-10 00:01 EST",
    )
    eo_reciprocal = (
        "Executive Order of 2025-11-04 modifying reciprocal tariff rates "
        "(24-point suspension to 2026-11-10)"
    )
    reciprocal_sources = [instrument(eo_reciprocal, "The White House", "2025-11-04"), cite("S24")]
    s.suspend(
        "us-reciprocal-tariff-cn",
        "cl.2",
        start=est("2025-11-10", "00:01:00"),
        until=est("2026-11-10", "00:01:00"),
        instrument_=eo_reciprocal,
        recorded_on="2025-11-04",
        sources=reciprocal_sources,
        summary="US keeps 24 points of the reciprocal tariff suspended to 2026-11-10",
    )
    s.implemented(
        US_RECIPROCAL_SUSPENSION,
        extent="full",
        instrument_=eo_reciprocal,
        effective_at=est("2025-11-10", "00:01:00"),
        in_force_until=est("2026-11-10", "00:01:00"),
        recorded_on="2025-11-04",
        sources=reciprocal_sources,
        summary="US implements the one-year tariff suspension from 2025-11-10 00:01 EST",
    )
    sctc_november = "State Council Tariff Commission announcements of 2025-11-05"
    sctc_sources = [
        instrument(sctc_november, "State Council Tariff Commission", "2025-11-05"),
        cite("S25"),
    ]
    cn_tariff_start = beijing("2025-11-10", "13:01:00")
    cn_one_year = beijing("2026-11-10", "13:01:00")
    s.suspend(
        "cn-counter-tariff-34pct",
        "cl.2",
        start=cn_tariff_start,
        until=cn_one_year,
        instrument_=sctc_november,
        recorded_on="2025-11-05",
        sources=sctc_sources,
        summary="CN keeps 24 points of its counter-tariff suspended for a year from "
        "2025-11-10 13:01",
    )
    s.implemented(
        CN_COUNTER_TARIFF_SUSPENSION,
        extent="full",
        instrument_=sctc_november,
        effective_at=cn_tariff_start,
        in_force_until=cn_one_year,
        recorded_on="2025-11-05",
        sources=sctc_sources,
        summary="CN implements the one-year counter-tariff suspension from 2025-11-10 13:01",
    )
    s.add(
        "MeasureRevoked",
        "measure/cn-ag-counter-tariffs/revoked",
        "cn-ag-counter-tariffs",
        effective_at=cn_tariff_start,
        recorded_on="2025-11-05",
        sources=sctc_sources,
        summary="CN counter-tariffs on US farm products stop from 2025-11-10 13:01",
        reason="State Council Tariff Commission announcement of 2025-11-05: the additional "
        "tariffs on US agricultural products stop applying from 2025-11-10 13:01.",
    )
    s.implemented(
        CN_AG_TARIFF_REMOVAL,
        extent="full",
        instrument_=sctc_november,
        effective_at=cn_tariff_start,
        in_force_until=None,
        recorded_on="2025-11-05",
        sources=sctc_sources,
        summary="CN lifts its farm-product counter-tariffs from 2025-11-10 13:01",
    )
    ann70 = "MOFCOM/GAC Announcement No. 70 of 2025"
    ann70_sources = [
        instrument(ann70, "MOFCOM; GAC", "2025-11-07"),
        cite("S26"),
        cite("S26b"),
    ]
    ann70_start = beijing("2025-11-07")
    ann70_until = beijing("2026-11-11")
    """'Until 2026-11-10' read as through the end of that day in Beijing."""
    october_clauses = [
        ("cn-ann-2025-55", "cl.1"),
        ("cn-ann-2025-56", "cl.1"),
        ("cn-ann-2025-57", "cl.1"),
        ("cn-ann-2025-58", "cl.1"),
        (ANN61, "cl.1.1"),
        (ANN61, "cl.1.2"),
        (ANN61, "cl.1.3"),
        (ANN61, "cl.2"),
        (ANN61, "cl.3"),
        (ANN62, "cl.1"),
    ]
    for measure_id, clause_id in october_clauses:
        number = measure_id.rsplit("-", 1)[-1]
        s.suspend(
            measure_id,
            clause_id,
            start=ann70_start,
            until=ann70_until,
            instrument_=ann70,
            recorded_on="2025-11-07",
            sources=ann70_sources,
            summary=f"Ann.70 suspends Ann.{number} {clause_id} through 2026-11-10",
        )
    s.implemented(
        CN_OCTOBER_SUSPENSION,
        extent="full",
        instrument_=ann70,
        effective_at=ann70_start,
        in_force_until=ann70_until,
        recorded_on="2025-11-07",
        sources=ann70_sources,
        summary="CN suspends the October measures through 2026-11-10 (Ann.70)",
    )
    ann46_suspension = "MOFCOM announcement of 2025-11-09 suspending Art.2 of Ann.46/2024"
    ann46_sources = [
        instrument(ann46_suspension, "MOFCOM", "2025-11-09"),
        cite("S27"),
        cite("S14b"),
    ]
    for clause_id in ("cl.2", "cl.2-graphite"):
        s.suspend(
            ANN46,
            clause_id,
            start=beijing("2025-11-09"),
            until=beijing("2026-11-28"),
            instrument_=ann46_suspension,
            recorded_on="2025-11-09",
            sources=ann46_sources,
            summary=f"Ann.46/2024 {clause_id} suspended through 2026-11-27 (Art.1 military "
            "ban stays)",
        )
    bis_suspension = (
        "BIS final rule of 2025-11-10: One Year Suspension of Expansion of "
        "End-User Controls for Affiliates of Certain Listed Entities"
    )
    bis_sources = [
        instrument(bis_suspension, "US Department of Commerce, BIS", "2025-11-10"),
        cite("S19"),
    ]
    s.suspend(
        "us-bis-affiliates-rule",
        "cl.1",
        start=est("2025-11-10"),
        until=est("2026-11-10"),
        instrument_=bis_suspension,
        recorded_on="2025-11-10",
        sources=bis_sources,
        summary="US Affiliates rule suspended 2025-11-10 through 2026-11-09",
    )
    s.implemented(
        US_AFFILIATES_SUSPENSION,
        extent="full",
        instrument_=bis_suspension,
        effective_at=est("2025-11-10"),
        in_force_until=est("2026-11-10"),
        recorded_on="2025-11-10",
        sources=bis_sources,
        summary="US implements the Affiliates-rule suspension (through 2026-11-09)",
    )
    ustr_suspension = "USTR notice suspending the Section 301 maritime actions for one year"
    ustr_sources = [
        instrument(ustr_suspension, "Office of the US Trade Representative", None),
        cite("S21"),
    ]
    s.suspend(
        "us-section-301-port-fees",
        "cl.1",
        start=est("2025-11-10", "00:01:00"),
        until=est("2026-11-10", "00:01:00"),
        instrument_=ustr_suspension,
        recorded_on="2025-11-10",
        sources=ustr_sources,
        summary="US port fees suspended for a year from 2025-11-10 00:01 EST",
    )
    s.implemented(
        US_PORT_FEES_SUSPENSION,
        extent="full",
        instrument_=ustr_suspension,
        effective_at=est("2025-11-10", "00:01:00"),
        in_force_until=est("2026-11-10", "00:01:00"),
        recorded_on="2025-11-10",
        sources=ustr_sources,
        summary="US implements the port-fee suspension from 2025-11-10 00:01 EST",
    )
    mot_suspension = (
        "Ministry of Transport announcement of 2025-11-10 suspending the "
        "special port fees for one year"
    )
    mot_sources = [
        instrument(mot_suspension, "Ministry of Transport of the PRC", "2025-11-10"),
        cite("MOT-1110"),
        cite("S21"),
    ]
    s.suspend(
        "cn-special-port-fees",
        "cl.1",
        start=cn_tariff_start,
        until=cn_one_year,
        instrument_=mot_suspension,
        recorded_on="2025-11-10",
        sources=mot_sources,
        summary="CN port counter-fees suspended for a year from 2025-11-10 13:01",
    )
    s.implemented(
        CN_PORT_FEES_SUSPENSION,
        extent="full",
        instrument_=mot_suspension,
        effective_at=cn_tariff_start,
        in_force_until=cn_one_year,
        recorded_on="2025-11-10",
        sources=mot_sources,
        summary="CN implements the port counter-fee suspension from 2025-11-10 13:01",
    )


def deadline_reported(s: Scenario) -> None:
    """2025-11-14: the end-of-November deadline becomes known (reported)."""
    s.add(
        "EventRetracted",
        f"commitment/{CN_GENERAL_LICENCES}/pledged/retracted",
        CN_GENERAL_LICENCES,
        effective_at=utc("2025-11-14", "12:00:00"),
        recorded_on="2025-11-14",
        sources=[cite("R1")],
        summary="Pledge re-recorded with the reported end-of-November deadline",
        entity_kind="commitment",
        retracted_event_id=s.event_id(f"commitment/{CN_GENERAL_LICENCES}/pledged"),
        reason="Superseded: a report of 2025-11-14 (Discovery Alert) gives the end of "
        "November 2025 as the deadline to finalise the general-licence terms, which the record of "
        "2025-11-01 lacked; the pledge is re-recorded with that deadline, otherwise "
        "unchanged.",
    )
    s.pledge(
        CN_GENERAL_LICENCES,
        agreement_id=BUSAN,
        obligor="CN",
        beneficiary="US",
        asserted_by=["US"],
        category="export-controls",
        description=GL_DESCRIPTION,
        due_by=GL_DEADLINE,
        reciprocates=[US_AFFILIATES_SUSPENSION],
        effective_at=BUSAN_AT,
        recorded_on="2025-11-14",
        sources=[
            FACT_SHEET,
            cite("S23"),
            cite("R1", "due_by: the terms were to be finalised by the end of November 2025"),
        ],
        summary="Busan (US fact sheet only): CN general licences, terms due by end of "
        "November (reported)",
        key_suffix="/with-deadline",
    )


def claims(s: Scenario) -> None:
    """November 2025: what was reported as planned or about to happen, recorded as claims
    (never as the rules they describe)."""
    s.add(
        "ClaimReported",
        f"claim/{VEU_PLAN}/reported",
        VEU_PLAN,
        effective_at=utc("2025-11-11"),
        recorded_on="2025-11-11",
        sources=[cite("S28")],
        summary="Reported (WSJ): China weighing a validated end-user regime that excludes "
        "US defence-linked buyers",
        claimant="Chinese officials, per people familiar with the matter (WSJ)",
        says="China is weighing a validated end-user (VEU) regime for rare-earth exports "
        "that would exclude US defence-linked buyers.",
        about=[f"commitment:{CN_GENERAL_LICENCES}"],
    )
    s.add(
        "ClaimReported",
        f"claim/{AUTO_REJECTION_CLAIM}/reported",
        AUTO_REJECTION_CLAIM,
        effective_at=utc("2025-11-14"),
        recorded_on="2025-11-14",
        sources=[
            as_claim(
                cite("R1"),
                "claims that applications for military end uses are rejected automatically "
                "from 2025-12-01",
            ),
            cite("S28-wion"),
        ],
        summary="Reported (Discovery Alert): military-related applications rejected "
        "automatically from 1 December 2025",
        claimant="MOFCOM, as reported",
        says="From 1 December 2025 export applications for military end uses are rejected "
        "automatically.",
        about=[f"measure:{ANN61}"],
        takes_effect_at=beijing("2025-12-01"),
    )


def illustrative_parties(s: Scenario) -> None:
    """The illustrative (made-up) exporter and end users."""
    vetted_at = utc("2025-11-25")
    parties = [
        (
            "example-cn-magnet-trader",
            "Example Magnet Trading Co. (illustrative)",
            "CN",
            ["exporter"],
            None,
        ),
        (
            "example-us-ev-motors",
            "Example EV Motors Inc. (illustrative)",
            "US",
            ["end-user", "importer"],
            "civil",
        ),
        (
            "example-de-drives",
            "Example Antriebe GmbH (illustrative)",
            "DE",
            ["end-user", "importer"],
            "civil",
        ),
        (
            "example-us-defence-systems",
            "Example Defence Systems Corp. (illustrative)",
            "US",
            ["end-user"],
            "military",
        ),
    ]
    for party_id, name, country, roles, classification in parties:
        made_up = illustrative(f"{name}: a made-up party for the scenario")
        s.add(
            "PartyRegistered",
            f"party/{party_id}/registered",
            party_id,
            effective_at=vetted_at,
            recorded_on="2025-11-25",
            sources=[made_up],
            summary=f"{name} registered",
            name=name,
            country=country,
            roles=roles,
        )
        if classification is None:
            continue
        s.add(
            "PartyClassified",
            f"party/{party_id}/classified",
            party_id,
            effective_at=vetted_at,
            recorded_on="2025-11-25",
            sources=[made_up],
            summary=f"{name} classified {classification} (illustrative)",
            classification=classification,
            authority="MOFCOM (illustrative)",
        )
        if classification == "civil":
            s.add(
                "PartyVetted",
                f"party/{party_id}/vetted",
                party_id,
                effective_at=vetted_at,
                recorded_on="2025-11-25",
                sources=[made_up],
                summary=f"{name} vetted approved (illustrative)",
                outcome="approved",
                authority="MOFCOM (illustrative)",
            )


def applications_dec1(s: Scenario) -> None:
    """2025-12-01: applications on the day after the deadline (illustrative)."""
    s.add(
        "ApplicationSubmitted",
        "application/app-2025-12-01-example-civil-dy/submitted",
        "app-2025-12-01-example-civil-dy",
        effective_at=beijing("2025-12-01", "10:00:00"),
        recorded_on="2025-12-01",
        sources=[illustrative("made-up application: no general licence exists on this day")],
        summary="Dy magnets for a civil US buyer, before any general licence (illustrative)",
        exporter="example-cn-magnet-trader",
        end_user="example-us-ev-motors",
        item=DY_MAGNETS,
        quantity="500",
        unit="kg",
        destination="US",
        end_use="NdFeB traction-motor magnets containing dysprosium for electric vehicles",
    )
    s.add(
        "ApplicationSubmitted",
        "application/app-2025-12-01-example-military-dy/submitted",
        "app-2025-12-01-example-military-dy",
        effective_at=beijing("2025-12-01", "11:00:00"),
        recorded_on="2025-12-01",
        sources=[illustrative("made-up application to a US military end user")],
        summary="Dy magnets for a US military end user (illustrative)",
        exporter="example-cn-magnet-trader",
        end_user="example-us-defence-systems",
        item=DY_MAGNETS,
        quantity="200",
        unit="kg",
        destination="US",
        end_use="Magnets for guidance-system actuators (military)",
    )


def first_licences(s: Scenario) -> None:
    """2025-12-02: the first general licences (real fact, illustrative terms)."""
    makers = [
        ("jl-mag", "JL MAG Rare-Earth Co., Ltd."),
        ("ningbo-yunsheng", "Ningbo Yunsheng Co., Ltd."),
        ("zhong-ke-san-huan", "Beijing Zhong Ke San Huan High-Tech Co., Ltd."),
    ]
    licence_day = utc("2025-12-02")
    for party_id, name in makers:
        s.add(
            "PartyRegistered",
            f"party/{party_id}/registered",
            party_id,
            effective_at=licence_day,
            recorded_on="2025-12-02",
            sources=[cite("S29")],
            summary=f"{name} (CN magnet maker, exporter)",
            name=name,
            country="CN",
            roles=["exporter"],
        )
    licences = [
        (
            "cn-gl-2025-jl-mag-001",
            "jl-mag",
            ["example-us-ev-motors", "example-de-drives"],
            [
                (DY_MAGNETS, "20000", "Dy-containing NdFeB magnets"),
                (TB_MAGNETS, "5000", "Tb-containing NdFeB magnets"),
            ],
            ["US", "DE"],
            "JL Mag: general licence covering nearly all customers",
        ),
        (
            "cn-gl-2025-ningbo-yunsheng-001",
            "ningbo-yunsheng",
            ["example-de-drives"],
            [(DY_MAGNETS, "8000", "Dy-containing NdFeB magnets")],
            ["DE"],
            "Ningbo Yunsheng: general licence for some customers",
        ),
        (
            "cn-gl-2025-zhong-ke-san-huan-001",
            "zhong-ke-san-huan",
            ["example-us-ev-motors"],
            [
                (DY_MAGNETS, "6000", "Dy-containing NdFeB magnets"),
                (SMCO_MAGNETS, "2000", "samarium-cobalt magnets"),
            ],
            ["US"],
            "Zhong Ke San Huan: general licence for some customers",
        ),
    ]
    for licence_id, exporter, end_users, items, destinations, what in licences:
        s.add(
            "LicenceGranted",
            f"licence/{licence_id}/granted",
            licence_id,
            effective_at=licence_day,
            recorded_on="2025-12-02",
            sources=[
                cite("S29"),
                cite("S36"),
                illustrative(
                    "end users, items and quantity caps are made up; the licence "
                    "itself (holder, date, one-year validity) is reported fact"
                ),
            ],
            summary=f"{what} (one year; terms illustrative)",
            licence_type="general",
            issuer="CN",
            exporter=exporter,
            end_users=end_users,
            items=[
                {"item": item, "cap": cap, "unit": "kg", "description": description}
                for item, cap, description in items
            ],
            destinations=destinations,
            valid_until=utc("2026-12-02"),
        )
    s.add(
        "ApplicationSubmitted",
        "application/app-2025-12-03-jl-mag-dy-under-gl/submitted",
        "app-2025-12-03-jl-mag-dy-under-gl",
        effective_at=beijing("2025-12-03", "10:00:00"),
        recorded_on="2025-12-03",
        sources=[illustrative("made-up application under JL Mag's general licence")],
        summary="Dy magnets for a civil US buyer under JL Mag's general licence (illustrative)",
        exporter="jl-mag",
        end_user="example-us-ev-motors",
        item=DY_MAGNETS,
        quantity="1000",
        unit="kg",
        destination="US",
        end_use="NdFeB traction-motor magnets containing dysprosium for electric vehicles",
        licence_id="cn-gl-2025-jl-mag-001",
    )
    s.add(
        "LicenceUsageRecorded",
        "licence/cn-gl-2025-jl-mag-001/usage/example-shipment-0001",
        "cn-gl-2025-jl-mag-001",
        effective_at=beijing("2025-12-04", "09:00:00"),
        recorded_on="2025-12-04",
        sources=[illustrative("made-up shipment under JL Mag's general licence")],
        summary="1,000 kg of Dy magnets shipped to the US buyer (illustrative)",
        shipment_id="example-shipment-0001",
        item=DY_MAGNETS,
        quantity="1000",
        end_user="example-us-ev-motors",
        destination="US",
    )
    s.implemented(
        CN_GENERAL_LICENCES,
        extent="partial",
        instrument_="MOFCOM general licences: first issued to JL Mag, Ningbo Yunsheng and "
        "Zhong Ke San Huan (one-year, customer-specific)",
        effective_at=licence_day,
        in_force_until=utc("2026-12-02"),
        recorded_on="2025-12-04",
        sources=[
            instrument(
                "MOFCOM regular press conference of 2025-12-04 (spokesperson on general "
                "licences for civilian rare-earth exports)",
                "MOFCOM",
                "2025-12-04",
            ),
            cite("S29b"),
            cite("S29"),
        ],
        summary="CN general licences in use (partial: three magnet makers, some customers); "
        "MOFCOM confirms 2025-12-04",
    )


CHAPTERS = (
    chinese_controls_2020_24,
    tariffs_2025,
    us_port_fees,
    geneva,
    october_2025,
    busan,
    november_2025,
    deadline_reported,
    claims,
    illustrative_parties,
    applications_dec1,
    first_licences,
)
"""The story in order: the order of the events within a recorded day follows it."""


def build() -> Scenario:
    s = Scenario()
    for chapter in CHAPTERS:
        chapter(s)
    return s


def render() -> str:
    return "\n".join(build().lines()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if scenario.jsonl is out of date"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date; run python -m ledger.scenario.build", file=sys.stderr)
            return 1
        print(f"{OUTPUT} is up to date ({text.count(chr(10))} events)")
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10))} events to {OUTPUT}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
