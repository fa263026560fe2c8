"""/dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

``make test`` installs chromium when it is missing (scripts/ensure-chromium); Playwright's
own browser download is never used. The page is driven as an operator would: sign in with the
admin token, read the numbers, press Replay.
"""
from __future__ import annotations

import re
import time

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.delivery.test_fixtures import OUTBOUND
from tests.views.browser import SHOTS, sign_in
from tests.web_fixtures import all_fixture_deliveries, message_status, new_sid, post_fixture, post_signed
from tests.worker_fixtures import OURS
from workers import stats
from workers.foundations import keys

STATUS = "/webhooks/twilio/messaging/status"


def _fixture_traffic(web) -> int:
    accepted = 0
    for _name, _i, delivery in all_fixture_deliveries():
        r = post_fixture(web, delivery)
        assert r.status_code < 500, r.text
        accepted += r.status_code == 200
    return accepted


UNITS_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def _number(text: str) -> float | None:
    text = text.strip()
    return None if text == "—" else float(text.replace(",", ""))


def _shown_matches(text: str, fmt: str | None, want: float | None, quantile: bool = False) -> bool:
    """What a person reads equals the API's number (durations to the 0.1 of the unit shown)."""
    if want is None or text.strip() == "—":
        return want is None and text.strip() == "—"
    if fmt == "duration":
        if text.startswith("≥ "):  # a quantile in the +Inf bucket: at least the top bound
            return quantile and want >= stats.BUCKETS_MS[-1] and text == "≥ 10 s"
        value, unit = text.strip().rsplit(" ", 1)
        size = UNITS_MS[unit]
        return abs(float(value.replace(",", "")) * size - want) <= 0.051 * size
    return abs(_number(text) - round(want, 1)) < 0.06


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


def _settled(web) -> dict:
    """/api/v1/stats once two reads a second and a half apart agree (the v2 client flushes
    its counts about once a second, so the last of them may still be on the way)."""
    prev = None
    for _ in range(20):
        data = httpx.get(f"{web.url}/api/v1/stats?window=1h", headers=web.admin_headers()).json()
        now = (data["summary"], data["gauges"]["backlog"], data["gauges"]["dead_letters"])
        if now == prev:
            return data
        prev = now
        time.sleep(1.5)
    raise AssertionError("stats never settled")


def _page_refreshed(page) -> None:
    page.evaluate("window.threadlineDashboard.refresh()")
    page.wait_for_selector("#status[data-state=live]")


def _page_matches(page, data: dict) -> int:
    """Compare every number on the page with ``data``; returns how many were compared."""
    shown = page.eval_on_selector_all(
        "[data-stat]:not([data-volatile])",
        "els => els.map(e => [e.dataset.stat, e.textContent, e.dataset.default ?? null, e.dataset.format ?? null, e.dataset.quantile !== undefined])")
    for path, text, default, fmt, quantile in shown:
        want = _expected(data, path, default)
        assert _shown_matches(text, fmt, want, quantile), f"{path}: page shows {text!r}, /api/v1/stats says {want!r}"
    return len(shown)


def _dead_letter_by_the_engine(pipeline) -> tuple[str, str]:
    """A status callback for a message the Messages API does not have: the worker dead-letters
    it (message_not_found). Returns (dead-letter id, MessageSid)."""
    sid = new_sid("SM")
    assert post_signed(pipeline.web, STATUS, message_status(sid, "delivered", OURS, "+14155550177")).status_code == 200
    pipeline.wait_idle()
    (dead,) = pipeline.redis.xrange(keys.DEAD_LETTERS)
    assert dead[1][b"reason"] == b"message_not_found"
    return dead[0].decode(), sid


