"""A drain cancelled mid-batch (RQ's job timeout raises inside the loop; the runtime cancels
the job's tasks) hands its shard back: lease released, drain flag cleared and, as entries are
left, set again with the next drain enqueued — not left to the flag's TTL (5 minutes), during
which ingress enqueues nothing for the shard. bench/pipeline.py's STALLED runs were this."""
from __future__ import annotations

import asyncio

import pytest

from tests.web_fixtures import inbound_message
from workers.eventlog.entries import MESSAGE, LogEntry
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime


class JobTimeout(Exception):
    """Stands for RQ's JobTimeoutException, raised inside the loop by its alarm."""


def test_a_cancelled_drain_hands_its_shard_back(redis_client, redis_url) -> None:
    rt = Runtime(load_settings(REDIS_URL=redis_url, THREADLINE_SHARDS=4))
    try:
        params = inbound_message("+14155550100", "+14155550199", "x")
        entry = LogEntry(MESSAGE, 1_700_000_000_000, params["AccountSid"], params, {}, "")
        stream = keys.events(1)
        redis_client.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
        redis_client.xadd(stream, entry.to_fields())
        redis_client.set(keys.drain_flag(1), "ingress", ex=300)
        in_batch = asyncio.Event()

        async def long_batch(*args, **kwargs) -> bool:  # a batch still delivering at the timeout
            in_batch.set()
            await asyncio.sleep(3600)
            return True

        rt.drainer._batch = long_batch  # type: ignore[method-assign]

        async def job() -> None:
            asyncio.ensure_future(rt.drainer.drain(1))
            await asyncio.wait_for(in_batch.wait(), 10)
            assert redis_client.exists(keys.shard_lease(1))
            raise JobTimeout

        queued = rt.queue.count
        with pytest.raises(JobTimeout):
            rt.run(job())
        assert not redis_client.exists(keys.shard_lease(1))  # released, not left to its TTL
        assert redis_client.get(keys.drain_flag(1)) == b"drain"  # the hand back's, not ingress's
        assert rt.queue.count == queued + 1  # the next drain, for the entry left pending
        assert rt.queue.jobs[0].args == (1,)
    finally:
        rt.close()
