"""Hostile and awkward input to the webhooks, over real HTTP (issue 12, items 7 and 8): each is
answered with a status and a counter, never a 500, and nothing of it is stored.

- JSON nested 1,000 deep to the Event Streams sink: refused before the decoder recurses
  (400 when signed; 403 unsigned, since strangers learn nothing before the signature check).
- A body that trickles in: 408 once THREADLINE_BODY_TIMEOUT_SECONDS have passed.
- An Event Streams batch over 64 KiB: taken (the sink's bound is 1 MiB; form webhooks keep 64 KiB).
"""
from __future__ import annotations

import hashlib
import socket
import time

from tests.web_fixtures import log_entries, new_sid, post_events, public_url, sign, wait_counter

EVENTS = "/webhooks/twilio/events"


def _post_json(web, body: str, signed: bool = True):
    url = public_url(EVENTS, {"bodySHA256": hashlib.sha256(body.encode()).hexdigest()})
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Twilio-Signature"] = sign(url, body)
    return web.client.post(url.split("capture.example.com", 1)[1], content=body.encode(), headers=headers)


def test_deeply_nested_json_is_refused_before_it_is_decoded(start_web, redis_client):
    web = start_web()
    body = "[" * 1000 + "]" * 1000
    signed = _post_json(web, body)
    assert signed.status_code == 400 and "nested" in signed.text
    unsigned = _post_json(web, body, signed=False)
    assert unsigned.status_code == 403
    for r in (signed, unsigned):
        assert "Traceback" not in r.text
    assert wait_counter(redis_client, "webhooks|event_streams|bad_request", 1) == 1
    assert wait_counter(redis_client, "webhooks|event_streams|forged", 1) == 1
    assert "RecursionError" not in web.proc.output()
    assert log_entries(redis_client) == []


def test_a_body_that_trickles_in_gets_408(start_web, redis_client):
    web = start_web(THREADLINE_BODY_TIMEOUT_SECONDS="1")
    host, port = web.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /webhooks/twilio/messaging HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nFrom=%2B1")
        started = time.monotonic()
        answer = s.recv(4096)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert took < 5
    assert wait_counter(redis_client, "webhooks|message|timeout", 1) == 1


def _inbound(n: int) -> dict:
    sid = "SM" + f"{n:032x}"
    return {"specversion": "1.0", "type": "com.twilio.messaging.inbound-message.received",
            "id": new_sid("EZ"), "source": f"/2010-04-01/Accounts/AC{'0' * 32}/Messages/{sid}.json",
            "data": {"messageSid": sid, "from": "+14155550123", "to": "+14155550100",
                     "body": "x" * 300}}


def test_an_event_streams_batch_over_64_kib_is_taken(start_web, redis_client):
    web = start_web()
    batch = [_inbound(n) for n in range(300)]  # ~160 KiB
    r = post_events(web, batch)
    assert r.status_code == 200, r.text
    assert len(log_entries(redis_client)) == 300
