"""Drain jobs do not multiply, and a drain job for a busy shard costs its worker no wait.

Found by the soak (bench/soak.py --webhooks 5000): the RQ queue grew to 125 drain jobs during
the traffic, and the lifecycle jobs behind them (drains go to the front) waited 100 s, so
conversations skipped INACTIVE and closed 40 s late: a drain that adopted a flagged shard (its
own job still queued) cleared the flag at the end and enqueued another, and every restarted
worker enqueued one for every shard. Tested here on real Redis.
"""
from __future__ import annotations

import time

import pytest
from rq import Queue

from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime


def _runtime(redis_url: str) -> Runtime:
    return Runtime(load_settings(REDIS_URL=redis_url, THREADLINE_SHARDS=4))


def test_handing_back_an_adopted_flagged_shard_enqueues_no_second_drain(redis_client, redis_url) -> None:
    rt = _runtime(redis_url)
    q = Queue(keys.QUEUE, connection=redis_client)
    try:
        for n in (1, 2):
            redis_client.xadd(keys.events(n), {"k": "message"})  # entries left at the end
            redis_client.set(keys.drain_flag(n), "drain", ex=300)
        q.enqueue("workers.jobs.drain_shard", 1, result_ttl=0, description="drain shard 1")
        # shard 1 was adopted while flagged and its job waits in the queue: nothing more
        assert rt.run(rt.drainer._finish(1, queued=True)) is False
        assert redis_client.get(keys.drain_flag(1)) == b"drain" and q.count == 1
        # shard 2 too, but its job has been taken off the queue (it found the lease held and
        # gave up): the flag is won back and the next drain enqueued, as for a job's own shard
        assert rt.run(rt.drainer._finish(2, queued=True)) is True
        assert sorted(j.args for j in q.get_jobs()) == [(1,), (2,)]
        # a job's own shard whose drain ingress enqueued meanwhile (the flag was gone while the
        # drain held it): that job drains on, no second one
        redis_client.xadd(keys.events(3), {"k": "message"})
        q.enqueue("workers.jobs.drain_shard", 3, result_ttl=0, description="drain shard 3")
        assert rt.run(rt.drainer._finish(3)) is False
        assert sorted(j.args for j in q.get_jobs()) == [(1,), (2,), (3,)]
    finally:
        rt.close()


@pytest.mark.parametrize("waiting", ["lifecycle batch", "drain of another shard"])
def test_a_drain_job_ends_early_while_other_jobs_wait(pipeline, waiting: str) -> None:
    """Found by the soak: drain jobs ran their whole 30 s budget, so under load every worker was
    away from the lifecycle queue for 30 s at a time and transitions were PATCHed 40 s late; and
    once the lifecycle left the queue, a shard a long drain job had already handed back waited
    for its queued drain 16-18 s. While another job waits, a drain job ends after YIELD_AFTER_S
    (at a batch's end) and hands its shard on; without one it drains on. Real web, twin (200 ms
    per request) and Redis; the drain runs in this process."""
    from tests.web_fixtures import inbound_message, post_signed
    from tests.worker_fixtures import OURS, SHARDS
    from workers.delivery.drain import YIELD_AFTER_S
    from workers.foundations.addresses import shard_of_pair

    p = pipeline
    p.configure("main")
    p.twin.set_faults(latency_ms=200)
    customer = "+14155559001"
    shard = shard_of_pair(customer, OURS, SHARDS)
    for n in range(40):  # one lane: 40 posts of ~200 ms one after the other, ~8 s in all
        assert post_signed(p.web, "/webhooks/twilio/messaging", inbound_message(customer, OURS, f"m{n}")).status_code == 200
    Queue(keys.QUEUE, connection=p.redis).empty()  # ingress's drain job: the one run below
    other = (shard + 1) % SHARDS
    lifecycle = Queue(keys.LIFECYCLE_QUEUE if waiting == "lifecycle batch" else keys.QUEUE, connection=p.redis)
    lifecycle.enqueue("time.sleep", 0, result_ttl=0,
                      description="lifecycle: 1 timers" if waiting == "lifecycle batch" else f"drain shard {other}")
    rt = Runtime(load_settings(**{**p.env(), "THREADLINE_BATCH_SIZE": "4", "THREADLINE_SHARDS": str(SHARDS)}))
    try:
        t0 = time.monotonic()
        report = rt.run(rt.drainer.drain(shard))
        took = time.monotonic() - t0
        left = p.redis.xlen(keys.events(shard))
        assert took < YIELD_AFTER_S + 3 and left > 0 and report.requeued, (took, left, report)
        # its next drain, for any worker (beside the drain of another shard that waited)
        assert Queue(keys.QUEUE, connection=p.redis).count == (1 if waiting == "lifecycle batch" else 2)
        lifecycle.empty()
        Queue(keys.QUEUE, connection=p.redis).empty()
        rt.run(rt.drainer.drain(shard))  # nothing waits for a worker: it drains to the end
        assert p.redis.xlen(keys.events(shard)) == 0
    finally:
        rt.close()


def test_a_starting_worker_enqueues_drains_only_for_shards_without_one(redis_client, redis_url) -> None:
    """Every restarted worker enqueued a drain for every shard with entries (the soak kills
    workers a dozen times): a shard whose drain job still waits gets no second one."""
    from workers.jobs import sweep_shards

    rt = _runtime(redis_url)
    q = Queue(keys.QUEUE, connection=redis_client)
    try:
        for n in (1, 2):
            redis_client.xadd(keys.events(n), {"k": "message"})
        q.enqueue("workers.jobs.drain_shard", 1, result_ttl=0, description="drain shard 1")
        assert sweep_shards(rt) == [2]
        assert sorted(j.args for j in q.get_jobs()) == [(1,), (2,)]
    finally:
        rt.close()
