"""Fixtures of the browser tests: one headless Chromium per module, a fresh page per test that
collects every page error, failed request and console error (CSP refusals among them)."""
from __future__ import annotations

import pytest

from tests.views.browser import launch


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1100})
    p = ctx.new_page()
    p.errors = []
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("requestfailed", lambda r: p.errors.append(f"request failed: {r.url}"))
    # Console errors include Content-Security-Policy refusals (an inline style, a CDN).
    p.on("console", lambda m: m.type == "error" and "status of 401" not in m.text
         and "status of 503" not in m.text and p.errors.append(m.text))
    yield p
    ctx.close()
