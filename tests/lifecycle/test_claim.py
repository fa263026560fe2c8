"""Workers' claims on the lifecycle timers, on real Redis (workers/lifecycle/timers.py, applier.py).

Every worker claims due timers for itself: each due timer goes to one claimer, a claimed timer
is pushed CLAIM_SECONDS ahead (and kept there while its transition runs), and a claim that is
not kept — its worker was killed — lapses so that another worker applies the timer.
"""
from __future__ import annotations

import asyncio
import time

from tests.delivery.test_lane_session import _run
from workers.foundations import keys
from workers.lifecycle import timers
from workers.lifecycle.applier import INFLIGHT, claim_size


def test_two_workers_claim_each_due_timer_once(redis_client, redis_url) -> None:
    now = time.time()
    redis_client.zadd(keys.TIMERS, {f"conv_{i}": (now - 1 if i < 20 else now + 3600) for i in range(30)})

    async def body(r):
        a, b = timers.Claimer(r), timers.Claimer(r)
        got = await asyncio.gather(a.claim(now, 12), b.claim(now, 12))
        again = await a.claim(now, 50)                       # claimed ones are pushed ahead
        later = await b.claim(now + timers.CLAIM_SECONDS + 1, 50)  # nobody kept them: back
        return got, again, later

    (first, second), again, later = _run(redis_url, body)
    ids = [cid for cid, _ in first + second]
    assert len(ids) == 20 and len(set(ids)) == 20            # all due ones, none twice
    assert {cid for cid, _ in first} & {cid for cid, _ in second} == set()
    assert again == []
    assert sorted(cid for cid, _ in later) == sorted(f"conv_{i}" for i in range(20))
    assert all(due < now for _, due in first + second)      # the deadline, not the claim


def test_a_kept_claim_is_not_taken_and_keeping_never_revives_or_delays_a_timer(redis_client, redis_url) -> None:
    now = time.time()
    redis_client.zadd(keys.TIMERS, {"kept": now - 1, "done": now - 1, "rearmed": now - 1})

    async def body(r):
        c = timers.Claimer(r)
        assert len(await c.claim(now, 10)) == 3
        await r.zrem(keys.TIMERS, "done")                     # its transition closed it
        await r.zadd(keys.TIMERS, {"rearmed": now + 3600})     # re-armed for its next deadline
        await c.hold(["kept", "done", "rearmed"], now + 4)     # the worker keeps its claims
        return await c.claim(now + timers.CLAIM_SECONDS + 1, 10)

    assert _run(redis_url, body) == []                        # the kept claim outlived CLAIM_SECONDS
    assert redis_client.zscore(keys.TIMERS, "done") is None    # not revived
    assert redis_client.zscore(keys.TIMERS, "rearmed") == now + 3600  # not moved
    assert redis_client.zscore(keys.TIMERS, "kept") == now + 4 + timers.CLAIM_SECONDS


def test_a_claim_reads_only_what_is_due(redis_client, redis_url) -> None:
    now = time.time()
    redis_client.zadd(keys.TIMERS, {f"c{i}": (now - 5 if i % 1000 == 0 else now + 86400) for i in range(2500)})
    claimed = _run(redis_url, lambda r: timers.Claimer(r).claim(now, 10))
    assert [cid for cid, _ in claimed] == ["c0", "c1000", "c2000"]


def test_a_worker_claims_only_what_it_can_start() -> None:
    assert claim_size(0) == INFLIGHT
    assert claim_size(INFLIGHT - 3) == 3
    assert claim_size(INFLIGHT) == 0 and claim_size(INFLIGHT + 5) == 0
