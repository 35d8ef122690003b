"""The pages' colours meet WCAG 2.1 AA on their white background: text 4.5:1 (1.4.3),
chart marks 3:1 (1.4.11 non-text contrast). Read from the stylesheet the server ships."""

from __future__ import annotations

import re
from importlib import resources

CSS = resources.files("ledger.web").joinpath("static/style.css").read_text()
WHITE = "#ffffff"


def luminance(colour: str) -> float:
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def variable(name: str) -> str:
    match = re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})", CSS)
    assert match, name
    return match.group(1)


def test_text_colours_meet_aa() -> None:
    for name in ("ink", "muted", "link", "as-of", "ended"):
        assert contrast(variable(name), WHITE) >= 4.5, name
    # The one-sided label and white text on the buttons and badges.
    assert contrast("#5c3d00", WHITE) >= 4.5
    assert contrast(WHITE, variable("link")) >= 4.5
    assert contrast(WHITE, variable("ended")) >= 4.5


def test_chart_marks_meet_non_text_contrast() -> None:
    for name in ("implemented", "in-force", "revoked", "not-yet", "suspended", "line"):
        assert contrast(variable(name), WHITE) >= 3.0, name
