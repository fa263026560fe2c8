"""Passive voice's start and stop (workers.delivery.transcribe): the pure decision, the create
body, the configuration's settings (never sent to v2), and Twilio's answers — the twin over real
HTTP, real Redis — including its refusals, each counted and dead-lettered only where replay helps."""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from workers.capture.configuration import ConfigurationError, parse_configuration
from workers.capture.index import Match
from workers.conversations.calls import CallRecord, CallRegistry
from workers.delivery.transcribe import Transcriber, TranscriptionRefused, decide, form, name_of
from workers.foundations import keys
from workers.twilio.client import V2Client

OURS, CUSTOMER = "+14155550100", "+14155550123"
MATCH = Match("support", 1, 0, (), "from", CUSTOMER, OURS, "AGENT", "rule")


def _record(**kw) -> CallRecord:
    return CallRecord(**{"sid": "CA" + "1" * 32, "from_addr": CUSTOMER, "to_addr": OURS,
                         "direction": "inbound", "parent": None, "call_type": "PSTN", **kw})


def test_decide_starts_only_a_captured_live_root_call_not_routed_or_transcribed() -> None:
    assert decide(_record(), "in-progress", [MATCH]).start
    assert decide(_record(), "ringing", [MATCH]).why == "not_in_progress"
    assert decide(_record(parent="CA" + "2" * 32), "in-progress", [MATCH]).why == "child_leg"
    assert decide(_record(active="configuration:support"), "in-progress", [MATCH]).why == "actively_routed"
    assert decide(_record(foreign="GT" + "3" * 32), "in-progress", [MATCH]).why == "already_transcribed"
    assert decide(_record(rest_state="starting"), "in-progress", [MATCH]).why == "already_started"
    assert decide(_record(), "in-progress", []).why == "no_rule"


def _config(**voice) -> dict:
    return {"id": "support", "displayName": "support", "description": "d",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
            "channelSettings": {"VOICE": {"captureRules": [{"from": "*", "to": OURS}], **voice}}}


def test_the_create_body_carries_the_configuration_settings_and_partial_results_off_by_default(twin) -> None:
    settings = twin.settings(public_url="https://capture.example.com/")
    plain = form(settings, "CA" + "1" * 32, None)
    assert plain == {"Name": name_of("CA" + "1" * 32), "Track": "both_tracks",
                     "StatusCallbackUrl": "https://capture.example.com/webhooks/twilio/voice/transcription",
                     "StatusCallbackMethod": "POST", "PartialResults": "false"}
    cfg = parse_configuration(_config(transcription={"transcriptionEngine": "deepgram",
                                                     "speechModel": "nova-3", "languageCode": "fr-FR"}))
    chosen = form(settings, "CA" + "1" * 32, cfg.channelSettings.VOICE.transcription)
    assert (chosen["TranscriptionEngine"], chosen["SpeechModel"], chosen["LanguageCode"],
            chosen["PartialResults"]) == ("deepgram", "nova-3", "fr-FR", "false")
    # a threadline field: never in the body sent to v2
    assert "transcription" not in cfg.v2_body()["channelSettings"]["VOICE"]
    assert cfg.to_json()["channelSettings"]["VOICE"]["transcription"]["languageCode"] == "fr-FR"


def test_transcription_settings_are_refused_off_voice_and_when_malformed() -> None:
    body = _config()
    body["channelSettings"]["SMS"] = {"captureRules": [], "transcription": {"languageCode": "en-US"}}
    with pytest.raises(ConfigurationError, match="SMS.transcription"):
        parse_configuration(body)
    with pytest.raises(ConfigurationError, match="languageCode"):
        parse_configuration(_config(transcription={"languageCode": "not a language"}))


def _run(redis_url: str, twin, call_sid: str, status: str, **settings) -> tuple:
    async def go():
        r = aioredis.Redis.from_url(redis_url)
        client = V2Client(twin.settings(public_url="http://127.0.0.1:9/", max_attempts=1, **settings))
        calls = CallRegistry(r, 600)
        await calls.set_fields(call_sid, {"f": CUSTOMER, "t": OURS, "d": "inbound", "st": status})
        await r.sadd(keys.CALL_POLL_KNOWN, call_sid)
        counts: Counter = Counter()
        raised = None
        try:
            record = await calls.get(call_sid)
            assert record is not None
            await Transcriber(client.settings, client, calls, r).on_status(
                record, status, twin.account_sid, [MATCH], {}, counts)
        except TranscriptionRefused as exc:
            raised = exc
        finally:
            after = await calls.get(call_sid)
            known = await r.sismember(keys.CALL_POLL_KNOWN, call_sid)
            await client.aclose()
            await r.aclose()
        return counts, raised, after, known
    counts, raised, after, known = asyncio.run(go())
    return counts, raised, (after, known)


def _live_call(twin) -> str:
    twin.give_number(OURS)
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS, holdSeconds=20)["sid"]
    deadline = time.monotonic() + 20
    while next(c for c in twin.state()["calls"] if c["sid"] == sid)["status"] != "in-progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return sid


def test_a_live_call_gets_one_transcription_however_often_it_is_reported(redis_url, twin) -> None:
    sid = _live_call(twin)
    counts, raised, (after, _) = _run(redis_url, twin, sid, "in-progress")
    assert raised is None and counts["transcriptions|started|rest"] == 1
    assert after.rest_state == "started" and after.rest_sid.startswith("GT")
    counts, _, _ = _run(redis_url, twin, sid, "in-progress")          # the poll, a stream event…
    assert counts["transcriptions|started|rest"] == 0
    (t,) = [t for t in twin.state()["transcriptions"] if t["call_sid"] == sid]
    assert t["name"] == name_of(sid)
    counts, _, (after, _) = _run(redis_url, twin, sid, "completed")   # ended: threadline stops it
    assert counts["transcriptions|stopped|call_end"] == 1 and after.rest_state == "stopped"
    assert [t["status"] for t in twin.state()["transcriptions"] if t["call_sid"] == sid] == ["stopped"]


def test_a_call_not_in_progress_is_refused_21220_counted_and_left_to_the_next_poll(redis_url, twin) -> None:
    twin.give_number(OURS)
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS)["sid"]  # over at once: not in progress
    deadline = time.monotonic() + 20
    while next(c for c in twin.state()["calls"] if c["sid"] == sid)["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    counts, raised, (after, known) = _run(redis_url, twin, sid, "in-progress")
    assert raised is None and counts["transcriptions|refused|21220"] == 1
    assert after.rest_state is None          # the claim given back: a later report may start it
    assert not known                         # … and the poll reports the call again while it lives


def test_any_other_refusal_is_counted_and_dead_lettered_with_its_reason(redis_url, twin) -> None:
    sid = _live_call(twin)
    # Wrong credentials: Twilio's 401 (code 20003), not a refusal replay can't help with.
    counts, raised, (after, _) = _run(redis_url, twin, sid, "in-progress", twilio_auth_token="0" * 32)
    assert counts["transcriptions|refused|20003"] == 1
    assert isinstance(raised, TranscriptionRefused) and raised.reason == "transcription_refused"
    assert after.rest_state is None
    assert [t for t in twin.state()["transcriptions"] if t["call_sid"] == sid] == []
