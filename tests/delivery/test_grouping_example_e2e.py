"""Orchestrator's grouping example in full (../shared/seeds/002_*.txt), end to end.

Kiran contacts the business four times: an SMS, a voice call and a WhatsApp message from
+15551234567, then an SMS from their other phone +15559876543, linked to the same profile.
Three configurations capture the same traffic (an event that matches several configurations
is captured into each, as Orchestrator does); their grouping types make 4, 2 and 1
conversations. The profile link comes from the local directory (/api/v1/profiles) or from a
Memory store in the twin.
"""
from __future__ import annotations

import pytest

from tests.web_fixtures import call_status, inbound_message, new_sid, post_signed, transcription
from tests.worker_fixtures import OURS

KIRAN, KIRAN_OTHER = "+15551234567", "+15559876543"
GROUPINGS = {
    "by-channel": ("GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE", 4),
    "by-address": ("GROUP_BY_PARTICIPANT_ADDRESSES", 2),
    "by-profile": ("GROUP_BY_PROFILE", 1),
}


def _kiran_contacts_us(p) -> None:
    web = p.web
    assert post_signed(web, "/webhooks/twilio/messaging",
                       inbound_message(KIRAN, OURS, "Where is my order?")).status_code == 200
    call = new_sid("CA")
    assert post_signed(web, "/webhooks/twilio/voice/status",
                       call_status(call, "ringing", KIRAN, OURS)).status_code == 200
    gt = new_sid("GT")
    assert post_signed(web, "/webhooks/twilio/voice/transcription",
                       transcription(call, gt, "transcription-content", 2,
                                     transcript="Calling about my order")).status_code == 200
    assert post_signed(web, "/webhooks/twilio/messaging",
                       inbound_message(f"whatsapp:{KIRAN}", f"whatsapp:{OURS}", "Any news?")).status_code == 200
    assert post_signed(web, "/webhooks/twilio/messaging",
                       inbound_message(KIRAN_OTHER, OURS, "It's Kiran, from my other phone")).status_code == 200


@pytest.mark.parametrize("link", ["local", "memory"])
def test_kiran_makes_4_2_and_1_conversations(pipeline, link):
    p = pipeline
    extra = {}
    if link == "memory":
        store = p.twin.create_memory_store()
        profile = p.twin.create_profile(store, phone=[KIRAN, KIRAN_OTHER])
        extra["memoryStoreId"] = store
    else:
        r = p.web.post("/api/v1/profiles", json={"addresses": [KIRAN, KIRAN_OTHER]},
                       headers=p.web.admin_headers())
        assert r.status_code == 201
        profile = r.json()["id"]
    for config_id, (grouping, _) in GROUPINGS.items():
        p.configure(config_id, grouping=grouping, channels=("SMS", "WHATSAPP", "VOICE"),
                    **(extra if grouping == "GROUP_BY_PROFILE" else {}))
    p.start_worker()
    _kiran_contacts_us(p)
    p.wait_idle()
    assert p.dead_letters() == []

    convs = p.twin.conversations()
    by_config: dict[str, list[dict]] = {}
    for conv in convs:
        by_config.setdefault(conv["metadata"]["threadlineConfiguration"], []).append(conv)
    assert {c: len(v) for c, v in by_config.items()} == {c: n for c, (_, n) in GROUPINGS.items()}

    (everything,) = by_config["by-profile"]
    assert everything["metadata"]["threadlineGroupingKey"] == f"profile|{profile}"
    assert sorted(c["content"]["type"] for c in everything["communications"]) == [
        "TEXT", "TEXT", "TEXT", "TRANSCRIPTION"]
    customers = [pt for pt in everything["participants"] if pt["type"] == "CUSTOMER"]
    if link == "memory":  # the CUSTOMER participants carry the Memory profile id
        assert {pt.get("profileId") for pt in customers} == {profile}
    else:  # local ids are threadline's own and never sent to v2
        assert all("profileId" not in pt for pt in customers)
    channels = sorted(c["author"]["channel"] for c in everything["communications"])
    assert channels == ["SMS", "SMS", "VOICE", "WHATSAPP"]
    by_address = sorted(len(c["communications"]) for c in by_config["by-address"])
    assert by_address == [1, 3]
    for config_id in GROUPINGS:
        assert p.counter(f"events|{config_id}|SMS|captured") == 2
        assert p.counter(f"events|{config_id}|VOICE|captured") == 1
