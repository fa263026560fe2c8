"""The dashboard's conversations and rules tabs in headless Chromium, driven as an operator would:
traffic arrives while the list is open and shows up without a reload, a conversation's page
shows its timeline as v2 holds it, Close closes it on the twin, the explain form answers — and
every failure (unknown id, v2 failing, Redis down) is said in words on the page."""
from __future__ import annotations

import time

import httpx

from tests.views.browser import SHOTS, sign_in
from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS
from workers.foundations import keys

MESSAGING, STATUS = "/webhooks/twilio/messaging", "/webhooks/twilio/messaging/status"
ALICE, BOB = "+14155550111", "+14155550122"
SLOW = 30_000  # ms: the page polls every 5 s, on a loaded machine


def _api(web, path: str, **params) -> dict:
    r = httpx.get(f"{web.url}{path}", params=params, headers=web.admin_headers(), timeout=20)
    assert r.status_code == 200, r.text
    return r.json()


def _open(page, web, hash_: str) -> None:
    sign_in(page, web.url, at=hash_)
    page.wait_for_selector("#status[data-state=live]", timeout=SLOW)


def _texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent.trim())")


def test_traffic_appears_in_the_list_and_its_page_shows_the_timeline(pipeline, page) -> None:
    """The traffic is the twin's own (``/_twin/simulate``): it signs the webhooks it sends, for
    the URL it calls, so this web checks signatures over that URL (no THREADLINE_PUBLIC_URL; the
    loopback peer's Host trusted through THREADLINE_TRUSTED_PROXIES)."""
    pipeline.configure("main")
    pipeline.start_worker()
    twin = pipeline.twin
    web = pipeline.start_web(**pipeline.env(THREADLINE_PUBLIC_URL=None, THREADLINE_TRUSTED_PROXIES="127.0.0.1"))
    twin.give_number(OURS, SmsUrl=web.url + MESSAGING)

    def customer_writes(who: str, body: str, n: int) -> None:
        twin.simulate_message(from_=who, to=OURS, body=body)
        assert all(a.get("status") == 200 for a in twin.wait_deliveries("incoming_message", n))
    _open(page, web, "#/conversations")
    page.wait_for_selector("#conversations-view:not([hidden]) #conv-empty:not([hidden])", timeout=SLOW)
    assert "No conversation yet" in page.text_content("#conv-empty")

    # Traffic while the page is open: it shows up without a reload.
    customer_writes(ALICE, "Where is my order?", 1)
    page.wait_for_selector("#conv-list tbody tr[data-conv-id]", timeout=SLOW)
    (alice,) = _api(web, "/api/v1/conversations")["conversations"]
    row = f'#conv-list tr[data-conv-id="{alice["id"]}"]'
    assert ALICE in page.text_content(row) and "main · v1" in page.text_content(row)
    customer_writes(BOB, "Hello", 2)
    page.wait_for_selector("#conv-list tbody tr[data-conv-id] >> nth=1", timeout=SLOW)

    # The customer filter keeps Bob's alone.
    page.fill("#conv-filters input[name=address]", BOB)
    page.click("#conv-filters button[type=submit]")
    page.wait_for_selector(f'{row}', state="detached", timeout=SLOW)
    assert page.locator("#conv-list tbody tr[data-conv-id]").count() == 1
    assert BOB in page.text_content("#conv-list tbody tr[data-conv-id]")
    page.click("#conv-filters button[type=reset]")
    page.wait_for_selector(row, timeout=SLOW)

    # Its page: facts, then the timeline as it grows (a second message, a delivered reply).
    page.click(f"{row} a")
    page.wait_for_selector("#cd-body:not([hidden]) .comm", timeout=SLOW)
    customer_writes(ALICE, "It is late", 3)
    pipeline.wait_idle()
    # The business answers (threadline hears the message's status callbacks). Twilio dates a
    # message to the second, so the reply is made in the next second: it happened later.
    time.sleep(1.1)
    reply = twin.simulate_message(from_=OURS, to=ALICE, body="On its way", direction="outbound",
                                  statusCallback=web.url + STATUS)["sid"]
    # its status callbacks: queued, sent, delivered
    assert all(a.get("status") == 200 for a in twin.wait_deliveries("message_status", 3, timeout=30))
    pipeline.wait_idle()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        shown = _texts(page, "#cd-timeline .comm .text")
        if len(shown) == 3 and "DELIVERED" in _texts(page, "#cd-timeline .comm .recipients .pill")[-1]:
            break
        time.sleep(0.5)
    assert _texts(page, "#cd-timeline .comm .text") == ["Where is my order?", "It is late", "On its way"]
    comms = _api(web, f"/api/v1/conversations/{alice['id']}/communications")["communications"]
    want = [(c["recipients"][0].get("deliveryStatus") or "no status") for c in comms]
    assert _texts(page, "#cd-timeline .comm .recipients .pill") == want and want[-1] == "DELIVERED"
    assert reply in page.text_content("#cd-events")
    facts = page.text_content("#cd-facts")
    assert alice["groupingKey"] in facts and alice["twilioConversationId"] in facts and "version 1" in facts
    assert page.text_content("#cd-status") == "ACTIVE"
    assert page.text_content("#cd-deadline").startswith("Goes INACTIVE at")
    assert {t for t in _texts(page, "#cd-participants tbody td:nth-child(3)")} == {ALICE, OURS}
    page.screenshot(path=str(SHOTS / "threadline-conversation.png"), full_page=True)

    # Close: the existing PATCH, on the twin.
    page.click("#cd-close")
    page.wait_for_selector("#toast:not([hidden])", timeout=SLOW)
    assert "closed" in page.text_content("#toast").lower()
    pipeline.twin.wait_for(lambda s: any(c["id"] == alice["twilioConversationId"] and c["status"] == "CLOSED"
                                         for c in s["conversations"]), timeout=20)
    page.wait_for_selector("#cd-status.st-closed", timeout=SLOW)
    assert page.is_disabled("#cd-close")
    assert page.errors == []


