"""Redis restarted under a draining worker (a crash, a failover): the worker lives on.

The shared Redis must never be restarted, so this test runs web, worker and twin on a
redis-server of its own (tests/private_redis.py, AOF with fsync always) and SIGKILLs it while the
worker's drain is delivering. Before the fix the drain's ``finally`` released the shard lease on
the dead connection, the error left the job, RQ could not record the failure either, and the
worker quit ("found an unhandled exception, quitting"), with the rest of the shard left behind.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest
import redis

from tests.private_redis import PrivateRedis
from tests.procs import Proc
from tests.web_fixtures import inbound_message, post_signed, web_env
from tests.worker_fixtures import OURS, sleeping_job_taken

MESSAGING = "/webhooks/twilio/messaging"


def _worker_in_a_job(server: PrivateRedis, twin, seconds: float) -> tuple[Proc, redis.Redis]:
    """A worker on ``server`` in a job that runs ``seconds`` more; and a client of ``server``."""
    from rq import Queue

    from workers.foundations import keys

    env = web_env(server.url, THREADLINE_SHARDS="2", **twin.env())
    client = redis.Redis.from_url(server.url)
    worker = Proc(["worker"], env)
    sleeping_job_taken(Queue(keys.QUEUE, connection=client), worker, seconds)
    return worker, client


def _stops_cleanly(worker: Proc, within: float) -> None:
    """SIGTERM ends the worker with status 0 within ``within`` seconds. The wait is longer than
    the worker's own stop deadline (THREADLINE_WORKER_STOP_SECONDS, 15 s), so a stuck stop shows
    its threads' stacks (the worker dumps them to its log at the deadline), not our SIGKILL."""
    t0 = time.monotonic()
    rc = worker.stop(timeout=20.0)
    took = time.monotonic() - t0
    assert rc == 0 and took < within, f"status {rc} after {took:.1f} s:\n{worker.output()[-12000:]}"


def _comms(twin) -> Counter:
    return Counter(c["resourceId"] for conv in twin.state()["conversations"] for c in conv["communications"])


@pytest.mark.slow
def test_worker_survives_a_redis_restart_mid_drain_and_delivers_everything_once(tmp_path, twin, start_web):
    from workers.capture.configuration import parse_configuration
    from workers.capture.store import ConfigStore

    server = PrivateRedis(tmp_path)
    server.start()
    worker = None
    try:
        env = web_env(server.url, THREADLINE_SHARDS="2", **twin.env())
        web = start_web(**{k: v for k, v in env.items() if k.startswith(("REDIS", "THREADLINE", "TWILIO"))})
        client = redis.Redis.from_url(server.url)
        ConfigStore(client).put(parse_configuration({
            "id": "main", "displayName": "main", "description": "test",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
            "twilioConfigurationId": twin.create_configuration(),
            "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": OURS}]}}}))
        sids = []
        for n in range(10):  # 4 customers, 10 messages each: lanes of ten slow posts
            for c in range(4):
                params = inbound_message(f"+1415555{7000 + c:04d}", OURS, f"message {n}")
                sids.append(params["MessageSid"])
                assert post_signed(web, MESSAGING, params).status_code == 200
        twin.set_faults(latency_ms=250, path="/Communications")
        worker = Proc(["worker"], env)
        deadline = time.monotonic() + 30
        while sum(_comms(twin).values()) < 6:
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.05)
        server.crash(away=1.5)  # mid-drain: posts in flight, nothing of the batch acknowledged
        deadline = time.monotonic() + 60
        while set(_comms(twin)) != set(sids) and time.monotonic() < deadline:
            assert worker.popen.poll() is None, f"the worker quit:\n{worker.output()[-4000:]}"
            time.sleep(0.2)
        delivered = _comms(twin)
        assert set(delivered) == set(sids), f"{len(delivered)}/{len(sids)} delivered:\n{worker.output()[-4000:]}"
        assert set(delivered.values()) == {1}
        assert worker.popen.poll() is None
        client.close()
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


