"""The three views of the stats — /api/v1/stats, /metrics, `threadline stats` — over a real
`threadline web` and real Redis, showing the same numbers a worker wrote."""
from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_TOKEN
from tests.procs import THREADLINE, Proc, free_port
from workers import stats
from workers.foundations import keys

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "THREADLINE_ADMIN_TOKEN": ADMIN_TOKEN, "THREADLINE_SHARDS": "4",
            **extra}


@pytest.fixture(scope="module")
def web(redis_url: str):
    port = free_port()
    with Proc(["web", "--port", str(port)], _env(redis_url),
              ready_url=f"http://127.0.0.1:{port}/healthz") as proc:
        proc.base = f"http://127.0.0.1:{port}"
        yield proc


def _seed(redis_client) -> None:
    """What ingress, the drains and the v2 client write, through the same stats API."""
    pipe = redis_client.pipeline()
    stats.add(pipe, {stats.field("webhooks", "message", "accepted"): 5,
                     stats.field("webhooks", "message", "forged"): 2,
                     stats.field("events", "cfg-a", "SMS", "captured"): 4,
                     stats.field("events", "cfg-a", "WHATSAPP", "ignored"): 1,
                     stats.field("v2_requests", "conversations.create", "201"): 3,
                     stats.field("v2_requests", "communications.create", "503"): 2},
              retention_minutes=60)
    for ms in (40, 60, 700):
        stats.observe(pipe, "e2e_lag", ms, "SMS", retention_minutes=60)
        stats.observe(pipe, "v2_latency", ms / 2, "conversations.create", retention_minutes=60)
    pipe.execute()
    redis_client.xadd(keys.events(2), {"k": "message"})
    redis_client.xadd(keys.DEAD_LETTERS, {"reason": "permanent"})


def test_stats_json_shows_what_was_written(web, redis_client) -> None:
    _seed(redis_client)
    body = httpx.get(f"{web.base}/api/v1/stats?window=5m", headers=AUTH).json()
    s, g = body["summary"], body["gauges"]
    assert s["webhooks"]["by_outcome"] == {"accepted": 5, "forged": 2}
    assert s["events"]["by_channel"]["SMS"] == {"all": 4, "captured": 4}
    assert s["v2"]["errors"] == 2 and s["v2"]["requests"] == 5
    assert s["lag"]["count"] == 3 and s["lag"]["avg_ms"] == round(800 / 3, 1)
    assert g["backlog"] == 1 and g["shards"][2]["backlog"] == 1 and g["dead_letters"] == 1


