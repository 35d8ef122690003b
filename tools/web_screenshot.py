"""Regenerate the README's screenshot of the auditor's console: the Busan commitments
timeline as of 2025-11-14, as known that day, on the shipped scenario.

    .venv/bin/python tools/web_screenshot.py            # writes docs/web-commitments.png

It imports the scenario into a temporary ledger, serves it on a free loopback port and
photographs the page with Debian's headless Chromium (tests/browser.py installs it with
apt-get when it is missing).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from ledger.cli.main import cli  # noqa: E402
from ledger.config import Settings  # noqa: E402
from ledger.scenario import scenario_path  # noqa: E402
from ledger.web.run import WebServer  # noqa: E402
from ledger.web.server import WebConfig  # noqa: E402
from tests import browser  # noqa: E402

PAGE = "/commitments?agreement=busan-2025&as_of=2025-11-14&known_at=2025-11-14"
OUT = ROOT / "docs" / "web-commitments.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        result = CliRunner().invoke(
            cli, ["--home", home, "import", "--backfill", str(scenario_path())]
        )
        if result.exit_code != 0:
            raise SystemExit(result.output)
        server = WebServer(Settings.from_env({"LEDGER_HOME": home}), "127.0.0.1", 0, WebConfig())
        server.start()
        session = browser.driver()
        try:
            session.set_window_size(1280, 900)
            session.get(server.url + PAGE)
            # The header, the legend and the chart (the tables below it are cut off).
            bottom = session.execute_script(
                "return document.querySelector('svg.chart').getBoundingClientRect().bottom"
            )
            chrome = session.execute_script("return window.outerHeight - window.innerHeight")
            session.set_window_size(1280, int(bottom) + 24 + int(chrome))
            OUT.write_bytes(session.get_screenshot_as_png())
        finally:
            session.quit()
            server.stop()
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
