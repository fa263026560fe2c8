"""A call's transcription is in v2 once when its post's answer was lost (issue 12, voice;
workers.delivery.interrupted).

The medium soak: a worker was SIGKILLed after v2 accepted a transcription's POST …/Communications
but before the lane's bookkeeping reached Redis; its entries were redelivered after the call's
conversation had closed on its timeout, and the transcription was posted into a new conversation
too ("2 transcriptions doubled"). As in test_post_interrupted.py, the drain runs in this process
on a real runtime (real Redis, the twin as v2 over HTTP) and the kill is the lane's flush failing
after the POST: v2 holds the communication, the entry stays pending.
"""
from __future__ import annotations

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.delivery.test_post_interrupted import (
    _close_the_conversation,
    _communications,
    _drain_all,
    _killed_before_flush,
)
from tests.web_fixtures import call_status, new_sid, post_signed, transcription
from tests.worker_fixtures import OURS
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime

CUSTOMER = "+14155557433"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STATUS, WORDS = "/webhooks/twilio/voice/status", "/webhooks/twilio/voice/transcription"


def _a_call_with_words(p, text: str = "I'm calling about my order") -> tuple[str, str, str]:
    """A captured call in progress and one final transcription of it: (CallSid, TranscriptionSid,
    the transcription's resourceId)."""
    call, gt = new_sid("CA"), new_sid("GT")
    assert post_signed(p.web, STATUS, call_status(call, "in-progress", CUSTOMER, OURS)).status_code == 200
    words = transcription(call, gt, "transcription-content", 2, transcript=text)
    assert post_signed(p.web, WORDS, words).status_code == 200
    return call, gt, f"{gt}:2"


def _posted_then_killed(p, rt: Runtime, monkeypatch) -> tuple[str, str]:
    """Drain with every lane's writes lost after v2's 201: (conversation, resourceId) in v2."""
    with monkeypatch.context() as m:
        _killed_before_flush(m)
        _drain_all(p, rt)
    (posted,) = _communications(p)
    return posted


def test_a_transcription_redelivered_after_its_conversation_closed_is_found_not_doubled(
        pipeline, monkeypatch) -> None:
    p = pipeline
    p.configure("support", channels=("VOICE",))
    call, gt, rid = _a_call_with_words(p)
    rt = Runtime(load_settings(**p.env()))
    try:
        posted = _posted_then_killed(p, rt, monkeypatch)
        assert posted[1] == rid
        assert p.backlog() >= 1, "the transcription's entry stays pending, as after a kill"
        conv_id = _close_the_conversation(p)
        assert not p.redis.hget(keys.message_state(rid), f"posted:{conv_id}")

        _drain_all(p, rt)  # the redelivery
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _communications(p) == [posted], "the transcription was posted a second time"
        assert [c["status"] for c in p.twin.conversations()] == ["CLOSED"]
        assert p.counter("uncertain_creates|communication_found") == 1
        assert p.counter("communications|after_close") == 1
        assert p.redis.hget(keys.message_state(rid), f"posted:{conv_id}")

        # the call's later callbacks, after the close: no communication, no new conversation
        assert post_signed(p.web, WORDS, transcription(call, gt, "transcription-stopped", 3)).status_code == 200
        assert post_signed(p.web, STATUS, call_status(call, "completed", CUSTOMER, OURS,
                                                      sequence=3)).status_code == 200
        _drain_all(p, rt)
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _communications(p) == [posted]
        assert len(p.twin.conversations()) == 1
    finally:
        rt.close()


def test_a_transcription_redelivered_while_its_conversation_is_open_is_an_update(
        pipeline, monkeypatch) -> None:
    """v2 upserts by resourceId: the repeat of an interrupted post replaces the communication."""
    p = pipeline
    p.configure("support", channels=("VOICE",))
    _, _, rid = _a_call_with_words(p)
    rt = Runtime(load_settings(**p.env()))
    try:
        posted = _posted_then_killed(p, rt, monkeypatch)
        _drain_all(p, rt)  # the redelivery, the conversation still open
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _communications(p) == [posted], "the repeat made a second communication"
        (conv,) = p.twin.conversations()
        assert conv["status"] != "CLOSED"
        (conv_id,) = [c["id"] for c in httpx.get(f"{p.web.url}/api/v1/conversations",
                                                 headers=AUTH).json()["conversations"]]
        assert p.redis.hget(keys.message_state(rid), f"posted:{conv_id}")
        assert p.counter("uncertain_creates|communication") == 0
    finally:
        rt.close()


def test_a_transcription_v2_never_received_is_posted_as_new_after_the_close(pipeline, monkeypatch) -> None:
    p = pipeline
    p.configure("support", channels=("VOICE",))
    call, gt, first = _a_call_with_words(p, "first words")
    rt = Runtime(load_settings(**p.env()))
    try:
        _drain_all(p, rt)
        words = transcription(call, gt, "transcription-content", 3, transcript="second words")
        assert post_signed(p.web, WORDS, words).status_code == 200

        async def lost_on_the_way(*args, **kw):
            raise TimeoutError("the POST never left")
        with monkeypatch.context() as m:
            m.setattr(rt.delivery.client, "create_communication", lost_on_the_way)
            _drain_all(p, rt)
        conv_id = _close_the_conversation(p)
        assert p.redis.hget(keys.message_state(f"{gt}:3"), f"tried:{conv_id}") == b"support"

        _drain_all(p, rt)
        assert p.backlog() == 0 and p.dead_letters() == []
        by_status = {c["status"]: [m["resourceId"] for m in c["communications"]]
                     for c in p.twin.conversations()}
        assert by_status == {"CLOSED": [first], "ACTIVE": [f"{gt}:3"]}, by_status
        assert p.counter("uncertain_creates|communication") == 1
        assert p.counter("uncertain_creates|communication_found") == 0
    finally:
        rt.close()


def test_a_routed_transcription_redelivered_after_its_conversation_closed_is_not_dead_lettered(
        pipeline, monkeypatch) -> None:
    """A call routed by ``conversationId``: the redelivery of its interrupted post finds the
    conversation closed; it is found there, not dead-lettered as ``conversation_closed``."""
    p = pipeline
    p.configure("support", channels=("VOICE",))
    rt = Runtime(load_settings(**p.env()))
    try:
        _a_call_with_words(p, "opening words")
        _drain_all(p, rt)
        (conv,) = p.twin.conversations()
        call, gt = new_sid("CA"), new_sid("GT")
        assert post_signed(p.web, STATUS, call_status(call, "ringing", "+14155550777", OURS)).status_code == 200
        routed = transcription(call, gt, "transcription-content", 2, transcript="routed words")
        assert post_signed(p.web, WORDS, routed, query={"conversationId": conv["id"]}).status_code == 200
        with monkeypatch.context() as m:
            _killed_before_flush(m)
            _drain_all(p, rt)
        before = sorted(_communications(p))
        assert (conv["id"], f"{gt}:2") in before
        _close_the_conversation(p)

        _drain_all(p, rt)
        assert p.backlog() == 0 and p.dead_letters() == []
        assert sorted(_communications(p)) == before
        assert p.counter("uncertain_creates|communication_found") == 1
    finally:
        rt.close()
