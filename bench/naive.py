"""The naive design bench/pipeline.py compares against: one RQ job per webhook event, a
synchronous HTTP client, one v2 call in flight at a time (DESIGN §1, "Why an event log").

It keeps the parts every design needs (parse, a grouping key → conversation in Redis, create
the conversation, post the communication) and reuses one ``httpx.Client`` per worker process,
so the baseline is not slowed by anything but its design.
"""
from __future__ import annotations

import os

import httpx
import redis

from workers.eventlog.entries import MESSAGE, LogEntry
from workers.parse import parse

_http: httpx.Client | None = None
_redis: redis.Redis | None = None


def _clients() -> tuple[httpx.Client, redis.Redis]:
    global _http, _redis
    if _http is None:
        _http = httpx.Client(base_url=os.environ["THREADLINE_TWILIO_BASE_URL"], timeout=30,
                             auth=(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"]),
                             headers={"User-Agent": "threadline-bench-naive/0"})
        _redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _http, _redis  # type: ignore[return-value]


def deliver_one(params: dict, configuration_id: str) -> None:
    """One event: find or create its conversation, then post its communication."""
    http, r = _clients()
    event = parse(LogEntry(MESSAGE, 0, params["AccountSid"], params))
    key = "naive:conv:" + "|".join(sorted((event.from_bare, event.to_bare)))
    conv = r.get(key)
    if conv is None:
        body = {"configurationId": configuration_id, "participants": [
            {"type": "CUSTOMER", "addresses": [{"channel": "SMS", "address": event.from_bare}]},
            {"type": "AGENT", "addresses": [{"channel": "SMS", "address": event.to_bare}]}]}
        resp = http.post("/v2/Conversations", json=body)
        resp.raise_for_status()
        conv = resp.json()["id"].encode()
        r.set(key, conv)
    comm = {"author": {"address": event.from_bare, "channel": "SMS"},
            "content": {"type": "TEXT", "text": event.text or ""},
            "recipients": [{"address": event.to_bare, "channel": "SMS", "deliveryStatus": "DELIVERED"}],
            "resourceId": event.resource_id, "occurredAt": event.occurred_at}
    http.post(f"/v2/Conversations/{conv.decode()}/Communications", json=comm).raise_for_status()
