"""A worker killed mid-batch, and a conversation closed behind threadline's back."""
from __future__ import annotations

import time
from collections import Counter

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS

MESSAGING = "/webhooks/twilio/messaging"


def _comm_count(twin) -> int:
    return sum(len(c["communications"]) for c in twin.state()["conversations"])


def test_sigkill_mid_batch_then_restart_delivers_everything_once(pipeline):
    pipeline.configure("main")
    customers = [f"+1415555{4000 + i:04d}" for i in range(10)]
    sids = []
    for c in customers:  # conversations first, so the kill lands among communications
        params = inbound_message(c, OURS, "hello")
        sids.append(params["MessageSid"])
        post_signed(pipeline.web, MESSAGING, params)
    first = pipeline.start_worker()
    pipeline.wait_idle()
    pipeline.twin.set_faults(latency_ms=100, path="/Communications")
    for n in range(10):
        for c in customers:
            params = inbound_message(c, OURS, f"message {n}")
            sids.append(params["MessageSid"])
            post_signed(pipeline.web, MESSAGING, params)
    deadline = time.monotonic() + 20
    while _comm_count(pipeline.twin) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()  # SIGKILL, mid-batch: entries read, some delivered, none of them acknowledged
    done_at_kill = _comm_count(pipeline.twin)
    assert 10 < done_at_kill < len(sids), "the kill must land mid-batch"
    pipeline.start_worker()
    pipeline.wait_idle(timeout=60)
    state = pipeline.twin.state()
    assert len(state["conversations"]) == len(customers)
    delivered = Counter(c["resourceId"] for conv in state["conversations"] for c in conv["communications"])
    assert set(delivered) == set(sids) and set(delivered.values()) == {1}
    assert pipeline.dead_letters() == []


def test_conversation_closed_on_twilio_starts_a_new_one(pipeline):
    pipeline.configure("main")
    pipeline.start_worker()
    customer = "+14155550144"
    post_signed(pipeline.web, MESSAGING, inbound_message(customer, OURS, "first"))
    pipeline.wait_idle()
    (old,) = pipeline.twin.conversations()
    with pipeline.twin.http() as http:  # someone closes it through the API, not threadline
        http.put(f"/v2/Conversations/{old['id']}", json={"status": "CLOSED"}).raise_for_status()
    later = inbound_message(customer, OURS, "second")
    post_signed(pipeline.web, MESSAGING, later)
    pipeline.wait_idle()
    convs = {c["id"]: c for c in pipeline.twin.conversations()}
    assert len(convs) == 2 and convs[old["id"]]["status"] == "CLOSED"
    (new,) = [c for c in convs.values() if c["id"] != old["id"]]
    assert new["status"] == "ACTIVE"
    assert [c["resourceId"] for c in new["communications"]] == [later["MessageSid"]]
    assert pipeline.counter("conversations_closed|main|twilio") == 1
    assert pipeline.counter("conversations_created|main") == 2
