"""RQ job functions of the engine, and the per-process runtime they share.

``drain_shard(n)`` is the job ingress and the scheduler enqueue (``workers.jobs.drain_shard``);
``poll_calls()`` the leader's poll of live calls (passive voice, :mod:`workers.delivery.callpoll`);
``apply_timeouts(batch)`` the lifecycle job of earlier releases, kept so that jobs queued before
an upgrade still run (lifecycle timers are now claimed and applied by every worker's
:class:`workers.lifecycle.applier.Applier`, beside its drains, not queued).
RQ calls a job synchronously; it runs the async drain on the process's one event loop, with the
process's one V2Client (its connection pool survives from job to job) and one rule index
(rebuilt only when the configuration store's generation moves). That is why the worker must
not fork per job: ``threadline worker`` runs jobs in-process (:mod:`workers.worker`).

In a worker the loop runs in a thread of its own (:meth:`Runtime.start_lifecycle`): the
lifecycle applier needs it running between jobs and during them, and a job hands its coroutine
to it and waits.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import weakref

from redis.exceptions import RedisError

from workers.capture.index import RuleIndex
from workers.capture.store import AsyncConfigStore
from workers.conversations.store import ConversationStore
from workers.delivery import callpoll
from workers.delivery.batch import Report
from workers.delivery.classic import ClassicBridge
from workers.delivery.deliver import Delivery
from workers.delivery.drain import Drainer
from workers.delivery.voice import Voice
from workers.eventlog.writer import JOB_TIMEOUT_SECONDS
from workers.foundations import keys
from workers.foundations.constants import APPLY_JOB, DRAIN_JOB, POLL_CALLS_JOB  # noqa: F401  (re-exported)
from workers.foundations.log import get_logger
from workers.foundations.redis_conn import connect, connect_async
from workers.foundations.settings import Settings, load_settings
from workers.lifecycle import expiry
from workers.lifecycle.applier import Applier
from workers.twilio.client import engine_client

logger = get_logger("threadline.jobs")

# Set inside a job's coroutine, so every task the job starts inherits it (asyncio copies the
# context into a new task): an interrupted job's leftovers are cancelled, the applier's are not.
_IN_JOB: contextvars.ContextVar[bool] = contextvars.ContextVar("threadline_in_job", default=False)
JOB_POLL_S = 0.5   # a job's wait for its coroutine wakes this often (RQ's timer-based timeout in dev)
STOP_WAIT_S = 8.0  # how long close() waits for the applier to end (its own grace is 5 s)


class Runtime:
    """Everything a worker process keeps between jobs."""

    def __init__(self, settings: Settings) -> None:
        from rq import Queue

        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.redis = _async_redis(settings)
        self.sync_redis = connect(settings)
        self.queue = Queue(keys.QUEUE, connection=self.sync_redis)
        # One client per process, on the lean HTTP/1.1 sender (workers.twilio.transport.Http11Sender).
        self.client = engine_client(settings)
        self.delivery = Delivery(settings, self.redis, self.client)
        self.voice = Voice(self.delivery, self.redis, call_ttl_seconds=settings.call_ttl_seconds)
        self.classic = ClassicBridge(self.delivery)
        self.configs = AsyncConfigStore(self.redis)
        self._generation: int | None = None
        self._index = RuleIndex.build([])
        self._by_id: dict = {}
        self.drainer = Drainer(self)
        self.expiry: expiry.Expiry | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle: concurrent.futures.Future | None = None
        self._lifecycle_stopping = asyncio.Event()
        self._job_tasks: weakref.WeakSet[asyncio.Task] = weakref.WeakSet()

    async def rules(self) -> tuple[RuleIndex, dict]:
        """The rule index and the live configurations by id, rebuilt when the generation moves."""
        generation = await self.configs.generation()
        if generation != self._generation:
            current = await self.configs.current()
            self._index = RuleIndex.build(current)
            self._by_id = {vc.id: vc for vc in current}
            self._generation = generation
            logger.info("rule index rebuilt", extra={"generation": generation,
                                                     "configurations": len(current)})
        return self._index, self._by_id

    def enqueue_drain(self, shard: int) -> None:
        # at the front: a shard's drain never waits behind lifecycle batches (no shard waits)
        self.queue.enqueue(DRAIN_JOB, shard, result_ttl=0, job_timeout=JOB_TIMEOUT_SECONDS,
                           description=f"drain shard {shard}", at_front=True)

    def stop_drains(self) -> None:
        """From a signal handler: running drains hand their shards back and end (safe from any
        thread; the loop wakes up for it)."""
        self.loop.call_soon_threadsafe(self.drainer.stopping.set)

    def start_lifecycle(self) -> Applier:
        """From now on run the loop in a thread of its own, with the lifecycle's applier on it.

        A worker's RQ loop spends its idle time blocked on Redis and its busy time in one job:
        a loop run only inside jobs would apply no timer while the worker waits, and a timer
        queued as a job waited for the drain ahead of it. Jobs keep running on this same loop
        (:meth:`run` hands them over), so drains and transitions share one v2 client and its
        adaptive limit."""
        applier = Applier(_expiry(self))
        self.loop.set_task_factory(self._task_factory)
        self._thread = threading.Thread(target=self.loop.run_forever, name="threadline-loop", daemon=True)
        self._thread.start()
        self._lifecycle = asyncio.run_coroutine_threadsafe(applier.run(self._lifecycle_stopping), self.loop)
        return applier

    def stop_lifecycle(self) -> None:
        """Stop claiming timers; running transitions end within the applier's grace (any thread)."""
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self._lifecycle_stopping.set)

    def run(self, coro):
        """Run ``coro`` on the process's loop. If it is interrupted (RQ's job timeout raises
        inside the loop or the waiting thread; SIGTERM), the tasks it started are cancelled here,
        so none of them runs on into the next job still renewing a lease or holding a lock."""
        if self._thread is None:
            try:
                return self.loop.run_until_complete(coro)
            except BaseException:  # no applier on this loop: every task left is the job's
                self.loop.run_until_complete(_cancel(asyncio.all_tasks(self.loop)))
                raise
        future = asyncio.run_coroutine_threadsafe(_as_job(coro), self.loop)
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=JOB_POLL_S)
            return future.result()
        except BaseException:
            future.cancel()
            try:  # the job's own exception is the one to raise, not a slow clean-up's
                asyncio.run_coroutine_threadsafe(_cancel(self._job_tasks), self.loop).result(timeout=5.0)
            except Exception:
                logger.warning("an interrupted job's tasks did not end in time")
            raise

    def _task_factory(self, loop, coro, context=None):
        task = asyncio.Task(coro, loop=loop, context=context)
        if (context.get(_IN_JOB, False) if context is not None else _IN_JOB.get()):
            self._job_tasks.add(task)
        return task

    def close(self) -> None:
        async def _close() -> None:
            await self.client.aclose()
            await self.redis.aclose()

        if self._thread is not None and self._lifecycle is not None:
            self.stop_lifecycle()
            try:
                self._lifecycle.result(timeout=STOP_WAIT_S)
            except Exception:  # stuck or failed: cancelled below with the loop
                self._lifecycle.cancel()
        self.run(_close())
        self.sync_redis.close()
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5.0)
            self._thread = None
        if not self.loop.is_running():
            self.loop.close()


