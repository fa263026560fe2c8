"""A batch's delivered entries leave the log while a slower lane of the same batch still waits.

Found by the soak (bench/soak.py): a batch (up to THREADLINE_BATCH_SIZE entries) was committed
only once its slowest lane ended, so one lane waiting on a held v2 request or a Retry-After kept
every delivered entry of the shard in the log — 12 s without visible progress — and a Redis
restart in that window threw the finished work away. Decided entries are now committed every
``COMMIT_EVERY_S`` while the batch runs.

Real processes: ``threadline web``, one ``threadline worker``, the twin holding the Messages API
fetch of one status callback (its lane) for 8 s while other lanes of the same shard deliver.
"""
from __future__ import annotations

import time

from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS, SHARDS
from workers.foundations import keys
from workers.foundations.addresses import shard_of_pair

HOLD_S = 8.0
SLOW = "+14155558000"


def _same_shard_customers(n: int) -> list[str]:
    shard = shard_of_pair(SLOW, OURS, SHARDS)
    found = [f"+1415555{8001 + i}" for i in range(400)]
    return [c for c in found if shard_of_pair(c, OURS, SHARDS) == shard][:n]


def test_delivered_entries_are_committed_while_a_slow_lane_of_their_batch_waits(pipeline) -> None:
    p = pipeline
    p.configure("main")
    shard = shard_of_pair(SLOW, OURS, SHARDS)
    slow = new_sid("SM")
    p.twin.seed_message(OURS, SLOW, "held body", sid=slow)
    p.twin.set_faults(rate_timeout=1.0, hold_seconds=HOLD_S, path=r"/Messages/")
    assert post_signed(p.web, "/webhooks/twilio/messaging/status",
                       message_status(slow, "delivered", OURS, SLOW)).status_code == 200
    fast = _same_shard_customers(6)
    assert len(fast) == 6
    for c in fast:
        assert post_signed(p.web, "/webhooks/twilio/messaging", inbound_message(c, OURS, "quick")).status_code == 200
    assert p.redis.xlen(keys.events(shard)) == 7  # one batch: the worker starts after all of them
    p.start_worker(THREADLINE_TWILIO_TIMEOUT=str(HOLD_S * 3))
    started = time.monotonic()
    while p.redis.xlen(keys.events(shard)) > 1:
        assert time.monotonic() - started < HOLD_S - 2, (
            f"{p.redis.xlen(keys.events(shard))} entries still in the log while the held fetch waits")
        time.sleep(0.1)
    delivered = {c["resourceId"] for conv in p.twin.conversations() for c in conv["communications"]}
    assert len(delivered) == 6 and slow not in delivered  # the held lane is still waiting
    p.wait_idle(timeout=HOLD_S * 3)  # and then it is delivered too
    delivered = {c["resourceId"] for conv in p.twin.conversations() for c in conv["communications"]}
    assert slow in delivered and len(delivered) == 7
    assert p.dead_letters() == []
