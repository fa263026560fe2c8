"""Fixtures shared by every test: a real Redis database of this run's own, and paths.

Tests use the Redis at ``REDIS_URL`` (``make test`` makes sure one answers). Several test
runs can share one server: each run takes a free database number (1–15) by a lock key and
flushes only that one.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redisdb import empty, release, take_db

# Shared fixture modules (tests/<topic>_fixtures.py); each owner appends theirs.
pytest_plugins = [
    "tests.twin_fixtures",
    "tests.web_fixtures",
    "tests.worker_fixtures",
    "tests.valkey_fixtures",
    "tests.app_fixtures",
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

# The shared test Redis (Debian's 7.0: no persistence, no WAITAOF) cannot give the production
# default THREADLINE_ACK_DURABILITY=local, so every process a test starts (they inherit this
# environment) and every Settings() built in-process acknowledges on `none`. The durability
# tests (tests/durability/) run their own Valkey and set what they test explicitly.
os.environ["THREADLINE_ACK_DURABILITY"] = "none"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``after_all`` run after every other test (the contract check reads what the
    whole session sent to the twin); the rest keep their order."""
    last = [item for item in items if item.get_closest_marker("after_all")]
    items[:] = [item for item in items if not item.get_closest_marker("after_all")] + last


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://host:port/N`` for a database no other test run is using."""
    client, url, token = take_db()
    empty(client)
    try:
        yield url
    finally:
        release(client, token)
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on this run's database, emptied (but for the run's lock) before the test."""
    client = redis.Redis.from_url(redis_url)
    empty(client)
    yield client
    client.close()
