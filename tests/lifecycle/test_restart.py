"""Restart safety and v2 refusals, with every part a real process: ``threadline web``,
``threadline worker``, ``threadline scheduler`` and the session twin, on this run's Redis DB.

- Worker and scheduler are SIGKILLed while timers are coming due and jobs are queued, and the
  web tier is restarted; after the restart every conversation still closes (no timer lost)
  and the twin saw at most one PATCH of each status per conversation (none fired twice).
- v2 refusing a status PATCH for good → the conversation is flagged in the admin API and a
  dead letter says why; a transient refusal is retried until it lands.
"""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import redis

from tests.conftest import ADMIN_TOKEN
from tests.procs import Proc
from workers.capture.configuration import Configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys

BIZ = "+15005550177"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _config(twin, inactive: int, closed: int) -> dict:
    return {
        "id": "rs", "displayName": "restart", "description": "restart safety",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
        "memoryStoreId": "mem_store_0" + "0" * 25,
        "twilioConfigurationId": twin.create_configuration(),
        "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": BIZ}],
                                    "statusTimeouts": {"inactive": inactive, "closed": closed}}},
    }


def _create(web, customer: str) -> dict:
    r = web.client.post("/api/v1/conversations", headers=AUTH, json={
        "configurationId": "rs",
        "participants": [{"address": customer, "channel": "SMS", "type": "CUSTOMER"},
                         {"address": BIZ, "channel": "SMS", "type": "AGENT"}]})
    assert r.status_code == 201, r.text
    return r.json()


def _patches(twin, since: int) -> Counter:
    """(conversation id, status) → PATCHes the twin answered 200, from the record file."""
    out: Counter = Counter()
    with twin.record_path.open() as f:
        for line in f.readlines()[since:]:
            req = json.loads(line)
            if req["method"] == "PATCH" and req["path"].startswith("/v2/Conversations/") \
                    and req["status"] == 200:
                out[(req["path"].rsplit("/", 1)[1], req["body"]["status"])] += 1
    return out


def _lines(twin) -> int:
    with twin.record_path.open() as f:
        return sum(1 for _ in f)


@pytest.mark.slow
def test_kill_worker_scheduler_and_web_mid_run_loses_no_timer_and_fires_none_twice(
        twin, start_web, redis_client: redis.Redis) -> None:
    env = {**twin.env(), "THREADLINE_MINUTE_SECONDS": "1"}
    ConfigStore(redis_client).put(Configuration.model_validate(_config(twin, 2, 8)))
    web = start_web(**env)
    start_line = _lines(twin)
    wenv = {**web.env, **env}
    worker = Proc(["worker"], wenv)
    sched = Proc(["scheduler"], wenv)
    first = time.monotonic()
    convs = [_create(web, f"+1650555{2000 + i}") for i in range(20)]
    last = time.monotonic()
    ids = {c["twilioConversationId"] for c in convs}
    time.sleep(max(0.0, first + 2.4 - time.monotonic()))  # INACTIVE deadlines (2 s) firing now
    worker.kill()
    sched.kill()
    web.stop()
    assert time.monotonic() < first + 7.5, "creating 20 conversations took too long"
    time.sleep(max(0.0, last + 8.5 - time.monotonic()))   # CLOSED deadlines (8 s) pass, all down
    assert not any(s == "CLOSED" for _, s in _patches(twin, start_line))
    web = start_web(**env)
    worker = Proc(["worker"], {**web.env, **env})
    sched = Proc(["scheduler"], {**web.env, **env})
    try:
        twin.wait_for(lambda st: sum(1 for c in st["conversations"]
                                     if c["id"] in ids and c["status"] == "CLOSED") == 20,
                      timeout=15)
        time.sleep(1.0)                   # room for a duplicate, which must not come
        patches = _patches(twin, start_line)
        assert all(n == 1 for n in patches.values()), patches
        assert {cid for cid, s in patches if s == "CLOSED"} == ids
        assert redis_client.zcard(keys.TIMERS) == 0
        listed = web.client.get("/api/v1/conversations?status=CLOSED&limit=500", headers=AUTH).json()
        assert len(listed["conversations"]) == 20
    finally:
        worker.stop()
        sched.stop()


@pytest.mark.slow
def test_v2_refusal_flags_the_conversation_and_transient_errors_are_retried(
        twin, start_web, redis_client: redis.Redis) -> None:
    env = {**twin.env(), "THREADLINE_MINUTE_SECONDS": "1", "THREADLINE_MAX_ATTEMPTS": "2",
           "THREADLINE_RETRY_BASE_SECONDS": "0.05", "THREADLINE_RETRY_MAX_SECONDS": "0.1"}
    ConfigStore(redis_client).put(Configuration.model_validate(_config(twin, 1, 30)))
    web = start_web(**env)
    with Proc(["worker"], {**web.env, **env}), Proc(["scheduler"], {**web.env, **env}):
        # transient: every PATCH answers 503 for a while → retried, lands once the twin heals
        doomed, healed = _create(web, "+16505553001"), _create(web, "+16505553002")
        twin.set_faults(rate_503=1.0, path=r"^/v2/Conversations/[^/]+$")
        r = web.client.patch(f"/api/v1/conversations/{healed['id']}", headers=AUTH,
                             json={"status": "CLOSED"})
        assert r.status_code == 503 and "transient" in r.json()["error"]
        assert web.client.get(f"/api/v1/conversations/{healed['id']}",
                              headers=AUTH).json()["status"] == "ACTIVE"
        time.sleep(1.5)                 # both timers (1 s) fire into the 503s
        twin.clear_faults()
        twin.wait_for(lambda st: all(c["status"] == "INACTIVE" for c in st["conversations"]
                                     if c["id"] in (doomed["twilioConversationId"],
                                                    healed["twilioConversationId"])),
                      timeout=25)
        # final: delete the conversation in v2 behind threadline's back → PATCH answers 404
        with twin.http() as http:
            assert http.delete(f"/v2/Conversations/{doomed['twilioConversationId']}").status_code == 202
        time.sleep(0.5)
        r = web.client.patch(f"/api/v1/conversations/{doomed['id']}", headers=AUTH,
                             json={"status": "CLOSED"})
        assert r.status_code == 502 and "flagged" in r.json()["error"]
        view = web.client.get(f"/api/v1/conversations/{doomed['id']}", headers=AUTH).json()
        assert view["flagged"]["status"] == "CLOSED" and "404" in view["flagged"]["error"]
        dead = redis_client.xrange(keys.DEAD_LETTERS)
        assert [f[b"reason"] for _, f in dead] == [b"lifecycle_patch_refused"]
        total = redis_client.hgetall(keys.STATS_TOTAL)
        assert int(total[b"lifecycle_failures|v2_rejected"]) == 1
