"""The browser the dashboard's tests (and scripts/screenshots) drive: Debian's ``chromium``,
headless, through Playwright — Playwright's own browser download is never used."""
from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("THREADLINE_SCREENSHOTS", "/tmp"))


def launch(pw):
    """A headless Chromium from a started ``sync_playwright()``."""
    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/ensure-chromium (make test does)"
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


def sign_in(page, url: str, token: str | None = None, at: str = "") -> None:
    """Open the dashboard (at the tab ``at``, e.g. ``#/rules``) and paste the admin token (the
    tests' own when none is given)."""
    if token is None:
        from tests.conftest import ADMIN_TOKEN as token
    page.goto(f"{url}/dashboard{at}")
    page.wait_for_selector("#login[open]")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
