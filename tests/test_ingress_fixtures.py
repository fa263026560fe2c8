"""Every recorded Twilio delivery is accepted and logged once; a changed byte is refused.

The server runs as ``threadline web`` over real HTTP with THREADLINE_PUBLIC_URL set to the
public URL the fixtures were signed for, on this run's Redis database.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.web_fixtures import all_fixture_deliveries, delivery_request, post_fixture
from workers import keys
from workers.events import LogEntry, dedupe_key, shard_of

DELIVERIES = all_fixture_deliveries()


def log_entries(redis_client, shards: int = 16) -> list[LogEntry]:
    out = []
    for n in range(shards):
        for _id, fields in redis_client.xrange(keys.events(n)):
            out.append(LogEntry.from_fields(fields))
    return out


def counters(redis_client) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis_client.hgetall(keys.STATS_TOTAL).items()}


def wait_counter(redis_client, field: str, want: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = counters(redis_client).get(field, 0)
        if got >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_every_fixture_delivery_is_accepted_and_logged_once(web, redis_client):
    for name, i, delivery in DELIVERIES:
        r = post_fixture(web, delivery)
        assert r.status_code == 200, (name, i, r.text)
        assert r.text == "<Response/>"
        assert r.headers["content-type"].startswith("text/xml")
    # and again: every one is a duplicate now
    for name, i, delivery in DELIVERIES:
        assert post_fixture(web, delivery).status_code == 200, (name, i)
    entries = log_entries(redis_client)
    form = [d for _, _, d in DELIVERIES if d.get("body") is None]
    events = sum(len(json.loads(d["body"])) for _, _, d in DELIVERIES if d.get("body"))
    assert len(entries) == len(form) + events
    c = counters(redis_client)
    assert sum(v for k, v in c.items() if k.endswith("|accepted")) == len(entries)
    assert sum(v for k, v in c.items() if k.endswith("|duplicate")) == len(entries)
