"""The v2 client's stats buffer on a real Redis: batched, flushed in the background, and
nothing lost while Redis is away."""
from __future__ import annotations

import time

import redis

from workers import stats
from workers.foundations import keys
from workers.stats.buffer import StatsBuffer

FIELD = stats.field("v2_requests", "POST /v2/Conversations", 201)


def test_background_flush_writes_totals_and_minutes(redis_client, redis_url) -> None:
    buf = StatsBuffer(lambda: redis.Redis.from_url(redis_url), retention_minutes=5, interval=0.1)
    now = time.time()
    for _ in range(250):
        buf.add({FIELD: 1}, now=now)
    deadline = time.monotonic() + 5
    while redis_client.hget(keys.STATS_TOTAL, FIELD) is None:
        assert time.monotonic() < deadline, "the flusher never wrote"
        time.sleep(0.02)
    buf.close()
    assert redis_client.hget(keys.STATS_TOTAL, FIELD) == b"250"
    minute = keys.stats_minute(stats.minute_of(now))
    assert redis_client.hget(minute, FIELD) == b"250"
    assert 0 < redis_client.ttl(minute) <= 5 * 60 + 120
    assert buf.pending() == {}


def test_one_pipeline_per_flush_whatever_the_number_of_calls(redis_client, redis_url) -> None:
    executed: list[int] = []

    class Counting(redis.Redis):
        def pipeline(self, *a, **kw):
            pipe = super().pipeline(*a, **kw)
            original = pipe.execute

            def execute(*ea, **ekw):
                executed.append(len(pipe.command_stack))
                return original(*ea, **ekw)

            pipe.execute = execute
            return pipe

    buf = StatsBuffer(lambda: Counting.from_url(redis_url), retention_minutes=5, interval=3600)
    for i in range(1000):
        buf.add({FIELD: 1, stats.field("v2_requests", "GET /v2/Conversations/{id}", 200): 1})
    assert executed == []  # adding is pure memory
    assert buf.flush() == 2
    assert len(executed) == 1  # 2000 observations, one round trip
    assert redis_client.hget(keys.STATS_TOTAL, FIELD) == b"1000"


def test_counts_survive_an_unreachable_redis(redis_client, redis_url) -> None:
    target = {"url": "redis://127.0.0.1:1/0"}
    buf = StatsBuffer(lambda: redis.Redis.from_url(target["url"], socket_connect_timeout=0.2),
                      retention_minutes=5, interval=3600)
    buf.add({FIELD: 3})
    assert buf.flush() == 0
    buf.add({FIELD: 2})
    assert buf.pending() == {FIELD: 5}
    target["url"] = redis_url
    assert buf.flush() == 1
    assert redis_client.hget(keys.STATS_TOTAL, FIELD) == b"5"
    assert buf.pending() == {}
