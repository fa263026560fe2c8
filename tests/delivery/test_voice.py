"""Voice capture in process: fixtures c and d through the engine's parser, workers.delivery.voice and the
engine's Delivery, into the twin over real HTTP, on real Redis. (The drain's own dispatch to
workers.delivery.voice is covered end to end in test_voice_e2e.py; here each step's outcome is checked.)"""
from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
import redis.asyncio as aioredis

from tests.conftest import FIXTURES
from workers import stats
from workers.capture.configuration import parse_configuration
from workers.capture.index import RuleIndex
from workers.capture.store import AsyncConfigStore, ConfigStore
from workers.delivery.deliver import Delivery
from workers.delivery.voice import Voice
from workers.eventlog.entries import CALL_STATUS, TRANSCRIPTION, LogEntry
from workers.parse import ParseError, parse
from workers.twilio.client import V2Client

OURS = "+14155550100"
CUSTOMER = "+14155550123"


def _entries(name: str) -> list[LogEntry]:
    out = []
    for i, d in enumerate(json.loads((FIXTURES / name).read_text())):
        path, _, query = d["url"].partition("?")
        kind = TRANSCRIPTION if path.endswith("/transcription") else CALL_STATUS
        q = dict(p.split("=", 1) for p in query.split("&")) if query else {}
        out.append(LogEntry(kind, 1_772_463_846_000 + i, d["params"]["AccountSid"], d["params"], q, f"c{i}"))
    return out


def _configure(redis_client, twin, config_id: str, voice_rules: list[dict], **extra) -> None:
    body = {"id": config_id, "displayName": config_id, "description": "voice test",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
            "channelSettings": {"VOICE": {"captureRules": voice_rules}},
            "twilioConfigurationId": twin.create_configuration(), **extra}
    ConfigStore(redis_client).put(parse_configuration(body))


def _run(redis_url, twin, entries: list[LogEntry]) -> tuple[Counter, list[str]]:
    """Parse, prepare and deliver each entry in log order, as the drain does; returns the
    counters and the dead-letter reasons."""
    async def go():
        r = aioredis.Redis.from_url(redis_url)
        settings = twin.settings(max_attempts=2)
        client = V2Client(settings)
        voice = Voice(Delivery(settings, r, client), r, call_ttl_seconds=600)
        current = await AsyncConfigStore(r).current()
        index, configs = RuleIndex.build(current), {vc.id: vc for vc in current}
        counts, dead = Counter(), []
        try:
            for entry in entries:
                try:
                    prepared = await voice.prepare(parse(entry), index, configs, counts)
                except ParseError as exc:
                    dead.append(exc.reason)
                    continue
                if prepared:
                    event, matches = prepared
                    for m in matches:
                        await voice.deliver(event, configs.get(m.config_id), m, counts)
        finally:
            await client.aclose()
            await r.aclose()
        return counts, dead
    return asyncio.run(go())


def test_fixture_c_becomes_one_conversation_of_three_transcriptions(twin, redis_client, redis_url):
    _configure(redis_client, twin, "support", [{"from": "*", "to": OURS}])
    counts, dead = _run(redis_url, twin, _entries("c_inbound_pstn_call_transcription.json"))
    assert dead == []
    (conv,) = twin.conversations()
    types = {p["addresses"][0]["address"]: p["type"] for p in conv["participants"]}
    assert types == {CUSTOMER: "CUSTOMER", OURS: "AGENT"}
    comms = sorted(conv["communications"], key=lambda c: c["resourceId"])
    assert [c["resourceId"] for c in comms] == [f"GT1db12110484674d81449b743a8027441:{n}" for n in (2, 3, 4)]
    first, second, third = comms
    assert first["content"] == {"type": "TRANSCRIPTION",
                                "text": "Hi, I'm calling about my order forty four eleven.",
                                "transcription": {"channel": 0, "confidence": 0.9412, "engine": "google"}}
    assert first["author"]["address"] == CUSTOMER and first["recipients"][0]["address"] == OURS
    assert second["author"]["address"] == OURS and second["content"]["transcription"]["channel"] == 1
    assert third["occurredAt"].startswith("2026-03-02T15:04:22.059")
    assert counts[stats.field("voice_events", "transcription", "posted")] == 3
    assert counts[stats.field("voice_events", "call_status", "progress")] == 6  # never communications
    # a Twilio retry of a final result updates instead of duplicating (resourceId upsert)
    _run(redis_url, twin, _entries("c_inbound_pstn_call_transcription.json")[5:6])
    assert len(twin.conversations()[0]["communications"]) == 3


