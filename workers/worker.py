"""``threadline worker [--burst]``: an RQ worker on queue ``threadline`` that never forks.

RQ's default Worker forks a work horse per job, which would throw away the event loop, the v2
connection pool and the rule index after every drain. ``SimpleWorker`` runs each job in this
process (RQ still records it, retries it and shows it in rq-dashboard), so the runtime in
:mod:`workers.jobs` lives as long as the worker. Its event loop runs in a thread of its own,
with the lifecycle applier on it (:mod:`workers.lifecycle.applier`): every worker claims and
applies due lifecycle timers beside its drains. The worker still serves the lifecycle queue,
where jobs of an earlier release may wait.
"""
from __future__ import annotations

import faulthandler
import signal
import time

import redis
from rq import SimpleWorker

from workers.foundations import keys, log
from workers.foundations.redis_conn import connect
from workers.foundations.settings import Settings
from workers.jobs import runtime, sweep_shards

# How long a worker whose Redis went away waits for it to answer again before giving up.
REDIS_BACK_S = 60.0
# RQ loops ended by an error in a row (no job done between them) before the worker gives up.
MAX_RESTARTS = 5


class StoppedBetweenLoops(BaseException):
    """A stop request that came between two RQ loops. A ``BaseException``, like
    ``KeyboardInterrupt``, so that no ``except Exception`` on the way (a Redis retry, RQ's
    bootstrap) swallows it."""


class StopRequest:
    """A stop request (SIGTERM, SIGINT) that outlives one RQ loop.

    RQ installs its handlers when its loop starts and keeps the request on that loop's worker.
    Between two loops (a loop Redis ended, the wait for Redis to answer again) a signal went to
    the ended loop's worker, which either swallowed it (the loop died mid-job, so its worker still
    looked busy) and the worker ran on until killed, or raised RQ's ``StopRequested`` through
    :func:`run` (status 1, a traceback). :func:`run` handles signals itself between loops.

    The first request arms a deadline (``THREADLINE_WORKER_STOP_SECONDS``): a worker whose stop
    is stuck past it dumps every thread's stack to its log and exits with status 1, so it is gone
    before Kubernetes' SIGKILL and the log says what held it; what it held (shard leases, timer
    claims) comes back to the other workers as after a kill."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._requested = False  # set by signal handlers, which run on the main thread only

    def is_set(self) -> bool:
        return self._requested

    def set(self) -> None:
        if not self._requested:
            self._requested = True
            faulthandler.dump_traceback_later(self._deadline, exit=True)

    def between_loops(self) -> None:
        """From now until the next loop installs its handlers, a signal ends :func:`run` at once,
        even out of a Redis retry's sleep."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.is_set():  # a second signal, as in RQ: a cold stop
            raise SystemExit(1)
        self.set()
        raise StoppedBetweenLoops


def _redis_back(conn: redis.Redis, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bool(conn.ping())
        except redis.exceptions.RedisError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def run(settings: Settings, *, burst: bool = False) -> int:
    """Run RQ's worker loop until stopped; a loop that Redis ended is started again.

    RQ leaves its loop ("found an unhandled exception, quitting") on a Redis error in its own
    bookkeeping — a job's end recorded, a heartbeat after a dequeue — and its teardown then
    fails too: a Redis restart or failover would stop every worker. When the loop ends without
    a stop request, the worker waits for Redis (``REDIS_BACK_S``) and starts a new loop; the
    jobs' own effects are in Redis already, and RQ's maintenance moves an unrecorded job out of
    its started registry.
    """
    from rq import Queue
    from rq.exceptions import StopRequested
    from rq.worker import DequeueStrategy

    class DrainingWorker(SimpleWorker):
        """On SIGTERM/SIGINT the running drain hands its shards back (lease released, flag
        cleared, the next drain enqueued for another worker) instead of draining on for up to
        its time budget, and the lifecycle applier claims no more timers; then RQ's warm
        shutdown ends the process (Kubernetes allows 30 s; :class:`StopRequest` bounds it)."""

        def request_stop(self, signum, frame):
            stop.set()
            rt.stop_drains()
            rt.stop_lifecycle()
            super().request_stop(signum, frame)

        def _install_signal_handlers(self):
            super()._install_signal_handlers()
            if stop.is_set():  # asked between two loops: this one stops before its first job
                self._stop_requested = True

    log.configure(settings.log_level)
    logger = log.get_logger("threadline.worker")
    rt = runtime(settings)
    rt.start_lifecycle()  # due timers are claimed and applied beside the drains, from now on
    swept = sweep_shards(rt)
    if swept:
        logger.info("shards with entries at start: drains enqueued", extra={"shards": swept})
    conn = connect(settings)
    stop = StopRequest(settings.worker_stop_seconds)
    restarts = 0
    try:
        while True:
            worker = DrainingWorker([Queue(q, connection=conn) for q in (keys.QUEUE, keys.LIFECYCLE_QUEUE)],
                                    connection=conn)
            try:
                # in turn: drains and lifecycle batches each get every other pick when both wait
                worked = worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=False,
                                     dequeue_strategy=DequeueStrategy.ROUND_ROBIN)
            except redis.exceptions.RedisError:  # the teardown, after the loop ended on Redis
                worked = False
            if burst:
                return 0
            stop.between_loops()
            if stop.is_set():
                return 0
            restarts = 0 if worked else restarts + 1
            logger.warning("worker loop ended on a Redis error; waiting for Redis")
            if restarts > MAX_RESTARTS or not _redis_back(conn, REDIS_BACK_S):
                logger.error("worker loop ended and Redis does not answer; exiting")
                return 1
            logger.warning("Redis answers again; starting the worker loop again")
    except (StoppedBetweenLoops, StopRequested):  # RQ's: an ended loop's handler, just before ours
        return 0
    finally:
        rt.close()
