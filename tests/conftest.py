"""Fixtures shared by every test: a real Redis database of this run's own, and paths.

Tests use the Redis at ``REDIS_URL`` (``make test`` makes sure one answers). Several test
runs can share one server: each run takes a free database number (1–15) by a lock key and
flushes only that one.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# Shared fixture modules (tests/<topic>_fixtures.py); each owner appends theirs.
pytest_plugins = [
    "tests.twin_fixtures",
    "tests.web_fixtures",
    "tests.worker_fixtures",
]

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SPECS = SHARED / "specs"
FIXTURES = SHARED / "fixtures" / "webhooks"

# The fixtures' account and auth token (shared/fixtures/README.md).
ACCOUNT_SID = "AC9af211329b2fc82e5efe906062c73008"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://capture.example.com"
ADMIN_TOKEN = "test-admin-token"

_LOCK = "threadline:test-run-lock"


def _base_url() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return url.rsplit("/", 1)[0] if url.count("/") > 2 else url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://host:port/N`` for a database no other test run is using."""
    base = _base_url()
    token = uuid.uuid4().hex
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.set(_LOCK, token, nx=True, ex=3 * 3600):
            for key in client.scan_iter():
                if key != _LOCK.encode():
                    client.delete(key)
            try:
                yield f"{base}/{db}"
            finally:
                if client.get(_LOCK) == token.encode():
                    client.delete(_LOCK)
                client.close()
            return
        client.close()
    pytest.fail("no free Redis database (1-15) for this test run")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on this run's database, emptied (but for the run's lock) before the test."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter():
        if key != _LOCK.encode():
            client.delete(key)
    yield client
    client.close()
