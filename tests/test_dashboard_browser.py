"""/dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

``make test`` installs chromium when it is missing (scripts/ensure-chromium); Playwright's
own browser download is never used. The page is driven as an operator would: sign in with the
admin token, read the numbers, press Replay.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.web_fixtures import all_fixture_deliveries, post_fixture
from workers import deadletters, keys
from workers.events import LogEntry

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("THREADLINE_SCREENSHOTS", "/tmp"))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/ensure-chromium (make test does)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
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


def sign_in(page, url: str, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{url}/dashboard")
    page.wait_for_selector("#login[open]")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def _fixture_traffic(web) -> int:
    accepted = 0
    for _name, _i, delivery in all_fixture_deliveries():
        r = post_fixture(web, delivery)
        assert r.status_code < 500, r.text
        accepted += r.status_code == 200
    return accepted


def _dead_letter_one(redis_client, shards: int) -> tuple[str, str]:
    """Dead-letter one logged entry as a drain that gave up would (the real function)."""
    for n in range(shards):
        rows = redis_client.xrange(keys.events(n), count=1)
        if rows:
            entry_id, fields = rows[0]
            entry = LogEntry.from_fields(fields)
            pipe = redis_client.pipeline()
            deadletters.dead_letter(pipe, entry, "v2_rejected", 1, "400 code 20001: invalid",
                                    entry_id.decode(), source_stream=keys.events(n))
            pipe.execute()
            return entry.cid, redis_client.xrevrange(keys.DEAD_LETTERS, count=1)[0][0].decode()
    raise AssertionError("ingress logged nothing")


def _number(text: str) -> float | None:
    text = text.strip()
    return None if text == "—" else float(text.replace(",", ""))


def _expected(data: dict, path: str, default: str | None) -> float | None:
    v: object = data
    for part in path.split("."):
        if isinstance(v, list):
            v = v[int(part)] if int(part) < len(v) else None
        elif isinstance(v, dict):
            v = v.get(part)
        else:
            v = None
    if v is None and default is not None:
        return float(default)
    return None if v is None else float(v)


def test_numbers_on_the_page_equal_the_stats_api(start_web, redis_client, page) -> None:
    web = start_web(THREADLINE_SHARDS="4")
    accepted = _fixture_traffic(web)
    _dead_letter_one(redis_client, 4)
    sign_in(page, web.url)
    page.wait_for_selector("#status[data-state=live]")
    data = httpx.get(f"{web.url}/api/v1/stats?window=1h", headers=web.admin_headers()).json()
    shown = page.eval_on_selector_all(
        "[data-stat]:not([data-volatile])",
        "els => els.map(e => [e.dataset.stat, e.textContent, e.dataset.default ?? null])")
    assert len(shown) >= 25
    for path, text, default in shown:
        want = _expected(data, path, default)
        got = _number(text)
        assert (got is None) == (want is None) and (want is None or abs(got - round(want, 1)) < 0.06), \
            f"{path}: page shows {text!r}, /api/v1/stats says {want!r}"
    assert accepted > 0
    webhooks = page.text_content('[data-stat="summary.webhooks.window"]')
    assert _number(webhooks) == data["summary"]["webhooks"]["window"] > 0
    assert _number(page.text_content('[data-stat="gauges.dead_letters"]')) == 1
    assert page.locator("#dead tbody tr[data-dead-id]").count() == 1
    channels = len(data["summary"]["traffic_by_channel"])
    assert page.locator("#chart-traffic svg path").count() == 2 * channels  # area + line each
    assert page.locator("#legend-traffic span").count() == channels
    page.screenshot(path=str(SHOTS / "threadline-dashboard.png"), full_page=True)
    assert page.errors == []


def test_replay_button_puts_the_entry_back_and_clears_the_letter(start_web, redis_client, page) -> None:
    web = start_web(THREADLINE_SHARDS="4")
    _fixture_traffic(web)
    cid, dead_id = _dead_letter_one(redis_client, 4)
    before = sum(redis_client.xlen(keys.events(n)) for n in range(4))
    sign_in(page, web.url)
    page.wait_for_selector(f'#dead tr[data-dead-id="{dead_id}"] button[data-replay]')
    page.click(f'#dead tr[data-dead-id="{dead_id}"] button[data-replay]')
    page.wait_for_selector("#toast:not([hidden])")
    assert "Replayed into shard" in page.text_content("#toast")
    page.wait_for_selector(f'#dead tr[data-dead-id="{dead_id}"]', state="detached")
    assert redis_client.xlen(keys.DEAD_LETTERS) == 0
    after = [f for n in range(4) for _, f in redis_client.xrange(keys.events(n))]
    assert len(after) == before + 1 and sum(f[b"c"].decode() == cid for f in after) == 2
    assert _number(page.text_content('[data-stat="gauges.dead_letters"]')) == 0


def test_wrong_token_asks_again_and_shows_nothing(start_web, redis_client, page) -> None:
    web = start_web(THREADLINE_SHARDS="4")
    _fixture_traffic(web)
    sign_in(page, web.url, "not-the-token")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "refused" in page.text_content("#login-error")
    assert page.is_visible("#login") and not page.is_visible("#main")
    assert all(t == "" for t in page.eval_on_selector_all("[data-stat]", "els => els.map(e => e.textContent)"))
    assert page.evaluate("sessionStorage.getItem('threadline.adminToken')") is None
    # The right token then works, and survives a reload (kept in the session).
    page.fill("#token", ADMIN_TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#status[data-state=live]")
    page.reload()
    page.wait_for_selector("#status[data-state=live]")
    assert not page.is_visible("#login")


def test_redis_down_says_so_instead_of_zeros(start_web, page) -> None:
    from tests.procs import free_port

    web = start_web(REDIS_URL=f"redis://127.0.0.1:{free_port()}/1")
    assert web.get("/readyz").status_code == 503
    sign_in(page, web.url)
    page.wait_for_selector("#outage:not([hidden])", timeout=20000)
    assert page.text_content("#outage-title") == "Redis is unreachable"
    assert re.search(r"/readyz → 503", page.text_content("#outage-text"))
    assert not page.is_visible("#main")
    assert page.get_attribute("#status", "data-state") == "down"
    page.screenshot(path=str(SHOTS / "threadline-dashboard-redis-down.png"))


def test_page_loads_nothing_from_elsewhere(start_web, page) -> None:
    web = start_web(THREADLINE_SHARDS="4")
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(httpx.URL(r.url).host))
    sign_in(page, web.url)
    page.wait_for_selector("#status[data-state=live]")
    assert hosts == {"127.0.0.1"}
    csp = web.get("/dashboard").headers["content-security-policy"]
    assert "default-src 'self'" in csp
