"""A lifecycle timer claimed twice — its first worker's claim lapsed while the transition was
still running, and another worker claimed it — PATCHes once: the two decide from the record
under the conversation's grouping-key lock (issue 12 item 8: refuted by this test). Real web
(to create the conversation), two workers' claims and applications in this process on the
engine's runtime, real Redis, the twin counting PATCHes."""
from __future__ import annotations

import asyncio
import time

import redis

from tests.lifecycle.test_restart import _config, _create, _lines, _patches
from workers.capture.configuration import Configuration
from workers.capture.store import ConfigStore
from workers.foundations.settings import load_settings
from workers.jobs import Runtime, _expiry
from workers.lifecycle import expiry, timers


def test_a_timer_claimed_twice_patches_once(twin, start_web, redis_client: redis.Redis) -> None:
    env = {**twin.env(), "THREADLINE_MINUTE_SECONDS": "1"}
    ConfigStore(redis_client).put(Configuration.model_validate(_config(twin, 1, 30)))
    web = start_web(**env)
    start_line = _lines(twin)
    conv = _create(web, "+16505554001")
    time.sleep(1.5)  # the INACTIVE deadline (1 s) has passed
    rt = Runtime(load_settings(**{**web.env, **env}))
    try:
        async def both() -> list[str]:
            claimer = timers.Claimer(rt.redis)
            now = time.time()
            first = await claimer.claim(now, 10)
            second = await claimer.claim(now + timers.CLAIM_SECONDS + 1, 10)  # the first lapsed
            assert [cid for cid, _ in first] == [cid for cid, _ in second] == [conv["id"]]
            ctx = _expiry(rt)
            return await asyncio.gather(*(expiry.apply_one(ctx, cid, due) for cid, due in first + second))

        outcomes = rt.run(both())
    finally:
        rt.close()
    assert sorted(outcomes) == ["ACTIVE -> INACTIVE", "unchanged"], outcomes
    patches = _patches(twin, start_line)
    assert patches == {(conv["twilioConversationId"], "INACTIVE"): 1}, patches
