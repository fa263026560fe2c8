"""A worker's event loop runs in a thread of its own with the lifecycle applier on it
(workers.jobs.Runtime.start_lifecycle): jobs still run on it, an interrupted job's own tasks
are cancelled with it (none may run on into the next job holding a lease or a lock), and the
applier goes on claiming. Real Redis; no v2 call is made."""
from __future__ import annotations

import asyncio
import time

import pytest

from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime


def test_an_interrupted_job_takes_its_tasks_along_and_leaves_the_applier_running(redis_client, redis_url) -> None:
    rt = Runtime(load_settings(REDIS_URL=redis_url, THREADLINE_SHARDS="4"))
    applier = rt.start_lifecycle()
    try:
        assert rt.run(asyncio.sleep(0, result="ran on the loop's thread")) == "ran on the loop's thread"
        leftover: list[asyncio.Task] = []

        async def job() -> None:
            leftover.append(asyncio.create_task(asyncio.sleep(3600)))  # e.g. a lease renewer
            await asyncio.sleep(0)
            raise RuntimeError("the job failed")

        with pytest.raises(RuntimeError, match="the job failed"):
            rt.run(job())
        time.sleep(0.2)
        assert leftover[0].cancelled()
        assert rt._lifecycle is not None and not rt._lifecycle.done()
        # the applier still claims: a timer for an unknown conversation is claimed and dropped
        redis_client.zadd(keys.TIMERS, {"conv_gone": time.time() - 1})
        deadline = time.monotonic() + 5
        while redis_client.zscore(keys.TIMERS, "conv_gone") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert redis_client.zscore(keys.TIMERS, "conv_gone") is None
        assert applier.applied >= 1
    finally:
        rt.close()
    assert rt._lifecycle.done() and not rt.loop.is_running()


def test_a_runtime_closes_at_once_while_redis_is_away() -> None:
    """A worker told to stop while its Redis is away (a restart, a failover) exits at once: its
    close does not wait out the applier's claim and redis-py's retries of a refused connection.
    Nothing listens on the port here: every connection is refused, as while Redis restarts."""
    from tests.procs import free_port

    rt = Runtime(load_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", THREADLINE_SHARDS="4"))
    rt.start_lifecycle()
    time.sleep(1.0)  # the applier has tried to claim, and tries again
    t0 = time.monotonic()
    rt.close()
    took = time.monotonic() - t0
    assert took < 0.5, f"close took {took:.2f} s"
    assert rt._lifecycle is not None and rt._lifecycle.done() and not rt.loop.is_running()