@pytest.mark.slow
def test_worker_survives_a_job_that_ends_while_redis_is_away(tmp_path, twin):
    """RQ quits its loop on any Redis error in its own bookkeeping (a job's end recorded, the
    heartbeat after a dequeue): a job that ends while Redis is away (an apply batch, a drain
    that could not start) must not stop the worker. ``time.sleep`` stands in for such a job
    (RQ runs any importable function)."""
    from rq import Queue

    from workers.foundations import keys

    server = PrivateRedis(tmp_path)
    server.start()
    worker = None
    try:
        worker, client = _worker_in_a_job(server, twin, 2.0)
        queue = Queue(keys.QUEUE, connection=client)
        server.crash(away=3.0)  # the job ends while Redis is away
        time.sleep(3.0)
        assert worker.popen.poll() is None, f"the worker quit:\n{worker.output()[-12000:]}"
        queue.enqueue("time.sleep", 0.0, result_ttl=0)  # and it still takes work
        deadline = time.monotonic() + 20
        while queue.count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queue.count == 0 and worker.popen.poll() is None, worker.output()[-4000:]
        _stops_cleanly(worker, within=10.0)  # and a SIGTERM still stops it (not a new loop)
        client.close()
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


def test_the_drains_pooled_connections_outlive_a_redis_restart(tmp_path):
    """The drains' connection pool (workers.jobs: a BlockingConnectionPool) had no retry policy,
    so after a Redis restart each pooled connection raised ConnectionError once when a lane next
    used it — the soak saw drains stop early and lanes retried 10 s after the restart. A closed
    connection is now reconnected and the command sent again."""
    import asyncio

    from workers.foundations.settings import load_settings
    from workers.jobs import _async_redis

    server = PrivateRedis(tmp_path)
    server.start()
    try:
        client = _async_redis(load_settings(REDIS_URL=server.url))

        async def run() -> list:
            # several connections in the pool, all of them left open across the restart
            await asyncio.gather(*(client.set(f"k{i}", i) for i in range(8)))
            await asyncio.to_thread(server.crash, 0.2)
            got = await asyncio.gather(*(client.get(f"k{i}") for i in range(8)))
            await client.aclose()
            return got

        assert asyncio.run(run()) == [str(i).encode() for i in range(8)]
    finally:
        server.stop()


def test_a_drains_lease_renewal_outlives_a_redis_restart(tmp_path):
    """The lease renewer ended on the first Redis error of a restart: the drain went on with a
    lease nobody renewed, which lapsed under it (the soak saw "shard lease lost mid-drain" 6 s
    after a Redis restart, another drain taking the shard while the first still delivered).
    A failed renewal is retried; the lease stays this drain's."""
    import asyncio

    from workers.delivery.leases import LEASE_TTL_MS, ShardLeases
    from workers.foundations import keys
    from workers.foundations.settings import load_settings
    from workers.jobs import _async_redis

    server = PrivateRedis(tmp_path)
    server.start()
    try:
        client = _async_redis(load_settings(REDIS_URL=server.url))
        leases = ShardLeases(client)

        async def run() -> tuple[bool, bool, bool, int]:
            token = await leases.acquire(1)
            assert token is not None
            lost = asyncio.Event()
            renewer = asyncio.create_task(leases.keep(1, token, lost, time.monotonic, 60.0))
            await asyncio.sleep(1.5)
            await asyncio.to_thread(server.crash, 3.0)  # longer than the client's own retries
            await asyncio.sleep(LEASE_TTL_MS / 1000 + 1)  # past the lease, had nobody renewed it
            state = (renewer.done(), lost.is_set(),
                     await client.get(keys.shard_lease(1)) == token.encode(),
                     await client.pttl(keys.shard_lease(1)))
            renewer.cancel()
            await client.aclose()
            return state

        done, lost, ours, ttl = asyncio.run(run())
        assert (done, lost, ours) == (False, False, True) and ttl > 0
    finally:
        server.stop()


@pytest.mark.slow
def test_a_sigterm_while_the_worker_waits_for_redis_stops_it(tmp_path, twin):
    """A loop that Redis ended died mid-job; until the next loop started, RQ's handler of the
    dead loop got the signal and either swallowed it (its worker still looked busy: the worker
    waited on for Redis, started a new loop and had to be killed) or raised RQ's StopRequested
    through the worker's run (status 1 and a traceback: what this test saw on the old code).
    Between two loops the worker now handles the signal itself: it stops at once, status 0."""
    server = PrivateRedis(tmp_path)
    server.start()
    worker = None
    try:
        worker, client = _worker_in_a_job(server, twin, 1.0)
        client.close()
        assert server.proc is not None
        server.proc.kill()  # the job ends while Redis is away, and Redis stays away
        server.proc.wait(10)
        deadline = time.monotonic() + 60
        while "waiting for Redis" not in worker.output():
            assert time.monotonic() < deadline and worker.popen.poll() is None, worker.output()[-8000:]
            time.sleep(0.1)
        _stops_cleanly(worker, within=5.0)
    finally:
        if worker is not None and worker.popen.poll() is None:
            worker.stop()
        server.stop()
