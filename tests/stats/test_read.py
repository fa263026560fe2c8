"""Reading stats back from a real Redis: windows, the configuration filter, live gauges."""
from __future__ import annotations

import time

import pytest

from workers import stats
from workers.foundations import keys
from workers.foundations.settings import Settings
from workers.stats.read import StatsQueryError, parse_window, read_stats

SETTINGS = Settings(shards=4, stats_retention_minutes=1440)


def _write(redis_client, counts, now) -> None:
    pipe = redis_client.pipeline()
    stats.add(pipe, counts, retention_minutes=1440, now=now)
    pipe.execute()


def test_window_and_totals_differ_by_what_is_older_than_the_window(redis_client) -> None:
    now = time.time()
    f = stats.field("events", "cfg-a", "SMS", "captured")
    _write(redis_client, {f: 2}, now - 30 * 60)  # half an hour ago
    _write(redis_client, {f: 5, stats.field("events", "cfg-b", "VOICE", "ignored"): 1}, now)
    out = read_stats(redis_client, SETTINGS, window="5m", now=now)
    (row,) = [s for s in out["counters"]["events"]["series"] if s["labels"]["configuration"] == "cfg-a"]
    assert (row["total"], row["window"]) == (7, 5)
    assert row["points"][-1] == 5 and sum(row["points"]) == 5 and len(row["points"]) == 5
    assert out["summary"]["events"]["by_channel"] == {"SMS": {"all": 5, "captured": 5},
                                                      "VOICE": {"all": 1, "ignored": 1}}
    hour = read_stats(redis_client, SETTINGS, window="1h", now=now)
    assert hour["summary"]["traffic_by_channel"]["SMS"][-31] == 2
    assert hour["summary"]["events"]["window"] == 8


def test_configuration_filter_keeps_only_that_configuration(redis_client) -> None:
    now = time.time()
    _write(redis_client, {stats.field("events", "cfg-a", "SMS", "captured"): 3,
                          stats.field("events", "cfg-b", "SMS", "captured"): 4,
                          stats.field("webhooks", "message", "accepted"): 7}, now)
    out = read_stats(redis_client, SETTINGS, window="1h", configuration="cfg-b", now=now)
    assert out["summary"]["events"]["window"] == 4
    assert "webhooks" not in out["counters"]  # cluster-wide counters have no configuration
    with pytest.raises(StatsQueryError, match="unknown configuration 'nope'"):
        read_stats(redis_client, SETTINGS, window="1h", configuration="nope", now=now)


@pytest.mark.parametrize("bad", ["", "1d", "0m", "5", "m5", "25h", "1441m"])
def test_unknown_or_too_long_window_is_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(StatsQueryError) as exc:
        parse_window(bad, 1440)
    assert "window" in str(exc.value)


def test_windows_in_minutes_and_hours() -> None:
    assert [parse_window(w, 1440) for w in ("5m", "1h", "24h")] == [5, 60, 1440]


def test_histogram_window_quantiles(redis_client) -> None:
    now = time.time()
    pipe = redis_client.pipeline()
    for ms in [20] * 90 + [4000] * 10:
        stats.observe(pipe, "e2e_lag", ms, "SMS", retention_minutes=60, now=now)
    pipe.execute()
    out = read_stats(redis_client, SETTINGS, window="5m", now=now)
    lag = out["summary"]["lag"]
    assert lag["count"] == 100 and lag["avg_ms"] == 418.0
    assert 10 < lag["p50_ms"] <= 25 and 2500 < lag["p95_ms"] <= 5000
    (series,) = out["histograms"]["e2e_lag"]["series"]
    assert series["total"]["buckets"]["+Inf"] == 100 and series["total"]["buckets"]["25"] == 90


def test_gauges_backlog_pending_and_oldest_age(redis_client) -> None:
    s1 = keys.events(1)
    old = int(time.time() * 1000) - 9000
    redis_client.xadd(s1, {"k": "a"}, id=f"{old}-0")
    redis_client.xadd(s1, {"k": "b"})
    redis_client.xadd(s1, {"k": "c"})
    redis_client.xgroup_create(s1, keys.CONSUMER_GROUP, id="0")
    redis_client.xreadgroup(keys.CONSUMER_GROUP, keys.consumer(1), {s1: ">"}, count=1)
    redis_client.xadd(keys.events(3), {"k": "d"})  # no group yet: all of it waits
    redis_client.xadd(keys.DEAD_LETTERS, {"reason": "x"})
    g = read_stats(redis_client, SETTINGS, window="5m")["gauges"]
    by = {row["shard"]: row for row in g["shards"]}
    assert (by[1]["pending"], by[1]["lag"], by[1]["backlog"]) == (1, 2, 3)
    assert 8.5 < by[1]["oldest_age_s"] < 60
    assert by[3]["backlog"] == 1 and by[0]["backlog"] == 0 and by[0]["oldest_age_s"] is None
    assert g["backlog"] == 4 and g["dead_letters"] == 1
    assert g["queue"] == {"name": keys.QUEUE, "depth": 0, "workers": 0}


def test_a_configured_but_quiet_configuration_is_known(redis_client) -> None:
    redis_client.hset(keys.CONFIG_CURRENT, "cfg-quiet", 1)
    out = read_stats(redis_client, SETTINGS, window="1h", configuration="cfg-quiet")
    assert out["summary"]["events"]["window"] == 0 and out["configuration"] == "cfg-quiet"


def test_conversations_by_status_from_the_engine_counts(redis_client, redis_url) -> None:
    """The store moves the per-status counts as it creates, reopens and closes conversations."""
    import asyncio

    import redis.asyncio as aioredis

    from workers.conversations.store import INACTIVE, ConversationStore

    async def engine() -> None:
        client = aioredis.Redis.from_url(redis_url)
        store = ConversationStore(client)
        try:
            made = []
            for n in range(4):
                conv = await store.begin_create("cfg", 1, f"SMS|+1415555000{n}|+14155550100",
                                                "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE")
                if n < 3:
                    pipe = client.pipeline()
                    store.finish_create(pipe, conv, f"conv_conversation_{n}", {})
                    await pipe.execute()
                made.append(conv)
            await store.set_status(made[1].id, INACTIVE)
            await store.set_status(made[1].id, INACTIVE)  # no change: counted once
            await store.close(made[2].id, "timeout")
            await store.close(made[2].id, "timeout")      # already closed: counted once
        finally:
            await client.aclose()

    asyncio.run(engine())
    conv = read_stats(redis_client, SETTINGS, window="5m")["gauges"]["conversations"]
    assert conv["by_status"] == {"ACTIVE": 1, "INACTIVE": 1, "CLOSED": 1, "CREATING": 1}
    assert conv["open"] == 2 and conv["total"] == 4
