"""``threadline worker [--burst]``: an RQ worker on queue ``threadline`` that never forks.

RQ's default Worker forks a work horse per job, which would throw away the event loop, the v2
connection pool and the rule index after every drain. ``SimpleWorker`` runs each job in this
process (RQ still records it, retries it and shows it in rq-dashboard), so the runtime in
:mod:`workers.jobs` lives as long as the worker.
"""
from __future__ import annotations

import time

import redis
from rq import SimpleWorker

from workers import keys, log
from workers.jobs import runtime, sweep_shards
from workers.redis_conn import connect
from workers.settings import Settings

# How long a worker whose Redis went away while a job ended waits for it before giving up.
REDIS_BACK_S = 60.0


class Worker(SimpleWorker):
    """``SimpleWorker`` that outlives a Redis restart.

    RQ records a job's end in Redis (heartbeat, registries) and quits its loop on any error
    doing so: a job ending while Redis restarts or fails over would stop the worker. The job's
    own effects are in Redis already (a drain's acknowledgements, an apply's status), so the
    worker waits for Redis to answer again (``REDIS_BACK_S``) and goes on; RQ's maintenance
    later moves the unrecorded job out of its started registry.
    """

    def execute_job(self, job, queue) -> None:
        try:
            super().execute_job(job, queue)
        except redis.exceptions.ConnectionError as exc:
            self.log.warning("Worker %s: Redis unreachable as job %s ended (%s); waiting for it",
                             self.name, job.id, type(exc).__name__)
            deadline = time.monotonic() + REDIS_BACK_S
            while True:
                try:
                    self.connection.ping()
                    return
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)


def run(settings: Settings, *, burst: bool = False) -> int:
    from rq import Queue

    class Worker(SimpleWorker):
        """On SIGTERM/SIGINT the running drain hands its shards back (lease released, flag
        cleared, the next drain enqueued for another worker) instead of draining on for up to
        its time budget; then RQ's warm shutdown ends the process (Kubernetes allows 30 s)."""

        def request_stop(self, signum, frame):
            rt.stop_drains()
            super().request_stop(signum, frame)

    log.configure(settings.log_level)
    logger = log.get_logger("threadline.worker")
    rt = runtime(settings)
    swept = sweep_shards(rt)
    if swept:
        logger.info("shards with entries at start: drains enqueued", extra={"shards": swept})
    conn = connect(settings)
    worker = Worker([Queue(keys.QUEUE, connection=conn)], connection=conn)
    try:
        worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=False)
    finally:
        rt.close()
    return 0
