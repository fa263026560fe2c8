"""Nothing delivered twice when a post's answer was lost and its conversation closed before the
redelivery (issue 12; workers.delivery.interrupted).

The soak: a worker was SIGKILLed after v2 accepted its POST …/Communications but before the
lane's writes (the "posted" mark) reached Redis; its entries were redelivered after the
conversation had closed on its timeout, and with no record of the post the engine made a second
conversation and posted the message again there. Here the drain runs in this process on a real
runtime (real Redis, the twin as v2) and the kill is the lane's flush failing after the POST:
v2 holds the communication, the engine has the attempt but no posted mark, the entry stays
pending. The conversation is then closed and the entry redelivered through a real drain.
"""
from __future__ import annotations

import httpx
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.conftest import ADMIN_TOKEN
from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS, SHARDS
from workers.delivery.lane import LaneSession
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime

CUSTOMER = "+14155557411"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _killed_before_flush(monkeypatch) -> None:
    """Every lane's writes are lost, as a SIGKILL between v2's 201 and the flush loses them."""
    async def flush(self: LaneSession) -> None:
        self._pipe = None
        self.lost = True
        raise RedisConnectionError("killed")
    monkeypatch.setattr(LaneSession, "flush", flush)


def _a_reply_sent(p, customer: str) -> str:
    """A reply of ours the Messages API holds, logged through its first status callback."""
    reply = new_sid("SM")
    p.twin.seed_message(OURS, customer, "Your parcel ships today", sid=reply)
    assert post_signed(p.web, "/webhooks/twilio/messaging/status",
                       message_status(reply, "sent", OURS, customer)).status_code == 200
    return reply


def _drain_all(p, rt: Runtime) -> None:
    for n in range(SHARDS):
        if p.redis.xlen(keys.events(n)):
            rt.run(rt.drainer.drain(n))


def _close_the_conversation(p) -> str:
    (conv,) = httpx.get(f"{p.web.url}/api/v1/conversations", headers=AUTH).json()["conversations"]
    r = httpx.patch(f"{p.web.url}/api/v1/conversations/{conv['id']}", headers=AUTH, json={"status": "CLOSED"})
    assert r.status_code == 200, r.text
    return conv["id"]


def _communications(p) -> list[tuple[str, str]]:
    return [(c["id"], m["resourceId"]) for c in p.twin.conversations() for m in c["communications"]]


def test_a_post_redelivered_after_its_conversation_closed_is_found_not_doubled(pipeline, monkeypatch) -> None:
    p = pipeline
    p.configure("main")
    msg = inbound_message(CUSTOMER, OURS, "where is my parcel")
    assert post_signed(p.web, "/webhooks/twilio/messaging", msg).status_code == 200
    rt = Runtime(load_settings(**p.env()))
    try:
        with monkeypatch.context() as m:
            _killed_before_flush(m)
            _drain_all(p, rt)
        (posted,) = _communications(p)
        assert posted[1] == msg["MessageSid"]
        assert p.backlog() == 1, "the entry stays pending, as after a kill"
        conv_id = _close_the_conversation(p)
        assert not p.redis.hget(keys.message_state(msg["MessageSid"]), f"posted:{conv_id}")

        _drain_all(p, rt)  # the redelivery
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _communications(p) == [posted], "the message was posted a second time"
        assert [c["status"] for c in p.twin.conversations()] == ["CLOSED"]
        assert p.counter("uncertain_creates|communication_found") == 1
        assert p.counter("communications|after_close") == 1
        assert p.redis.hget(keys.message_state(msg["MessageSid"]), f"posted:{conv_id}")
    finally:
        rt.close()


def test_status_callbacks_of_an_interrupted_post_after_close_stay_in_its_conversation(
        pipeline, monkeypatch) -> None:
    p = pipeline
    p.configure("main")
    reply = _a_reply_sent(p, CUSTOMER)
    rt = Runtime(load_settings(**p.env()))
    try:
        with monkeypatch.context() as m:
            _killed_before_flush(m)
            _drain_all(p, rt)
        (posted,) = _communications(p)
        _close_the_conversation(p)
        # the reply's later callbacks arrive after the close, behind the redelivered "sent"
        for status in ("delivered", "read"):
            assert post_signed(p.web, "/webhooks/twilio/messaging/status",
                               message_status(reply, status, OURS, CUSTOMER)).status_code == 200

        _drain_all(p, rt)
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _communications(p) == [posted], "a status callback made a second conversation"
        assert len(p.twin.conversations()) == 1
        assert p.counter("uncertain_creates|communication_found") == 1
        assert p.counter("communications|after_close") == 3
    finally:
        rt.close()


def test_an_attempt_v2_never_received_is_posted_as_new_after_the_close(pipeline, monkeypatch) -> None:
    p = pipeline
    p.configure("main")
    first = inbound_message(CUSTOMER, OURS, "first")
    assert post_signed(p.web, "/webhooks/twilio/messaging", first).status_code == 200
    rt = Runtime(load_settings(**p.env()))
    try:
        _drain_all(p, rt)
        second = inbound_message(CUSTOMER, OURS, "second")
        assert post_signed(p.web, "/webhooks/twilio/messaging", second).status_code == 200
        real = rt.delivery.client.create_communication

        async def lost_on_the_way(*args, **kw):
            raise TimeoutError("the POST never left")
        with monkeypatch.context() as m:
            m.setattr(rt.delivery.client, "create_communication", lost_on_the_way)
            _drain_all(p, rt)
        assert rt.delivery.client.create_communication == real
        conv_id = _close_the_conversation(p)
        assert p.redis.hget(keys.message_state(second["MessageSid"]), f"tried:{conv_id}") == b"main"

        _drain_all(p, rt)
        assert p.backlog() == 0 and p.dead_letters() == []
        convs = p.twin.conversations()
        assert len(convs) == 2
        by_conv = {c["status"]: [m["resourceId"] for m in c["communications"]] for c in convs}
        assert by_conv == {"CLOSED": [first["MessageSid"]], "ACTIVE": [second["MessageSid"]]}, by_conv
        assert p.counter("uncertain_creates|communication") == 1
        assert p.counter("uncertain_creates|communication_found") == 0
    finally:
        rt.close()


def test_a_message_tried_with_its_lane_but_dead_lettered_keeps_no_state_for_ever(pipeline) -> None:
    """The lane records its messages' attempts together, before its first POST, with no EXPIRE
    (MessageMemory.attempt); a message of the lane whose own event is then dead-lettered (here a
    status callback the Messages API has no message for) is written by nobody else: the lane's
    flush gives its state the TTL all the same."""
    p = pipeline
    p.configure("main")
    first = inbound_message(CUSTOMER, OURS, "first")
    unknown = new_sid("SM")
    assert post_signed(p.web, "/webhooks/twilio/messaging", first).status_code == 200
    assert post_signed(p.web, "/webhooks/twilio/messaging/status",
                       message_status(unknown, "sent", OURS, CUSTOMER)).status_code == 200
    rt = Runtime(load_settings(**p.env()))
    try:
        _drain_all(p, rt)
    finally:
        rt.close()
    assert [d["reason"] for d in p.dead_letters()] == ["message_not_found"]
    (conv,) = p.twin.conversations()
    state = p.redis.hgetall(keys.message_state(unknown))
    assert [f for f in state if f.startswith(b"tried:")], "tried together with the lane's first post"
    assert 0 < p.redis.ttl(keys.message_state(unknown)) <= 30 * 86400
    assert 0 < p.redis.ttl(keys.message_state(first["MessageSid"])) <= 30 * 86400
