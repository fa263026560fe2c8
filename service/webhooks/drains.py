"""Enqueueing ``drain_shard(n)`` off the request path.

The append script sets a shard's drain flag (``SET NX``) in the same round trip as the XADD, so
only the delivery that found the shard idle has to enqueue a drain — but an RQ enqueue costs
several round trips, synchronously. Doing it inside the request would put those on the one
latency Twilio sees, so the request only *notes* the shard here and answers; one background
task enqueues the noted shards (one ``enqueue_many`` pipeline for all of them) in a thread.

Durability: the flag, not this in-memory note, is the record that a drain is owed. If the
process dies before the enqueue, the flag expires (``DRAIN_FLAG_TTL_SECONDS``) and the
scheduler's stalled-shard check (``workers.scheduler.requeue_stalled_drains``) enqueues the
drain; a failed enqueue (Redis away) is retried here with backoff until it goes through.
"""
from __future__ import annotations

import asyncio

from rq import Queue

from workers.eventlog.writer import DRAIN_JOB, JOB_TIMEOUT_SECONDS
from workers.foundations import keys
from workers.foundations.log import get_logger

logger = get_logger("threadline.drains")


class DrainEnqueuer:
    def __init__(self, redis_sync) -> None:
        self._redis = redis_sync
        self._pending: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.enqueued = 0

    def request(self, shard: int) -> None:
        """Note that ``shard`` needs a drain (no I/O; safe from any coroutine)."""
        self._pending.add(shard)
        self._wake.set()

    def request_threadsafe(self, loop: asyncio.AbstractEventLoop, shard: int) -> None:
        loop.call_soon_threadsafe(self.request, shard)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="threadline-drain-enqueuer")

    async def stop(self) -> None:
        """Enqueue what is still noted (one last try), then stop."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pending:
            try:
                await asyncio.to_thread(self._enqueue, sorted(self._pending))
            except Exception as exc:
                logger.warning("drains not enqueued at shutdown; the scheduler will re-queue them",
                               extra={"shards": sorted(self._pending), "error": type(exc).__name__})

    async def _run(self) -> None:
        delay = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            shards, self._pending = sorted(self._pending), set()
            if not shards:
                continue
            try:
                await asyncio.to_thread(self._enqueue, shards)
                delay = 0.1
            except Exception as exc:
                self._pending.update(shards)
                logger.warning("drain enqueue failed; retrying",
                               extra={"shards": shards, "error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._wake.set()

    def _enqueue(self, shards: list[int]) -> None:
        queue = Queue(keys.QUEUE, connection=self._redis)
        queue.enqueue_many([  # at the front: drains never wait behind lifecycle batches
            Queue.prepare_data(DRAIN_JOB, args=(n,), result_ttl=0, timeout=JOB_TIMEOUT_SECONDS,
                               description=f"drain shard {n}", at_front=True)
            for n in shards
        ])
        self.enqueued += len(shards)
