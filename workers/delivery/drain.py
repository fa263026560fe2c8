"""``drain(n)``: deliver shard n's logged events, in order per conversation, concurrently across.

One drain per shard at a time: it holds the shard's lease (a token from the shard's fencing
counter, renewed while it runs), and its acknowledgements are fenced — an XACK from a holder
whose lease has passed to another drain is refused. The consumer name is the shard's own, so a
new holder first re-reads the entries a dead one left pending (``XREADGROUP … 0``), then new
ones (``>``), a batch (``THREADLINE_BATCH_SIZE``) at a time.

A batch is parsed and matched first (:mod:`.batch`: bad entries are dead-lettered at once, they
never block the shard), then split into lanes by address pair (voice: by call): a lane's events go strictly
in log order, lanes run concurrently, and the in-flight v2 calls of all lanes share the
process's one adaptive bound (``workers.twilio.concurrency``: ``THREADLINE_MAX_INFLIGHT`` is its
ceiling, Twilio's 429s lower it). An event whose delivery failed transiently stays pending, and
the rest of its lane waits for the next drain so that order holds. Acks, deletes, dead
letters and counters go in one pipeline per batch.

At the end the drain clears the shard's drain flag and, if the shard still has entries, sets it
again (``SET NX``) and enqueues the next drain: whichever of it and ingress wins the flag enqueues.
"""
from __future__ import annotations

import asyncio
import time

from redis.exceptions import RedisError, ResponseError

from workers import stats
from workers.delivery import classic
from workers.delivery.batch import Batch, Progress, Report, route
from workers.delivery.commit import FencedCommit
from workers.delivery.lane import LaneSession
from workers.delivery.leases import FLAG_TTL_S, ShardLeases, drain_job_waiting
from workers.foundations import keys
from workers.foundations.errors import Permanent, Transient
from workers.foundations.log import correlation_id, get_logger
from workers.foundations.text import as_str, iso_to_epoch
from workers.parse import parse_timestamp

logger = get_logger("threadline.drain")

TIME_BUDGET_S = 30.0
# While other jobs wait for a worker — drains of other shards, lifecycle batches of an earlier
# release — a drain job ends after this long (at a batch's end) and its worker takes the next
# one (RQ's round robin over the two queues). A drain job adopts idle shards, but not one it has
# already drained and handed back: running its whole budget, it left such a shard's next drain
# waiting in the queue for up to 30 s (the soak saw a 16–18 s stall once lifecycle batches no
# longer made drains yield); and drains running their budget kept workers away from queued
# lifecycle batches (transitions PATCHed 40 s late, before the lifecycle left the queue).
YIELD_AFTER_S = 3.0
ADOPT_EVERY_S = 0.25
RENEWER_GRACE_S = 1.0  # how long a cancelled renewer or batch may take to finish (bounded)
# A batch's decided entries are committed (acknowledged, deleted, dead-lettered) at least this
# often while its slower lanes still run: one lane waiting on a held v2 request or a Retry-After
# must not keep a whole batch of delivered entries in the log (the soak saw a shard 12 s without
# visible progress, and a Redis restart then threw the batch's finished work away).
COMMIT_EVERY_S = 1.0
# A long lane (one address pair's status callbacks, a call's transcriptions) flushes its writes
# and hands its delivered events to the batch's commit at least this often, not only at its end:
# a lane of 30 events at a few hundred ms each otherwise kept all 30 in the log, and the shard
# looked stalled for as long as the lane ran (the small soak saw 15.6 s once).
LANE_FLUSH_EVERY_S = 1.0
# How long a drain whose Redis went away (a restart, a failover) keeps trying to hand its shard
# back — release the lease, clear the flag, enqueue the next drain — before it leaves that to
# the lease's and the flag's TTLs.
HAND_BACK_S = 15.0

