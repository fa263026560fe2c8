"""The retention sweep: what a CLOSED conversation leaves in Redis goes after THREADLINE_RETENTION_DAYS.

A closed conversation is never reused (DESIGN §4), but its record (``tl:conv:{id}``), its entry
in the listing (``tl:convs``), its v2-id map entry (``tl:convtw``) and its lifecycle leftovers
would otherwise stay forever — ~670 B each, and under ``noeviction`` a full Redis refuses
webhooks. The close script puts each id into ``tl:convs:closed`` (scored by when it closed);
the scheduler's leader calls :func:`sweep`, which deletes, a batch at a time, every trace of the
conversations that closed before the cutoff, so memory per closed conversation returns to
zero. The status count (``CLOSED``) moves with them: the gauges count what is kept.

Synchronous on purpose: the scheduler runs it with its own client between timer sweeps.
"""
from __future__ import annotations

import time

from workers import keys
from workers.constants import CLOSED
from workers.conversations.record import from_hash
from workers.text import as_str

BATCH = 500


def cutoff(retention_days: float, now: float | None = None) -> float:
    """Conversations closed before this (epoch s) are swept."""
    return (time.time() if now is None else now) - retention_days * 86400


def sweep(redis, retention_days: float, *, now: float | None = None, limit: int = 10_000) -> int:
    """Delete every trace of conversations closed more than ``retention_days`` ago (at most
    ``limit`` in one call); the number deleted."""
    before = cutoff(retention_days, now)
    done = 0
    while done < limit:
        ids = [as_str(i) for i in redis.zrangebyscore(keys.CONVERSATIONS_CLOSED, "-inf", before,
                                                  start=0, num=min(BATCH, limit - done))]
        if not ids:
            break
        read = redis.pipeline(transaction=False)
        for cid in ids:
            read.hgetall(keys.conversation(cid))
        records = read.execute()
        pipe = redis.pipeline(transaction=True)
        for cid, raw in zip(ids, records):
            conv = from_hash(cid, raw)
            pipe.zrem(keys.CONVERSATIONS_CLOSED, cid)
            if conv is not None and conv.status != CLOSED:
                continue  # cannot happen (nothing leaves CLOSED); never delete an open one
            if conv is not None:
                pipe.delete(keys.conversation(cid))
                pipe.hincrby(keys.CONVERSATION_STATUS_COUNTS, CLOSED, -1)
                if conv.twilio_id:
                    pipe.hdel(keys.CONVERSATION_TWILIO_IDS, conv.twilio_id)
            pipe.zrem(keys.CONVERSATIONS, cid)
            pipe.zrem(keys.TIMERS, cid)
            pipe.hdel(keys.LIFECYCLE_SINCE, cid)
            pipe.hdel(keys.LIFECYCLE_FLAGGED, cid)
            pipe.delete(keys.lifecycle_pending(cid))
        pipe.execute()
        done += len(ids)
    return done
