"""A Redis that hangs (SIGSTOP: the socket stays open, nothing answers): the group commit gives
up after service.webhooks.appender.BATCH_TIMEOUT_SECONDS, the webhook gets 503 (counted
``unavailable``), the web process takes webhooks again once Redis answers, and Twilio's retry
of the refused one is stored once.

The appender's own client has no per-call socket timeout (it bounds each batch instead), so
this is the test that a hung server still ends in an answer rather than a hung request."""
from __future__ import annotations

import time

from service.webhooks.appender import BATCH_TIMEOUT_SECONDS
from tests.web_fixtures import counters, inbound_message, log_entries, post_signed

MSG = "/webhooks/twilio/messaging"


def test_a_hung_redis_is_503_within_the_batch_timeout_and_recovers(start_web, start_valkey):
    server = start_valkey(aof=False)
    web = start_web(REDIS_URL=server.url)
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 200
    server.pause()
    try:
        started = time.monotonic()
        delivery = inbound_message("+14155550123", "+14155550100")
        hung = post_signed(web, MSG, delivery)
        waited = time.monotonic() - started
    finally:
        server.resume()
    assert hung.status_code == 503 and hung.headers["Retry-After"] == "5"
    assert BATCH_TIMEOUT_SECONDS - 0.5 <= waited <= BATCH_TIMEOUT_SECONDS + 3
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 200
    client = server.client()
    deadline = time.monotonic() + 10
    while counters(client).get("webhooks|message|unavailable", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    # The refused delivery's append was written before the timeout: Redis ran it once it woke,
    # so Twilio's retry of it (the 503 asks for one) is a duplicate, stored once.
    assert post_signed(web, MSG, delivery).status_code == 200
    c = counters(client)
    assert c["webhooks|message|unavailable"] == 1
    assert c["webhooks|message|accepted"] == 3 and c["webhooks|message|duplicate"] == 1
    assert len(log_entries(client)) == 3
