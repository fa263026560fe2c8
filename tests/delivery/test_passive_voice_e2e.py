"""Passive voice with the twin playing Twilio: a captured call is transcribed with no TwiML change.

A real ``threadline web``, ``worker`` and ``scheduler`` (whose leader enqueues the poll of the
account's in-progress calls), the twin as Twilio. The number's own application answers TwiML
that transcribes nothing (``receiver``); only its ``StatusCallback`` points at threadline, and
it hears of the call only at its end — so the poll is what finds the call, and threadline's
``POST …/Calls/{CallSid}/Transcriptions.json`` is what makes the words.

The untranscribed start of a call is measured on the twin's own clock: from the incoming-call
webhook (the call is answered at once) to the ``transcription-started`` callback of threadline's
transcription. ``test_poll_finds_a_captured_call`` prints it.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.procs import Proc
from tests.twin_fixtures import Receiver
from tests.worker_fixtures import OURS, SHARDS, Pipeline
from workers.delivery.transcribe import name_of
from workers.foundations import keys

CUSTOMER = "+14155550123"
OTHER = "+14155550177"  # one of the account's numbers that no rule names
POLL = "0.5"
PLAIN_TWIML = "<Response><Say>Thanks for calling</Say><Pause length=\"1\"/></Response>"


@pytest.fixture
def voice(redis_client, redis_url: str, twin, start_web) -> Iterator[Pipeline]:
    web = start_web(THREADLINE_SHARDS=str(SHARDS), THREADLINE_PUBLIC_URL=None,
                    THREADLINE_TRUSTED_PROXIES="127.0.0.1", **twin.env())
    p = Pipeline(redis_url, redis_client, twin, web, start_web)
    env = {"THREADLINE_PUBLIC_URL": web.url, "THREADLINE_CALL_POLL_SECONDS": POLL}
    p.start_worker(**env)
    scheduler = Proc(["scheduler"], p.env(**env))
    deadline = time.monotonic() + 60
    while not (redis_client.scard("rq:workers:threadline") and redis_client.exists(keys.SCHEDULER_LEASE)):
        assert time.monotonic() < deadline, "worker or scheduler never started"
        time.sleep(0.1)
    try:
        yield p
    finally:
        scheduler.stop()
        for w in p.workers:
            if w.popen.poll() is None:
                w.stop()


def _transcriptions(p: Pipeline, call_sid: str) -> list[dict]:
    return [t for t in p.twin.state()["transcriptions"] if t["call_sid"] == call_sid]


def _wait_call_done(p: Pipeline, call_sid: str, timeout: float = 60.0) -> None:
    """Until the call ended, every transcription of it sent its ``transcription-stopped`` (the
    twin sends a transcription's callbacks in order, so all its words went before), and the log
    is drained."""
    deadline = time.monotonic() + timeout
    while True:
        state = p.twin.state()
        call = next(c for c in state["calls"] if c["sid"] == call_sid)
        sids = {t["sid"] for t in state["transcriptions"] if t["call_sid"] == call_sid}
        stopped = {d["params"]["TranscriptionSid"] for d in state["deliveries"]
                   if d["kind"] == "transcription" and "status" in d
                   and d["params"].get("TranscriptionEvent") == "transcription-stopped"}
        if call["status"] not in ("ringing", "in-progress") and sids <= stopped:
            break
        assert time.monotonic() < deadline, "the call never ended"
        time.sleep(0.1)
    p.wait_idle()


def _finals(p: Pipeline, call_sid: str) -> list[tuple[str, str, str]]:
    """(TranscriptionSid, track, text) of every final result the twin sent for the call, once each."""
    seen = {}
    for d in p.twin.deliveries("transcription"):
        params = d.get("params") or {}
        if params.get("CallSid") == call_sid and params.get("Final") == "true":
            key = (params["TranscriptionSid"], params["SequenceId"])
            seen[key] = (params["TranscriptionSid"], params["Track"],
                         json.loads(params["TranscriptionData"])["transcript"])
    return sorted(seen.values())


def _comms(p: Pipeline) -> list[dict]:
    return [c for conv in p.twin.conversations() for c in conv["communications"]]


UTTERANCES = [
    {"track": "inbound_track", "text": "Hi, my parcel never came", "pauseSeconds": 4.0},
    {"track": "outbound_track", "text": "Sorry to hear that, let me look", "pauseSeconds": 0.3},
    {"track": "inbound_track", "text": "It was order 1234", "pauseSeconds": 0.3},
]


def test_poll_finds_a_captured_call(voice: Pipeline, receiver: Receiver) -> None:
    p = voice
    p.configure("support", channels=("VOICE",))
    receiver.body = PLAIN_TWIML
    p.twin.give_number(OURS, VoiceUrl=receiver.url + "/voice",
                       StatusCallback=p.web.url + "/webhooks/twilio/voice/status")
    call = p.twin.simulate_call(from_=CUSTOMER, to=OURS, utterances=UTTERANCES, holdSeconds=1.0)["sid"]
    _wait_call_done(p, call)
    p.twin.wait_deliveries("call_status", 1)
    p.wait_idle()

    (ours,) = _transcriptions(p, call)  # one, whatever the number of polls and statuses
    assert ours["source"] == "api" and ours["name"] == name_of(call)
    assert ours["settings"]["Track"] == "both_tracks"
    assert ours["settings"]["StatusCallbackUrl"] == p.web.url + "/webhooks/twilio/voice/transcription"
    assert ours["settings"]["PartialResults"] == "false"
    finals = _finals(p, call)
    assert finals, "the transcription heard nothing"
    comms = _comms(p)
    assert sorted(c["content"]["text"] for c in comms) == sorted(text for _, _, text in finals)
    speaker = {"inbound_track": (CUSTOMER, 0), "outbound_track": (OURS, 1)}
    for c in comms:
        track = next(tr for _, tr, text in finals if text == c["content"]["text"])
        assert (c["author"]["address"], c["content"]["transcription"]["channel"]) == speaker[track]
        assert c["content"]["type"] == "TRANSCRIPTION" and c["channelId"] == call
    assert p.dead_letters() == []
    assert p.counter_reaches("transcriptions|started|rest", 1) == 1
    # Twilio retries a callback that failed: every one of them again, signed as Twilio signs.
    before = sorted((c["resourceId"], c["content"]["text"]) for c in _comms(p))
    assert set(p.twin.resend("transcription")) == {200}
    p.wait_idle()
    assert sorted((c["resourceId"], c["content"]["text"]) for c in _comms(p)) == before
    assert p.counter("webhooks|call_status|polled") == 1
    # The untranscribed start of the call, on the twin's clock.
    answered = next(d["ts"] for d in p.twin.deliveries("incoming_call") if d["params"]["CallSid"] == call)
    started = next(d["ts"] for d in p.twin.deliveries("transcription")
                   if d["params"]["CallSid"] == call and d["params"]["TranscriptionEvent"] == "transcription-started")
    print(f"\nuntranscribed start: {started - answered:.2f} s (poll every {POLL} s)")
    assert started > answered


def test_a_call_no_rule_captures_is_not_transcribed(voice: Pipeline, receiver: Receiver) -> None:
    p = voice
    p.configure("support", channels=("VOICE",))
    receiver.body = PLAIN_TWIML
    p.twin.give_number(OURS)
    p.twin.give_number(OTHER, VoiceUrl=receiver.url + "/voice")
    captured = p.twin.simulate_call(from_=CUSTOMER, to=OURS, holdSeconds=3.0, utterances=[
        {"track": "inbound_track", "text": "Hello", "pauseSeconds": 2.0}])["sid"]
    ignored = p.twin.simulate_call(from_=CUSTOMER, to=OTHER, holdSeconds=3.0, utterances=[
        {"track": "inbound_track", "text": "Hello", "pauseSeconds": 2.0}])["sid"]
    _wait_call_done(p, captured)
    _wait_call_done(p, ignored)
    p.wait_idle()
    assert len(_transcriptions(p, captured)) == 1  # the poll ran while the other call was live too
    assert _transcriptions(p, ignored) == []


ACTIVE_TWIML = """<Response><Start><Transcription
 statusCallbackUrl="{web}/webhooks/twilio/voice/transcription?conversationConfiguration=support"
 track="both_tracks"/></Start><Say>Connecting you</Say></Response>"""


def test_a_call_routed_actively_is_never_transcribed_twice(voice: Pipeline, receiver: Receiver) -> None:
    """The application's TwiML routes the call actively: threadline's passive transcription is
    never started (or, if the poll saw the call before the TwiML's first callback, stopped), and
    every utterance is one communication."""
    p = voice
    p.configure("support", channels=("VOICE",))
    receiver.body = ACTIVE_TWIML.format(web=p.web.url)
    p.twin.give_number(OURS, VoiceUrl=receiver.url + "/voice")
    call = p.twin.simulate_call(from_=CUSTOMER, to=OURS, utterances=UTTERANCES, holdSeconds=1.0)["sid"]
    _wait_call_done(p, call)
    p.wait_idle()
    running = _transcriptions(p, call)
    twiml = [t for t in running if t["source"] == "twiml"]
    assert len(twiml) == 1
    for t in running:
        if t["source"] == "api":  # the poll was first: stopped as soon as the TwiML one showed
            assert p.counter_reaches("transcriptions|stopped|threadline", 1) == 1
    texts = sorted(c["content"]["text"] for c in _comms(p))
    assert texts == sorted(u["text"] for u in UTTERANCES)
    assert p.dead_letters() == []
