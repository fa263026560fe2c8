"""A timeout never overtakes events already in the log (issue 12: the watermark).

Found by the medium soak once transitions were on time: a status callback answered 200 and
appended *before* its conversation's close deadline, but processed a few seconds after it (the
log runs behind under load), reached v2 after the close — and v2 takes no update of a CLOSED
conversation, so the status was left behind (1–4 per ~2,700 statuses). A timer now applies only
once the log's watermark (its oldest unprocessed entry, :mod:`workers.lifecycle.watermark`) has
passed its deadline — or once it has been held ``THREADLINE_LIFECYCLE_MAX_HOLD_SECONDS``.

Real processes: ``threadline web``, ``threadline worker`` (drains and the lifecycle applier),
the twin as Twilio over HTTP, one Redis.
"""
from __future__ import annotations

import time

from tests.lifecycle.test_restart import _lines, _patches
from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS, SHARDS, Pipeline
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys
from workers.foundations.addresses import shard_of_pair
from workers.lifecycle.watermark import OTHER_SHARDS_GRACE

CUSTOMER = "+14155557300"
STATUS = "/webhooks/twilio/messaging/status"


def _configure(p: Pipeline, closed: int) -> None:
    """SMS both ways of OURS; ``closed`` configured minutes (of 1 s) after the last message."""
    sms = {"captureRules": [{"from": OURS, "to": "*"}, {"from": "*", "to": OURS}],
           "statusTimeouts": {"inactive": closed, "closed": closed}}
    body = {"id": "main", "displayName": "main", "description": "watermark",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
            "channelSettings": {"SMS": sms},
            "twilioConfigurationId": p.twin.create_configuration()}
    ConfigStore(p.redis).put(parse_configuration(body))


def _only_timer(p: Pipeline) -> float:
    timers = p.redis.zrange(keys.TIMERS, 0, -1, withscores=True)
    assert len(timers) == 1, timers
    return float(timers[0][1])


def _wait_closed(p: Pipeline, timeout: float) -> float:
    """When (time.time()) the twin first showed a CLOSED conversation."""
    deadline = time.monotonic() + timeout
    while not p.twin.conversations("CLOSED"):
        assert time.monotonic() < deadline, "no conversation closed\n" + p.workers[-1].output()[-3000:]
        time.sleep(0.05)
    return time.time()


def test_a_status_appended_before_the_close_deadline_lands_before_the_close(pipeline) -> None:
    p = pipeline
    _configure(p, closed=4)
    reply = new_sid("SM")
    p.twin.seed_message(OURS, CUSTOMER, "reply", sid=reply)
    first = p.start_worker(THREADLINE_MINUTE_SECONDS="1")
    assert post_signed(p.web, STATUS, message_status(reply, "sent", OURS, CUSTOMER)).status_code == 200
    p.twin.wait_for(lambda st: any(c["communications"] for c in st["conversations"]), timeout=15)
    p.wait_idle()
    due = _only_timer(p)
    first.stop()

    # answered 200 and in the log before the deadline; no worker processes it until after it
    assert post_signed(p.web, STATUS, message_status(reply, "delivered", OURS, CUSTOMER)).status_code == 200
    assert p.backlog() == 1 and time.time() < due - 0.5
    start_line = _lines(p.twin)
    p.twin.set_faults(latency_ms=2500, path=r"/Communications$")  # the drain is slow, a PATCH is not
    time.sleep(max(0.0, due + 1.0 - time.time()))
    p.start_worker(THREADLINE_MINUTE_SECONDS="1")

    _wait_closed(p, timeout=20)
    p.wait_idle()
    (conv,) = p.twin.conversations()
    (comm,) = conv["communications"]
    assert comm["recipients"][0]["deliveryStatus"] == "DELIVERED", "the status was left behind the close"
    assert [s for (_, s) in _patches(p.twin, start_line)] == ["CLOSED"]
    assert p.dead_letters() == []
    # the close waited for the log: timer_lag (from the deadline) counts the wait, lifecycle_lag
    # (from when it could apply) does not — the soak judges the lifecycle by the latter
    assert p.counter_reaches("lifecycle_lag|CLOSED|count", 1) == 1
    assert p.counter("timer_lag|CLOSED|count") == 1
    waited = p.counter("timer_lag|CLOSED|sum") - p.counter("lifecycle_lag|CLOSED|sum")
    assert waited >= 500, f"the close's wait for the log ({waited} ms) was counted as lifecycle lag"
    assert not p.redis.hexists(keys.LIFECYCLE_HELD, conv["metadata"].get("threadlineConversation", "")) \
        and p.redis.hlen(keys.LIFECYCLE_HELD) == 0


