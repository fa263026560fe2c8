"""Borrow a Redis database of one's own on a shared server: for test runs and benchmarks.

Several test runs and benchmarks may share one Redis (developers, helpers, CI). Each takes a
free database number (1–15) by setting a lock key with NX, empties only that database, and
gives it back. Database 0 and every other database are never touched (no FLUSHALL).
"""
from __future__ import annotations

import os
import uuid

import redis

LOCK = "threadline:test-run-lock"


def server_url() -> str:
    """``redis://host:port`` of the Redis at ``REDIS_URL`` (its database number dropped)."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return url.rsplit("/", 1)[0] if url.count("/") > 2 else url


def take_db(base: str | None = None, ttl: int = 3 * 3600) -> tuple[redis.Redis, str, str]:
    """A client on a free database of ``base`` (default: :func:`server_url`), its URL and the lock token."""
    base = base or server_url()
    token = uuid.uuid4().hex
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.set(LOCK, token, nx=True, ex=ttl):
            return client, f"{base}/{db}", token
        client.close()
    raise SystemExit("no free Redis database (1-15): every one is held by another run")


def empty(client: redis.Redis) -> None:
    """Delete every key of the borrowed database but its lock."""
    batch = [k for k in client.scan_iter(count=1000) if k != LOCK.encode()]
    for i in range(0, len(batch), 1000):
        client.delete(*batch[i:i + 1000])


def release(client: redis.Redis, token: str) -> None:
    """Give the database back (only if the lock is still ours)."""
    if client.get(LOCK) == token.encode():
        client.delete(LOCK)