def test_the_explain_form_answers_and_the_rules_are_shown(pipeline, page) -> None:
    pipeline.configure("main")
    pipeline.start_worker()
    web = pipeline.web
    assert post_signed(web, MESSAGING, inbound_message(ALICE, OURS, "Hi")).status_code == 200
    pipeline.wait_idle()
    (alice,) = _api(web, "/api/v1/conversations")["conversations"]
    _open(page, web, "#/rules")
    page.wait_for_selector('#configs section[data-config-id="main"]', timeout=SLOW)
    rules = page.text_content('#configs section[data-config-id="main"]')
    assert f"whatsapp:{OURS}" in rules and "v1 (current)" in rules
    page.select_option("#explain-form select[name=channel]", "SMS")
    page.fill("#explain-form input[name=from]", ALICE)
    page.fill("#explain-form input[name=to]", OURS)
    page.click("#explain-form button[type=submit]")
    page.wait_for_selector('#explain-result section.match[data-config-id="main"]', timeout=SLOW)
    answer = page.text_content("#explain-result")
    assert "Captured by main · v1" in answer and alice["groupingKey"] in answer
    assert f"joins {alice['id']}" in answer and "(ACTIVE" in answer
    page.screenshot(path=str(SHOTS / "threadline-rules.png"), full_page=True)
    page.fill("#explain-form input[name=from]", "+14155550999")
    page.fill("#explain-form input[name=to]", "+14155550998")
    page.click("#explain-form button[type=submit]")
    page.wait_for_selector("#explain-result .ignored", timeout=SLOW)
    assert page.text_content("#explain-result .ignored").startswith("Ignored: no SMS capture rule")
    page.fill("#explain-form input[name=from]", "not a number")
    page.click("#explain-form button[type=submit]")
    page.wait_for_selector("#explain-result .problem-inline", timeout=SLOW)
    assert page.text_content("#explain-result").startswith("Not explained: from:")
    assert [e for e in page.errors if "status of 400" not in e] == []  # the 400 just shown


def test_unknown_conversation_and_v2_failure_are_said_in_words(pipeline, page) -> None:
    pipeline.configure("main")
    pipeline.start_worker()
    assert post_signed(pipeline.web, MESSAGING, inbound_message(ALICE, OURS, "Hi")).status_code == 200
    # …and a status callback of a message the Messages API does not have: a dead letter of the key
    assert post_signed(pipeline.web, STATUS, message_status(new_sid("SM"), "delivered", OURS, ALICE)).status_code == 200
    pipeline.wait_idle()
    (dead,) = pipeline.redis.xrange(keys.DEAD_LETTERS)
    dead_id = dead[0].decode()
    web = pipeline.start_web(**pipeline.env(THREADLINE_MAX_ATTEMPTS="2"))
    _open(page, web, "#/conversations/tlc_nothing_here")
    page.wait_for_selector("#cd-problem:not([hidden])", timeout=SLOW)
    assert page.text_content("#cd-problem-title") == "No conversation “tlc_nothing_here”"
    assert "no conversation with this id" in page.text_content("#cd-problem-text")
    assert not page.is_visible("#cd-body")

    (alice,) = _api(web, "/api/v1/conversations")["conversations"]
    pipeline.twin.set_faults(rate_500=1.0, path="/Communications$")
    try:
        page.evaluate(f"location.hash = '#/conversations/{alice['id']}'")
        page.wait_for_selector("#cd-timeline-problem:not([hidden])", timeout=SLOW)
    finally:
        pipeline.twin.clear_faults()
    said = page.text_content("#cd-timeline-problem")
    assert said.startswith("The timeline could not be read from Twilio: v2 did not return the timeline.")
    assert "Twilio answered 500" in said
    assert page.is_visible("#cd-facts") and alice["groupingKey"] in page.text_content("#cd-facts")
    # …and once v2 answers again, the next refresh shows it
    page.wait_for_selector("#cd-timeline .comm", timeout=SLOW)
    assert page.is_hidden("#cd-timeline-problem")
    # the key's dead letter links to its row on the overview
    assert _texts(page, "#cd-dead a") == [dead_id]
    page.click("#cd-dead a")
    page.wait_for_selector(f'#dead tr.pointed[data-dead-id="{dead_id}"]', timeout=SLOW)
    assert "message_not_found" in page.text_content(f'#dead tr[data-dead-id="{dead_id}"]')
    console = [e for e in page.errors if "status of 50" not in e and "status of 404" not in e]
    assert console == []


def test_redis_down_is_said_on_every_tab(start_web, page) -> None:
    from tests.procs import free_port

    web = start_web(REDIS_URL=f"redis://127.0.0.1:{free_port()}/1")
    sign_in(page, web.url)
    page.wait_for_selector("#outage:not([hidden])", timeout=SLOW)
    for hash_ in ("#/conversations", "#/conversations/tlc_x", "#/rules"):
        page.evaluate("document.getElementById('outage').hidden = true")
        page.evaluate(f"location.hash = {hash_!r}")
        page.wait_for_selector("#outage:not([hidden])", timeout=SLOW)
        assert page.text_content("#outage-title") == "Redis is unreachable", hash_
        assert "/readyz → 503" in page.text_content("#outage-text")
        assert not page.is_visible("#conversations-view") and not page.is_visible("#cd-body")
        assert not page.is_visible("#rules-view")
