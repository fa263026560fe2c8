"""Applying a fired lifecycle timer: decide with the pure rules, PATCH v2 when the status moves.

Idempotent by construction: it re-reads the record and the pinned configuration, decides
with the pure rules (:func:`workers.lifecycle.policy.decide`), and PATCHes only when the decided
status differs from the recorded one — so a duplicate job (a timer re-claimed after a lost
worker, two jobs racing) finds nothing to do. It then re-arms the timer at the exact next
deadline, or drops it once CLOSED.

A worker's applier (:mod:`.applier`) runs these coroutines on the worker process's one event
loop, beside its drains, with the runtime's store and v2 client passed in (:class:`Expiry`), so
the v2 connection pool and its adaptive concurrency limit are shared with the drains.
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from workers import stats
from workers.capture.store import AsyncConfigStore
from workers.conversations.store import CREATING, ConversationStore
from workers.foundations import keys
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.lifecycle import policy as lifecycle
from workers.lifecycle import timers, transitions, watermark
from workers.twilio.client import V2Client

logger = get_logger("threadline.lifecycle")

# A CREATING record is re-checked this much later (its create is still in flight).
CREATING_RETRY = 5.0
# When v2 still fails transiently after the client's retries, the timer is re-armed this later.
TRANSIENT_RETRY = 2.0

@dataclass
class Expiry:
    """What applying a timer needs from the worker process's runtime (``workers.jobs``)."""

    settings: Settings
    redis: Any
    v2: V2Client
    store: ConversationStore
    configs: AsyncConfigStore


async def apply_batch(ctx: Expiry, batch: list) -> dict[str, int]:
    """Decide a batch of fired timers ``[[conversation_id, due], …]`` concurrently (the RQ job
    of releases before the applier: jobs queued before an upgrade still run).

    One conversation failing never stops the others; its claimed timer fires again. Returns
    how many ended which way (the first word of each outcome).
    """
    outcomes = await asyncio.gather(*(apply_one(ctx, cid, float(due)) for cid, due in batch))
    summary: dict[str, int] = {}
    for o in outcomes:
        key = o.split(":", 1)[0]
        summary[key] = summary.get(key, 0) + 1
    return summary


async def apply_one(ctx: Expiry, conversation_id: str, due: float,
                    log: watermark.LogHeads | None = None) -> str:
    """:func:`decide_and_apply`, with a failure logged and returned as ``error: <type>`` instead
    of raised: the claimed timer comes back after its claim, and nothing beside it stops."""
    try:
        return await decide_and_apply(ctx, conversation_id, due, log)
    except Exception as exc:
        logger.exception("lifecycle decision failed", extra={"conversation": conversation_id})
        return f"error: {type(exc).__name__}"


async def timeouts_for(ctx: Expiry, conv: Any) -> dict[str, lifecycle.Timeouts]:
    vc = await ctx.configs.get(conv.configuration_id, conv.configuration_version)
    config = vc.config if vc else None
    return lifecycle.channel_timeouts(config, conv.last_activity or {})


