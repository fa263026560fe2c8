"""The retention sweep: what a CLOSED conversation leaves in Redis goes after THREADLINE_RETENTION_DAYS.

A closed conversation is never reused (DESIGN §4), but its record (``tl:conv:{id}``), its entry
in the listing (``tl:convs``), its v2-id map entry (``tl:convtw``) and its lifecycle leftovers
would otherwise stay forever — ~670 B each, and under ``noeviction`` a full Redis refuses
webhooks. The close script puts each id into ``tl:convs:closed`` (scored by when it closed);
the scheduler's leader calls :func:`sweep`, which deletes, a batch at a time, every trace of the
conversations that closed before the cutoff, so memory per closed conversation returns to
zero. The status count (``CLOSED``) moves with them: the gauges count what is kept.

Conversations closed before ``tl:convs:closed`` existed are not in it: :func:`backfill` reads
the listing once, a few pages per retention tick, and puts every CLOSED record it finds there
(scored by its last update, which the close script sets to when it closed).

Synchronous on purpose: the scheduler runs it with its own client between timer sweeps.
"""
from __future__ import annotations

import math
import time

from workers.conversations.record import from_hash
from workers.foundations import keys
from workers.foundations.constants import CLOSED
from workers.foundations.text import as_str

BATCH = 500
BACKFILL_PAGE = 1000
DONE = b"done"


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
        convs = [from_hash(cid, raw) for cid, raw in zip(ids, records)]
        slots = [keys.conversation_index_field(c.configuration_id, c.grouping_key) if c else "" for c in convs]
        lasts = redis.hmget(keys.CONVERSATION_LAST, slots) if any(slots) else []
        pipe = redis.pipeline(transaction=True)
        for i, (cid, conv) in enumerate(zip(ids, convs)):
            pipe.zrem(keys.CONVERSATIONS_CLOSED, cid)
            if conv is not None and conv.status != CLOSED:
                continue  # cannot happen (nothing leaves CLOSED); never delete an open one
            if conv is not None:
                pipe.delete(keys.conversation(cid))
                if as_str(lasts[i] or b"") == cid:  # still the key's latest: forget it
                    pipe.hdel(keys.CONVERSATION_LAST, slots[i])
                pipe.hincrby(keys.CONVERSATION_STATUS_COUNTS, CLOSED, -1)
                if conv.twilio_id:
                    pipe.hdel(keys.CONVERSATION_TWILIO_IDS, conv.twilio_id)
            pipe.zrem(keys.CONVERSATIONS, cid)
            pipe.zrem(keys.TIMERS, cid)
            pipe.hdel(keys.LIFECYCLE_SINCE, cid)
            pipe.hdel(keys.LIFECYCLE_FLAGGED, cid)
            pipe.hdel(keys.LIFECYCLE_HELD, cid)
            pipe.delete(keys.lifecycle_pending(cid))
            pipe.delete(keys.message_attempts(cid))
        pipe.execute()
        done += len(ids)
    return done


def backfill(redis, *, pages: int = 10, page: int = BACKFILL_PAGE) -> int:
    """Up to ``pages`` pages of the one-time backfill of the closed index from the listing
    (a cursor in ``tl:convs:closed:backfill``, ``done`` at the end); the ids added."""
    added = 0
    for _ in range(pages):
        cursor = redis.get(keys.CONVERSATIONS_CLOSED_BACKFILL)
        if cursor == DONE or cursor == DONE.decode():
            break
        lo = "-inf" if cursor is None else float(as_str(cursor))
        rows = redis.zrangebyscore(keys.CONVERSATIONS, lo, "+inf", start=0, num=page, withscores=True)
        read = redis.pipeline(transaction=False)
        for cid, _ in rows:
            read.hmget(keys.conversation(as_str(cid)), "s", "t1")
        closed = {as_str(cid): int(as_str(t1)) / 1000 if t1 else time.time()
                  for (cid, _), (status, t1) in zip(rows, read.execute()) if as_str(status or b"") == CLOSED}
        if closed:
            added += redis.zadd(keys.CONVERSATIONS_CLOSED, closed, nx=True)
        if len(rows) < page:
            redis.set(keys.CONVERSATIONS_CLOSED_BACKFILL, DONE)
            break
        first, last = rows[0][1], rows[-1][1]
        # from the last score again (ties are read twice; ZADD NX makes that harmless), past it
        # only when a whole page shares it
        redis.set(keys.CONVERSATIONS_CLOSED_BACKFILL, repr(last if first != last else math.nextafter(last, math.inf)))
    return added
