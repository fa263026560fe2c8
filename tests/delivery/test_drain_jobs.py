"""Drain jobs do not multiply, and a drain job for a busy shard costs its worker no wait.

Found by the soak (bench/soak.py --webhooks 5000): the RQ queue grew to 125 drain jobs during
the traffic, and the lifecycle jobs behind them (drains go to the front) waited 100 s, so
conversations skipped INACTIVE and closed 40 s late. Two causes, each tested here on real Redis:
a drain that adopted a flagged shard (its own job still queued) cleared the flag at the end and
enqueued another; and a drain job whose shard a live drain held watched the lease for a renewal
(~1.2 s of its worker) before giving up.
"""
from __future__ import annotations

import time

from rq import Queue

from workers import keys
from workers.delivery.leases import LEASE_TTL_MS
from workers.jobs import Runtime
from workers.settings import load_settings


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
    finally:
        rt.close()


def test_a_drain_job_gives_up_at_once_on_a_shard_a_live_drain_holds(redis_client, redis_url) -> None:
    rt = _runtime(redis_url)
    try:
        redis_client.set(keys.shard_lease(3), "41", px=LEASE_TTL_MS)  # just renewed by its holder
        t0 = time.monotonic()
        assert rt.run(rt.drainer.leases.acquire(3)) is None
        assert time.monotonic() - t0 < 0.2
        # a holder that died: its lease runs out, and the drain takes it over
        redis_client.set(keys.shard_lease(3), "42", px=800)
        token = rt.run(rt.drainer.leases.acquire(3))
        assert token is not None and redis_client.get(keys.shard_lease(3)) == token.encode()
    finally:
        rt.close()
