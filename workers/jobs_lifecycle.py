"""RQ job ``apply_timeout(conversation_id, due)``: the scheduler enqueues one per fired timer.

Idempotent by construction: it re-reads the record and the pinned configuration, decides
with the pure rules (:func:`workers.lifecycle.decide`), and PATCHes only when the decided
status differs from the recorded one — so a duplicate job (a timer re-claimed after a lost
worker, two jobs racing) finds nothing to do. It then re-arms the timer at the exact next
deadline, or drops it once CLOSED.

Jobs are synchronous (RQ); the async store and v2 client run on the worker process's one
event loop (the engine's runtime, workers.jobs), so the v2 connection pool is reused.
"""
from __future__ import annotations

import asyncio
import threading
import time

from workers import keys, lifecycle, timers, transitions
from workers.configstore import AsyncConfigStore
from workers.conversations import CREATING, ConversationStore
from workers.log import get_logger
from workers.settings import Settings

logger = get_logger("threadline.lifecycle")

# A CREATING record is re-checked this much later (its create is still in flight).
CREATING_RETRY = 5.0
# When v2 still fails transiently after the client's retries, the timer is re-armed this later.
TRANSIENT_RETRY = 2.0

class _Ctx:
    """The lifecycle's view of the worker process's runtime (workers.jobs): one event loop,
    one async Redis client and one V2Client per process, shared with the drains."""

    def __init__(self) -> None:
        from workers.jobs import runtime

        rt = runtime()
        self.rt = rt
        self.settings: Settings = rt.settings
        self.redis = rt.redis
        self.v2 = rt.client
        self.store = ConversationStore(self.redis)
        self.configs = AsyncConfigStore(self.redis)


_ctx_lock = threading.Lock()
_the_ctx: _Ctx | None = None


def _ctx() -> _Ctx:
    global _the_ctx
    with _ctx_lock:
        if _the_ctx is None:
            _the_ctx = _Ctx()
        return _the_ctx


def apply_timeout(conversation_id: str, due: float) -> str:
    """Decide and apply the conversation's lifecycle now; returns what happened (for RQ)."""
    ctx = _ctx()
    return ctx.rt.run(decide_and_apply(ctx, conversation_id, due))


def apply_timeouts(batch: list) -> dict:
    """RQ job: decide a batch of fired timers ``[[conversation_id, due], …]`` concurrently.

    The scheduler enqueues one job per :data:`workers.scheduler.BATCH` timers: a thousand
    timers coming due at once are a handful of jobs, each deciding its batch's conversations
    at once, instead of a thousand RQ jobs (RQ spends ~50 Redis round trips on each). Their
    v2 PATCHes share the V2Client's adaptive limit (``THREADLINE_MAX_INFLIGHT`` at most) with
    the drains. One conversation failing never stops the others; its claimed timer fires again.
    """
    ctx = _ctx()

    async def run_all() -> list[str]:
        async def one(cid: str, due: float) -> str:
            try:
                return await decide_and_apply(ctx, cid, float(due))
            except Exception as exc:  # counted in the summary; the claim brings it back
                logger.exception("lifecycle decision failed", extra={"conversation": cid})
                return f"error: {type(exc).__name__}"

        return await asyncio.gather(*(one(cid, due) for cid, due in batch))

    outcomes = ctx.rt.run(run_all())
    summary: dict[str, int] = {}
    for o in outcomes:
        key = o.split(":", 1)[0]
        summary[key] = summary.get(key, 0) + 1
    return summary


async def timeouts_for(ctx, conv) -> dict[str, lifecycle.Timeouts]:
    vc = await ctx.configs.get(conv.configuration_id, conv.configuration_version)
    config = vc.config if vc else None
    return lifecycle.channel_timeouts(config, conv.last_activity or {})


async def decide_and_apply(ctx, conversation_id: str, due: float | None) -> str:
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
        if d.status != conv.status:
            reason = "traffic" if d.status == lifecycle.ACTIVE else "timeout"
            try:
                sent = await transitions.send_status(ctx.settings, ctx.redis, ctx.store, ctx.v2,
                                                     conv, d.status, reason, due=due,
                                                     next_due=d.next_due)
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
