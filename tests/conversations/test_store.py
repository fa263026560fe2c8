"""The conversation store on a real Redis: the grouping index, CLOSED never reused, status
changes, activity that only moves forward, the lifecycle timer, listing, and the key lock."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from workers.conversations.store import ACTIVE, CLOSED, CREATING, INACTIVE, ConversationStore, LockTimeout, Participant
from workers.foundations import keys

KEY = "SMS|+14155550100|+14155550123"


def _run(redis_url, body):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await body(ConversationStore(client), client)
        finally:
            await client.aclose()
    return asyncio.run(main())


async def _open(store, client, cfg="main", key=KEY):
    conv = await store.begin_create(cfg, 3, key, "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE")
    pipe = client.pipeline()
    store.finish_create(pipe, conv, f"conv_tw_{conv.id}",
                        {"+14155550123": Participant("p1", "CUSTOMER", "+14155550123", "SMS")})
    await pipe.execute()
    return conv


def test_create_is_recorded_before_it_is_finished(redis_client, redis_url):
    async def body(store, client):
        conv = await store.begin_create("main", 3, KEY, "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE")
        seen = await store.indexed("main", KEY)
        assert seen.id == conv.id and seen.status == CREATING and seen.twilio_id is None
        pipe = client.pipeline()
        store.finish_create(pipe, conv, "conv_tw_1", {})
        await pipe.execute()
        done = await store.get_by_twilio_id("conv_tw_1")
        assert done.id == conv.id and done.status == ACTIVE and done.configuration_version == 3
    _run(redis_url, body)


def test_closed_leaves_the_index_and_stays_closed(redis_client, redis_url):
    async def body(store, client):
        conv = await _open(store, client)
        assert await store.set_status(conv.id, INACTIVE) == ACTIVE
        assert await store.close(conv.id, "timeout") == INACTIVE
        assert await store.indexed("main", KEY) is None
        assert await store.set_status(conv.id, ACTIVE) == CLOSED  # nothing leaves CLOSED
        again = await store.get(conv.id)
        assert again.status == CLOSED and again.closed_reason == "timeout"
        newer = await _open(store, client)  # the key's next conversation is a new one
        assert newer.id != conv.id and (await store.indexed("main", KEY)).id == newer.id
        assert await store.close("tlc_missing", "x") is None
        with pytest.raises(ValueError):
            await store.set_status(newer.id, "OPEN")
    _run(redis_url, body)


def test_touch_moves_forward_and_arms_the_timer(redis_client, redis_url):
    async def body(store, client):
        conv = await _open(store, client)
        first = await store.touch(conv, "SMS", 1000.0, timer_offset=600.0)
        assert first.new_channel and first.last_activity == 1000.0 and first.status == ACTIVE
        late = await store.touch(conv, "SMS", 900.0, timer_offset=600.0)  # an older event
        assert not late.new_channel and late.last_activity == 1000.0
        assert await client.zscore(keys.TIMERS, conv.id) == 1600.0
        await store.touch(conv, "WHATSAPP", 1200.0)
        assert (await store.get(conv.id)).channels == ["SMS", "WHATSAPP"]
        await store.set_status(conv.id, INACTIVE)
        reopen = await store.touch(conv, "SMS", 1300.0, timer_offset=600.0)
        assert reopen.status == INACTIVE
        due = await client.zscore(keys.TIMERS, conv.id)
        assert abs(due - time.time()) < 5  # due now (not at 1900): lifecycle reopens it
    _run(redis_url, body)


def test_list_filters(redis_client, redis_url):
    async def body(store, client):
        a = await _open(store, client, "main", "k1")
        b = await _open(store, client, "other", "k2")
        await store.touch(b, "WHATSAPP", 10.0)
        await store.close(a.id, "explicit")
        assert [c.id for c in await store.list()] == [b.id, a.id]
        assert [c.id for c in await store.list(status=CLOSED)] == [a.id]
        assert [c.id for c in await store.list(channel="WHATSAPP")] == [b.id]
        assert [c.id for c in await store.list(configuration_id="main")] == [a.id]
        assert [c.id for c in await store.list(limit=1, offset=1)] == [a.id]
        assert b.to_api()["participants"][0]["participantId"] == "p1"
    _run(redis_url, body)


def test_key_lock_is_exclusive_and_released(redis_client, redis_url):
    async def body(store, client):
        async with store.lock("main", KEY):
            with pytest.raises(LockTimeout):
                async with store.lock("main", KEY, wait=0.2):
                    pass
            async with store.lock("main", "another key", wait=0.2):
                pass
        async with store.lock("main", KEY, wait=0.2):  # released on exit
            pass
        assert not await client.exists(keys.conversation_lock("main", KEY))
    _run(redis_url, body)


def test_an_open_conversation_costs_a_listpack_record_and_shared_index_fields(redis_client, redis_url):
    """Issue 5's memory budget: no key of its own per index entry, and the record small enough
    for Redis' listpack encoding (read back the same through the store)."""
    async def body(store, client):
        conv = await _open(store, client)
        await store.touch(conv, "SMS", 1000.0, timer_offset=600.0)
        mine = {k.decode() for k in await client.keys("tl:*") if conv.id.encode() in k}
        assert mine == {keys.conversation(conv.id)}
        assert await client.object("encoding", keys.conversation(conv.id)) == b"listpack"
        assert await client.hget(keys.CONVERSATION_TWILIO_IDS, conv.twilio_id) == conv.id.encode()
        again = await store.get(conv.id)
        assert again.participants["+14155550123"].address == "+14155550123"
        assert again.last_activity == {"SMS": 1000.0} and again.twilio_id == conv.twilio_id
    _run(redis_url, body)


def test_touch_held_writes_what_the_touch_script_writes(redis_client, redis_url):
    """The drain's plain-command touch (under the key's lock, deciding from the conversation it
    holds) leaves the record and the timer as the script does, step for step."""
    async def body(store, client):
        a, b = await _open(store, client, key=KEY), await _open(store, client, key=KEY + "b")

        async def held(conv, channel, at, offset=None):
            pipe = client.pipeline(transaction=False)
            touch = store.touch_held(pipe, conv, channel, at, timer_offset=offset)
            await pipe.execute()
            store.touched(conv, channel, touch)
            return touch

        async def same():
            ra, rb = await store.get(a.id), await store.get(b.id)
            assert ra.last_activity == rb.last_activity and ra.status == rb.status
            ta, tb = await client.zscore(keys.TIMERS, a.id), await client.zscore(keys.TIMERS, b.id)
            assert (ta is None) == (tb is None) and (ta is None or abs(ta - tb) < 5)

        for channel, at, offset in (("SMS", 1000.0, 600.0), ("SMS", 900.0, 600.0), ("WHATSAPP", 1200.0, None),
                                    ("SMS", 1000.4, 600.0)):
            want = await store.touch(a, channel, at, timer_offset=offset)
            got = await held(b, channel, at, offset)
            assert got == want
            await same()
        assert await client.zscore(keys.TIMERS, b.id) == 1600.4
        for conv in (a, b):
            await store.set_status(conv.id, INACTIVE)
        b = await store.get(b.id)  # a lane reads the record once it holds the lock
        want = await store.touch(a, "SMS", 1300.0, timer_offset=600.0)
        got = await held(b, "SMS", 1300.0, 600.0)
        assert got == want and got.status == INACTIVE
        await same()  # both due now: lifecycle reopens them
    _run(redis_url, body)
