"""The shard lease: at most one drain per shard, with a fencing token.

The token comes from the shard's fencing counter (INCR), so a later holder always has a larger
one; the drain's acknowledgements check it (``workers.delivery.drain``), so a holder that stalled past
its lease cannot acknowledge what the next holder is delivering. A holder renews the lease
(and the shard's drain flag) every LEASE_TTL/5 while it runs *and makes progress*: a drain that
has decided no event for ``THREADLINE_DRAIN_STALL_SECONDS`` (a hung request, a lock that never
comes) stops renewing, so it is fenced off and the shard passes to another drain within
stall + LEASE_TTL seconds (DESIGN §5: no shard waits). Renewal stops at once when cancelled.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from workers.foundations import keys

LEASE_TTL_MS = 6_000
FLAG_TTL_S = 300

_RENEW = ("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
          "redis.call('EXPIRE', KEYS[2], ARGV[3]) return 1 end return 0")
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class ShardLeases:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def try_acquire(self, shard: int) -> str | None:
        token = str(await self.redis.incr(keys.fence_counter(shard)))
        if await self.redis.set(keys.shard_lease(shard), token, nx=True, px=LEASE_TTL_MS):
            return token
        return None

    async def acquire(self, shard: int) -> str | None:
        """Take the lease; None when a live drain holds it.

        A live holder renews every LEASE_TTL/5, so a TTL that goes *up* between two looks means
        it is alive (and will re-check the shard when it ends): give up at once. A dead
        holder's lease runs out within LEASE_TTL, and then this drain takes over.
        """
        deadline = time.monotonic() + LEASE_TTL_MS / 1000 + 1
        last_ttl: int | None = None
        while True:
            token = await self.try_acquire(shard)
            if token is not None:
                return token
            ttl = await self.redis.pttl(keys.shard_lease(shard))
            if (last_ttl is not None and ttl > last_ttl + 50) or time.monotonic() > deadline:
                return None
            last_ttl = ttl
            await asyncio.sleep(0.2)

    async def keep(self, shard: int, token: str, lost: asyncio.Event,
                   progressed_at: Callable[[], float], stall_s: float) -> None:
        """Renew until cancelled; sets ``lost`` when the lease is no longer this token's, or
        when the drain made no progress (``progressed_at``, monotonic) for ``stall_s``: then
        the lease is given back at once rather than left to run out.

        A renewal that fails on a Redis error (a restart, a failover) is tried again at the next
        period; only when no renewal has gone through for a whole LEASE_TTL is the lease taken
        as lost. (Before, the error ended the renewer silently: the drain ran on unrenewed, its
        lease lapsed under it and another drain took the shard while it still delivered.)"""
        renewed_at = time.monotonic()
        while not lost.is_set():
            await asyncio.sleep(LEASE_TTL_MS / 5000)
            try:
                if time.monotonic() - progressed_at() > stall_s:
                    lost.set()
                    await self.release(shard, token)
                    return
                ok = await self._renew(keys=[keys.shard_lease(shard), keys.drain_flag(shard)],
                                       args=[token, LEASE_TTL_MS, FLAG_TTL_S])
            except (RedisError, OSError):
                if time.monotonic() - renewed_at > LEASE_TTL_MS / 1000:
                    lost.set()
                    return
                continue
            if not ok:
                lost.set()
                return
            renewed_at = time.monotonic()

    async def release(self, shard: int, token: str) -> None:
        await self._release(keys=[keys.shard_lease(shard)], args=[token])

    async def adoptable(self, shards: int, skip: set[int]) -> list[int]:
        """Shards with entries in their log and no lease holder (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for n in range(shards):
            pipe.xlen(keys.events(n))
            pipe.exists(keys.shard_lease(n))
        res = await pipe.execute()
        return [n for n in range(shards) if n not in skip and res[2 * n] and not res[2 * n + 1]]


async def drain_job_waiting(redis, queue_key: str, shard: int) -> bool:
    """Whether a drain job for ``shard`` waits in the RQ queue (one LRANGE, one HGET per job:
    asked only when a drain hands back a shard it adopted while flagged)."""
    from rq.job import Job

    ids = await redis.lrange(queue_key, 0, -1)
    if not ids:
        return False
    pipe = redis.pipeline(transaction=False)
    for i in ids:
        pipe.hget(Job.key_for(i.decode() if isinstance(i, bytes) else i), "description")
    want = f"drain shard {shard}"
    return any((d.decode() if isinstance(d, bytes) else d) == want for d in await pipe.execute())