async def decide_and_apply(ctx: Expiry, conversation_id: str, due: float | None,
                           log: watermark.LogHeads | None = None) -> str:
    """Decide the conversation's status now and PATCH it when it moves — except a close whose
    deadline the conversation's watermark in the event log ``log`` has not reached
    (:mod:`.watermark`): that one waits, re-armed, so no event appended before the deadline is
    left out of v2. ``log`` None (the RQ job of earlier releases): no watermark."""
    conv = await ctx.store.get(conversation_id)
    if conv is None:
        await ctx.redis.zrem(keys.TIMERS, conversation_id)
        return "unknown conversation: timer dropped"
    if conv.status == CREATING:
        await ctx.redis.zadd(keys.TIMERS, {conversation_id: time.time() + CREATING_RETRY})
        return "still creating: re-armed"
    async with ctx.store.lock(conv.configuration_id, conv.grouping_key, wait=20.0):
        conv = await ctx.store.get(conversation_id)  # re-read under the lock
        if conv is None or conv.status == lifecycle.CLOSED:
            await ctx.redis.zrem(keys.TIMERS, conversation_id)
            await ctx.redis.hdel(keys.LIFECYCLE_SINCE, conversation_id)
            return "closed: timer dropped"
        if not conv.last_activity:
            # Created (actively) but never talked in: count from its creation.
            # Its channels are its participants' (the configuration's timeouts for them).
            channels = {p.channel for p in conv.participants.values()} or {"_"}
            conv.last_activity = {ch: conv.created_at or time.time() for ch in channels}
        timeouts = await timeouts_for(ctx, conv)
        since, react = await transitions.since_of(ctx.redis, conversation_id)
        now = time.time()
        d = lifecycle.decide(conv.status, conv.last_activity, timeouts,
                             ctx.settings.minute_seconds, now,
                             status_since=since, reactivated_at=react)
        closed_at = ready = None
        if d.status == lifecycle.CLOSED:
            closed_at = lifecycle.deadlines(conv.last_activity, timeouts, ctx.settings.minute_seconds,
                                            reactivated_at=react).closed_at
            if log is not None:
                mark = log.mark(conv.shards)
                gate = watermark.gate_close(closed_at, mark, now, ctx.settings.lifecycle_max_hold)
                if gate.hold:
                    # the status just before the close (INACTIVE, or ACTIVE when it skips it)
                    held = lifecycle.decide(conv.status, conv.last_activity, timeouts,
                                            ctx.settings.minute_seconds, math.nextafter(closed_at, -math.inf),
                                            status_since=since, reactivated_at=react)
                    d = lifecycle.Decision(held.status, lifecycle.CLOSED, gate.recheck_at)
                    await ctx.redis.hset(keys.LIFECYCLE_HELD, conversation_id, repr(now))
                else:
                    held_at = await ctx.redis.hget(keys.LIFECYCLE_HELD, conversation_id)
                    ready = max(closed_at, float(held_at)) if held_at else None
                    if gate.overridden:
                        await _count_override(ctx, conversation_id, now - mark)
        if d.status == lifecycle.CLOSED and closed_at is not None:
            due = closed_at if due is None else min(due, closed_at)  # a held close's lag: from its deadline
        if d.status != conv.status:
            reason = "traffic" if d.status == lifecycle.ACTIVE else "timeout"
            try:
                sent = await transitions.send_status(ctx.settings, ctx.redis, ctx.store, ctx.v2,
                                                     conv, d.status, reason, due=due,
                                                     next_due=d.next_due, ready=ready)
            except transitions.TransientFailure:
                # v2 kept failing through the client's own retries: try again shortly (the
                # claim's expiry would also bring it back, later).
                await ctx.redis.zadd(keys.TIMERS, {conversation_id: time.time() + TRANSIENT_RETRY})
                logger.warning("status PATCH failed transiently; will retry",
                               extra={"conversation": conversation_id})
                return "transient failure: re-armed"
            except transitions.Refused as exc:
                return f"refused: {exc.reason}"
            # send_status armed the next timer (or dropped it) in its own round trip.
            return f"{conv.status} -> {sent.status}"
        pipe = ctx.redis.pipeline(transaction=False)
        if d.next_due is None:
            timers.cancel(pipe, conversation_id)
        else:
            timers.schedule(pipe, conversation_id, d.next_due)
        await pipe.execute()
        return "unchanged"


async def _count_override(ctx: Expiry, conversation_id: str, behind: float) -> None:
    """A close applied though the log had not reached its deadline (held the maximum): counted
    and logged, since an event appended before it may now be left out of v2."""
    pipe = ctx.redis.pipeline(transaction=False)
    stats.add(pipe, {stats.field("lifecycle_holds", "max_hold"): 1},
              retention_minutes=ctx.settings.stats_retention_minutes)
    await pipe.execute()
    logger.warning("close applied past the event log's watermark (max hold reached)",
                   extra={"conversation": conversation_id, "log_behind_s": round(behind, 1)})
