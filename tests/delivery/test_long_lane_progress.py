"""A long lane's delivered events leave the log while the lane still runs, not all at its end.

Found by the small soak in CI: one shard looked stalled for 15.6 s (its bound is 15 s). A lane —
one address pair's events, delivered strictly one after another — handed its delivered events
to the batch's commit only when its last event was done, so a lane of a few dozen events at a
few hundred milliseconds each kept every one of them in the log for as long as it ran. The lane
now flushes its writes and hands over what it delivered every ``LANE_FLUSH_EVERY_S``.

Real processes: ``threadline web``, one ``threadline worker``, the twin answering every v2
request after 150 ms; fourteen messages of one customer (one lane), appended before the worker
starts so that they are one batch.
"""
from __future__ import annotations

import time

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS, SHARDS
from workers.foundations import keys
from workers.foundations.addresses import shard_of_pair

CUSTOMER = "+14155557301"
EVENTS = 14


def test_a_long_lanes_delivered_events_are_committed_while_it_runs(pipeline) -> None:
    p = pipeline
    p.configure("main")
    shard = shard_of_pair(CUSTOMER, OURS, SHARDS)
    for i in range(EVENTS):
        assert post_signed(p.web, "/webhooks/twilio/messaging",
                           inbound_message(CUSTOMER, OURS, f"message {i}")).status_code == 200
    assert p.redis.xlen(keys.events(shard)) == EVENTS
    p.twin.set_faults(latency_ms=150)  # each event: at least one v2 request, ≥ 2 s for the lane
    p.start_worker()
    seen_midway = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = p.redis.xlen(keys.events(shard))
        posted = sum(len(c["communications"]) for c in p.twin.conversations())
        if 0 < left < EVENTS and posted < EVENTS:
            seen_midway = (left, posted)  # acknowledged entries gone while the lane still posts
            break
        if posted >= EVENTS:
            break
        time.sleep(0.05)
    assert seen_midway is not None, "every entry stayed in the log until the lane's last post"
    p.wait_idle(timeout=60)
    posted = [c["resourceId"] for conv in p.twin.conversations() for c in conv["communications"]]
    assert len(posted) == EVENTS and len(set(posted)) == EVENTS
    assert p.dead_letters() == []
