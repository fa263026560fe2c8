"""Lifecycle deadlines in one Redis sorted set: conversation id → due time (epoch seconds).

Why a sorted set: the scheduler's sweep reads only what is due (``ZRANGEBYSCORE … LIMIT``),
so its cost grows with the number of timers firing, not with the number of open
conversations; and an entry is ~100 bytes, so a million open conversations cost ~100 MB.

A timer is a *lower bound*: when it fires, ``workers.jobs.apply_timeout`` decides
from the stored record (pure rules in ``workers.lifecycle.policy``) and either PATCHes the status or
re-arms the timer for the true deadline. A timer that fires early costs one job; one that is
late would break the 2-second promise, so writers may only ever arm it at or before the true
deadline — which :func:`workers.lifecycle.policy.due_after_communication` guarantees.

The engine arms a timer after delivering a communication, inside the pipeline it already runs::

    timers.schedule(pipe, conversation_id, lifecycle.due_after_communication(...))
"""
from __future__ import annotations

import time

from workers.foundations import keys

# A claimed timer is pushed this far ahead until its job re-arms or removes it: if the job is
# lost (a worker killed mid-run), the timer fires again after this long. Never fires twice in
# effect: the job re-decides from the record and PATCHes only a status that differs.
CLAIM_SECONDS = 15.0


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


# Claims at most ARGV[3] due timers, atomically, and only for the lease holder: each claimed
# entry is pushed CLAIM_SECONDS ahead so no other sweep takes it while its job is queued.
# KEYS: timers, lease. ARGV: now, token, limit, claim_until. Returns [id, due, id, due, …]
# (empty when the caller does not hold the lease).
_CLAIM = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return false end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], ARGV[4], due[i])
end
return due
"""


class Claimer:
    """The sweep's one round trip: a Lua script registered once per connection."""

    def __init__(self, redis) -> None:
        self._script = redis.register_script(_CLAIM)

    def claim(self, now: float, token: str, limit: int) -> list[tuple[str, float]] | None:
        """Due timers (id, due) now owned by this sweep; None when ``token`` lost the lease."""
        raw = self._script(keys=[keys.TIMERS, keys.SCHEDULER_LEASE],
                           args=[repr(now), token, limit, repr(now + CLAIM_SECONDS)])
        if raw is None:
            return None
        out = []
        for i in range(0, len(raw), 2):
            cid = raw[i].decode() if isinstance(raw[i], bytes) else raw[i]
            out.append((cid, float(raw[i + 1])))
        return out


def next_due(redis) -> float | None:
    """The earliest armed deadline (for the scheduler's sleep), or None."""
    first = redis.zrange(keys.TIMERS, 0, 0, withscores=True)
    return float(first[0][1]) if first else None