class Drainer:
    """Drains shards with one process's runtime (:class:`workers.jobs.Runtime`)."""

    def __init__(self, rt) -> None:
        self.rt = rt
        self.commit = FencedCommit(rt.redis, rt.settings)
        self.leases = ShardLeases(rt.redis)
        self._waiting_keys = (rt.queue.key, f"rq:queue:{keys.LIFECYCLE_QUEUE}")
        # Set when the worker is told to stop (SIGTERM): drains hand their shards back at once.
        self.stopping = asyncio.Event()

    async def drain(self, shard: int) -> Report:
        """Drain ``shard`` and, while it runs, every other shard with entries and no holder.

        One RQ job runs at a time in a worker process; adopting idle shards into the same event
        loop is what lets one process keep THREADLINE_MAX_INFLIGHT calls in flight when each
        shard holds only a few conversations. Adoption stops after TIME_BUDGET_S, so a job ends.
        """
        token = await self.leases.acquire(shard)
        if token is None:  # another drain holds it; it re-checks the shard when it ends
            return Report(shard)
        started = time.monotonic()
        tasks = {shard: asyncio.create_task(self._run(shard, token))}
        reports: dict[int, Report] = {}
        while tasks:
            done, _ = await asyncio.wait(tasks.values(), timeout=ADOPT_EVERY_S)
            for task in done:
                rep = task.result()
                reports[rep.shard] = rep
                tasks.pop(rep.shard)
            if tasks and not await self._spent(started) and not self.stopping.is_set():
                try:
                    for m in await self.leases.adoptable(self.rt.settings.shards, set(tasks) | set(reports)):
                        tok = await self.leases.try_acquire(m)
                        if tok is not None:
                            queued = bool(await self.rt.redis.exists(keys.drain_flag(m)))
                            tasks[m] = asyncio.create_task(self._run(m, tok, queued))
                except (RedisError, OSError):  # Redis away: adopt nothing this round
                    pass
        total = reports.pop(shard)
        for rep in reports.values():
            total.adopted.append(rep.shard)
            total.read, total.acked, total.dead, total.retry = (
                total.read + rep.read, total.acked + rep.acked, total.dead + rep.dead, total.retry + rep.retry)
        return total

    async def _run(self, shard: int, token: str, queued: bool = False) -> Report:
        """Drain one leased shard: pending entries first, then new ones, batch by batch.

        Each batch runs as a task that the drain abandons (cancels) as soon as the lease is lost
        — to another holder, or because the drain stalled (:meth:`ShardLeases.keep`) — so a hung
        request never keeps a shard: its undecided entries stay pending for the next holder."""
        report = Report(shard, leased=True)
        lost = asyncio.Event()
        progress = Progress()
        renewer = asyncio.create_task(self.leases.keep(
            shard, token, lost, progress.at, self.rt.settings.drain_stall_seconds))
        started = time.monotonic()
        blocked: set[str] = set()  # lanes with an event left for retry: the rest of them waits too
        try:
            cursor = "0"  # pending entries of the shard's consumer first
            while not lost.is_set() and not self.stopping.is_set() and not await self._spent(started):
                resp = await self._read(shard, cursor)
                entries = resp[0][1] if resp else []
                if not entries:
                    if cursor == ">":
                        break
                    cursor = ">"
                    continue
                pending = cursor != ">"
                if pending:
                    cursor = as_str(entries[-1][0])
                progress.mark()
                if not await self._until_lost(
                        self._batch(shard, token, entries, pending, report, progress, blocked), lost):
                    lost.set()
        except (RedisError, OSError) as exc:  # unacknowledged entries stay pending for the next drain
            logger.warning("drain stopped early", extra={"shard": shard, "error": type(exc).__name__})
        except asyncio.CancelledError:
            # Cancelled (RQ's job timeout, an error beside it in the job): hand the shard back
            # all the same. Its drain flag would otherwise keep ingress from enqueueing a drain
            # until the flag expires (FLAG_TTL_S) and the scheduler's sweep finds the shard —
            # and for ever in bench/pipeline.py, which runs no scheduler (its STALLED runs).
            renewer.cancel()
            await self._hand_back(shard, token)
            raise
        finally:
            renewer.cancel()
            await asyncio.wait({renewer}, timeout=RENEWER_GRACE_S)
        report.requeued = await self._hand_back(shard, token, queued)
        return report

    async def _spent(self, started: float) -> bool:
        """The job's time is up: TIME_BUDGET_S, or YIELD_AFTER_S while other jobs wait."""
        ran = time.monotonic() - started
        if ran >= TIME_BUDGET_S:
            return True
        if ran < YIELD_AFTER_S:
            return False
        try:
            pipe = self.rt.redis.pipeline(transaction=False)
            for key in self._waiting_keys:
                pipe.llen(key)
            return any(await pipe.execute())
        except (RedisError, OSError):
            return False

    async def _until_lost(self, batch, lost: asyncio.Event) -> bool:
        """Run one batch; False when the lease was lost first, or the worker is stopping (the
        batch is cancelled: its undecided entries stay pending for the next holder)."""
        task = asyncio.ensure_future(batch)
        watch = {asyncio.ensure_future(lost.wait()), asyncio.ensure_future(self.stopping.wait())}
        await asyncio.wait({task, *watch}, return_when=asyncio.FIRST_COMPLETED)
        for w in watch:
            w.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait({task}, timeout=RENEWER_GRACE_S)
        logger.warning("drain stopped mid-batch (stalled, lease lost or worker stopping); "
                       "its entries stay pending", extra={"stopping": self.stopping.is_set()})
        return False

    async def _hand_back(self, shard: int, token: str, queued: bool = False) -> bool:
        """Release the lease and :meth:`_finish`, retried while Redis is away (HAND_BACK_S), so
        a Redis restart neither leaves the shard flagged with no drain nor raises out of the
        job — RQ could not record that failure either, and its worker would quit."""
        deadline = time.monotonic() + HAND_BACK_S
        while True:
            try:
                await self.leases.release(shard, token)
                return await self._finish(shard, queued)
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    logger.warning("shard not handed back: Redis unreachable; its lease and flag expire",
                                   extra={"shard": shard, "error": type(exc).__name__})
                    return False
                await asyncio.sleep(0.5)

    async def _read(self, shard: int, cursor: str) -> list:
        """One XREADGROUP; a stream whose group is missing (written by something other than
        ingress's append) gets the group at id 0, so none of its entries is skipped."""
        args = (keys.CONSUMER_GROUP, keys.consumer(shard), {keys.events(shard): cursor})
        try:
            return await self.rt.redis.xreadgroup(*args, count=self.rt.settings.batch_size)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            try:
                await self.rt.redis.xgroup_create(keys.events(shard), keys.CONSUMER_GROUP, id="0", mkstream=True)
            except ResponseError as again:
                if "BUSYGROUP" not in str(again):
                    raise
            return await self.rt.redis.xreadgroup(*args, count=self.rt.settings.batch_size)

    async def _finish(self, shard: int, queued: bool = False) -> bool:
        """Clear the drain flag; if entries remain, win the flag back and enqueue the next drain.

        If a drain job for the shard already waits in the queue (the shard was adopted while
        its job waited, or ingress enqueued one while this drain held it), the flag stays and
        that job drains what is left: clearing the flag and enqueueing another doubled the
        shard's jobs again and again (the soak's queue grew to 125 drain jobs, and the
        lifecycle jobs behind them waited 100 s). ``queued`` is kept for callers' clarity."""
        if await drain_job_waiting(self.rt.redis, self.rt.queue.key, shard):
            return False
        r = self.rt.redis
        await r.delete(keys.drain_flag(shard))
        if await r.xlen(keys.events(shard)) and await r.set(keys.drain_flag(shard), "drain", nx=True, ex=FLAG_TTL_S):
            self.rt.enqueue_drain(shard)
            return True
        return False

    # --- one batch -----------------------------------------------------------------------
    async def _batch(self, shard: int, token: str, entries: list, pending: bool, report: Report,
                     progress: Progress, blocked: set[str]) -> bool:
        batch = Batch(progress)
        deliveries = await self._deliveries(shard, entries) if pending else {}
        index, configs = await self.rt.rules()
        lanes = await route(self.rt, entries, deliveries, index, configs, batch)
        for lane in blocked & lanes.keys():  # an earlier event of the lane waits for a retry
            batch.retry.extend(eid for eid, *_ in lanes.pop(lane))
        names = list(lanes)
        early = asyncio.create_task(self._commit_as_decided(shard, token, batch, report))
        try:
            retried = await asyncio.gather(*(self._lane(shard, lanes[n], configs, batch) for n in names))
        finally:
            early.cancel()  # a commit under way finishes (shielded); the rest goes below
        blocked.update(n for n, r in zip(names, retried) if r)
        return await self._commit(shard, token, batch, report, len(entries))

    async def _commit_as_decided(self, shard: int, token: str, batch: Batch, report: Report) -> None:
        """Every COMMIT_EVERY_S, commit what the batch's lanes have decided so far (fenced like
        the batch's own commit); ends when the lease is lost, or cancelled with the batch."""
        while True:
            await asyncio.sleep(COMMIT_EVERY_S)
            part = batch.take_decided()
            if part is None:
                continue
            try:
                if not await asyncio.shield(self._commit(shard, token, part, report, 0)):
                    return  # fenced off: the renewer ends the drain
            except (RedisError, OSError):
                batch.put_back(part)
                return

    async def _lane(self, shard: int, items: list, configs: dict, batch: Batch) -> bool:
        """Deliver one lane's events in order; True when some were left pending for a retry.
        Its events are acknowledged only once its writes are flushed (:mod:`.lane`)."""
        done: list[str] = []
        async with LaneSession(shard) as session:
            session.expect([event.resource_id for _, _, event, _ in items
                            if event.channel != classic.CHAT])
            left = await self._lane_in(items, configs, batch, session, done)
            if not session.lost and await self._flush_lane(session, batch, done):
                return left
            # some of the delivered events' bookkeeping may be missing: redo them
            batch.retry.extend(done)
            return True

    async def _lane_in(self, items: list, configs: dict, batch: Batch, session: LaneSession,
                       done: list[str]) -> bool:
        flushed_at = time.monotonic()
        for i, (eid, entry, event, matches) in enumerate(items):
            batch.progress.mark()
            correlation_id.set(entry.cid or None)
            try:
                deliver = (self.rt.voice.deliver if event.channel == "VOICE"
                           else self.rt.classic.deliver if event.channel == classic.CHAT
                           else self.rt.delivery.deliver)
                for m in matches:
                    await deliver(event, configs.get(m.config_id), m, batch.counts, session)
                    batch.counts[stats.field("events", m.config_id, event.channel, "captured")] += 1
            except Permanent as exc:  # a 4xx, retries exhausted, an unusable event: dead letter
                batch.dead.append((eid, entry, exc.reason, exc.attempts, str(exc)))
                continue
            except (Transient, RedisError, TimeoutError, OSError) as exc:
                logger.warning("delivery will be retried", extra={"entry": eid, "error": type(exc).__name__})
                batch.retry.extend(e for e, *_ in items[i:])  # the rest of the lane keeps its order
                return True
            except Exception as exc:  # a bug must not block the shard: keep the event for replay
                logger.exception("delivery failed", extra={"entry": eid})
                batch.dead.append((eid, entry, "internal_error", 1, type(exc).__name__))
                continue
            done.append(eid)
            lag_from = parse_timestamp(event.occurred_at) if event.occurred_at_source == "twilio" else None
            lag_ms = (time.time() * 1000 - (iso_to_epoch(lag_from) * 1000 if lag_from else event.received_at_ms))
            batch.counts.update(stats.histogram_fields("e2e_lag", lag_ms, event.channel))
            if i + 1 < len(items) and time.monotonic() - flushed_at >= LANE_FLUSH_EVERY_S:
                if not await self._flush_lane(session, batch, done):
                    batch.retry.extend(e for e, *_ in items[i + 1:])
                    return True
                flushed_at = time.monotonic()
        batch.progress.mark()
        return False

    @staticmethod
    async def _flush_lane(session: LaneSession, batch: Batch, done: list[str]) -> bool:
        """Mid-lane: send the lane's queued writes and hand the events they belong to to the
        batch's commit (acknowledged only after their bookkeeping is in Redis, as at the lane's
        end). False when the flush failed: ``done`` stays for :meth:`_lane` to retry."""
        try:
            await session.flush()
        except (RedisError, OSError) as exc:
            logger.warning("lane's writes failed; its events will be retried", extra={"error": type(exc).__name__})
            return False
        batch.acks.extend(done)
        done.clear()
        return True

    async def _deliveries(self, shard: int, entries: list) -> dict[str, int]:
        """How many times each pending entry was read (a stuck one is dead-lettered eventually)."""
        first, last = as_str(entries[0][0]), as_str(entries[-1][0])
        rows = await self.rt.redis.xpending_range(keys.events(shard), keys.CONSUMER_GROUP, first, last,
                                                  len(entries), keys.consumer(shard))
        return {as_str(r["message_id"]): int(r["times_delivered"]) for r in rows}

    async def _commit(self, shard: int, token: str, batch: Batch, report: Report, read: int) -> bool:
        return await self.commit.commit(shard, token, batch, report, read)
