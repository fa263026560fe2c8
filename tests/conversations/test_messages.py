"""The message memory on a real Redis: the best status only moves up, the occurredAt is fixed
once, what v2 accepted is kept per conversation, and a lane's copy follows its writes."""
from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from workers.conversations.messages import STATE_TTL_SECONDS, MessageMemory, first_posts, observed, tried_elsewhere
from workers.foundations import keys

SID, OTHER = "SM" + "a" * 32, "SM" + "b" * 32


def test_observed_raises_the_status_by_rank_and_fixes_the_time_once() -> None:
    s = observed(("", "", ""), "IN_PROGRESS", "2026-01-01T00:00:00Z")
    assert (s.best, s.occurred_at, s.changed) == ("IN_PROGRESS", "2026-01-01T00:00:00Z",
                                                  (("best", "IN_PROGRESS"), ("at", "2026-01-01T00:00:00Z")))
    late = observed(("DELIVERED", "2026-01-01T00:00:00Z", "DELIVERED"), "INITIATED", "2026-01-02T00:00:00Z")
    assert late.best == "DELIVERED" and late.occurred_at == "2026-01-01T00:00:00Z" and late.changed == ()
    assert late.up_to_date
    better = observed(("IN_PROGRESS", "t", "IN_PROGRESS"), "READ", None)
    assert better.changed == (("best", "READ"),) and not better.up_to_date


def test_where_else_a_message_may_be_is_read_from_its_own_state() -> None:
    """Issue 12: the closed conversations a message's event checks before it is posted into the
    grouping key's open one (``current``) come from the message's state, per configuration."""
    tried_c1 = {"best": "sent", "tried:c1": "main"}
    assert tried_elsewhere(tried_c1, "main", "c2") == ["c1"]           # interrupted in c1: look there
    assert tried_elsewhere(tried_c1, "main", None) == ["c1"]
    assert tried_elsewhere(tried_c1, "other", "c2") == []               # another configuration's
    assert tried_elsewhere(tried_c1, "main", "c1") == []                # c1 is the open one
    posted_c1 = {**tried_c1, "posted:c1": "sent", "tried:c2": "main"}
    assert tried_elsewhere(posted_c1, "main", "c2") == ["c1"]           # the mark says it: c1
    # tried in c1, refused there (Twilio had closed it), posted in c2: c1 is never looked up
    # again on its later status callbacks, in c2 or in c3
    moved = {**tried_c1, "tried:c2": "main", "posted:c2": "sent"}
    assert tried_elsewhere(moved, "main", "c2") == []
    assert tried_elsewhere(moved, "main", "c3") == ["c2"]
    assert tried_elsewhere({"posted:old": "read"}, "main", "c2") == ["old"]  # marked before tried: existed
    assert tried_elsewhere({"posted:x": "read", "tried:x": "other"}, "main", "c2") == []


def test_a_lanes_first_post_records_its_untried_messages_with_it() -> None:
    states = {"m1": {}, "m2": {"posted:c": "sent", "tried:c": "main"}, "m3": {"tried:c": "main"},
              "m4": {"best": "sent"}, "m5": {"posted:d": "sent"}}
    assert first_posts(states, "c", "m1", ["m1", "m2", "m3", "m4", "m5", "m6"]) == ["m1", "m4", "m5"]


def _run(redis_url, body):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await body(MessageMemory(client), client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def test_load_observe_write_on_redis(redis_client, redis_url) -> None:
    async def body(memory, client):
        states: dict = {}
        await memory.load([SID, OTHER, SID], states)
        assert states == {SID: {}, OTHER: {}}
        first = memory.observe(states[SID], "IN_PROGRESS", "2026-01-01T00:00:00Z", "c1")
        assert first.posted == "" and not first.up_to_date
        pipe = client.pipeline(transaction=False)
        memory.write(pipe, SID, first, "c1", first.best, known=states[SID])
        assert memory.observe(states[SID], "IN_PROGRESS", None, "c1").up_to_date  # the copy follows
        await pipe.execute()
        assert 0 < await client.ttl(keys.message_state(SID)) <= STATE_TTL_SECONDS
        fresh: dict = {}
        await memory.load([SID], fresh)
        assert fresh[SID] == states[SID]  # what Redis holds is what the lane's copy says
        again = memory.observe(fresh[SID], "IN_PROGRESS", None, "c1")
        assert again.up_to_date and again.changed == ()
        other = memory.observe(fresh[SID], "IN_PROGRESS", None, "c2")  # another conversation
        assert other.posted == "" and not other.up_to_date
        failed = memory.observe(fresh[SID], "DELIVERED", None, "c1")
        pipe = client.pipeline(transaction=False)
        memory.write(pipe, SID, failed, known=fresh[SID])  # the post failed: the status still counts
        await pipe.execute()
        retry = memory.observe(fresh[SID], "INITIATED", None, "c1")
        assert retry.best == "DELIVERED" and retry.posted == "IN_PROGRESS" and not retry.up_to_date
        assert await memory.posted_in(SID) == ["c1"]
    _run(redis_url, body)
