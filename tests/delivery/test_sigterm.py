"""A worker sent SIGTERM mid-drain hands its shard back and exits within seconds (Kubernetes
kills at 30 s): the lease is released, the drain flag cleared and the next drain enqueued, so
another worker delivers what it left. Real processes: web, two workers, the twin holding a
create's answer for a minute."""
from __future__ import annotations

import signal
import time

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS, SHARDS, sleeping_job_taken
from workers.foundations import keys

MESSAGING = "/webhooks/twilio/messaging"


def test_sigterm_mid_drain_hands_the_shard_back_and_exits_fast(pipeline) -> None:
    pipeline.configure("main")
    pipeline.twin.set_faults(rate_timeout=1.0, hold_seconds=60, path=r"^/v2/Conversations$")
    params = inbound_message("+14155557201", OURS, "mid-drain")
    post_signed(pipeline.web, MESSAGING, params)
    worker = pipeline.start_worker(THREADLINE_TWILIO_TIMEOUT="60")
    pipeline.twin.wait_for(lambda st: len(st["conversations"]) == 1, timeout=20)
    pipeline.twin.clear_faults()
    r = pipeline.redis
    assert any(r.exists(keys.shard_lease(n)) for n in range(SHARDS))  # it is draining
    sent = time.monotonic()
    worker.signal(signal.SIGTERM)
    worker.popen.wait(timeout=15)
    took = time.monotonic() - sent
    assert took < 5, f"worker took {took:.1f} s to exit\n{worker.output()[-3000:]}"
    assert not any(r.exists(keys.shard_lease(n)) for n in range(SHARDS))
    assert r.llen(f"rq:queue:{keys.QUEUE}") >= 1  # the shard's next drain, for another worker
    pipeline.start_worker()
    pipeline.wait_idle(timeout=30)
    delivered = [m["resourceId"] for c in pipeline.twin.conversations() for m in c["communications"]]
    assert delivered == [params["MessageSid"]]


def test_a_stop_stuck_past_its_deadline_dumps_the_threads_and_exits(pipeline) -> None:
    """Whatever holds a stopping worker (here a job that does not end; RQ's warm stop waits for
    the job), it is gone at THREADLINE_WORKER_STOP_SECONDS, before Kubernetes' SIGKILL, with its
    threads' stacks in its log to say what held it, and status 1: not a clean stop."""
    from rq import Queue

    worker = pipeline.start_worker(THREADLINE_WORKER_STOP_SECONDS="1")
    sleeping_job_taken(Queue(keys.QUEUE, connection=pipeline.redis), worker, 120.0)
    time.sleep(0.2)
    sent = time.monotonic()
    worker.signal(signal.SIGTERM)
    worker.popen.wait(timeout=15)
    took = time.monotonic() - sent
    out = worker.output()
    assert worker.popen.returncode == 1 and 0.9 < took < 5, f"status {worker.popen.returncode} after {took:.1f} s"
    assert "most recent call first" in out and "rq/job.py" in out, out[-3000:]  # the held job's stack
