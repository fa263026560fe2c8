"""Retention (DESIGN §5: nothing grows without bound): what a CLOSED conversation leaves in
Redis is deleted after THREADLINE_RETENTION_DAYS, so memory per closed conversation returns to
zero; open conversations are never touched. Real Redis; the scheduler's own tick runs the sweep.
"""
from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from tests.conversations.test_store import _open
from workers.conversations import retention
from workers.conversations.store import ConversationStore
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.scheduler import Scheduler

N = 50
SHARED = (keys.CONVERSATIONS, keys.CONVERSATION_TWILIO_IDS, keys.CONVERSATION_INDEX,
          keys.CONVERSATIONS_CLOSED, keys.TIMERS, keys.LIFECYCLE_SINCE, keys.CONVERSATION_STATUS_COUNTS)


def _footprint(client) -> tuple[int, int, dict]:
    """(bytes of every conversation key, how many per-conversation keys, entries per shared key)."""
    names = [k for k in client.scan_iter(match=f"{keys.PREFIX}conv*", count=1000)]
    names += [k for k in client.scan_iter(match=f"{keys.PREFIX}lc:*", count=1000)]
    names += [k.encode() for k in (keys.TIMERS,) if client.exists(k)]
    # the status counts are four fixed fields (CLOSED = 0 after the sweep), not per conversation
    memory = sum(client.memory_usage(k) or 0 for k in set(names)
                 if k != keys.CONVERSATION_STATUS_COUNTS.encode())
    per_conv = sum(1 for k in names if k.startswith(keys.conversation("").encode()))
    sizes = {}
    for k in SHARED:
        if k == keys.CONVERSATION_STATUS_COUNTS:  # counts that are zero are no entries
            sizes[k] = sorted((f, n) for f, n in client.hgetall(k).items() if int(n))
            continue
        kind = client.type(k).decode()
        sizes[k] = {"zset": client.zcard, "hash": client.hlen, "none": lambda _k: 0}[kind](k)
    return memory, per_conv, sizes


def _make(redis_url: str, n: int, close: bool, area: str = "6") -> list[str]:
    async def main() -> list[str]:
        client = aioredis.Redis.from_url(redis_url)
        store = ConversationStore(client)
        ids = []
        try:
            for i in range(n):
                conv = await _open(store, client, key=f"SMS|+14155550100|+141555{area}{i:04d}")
                await store.touch(conv, "SMS", time.time(), timer_offset=60.0)
                await client.hset(keys.LIFECYCLE_SINCE, conv.id, str(time.time()))
                if close:
                    await store.close(conv.id, "timeout")
                ids.append(conv.id)
        finally:
            await client.aclose()
        return ids
    return asyncio.run(main())


def test_memory_per_closed_conversation_returns_to_zero_after_the_sweep(redis_client, redis_url):
    (kept,) = _make(redis_url, 1, close=False, area="7")  # an open conversation: never swept
    before = _footprint(redis_client)
    _make(redis_url, N, close=True)
    grown = _footprint(redis_client)
    assert grown[0] > before[0] and grown[1] == before[1] + N
    # not yet past retention: nothing goes
    assert retention.sweep(redis_client, retention_days=30) == 0
    swept = retention.sweep(redis_client, retention_days=30, now=time.time() + 31 * 86400)
    assert swept == N
    after = _footprint(redis_client)
    assert after[1:] == before[1:], (before, after)          # no key, no entry left behind
    assert (after[0] - before[0]) / N == 0, (before, after)  # bytes per closed conversation
    assert redis_client.hget(keys.CONVERSATION_STATUS_COUNTS, "CLOSED") == b"0"
    assert redis_client.exists(keys.conversation(kept))


def test_the_scheduler_sweeps_with_a_tiny_retention(redis_client, redis_url):
    settings = load_settings(redis_url=redis_url, shards=4, THREADLINE_RETENTION_DAYS=0.5 / 86400)
    ids = _make(redis_url, 3, close=True)
    sched = Scheduler(settings, redis_client)
    time.sleep(0.6)
    sched.tick()
    assert sched.swept == 3
    assert not any(redis_client.exists(keys.conversation(c)) for c in ids)
    assert redis_client.zcard(keys.CONVERSATIONS) == 0


def test_conversations_closed_before_the_closed_index_are_backfilled_then_swept(redis_client, redis_url):
    """Records closed by code older than ``tl:convs:closed`` are not in it, so the sweep would
    never find them. The backfill reads the listing once (a page at a time, a cursor kept in
    Redis), puts every CLOSED record in the index at its close time, and then says done."""
    old = _make(redis_url, 7, close=True)
    redis_client.zrem(keys.CONVERSATIONS_CLOSED, *old)      # closed before the index existed
    (kept,) = _make(redis_url, 1, close=False, area="7")
    closed_at = {c: int(redis_client.hget(keys.conversation(c), "t1")) / 1000 for c in old}
    assert retention.sweep(redis_client, 30, now=time.time() + 31 * 86400) == 0  # invisible to it

    assert retention.backfill(redis_client, pages=1, page=3) == 3   # one page of three
    assert redis_client.get(keys.CONVERSATIONS_CLOSED_BACKFILL) not in (None, retention.DONE)
    assert retention.backfill(redis_client, page=3) == 4            # the rest, then done
    assert redis_client.get(keys.CONVERSATIONS_CLOSED_BACKFILL) == retention.DONE
    assert retention.backfill(redis_client, page=3) == 0
    assert dict(redis_client.zrange(keys.CONVERSATIONS_CLOSED, 0, -1, withscores=True)) == {
        c.encode(): closed_at[c] for c in old}
    assert redis_client.zscore(keys.CONVERSATIONS_CLOSED, kept) is None  # open: not in the index

    assert retention.sweep(redis_client, 30, now=time.time() + 31 * 86400) == 7
    assert not any(redis_client.exists(keys.conversation(c)) for c in old)
    assert redis_client.exists(keys.conversation(kept))


def test_a_swept_conversation_takes_its_attempt_set_and_its_latest_mark_along(redis_client, redis_url):
    """What the release before issue 12's second part left per conversation (a post's attempt
    set, the key's ``tl:convlast`` field; nothing writes them now) goes with the conversation;
    the ``tl:convlast`` field only while it still names the swept one, not a newer one."""
    a, b = _make(redis_url, 2, close=True, area="8")
    key_of = {c: f"SMS|+14155550100|+1415558{i:04d}" for i, c in enumerate((a, b))}
    pipe = redis_client.pipeline(transaction=False)
    for c in (a, b):
        pipe.sadd(keys.message_attempts(c), "SM" + "1" * 32)
        pipe.hset(keys.CONVERSATION_LAST, keys.conversation_index_field("main", key_of[c]), c)
    # b's key has a newer conversation since
    pipe.hset(keys.CONVERSATION_LAST, keys.conversation_index_field("main", key_of[b]), "tlc_newer")
    pipe.execute()
    assert retention.sweep(redis_client, retention_days=30, now=time.time() + 31 * 86400) == 2
    assert not redis_client.exists(keys.message_attempts(a)) and not redis_client.exists(keys.message_attempts(b))
    assert redis_client.hgetall(keys.CONVERSATION_LAST) == {
        keys.conversation_index_field("main", key_of[b]).encode(): b"tlc_newer"}
