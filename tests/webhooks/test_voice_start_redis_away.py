"""Forwarding's passive voice when Redis goes away: the application's TwiML goes back unchanged.

The relay records its decision on the call before answering (so the REST poll never starts a
second transcription); when that write cannot be made, it adds no transcription and counts
``transcriptions|failed|unrecorded`` — flushed once Redis is back. A redis-server of the test's
own (tests/private_redis.py), stopped and started again; the operator's real application.
"""
from __future__ import annotations

from pathlib import Path

import redis

from tests.conftest import ACCOUNT_SID
from tests.operator_app import VOICE_TWIML, OperatorApp
from tests.private_redis import PrivateRedis
from tests.web_fixtures import call_status, new_sid, post_signed, wait_counter
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys
from workers.twilio import upstreams
from workers.twilio.upstreams import Upstream

CUSTOMER, OURS = "+15557654321", "+15550100042"


def _call() -> dict[str, str]:
    params = call_status(new_sid("CA"), "ringing", CUSTOMER, OURS)
    del params["SequenceNumber"], params["CallbackSource"], params["Timestamp"]
    return params


def test_no_transcription_is_added_when_the_call_cannot_be_recorded(
        tmp_path: Path, start_web, operator_app: OperatorApp) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    client = redis.Redis.from_url(server.url)
    try:
        upstreams.record(client, Upstream(OURS, new_sid("PN"), ACCOUNT_SID, {
            "SmsUrl": "", "SmsMethod": "POST", "VoiceUrl": operator_app.url + "/voice",
            "VoiceMethod": "POST", "StatusCallback": "", "StatusCallbackMethod": "POST"}))
        ConfigStore(client).put(parse_configuration({
            "id": "voice", "displayName": "voice", "description": "",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
            "channelSettings": {"VOICE": {"captureRules": [{"from": "*", "to": OURS}]}}}))
        web = start_web(REDIS_URL=server.url)
        first = _call()
        r = post_signed(web, "/webhooks/twilio/voice", first)
        assert r.status_code == 200 and r.text.startswith("<Response><Start><Transcription ")

        assert server.proc is not None
        server.proc.kill()
        server.proc.wait(10)
        away = _call()
        r = post_signed(web, "/webhooks/twilio/voice", away)
        assert r.status_code == 200 and r.content == VOICE_TWIML  # the app's answer, as it came
        assert [s.signature_ok for s in operator_app.requests("/voice")
                if s.params.get("CallSid") == away["CallSid"]] == [True]

        server.start()
        assert wait_counter(client, "transcriptions|failed|unrecorded", 1, timeout=15) == 1
        assert wait_counter(client, "transcriptions|started|twiml", 1) == 1
        assert client.hget(keys.call(first["CallSid"]), "rts") == b"twiml"
        assert client.exists(keys.call(away["CallSid"])) == 0
    finally:
        client.close()
        server.stop()
