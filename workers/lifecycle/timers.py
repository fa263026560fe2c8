"""Lifecycle deadlines in one Redis sorted set: conversation id → due time (epoch seconds).

Why a sorted set: the workers' claim reads only what is due (``ZRANGEBYSCORE … LIMIT``),
so its cost grows with the number of timers firing, not with the number of open
conversations; and an entry is ~100 bytes, so a million open conversations cost ~100 MB.

A timer is a *lower bound*: when it fires, a worker's applier (:mod:`.applier`, :mod:`.expiry`)
decides from the stored record (pure rules in ``workers.lifecycle.policy``) and either PATCHes the
status or re-arms the timer for the true deadline. A timer that fires early costs one decision; one that is
late would break the 2-second promise, so writers may only ever arm it at or before the true
deadline — which :func:`workers.lifecycle.policy.due_after_communication` guarantees.

The engine arms a timer after delivering a communication, inside the pipeline it already runs::

    timers.schedule(pipe, conversation_id, lifecycle.due_after_communication(...))
"""
from __future__ import annotations

import time

from workers.foundations import keys

# A claimed timer is pushed this far ahead while a worker applies it (:mod:`.applier`), and the
# worker pushes it again every RENEW_EVERY seconds until the transition is done: a live worker's
# timer is never taken from it, and a killed worker's timers come back within CLAIM_SECONDS —
# under the soak's 10-second bound, where the old 15-second claim of a queued job was not.
# Never twice in effect either way: the transition re-decides from the record under the grouping
# key's lock and PATCHes only a status that differs (:mod:`.expiry`).
CLAIM_SECONDS = 6.0
RENEW_EVERY = 2.0


def schedule(pipe, conversation_id: str, due: float) -> None:
    """Arm (or move) the conversation's timer to ``due``. Queues one ZADD on ``pipe``."""
    pipe.zadd(keys.TIMERS, {conversation_id: due})


def schedule_now(pipe, conversation_id: str) -> None:
    """Ask for a decision at the next sweep (e.g. traffic reached an INACTIVE conversation)."""
    schedule(pipe, conversation_id, time.time())


def cancel(pipe, conversation_id: str) -> None:
    """Drop the conversation's timer (it is CLOSED)."""
    pipe.zrem(keys.TIMERS, conversation_id)


def due_of(redis, conversation_id: str) -> float | None:
    score = redis.zscore(keys.TIMERS, conversation_id)
    return None if score is None else float(score)


def count(redis) -> int:
    return int(redis.zcard(keys.TIMERS))


# Claims at most ARGV[2] due timers, atomically: each claimed entry is pushed to ARGV[3] (now +
# CLAIM_SECONDS) so no other worker takes it while this one applies it.
# KEYS: timers. ARGV: now, limit, claim_until. Returns [id, due, id, due, …].
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], ARGV[3], due[i])
end
return due
"""


class Claimer:
    """A worker's claim: one round trip (a Lua script registered once per connection), on the
    worker's asyncio Redis client. Any number of workers claim side by side; each due timer
    goes to exactly one of them."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_CLAIM)

    async def claim(self, now: float, limit: int) -> list[tuple[str, float]]:
        """At most ``limit`` due timers ``(id, due)``, now this caller's for CLAIM_SECONDS."""
        raw = await self._script(keys=[keys.TIMERS], args=[repr(now), limit, repr(now + CLAIM_SECONDS)])
        out = []
        for i in range(0, len(raw or ()), 2):
            cid = raw[i].decode() if isinstance(raw[i], bytes) else raw[i]
            out.append((cid, float(raw[i + 1])))
        return out

    async def hold(self, conversation_ids: list[str], now: float) -> None:
        """Keep the claims of the timers still being applied (``ZADD XX GT``): an entry already
        removed stays removed (XX), and one re-armed later than the claim keeps its deadline (GT)."""
        if conversation_ids:
            await self.redis.zadd(keys.TIMERS, dict.fromkeys(conversation_ids, now + CLAIM_SECONDS),
                                  xx=True, gt=True)
