"""Voice end to end: signed call status and real-time transcription callbacks posted to
``threadline web``, drained by a real ``threadline worker`` into the twin."""
from __future__ import annotations

from tests.web_fixtures import call_status, load_fixture, new_sid, post_fixture, post_signed, transcription
from tests.worker_fixtures import OURS
from workers.foundations import keys

CUSTOMER = "+14155550123"
STATUS, WORDS = "/webhooks/twilio/voice/status", "/webhooks/twilio/voice/transcription"


def _post_all(p, deliveries) -> None:
    for d in deliveries:
        assert post_fixture(p.web, d).status_code == 200


def test_fixture_c_inbound_pstn_call(pipeline):
    p = pipeline
    p.configure("support", channels=("VOICE",))
    p.start_worker()
    _post_all(p, load_fixture("c_inbound_pstn_call_transcription"))
    p.wait_idle()
    assert p.dead_letters() == []
    (conv,) = p.twin.conversations()
    comms = sorted(conv["communications"], key=lambda c: c["resourceId"])
    assert [(c["author"]["address"], c["content"]["transcription"]["channel"]) for c in comms] == [
        (CUSTOMER, 0), (OURS, 1), (CUSTOMER, 0)]
    assert all(c["content"]["type"] == "TRANSCRIPTION" and c["content"]["transcription"]["engine"] == "google"
               for c in comms)
    assert comms[0]["content"]["text"] == "Hi, I'm calling about my order forty four eleven."
    assert {pt["type"] for pt in conv["participants"]} == {"CUSTOMER", "AGENT"}
    assert p.counter("voice_events|call_status|progress") == 6
    assert p.counter("voice_events|transcription|posted") == 3
    assert p.counter("events|support|VOICE|captured") == 3


def test_fixture_d_call_types(pipeline):
    """PSTN rules (the default) capture neither the browser nor the SIP call; CLIENT and
    PUBLIC_SIP rules do. The fixture's status callbacks are never communications."""
    p = pipeline
    p.configure("pstn", channels=("VOICE",), ours=CUSTOMER)
    p.start_worker()
    d = load_fixture("d_client_and_sip_calls")
    _post_all(p, d)
    browser, sip = d[0]["params"]["CallSid"], d[6]["params"]["CallSid"]

    def words(call_sid: str, text: str, seq: int) -> None:
        r = post_signed(p.web, WORDS, transcription(call_sid, "GT" + call_sid[2:], "transcription-content", seq,
                                                    transcript=text, track="inbound_track"))
        assert r.status_code == 200
    words(browser, "browser words", 2)
    words(sip, "sip words", 2)
    p.wait_idle()
    assert p.twin.conversations() == [] and p.dead_letters() == []
    assert p.counter("voice_events|transcription|no_rule:CLIENT") == 1
    assert p.counter("voice_events|transcription|no_rule:PUBLIC_SIP") == 1

    from workers.capture.configuration import parse_configuration
    from workers.capture.store import ConfigStore
    ConfigStore(p.redis).put(parse_configuration({
        "id": "agents", "displayName": "agents", "description": "client and sip",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
        "twilioConfigurationId": p.twin.create_configuration(),
        "channelSettings": {"VOICE": {"captureRules": [
            {"from": "client:alice", "to": "*", "metadata": {"callType": "CLIENT"}},
            {"from": "*", "to": "sip:+14155550123@acme.sip.twilio.com", "metadata": {"callType": "SIP"}},
        ]}}}))
    words(browser, "browser words again", 3)
    words(sip, "sip words again", 3)
    p.wait_idle()
    convs = p.twin.conversations()
    assert len(convs) == 2 and p.dead_letters() == []
    by_type = {}
    for conv in convs:
        (comm,) = conv["communications"]
        by_type[comm["author"]["address"]] = {pt["addresses"][0]["address"]: pt["type"]
                                              for pt in conv["participants"]}
    assert by_type["client:alice"] == {"client:alice": "HUMAN_AGENT", CUSTOMER: "CUSTOMER"}
    assert by_type["sip:alice@acme.sip.twilio.com"]["sip:alice@acme.sip.twilio.com"] == "CUSTOMER"


