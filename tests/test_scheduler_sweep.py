"""The scheduler's lease, its re-triggering of stalled shards and its call poll on real Redis
(workers/scheduler.py). Lifecycle timers are the workers' now: tests/lifecycle/test_claim.py."""
from __future__ import annotations

import time

from rq import Queue

from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.scheduler import DRAIN_CHECK_EVERY, Scheduler


def _sched(redis_client, redis_url: str) -> Scheduler:
    return Scheduler(load_settings(redis_url=redis_url, shards=4), redis_client)


def test_only_one_scheduler_leads_and_a_follower_takes_over_at_once(redis_client, redis_url) -> None:
    a, b = _sched(redis_client, redis_url), _sched(redis_client, redis_url)
    assert a.lease.hold() is True
    assert b.lease.hold() is False
    a.lease.release()
    assert b.lease.hold() is True                # the follower takes over at once


def test_stalled_shard_is_requeued_once(redis_client, redis_url) -> None:
    s = _sched(redis_client, redis_url)
    redis_client.xadd(keys.events(2), {"k": "message"})
    assert s.requeue_stalled_drains() == 1
    assert redis_client.exists(keys.drain_flag(2))
    assert s.requeue_stalled_drains() == 0      # the flag now says a drain is queued
    jobs = Queue(keys.QUEUE, connection=redis_client).get_jobs()
    assert [(j.func_name, j.args) for j in jobs] == [("workers.jobs.drain_shard", (2,))]


def test_a_flag_left_without_lease_or_queued_drain_is_requeued_at_the_next_check(redis_client, redis_url) -> None:
    """A drain killed mid-run (or ended by a Redis error before it took the lease) leaves its
    shard flagged with no holder and no job: the soak saw such shards wait the whole stall
    bound (15 s) for the scheduler. Two checks in a row that find no drain job in the queue
    are enough now; a drain job that is still waiting for a worker is not doubled."""
    s = _sched(redis_client, redis_url)
    q = Queue(keys.QUEUE, connection=redis_client)
    for n in (1, 2):
        redis_client.xadd(keys.events(n), {"k": "message"})
        redis_client.set(keys.drain_flag(n), "drain", ex=300)   # flagged; no lease: its holder died
    q.enqueue("workers.jobs.drain_shard", 2, result_ttl=0, description="drain shard 2")  # 2 has a job
    assert s.requeue_stalled_drains() == 0      # first sight: the drain may be between queue and lease
    assert s.requeue_stalled_drains() == 0      # (not twice in the same moment)
    for n in (1, 2):
        s._unheld_since[n] -= DRAIN_CHECK_EVERY  # the next check, 2 s on
    assert s.requeue_stalled_drains() == 1      # well before the stall bound
    assert s.settings.drain_stall_seconds >= 10
    jobs = [(j.func_name, j.args) for j in q.get_jobs()]
    assert jobs.count(("workers.jobs.drain_shard", (1,))) == 1
    assert jobs.count(("workers.jobs.drain_shard", (2,))) == 1   # its queued job was not doubled
    assert redis_client.exists(keys.drain_flag(1))
    assert s.requeue_stalled_drains() == 0      # flagged, and now its job waits in the queue


def test_a_drain_flag_that_outlives_its_lease_is_requeued_after_the_stall_bound(redis_client, redis_url) -> None:
    """The fallback: a flagged shard with no lease holder whose drain job sits in the queue
    and never takes the lease gets a fresh drain once THREADLINE_DRAIN_STALL_SECONDS pass."""
    s = _sched(redis_client, redis_url)
    q = Queue(keys.QUEUE, connection=redis_client)
    redis_client.xadd(keys.events(3), {"k": "message"})
    redis_client.set(keys.drain_flag(3), "drain", ex=300)
    q.enqueue("workers.jobs.drain_shard", 3, result_ttl=0, description="drain shard 3")
    assert s.requeue_stalled_drains() == 0
    s._unheld_since[3] -= DRAIN_CHECK_EVERY
    assert s.requeue_stalled_drains() == 0      # its job is queued: no second one yet
    redis_client.set(keys.shard_lease(3), "5", px=60_000)
    assert s.requeue_stalled_drains() == 0      # a holder: nothing to do, the clock starts again
    redis_client.delete(keys.shard_lease(3))
    assert s.requeue_stalled_drains() == 0
    s._unheld_since[3] -= s.settings.drain_stall_seconds + 1   # the flag outlived the lease that long
    assert s.requeue_stalled_drains() == 1
    assert [j.args for j in q.get_jobs()].count((3,)) == 2
    assert redis_client.get(keys.drain_flag(3)) == b"scheduler"


