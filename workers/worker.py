"""``threadline worker [--burst]``: an RQ worker on queue ``threadline`` that never forks.

RQ's default Worker forks a work horse per job, which would throw away the event loop, the v2
connection pool and the rule index after every drain. ``SimpleWorker`` runs each job in this
process (RQ still records it, retries it and shows it in rq-dashboard), so the runtime in
:mod:`workers.jobs` lives as long as the worker.
"""
from __future__ import annotations

from workers import keys, log
from workers.jobs import runtime, sweep_shards
from workers.redis_conn import connect
from workers.settings import Settings


def run(settings: Settings, *, burst: bool = False) -> int:
    from rq import Queue, SimpleWorker

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
