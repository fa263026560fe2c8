"""Lifecycle transitions stay on time while the worker is busy draining (issue 12, the soak's
lifecycle row: 34% of transitions PATCHed more than 10 s late under load).

Found by the soak and traced with a medium one: lifecycle batches queued as RQ jobs waited for
the drain job ahead of them (8.1 s of the 11.2 s mean lateness); the transitions themselves took
0.4 s. A worker now claims due timers and applies them on its own event loop, beside its drains.

Real processes: ``threadline web`` (the admin API creates the conversations), one
``threadline worker``, ``threadline scheduler``, the twin as Twilio with every Communications
post slowed to 300 ms, one Redis. The worker's one drain has a lane of 60 messages to post
(~18 s, one batch); the conversations' INACTIVE deadlines pass while it runs, and every one of
them must be PATCHed within a few seconds — while that drain still has entries to deliver.
"""
from __future__ import annotations

import time

import pytest
import redis

from tests.lifecycle.test_restart import BIZ, _config, _create, _lines, _patches
from tests.procs import Proc
from tests.web_fixtures import inbound_message, post_signed
from workers.capture.configuration import Configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys

INACTIVE_S = 2.0   # statusTimeouts.inactive = 2 configured minutes of 1 s
BOUND_S = 4.0      # how late a transition may be PATCHed (the drain would keep it ~15 s)
CONVERSATIONS = 8


def _backlog(r: redis.Redis, shards: int) -> int:
    return sum(r.xlen(keys.events(n)) for n in range(shards))


@pytest.mark.slow
def test_transitions_are_patched_on_time_while_the_worker_drains(
        twin, start_web, redis_client: redis.Redis) -> None:
    env = {**twin.env(), "THREADLINE_MINUTE_SECONDS": "1", "THREADLINE_SHARDS": "4",
           "THREADLINE_BATCH_SIZE": "100"}
    ConfigStore(redis_client).put(Configuration.model_validate(_config(twin, 2, 60)))
    web = start_web(**env)
    start_line = _lines(twin)
    wenv = {**web.env, **env}
    with Proc(["worker"], wenv) as worker, Proc(["scheduler"], wenv):
        twin.set_faults(latency_ms=300, path=r"/Communications$")
        for n in range(60):  # one lane (one address pair): posted one after another
            r = post_signed(web, "/webhooks/twilio/messaging", inbound_message("+16505557000", BIZ, f"m{n}"))
            assert r.status_code == 200
        twin.wait_for(lambda st: any(c["communications"] for c in st["conversations"]), timeout=20)

        made = [_create(web, f"+1650555{7100 + i}") for i in range(CONVERSATIONS)]
        ids = {c["twilioConversationId"] for c in made}
        deadline = time.monotonic() + INACTIVE_S
        while True:
            inactive = {cid for cid, status in _patches(twin, start_line) if status == "INACTIVE"} & ids
            busy = _backlog(redis_client, 4)
            if inactive == ids or time.monotonic() > deadline + BOUND_S:
                break
            time.sleep(0.1)
        assert inactive == ids, (f"{len(inactive)} of {CONVERSATIONS} PATCHed INACTIVE within "
                                 f"{BOUND_S:g} s of their deadline; the drain had {busy} entries left\n"
                                 + worker.output()[-3000:])
        assert busy > 0, "the drain ended before the deadlines: the test proved nothing"
        # each PATCHed once, and the drain goes on to deliver everything
        assert all(n == 1 for n in _patches(twin, start_line).values())
        twin.clear_faults()
        deadline = time.monotonic() + 60
        while _backlog(redis_client, 4) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _backlog(redis_client, 4) == 0
