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


class Worker(SimpleWorker):
    """``SimpleWorker`` that remembers a stop request (SIGTERM, SIGINT): RQ raises it through
    its loop without a mark when idle, and :func:`run` must tell it from a loop Redis ended."""

    stopping = False

    def request_stop(self, signum, frame) -> None:
        self.stopping = True
        super().request_stop(signum, frame)


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
    from rq.worker import DequeueStrategy

    class DrainingWorker(Worker):
        """On SIGTERM/SIGINT the running drain hands its shards back (lease released, flag
        cleared, the next drain enqueued for another worker) instead of draining on for up to
        its time budget, and the lifecycle applier claims no more timers; then RQ's warm
        shutdown ends the process (Kubernetes allows 30 s)."""

        def request_stop(self, signum, frame):
            rt.stop_drains()
            rt.stop_lifecycle()
            super().request_stop(signum, frame)

    log.configure(settings.log_level)
    logger = log.get_logger("threadline.worker")
    rt = runtime(settings)
    rt.start_lifecycle()  # due timers are claimed and applied beside the drains, from now on
    swept = sweep_shards(rt)
    if swept:
        logger.info("shards with entries at start: drains enqueued", extra={"shards": swept})
    conn = connect(settings)
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
            if burst or worker.stopping:
                return 0
            restarts = 0 if worked else restarts + 1
            if restarts > MAX_RESTARTS or not _redis_back(conn, REDIS_BACK_S):
                logger.error("worker loop ended and Redis does not answer; exiting")
                return 1
            logger.warning("worker loop ended on a Redis error; starting it again")
    finally:
        rt.close()
