"""The auditor's pages in a real browser: Debian's headless Chromium, driven by Selenium.

On the shipped scenario: the commitments timeline as of 2025-11-14 as known that day must
draw the general-licence pair one-sided from 2025-11-10 (read from the DOM: the shaded
mark's dates and its position on the axis), the measures timeline and a licence page
their marks; no page may log a console error (a CSP violation, a missing resource); each
screenshot must not be blank; at 390 px nothing but a chart's own scroll box is wider
than the screen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli
from ledger.config import Settings
from ledger.scenario import scenario_path
from ledger.web.run import WebServer
from ledger.web.server import WebConfig
from tests import browser

GENERAL_LICENCE_PAIR = "busan-cn-general-licences busan-us-affiliates-rule-suspension"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("browser")
    result = CliRunner().invoke(
        cli, ["--home", str(home), "import", "--backfill", str(scenario_path())]
    )
    assert result.exit_code == 0, result.output
    server = WebServer(Settings.from_env({"LEDGER_HOME": str(home)}), "127.0.0.1", 0, WebConfig())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    try:
        browser.ensure_chromium()
    except browser.BrowserUnavailable as exc:
        pytest.skip(str(exc))
    s = browser.driver()
    try:
        yield s
    finally:
        s.quit()


def load(session: Any, url: str) -> None:
    session.get_log("browser")  # drop what an earlier page logged
    session.set_window_size(1280, 900)
    session.get(url)
    assert session.execute_script("return document.readyState") == "complete"


def console_errors(session: Any) -> list[str]:
    return [e["message"] for e in session.get_log("browser") if e["level"] == "SEVERE"]


def axis_x(svg: Any, when: dt.datetime) -> float:
    """Where the chart draws ``when``: its axis, as the svg states it."""
    start = dt.datetime.fromisoformat(svg.get_attribute("data-axis-start"))
    end = dt.datetime.fromisoformat(svg.get_attribute("data-axis-end"))
    x0, x1 = float(svg.get_attribute("data-x0")), float(svg.get_attribute("data-x1"))
    return x0 + (when - start) / (end - start) * (x1 - x0)


def utc(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def check_screenshot_and_narrow_screen(session: Any, tmp_path: Path, name: str) -> None:
    png = browser.full_page_png(session, 1280)
    (tmp_path / f"{name}.png").write_bytes(png)
    assert len(png) > 20_000 and browser.png_colours(png) > 64, "the screenshot is blank"
    # 390 px: the page fits the screen; only a chart's own box scrolls sideways.
    session.set_window_size(390, 844)
    overflow = session.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{name} is {overflow} px wider than a 390 px screen"
    narrow = browser.full_page_png(session, 390)
    assert browser.png_colours(narrow) > 64
    assert console_errors(session) == []


def test_commitments_timeline_draws_the_general_licence_pair_one_sided(
    site: str, session: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    load(session, f"{site}/commitments?agreement=busan-2025&as_of=2025-11-14&known_at=2025-11-14")
    assert console_errors(session) == []
    svg = session.find_element(By.CSS_SELECTOR, "svg.chart")
    marks = svg.find_elements(
        By.CSS_SELECTOR, f'rect.one-sided[data-pair="{GENERAL_LICENCE_PAIR}"]'
    )
    assert len(marks) == 1, "the general-licence pair has no one-sided stretch drawn"
    mark = marks[0]
    assert mark.get_attribute("data-from") == "2025-11-10"
    assert mark.get_attribute("data-state") == "one-sided"
    assert "open" in mark.get_attribute("class").split()  # still one-sided on 2025-11-14
    assert mark.get_attribute("data-days") == "4"
    # Drawn where the axis puts 2025-11-10, and up to the as-of line.
    x = float(mark.get_attribute("x"))
    assert axis_x(svg, utc("2025-11-10")) <= x < axis_x(svg, utc("2025-11-11"))
    as_of = svg.find_element(By.CSS_SELECTOR, "line.as-of")
    end = x + float(mark.get_attribute("width"))
    assert abs(end - float(as_of.get_attribute("x1"))) < 1.0
    # One-sided: the US side has an implemented bar from 2025-11-10, the Chinese none.
    us = svg.find_elements(
        By.CSS_SELECTOR, 'rect.implemented[data-commitment="busan-us-affiliates-rule-suspension"]'
    )
    assert [b.get_attribute("data-from") for b in us] == ["2025-11-10"]
    cn = 'rect.implemented[data-commitment="busan-cn-general-licences"]'
    assert svg.find_elements(By.CSS_SELECTOR, cn) == []
    # The chart's text alternative: the same pair in the table, one-sided since 2025-11-10.
    row = session.find_element(By.CSS_SELECTOR, f'tr[data-pair="{GENERAL_LICENCE_PAIR}"]')
    assert "one-sided" in row.text and "2025-11-10" in row.text
    check_screenshot_and_narrow_screen(session, tmp_path, "commitments")


def test_measures_timeline(site: str, session: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    # In Beijing's calendar, the issuer's (tz as the CLI's --tz).
    load(session, f"{site}/measures?as_of=2025-11-14&known_at=2025-11-14&tz=Asia/Shanghai")
    assert console_errors(session) == []
    svg = session.find_element(By.CSS_SELECTOR, "svg.chart")
    # MOFCOM Announcement 61 (2025) clause 2: in force 2025-10-09, suspended from
    # 2025-11-10 Beijing time for a year.
    bars = svg.find_elements(By.CSS_SELECTOR, 'rect[data-clause="cn-ann-2025-61/cl.2"]')
    drawn = [(b.get_attribute("data-state"), b.get_attribute("data-from")) for b in bars]
    assert drawn[:2] == [("not-yet-effective", drawn[0][1]), ("in-force", "2025-10-09")]
    suspended = [b for b in bars if b.get_attribute("data-state") == "suspended"]
    assert len(suspended) == 1
    assert suspended[0].get_attribute("data-until") == "2026-11-11"
    x = float(suspended[0].get_attribute("x"))
    assert x <= float(svg.find_element(By.CSS_SELECTOR, "line.as-of").get_attribute("x1"))
    revoked = svg.find_elements(By.CSS_SELECTOR, 'rect.revoked[data-clause^="cn-ag-counter"]')
    assert [r.get_attribute("data-from") for r in revoked] == ["2025-11-10", "2025-11-10"]
    check_screenshot_and_narrow_screen(session, tmp_path, "measures")
    # Filtered by issuer and item: only US clauses; an item no clause names keeps the
    # clauses that cover every item.
    load(session, f"{site}/measures?as_of=2025-11-14&known_at=2025-11-14&issuer=US")
    clauses = {
        r.get_attribute("data-clause").split("/")[0]
        for r in session.find_elements(By.CSS_SELECTOR, "svg.chart rect[data-clause]")
    }
    assert clauses and all(c.startswith("us-") for c in clauses)
    assert console_errors(session) == []


def test_licence_page(site: str, session: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    load(session, f"{site}/licences?as_of=2025-12-05&known_at=2025-12-05")
    link = session.find_element(By.LINK_TEXT, "cn-gl-2025-jl-mag-001")
    link.click()
    assert session.current_url.startswith(f"{site}/licences/cn-gl-2025-jl-mag-001?")
    assert console_errors(session) == []
    validity = session.find_element(By.CSS_SELECTOR, "svg.chart rect.validity")
    assert validity.get_attribute("data-from") == "2025-12-02"
    shares = [
        float(r.get_attribute("data-remaining-share"))
        for r in session.find_elements(By.CSS_SELECTOR, "table svg.quantity rect.remaining")
    ]
    assert shares == [0.95, 1.0]  # 19,000 of 20,000 kg left of 1C905.a; 1C904.a untouched
    history = session.find_elements(By.CSS_SELECTOR, "ol.events li.event")
    assert history and "LicenceGranted" in history[0].text
    assert history[0].find_elements(By.CSS_SELECTOR, "ul.sources li")  # its sources shown
    check_screenshot_and_narrow_screen(session, tmp_path, "licence")
