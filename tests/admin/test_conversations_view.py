"""What the dashboard's conversation pages read from the admin API: the list's filters (customer
address, creation time), a conversation's timeline fetched from v2 on demand through the twin,
its dead letters, and every way the answer can go wrong said in words (unknown id, v2 refusing
or failing, Redis down) — never a 500."""
from __future__ import annotations

import time

import httpx

from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS

MESSAGING, STATUS = "/webhooks/twilio/messaging", "/webhooks/twilio/messaging/status"
ALICE, BOB = "+14155550111", "+14155550122"


def _traffic(pipeline) -> str:
    """Alice writes twice and gets a delivered reply; Bob writes once. Returns the reply's sid."""
    pipeline.configure("main")
    pipeline.start_worker()
    reply = new_sid("SM")
    pipeline.twin.seed_message(OURS, ALICE, "On its way", sid=reply)
    for params in (inbound_message(ALICE, OURS, "Where is my order?"),
                   inbound_message(BOB, OURS, "Hello"),
                   inbound_message(ALICE, OURS, "It is late")):
        assert post_signed(pipeline.web, MESSAGING, params).status_code == 200
        pipeline.wait_idle()
    for status in ("sent", "delivered"):
        assert post_signed(pipeline.web, STATUS, message_status(reply, status, OURS, ALICE)).status_code == 200
        pipeline.wait_idle()
    return reply


def _get(web, path: str, **params) -> httpx.Response:
    return web.get(path, params=params, headers=web.admin_headers())


def test_list_filters_by_customer_address_and_time(pipeline) -> None:
    _traffic(pipeline)
    web = pipeline.web
    everyone = _get(web, "/api/v1/conversations").json()["conversations"]
    assert len(everyone) == 2
    alice = _get(web, "/api/v1/conversations", address="555 0111".replace(" ", "")).json()["conversations"]
    assert [p["address"] for p in alice[0]["participants"] if p["type"] == "CUSTOMER"] == [ALICE]
    assert len(alice) == 1
    # the business's own number is no customer: it filters nothing in
    assert _get(web, "/api/v1/conversations", address=OURS).json()["conversations"] == []
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    future = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))
    assert len(_get(web, "/api/v1/conversations", since=past, until=future).json()["conversations"]) == 2
    assert _get(web, "/api/v1/conversations", since=future).json()["conversations"] == []
    assert _get(web, "/api/v1/conversations", until=past).json()["conversations"] == []
    bad = _get(web, "/api/v1/conversations", since="yesterday")
    assert bad.status_code == 400 and bad.json()["error"].startswith("since: not an ISO 8601 time")


def test_timeline_comes_from_v2_in_order_with_statuses(pipeline) -> None:
    reply = _traffic(pipeline)
    web = pipeline.web
    (alice,) = _get(web, "/api/v1/conversations", address=ALICE).json()["conversations"]
    for ref in (alice["id"], alice["twilioConversationId"]):
        r = _get(web, f"/api/v1/conversations/{ref}/communications")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["conversationId"] == alice["id"] and "next" not in body
        comms = body["communications"]
        assert [c["content"]["text"] for c in comms] == ["Where is my order?", "It is late", "On its way"]
        assert [c["author"]["address"] for c in comms] == [ALICE, ALICE, OURS]
        assert comms[-1]["resourceId"] == reply
        assert comms[-1]["recipients"][0]["deliveryStatus"] == "DELIVERED"
    # paging is v2's: one per page, the token carried through
    first = _get(web, f"/api/v1/conversations/{alice['id']}/communications", pageSize=1).json()
    second = _get(web, f"/api/v1/conversations/{alice['id']}/communications", pageSize=1,
                  pageToken=first["next"]).json()
    assert [c["content"]["text"] for c in first["communications"] + second["communications"]] == \
        ["Where is my order?", "It is late"]
    assert _get(web, f"/api/v1/conversations/{alice['id']}/communications", pageSize=0).status_code == 400
    # the bodies went to the page's caller only: not into the web tier's log
    log = web.proc.output()
    assert "Where is my order?" not in log and "On its way" not in log


def test_unknown_conversation_is_404_in_words(pipeline) -> None:
    web = pipeline.web
    for path in ("/api/v1/conversations/tlc_nope", "/api/v1/conversations/tlc_nope/communications"):
        r = _get(web, path)
        assert r.status_code == 404 and r.json() == {"error": "no such conversation"}


def test_v2_errors_while_fetching_the_timeline_are_said(pipeline) -> None:
    _traffic(pipeline)
    # a web tier that gives up quickly, so the transient case answers within the test
    web = pipeline.start_web(**pipeline.env(THREADLINE_MAX_ATTEMPTS="2"))
    (alice,) = _get(web, "/api/v1/conversations", address=ALICE).json()["conversations"]
    path = f"/api/v1/conversations/{alice['id']}/communications"
    pipeline.twin.set_faults(rate_500=1.0, path="/Communications$")
    try:
        r = _get(web, path)
    finally:
        pipeline.twin.clear_faults()
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "v2 did not return the timeline" and r.json()["v2Status"] == 500
    with pipeline.twin.http() as twilio:
        gone = f"/v2/Conversations/{alice['twilioConversationId']}"
        assert twilio.delete(gone).status_code == 202  # an operation: gone once it completes
        deadline = time.monotonic() + 20
        while twilio.get(gone).status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.1)
    r = _get(web, path)
    assert r.status_code == 502 and r.json()["error"] == "v2 has no such conversation"
    assert r.json()["v2Status"] == 404


def test_dead_letters_of_the_key_are_on_the_conversation(pipeline) -> None:
    _traffic(pipeline)
    web = pipeline.web
    # a status callback for a message the Messages API does not have: dead-lettered
    lost = new_sid("SM")
    assert post_signed(web, STATUS, message_status(lost, "delivered", OURS, ALICE)).status_code == 200
    pipeline.wait_idle()
    (dead,) = pipeline.dead_letters()
    (alice,) = _get(web, "/api/v1/conversations", address=ALICE).json()["conversations"]
    (bob,) = _get(web, "/api/v1/conversations", address=BOB).json()["conversations"]
    letters = _get(web, f"/api/v1/conversations/{alice['id']}").json()["deadLetters"]
    assert [d["reason"] for d in letters] == ["message_not_found"] == [dead["reason"]]
    assert _get(web, f"/api/v1/conversations/{bob['id']}").json()["deadLetters"] == []


def test_redis_down_is_503_in_words(start_web) -> None:
    from tests.procs import free_port

    web = start_web(REDIS_URL=f"redis://127.0.0.1:{free_port()}/1")
    for path in ("/api/v1/conversations", "/api/v1/conversations/tlc_x",
                 "/api/v1/conversations/tlc_x/communications"):
        r = _get(web, path)
        assert r.status_code == 503, (path, r.text)
        assert r.json() == {"error": "Redis is unreachable: threadline cannot read its conversations",
                            "redis": "down"}
    for path in ("/api/v1/configurations", "/api/v1/configurations/main"):
        r = _get(web, path)
        assert r.status_code == 503 and r.json()["redis"] == "down", (path, r.text)
    r = web.post("/api/v1/rules/explain", headers=web.admin_headers(),
                 json={"channel": "SMS", "from": ALICE, "to": OURS})
    assert r.status_code == 503 and r.json() == {
        "error": "Redis is unreachable: threadline cannot read its configurations", "redis": "down"}
