"""Passive voice in forwarding mode, with the twin playing Twilio.

``threadline connect --forward`` points the numbers at a real ``threadline web``; the operator's
real application (tests/operator_app.py: checks signatures, answers TwiML) keeps answering the
calls. For a call a VOICE rule captures, threadline's answer to the incoming-call webhook is the
application's TwiML with ``<Start><Transcription>`` ahead of it, and the twin (as Twilio) runs
that transcription. The poll of in-progress calls runs too (every 0.5 s), as it does by default,
and must never start a second transcription of such a call.

The untranscribed start of a call is measured on the twin's clock, as for the REST way:
from the incoming-call webhook to the transcription's ``transcription-started`` callback.
"""
from __future__ import annotations

import pytest

from tests.delivery.test_passive_voice_e2e import (  # noqa: F401  (voice: a fixture)
    CUSTOMER,
    UTTERANCES,
    _comms,
    _finals,
    _transcriptions,
    _wait_call_done,
    voice,
)
from tests.operator_app import RELAY_TWIML, VOICE_TWIML, OperatorApp
from tests.twilio.test_connect_e2e import number, threadline
from tests.worker_fixtures import OURS, Pipeline
from workers.delivery.transcribe import name_of
from workers.foundations import keys

OTHER = "+14155550177"    # forwarded, no rule names it
RELAYED = "+14155550188"  # captured, but the application routes its calls actively
TRANSCRIPTION = "/webhooks/twilio/voice/transcription"


@pytest.fixture
def forwarded(voice: Pipeline, operator_app: OperatorApp) -> Pipeline:  # noqa: F811
    """The pipeline with the three numbers connected by ``threadline connect --forward``."""
    _forward(voice, operator_app)
    return voice


def _forward(p: Pipeline, operator_app: OperatorApp) -> None:
    p.configure("support", channels=("VOICE",))
    p.configure("relay", channels=("VOICE",), ours=RELAYED)
    p.twin.give_number(OURS, VoiceUrl=operator_app.url + "/voice")
    p.twin.give_number(OTHER, VoiceUrl=operator_app.url + "/voice")
    p.twin.give_number(RELAYED, VoiceUrl=operator_app.url + "/voice-relay")
    done = threadline(p, "connect", "--forward", "--numbers", f"{OURS},{OTHER},{RELAYED}")
    assert done.returncode == 0, done.stderr
    assert number(p, OURS)["voice_url"] == p.web.url + "/webhooks/twilio/voice"


def _answer(p: Pipeline, call: str) -> str:
    return next(d["answer"] for d in p.twin.deliveries("incoming_call")
                if d["params"]["CallSid"] == call)


def test_a_captured_call_is_transcribed_through_the_apps_twiml_once(
        forwarded: Pipeline, operator_app: OperatorApp) -> None:
    p = forwarded
    call = p.twin.simulate_call(from_=CUSTOMER, to=OURS, utterances=UTTERANCES, holdSeconds=1.5)["sid"]
    _wait_call_done(p, call)
    p.wait_idle()

    # Twilio got the application's TwiML with the transcription ahead of it.
    answer = _answer(p, call)
    assert answer.startswith("<Response><Start><Transcription ")
    assert answer.endswith(VOICE_TWIML.decode()[len("<Response>"):])
    assert [s.signature_ok for s in operator_app.requests("/voice")
            if s.params.get("CallSid") == call] == [True]
    (ours,) = _transcriptions(p, call)  # one: the poll saw the call and left it alone
    assert ours["source"] == "twiml" and ours["name"] == name_of(call)
    assert ours["settings"]["Track"] == "both_tracks"
    assert ours["settings"]["StatusCallbackUrl"] == p.web.url + TRANSCRIPTION
    assert p.counter_reaches("transcriptions|started|twiml", 1) == 1
    assert p.counter("transcriptions|started|rest") == 0
    assert p.counter_reaches("transcriptions|skipped|twiml", 1) >= 1  # the poll reported it
    assert p.redis.hget(keys.call(call), "rtsid").decode() == ours["sid"]

    finals = _finals(p, call)
    assert len(finals) == len(UTTERANCES)
    comms = _comms(p)
    assert sorted(c["content"]["text"] for c in comms) == sorted(u["text"] for u in UTTERANCES)
    speaker = {"inbound_track": (CUSTOMER, 0), "outbound_track": (OURS, 1)}
    for c in comms:
        track = next(tr for _, tr, text in finals if text == c["content"]["text"])
        assert (c["author"]["address"], c["content"]["transcription"]["channel"]) == speaker[track]
        assert c["content"]["type"] == "TRANSCRIPTION" and c["channelId"] == call
    assert len(p.twin.conversations()) == 1
    assert p.dead_letters() == []

    # Twilio retries callbacks: every transcription callback again, signed as Twilio signs.
    before = sorted((c["resourceId"], c["content"]["text"]) for c in _comms(p))
    assert set(p.twin.resend("transcription")) == {200}
    p.wait_idle()
    assert sorted((c["resourceId"], c["content"]["text"]) for c in _comms(p)) == before

    answered = next(d["ts"] for d in p.twin.deliveries("incoming_call") if d["params"]["CallSid"] == call)
    started = next(d["ts"] for d in p.twin.deliveries("transcription")
                   if d["params"]["CallSid"] == call and d["params"]["TranscriptionEvent"] == "transcription-started")
    print(f"\nuntranscribed start (forwarding): {started - answered:.3f} s")
    assert 0 < started - answered < 5.0  # a sanity bound: the source above says which way started it


def test_calls_not_captured_or_routed_actively_get_no_transcription_of_threadlines(
        forwarded: Pipeline, operator_app: OperatorApp) -> None:
    p = forwarded
    ignored = p.twin.simulate_call(from_=CUSTOMER, to=OTHER, utterances=UTTERANCES[:1], holdSeconds=1.5)["sid"]
    active = p.twin.simulate_call(from_=CUSTOMER, to=RELAYED, utterances=UTTERANCES[:1], holdSeconds=1.5)["sid"]
    _wait_call_done(p, ignored)
    _wait_call_done(p, active)
    p.wait_idle()

    assert _answer(p, ignored) == VOICE_TWIML.decode()   # relayed unchanged
    assert _answer(p, active) == RELAY_TWIML.decode()    # routed actively: left alone
    assert _transcriptions(p, ignored) == []
    assert _transcriptions(p, active) == []              # neither TwiML nor the poll started one
    assert p.counter_reaches("transcriptions|skipped|actively_routed", 1) >= 1
    assert p.redis.hget(keys.call(active), "act") == b"twiml"
    assert p.counter("transcriptions|started|twiml") == 0
    assert p.counter("transcriptions|started|rest") == 0
    assert p.dead_letters() == []