def _customer_on(shard: int, same: bool) -> str:
    """A customer whose pair with OURS is on ``shard`` (``same``) or on another one."""
    for i in range(200):
        c = f"+1415555{8000 + i}"
        if (shard_of_pair(c, OURS, SHARDS) == shard) == same and c != CUSTOMER:
            return c
    raise AssertionError("no such customer")


def _stuck_entry_then_conversation(p: Pipeline, *, same_shard: bool, hold_s: float, max_hold: int) -> float:
    """A status callback whose Messages API fetch hangs ``hold_s`` (its entry stays in the log),
    on the conversation's shard or another; then the conversation (closed timeout 1 s) and its
    first message delivered. The close's deadline."""
    _configure(p, closed=1)
    stuck, other = new_sid("SM"), _customer_on(shard_of_pair(CUSTOMER, OURS, SHARDS), same=same_shard)
    p.twin.seed_message(OURS, other, "held", sid=stuck)
    p.twin.set_faults(rate_timeout=1.0, hold_seconds=hold_s, path=r"/Messages/")  # its fetch hangs
    assert post_signed(p.web, STATUS, message_status(stuck, "delivered", OURS, other)).status_code == 200
    p.start_worker(THREADLINE_MINUTE_SECONDS="1", THREADLINE_LIFECYCLE_MAX_HOLD_SECONDS=str(max_hold),
                   THREADLINE_TWILIO_TIMEOUT="30")
    assert post_signed(p.web, "/webhooks/twilio/messaging",
                       inbound_message(CUSTOMER, OURS, "hi")).status_code == 200
    p.twin.wait_for(lambda st: any(c["communications"] for c in st["conversations"]), timeout=15)
    return _only_timer(p)


def test_a_stuck_entry_holds_a_close_no_longer_than_the_max_hold(pipeline) -> None:
    p = pipeline
    due = _stuck_entry_then_conversation(p, same_shard=True, hold_s=10.0, max_hold=2)

    closed_at = _wait_closed(p, timeout=15)
    assert p.backlog() >= 1, "the stuck entry was processed before the close: the test proved nothing"
    assert closed_at >= due + 2.0 - 0.3, f"closed {closed_at - due:.1f} s after its deadline, before the hold"
    assert closed_at <= due + 2.0 + 3.0, f"closed {closed_at - due:.1f} s after its deadline, past the bound"
    assert p.counter_reaches("lifecycle_holds|max_hold", 1) >= 1
    p.twin.clear_faults()
    p.wait_idle(timeout=40)


def test_a_stuck_entry_of_another_shard_holds_a_close_no_longer_than_the_grace(pipeline) -> None:
    """The large soak's finding: with one watermark for every conversation, one shard's stuck
    entries (a killed worker's lease, a lane in a 429's backoff) held every close — 18% of them
    more than 10 s late. A close now waits fully only for the shards its own events came from."""
    p = pipeline
    due = _stuck_entry_then_conversation(p, same_shard=False, hold_s=15.0, max_hold=30)
    (conv_id,) = [m.decode() for m in p.redis.zrange(keys.TIMERS, 0, -1)]
    shard = shard_of_pair(CUSTOMER, OURS, SHARDS)
    assert p.redis.hget(keys.conversation(conv_id), f"h{shard}") == b"1", "its shard is not recorded"

    closed_at = _wait_closed(p, timeout=12)
    assert p.backlog() >= 1, "the stuck entry was processed before the close: the test proved nothing"
    assert closed_at <= due + OTHER_SHARDS_GRACE + 2.0, (
        f"closed {closed_at - due:.1f} s after its deadline: held by another shard's entry")
    assert p.counter("lifecycle_holds|max_hold") == 0
    p.twin.clear_faults()
    p.wait_idle(timeout=40)
