"""Every messaging fixture, posted to ``threadline web`` and delivered by a real ``threadline
worker`` into the twin, lands as the right conversations, communications and statuses."""
from __future__ import annotations

import random

from tests.web_fixtures import load_fixture, post_fixture
from tests.worker_fixtures import OURS

MESSAGING = ["a_inbound_sms_reply_status", "b_whatsapp_inbound_outbound_read",
             "f_undelivered_30003", "g_inbound_mms", "h_inbound_sms_get", "i_event_streams_batch"]
# Outbound messages known only through status callbacks: the Messages API has their bodies.
OUTBOUND = [
    ("SM5c23b3bbe96bbcbbc8ca42a6a879881c", OURS, "+14155550123", "Yes, it shipped today"),
    ("SM2687eb77354913427d6c80fee1c6f162", f"whatsapp:{OURS}", "whatsapp:+447700900123", "Which address?"),
    ("SM200e29ea607dce1fb4134938bee18f48", OURS, "+14155550188", "Your code is 1234"),
    ("SM10a2d9e8de1d9b151b31ef8a150fffbe", OURS, "+14155550123", "Pong"),
]


def _seed(twin) -> None:
    for sid, frm, to, body in OUTBOUND:
        twin.seed_message(frm, to, body, sid=sid)


def _by_customer(state) -> dict[tuple[str, str], dict]:
    """Conversations keyed by (channel, customer address), from the CUSTOMER participant."""
    out = {}
    for conv in state["conversations"]:
        customer = next(p for p in conv["participants"] if p["type"] == "CUSTOMER")
        addr = customer["addresses"][0]
        out[(addr["channel"], addr["address"])] = conv
    return out


def _comms(conv) -> dict[str, dict]:
    return {c["resourceId"]: c for c in conv["communications"]}


def _check_landed(state) -> None:
    convs = _by_customer(state)
    assert set(convs) == {("SMS", "+14155550123"), ("WHATSAPP", "whatsapp:+447700900123"),
                          ("SMS", "+14155550188")}
    sms = _comms(convs[("SMS", "+14155550123")])
    assert set(sms) == {"SM7802f3e2531a18915c8f03b2a89bc64e", "SM5c23b3bbe96bbcbbc8ca42a6a879881c",
                        "MM114449bda2ea6cba6777f6197ce26c70", "SM7aa1b6358b289984be726b697a2243eb",
                        "SM1a1e038daea806754635d5ece8e9f01e", "SM10a2d9e8de1d9b151b31ef8a150fffbe"}
    inbound = sms["SM7802f3e2531a18915c8f03b2a89bc64e"]
    assert inbound["content"] == {"type": "TEXT", "text": "Hi, is my order #4411 shipped yet?"}
    assert inbound["author"]["address"] == "+14155550123"
    assert inbound["recipients"][0]["address"] == OURS
    assert inbound["recipients"][0]["deliveryStatus"] == "DELIVERED"
    reply = sms["SM5c23b3bbe96bbcbbc8ca42a6a879881c"]
    assert reply["content"]["text"] == "Yes, it shipped today"  # fetched: callbacks carry no body
    assert reply["author"]["address"] == OURS and reply["recipients"][0]["deliveryStatus"] == "DELIVERED"
    assert sms["MM114449bda2ea6cba6777f6197ce26c70"]["content"]["text"] == "Here is the damaged box"
    assert sms["SM7aa1b6358b289984be726b697a2243eb"]["content"]["text"] == "Don't stop me now & then"
    ping = sms["SM1a1e038daea806754635d5ece8e9f01e"]
    assert ping["content"]["text"] == "Ping" and ping["occurredAt"].startswith("2026-03-02T19:00:00.12")
    assert sms["SM10a2d9e8de1d9b151b31ef8a150fffbe"]["recipients"][0]["deliveryStatus"] == "DELIVERED"
    for comm in sms.values():  # author and recipients carry participant ids
        assert comm["author"]["participantId"] and comm["recipients"][0]["participantId"]

    wa = _comms(convs[("WHATSAPP", "whatsapp:+447700900123")])
    assert set(wa) == {"SM458abbecfd8033f2477a3bd85c786605", "SM2687eb77354913427d6c80fee1c6f162",
                       "SM2e279947a83912f76fa6acdace2bbc09"}
    read = wa["SM2687eb77354913427d6c80fee1c6f162"]
    assert read["recipients"][0] == {**read["recipients"][0], "address": "whatsapp:+447700900123",
                                     "channel": "WHATSAPP", "deliveryStatus": "READ"}
    failed = _comms(convs[("SMS", "+14155550188")])["SM200e29ea607dce1fb4134938bee18f48"]
    assert failed["recipients"][0]["deliveryStatus"] == "FAILED"
    assert failed["content"]["text"] == "Your code is 1234"


def test_every_messaging_fixture_lands(pipeline):
    pipeline.configure("main")
    _seed(pipeline.twin)
    pipeline.start_worker()
    for name in MESSAGING:
        for delivery in load_fixture(name):
            assert post_fixture(pipeline.web, delivery).status_code == 200
    pipeline.wait_idle()
    state = pipeline.twin.state()
    _check_landed(state)
    assert pipeline.dead_letters() == []
    conv = state["conversations"][0]
    assert conv["configurationId"] and conv["metadata"]["threadlineConfiguration"] == "main"
    assert pipeline.counter("conversations_created|main") == 3
    # Each body fetched once, although several callbacks asked for it.
    routes = pipeline.twin.counts()["routes"]
    fetches = sum(sum(v.values()) for k, v in routes.items() if k.startswith("GET") and "/Messages/" in k)
    assert fetches == len(OUTBOUND)


def test_three_times_shuffled_gives_the_same_result(pipeline):
    """Each delivery three times, the whole scenario shuffled: same conversations and
    communications, none twice, statuses final (never moved backwards)."""
    pipeline.configure("main")
    _seed(pipeline.twin)
    deliveries = [d for name in MESSAGING for d in load_fixture(name)] * 3
    random.Random(7).shuffle(deliveries)
    for delivery in deliveries:
        assert post_fixture(pipeline.web, delivery).status_code == 200
    pipeline.start_worker()
    pipeline.wait_idle()
    state = pipeline.twin.state()
    _check_landed(state)
    for conv in state["conversations"]:
        ids = [c["resourceId"] for c in conv["communications"]]
        assert len(ids) == len(set(ids))