def test_stats_refuses_bad_queries_with_reasons_and_counts_them(web, redis_client) -> None:
    assert httpx.get(f"{web.base}/api/v1/stats").status_code == 401
    assert httpx.get(f"{web.base}/api/v1/stats", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = httpx.get(f"{web.base}/api/v1/stats?window=3d", headers=AUTH)
    assert r.status_code == 400 and "unknown window '3d'" in r.json()["error"]
    r = httpx.get(f"{web.base}/api/v1/stats?window=1h&configuration=ghost", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"] == "unknown configuration 'ghost'"
    total = redis_client.hgetall(keys.STATS_TOTAL)
    assert int(total[b"stats_queries_refused|window"]) == 1
    assert int(total[b"stats_queries_refused|configuration"]) == 1


def test_metrics_are_prometheus_text_with_conventional_names(web, redis_client) -> None:
    _seed(redis_client)
    r = httpx.get(f"{web.base}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    assert samples[("threadline_webhooks_total", (("kind", "message"), ("outcome", "forged")))] == 2
    lag = (("channel", "SMS"),)
    assert samples[("threadline_e2e_lag_seconds_count", lag)] == 3
    assert samples[("threadline_e2e_lag_seconds_sum", lag)] == pytest.approx(0.8)
    assert samples[("threadline_e2e_lag_seconds_bucket", (*lag, ("le", "0.05")))] == 1
    assert samples[("threadline_e2e_lag_seconds_bucket", (*lag, ("le", "+Inf")))] == 3
    assert samples[("threadline_shard_backlog", (("shard", "2"),))] == 1
    assert samples[("threadline_dead_letters_waiting", ())] == 1
    assert all(name.startswith("threadline_") for name, _ in samples)


def test_metrics_split_open_conversations_into_active_and_inactive(web, redis_client) -> None:
    from workers.conversations.record import Conversation, new_id
    from workers.conversations.store import write_open

    pipe = redis_client.pipeline()
    for n, status in enumerate(("ACTIVE", "ACTIVE", "INACTIVE")):  # the store's own bulk writer
        write_open(pipe, Conversation(new_id(), "cfg-a", 1, f"SMS|+1415555010{n}|+14155550100",
                                      "GROUP_BY_PARTICIPANT_ADDRESSES", status, created_at=1.0 + n))
    pipe.execute()
    text = httpx.get(f"{web.base}/metrics").text
    got = {s.labels["status"]: s.value for fam in text_string_to_metric_families(text)
           for s in fam.samples if s.name == "threadline_conversations"}
    assert got == {"ACTIVE": 2, "INACTIVE": 1, "CLOSED": 0}
    g = httpx.get(f"{web.base}/api/v1/stats?window=5m", headers=AUTH).json()["gauges"]["conversations"]
    assert g["open"] == 3 and g["total"] == 3


def test_metrics_count_overdue_lifecycle_timers_that_no_worker_claimed(web, redis_client) -> None:
    """What KEDA scales the workers on for the lifecycle (deploy/kubernetes/worker.yaml)."""
    import time

    now = time.time()
    redis_client.zadd(keys.TIMERS, {"c_due1": now - 5, "c_due2": now - 1, "c_later": now + 3600,
                                    "c_claimed": now + 6})  # a worker's claim pushed it ahead
    text = httpx.get(f"{web.base}/metrics").text
    got = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
           if s.name.startswith("threadline_lifecycle_timers")}
    assert got == {"threadline_lifecycle_timers": 4, "threadline_lifecycle_timers_overdue": 2}
    g = httpx.get(f"{web.base}/api/v1/stats?window=5m", headers=AUTH).json()["gauges"]["lifecycle"]
    assert g == {"armed": 4, "overdue": 2}


def test_metrics_token_when_set(redis_url: str) -> None:
    port = free_port()
    with Proc(["web", "--port", str(port)], _env(redis_url, THREADLINE_METRICS_TOKEN="scrape-me"),
              ready_url=f"http://127.0.0.1:{port}/healthz"):
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer scrape-me"}).status_code == 200


def test_redis_down_is_503_not_zeros() -> None:
    port, dead = free_port(), free_port()
    with Proc(["web", "--port", str(port)], _env(f"redis://127.0.0.1:{dead}/1"),
              ready_url=f"http://127.0.0.1:{port}/healthz"):
        base = f"http://127.0.0.1:{port}"
        r = httpx.get(f"{base}/api/v1/stats", headers=AUTH, timeout=10)
        assert r.status_code == 503 and r.json()["redis"] == "down"
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 503


def test_cli_table_shows_the_same_numbers(redis_url: str, redis_client) -> None:
    _seed(redis_client)
    out = subprocess.run([THREADLINE, "stats", "--window", "5m"], env={**os.environ, **_env(redis_url)},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split() == ["forged", "2"] for line in lines)
    assert any(line.split() == ["SMS", "4", "0", "4"] for line in lines)
    assert any(line.split() == ["dead", "letters", "1"] for line in lines)
    bad = subprocess.run([THREADLINE, "stats", "--window", "forever"], env={**os.environ, **_env(redis_url)},
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown window 'forever'" in bad.stderr


def test_transcriptions_by_way_refused_and_stopped_on_stats_and_metrics(web, redis_client) -> None:
    pipe = redis_client.pipeline()
    stats.add(pipe, {stats.field("transcriptions", "started", "rest"): 3,
                     stats.field("transcriptions", "started", "twiml"): 2,
                     stats.field("transcriptions", "refused", "21220"): 1,
                     stats.field("transcriptions", "stopped", "twilio"): 4},
              retention_minutes=60)
    pipe.execute()
    s = httpx.get(f"{web.base}/api/v1/stats?window=5m", headers=AUTH).json()["summary"]
    t = s["transcriptions"]
    assert (t["started"], t["refused"], t["stopped"]) == ({"twiml": 2, "rest": 3}, 1, 4)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(httpx.get(f"{web.base}/metrics").text)
               for s in fam.samples}
    assert samples[("threadline_transcriptions_total", (("detail", "rest"), ("operation", "started")))] == 3
    assert samples[("threadline_transcriptions_total", (("detail", "21220"), ("operation", "refused")))] == 1
