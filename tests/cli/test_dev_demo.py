"""``threadline dev --demo`` as a newcomer runs it (``make run``): one subprocess, this run's
real Redis DB, the twin inside it. The demo's signed traffic must form conversations that go
INACTIVE and then CLOSED in the twin within a minute; and without a Redis the same command
says it runs on the embedded one, in its first line."""
from __future__ import annotations

import time

import httpx
import pytest
import redis

from service.cli.dev import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN
from tests.procs import Proc, free_port
from workers import keys

CLEAN_ENV = {"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": "", "TWILIO_API_KEY": "",
             "TWILIO_API_SECRET": "", "THREADLINE_TWILIO_BASE_URL": "", "THREADLINE_ADMIN_TOKEN": "",
             "THREADLINE_PUBLIC_URL": "", "THREADLINE_MINUTE_SECONDS": "60"}


def _twin_conversations(twin: str) -> list[dict]:
    r = httpx.get(f"{twin}/v2/Conversations", params={"pageSize": 100},
                  auth=(DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN))
    assert r.status_code == 200, r.text
    return r.json()["conversations"]


@pytest.mark.slow
def test_dev_demo_conversations_form_go_inactive_and_close_within_a_minute(
        redis_client: redis.Redis, redis_url: str) -> None:
    port, twin_port = free_port(), free_port()
    twin = f"http://127.0.0.1:{twin_port}"
    env = {**CLEAN_ENV, "REDIS_URL": redis_url}
    with Proc(["dev", "--demo", "--port", str(port), "--twin-port", str(twin_port)], env,
              ready_url=f"http://127.0.0.1:{port}/healthz") as dev:
        started = time.monotonic()
        first = dev.output().splitlines()[0]
        assert first.startswith("threadline dev: real Redis at " + redis_url), first
        assert f"http://127.0.0.1:{port}/dashboard" in first and "/api/v1/conversations" in first
        token = next(line.split()[-1] for line in dev.output().splitlines()
                     if "admin token (generated)" in line)

        seen_active = False
        closed: list[dict] = []
        while time.monotonic() - started < 55:
            convs = _twin_conversations(twin)
            seen_active |= any(c["status"] == "ACTIVE" for c in convs)
            closed = [c for c in convs if c["status"] == "CLOSED"]
            if len(convs) >= 5 and len(closed) == len(convs):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"not all closed within a minute: {convs}\n{dev.output()}")
        assert seen_active
        # SMS and WhatsApp customers, each with communications (inbound and the replies)
        channels = set()
        for c in closed:
            comms = httpx.get(f"{twin}/v2/Conversations/{c['id']}/Communications",
                              auth=(DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN)).json()["communications"]
            assert len(comms) >= 2, comms
            channels |= {comm["author"]["channel"] for comm in comms}
        assert channels == {"SMS", "WHATSAPP"}
        # they went through INACTIVE first, by timer, and the admin API (generated token) agrees
        total = redis_client.hgetall(keys.STATS_TOTAL)
        assert int(total.get(b"lifecycle_transitions|INACTIVE|timeout", 0)) >= len(closed)
        assert int(total.get(b"lifecycle_transitions|CLOSED|timeout", 0)) == len(closed)
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/conversations?status=CLOSED",
                           headers={"Authorization": f"Bearer {token}"}).json()
        assert {c["twilioConversationId"] for c in listed["conversations"]} == {c["id"] for c in closed}


def test_dev_without_redis_says_embedded_first() -> None:
    port, twin_port = free_port(), free_port()
    env = {**CLEAN_ENV, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with Proc(["dev", "--port", str(port), "--twin-port", str(twin_port)], env,
              ready_url=f"http://127.0.0.1:{port}/healthz") as dev:
        first = dev.output().splitlines()[0]
        assert first.startswith("threadline dev: embedded Redis (memory://"), first
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/conversations").status_code == 401