def test_a_worker_takes_lifecycle_and_drain_jobs_in_turn(redis_client, redis_url) -> None:
    """Found by the soak: on one queue, drains (enqueued at its front) kept arriving under load
    and the lifecycle batches behind them waited 100 s — conversations skipped INACTIVE and
    closed 40 s late. Lifecycle batches of an earlier release (queued before an upgrade) have
    their own queue, which a worker serves in turn with the drains' one (RQ's round robin)."""
    from tests.procs import Proc
    from tests.web_fixtures import web_env

    drains = Queue(keys.QUEUE, connection=redis_client)
    lifecycle = Queue(keys.LIFECYCLE_QUEUE, connection=redis_client)
    jobs = [drains.enqueue("time.sleep", 0, result_ttl=600, description=f"drain shard {n}") for n in range(6)]
    jobs.append(lifecycle.enqueue("time.sleep", 0, result_ttl=600, description="lifecycle: 1 timers"))
    worker = Proc(["worker", "--burst"], web_env(redis_url, THREADLINE_SHARDS="4"))
    assert worker.popen.wait(timeout=60) == 0, worker.output()[-3000:]
    for j in jobs:
        j.refresh()
    order = [j.description for j in sorted(jobs, key=lambda j: j.ended_at)]
    assert len(order) == 7 and order.index("lifecycle: 1 timers") <= 1, order


def test_a_drain_goes_ahead_of_waiting_lifecycle_jobs(redis_client, redis_url) -> None:
    s = _sched(redis_client, redis_url)
    q = Queue(keys.QUEUE, connection=redis_client)
    for _ in range(3):
        q.enqueue("workers.jobs.apply_timeouts", [], result_ttl=0)
    redis_client.xadd(keys.events(1), {"k": "message"})
    assert s.requeue_stalled_drains() == 1
    first = q.get_jobs()[0]
    assert (first.func_name, first.args) == ("workers.jobs.drain_shard", (1,))


def test_the_leader_enqueues_the_call_poll_only_with_voice_rules_and_one_at_a_time(redis_client, redis_url) -> None:
    from workers.capture.configuration import parse_configuration
    from workers.capture.store import ConfigStore
    from workers.foundations.constants import POLL_CALLS_JOB

    s = Scheduler(load_settings(redis_url=redis_url, shards=4, call_poll_seconds=2.0), redis_client)
    q = Queue(keys.QUEUE, connection=redis_client)
    store = ConfigStore(redis_client)
    body = {"id": "sales", "displayName": "sales", "description": "d",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
            "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": "+14155550100"}]}}}
    store.put(parse_configuration(body))
    assert s.enqueue_call_poll(100.0) is False           # no VOICE rules: no poll
    body["channelSettings"]["VOICE"] = {"captureRules": [{"from": "*", "to": "+14155550100"}]}
    store.put(parse_configuration(body))
    assert s.enqueue_call_poll(101.0) is False           # not due yet (every 2 s)
    assert s.enqueue_call_poll(102.5) is True
    assert s.enqueue_call_poll(105.0) is False           # the last one is still queued
    redis_client.delete(keys.CALL_POLL_FLAG)             # … until its job ends
    assert s.enqueue_call_poll(107.5) is True
    assert [j.func_name for j in q.get_jobs()] == [POLL_CALLS_JOB, POLL_CALLS_JOB]
    off = Scheduler(load_settings(redis_url=redis_url, shards=4, call_poll_seconds=0), redis_client)
    redis_client.delete(keys.CALL_POLL_FLAG)
    assert off.enqueue_call_poll(1000.0) is False        # THREADLINE_CALL_POLL_SECONDS=0: off


def test_the_leaders_loop_outlives_redis_going_away(tmp_path) -> None:
    """Found by the soak: Redis restarted between a tick and the leader's look at the next
    timer (outside the tick's error handling), and the scheduler process exited (rc=1). The
    leader no longer looks at timers between ticks; its loop rides out Redis being away."""
    import threading

    import redis as redis_lib

    from tests.private_redis import PrivateRedis

    server = PrivateRedis(tmp_path)
    server.start()
    client = redis_lib.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    s = Scheduler(load_settings(redis_url=server.url, shards=4), client)
    s.tick()
    assert s._leading
    server.stop()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            s.run()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failed.append(exc)

    t = threading.Thread(target=run)
    try:
        t.start()
        time.sleep(1.5)
        assert t.is_alive() and not failed
    finally:
        s.stop()
        t.join(10)
        client.close()
    assert not t.is_alive() and not failed, failed
