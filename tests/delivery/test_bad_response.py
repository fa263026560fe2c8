"""A v2 answer missing the fields it must have is dead-lettered, never a crash.

The twin always answers complete bodies, so this test puts httpx's MockTransport in the twin's
place (Twilio's side only: threadline's own drain, delivery, store and Redis are all real)."""
from __future__ import annotations

import httpx

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from workers import eventlog
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore
from workers.conversations.store import CLOSED
from workers.delivery.deliver import Delivery
from workers.eventlog.entries import MESSAGE, LogEntry, dedupe_key, shard_of
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime
from workers.twilio.client import V2Client

OURS = "+14155550100"


def test_created_conversation_without_an_id_is_dead_lettered(redis_client, redis_url):
    settings = load_settings(redis_url=redis_url, shards=4, twilio_account_sid=ACCOUNT_SID,
                             twilio_auth_token=AUTH_TOKEN, twilio_base_url="http://twilio.invalid",
                             max_attempts=2)
    ConfigStore(redis_client).put(parse_configuration({
        "id": "main", "displayName": "main", "description": "t", "twilioConfigurationId": "conv_configuration_x",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
        "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": OURS}]}}}))
    params = {"MessageSid": "SM" + "1" * 32, "AccountSid": ACCOUNT_SID, "From": "+14155550123",
              "To": OURS, "Body": "hi"}
    shard = shard_of(MESSAGE, params, 4)
    eventlog.append(redis_client, LogEntry(MESSAGE, 1, ACCOUNT_SID, params),
                    dedupe_key(MESSAGE, params), shard, settings)
    seen = []

    def twilio(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(201, json={"status": "ACTIVE"})  # no "id"

    rt = Runtime(settings)
    try:
        rt.client = V2Client(settings, transport=httpx.MockTransport(twilio))
        rt.delivery = Delivery(settings, rt.redis, rt.client)
        report = rt.run(rt.drainer.drain(shard))
        assert report.dead == 1 and report.acked == 0
        assert seen == ["/v2/Conversations"]
        ((_id, fields),) = redis_client.xrange(keys.DEAD_LETTERS)
        assert fields[b"reason"] == b"v2_bad_response" and b"missing id" in fields[b"error"]
        assert redis_client.xlen(keys.events(shard)) == 0  # acknowledged: the shard moves on
        record = rt.run(rt.delivery.store.list())[0]
        assert record.status == CLOSED and record.closed_reason == "create_failed"
    finally:
        rt.close()
