"""Redis goes away in the middle of traffic: with a spool nothing acknowledged is lost and
nothing is stored twice; without one, Twilio gets 503 and the refusals are still counted.

These tests start their OWN ``redis-server`` on a free port (never the shared one) so they can
stop and restart it; it runs without persistence, and ``SHUTDOWN SAVE`` writes the one dump the
restart loads back, as a real restart of a persistent Redis would.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.procs import free_port
from tests.web_fixtures import counters, inbound_message, log_entries, post_signed

MSG = "/webhooks/twilio/messaging"


class RedisServer:
    """A private redis-server this test can stop and start."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        """Save the data set and exit (the restart loads it back)."""
        # A bare socket: redis-py would retry the connection SHUTDOWN closes.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"SHUTDOWN SAVE\r\n")
            sock.recv(64)
        assert self.proc is not None
        self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def private_redis(tmp_path: Path):
    if shutil.which("redis-server") is None:
        pytest.fail("these tests stop and restart their own redis-server: install it "
                    "(Debian: apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(5)


def _wait_spool_empty(spool: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while any(spool.glob("spool-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(spool.glob("spool-*")), list(spool.iterdir())


def test_redis_stopped_mid_traffic_loses_nothing_and_doubles_nothing(start_web, private_redis,
                                                                     tmp_path):
    spool = tmp_path / "spool"
    web = start_web(REDIS_URL=private_redis.url, THREADLINE_SPOOL_DIR=str(spool))
    unique = [inbound_message("+1415555" + f"{i:04d}", "+14155550100", f"message {i}")
              for i in range(180)]
    # every fifth delivery is followed by a retry of an earlier one, as Twilio retries
    plan: list[dict] = []
    for i, params in enumerate(unique):
        plan.append(params)
        if i % 5 == 4:
            plan.append(unique[i - 3])
    statuses: list[int] = []
    sent = threading.Event()

    def traffic() -> None:
        for params in plan:
            statuses.append(post_signed(web, MSG, params).status_code)
            time.sleep(0.004)
        sent.set()

    t = threading.Thread(target=traffic)
    t.start()
    while len(statuses) < len(plan) // 3:
        time.sleep(0.01)
    private_redis.stop()
    down_at = len(statuses)
    while len(statuses) < 2 * len(plan) // 3:
        time.sleep(0.01)
    private_redis.start()
    up_at = len(statuses)
    t.join(60)
    assert sent.is_set()
    assert statuses == [200] * len(plan)   # every delivery acknowledged
    assert up_at - down_at > 20            # and a good part of them while Redis was down
    _wait_spool_empty(spool)

    client = private_redis.client()
    entries = log_entries(client)
    sids = [e.params["MessageSid"] for e in entries]
    assert len(sids) == len(set(sids)), "a delivery was stored twice"
    assert set(sids) == {p["MessageSid"] for p in unique}, "a delivery was lost"
    c = counters(client)
    stored = c.get("webhooks|message|accepted", 0) + c.get("webhooks|message|spooled", 0)
    assert stored == len(unique)
    assert c.get("webhooks|message|spooled", 0) > 0
    assert web.get("/readyz").json()["checks"]["spool"] == "empty"


def test_a_spool_left_by_a_killed_process_is_replayed_by_the_next(start_web, private_redis,
                                                                  tmp_path):
    spool = tmp_path / "spool"
    first = start_web(REDIS_URL=private_redis.url, THREADLINE_SPOOL_DIR=str(spool))
    private_redis.stop()
    batch = [inbound_message("+14155551234", "+14155550100", f"while down {i}") for i in range(20)]
    assert [post_signed(first, MSG, p).status_code for p in batch] == [200] * 20
    assert first.get("/readyz").status_code == 503
    first.proc.kill()  # SIGKILL: no shutdown, its spool file stays behind
    assert len(list(spool.glob("spool-*.jsonl"))) == 1
    private_redis.start()
    start_web(REDIS_URL=private_redis.url, THREADLINE_SPOOL_DIR=str(spool))
    _wait_spool_empty(spool)
    entries = log_entries(private_redis.client())
    assert sorted(e.params["Body"] for e in entries) == sorted(p["Body"] for p in batch)
    assert counters(private_redis.client())["webhooks|message|spooled"] == 20


def test_without_a_spool_redis_away_is_503_and_counted_when_it_is_back(start_web, private_redis):
    web = start_web(REDIS_URL=private_redis.url)
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 200
    private_redis.stop()
    refused = [post_signed(web, MSG, inbound_message("+14155550123", "+14155550100"))
               for _ in range(3)]
    assert [r.status_code for r in refused] == [503] * 3
    private_redis.start()
    client = private_redis.client()
    deadline = time.monotonic() + 10
    while counters(client).get("webhooks|message|unavailable", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    c = counters(client)
    assert c["webhooks|message|unavailable"] == 3
    assert c["webhooks|message|accepted"] == 1
    assert len(log_entries(client)) == 1
    # and the service takes webhooks again
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 200


def test_a_redis_that_answers_but_refuses_writes_is_not_ready(start_web, private_redis):
    """Redis up but out of memory (or a read-only replica): PING works, the log does not."""
    web = start_web(REDIS_URL=private_redis.url)
    assert web.get("/readyz").status_code == 200
    client = private_redis.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        ready = web.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] == "ok"
        assert ready.json()["checks"]["log"].startswith("not writable")
        r = post_signed(web, MSG, inbound_message("+14155550123", "+14155550100"))
        assert r.status_code == 503
    finally:
        client.config_set("maxmemory", "0")
    assert web.get("/readyz").status_code == 200
    assert log_entries(client) == []


def test_an_unreadable_event_with_redis_away_is_503_even_with_a_spool(start_web, private_redis,
                                                                     tmp_path):
    # The spool holds log entries, not dead letters: a batch whose broken event cannot be
    # dead-lettered is refused (Event Streams retries it) rather than half taken.
    from tests.web_fixtures import post_events
    from workers.eventlog import deadletters

    web = start_web(REDIS_URL=private_redis.url, THREADLINE_SPOOL_DIR=str(tmp_path / "spool"))
    broken = [{"id": "EZ" + "4" * 32, "type": "com.twilio.messaging.inbound-message.received",
               "data": {"from": "+14155550123"}}]
    private_redis.stop()
    assert post_events(web, broken).status_code == 503
    private_redis.start()
    client = private_redis.client()
    deadline = time.monotonic() + 10
    while counters(client).get("webhooks|event_streams|unavailable", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counters(client)["webhooks|event_streams|unavailable"] == 1
    assert deadletters.list(client)[0] == []
    # Event Streams' retry, with Redis back: dead-lettered, answered 200
    assert post_events(web, broken).status_code == 200
    assert [d.reason for d in deadletters.list(client)[0]] == ["malformed_event"]


# --- a full disk, the spool's cap, fsyncs and replay memory (issue 12 item 3, issue 13) ----------

def _web_with_file_limit(redis_url: str, spool: Path, limit: int | None, **env: str):
    """``threadline web`` whose files may grow to ``limit`` bytes (RLIMIT_FSIZE: a full disk).

    Its output goes to a pipe, which the limit does not touch, read by a thread."""
    import os
    import resource

    import httpx

    from tests.procs import THREADLINE
    from tests.web_fixtures import Web, web_env

    port = free_port()
    full = web_env(redis_url, THREADLINE_SPOOL_DIR=str(spool), THREADLINE_LOG_LEVEL="WARNING", **env)

    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    popen = subprocess.Popen([THREADLINE, "web", "--port", str(port)], env={**os.environ, **full},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=cap,
                             start_new_session=True)
    lines: list[bytes] = []
    threading.Thread(target=lambda: lines.extend(iter(popen.stdout.readline, b"")), daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/healthz", timeout=0.5)
            break
        except httpx.HTTPError:
            assert popen.poll() is None and time.monotonic() < deadline, b"".join(lines).decode()
            time.sleep(0.05)
    return popen, Web(url=url, proc=None, env=full, client=httpx.Client(base_url=url, timeout=10)), lines


@pytest.mark.parametrize("limit", ["file size limit", "spool cap"])
def test_a_full_spool_answers_503_and_loses_nothing_it_answered_200(private_redis, tmp_path, limit):
    """Redis away, the spool fills (RLIMIT_FSIZE on the web process, or THREADLINE_SPOOL_MAX_BYTES):
    the deliveries that fit get 200, the rest 503 — none half-written — and once Redis is back
    every delivery answered 200 is in the log."""
    spool = tmp_path / "spool"
    if limit == "file size limit":
        popen, web, lines = _web_with_file_limit(private_redis.url, spool, 40_000)
    else:
        popen, web, lines = _web_with_file_limit(private_redis.url, spool, None,
                                                 THREADLINE_SPOOL_MAX_BYTES="40000")
    try:
        private_redis.stop()
        plan = [inbound_message("+1415555" + f"{i:04d}", "+14155550100", f"message {i} " + "x" * 300)
                for i in range(90)]
        statuses = {p["MessageSid"]: post_signed(web, MSG, p).status_code for p in plan}
        ok = {sid for sid, s in statuses.items() if s == 200}
        refused = {sid for sid, s in statuses.items() if s == 503}
        assert ok and refused and ok | refused == set(statuses), statuses
        # one file: the replayer does not claim it while Redis is away
        (spooled,) = spool.glob("spool-*")
        assert spooled.stat().st_size <= 40_000 and spooled.read_bytes().endswith(b"\n")
        assert len(spooled.read_bytes().splitlines()) == len(ok)   # no torn line left behind
        private_redis.start()
        _wait_spool_empty(spool)
        client = private_redis.client()
        logged = {e.params["MessageSid"] for e in log_entries(client)}
        assert logged == ok, f"lost: {len(ok - logged)}"
        deadline = time.monotonic() + 10
        while counters(client).get("webhooks|message|unavailable", 0) < len(refused) and time.monotonic() < deadline:
            time.sleep(0.1)
        c = counters(client)
        assert c["webhooks|message|spooled"] == len(ok)
        assert c["webhooks|message|unavailable"] == len(refused)
        assert b"spool cannot take the delivery" in b"".join(lines)
    finally:
        web.client.close()
        os_kill = __import__("os").killpg
        os_kill(popen.pid, 15)
        popen.wait(10)


def _items(n: int, body: str = "hello"):
    from workers.eventlog.entries import LogEntry

    return [(LogEntry("message", 1_700_000_000_000, "AC1",
                      {"MessageSid": f"SM{i:032d}", "From": "+14155550123", "To": "+14155550100",
                       "Body": body}), f"m:SM{i:032d}", i % 16) for i in range(n)]


def test_a_new_spool_file_is_fsynced_with_its_directory_before_write_returns(tmp_path, monkeypatch):
    import os

    from service.webhooks.spool import Spool
    from workers.foundations.settings import Settings

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", fsync)
    spool = Spool(tmp_path / "spool", Settings())
    spool.write(_items(1))
    (path,) = (tmp_path / "spool").glob("spool-*.jsonl")
    assert synced == [str(tmp_path / "spool"), str(path)]   # the directory entry, then the data
    spool.write(_items(2)[1:])
    assert synced[2:] == [str(path)]                          # same file: the data only
    spool.close()


def test_the_spool_cap_refuses_whole_deliveries(tmp_path):
    from service.webhooks.spool import Spool, SpoolFull
    from workers.foundations.settings import Settings

    spool = Spool(tmp_path / "spool", Settings(spool_max_bytes=4096))
    taken = 0
    with pytest.raises(SpoolFull, match="THREADLINE_SPOOL_MAX_BYTES"):
        for item in _items(100, "y" * 200):
            spool.write([item])
            taken += 1
    (path,) = (tmp_path / "spool").glob("spool-*.jsonl")
    assert 0 < taken < 100 and len(path.read_bytes().splitlines()) == taken
    assert path.stat().st_size <= 4096
    spool.close()


def test_replay_memory_does_not_grow_with_the_spool(tmp_path, redis_client):
    """20,000 spooled deliveries (~9 MB) replay with a fraction of that in memory at any time."""
    import tracemalloc

    from service.webhooks.spool import Spool
    from workers.foundations.settings import Settings

    spool = Spool(tmp_path / "spool", Settings(dedupe_window=600))
    items = _items(20_000, "z" * 300)
    for i in range(0, len(items), 1000):
        spool.write(items[i:i + 1000])
    size = sum(p.stat().st_size for p in (tmp_path / "spool").glob("spool-*"))
    tracemalloc.start()
    try:
        stored = spool.replay(redis_client)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stored == 20_000
    assert not spool.pending()
    print(f"\nspool of {size / 1e6:.1f} MB replayed with a peak of {peak / 1e6:.2f} MB traced")
    assert size > 8_000_000 and peak < size / 8
