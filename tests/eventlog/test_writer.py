"""workers.eventlog.writer: the one-round-trip append every writer of the log uses (web, spool
replay, dlq replay), called directly against this run's real Redis."""
from __future__ import annotations

import asyncio

import fakeredis

from workers import eventlog, keys, stats
from workers.eventlog.entries import LogEntry
from workers.settings import Settings

SETTINGS = Settings(dedupe_window=3600, stats_retention_minutes=10)


def _entry(sid: str = "SM1") -> LogEntry:
    return LogEntry("message", 1_700_000_000_000, "AC1",
                    {"MessageSid": sid, "From": "+14155550123", "To": "+14155550100", "Body": "hé"},
                    {"tenant": "t1"}, "cid1")


def test_append_dedupes_counts_and_flags_the_shard(redis_client):
    now = 1_800_000_000.0
    first = eventlog.append(redis_client, _entry(), "m:SM1", 3, SETTINGS, now=now)
    again = eventlog.append(redis_client, _entry(), "m:SM1", 3, SETTINGS, now=now)
    other = eventlog.append(redis_client, _entry("SM2"), "m:SM2", 3, SETTINGS, now=now)
    assert first.stored and first.drain_needed
    assert not again.stored and again.entry_id == first.entry_id and not again.drain_needed
    assert other.stored and not other.drain_needed  # the flag was already set
    [(eid, fields)] = redis_client.xrange(keys.events(3), count=1)
    assert eid.decode() == first.entry_id
    assert LogEntry.from_fields(fields) == _entry()
    assert redis_client.get(keys.dedupe("m:SM1")).decode() == first.entry_id
    assert 3500 < redis_client.ttl(keys.dedupe("m:SM1")) <= 3600
    assert 0 < redis_client.ttl(keys.drain_flag(3)) <= eventlog.DRAIN_FLAG_TTL_SECONDS
    minute = keys.stats_minute(stats.minute_of(now))
    for key in (keys.STATS_TOTAL, minute):
        assert redis_client.hget(key, "webhooks|message|accepted") == b"2"
        assert redis_client.hget(key, "webhooks|message|duplicate") == b"1"
    assert 0 < redis_client.ttl(minute) <= 10 * 60 + 120
    assert [g["name"] for g in redis_client.xinfo_groups(keys.events(3))] == [b"threadline"]


def test_no_dedupe_key_always_stores_under_the_callers_outcome(redis_client):
    a = eventlog.append(redis_client, _entry(), None, 0, SETTINGS, outcome="replayed")
    b = eventlog.append(redis_client, _entry(), None, 0, SETTINGS, outcome="replayed")
    assert a.stored and b.stored and a.entry_id != b.entry_id
    assert redis_client.hget(keys.STATS_TOTAL, "webhooks|message|replayed") == b"2"


def test_append_many_and_async_share_the_dedupe(redis_client, redis_url):
    import redis.asyncio as aioredis

    items = [(_entry("SM7"), "m:SM7", 1), (_entry("SM7"), "m:SM7", 1), (_entry("SM8"), "m:SM8", 2)]
    redis_client.script_flush()  # as after a Redis restart: the pipeline reloads the script
    results = eventlog.append_many(redis_client, items, SETTINGS, outcome=eventlog.SPOOLED)
    assert [r.stored for r in results] == [True, False, True]
    assert [r.drain_needed for r in results] == [True, False, True]

    async def go():
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.script_flush()
            one = await eventlog.append_async(client, _entry("SM7"), "m:SM7", 1, SETTINGS)
            await client.script_flush()
            many = await eventlog.append_many_async(client, [(_entry("SM9"), "m:SM9", 1)], SETTINGS)
            return one, many
        finally:
            await client.aclose()

    one, many = asyncio.run(go())
    assert not one.stored and many[0].stored
    assert redis_client.hget(keys.STATS_TOTAL, "webhooks|message|spooled") == b"2"


def test_the_script_runs_on_the_embedded_redis_of_dev_mode():
    """fakeredis on purpose: ``threadline dev`` without a Redis runs this script on the
    embedded fakeredis (memory://), so its Lua support must cover every command used."""
    client = fakeredis.FakeRedis()
    assert eventlog.append(client, _entry(), "m:SM1", 0, SETTINGS).stored
    assert not eventlog.append(client, _entry(), "m:SM1", 0, SETTINGS).stored
    assert client.xlen(keys.events(0)) == 1
    assert client.xinfo_groups(keys.events(0))[0]["name"] == b"threadline"


def test_a_batch_over_the_script_limit_is_split_and_counted_once_per_delivery(redis_client):
    # 300 deliveries over 4 shards with every 10th a copy of the one before: more than one
    # script call (MAX_BATCH), duplicates inside a call and across calls, one flag per shard.
    items = []
    for i in range(300):
        sid = f"SM{i - 1 if i % 10 == 9 else i}"
        items.append((_entry(sid), f"m:{sid}", i % 4))
    assert len(items) > eventlog.MAX_BATCH
    results = eventlog.append_many(redis_client, items, SETTINGS, now=1_800_000_000.0)
    assert [r.stored for r in results] == [i % 10 != 9 for i in range(300)]
    assert sum(r.drain_needed for r in results) == 4  # the first delivery of each shard
    assert sum(redis_client.xlen(keys.events(s)) for s in range(4)) == 270
    assert redis_client.hget(keys.STATS_TOTAL, "webhooks|message|accepted") == b"270"
    assert redis_client.hget(keys.STATS_TOTAL, "webhooks|message|duplicate") == b"30"
    dup = results[9]
    assert dup.entry_id == results[8].entry_id  # a duplicate names the entry it repeats