def test_call_type_must_match_a_rule(twin, redis_client, redis_url):
    """A CLIENT call is not captured by a PSTN rule (PSTN is the default) and is by a CLIENT one."""
    _configure(redis_client, twin, "pstn-only", [{"from": "*", "to": CUSTOMER}])
    d = _entries("d_client_and_sip_calls.json")
    browser = d[0]  # client:alice → +14155550123, CallSid CA3f38…
    words = LogEntry(TRANSCRIPTION, 1_772_467_800_000, browser.account, {
        "AccountSid": browser.account, "CallSid": browser.params["CallSid"],
        "TranscriptionSid": "GT00000000000000000000000000000001", "TranscriptionEvent": "transcription-content",
        "SequenceId": "2", "Timestamp": "2026-03-02T16:10:10.000Z", "Track": "outbound_track",
        "Final": "true", "TranscriptionData": json.dumps({"transcript": "Hello from the browser", "confidence": 0.9}),
    }, {}, "w")
    counts, dead = _run(redis_url, twin, [browser, words])
    assert twin.conversations() == [] and dead == []
    assert counts[stats.field("voice_events", "transcription", "no_rule:CLIENT")] == 1

    _configure(redis_client, twin, "agents", [{"from": "client:alice", "to": "*", "metadata": {"callType": "CLIENT"}}])
    _run(redis_url, twin, [words])
    (conv,) = twin.conversations()
    types = {p["addresses"][0]["address"]: p["type"] for p in conv["participants"]}
    assert types == {"client:alice": "HUMAN_AGENT", CUSTOMER: "CUSTOMER"}
    (comm,) = conv["communications"]
    # the browser leg is inbound from client:alice: its remote party (inbound_track) is alice,
    # so the outbound track is what was sent to her: the customer's words
    assert comm["author"]["address"] == CUSTOMER


def test_child_leg_and_active_routing(twin, redis_client, redis_url):
    _configure(redis_client, twin, "support", [{"from": "*", "to": OURS}])
    c = _entries("c_inbound_pstn_call_transcription.json")
    _run(redis_url, twin, c[:6])                       # call, child leg, first words
    (conv,) = twin.conversations()
    tw_id = conv["id"]
    # A second call, routed actively by conversationId into that conversation (grouping bypassed)
    # even though its parties would group elsewhere; the same call's passive callback is ignored.
    call = LogEntry(CALL_STATUS, 1, c[0].account, {**c[0].params, "CallSid": "CA" + "2" * 32,
                                                   "From": "+14155550999", "Caller": "+14155550999"}, {}, "x")

    def words(seq: int, query: dict) -> LogEntry:
        return LogEntry(TRANSCRIPTION, 2, c[0].account, {**c[5].params, "CallSid": "CA" + "2" * 32,
                        "TranscriptionSid": "GT" + "2" * 32, "SequenceId": str(seq)}, query, "y")
    counts, dead = _run(redis_url, twin, [call, words(2, {"conversationId": tw_id}), words(3, {})])
    assert dead == []
    (conv,) = twin.conversations()
    rids = {x["resourceId"] for x in conv["communications"]}
    assert f"GT{'2' * 32}:2" in rids and f"GT{'2' * 32}:3" not in rids
    assert counts[stats.field("voice_events", "transcription", "actively_routed")] == 1


@pytest.mark.parametrize("query,reason", [
    ({"conversationId": "conv_conversation_doesnotexist"}, "unknown_conversation"),
    ({"conversationConfiguration": "nope"}, "unknown_configuration"),
    ({"conversationConfiguration": "nope", "conversationId": "conv_x"}, "unknown_conversation"),
])
def test_bad_routes_and_unknown_calls_are_dead_lettered_with_reasons(twin, redis_client, redis_url, query, reason):
    _configure(redis_client, twin, "support", [{"from": "*", "to": OURS}])
    c = _entries("c_inbound_pstn_call_transcription.json")
    routed = LogEntry(TRANSCRIPTION, 3, c[5].account, c[5].params, query, "z")
    stranger = LogEntry(TRANSCRIPTION, 4, c[5].account, {**c[5].params, "CallSid": "CA" + "9" * 32}, {}, "s")
    partial = LogEntry(TRANSCRIPTION, 5, c[5].account, {**c[5].params, "CallSid": "CA" + "9" * 32,
                                                        "Final": "false"}, {}, "p")
    counts, dead = _run(redis_url, twin, [c[0], routed, stranger, partial])
    assert dead == [reason, "unknown_call"]  # the partial of an unknown call is only counted
    assert counts[stats.field("voice_events", "transcription", "unknown_call")] == 2
    assert twin.conversations() == []
