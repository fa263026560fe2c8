"""A drain lane's session on a real Redis: its writes go in one round trip at its end, before
its locks are released, and a failed flush marks it lost (the drain then acknowledges none of
the lane's events: they are delivered again, bookkeeping included)."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from workers.conversations.locks import KeyLocks
from workers.delivery.lane import LaneSession


def _run(redis_url, body):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await body(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def test_writes_land_before_the_locks_go(redis_client, redis_url) -> None:
    async def body(client):
        locks = KeyLocks(client)
        seen = {}
        async with LaneSession() as session:
            await session.stack.enter_async_context(locks.hold("t:lane:lock"))
            session.pipe(client).hset("t:lane:a", mapping={"f": "1"})
            session.pipe(client).zadd("t:lane:z", {"m": 12.5})
            session.pipe(client).expire("t:lane:a", 60)
            assert await client.hget("t:lane:a", "f") is None  # queued, not sent
            original = session.stack.aclose

            async def check_then_release():
                seen["a"], seen["held"] = await client.hget("t:lane:a", "f"), await client.exists("t:lane:lock")
                await original()
            session.stack.aclose = check_then_release  # type: ignore[method-assign]
        assert seen == {"a": b"1", "held": 1}  # written while the lock was still held
        assert not await client.exists("t:lane:lock") and not session.lost
        assert await client.zscore("t:lane:z", "m") == 12.5 and 0 < await client.ttl("t:lane:a") <= 60
    _run(redis_url, body)


def test_a_failed_flush_marks_the_session_lost(redis_client, redis_url) -> None:
    async def body(client):
        await client.set("t:lane:str", "x")
        session = LaneSession()
        session.pipe(client).hset("t:lane:h", mapping={"a": "1"})
        session.pipe(client).hset("t:lane:str", mapping={"f": "v"})  # WRONGTYPE
        session.pipe(client).hset("t:lane:h", mapping={"b": "2"})
        with pytest.raises(ResponseError):
            await session.flush()
        assert session.lost
        assert await client.hgetall("t:lane:h") == {b"a": b"1", b"b": b"2"}  # every reply was read:
        assert await client.get("t:lane:str") == b"x"  # the pooled connection answers in step
        await session.flush()  # nothing left queued: a no-op
    _run(redis_url, body)


def test_writes_to_one_key_coalesce_and_land_as_sent_one_by_one(redis_client, redis_url) -> None:
    """A lane's events of one conversation each touch its record and move its timer: only the
    last values are sent, and Redis ends exactly as if every write had been sent in order."""
    from workers.delivery.lane import Writes

    def queue(w) -> None:
        for n in range(5):  # five events of one conversation, each with its message's state
            w.hset("t:co:conv", mapping={"aSMS": str(100 + n), "t1": str(200 + n)})
            w.zadd("t:co:timers", {"conv": 1000.0 + n})
            w.hset(f"t:co:msg{n}", mapping={"best": "sent"})
            w.expire(f"t:co:msg{n}", 60)
            w.hset("t:co:msg0", mapping={f"posted:{n}": "sent"})
            w.expire("t:co:msg0", 60 + n)
        w.expire("t:co:none", 60)          # no such key yet: a no-op as sent in order …
        w.hset("t:co:none", mapping={"f": "1"})
        w.zadd("t:co:timers", {"a": 1.0, "b": 2.0})
        w.zadd("t:co:timers", {"a": 3.0})  # … and a ZADD of several members stays apart

    def dump(prefix: str) -> dict:
        out = {}
        for k in sorted(redis_client.keys(f"{prefix}*")):
            kind = redis_client.type(k)
            value = redis_client.hgetall(k) if kind == b"hash" else redis_client.zrange(k, 0, -1, withscores=True)
            out[k[len(prefix):]] = (value, redis_client.ttl(k) > 0)
        return out

    async def body(client):
        w = Writes(client)
        queue(w)
        sent = len(w)
        await w.execute()
        for k in redis_client.keys("t:co:*"):
            redis_client.rename(k, b"t:coalesced:" + k[len(b"t:co:"):])
        one_by_one = client.pipeline(transaction=False)
        queue(one_by_one)
        await one_by_one.execute()
        return sent
    sent = _run(redis_url, body)
    assert dump("t:co:") == dump("t:coalesced:")
    assert dump("t:co:")[b"none"] == ({b"f": b"1"}, False)
    # 30 + 4 writes queued: one HSET + one ZADD for the conversation, one HSET + EXPIRE per message
    assert sent == 1 + 1 + 5 * 2 + 1 + 1 + 2
