"""Jobs queued before an upgrade still run: RQ stores a job's function by dotted name.

The lifecycle jobs moved from ``workers.jobs_lifecycle`` to ``workers.jobs``; the old module is
kept as an alias for one release. A job enqueued under the old name, as a scheduler of the
previous release wrote it into Redis, is run by a real ``threadline worker --burst``.
"""
from __future__ import annotations

import time

from rq import Queue
from rq.job import Job

from tests.procs import Proc
from tests.web_fixtures import web_env
from workers.foundations import keys
from workers.foundations.constants import APPLY_JOB

OLD_APPLY_JOB = "workers.jobs_lifecycle.apply_timeouts"


def test_the_lifecycle_job_has_the_new_name() -> None:
    assert APPLY_JOB == "workers.jobs.apply_timeouts"


def test_a_job_enqueued_by_the_old_dotted_name_still_runs(redis_client, redis_url, twin_server) -> None:
    redis_client.zadd(keys.TIMERS, {"conv_gone": time.time() - 1})
    job = Queue(keys.QUEUE, connection=redis_client).enqueue(OLD_APPLY_JOB, [["conv_gone", time.time() - 1]])

    worker = Proc(["worker", "--burst"], web_env(redis_url, **twin_server.env()))
    try:
        assert worker.popen.wait(timeout=60) == 0, worker.output()
    finally:
        worker.stop()

    done = Job.fetch(job.id, connection=redis_client)
    assert done.func_name == OLD_APPLY_JOB
    assert done.get_status() == "finished", done.exc_info
    assert done.return_value() == {"unknown conversation": 1}
    # the job really ran the lifecycle: the unknown conversation's timer was dropped
    assert redis_client.zscore(keys.TIMERS, "conv_gone") is None
