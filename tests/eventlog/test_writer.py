"""workers.eventlog.writer: the one-round-trip append every writer of the log uses (web, spool
replay, dlq replay), called directly against this run's real Redis."""
from __future__ import annotations

import asyncio

import fakeredis

from workers import eventlog, stats
from workers.eventlog.entries import LogEntry
from workers.foundations import keys
from workers.foundations.settings import Settings

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


def test_one_append_alone_costs_seven_commands(start_valkey):
    """A private server, so INFO commandstats counts only this test: one delivery appended to
    a shard whose stream exists (the steady state) costs the EVALSHA and six inner calls — GET
    and SET of its dedupe marker, XADD, the drain flag's SET NX, the two counters — and a
    second delivery of the same minute and kind no EXPIRE either; a duplicate costs its GET."""
    client = start_valkey(aof=False).client()
    eventlog.append(client, _entry("SM0"), "m:SM0", 0, SETTINGS)  # the stream and its group
    client.config_resetstat()
    eventlog.append(client, _entry("SM1"), "m:SM1", 0, SETTINGS)
    calls = _calls(client)
    assert calls == {"evalsha": 1, "get": 1, "xadd": 1, "set": 2, "hincrby": 2}, calls
    client.config_resetstat()
    eventlog.append(client, _entry("SM1"), "m:SM1", 0, SETTINGS)
    assert _calls(client) == {"evalsha": 1, "get": 1, "hincrby": 2, "expire": 1}  # a new field
    client.config_resetstat()
    eventlog.append(client, _entry("SM1"), "m:SM1", 0, SETTINGS)
    assert _calls(client) == {"evalsha": 1, "get": 1, "hincrby": 2}


def _calls(client) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"])
            for name, v in client.info("commandstats").items()
            if name not in ("cmdstat_info", "cmdstat_config|resetstat")}


def test_the_minute_hash_gets_its_ttl_with_each_new_field(redis_client):
    now = 1_800_000_000.0
    minute = keys.stats_minute(stats.minute_of(now))
    eventlog.append(redis_client, _entry("SM1"), "m:SM1", 0, SETTINGS, now=now)
    assert 0 < redis_client.ttl(minute) <= 10 * 60 + 120
    redis_client.expire(minute, 5000)
    eventlog.append(redis_client, _entry("SM2"), "m:SM2", 0, SETTINGS, now=now)
    assert 4000 < redis_client.ttl(minute) <= 5000  # the field was there: its TTL stands
    eventlog.append(redis_client, _entry("SM2"), "m:SM2", 0, SETTINGS, now=now)  # a duplicate: new field
    assert 0 < redis_client.ttl(minute) <= 10 * 60 + 120


def test_a_stream_deleted_under_the_log_comes_back_with_its_group(redis_client):
    assert eventlog.append(redis_client, _entry("SM1"), "m:SM1", 5, SETTINGS).stored
    redis_client.delete(keys.events(5))
    again = eventlog.append(redis_client, _entry("SM2"), "m:SM2", 5, SETTINGS)
    assert again.stored and redis_client.xlen(keys.events(5)) == 1
    assert [g["name"] for g in redis_client.xinfo_groups(keys.events(5))] == [b"threadline"]
    assert redis_client.xinfo_groups(keys.events(5))[0]["last-delivered-id"] == b"0-0"
