"""THREADLINE_ACK_DURABILITY=local: one WAITAOF per group commit, and no 200 before it answers.

A private Valkey with AOF (tests/valkey_fixtures.py) and a real ``threadline web``; the counts
come from the server's own ``INFO commandstats``.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.web_fixtures import counters, inbound_message, log_entries, post_signed, wait_counter

MSG = "/webhooks/twilio/messaging"


def _calls(client, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_one_waitaof_per_group_commit_not_per_webhook(start_web, start_valkey) -> None:
    server = start_valkey()
    web = start_web(REDIS_URL=server.url, THREADLINE_ACK_DURABILITY="local")
    client = server.client()
    client.config_resetstat()  # forget the start-up's own probe
    n = 240
    deliveries = [inbound_message(f"+1415555{i:04d}", "+14155550100", f"message {i}") for i in range(n)]
    with ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(lambda p: post_signed(web, MSG, p).status_code, deliveries))
    assert statuses == [200] * n
    commits, waits = _calls(client, "evalsha"), _calls(client, "waitaof")
    print(f"\n{n} webhooks from 24 threads: {commits} group commits, {waits} WAITAOF")
    assert waits == commits          # every group commit waited, once
    assert waits < n                 # and concurrent webhooks shared the wait
    assert len(log_entries(client)) == n


def test_the_200_waits_for_the_fsync_and_a_wait_that_falls_short_is_503(start_web, start_valkey) -> None:
    server = start_valkey()
    web = start_web(REDIS_URL=server.url, THREADLINE_ACK_DURABILITY="local",
                    THREADLINE_ACK_TIMEOUT_SECONDS="0.6")
    client = server.client()
    first = inbound_message("+14155550123", "+14155550100", "before")
    assert post_signed(web, MSG, first).status_code == 200
    # The server stops fsyncing (appendfsync no never does): the append still succeeds, but
    # WAITAOF cannot be satisfied, so no 200 may go out.
    client.config_set("appendfsync", "no")
    held = inbound_message("+14155550124", "+14155550100", "while not fsynced")
    t0 = time.monotonic()
    r = post_signed(web, MSG, held)
    waited = time.monotonic() - t0
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.text == "stored, not yet durable; retry later\n"
    assert waited >= 0.55, f"answered after {waited:.3f}s: the answer did not wait for WAITAOF"
    assert wait_counter(client, "webhooks|message|not_durable", 1) == 1
    assert {e.params["Body"] for e in log_entries(client)} == {"before", "while not fsynced"}
    # Twilio retries once the server fsyncs again: a duplicate, answered 200 after its own wait
    client.config_set("appendfsync", "everysec")
    assert post_signed(web, MSG, held).status_code == 200
    assert counters(client)["webhooks|message|duplicate"] == 1
    assert len(log_entries(client)) == 2
