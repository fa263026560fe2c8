"""A worker's lifecycle loop: claim due timers and apply each one on the worker's own event loop,
beside its drains.

Why here and not as RQ jobs: a worker runs one RQ job at a time, and under load that job is a
drain. Lifecycle batches queued as jobs waited for a drain to end — the medium soak (4,000
webhooks, 3 workers, load 5) traced 11.2 s of mean lateness to 8.1 s of queue wait and 2.1 s
of timers left unclaimed while the queue was backed up; deciding and PATCHing took 0.4 s. The
applier runs as a task on the loop that the worker keeps running in a thread of its own
(``workers.jobs.Runtime.start_lifecycle``), so a transition waits for nothing but its own
Redis round trips and its PATCH.

- Every worker claims (no leader): a due timer goes to exactly one claimer (:class:`.timers.Claimer`),
  so the lifecycle scales with the workers and survives any one of them.
- Bounded: at most :data:`INFLIGHT` transitions at once per worker, and their v2 calls share the
  process's adaptive limit with the drains (Twilio's per-account concurrency, its 429s, backoff).
- One task per timer: a held request or a Retry-After holds its own conversation, never a batch.
- A close never overtakes the log (:mod:`.watermark`): it applies only once every event appended
  before its deadline to the shards the conversation's events come from is processed (other
  shards' hold it at most ``watermark.OTHER_SHARDS_GRACE``) — v2 takes no update of a CLOSED
  conversation — or once it has been held ``THREADLINE_LIFECYCLE_MAX_HOLD_SECONDS`` (counted).
  INACTIVE stays on time.
  The watermark costs one round trip per tick that claimed a timer (one ``XRANGE … COUNT 1``
  per shard, pipelined), never one per event.
- A claim lasts ``timers.CLAIM_SECONDS`` and is renewed while its transition runs: a killed
  worker's timers come back within seconds, a live worker's are not taken from it, and a timer
  applied twice all the same PATCHes once (the grouping key's lock and the re-read in :mod:`.expiry`).
"""
from __future__ import annotations

import asyncio
import time

from redis.exceptions import RedisError

from workers.foundations import keys
from workers.foundations.log import get_logger
from workers.lifecycle import expiry, timers, watermark

logger = get_logger("threadline.lifecycle")

INFLIGHT = 32        # transitions one worker applies at once
TICK = 0.25          # the longest a due timer waits for a worker's next claim (seconds)
AFTER_ERROR = 1.0    # the pause after a Redis error (a restart, a failover) before claiming again
STOP_GRACE = 5.0     # how long a stopping worker lets its transitions finish; the rest come back


def claim_size(running: int, inflight: int = INFLIGHT) -> int:
    """How many timers to claim now: only what this worker can start at once, so a due timer
    is never held by a busy worker while an idle one could apply it."""
    return max(0, inflight - running)


class Applier:
    """Claims and applies due timers until :meth:`run`'s ``stopping`` is set."""

    def __init__(self, ctx: expiry.Expiry, *, inflight: int = INFLIGHT) -> None:
        self.ctx = ctx
        self.inflight = inflight
        self.claimer = timers.Claimer(ctx.redis)
        self.running: dict[str, asyncio.Task] = {}
        self.applied = 0
        self._freed = asyncio.Event()

    async def run(self, stopping: asyncio.Event) -> None:
        renewed = time.monotonic()
        while not stopping.is_set():
            pause = TICK
            try:
                size = claim_size(len(self.running), self.inflight)
                if size:
                    claimed = await self._claim_behind_log(size)
                    if len(claimed) == size:
                        pause = 0.0  # more may be due: claim again as soon as a slot frees
                if time.monotonic() - renewed >= timers.RENEW_EVERY:
                    await self.claimer.hold(list(self.running), time.time())
                    renewed = time.monotonic()
            except (RedisError, OSError) as exc:
                logger.warning("lifecycle claim failed; retrying", extra={"error": type(exc).__name__})
                pause = AFTER_ERROR
            await self._wait(stopping, pause)
        await self._finish()

    async def read_heads(self) -> watermark.LogHeads:
        """The shards' first entries now, in one pipelined round trip (each conversation's
        watermark comes from them: :meth:`.watermark.LogHeads.mark`)."""
        pipe = self.ctx.redis.pipeline(transaction=False)
        for shard in range(self.ctx.settings.shards):
            pipe.xrange(keys.events(shard), count=1)
        heads = await pipe.execute()
        return watermark.LogHeads.of((h[0][0] if h else None for h in heads), time.time())

    async def _claim_behind_log(self, size: int) -> list[tuple[str, float]]:
        """Claim the due timers and start each with the log's watermark of this tick: a close
        the log has not reached waits (:func:`.expiry.decide_and_apply`), the rest go now."""
        claimed = await self.claimer.claim(time.time(), size)
        if not claimed:
            return claimed
        log = await self.read_heads()  # read after the claim: nothing older is left unseen
        for cid, due in claimed:
            if cid not in self.running:  # its own claim lapsed mid-transition: that one re-arms it
                self._start(cid, due, log)
        return claimed

    def _start(self, cid: str, due: float, log: watermark.LogHeads | None = None) -> None:
        task = asyncio.create_task(expiry.apply_one(self.ctx, cid, due, log))
        self.running[cid] = task

        def done(_: asyncio.Task) -> None:
            self.running.pop(cid, None)
            self.applied += 1
            self._freed.set()

        task.add_done_callback(done)

    async def _wait(self, stopping: asyncio.Event, pause: float) -> None:
        """Sleep ``pause`` seconds, or until a slot frees when every slot is taken (then at most
        a TICK, for the claims' renewal), or until stopped."""
        if pause <= 0 and len(self.running) < self.inflight:
            await asyncio.sleep(0)
            return
        self._freed.clear()
        watch = [asyncio.ensure_future(stopping.wait())]
        if pause <= 0:
            watch.append(asyncio.ensure_future(self._freed.wait()))
        try:
            await asyncio.wait(watch, timeout=max(pause, 0.0) or TICK, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in watch:
                w.cancel()

    async def _finish(self) -> None:
        """Let running transitions end (STOP_GRACE), then cancel the rest: their claims lapse and
        another worker applies them; the pending key makes a PATCH already sent count once."""
        left = list(self.running.values())
        if not left:
            return
        _, pending = await asyncio.wait(left, timeout=STOP_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
