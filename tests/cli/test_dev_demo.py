"""``threadline dev --demo`` as a newcomer runs it (``make run``): one subprocess, this run's
real Redis DB, the twin inside it. The demo makes traffic happen on the twin, which sends the
signed webhooks; conversations must form, go INACTIVE and CLOSE by timer, and new ones keep
forming after that (the demo keeps playing); and without a Redis the same command says it runs
on the embedded one, in its first line."""
from __future__ import annotations

import time

import httpx
import pytest
import redis

from service.cli import demo
from service.cli.dev import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN
from tests.procs import Proc, free_port
from workers.foundations import keys

CLEAN_ENV = {"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": "", "TWILIO_API_KEY": "",
             "TWILIO_API_SECRET": "", "THREADLINE_TWILIO_BASE_URL": "", "THREADLINE_ADMIN_TOKEN": "",
             "THREADLINE_PUBLIC_URL": "", "THREADLINE_MINUTE_SECONDS": "60"}


def _twin_conversations(twin: str) -> list[dict]:
    r = httpx.get(f"{twin}/v2/Conversations", params={"pageSize": 100},
                  auth=(DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN))
    assert r.status_code == 200, r.text
    return r.json()["conversations"]


@pytest.mark.slow
def test_dev_demo_keeps_playing_conversations_form_go_inactive_and_close(
        redis_client: redis.Redis, redis_url: str) -> None:
    port, twin_port = free_port(), free_port()
    twin = f"http://127.0.0.1:{twin_port}"
    env = {**CLEAN_ENV, "REDIS_URL": redis_url}
    with Proc(["dev", "--demo", "--port", str(port), "--twin-port", str(twin_port)], env,
              ready_url=f"http://127.0.0.1:{port}/healthz") as dev:
        started = time.monotonic()
        lines = dev.output().splitlines()
        first = lines[0]
        assert first.startswith("threadline dev: real Redis at " + redis_url), first
        assert f"http://127.0.0.1:{port}/dashboard" in first and "/api/v1/conversations" in first
        token = next(line.split()[-1] for line in lines if "admin token (generated)" in line)
        # the banner names the demo's numbers and an explain that matches them
        assert any(f"business number {demo.BUSINESS}" in line for line in lines[:8]), lines[:8]
        assert any(demo.EXPLAIN in line for line in lines[:8]), lines[:8]

        closed: list[dict] = []
        created_after_first_close = False
        first_close_ids: set[str] = set()
        while time.monotonic() - started < 90:
            convs = _twin_conversations(twin)
            closed = [c for c in convs if c["status"] == "CLOSED"]
            if closed and not first_close_ids:
                first_close_ids = {c["id"] for c in convs}
            elif first_close_ids and {c["id"] for c in convs} - first_close_ids:
                created_after_first_close = True  # the demo kept playing after a close
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no close followed by new traffic within 90 s: {convs}\n{dev.output()}")
        assert closed
        # the twin sent the webhooks: its record shows deliveries to threadline's URLs
        state = httpx.get(f"{twin}/_twin/state").json()
        urls = {d["url"].split("?")[0] for d in state["deliveries"]}
        assert f"http://127.0.0.1:{port}/webhooks/twilio/messaging" in urls
        assert f"http://127.0.0.1:{port}/webhooks/twilio/messaging/status" in urls
        # SMS and WhatsApp customers, each conversation with communications
        channels = set()
        for c in convs:
            comms = httpx.get(f"{twin}/v2/Conversations/{c['id']}/Communications",
                              auth=(DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN)).json()["communications"]
            channels |= {comm["author"]["channel"] for comm in comms}
        assert channels == {"SMS", "WHATSAPP"}
        # closed ones went through INACTIVE first, by timer, and the admin API (generated token) agrees
        total = redis_client.hgetall(keys.STATS_TOTAL)
        assert int(total.get(b"lifecycle_transitions|INACTIVE|timeout", 0)) >= 1
        assert int(total.get(b"lifecycle_transitions|CLOSED|timeout", 0)) >= 1
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/conversations?status=CLOSED",
                           headers={"Authorization": f"Bearer {token}"}).json()
        assert {c["id"] for c in closed} <= {c["twilioConversationId"] for c in listed["conversations"]}
        assert created_after_first_close


def test_dev_without_redis_says_embedded_first() -> None:
    port, twin_port = free_port(), free_port()
    env = {**CLEAN_ENV, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with Proc(["dev", "--port", str(port), "--twin-port", str(twin_port)], env,
              ready_url=f"http://127.0.0.1:{port}/healthz") as dev:
        first = dev.output().splitlines()[0]
        assert first.startswith("threadline dev: embedded Redis (memory://"), first
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/conversations").status_code == 401
