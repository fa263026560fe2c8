"""workers.twilio.upstreams: the record `connect --forward` keeps of a number's own webhooks."""
from __future__ import annotations

import redis

from workers.foundations import keys
from workers.twilio import upstreams
from workers.twilio.upstreams import Upstream

URLS = {"SmsUrl": "https://app.example.com/sms", "SmsMethod": "GET",
        "VoiceUrl": "https://app.example.com/voice", "VoiceMethod": "post",
        "StatusCallback": "", "StatusCallbackMethod": "POST"}


def test_each_role_is_relayed_to_its_own_field_and_method() -> None:
    up = Upstream("+15550100001", "PN" + "0" * 32, "AC" + "1" * 32, URLS)
    assert up.target(upstreams.MESSAGING) == ("https://app.example.com/sms", "GET")
    assert up.target(upstreams.VOICE) == ("https://app.example.com/voice", "POST")
    assert up.target(upstreams.VOICE_STATUS) is None  # the app had no status callback


def test_a_record_survives_its_encoding_and_garbage_reads_as_none() -> None:
    up = Upstream("+15550100001", "PN" + "0" * 32, "AC" + "1" * 32, URLS)
    assert Upstream.from_json(up.to_json()) == up
    for bad in (b"", b"{", b"[]", b'{"number": "+1"}', b'{"number":"+1","number_sid":"PN","account":"AC","urls":[]}'):
        assert Upstream.from_json(bad) is None


def test_record_and_forget_move_the_generation(redis_client: redis.Redis) -> None:
    up = Upstream("+15550100001", "PN" + "0" * 32, "AC" + "1" * 32, URLS)
    assert upstreams.generation(redis_client) == 0 and upstreams.load(redis_client) == {}
    upstreams.record(redis_client, up)
    assert upstreams.generation(redis_client) == 1
    assert upstreams.load(redis_client) == {up.number: up}
    redis_client.hset(keys.UPSTREAMS, "+15550100002", "not json")  # skipped, not fatal
    assert upstreams.load(redis_client) == {up.number: up}
    upstreams.forget(redis_client, up.number)
    assert upstreams.generation(redis_client) == 2 and up.number not in upstreams.load(redis_client)
