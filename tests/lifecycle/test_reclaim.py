"""A lifecycle timer whose job waits in the queue past the claim (15 s) is claimed again and
gets a second job; the two decide from the record under the conversation's lifecycle lock, so
the status is PATCHed once (issue 12 item 8: refuted by this test). Real web (to create the
conversation), the scheduler's sweep in this process with its clock moved, a real
``threadline worker --burst`` running both jobs, the twin counting PATCHes."""
from __future__ import annotations

import time

import redis

from tests.lifecycle.test_restart import _config, _create, _lines, _patches
from tests.procs import Proc
from workers.capture.configuration import Configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.lifecycle.timers import CLAIM_SECONDS
from workers.scheduler import Scheduler


def test_a_timer_claimed_twice_patches_once(twin, start_web, redis_client: redis.Redis) -> None:
    env = {**twin.env(), "THREADLINE_MINUTE_SECONDS": "1"}
    ConfigStore(redis_client).put(Configuration.model_validate(_config(twin, 1, 30)))
    web = start_web(**env)
    start_line = _lines(twin)
    conv = _create(web, "+16505554001")
    time.sleep(1.5)  # the INACTIVE deadline (1 s) has passed
    sched = Scheduler(load_settings(**{**web.env, **env}), redis_client)
    assert sched.lease.hold()
    now = time.time()
    assert sched.sweep(now) == 1
    assert sched.sweep(now + CLAIM_SECONDS + 1) == 1  # its job still queued: claimed again
    assert redis_client.llen(f"rq:queue:{keys.LIFECYCLE_QUEUE}") == 2
    worker = Proc(["worker", "--burst"], {**web.env, **env})
    assert worker.popen.wait(timeout=60) == 0, worker.output()[-3000:]
    patches = _patches(twin, start_line)
    assert patches == {(conv["twilioConversationId"], "INACTIVE"): 1}, patches