def test_active_routing_and_double_billing_guard(pipeline):
    p = pipeline
    p.configure("support", channels=("VOICE",))
    p.start_worker()
    _post_all(p, load_fixture("c_inbound_pstn_call_transcription")[:6])
    p.wait_idle()
    (conv,) = p.twin.conversations()

    # a call between other parties, sent into that conversation by conversationId
    other = new_sid("CA")
    assert post_signed(p.web, STATUS, call_status(other, "ringing", "+14155550777", OURS)).status_code == 200
    gt = new_sid("GT")
    routed = transcription(other, gt, "transcription-content", 2, transcript="routed words")
    both = {"conversationId": conv["id"], "conversationConfiguration": "no-such-configuration"}
    assert post_signed(p.web, WORDS, routed, query=both).status_code == 200
    # the same call's passive transcription (capture rules would match it) is not captured twice
    passive = transcription(other, new_sid("GT"), "transcription-content", 2, transcript="passive words")
    assert post_signed(p.web, WORDS, passive).status_code == 200
    # a call routed by conversationConfiguration goes through that configuration's grouping
    third = new_sid("CA")
    assert post_signed(p.web, STATUS, call_status(third, "ringing", "+14155550888", OURS)).status_code == 200
    by_cfg = transcription(third, new_sid("GT"), "transcription-content", 2, transcript="by configuration")
    assert post_signed(p.web, WORDS, by_cfg, query={"conversationConfiguration": "support"}).status_code == 200
    p.wait_idle()
    assert p.dead_letters() == []
    convs = {c["id"]: c for c in p.twin.conversations()}
    texts = {c["content"]["text"] for c in convs[conv["id"]]["communications"]}
    assert "routed words" in texts and "passive words" not in texts
    assert len(convs) == 2
    (new,) = [c for cid, c in convs.items() if cid != conv["id"]]
    assert [c["content"]["text"] for c in new["communications"]] == ["by configuration"]
    assert p.counter("voice_events|transcription|actively_routed") == 1


def test_bad_voice_input_is_dead_lettered_with_reasons(pipeline):
    p = pipeline
    p.configure("support", channels=("VOICE",))
    p.start_worker()
    call = new_sid("CA")
    assert post_signed(p.web, STATUS, call_status(call, "ringing", CUSTOMER, OURS)).status_code == 200
    bad_data = transcription(call, new_sid("GT"), "transcription-content", 2, TranscriptionData="{not json",
                             Final="true")
    unknown_call = transcription(new_sid("CA"), new_sid("GT"), "transcription-content", 2, transcript="who?")
    no_conv = transcription(call, new_sid("GT"), "transcription-content", 3, transcript="lost?")
    for params, query in ((bad_data, None), (unknown_call, None),
                          (no_conv, {"conversationId": "conv_conversation_00000000000000000000000000"})):
        assert post_signed(p.web, WORDS, params, query=query).status_code == 200
    p.wait_idle()
    reasons = sorted(d["reason"] for d in p.dead_letters())
    assert reasons == ["malformed_transcription_data", "unknown_call", "unknown_conversation"]
    assert p.twin.conversations() == []
    assert p.counter("dead_letters|malformed_transcription_data") == 1


def test_words_before_their_call_are_kept_and_replayed(pipeline):
    """A final result for a call threadline has not seen yet is dead-lettered (not lost); once
    the call's status callback is in, replaying it through the admin API captures it."""
    p = pipeline
    p.configure("support", channels=("VOICE",))
    p.start_worker()
    call = new_sid("CA")
    early = transcription(call, new_sid("GT"), "transcription-content", 2, transcript="too early")
    assert post_signed(p.web, WORDS, early).status_code == 200
    p.wait_idle()
    (letter,) = p.redis.xrange(keys.DEAD_LETTERS)
    assert letter[1][b"reason"] == b"unknown_call"
    assert post_signed(p.web, STATUS, call_status(call, "ringing", CUSTOMER, OURS)).status_code == 200
    p.wait_idle()
    r = p.web.post(f"/api/v1/dead-letters/{letter[0].decode()}/replay", headers=p.web.admin_headers())
    assert r.status_code == 200, r.text
    p.wait_idle()
    (conv,) = p.twin.conversations()
    assert [c["content"]["text"] for c in conv["communications"]] == ["too early"]
    assert p.dead_letters() == []
