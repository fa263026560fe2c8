"""A post interrupted by a kill, redelivered after its conversation closed *and* after another
address of the same grouping key opened a newer one (issue 12, the GROUP_BY_PROFILE corner).

Under GROUP_BY_PROFILE one conversation is shared by every address pair of a Memory profile, and
the pairs are drained by different shards. The sequence: customer number A writes, the post
into conversation C1 goes through in v2 but the lane's bookkeeping is lost (a SIGKILL; simulated
as in test_post_interrupted.py), so A's entry stays pending; C1 closes; the customer's other
number B writes and opens C2 for the same profile; then A's entry is redelivered. The message is
in C1 and must stay there only: not posted again into C2, not skipped, not dead-lettered. The
same for a status callback of a reply whose post was interrupted.
"""
from __future__ import annotations

import httpx
import pytest

from tests.delivery.test_post_interrupted import _a_reply_sent, _killed_before_flush
from tests.web_fixtures import call_status, inbound_message, message_status, new_sid, post_signed, transcription
from tests.worker_fixtures import OURS, SHARDS
from workers.foundations import keys
from workers.foundations.addresses import shard_of_key, shard_of_pair
from workers.foundations.settings import load_settings
from workers.jobs import Runtime


def _two_numbers() -> tuple[str, str]:
    """Two numbers of one customer whose traffic with OURS lands on different shards."""
    n = 0
    while True:
        a, b = f"+1555130{n:04d}", f"+1555930{n:04d}"
        if shard_of_pair(a, OURS, SHARDS) != shard_of_pair(b, OURS, SHARDS):
            return a, b
        n += 1


def _profile_config(p) -> tuple[str, str]:
    a, b = _two_numbers()
    store = p.twin.create_memory_store()
    p.twin.create_profile(store, phone=[a, b])
    p.configure("main", grouping="GROUP_BY_PROFILE", channels=("SMS",), memoryStoreId=store)
    return a, b


def _drain(p, rt: Runtime, number: str) -> None:
    rt.run(rt.drainer.drain(shard_of_pair(number, OURS, SHARDS)))


def _where(p) -> dict[str, list[str]]:
    """resourceId → the v2 conversations holding it (as many as it is in)."""
    out: dict[str, list[str]] = {}
    for c in p.twin.conversations():
        for m in c["communications"]:
            out.setdefault(m["resourceId"], []).append(c["id"])
    return out


def _close(p, tw_id: str) -> None:
    """C1 closes (the lifecycle's timeout, or Twilio's side): closed here through the admin API."""
    conv_id = p.redis.hget(keys.CONVERSATION_TWILIO_IDS, tw_id)
    r = httpx.patch(f"{p.web.url}/api/v1/conversations/{conv_id.decode()}", json={"status": "CLOSED"},
                    headers=p.web.admin_headers())
    assert r.status_code == 200, r.text