async def _cancel(tasks) -> None:
    """Cancel the tasks not yet done and give them a moment (2 s) to clean up."""
    left = [t for t in list(tasks) if not t.done()]
    for t in left:
        t.cancel()
    if left:
        await asyncio.wait(left, timeout=2.0)


async def _as_job(coro):
    """A job's coroutine, marked as the job's: the tasks it starts are cancelled with it."""
    _IN_JOB.set(True)
    return await coro


def _async_redis(settings: Settings):
    """The drains' asyncio client: a *blocking* pool, so hundreds of concurrent lanes wait for
    a connection instead of failing with MaxConnectionsError (redis-py's default pool: 100)."""
    if settings.redis_url.startswith("memory://"):
        return connect_async(settings)
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    # A pool passed in brings its own retry policy, and by default that is none: after a Redis
    # restart every pooled connection failed once, seconds later, as a lane used it (the soak
    # saw a second wave of ConnectionErrors, and drains stopped early, 10 s after the restart).
    # The same policy as redis-py's default client: a closed connection is reconnected.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=max(32, settings.max_inflight * 2), timeout=30,
        socket_connect_timeout=2, socket_timeout=10, health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 3))
    return aioredis.Redis(connection_pool=pool)


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime(settings: Settings | None = None) -> Runtime:
    """The process's runtime, made on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(settings or load_settings())
        return _runtime


def drain_shard(shard: int) -> dict:
    """RQ job: drain shard ``shard`` (see :mod:`workers.delivery.drain`); returns a small report.

    Redis unreachable (a restart, a failover) ends the job quietly: an error raised out of it
    makes RQ record the failure in that same Redis, and when that fails too the worker quits.
    Nothing is lost — unacknowledged entries stay pending — and the shard's drain flag expires
    for the scheduler to re-trigger it."""
    rt = runtime()
    try:
        report: Report = rt.run(rt.drainer.drain(int(shard)))
    except (RedisError, OSError) as exc:
        logger.warning("drain not started: Redis unreachable", extra={"shard": shard, "error": type(exc).__name__})
        return {"shard": shard, "leased": False, "error": type(exc).__name__}
    if report.leased:
        logger.info("drained", extra={"shard": shard, "read": report.read, "acked": report.acked,
                                      "dead": report.dead, "retry": report.retry,
                                      "requeued": report.requeued, "adopted": report.adopted})
    return {"shard": report.shard, "leased": report.leased, "read": report.read,
            "acked": report.acked, "dead": report.dead, "retry": report.retry}


def sweep_shards(rt: Runtime) -> list[int]:
    """At worker start: enqueue a drain for every shard that has entries.

    A worker killed mid-drain leaves its shard's drain flag set (so ingress enqueues nothing)
    and its RQ job lost; a restarted worker must not wait for the flag to expire. Extra drains
    are harmless: a drain that finds a live holder of the lease gives up at once.
    """
    from workers.scheduler import queued_drains

    pipe = rt.sync_redis.pipeline(transaction=False)
    for n in range(rt.settings.shards):
        pipe.xlen(keys.events(n))
    waiting = queued_drains(rt.sync_redis, rt.queue.key)  # those get no second job
    shards = [n for n, length in enumerate(pipe.execute()) if length and n not in waiting]
    for n in shards:
        rt.sync_redis.set(keys.drain_flag(n), "sweep", ex=300)
        rt.enqueue_drain(n)
    return shards


def _expiry(rt: Runtime) -> expiry.Expiry:
    if rt.expiry is None:
        rt.expiry = expiry.Expiry(settings=rt.settings, redis=rt.redis, v2=rt.client,
                                  store=ConversationStore(rt.redis), configs=rt.configs)
    return rt.expiry


def apply_timeout(conversation_id: str, due: float) -> str:
    """RQ job: decide and apply one conversation's lifecycle now; returns what happened."""
    rt = runtime()
    return rt.run(expiry.decide_and_apply(_expiry(rt), conversation_id, due))


def apply_timeouts(batch: list) -> dict:
    """RQ job: decide a batch of fired timers ``[[conversation_id, due], …]`` concurrently.

    The scheduler enqueues one job per :data:`workers.scheduler.BATCH` timers: a thousand
    timers coming due at once are a handful of jobs, each deciding its batch's conversations
    at once, instead of a thousand RQ jobs (RQ spends ~50 Redis round trips on each). Their
    v2 PATCHes share the V2Client's adaptive limit (``THREADLINE_MAX_INFLIGHT`` at most) with
    the drains.
    """
    rt = runtime()
    return rt.run(expiry.apply_batch(_expiry(rt), batch))


def poll_calls() -> dict:
    """RQ job: one poll of the account's in-progress calls (passive voice); clears the flag the
    scheduler set when it enqueued this job, so the next poll can be enqueued."""
    rt = runtime()
    try:
        return rt.run(callpoll.poll(rt))
    finally:
        rt.sync_redis.delete(keys.CALL_POLL_FLAG)
