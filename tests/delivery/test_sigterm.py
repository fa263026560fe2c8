"""A worker sent SIGTERM mid-drain hands its shard back and exits within seconds (Kubernetes
kills at 30 s): the lease is released, the drain flag cleared and the next drain enqueued, so
another worker delivers what it left. Real processes: web, two workers, the twin holding a
create's answer for a minute."""
from __future__ import annotations

import signal
import time

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS, SHARDS
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
