"""Lifecycle driven by traffic, the way Twilio drives it: signed webhooks into ``threadline web``,
``threadline worker`` and ``threadline scheduler`` processes, the twin as v2 — on this run's
Redis. A configured minute lasts one second here (THREADLINE_MINUTE_SECONDS=1).

- a reply to an INACTIVE conversation reopens it (PATCH ACTIVE) and its timers count again
  from that communication; after CLOSED the same pair starts a new conversation;
- with SMS and WhatsApp in one conversation, the latest channel deadline governs.
"""
from __future__ import annotations

import time

import pytest

from tests.procs import Proc
from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore

FAST = {"THREADLINE_MINUTE_SECONDS": "1"}


def _configure(p, config_id: str, grouping: str, timeouts: dict[str, tuple[int, int]]) -> None:
    settings = {}
    for ch, (inactive, closed) in timeouts.items():
        addr = f"whatsapp:{OURS}" if ch == "WHATSAPP" else OURS
        settings[ch] = {"captureRules": [{"from": addr, "to": "*"}, {"from": "*", "to": addr}],
                        "statusTimeouts": {"inactive": inactive, "closed": closed}}
    ConfigStore(p.redis).put(parse_configuration({
        "id": config_id, "displayName": config_id, "description": "lifecycle traffic",
        "conversationGroupingType": grouping, "channelSettings": settings,
        "twilioConfigurationId": p.twin.create_configuration(conversationGroupingType=grouping)}))


def _only(p) -> dict:
    convs = p.twin.conversations()
    assert len(convs) == 1, convs
    return convs[0]


def _wait_status(p, status: str, timeout: float) -> float:
    start = time.monotonic()
    p.twin.wait_for(lambda st: any(c["status"] == status for c in st["conversations"]), timeout)
    return time.monotonic() - start


def _send(p, customer: str, to: str = OURS) -> float:
    assert post_signed(p.web, "/webhooks/twilio/messaging",
                       inbound_message(customer, to, "hello")).status_code == 200
    return time.monotonic()


@pytest.mark.slow
def test_reply_reopens_inactive_and_closed_starts_anew(pipeline) -> None:
    p = pipeline
    _configure(p, "reopen", "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE", {"SMS": (2, 6)})
    p.start_worker(**FAST)
    with Proc(["scheduler"], p.env(**FAST)):
        t0 = _send(p, "+14155553100")
        p.twin.wait_for(lambda st: len(st["conversations"]) == 1, 15)
        assert _only(p)["status"] == "ACTIVE"
        _wait_status(p, "INACTIVE", 2 + 3)
        assert time.monotonic() - t0 >= 1.9            # not before its deadline
        t1 = _send(p, "+14155553100")                   # the customer writes again
        _wait_status(p, "ACTIVE", 5)
        conv = _only(p)                                 # the same conversation, reopened
        assert len(p.twin.state()["conversations"][0]["communications"]) == 2
        assert p.counter_reaches("lifecycle_transitions|ACTIVE|traffic", 1) == 1
        # closed counts from the last communication (t1), not from the first one
        _wait_status(p, "CLOSED", 6 + 4)
        assert time.monotonic() - t1 >= 5.9
        assert p.counter_reaches("conversations_closed|reopen|timeout", 1) == 1
        _send(p, "+14155553100")                        # after CLOSED: a new conversation
        p.twin.wait_for(lambda st: len(st["conversations"]) == 2, 15)
        fresh = [c for c in p.twin.conversations() if c["id"] != conv["id"]]
        assert fresh[0]["status"] == "ACTIVE"


@pytest.mark.slow
def test_latest_channel_deadline_governs(pipeline) -> None:
    p = pipeline
    _configure(p, "multi", "GROUP_BY_PARTICIPANT_ADDRESSES",
               {"SMS": (1, 3), "WHATSAPP": (4, 8)})
    p.start_worker(**FAST)
    with Proc(["scheduler"], p.env(**FAST)):
        _send(p, "+14155553200")
        t_wa = _send(p, "whatsapp:+14155553200", f"whatsapp:{OURS}")
        p.twin.wait_for(lambda st: sum(len(c["communications"]) for c in st["conversations"]) == 2, 15)
        _only(p)                                        # one conversation across both channels
        time.sleep(max(0.0, t_wa + 3.3 - time.monotonic()))
        # SMS alone would be INACTIVE (1 s) and CLOSED (3 s) by now; WhatsApp's 4/8 govern
        assert _only(p)["status"] == "ACTIVE"
        _wait_status(p, "INACTIVE", t_wa + 4 + 2.5 - time.monotonic())
        assert time.monotonic() - t_wa >= 3.9
        assert _only(p)["status"] == "INACTIVE"
        _wait_status(p, "CLOSED", t_wa + 8 + 2.5 - time.monotonic())
        assert time.monotonic() - t_wa >= 7.9


def test_scheduler_requeues_a_stranded_shard(pipeline) -> None:
    """A webhook logged, its drain job lost and its drain flag gone: the scheduler enqueues the
    drain (before any worker starts, so the worker's own start-up sweep is not what saves it)."""
    from rq import Queue

    from workers.foundations import keys

    p = pipeline
    _configure(p, "stranded", "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE", {"SMS": (5, 10)})
    _send(p, "+14155553300")
    assert p.backlog() == 1
    p.redis.delete(*[keys.drain_flag(n) for n in range(4)])   # the flag expired …
    Queue(keys.QUEUE, connection=p.redis).empty()             # … and the queued drain was lost
    with Proc(["scheduler"], p.env(**FAST)):
        deadline = time.monotonic() + 10
        while not Queue(keys.QUEUE, connection=p.redis).count:
            assert time.monotonic() < deadline, "the scheduler never re-queued the shard"
            time.sleep(0.1)
        jobs = Queue(keys.QUEUE, connection=p.redis).get_jobs()
        assert [j.func_name for j in jobs] == ["workers.jobs.drain_shard"]
        p.start_worker(**FAST)
        p.wait_idle(15)
        p.twin.wait_for(lambda st: len(st["conversations"]) == 1, 10)


def test_actively_created_conversation_takes_the_customers_later_traffic(pipeline) -> None:
    """The seeds' "outbound and inbound SMS": the business opens a conversation through the
    API first; the customer's reply (a webhook) joins it instead of starting another."""
    from tests.conftest import ADMIN_TOKEN

    p = pipeline
    _configure(p, "active", "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE", {"SMS": (10, 60)})
    r = p.web.client.post("/api/v1/conversations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                          json={"configurationId": "active", "name": "order 1234",
                                "participants": [
                                    {"address": "+14155553400", "channel": "SMS", "type": "CUSTOMER"},
                                    {"address": OURS, "channel": "SMS", "type": "AGENT"}]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "ACTIVE" and created["channels"] == ["SMS"]
    conv = _only(p)
    assert conv["name"] == "order 1234" and len(conv["participants"]) == 2
    p.start_worker()
    _send(p, "+14155553400")                            # the customer answers
    p.twin.wait_for(lambda st: sum(len(c["communications"]) for c in st["conversations"]) == 1, 15)
    joined = _only(p)                                   # no second conversation
    assert joined["id"] == created["twilioConversationId"]
    assert len(joined["participants"]) == 2             # the same two participants
    comm = joined["communications"][0]
    assert comm["author"]["participantId"] in {pp["id"] for pp in joined["participants"]}
