"""The real 2025 US-China critical-minerals scenario, shipped with the package.

``scenario.jsonl`` holds the dated facts of ``shared/domain/timeline.csv`` as ledger
events, one per line in import order (recorded times never decrease), ready for
``ledger import --backfill``.  It is generated from ``ledger/scenario/build.py`` (the
single source of truth; a test checks the two agree).

How the facts are modelled (details and the hand-checked answers in docs/scenario.md):

- **Measures** are ``MeasurePublished`` events with their clauses: the Chinese controls
  of 2020-2025 (items as control codes, e.g. 1C902-1C908 for Ann.18, or item names such as
  ``gallium``), the US fentanyl/reciprocal tariffs, the Affiliates rule and port fees, and
  China's counter-tariffs and port fees (``tariff``/``fee``/``other`` where they are not
  export controls).  The November 2025 pauses are ``ClauseSuspended`` windows whose
  ``until`` carries the scheduled end in November 2026; tariff cuts that are not
  time-limited are ``MeasureRevoked``.
- **Agreements**: Geneva (2025-05-12, extended on 2025-08-11) and Busan (2025-10-30, one
  year, extendable).  **Commitments** of both sides are paired with ``reciprocates`` the
  way the MOFCOM statement of 2025-10-30 pairs them; the general-licence pledge is
  asserted only by the US (the White House fact sheet) and carries the reported
  end-of-November deadline, learnt from a report of 2025-11-14 (Discovery Alert; the pledge is
  re-recorded then: a retraction plus a new pledge, so "known at 2025-11-10" shows it
  without a deadline).
- **Sources**: ``official`` only for the instruments and the governments' own
  statements and pages, ``reported`` for news and third-party texts of them (cited
  beside the instrument) and for the reports of ``shared/domain/sources.md`` (R1, R2),
  ``illustrative`` for the made-up end users, applications, licence terms and shipment.

``scenario_path()`` finds the packaged file (also in a non-editable install);
``load()`` returns its events as JSON objects.
"""

from __future__ import annotations

import atexit
import json
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

FILENAME = "scenario.jsonl"

# Entity ids the demo and tests ask about.
BUSAN = "busan-2025"
GENEVA = "geneva-2025"
ANN46 = "cn-ann-2024-46"
ANN18 = "cn-ann-2025-18"
ANN61 = "cn-ann-2025-61"
CN_GENERAL_LICENCES = "busan-cn-general-licences"
US_AFFILIATES_SUSPENSION = "busan-us-affiliates-rule-suspension"
CN_OCTOBER_SUSPENSION = "busan-cn-october-measures-suspension"
VEU_PLAN = "cn-veu-plan-2025-11"
AUTO_REJECTION_CLAIM = "cn-military-auto-rejection-2025-12-01"
CIVIL_APPLICATION_DEC1 = "app-2025-12-01-example-civil-dy"
MILITARY_APPLICATION_DEC1 = "app-2025-12-01-example-military-dy"
LICENSED_APPLICATION_DEC3 = "app-2025-12-03-jl-mag-dy-under-gl"
GENERAL_LICENCES = (
    "cn-gl-2025-jl-mag-001",
    "cn-gl-2025-ningbo-yunsheng-001",
    "cn-gl-2025-zhong-ke-san-huan-001",
)

_extracted = ExitStack()
atexit.register(_extracted.close)


def scenario_path() -> Path:
    """Path of the packaged ``scenario.jsonl`` (extracted once if the package is zipped)."""
    resource = resources.files(__name__).joinpath(FILENAME)
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(resources.as_file(resource))  # pragma: no cover


def read_text() -> str:
    return resources.files(__name__).joinpath(FILENAME).read_text(encoding="utf-8")


def load() -> list[dict[str, Any]]:
    """The scenario's events as JSON objects, in import order."""
    return [json.loads(line) for line in read_text().splitlines() if line.strip()]