def _killed_after_flush(m) -> None:
    """The lane's writes land (the message is marked posted) but the drain's acknowledgement
    does not, as a SIGKILL between the two leaves them."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from workers.delivery.commit import FencedCommit

    async def killed(*args, **kw):
        raise RedisConnectionError("killed")
    m.setattr(FencedCommit, "commit", killed)


def _interrupted_then_a_newer_conversation(p, rt: Runtime, monkeypatch, kill, a: str, b: str) -> tuple[str, str, str]:
    """A's logged events drained with ``kill`` (its entry stays pending), their conversation C1
    closed, then B's message opens the profile's newer C2: (C1, C2, B's MessageSid)."""
    with monkeypatch.context() as m:
        kill(m)
        _drain(p, rt, a)
    ((c1,),) = _where(p).values()
    assert p.backlog() == 1, "A's entry stays pending, as after a kill"
    _close(p, c1)
    second = inbound_message(b, OURS, "from my other phone")
    assert post_signed(p.web, "/webhooks/twilio/messaging", second).status_code == 200
    _drain(p, rt, b)
    (c2,) = _where(p)[second["MessageSid"]]
    assert c2 != c1
    return c1, c2, second["MessageSid"]


@pytest.mark.parametrize("kill, looked_up", [(_killed_before_flush, 1), (_killed_after_flush, 0)],
                         ids=["killed-before-the-lanes-flush", "killed-before-the-acknowledgement"])
def test_a_redelivered_post_stays_in_its_closed_conversation_when_the_profile_has_a_newer_one(
        pipeline, monkeypatch, kill, looked_up: int) -> None:
    """Killed before the lane's flush, the message is only *tried* in C1 and is found there in v2
    by its resourceId; killed after it but before the drain's acknowledgement, its *posted* mark
    says so (no lookup). Either way not in the profile's newer C2."""
    p = pipeline
    a, b = _profile_config(p)
    first = inbound_message(a, OURS, "where is my parcel")
    assert post_signed(p.web, "/webhooks/twilio/messaging", first).status_code == 200
    rt = Runtime(load_settings(**p.env()))
    try:
        c1, c2, second = _interrupted_then_a_newer_conversation(p, rt, monkeypatch, kill, a, b)
        _drain(p, rt, a)  # the redelivery of A's interrupted post
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _where(p) == {first["MessageSid"]: [c1], second: [c2]}
        assert p.counter("uncertain_creates|communication") == looked_up
        assert p.counter("uncertain_creates|communication_found") == looked_up
        assert p.counter("communications|after_close") == 1
    finally:
        rt.close()


def test_status_callbacks_of_an_interrupted_reply_stay_in_its_closed_conversation(
        pipeline, monkeypatch) -> None:
    p = pipeline
    a, b = _profile_config(p)
    reply = _a_reply_sent(p, a)
    rt = Runtime(load_settings(**p.env()))
    try:
        c1, c2, second = _interrupted_then_a_newer_conversation(p, rt, monkeypatch, _killed_before_flush, a, b)
        for status in ("delivered", "read"):  # the reply's later callbacks, after the close
            assert post_signed(p.web, "/webhooks/twilio/messaging/status",
                               message_status(reply, status, OURS, a)).status_code == 200
        _drain(p, rt, a)
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _where(p) == {reply: [c1], second: [c2]}
        assert p.counter("uncertain_creates|communication_found") == 1
        assert p.counter("communications|after_close") == 3
    finally:
        rt.close()


def test_a_redelivered_post_stays_in_its_closed_conversation_when_a_call_opened_a_newer_one(
        pipeline, monkeypatch) -> None:
    """GROUP_BY_PARTICIPANT_ADDRESSES: one key for the pair's SMS and calls, and a call's events
    are sharded by the call, not the pair — so a call can open the key's next conversation while
    the pair's interrupted post still waits for its redelivery."""
    p = pipeline
    customer = "+14155557412"
    p.configure("main", grouping="GROUP_BY_PARTICIPANT_ADDRESSES", channels=("SMS", "VOICE"))
    sms_shard = shard_of_pair(customer, OURS, SHARDS)
    call = next(sid for sid in (new_sid("CA") for _ in range(100))
                if shard_of_key(f"call:{sid}", SHARDS) != sms_shard)
    first = inbound_message(customer, OURS, "where is my parcel")
    assert post_signed(p.web, "/webhooks/twilio/messaging", first).status_code == 200
    rt = Runtime(load_settings(**p.env()))
    try:
        with monkeypatch.context() as m:
            _killed_before_flush(m)
            rt.run(rt.drainer.drain(sms_shard))
        ((c1,),) = _where(p).values()
        _close(p, c1)
        for params, path in ((call_status(call, "in-progress", customer, OURS), "status"),
                             (transcription(call, new_sid("GT"), "transcription-content", 2,
                                            transcript="calling about my parcel"), "transcription")):
            assert post_signed(p.web, f"/webhooks/twilio/voice/{path}", params).status_code == 200
        rt.run(rt.drainer.drain(shard_of_key(f"call:{call}", SHARDS)))  # the call opens C2
        c2s = [c["id"] for c in p.twin.conversations() if c["id"] != c1]
        assert len(c2s) == 1 and _where(p)[first["MessageSid"]] == [c1]

        rt.run(rt.drainer.drain(sms_shard))  # the redelivery of the interrupted post
        assert p.backlog() == 0 and p.dead_letters() == []
        assert _where(p)[first["MessageSid"]] == [c1], "the message was posted a second time"
        assert p.counter("uncertain_creates|communication_found") == 1
    finally:
        rt.close()
