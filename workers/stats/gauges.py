"""Live gauges read from Redis at read time: what waits, what failed, who works.

Counters say what *happened*; these say what *is*: each shard's backlog and the age of its
oldest unfinished entry, the dead-letter count, RQ's queue depth and live workers, and
conversations by status. They are read when someone asks (``/api/v1/stats``, ``/metrics``,
``threadline stats``), in two pipelined round trips whatever the shard count — never a SCAN.

Backlog of a shard = entries its drain has read but not acknowledged (the consumer group's
pending list) + entries not read yet (the group's ``lag``, Redis ≥ 7). The oldest age comes
from the stream IDs, which Redis stamps with the append time in milliseconds.
"""
from __future__ import annotations

import time
from typing import Any

import redis

from workers.foundations import keys
from workers.foundations.text import as_str


def _id_ms(entry_id: Any) -> int | None:
    entry_id = as_str(entry_id)
    if not entry_id:
        return None
    try:
        return int(entry_id.split("-", 1)[0])
    except ValueError:
        return None


def shard_gauges(r: redis.Redis, shards: int, now_ms: int) -> list[dict[str, Any]]:
    """Per shard: length, pending, lag (unread), backlog and oldest_age_s (None when idle)."""
    pipe = r.pipeline(transaction=False)
    for n in range(shards):
        pipe.xlen(keys.events(n))
        pipe.xinfo_groups(keys.events(n))
        pipe.xpending(keys.events(n), keys.CONSUMER_GROUP)
    raw = pipe.execute(raise_on_error=False)
    out: list[dict[str, Any]] = []
    unread_from: list[tuple[int, str]] = []  # (shard, exclusive start id) for the 2nd trip
    for n in range(shards):
        length, groups, pending = raw[3 * n: 3 * n + 3]
        length = length if isinstance(length, int) else 0
        group = None
        if isinstance(groups, list):
            group = next((g for g in groups if as_str(g.get("name")) == keys.CONSUMER_GROUP), None)
        npending, oldest_ms = 0, None
        if isinstance(pending, dict):
            npending = int(pending.get("pending") or 0)
            oldest_ms = _id_ms(pending.get("min")) if npending else None
        if group is None:
            lag, last = length, "-"  # no drain has ever read this shard: all of it waits
        else:
            lag = group.get("lag")
            last = "(" + (as_str(group.get("last-delivered-id")) or "0-0")
            if lag is None:  # Redis < 7, or lag unknown after deletions: bound it by the length
                lag = max(0, length - npending)
        if lag:
            unread_from.append((n, last))
        out.append({"shard": n, "length": length, "pending": npending, "lag": int(lag),
                    "backlog": npending + int(lag), "oldest_ms": oldest_ms})
    if unread_from:
        pipe = r.pipeline(transaction=False)
        for n, start in unread_from:
            pipe.xrange(keys.events(n), min=start, max="+", count=1)
        for (n, _), first in zip(unread_from, pipe.execute(raise_on_error=False)):
            if isinstance(first, list) and first:
                ms = _id_ms(first[0][0])
                cur = out[n]["oldest_ms"]
                out[n]["oldest_ms"] = ms if cur is None or (ms is not None and ms < cur) else cur
    for row in out:
        ms = row.pop("oldest_ms")
        row["oldest_age_s"] = None if ms is None else round(max(0, now_ms - ms) / 1000, 3)
    return out


def dead_letter_count(r: redis.Redis) -> int:
    try:
        return int(r.xlen(keys.DEAD_LETTERS))
    except redis.ResponseError:  # not a stream (yet): nothing dead-lettered by this version
        return 0


def queue_gauges(r: redis.Redis) -> dict[str, Any]:
    """RQ's own view: jobs waiting on threadline's queue and workers alive on it."""
    from rq import Queue, Worker

    q = Queue(keys.QUEUE, connection=r)
    return {"name": keys.QUEUE, "depth": q.count, "workers": Worker.count(connection=r, queue=q)}


def conversation_gauges(r: redis.Redis) -> dict[str, Any]:
    """Conversations by status (ACTIVE, INACTIVE, CLOSED; CREATING while any is), open
    (ACTIVE + INACTIVE) and total, from the engine's own bookkeeping.

    ``workers.conversations.store`` moves a per-status count in the same script that changes a
    record's status, and keeps every conversation in one sorted set, so one HGETALL and one
    ZCARD answer — a SCAN of the records would cost O(conversations) per dashboard refresh.
    """
    pipe = r.pipeline(transaction=False)
    pipe.zcard(keys.CONVERSATIONS)
    pipe.hgetall(keys.CONVERSATION_STATUS_COUNTS)
    total, counts = pipe.execute()
    n = {as_str(k): max(0, int(v)) for k, v in (counts or {}).items()}
    by_status = {st: n.get(st, 0) for st in ("ACTIVE", "INACTIVE", "CLOSED")}
    if n.get("CREATING"):
        by_status["CREATING"] = n["CREATING"]
    return {"available": True, "total": int(total), "open": by_status["ACTIVE"] + by_status["INACTIVE"],
            "by_status": by_status}


def lifecycle_gauges(r: redis.Redis, now: float) -> dict[str, int]:
    """Lifecycle timers armed, and those overdue: past their deadline and claimed by no worker
    (a claim pushes a timer ahead), i.e. transitions waiting for a worker — what KEDA scales on
    beside the event log (deploy/kubernetes/worker.yaml). Two O(log n) reads."""
    pipe = r.pipeline(transaction=False)
    pipe.zcard(keys.TIMERS)
    pipe.zcount(keys.TIMERS, "-inf", now)
    armed, overdue = pipe.execute()
    return {"armed": int(armed), "overdue": int(overdue)}


def read_gauges(r: redis.Redis, shards: int, now: float | None = None) -> dict[str, Any]:
    now_ms = int((time.time() if now is None else now) * 1000)
    rows = shard_gauges(r, shards, now_ms)
    ages = [row["oldest_age_s"] for row in rows if row["oldest_age_s"] is not None]
    return {
        "shards": rows,
        "backlog": sum(row["backlog"] for row in rows),
        "pending": sum(row["pending"] for row in rows),
        "oldest_age_s": max(ages) if ages else None,
        "dead_letters": dead_letter_count(r),
        "queue": queue_gauges(r),
        "conversations": conversation_gauges(r),
        "lifecycle": lifecycle_gauges(r, now_ms / 1000),
    }
