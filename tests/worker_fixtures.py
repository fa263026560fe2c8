"""The whole capture path for a test: ``threadline web`` ← signed webhooks, real ``threadline
worker`` processes, the twin as Twilio, one Redis database.

Fixture ``pipeline`` (function scope) gives a :class:`Pipeline`:

    p = pipeline                                   # web + twin, no worker yet
    cfg = p.configure("sales", grouping="GROUP_BY_PARTICIPANT_ADDRESSES", sms=[...])
    w = p.start_worker()                           # a `threadline worker` subprocess
    post_fixture(p.web, delivery) …
    p.wait_idle()                                  # every shard drained and acknowledged
    state = p.twin.state()

Configurations go into the store the service reads (``workers.capture.store``), bound to a v2
configuration the test creates in the twin. Every worker started is stopped at teardown.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis as redis_lib

from tests.procs import Proc
from tests.web_fixtures import Web, web_env
from workers.foundations import keys

SHARDS = 4
OURS = "+14155550100"


def sleeping_job_taken(queue: Any, worker: Proc, seconds: float, timeout: float = 20.0) -> None:
    """Enqueue ``time.sleep(seconds)`` (RQ runs any importable function) on ``queue`` and wait
    until ``worker`` has taken it: the worker is in a job that runs ``seconds`` from now."""
    queue.enqueue("time.sleep", seconds, result_ttl=0)
    deadline = time.monotonic() + timeout
    while queue.count:
        assert time.monotonic() < deadline and worker.popen.poll() is None, worker.output()
        time.sleep(0.05)


@dataclass
class Pipeline:
    redis_url: str
    redis: redis_lib.Redis
    twin: Any
    web: Web
    start_web: Callable[..., Web]
    workers: list[Proc] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        base = web_env(self.redis_url, THREADLINE_SHARDS=str(SHARDS), **self.twin.env())
        base.update({"THREADLINE_RETRY_BASE_SECONDS": "0.02", "THREADLINE_RETRY_MAX_SECONDS": "0.2"})
        base.update(extra)
        return base

    def start_worker(self, **extra: str) -> Proc:
        proc = Proc(["worker"], self.env(**extra))
        self.workers.append(proc)
        return proc

    def configure(self, config_id: str, *, grouping: str = "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
                  channels: tuple[str, ...] = ("SMS", "WHATSAPP", "RCS"), ours: str = OURS,
                  bound: bool = True, **extra: Any) -> dict:
        """A configuration capturing both directions of ``ours`` on ``channels``."""
        from workers.capture.configuration import parse_configuration
        from workers.capture.store import ConfigStore

        settings = {}
        for ch in channels:
            addr = {"WHATSAPP": f"whatsapp:{ours}", "RCS": f"rcs:{ours}"}.get(ch, ours)
            settings[ch] = {"captureRules": [{"from": addr, "to": "*"}, {"from": "*", "to": addr}]}
        body = {"id": config_id, "displayName": config_id, "description": "test",
                "conversationGroupingType": grouping, "channelSettings": settings, **extra}
        if bound:
            body["twilioConfigurationId"] = self.twin.create_configuration(conversationGroupingType=grouping)
        ConfigStore(self.redis).put(parse_configuration(body))
        return body

    def backlog(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for n in range(SHARDS):
            pipe.xlen(keys.events(n))
        return sum(pipe.execute())

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every shard's log is empty (entries are deleted once acknowledged)."""
        deadline = time.monotonic() + timeout
        while self.backlog():
            if time.monotonic() > deadline:
                logs = "\n".join(w.output()[-3000:] for w in self.workers)
                raise TimeoutError(f"{self.backlog()} entries still in the log\n{logs}")
            time.sleep(0.05)

    def dead_letters(self) -> list[dict[str, str]]:
        out = []
        for _id, fields in self.redis.xrange(keys.DEAD_LETTERS):
            out.append({k.decode(): v.decode() for k, v in fields.items()})
        return out

    def counter(self, name: str) -> int:
        return int(self.redis.hget(keys.STATS_TOTAL, name) or 0)

    def counter_reaches(self, name: str, value: int, timeout: float = 5.0) -> int:
        """The counter once it reaches ``value`` (or at ``timeout``): a worker writes its counts
        in the pipeline after v2's answer, so the twin can show a change a moment before them."""
        deadline = time.monotonic() + timeout
        while (seen := self.counter(name)) < value and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen


def _running(p: Pipeline) -> Iterator[Pipeline]:
    try:
        yield p
    finally:
        for w in p.workers:
            if w.popen.poll() is None:
                w.stop()


@pytest.fixture
def pipeline(redis_client, redis_url: str, twin, start_web) -> Iterator[Pipeline]:
    web = start_web(THREADLINE_SHARDS=str(SHARDS), **twin.env())
    yield from _running(Pipeline(redis_url, redis_client, twin, web, start_web))


@pytest.fixture
def live(redis_client, redis_url: str, twin, start_web) -> Iterator[Pipeline]:
    """A pipeline the twin calls by its own URL, as Twilio would: no THREADLINE_PUBLIC_URL, the
    loopback peer's Host trusted (THREADLINE_TRUSTED_PROXIES), so signatures are checked over the
    URL the twin called."""
    web = start_web(THREADLINE_SHARDS=str(SHARDS), THREADLINE_PUBLIC_URL=None,
                    THREADLINE_TRUSTED_PROXIES="127.0.0.1", **twin.env())
    yield from _running(Pipeline(redis_url, redis_client, twin, web, start_web))
