"""Lifecycle end to end, as an operator drives it: ``threadline dev`` (web, worker, scheduler and
the twin in one process) on this run's real Redis DB, a second ``threadline scheduler``
process competing for the lease, the admin API over HTTP, and the twin's v2 API over HTTP.

Conversations are created actively (``POST /api/v1/conversations``), so this file depends on
no webhook traffic; the timers, the apply job, the PATCHes and the store are all real.
"""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from service.cli.dev import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN
from tests.conftest import ADMIN_TOKEN
from tests.procs import Proc, free_port
from workers.capture.configuration import Configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys
from workers.foundations.settings import load_settings

BIZ = "+15005550199"
CONFIG = {
    "id": "lc", "displayName": "lifecycle test", "description": "lifecycle e2e",
    "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
    "memoryStoreId": "mem_store_0" + "0" * 25,
    "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": BIZ}],
                                "statusTimeouts": {"inactive": 1, "closed": 3}}},
}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def stack(redis_client: redis.Redis, redis_url: str):
    port, twin_port = free_port(), free_port()
    env = {"REDIS_URL": redis_url, "THREADLINE_MINUTE_SECONDS": "2",
           "THREADLINE_ADMIN_TOKEN": ADMIN_TOKEN, "TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": "",
           "TWILIO_API_KEY": "", "TWILIO_API_SECRET": "", "THREADLINE_TWILIO_BASE_URL": ""}
    dev = Proc(["dev", "--port", str(port), "--twin-port", str(twin_port)], env,
               ready_url=f"http://127.0.0.1:{port}/healthz")
    dev.wait_http(f"http://127.0.0.1:{twin_port}/v2/Conversations", 10)
    twin = f"http://127.0.0.1:{twin_port}"
    sched_env = {**env, "TWILIO_ACCOUNT_SID": DEMO_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": DEMO_AUTH_TOKEN,
                 "THREADLINE_TWILIO_BASE_URL": twin}
    second = Proc(["scheduler"], sched_env)
    # Bind the configuration to a v2 Configuration on the twin, as `threadline configs sync` does.
    ConfigStore(redis_client).put(Configuration.model_validate(CONFIG))
    from workers.foundations.redis_conn import connect_async
    from workers.twilio import sync as configsync

    settings = load_settings(redis_url=redis_url, twilio_base_url=twin,
                             twilio_account_sid=DEMO_ACCOUNT_SID, twilio_auth_token=DEMO_AUTH_TOKEN)

    async def sync() -> None:
        r = connect_async(settings)
        await configsync.sync_all(settings, r, only=["lc"], timeout=20)
        await r.aclose()

    asyncio.run(sync())
    try:
        yield f"http://127.0.0.1:{port}", twin, dev, second
    finally:
        second.stop()
        dev.stop()


def _create(web: str, customer: str) -> dict:
    r = httpx.post(f"{web}/api/v1/conversations", headers=AUTH, json={
        "configurationId": "lc",
        "participants": [{"address": customer, "channel": "SMS", "type": "CUSTOMER"},
                         {"address": BIZ, "channel": "SMS", "type": "AGENT"}]})
    assert r.status_code == 201, r.text
    return r.json()


def _twin_status(twin: str, tw_id: str) -> str:
    r = httpx.get(f"{twin}/v2/Conversations/{tw_id}", auth=(DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN))
    assert r.status_code == 200, r.text
    return r.json()["status"]


