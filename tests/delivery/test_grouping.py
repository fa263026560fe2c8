"""Grouping through the whole path: Orchestrator's grouping example (SMS and WhatsApp part) and
many workers racing on the same customers."""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS

MESSAGING = "/webhooks/twilio/messaging"


def _per_configuration(state) -> Counter:
    return Counter(c["configurationId"] for c in state["conversations"])


def test_grouping_example_sms_and_whatsapp(pipeline):
    """Seed 002: Kiran's SMS and WhatsApp from one number and an SMS from a second number →
    3 conversations under …AND_CHANNEL_TYPE, 2 under …ADDRESSES (each event captured into both)."""
    by_channel = pipeline.configure("by-channel")
    by_address = pipeline.configure("by-address", grouping="GROUP_BY_PARTICIPANT_ADDRESSES")
    kiran, kiran2 = "+15551234567", "+15559876543"
    for frm, to in ((kiran, OURS), (f"whatsapp:{kiran}", f"whatsapp:{OURS}"), (kiran2, OURS),
                    (kiran, OURS)):  # a second SMS joins the first conversation
        assert post_signed(pipeline.web, MESSAGING, inbound_message(frm, to)).status_code == 200
    pipeline.start_worker()
    pipeline.wait_idle()
    state = pipeline.twin.state()
    counts = _per_configuration(state)
    assert counts[by_channel["twilioConfigurationId"]] == 3
    assert counts[by_address["twilioConfigurationId"]] == 2
    merged = [c for c in state["conversations"]
              if c["configurationId"] == by_address["twilioConfigurationId"]
              and len(c["communications"]) == 3]
    assert len(merged) == 1  # SMS, WhatsApp and SMS from Kiran's first number, one conversation
    assert {c["author"]["channel"] for c in merged[0]["communications"]} == {"SMS", "WHATSAPP"}
    assert merged[0]["metadata"]["threadlineGroupingKey"] == f"addr|{OURS}|{kiran}"
    # One participant per party, holding its address on each channel it used.
    by_type = {p["type"]: p for p in merged[0]["participants"]}
    assert len(merged[0]["participants"]) == 2
    assert {(a["channel"], a["address"]) for a in by_type["CUSTOMER"]["addresses"]} == {
        ("SMS", kiran), ("WHATSAPP", f"whatsapp:{kiran}")}
    assert {(a["channel"], a["address"]) for a in by_type["AGENT"]["addresses"]} == {
        ("SMS", OURS), ("WHATSAPP", f"whatsapp:{OURS}")}
    assert pipeline.counter("events|by-address|WHATSAPP|captured") == 1


def test_four_workers_two_hundred_webhooks_twenty_customers(pipeline):
    """Four worker processes, 200 simultaneous webhooks from 20 customers → exactly 20
    conversations per matching configuration, and every message exactly once."""
    a = pipeline.configure("alpha")
    b = pipeline.configure("beta", grouping="GROUP_BY_PARTICIPANT_ADDRESSES")
    pipeline.twin.set_faults(latency_ms=20)
    for _ in range(4):
        pipeline.start_worker()
    customers = [f"+1415555{2000 + i:04d}" for i in range(20)]
    deliveries = [inbound_message(c, OURS, f"message {n}") for n in range(10) for c in customers]

    def send(params):
        return post_signed(pipeline.web, MESSAGING, params).status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        assert set(pool.map(send, deliveries)) == {200}
    pipeline.wait_idle(timeout=60)
    state = pipeline.twin.state()
    counts = _per_configuration(state)
    assert counts[a["twilioConfigurationId"]] == 20 and counts[b["twilioConfigurationId"]] == 20
    sids = Counter(c["resourceId"] for conv in state["conversations"] for c in conv["communications"])
    assert set(sids) == {d["MessageSid"] for d in deliveries} and set(sids.values()) == {2}
    assert pipeline.dead_letters() == []
