"""GROUP_BY_PROFILE through a Memory store: the resolver against the twin over real HTTP, real
Redis for the cache, the lock and the counters."""
from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from workers import stats
from workers.delivery.profiles import ProfileResolver, ProfileUnavailable, identifiers, resolver_for
from workers.foundations import keys
from workers.twilio.client import V2Client


def _run(redis_url, settings, fn):
    async def go():
        r = aioredis.Redis.from_url(redis_url)
        client = V2Client(settings)
        try:
            return await fn(resolver_for(r, client, settings))
        finally:
            await client.aclose()
            await r.aclose()
    return asyncio.run(go())


def _total(redis_client, name, *labels) -> int:
    return int(redis_client.hget(keys.STATS_TOTAL, stats.field(name, *labels)) or 0)


def test_identifiers_by_channel():
    assert identifiers("SMS", "+15551234567") == [("phone", "+15551234567")]
    assert identifiers("WHATSAPP", "+15551234567") == [("whatsapp", "+15551234567"), ("phone", "+15551234567")]
    assert identifiers("VOICE", "sip:+15551234567@acme.sip.twilio.com") == [("phone", "+15551234567")]
    assert identifiers("VOICE", "client:alice") == []
    assert identifiers("VOICE", "sip:alice@acme.sip.twilio.com") == []


def test_unknown_customer_gets_one_profile_then_the_cache_answers(twin, redis_client, redis_url):
    store = twin.create_memory_store()
    settings = twin.settings(max_attempts=2)

    async def twice(res: ProfileResolver):
        first = await res.resolve("sales", store, "SMS", "+15551230001")
        second = await res.resolve("sales", store, "VOICE", "+15551230001")
        return first, second
    first, second = _run(redis_url, settings, twice)
    assert first.source == "created" and first.memory_profile
    assert second.profile_id == first.profile_id and second.source == "cache"
    profiles = twin.state()["memory"][store]
    assert [p["id"] for p in profiles] == [first.profile_id]
    assert profiles[0]["identifiers"]["phone"] == ["+15551230001"]
    lookups = sum(n for route, by in twin.counts()["routes"].items() if "Lookup" in route
                  for n in by.values())
    assert lookups == 1  # the second resolution was the cache's
    assert _total(redis_client, "profile_resolutions", "sales", "created") == 1


def test_linked_numbers_and_whatsapp_resolve_to_one_profile(twin, redis_client, redis_url):
    store = twin.create_memory_store()
    kiran = twin.create_profile(store, phone=["+15551234567", "+15559876543"])

    async def three(res: ProfileResolver):
        return [await res.resolve("cfg", store, ch, a) for ch, a in
                (("SMS", "+15551234567"), ("WHATSAPP", "+15551234567"), ("SMS", "+15559876543"))]
    got = _run(redis_url, twin.settings(), three)
    assert {g.profile_id for g in got} == {kiran}
    assert got[0].source == "memory"
    assert len(twin.state()["memory"][store]) == 1  # nothing created


def test_concurrent_first_sight_across_resolvers_creates_one_profile(twin, redis_client, redis_url):
    store = twin.create_memory_store()
    settings = twin.settings()

    async def go():
        rs = [aioredis.Redis.from_url(redis_url) for _ in range(6)]
        clients = [V2Client(settings) for _ in rs]
        try:
            got = await asyncio.gather(*(resolver_for(r, c, settings).resolve(
                "cfg", store, "SMS", "+15551230009") for r, c in zip(rs, clients)))
            return {g.profile_id for g in got}
        finally:
            for r, c in zip(rs, clients):
                await c.aclose()
                await r.aclose()
    assert len(asyncio.run(go())) == 1
    assert len(twin.state()["memory"][store]) == 1


def test_missing_store_falls_back_to_addresses_loudly(twin, redis_client, redis_url, caplog):
    settings = twin.settings()

    async def twice(res: ProfileResolver):
        return [await res.resolve("support", "mem_store_doesnotexist0000000000", "SMS", "+15551230002")
                for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="threadline.profiles"):
        got = _run(redis_url, settings, twice)
    assert [g.profile_id for g in got] == [None, None]
    assert got[0].reason == "memory_http_404" and got[1].reason == "memory_store_invalid"
    assert _total(redis_client, "profile_fallbacks", "support", "memory_http_404") == 1
    assert _total(redis_client, "profile_fallbacks", "support", "memory_store_invalid") == 1
    assert any("fell back to addresses" in r.getMessage() for r in caplog.records)
    # the second event did not ask Memory again: the store is marked bad for a while
    assert redis_client.exists(keys.memory_store_bad("mem_store_doesnotexist0000000000"))


def test_transient_memory_failure_is_retried_then_reported(twin, redis_client, redis_url):
    store = twin.create_memory_store()
    twin.set_faults(rate_503=1.0, path="/Profiles")
    settings = twin.settings(max_attempts=3, retry_base=0.01, retry_cap=0.02)
    with pytest.raises(ProfileUnavailable):
        _run(redis_url, settings, lambda res: res.resolve("cfg", store, "SMS", "+15551230003"))
    routes = twin.counts()["routes"]
    lookups = sum(n for route, by in routes.items() if "Lookup" in route for n in by.values())
    assert lookups == 3  # every attempt the client was allowed
    assert _total(redis_client, "profile_resolutions", "cfg", "unavailable") == 1
    assert not redis_client.exists(keys.memory_store_bad(store))  # transient is not "invalid"
    twin.clear_faults()
    ok = _run(redis_url, settings, lambda res: res.resolve("cfg", store, "SMS", "+15551230003"))
    assert ok.profile_id and ok.source == "created"


def test_the_profile_lock_outlives_slow_memory_calls(twin, redis_client, redis_url, monkeypatch):
    """Two workers resolve one new customer while Memory answers slower than the lock's TTL:
    the lock is renewed while held, so the second waits and finds the first's profile in the
    cache. (Without renewal both looked up and created; Memory's create resolves a promoted
    identifier to the existing profile, so the harm was doubled calls, not a second profile.)"""
    from workers.delivery import profiles

    monkeypatch.setattr(profiles, "LOCK_TTL_MS", 600)  # Memory below takes 1.2 s a call
    store = twin.create_memory_store()
    settings = twin.settings(max_attempts=2, twilio_timeout=5)
    twin.set_faults(latency_ms=1200, path="/Profiles")

    async def two_workers(res: ProfileResolver):
        other = resolver_for(res.redis, res.memory.v2, settings)  # a second worker's resolver
        return await asyncio.gather(res.resolve("sales", store, "SMS", "+15551239001"),
                                    other.resolve("sales", store, "SMS", "+15551239001"))
    try:
        first, second = _run(redis_url, settings, two_workers)
    finally:
        twin.clear_faults()
    assert first.profile_id == second.profile_id
    assert len(twin.state()["memory"][store]) == 1
    creates = sum(n for route, by in twin.counts()["routes"].items()
                  if route.startswith("POST") and route.endswith("/Profiles") for n in by.values())
    assert creates == 1 and {first.source, second.source} == {"created", "cache"}