def _wait_twin(twin: str, tw_id: str, status: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _twin_status(twin, tw_id) == status:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{tw_id} not {status} after {timeout}s (is {_twin_status(twin, tw_id)})")


def _stat(r: redis.Redis, field: str) -> int:
    return int(r.hget(keys.STATS_TOTAL, field) or 0)


@pytest.mark.slow
def test_timeouts_close_in_v2_once_each_with_two_schedulers(stack, redis_client) -> None:
    web, twin, dev, second = stack
    convs, created = [], []
    for i in range(5):
        c = _create(web, f"+1415555{1000 + i}")
        created.append(time.time())
        assert _twin_status(twin, c["twilioConversationId"]) == "ACTIVE"
        assert c["timers"]["armedAt"] and c["timers"]["next"] == "INACTIVE"
        convs.append(c)
    # a minute lasts 2 s: inactive 1 → 2 s, closed 3 → 6 s; each within 2 s of its deadline
    for c, at in zip(convs, created):
        _wait_twin(twin, c["twilioConversationId"], "INACTIVE", 2 + 2 - (time.time() - at))
    for c, at in zip(convs, created):
        _wait_twin(twin, c["twilioConversationId"], "CLOSED", 6 + 2 - (time.time() - at))
    time.sleep(1.5)  # let any duplicate job (there must be none) run, and stats flush
    assert _stat(redis_client, "lifecycle_transitions|INACTIVE|timeout") == 5
    assert _stat(redis_client, "lifecycle_transitions|CLOSED|timeout") == 5
    assert _stat(redis_client, "conversations_closed|lc|timeout") == 5
    assert _stat(redis_client, "v2_requests|PATCH /v2/Conversations/{id}|200") == 10
    # and the twin's own request counts: 5 INACTIVE + 5 CLOSED PATCHes, none twice
    twin_counts = httpx.get(f"{twin}/_twin/counts").json()["routes"]
    assert twin_counts["PATCH /v2/Conversations/{id}"] == {"200": 10}
    assert redis_client.zcard(keys.TIMERS) == 0
    listed = httpx.get(f"{web}/api/v1/conversations?status=CLOSED&configuration=lc", headers=AUTH).json()
    assert {c["id"] for c in listed["conversations"]} == {c["id"] for c in convs}


@pytest.mark.slow
def test_explicit_transitions_and_bad_requests(stack, redis_client) -> None:
    web, twin, *_ = stack
    c = _create(web, "+14155552000")
    url = f"{web}/api/v1/conversations/{c['id']}"
    tw = c["twilioConversationId"]
    # the same participants again while it is open → 409 naming the open one
    again = httpx.post(f"{web}/api/v1/conversations", headers=AUTH, json={
        "configurationId": "lc",
        "participants": [{"address": "+14155552000", "channel": "SMS", "type": "CUSTOMER"},
                         {"address": BIZ, "channel": "SMS", "type": "AGENT"}]})
    assert again.status_code == 409 and again.json()["existing"] == c["id"]

    r = httpx.patch(url, headers=AUTH, json={"status": "INACTIVE"})
    assert r.status_code == 200 and r.json()["status"] == "INACTIVE"
    assert _twin_status(twin, tw) == "INACTIVE"
    r = httpx.patch(url, headers=AUTH, json={"status": "ACTIVE"})
    assert r.status_code == 200 and _twin_status(twin, tw) == "ACTIVE"
    r = httpx.patch(url, headers=AUTH, json={"status": "CLOSED"})
    assert r.status_code == 200 and r.json()["status"] == "CLOSED"
    assert _twin_status(twin, tw) == "CLOSED"
    r = httpx.patch(url, headers=AUTH, json={"status": "CLOSED"})
    assert r.status_code == 409 and "already CLOSED" in r.json()["error"]
    r = httpx.patch(url, headers=AUTH, json={"status": "ACTIVE"})
    assert r.status_code == 409
    assert httpx.patch(f"{web}/api/v1/conversations/nope", headers=AUTH,
                       json={"status": "CLOSED"}).status_code == 404
    r = httpx.patch(url, headers=AUTH, json={"status": "ARCHIVED"})
    assert r.status_code in (400, 409) and "status" in r.json()["error"]
    assert httpx.patch(url, json={"status": "CLOSED"}).status_code == 401
    # closed → it left grouping: the same participants now make a new conversation
    fresh = _create(web, "+14155552000")
    assert fresh["id"] != c["id"] and fresh["status"] == "ACTIVE"
    detail = httpx.get(f"{web}/api/v1/conversations/{fresh['id']}", headers=AUTH).json()
    assert detail["configurationVersion"] >= 1 and detail["participants"]
    assert _stat(redis_client, "lifecycle_transitions|CLOSED|explicit") == 1
    assert _stat(redis_client, "conversations_created|lc") == 2


def test_list_filters_and_pagination(stack) -> None:
    web, *_ = stack
    made = [_create(web, f"+1415555300{i}") for i in range(3)]
    get = lambda q: httpx.get(f"{web}/api/v1/conversations{q}", headers=AUTH)  # noqa: E731
    page1 = get("?limit=2").json()
    assert len(page1["conversations"]) == 2 and page1["next"] == 2
    page2 = get(f"?limit=2&offset={page1['next']}").json()
    assert len(page2["conversations"]) == 1 and "next" not in page2
    seen = [c["id"] for c in page1["conversations"] + page2["conversations"]]
    assert sorted(seen) == sorted(c["id"] for c in made)          # newest first, no overlap
    assert seen[0] == made[-1]["id"]
    assert len(get("?channel=SMS&configuration=lc").json()["conversations"]) == 3
    # the inactive timeout is 2 s and the lifecycle is on time: a status filter returns only
    # conversations of that status, whichever side of the deadline they are on now
    for status in ("ACTIVE", "INACTIVE"):
        listed = get(f"?channel=SMS&configuration=lc&status={status}").json()["conversations"]
        assert {c["status"] for c in listed} <= {status}, listed
    assert get("?channel=WHATSAPP").json()["conversations"] == []
    assert get("?configuration=other").json()["conversations"] == []
    assert get("?status=OPEN").status_code == 400
    assert get("?limit=0").status_code == 400
    assert get("?limit=x").status_code == 400
    detail = httpx.get(f"{web}/api/v1/conversations/{made[0]['twilioConversationId']}", headers=AUTH)
    assert detail.status_code == 200 and detail.json()["id"] == made[0]["id"]   # by v2 id too
    assert detail.json()["timers"]["timeouts"] == {"SMS": {"inactive": 1, "closed": 3}}
    assert httpx.get(f"{web}/api/v1/conversations/nope", headers=AUTH).status_code == 404
