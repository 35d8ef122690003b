"""A real headless Chromium from Debian's packages, driven by Selenium through
/usr/bin/chromedriver (shared by the browser tests and tools/web_screenshot.py).

When the browser is absent it is installed with apt-get (as CI does on a fresh machine);
nothing is downloaded from anywhere else.  Without apt-get there is no way to get it, and
the caller skips.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class BrowserUnavailable(RuntimeError):
    """No browser, and no apt-get to install one."""


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver if they are not there."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    apt = shutil.which("apt-get")
    if apt is None:
        raise BrowserUnavailable("chromium is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        [apt, "install", "-y", "-qq", "chromium", "chromium-driver"],
        check=True,
        env=env,
        timeout=1200,
    )


def driver(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium session that keeps the browser console's messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # runs as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def full_page_png(session: Any, width: int) -> bytes:
    """A screenshot of the whole page at ``width`` CSS pixels."""
    session.set_window_size(width, 900)
    height = session.execute_script("return document.documentElement.scrollHeight")
    session.set_window_size(width, min(int(height) + 120, 4000))
    png: bytes = session.get_screenshot_as_png()
    return png


def png_colours(png: bytes) -> int:
    """How many distinct byte values the PNG's (unfiltered-as-stored) pixel rows hold: a
    blank page has 1-3 (one colour, filter bytes); a drawn page hundreds."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, data = 8, bytearray()
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(bytes(data))))