def test_numbers_on_the_page_equal_the_stats_api(pipeline, page) -> None:
    """Every fixture replayed through web → worker → twin; the page shows /api/v1/stats."""
    pipeline.configure("main")
    for sid, frm, to, body in OUTBOUND:
        pipeline.twin.seed_message(frm, to, body, sid=sid)
    pipeline.start_worker()
    accepted = _fixture_traffic(pipeline.web)
    pipeline.wait_idle()
    _dead_letter_by_the_engine(pipeline)
    web = pipeline.web
    data = _settled(web)
    sign_in(page, web.url)
    page.wait_for_selector("#status[data-state=live]")
    _page_refreshed(page)
    data = httpx.get(f"{web.url}/api/v1/stats?window=1h", headers=web.admin_headers()).json()
    assert _page_matches(page, data) >= 30
    s = data["summary"]
    assert accepted > 0 and s["webhooks"]["by_outcome"]["accepted"] >= accepted + 1  # + the status callback; a batch counts each event
    assert s["events"]["by_outcome"]["captured"] > 0 and s["conversations"]["created"] >= 3
    assert s["v2"]["requests"] > 0 and s["lag"]["count"] > 0
    assert _shown_matches(page.text_content('#main dd[data-stat="summary.lag.p95_ms"]'), "duration", s["lag"]["p95_ms"], True)
    assert _number(page.text_content('[data-stat="gauges.dead_letters"]')) == 1
    assert page.locator("#dead tbody tr[data-dead-id]").count() == 1
    channels = len(s["traffic_by_channel"])
    assert channels >= 2  # SMS and WhatsApp fixtures, at least
    assert page.locator("#chart-traffic svg path").count() == 2 * channels  # area + line each
    assert page.locator("#legend-traffic > span").count() == channels
    page.screenshot(path=str(SHOTS / "threadline-dashboard.png"), full_page=True)
    # One configuration's view: the page asks for it and shows that configuration's numbers.
    page.select_option("#configuration", "main")
    for _ in range(100):  # (wait_for_function evaluates strings, which the page's CSP forbids)
        if page.evaluate("(window.threadlineDashboard.last() || {}).configuration") == "main":
            break
        time.sleep(0.05)
    assert page.evaluate("window.threadlineDashboard.last().configuration") == "main"
    mine = httpx.get(f"{web.url}/api/v1/stats?window=1h&configuration=main", headers=web.admin_headers()).json()
    assert _page_matches(page, mine) >= 20
    assert _number(page.text_content('[data-stat="summary.events.by_outcome.captured"]')) == \
        mine["summary"]["events"]["by_outcome"]["captured"] > 0
    assert page.errors == []


def test_replay_from_the_page_delivers_the_event(pipeline, page) -> None:
    pipeline.configure("main")
    pipeline.start_worker()
    dead_id, sid = _dead_letter_by_the_engine(pipeline)
    assert pipeline.twin.conversations() == []  # dead-lettered before any conversation was made
    pipeline.twin.seed_message(OURS, "+14155550177", "Hello there", sid=sid)  # the cause, fixed
    sign_in(page, pipeline.web.url)
    button = f'#dead tr[data-dead-id="{dead_id}"] button[data-replay]'
    page.wait_for_selector(button)
    page.click(button)
    page.wait_for_selector("#toast:not([hidden])")
    assert "Replayed into shard" in page.text_content("#toast")
    page.wait_for_selector(f'#dead tr[data-dead-id="{dead_id}"]', state="detached")
    pipeline.wait_idle()
    comms = pipeline.twin.conversations()[0]["communications"]
    assert [(c["resourceId"], c["content"]["text"], c["recipients"][0]["deliveryStatus"])
            for c in comms] == [(sid, "Hello there", "DELIVERED")]
    assert pipeline.redis.xlen(keys.DEAD_LETTERS) == 0
    _page_refreshed(page)
    assert _number(page.text_content('[data-stat="gauges.dead_letters"]')) == 0
    assert page.errors == []


def test_wrong_token_asks_again_and_shows_nothing(start_web, redis_client, page) -> None:
    """…and the page loads nothing from anywhere but threadline itself (no CDN)."""
    web = start_web(THREADLINE_SHARDS="4")
    _fixture_traffic(web)
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(httpx.URL(r.url).host))
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
    assert hosts == {"127.0.0.1"}
    assert "default-src 'self'" in web.get("/dashboard").headers["content-security-policy"]
    assert page.errors == []


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
