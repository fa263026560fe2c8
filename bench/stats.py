"""Reading the stats back: what a dashboard refresh and a Prometheus scrape cost.

Fills a full retention (24 h of per-minute hashes, realistic label spread: 3 configurations ×
4 channels × 2 outcomes, 4 webhook kinds × 3 outcomes, 3 v2 routes × 3 statuses, two
histograms) and times, side by side in one run: ``read_stats`` for 5m / 1h / 24h windows,
with and without the field-parse cache, and one ``/metrics`` collection. Prints medians and
ratios. Takes a Redis DB 1–15 by the tests' lock key and deletes what it wrote.

    .venv/bin/python bench/stats.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.views.metrics import RedisStatsCollector  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402
from workers import stats  # noqa: E402
from workers.foundations.settings import Settings  # noqa: E402
from workers.stats import read as statsread


def _db() -> tuple[redis.Redis, str]:
    client, _, token = take_db(ttl=900)
    return client, token


def _fill(r: redis.Redis, now: float) -> int:
    fields: dict[str, int] = {}
    for cfg in ("a", "b", "c"):
        for ch in ("SMS", "WHATSAPP", "VOICE", "RCS"):
            for o in ("captured", "ignored"):
                fields[stats.field("events", cfg, ch, o)] = 3
    for kind in ("message", "message_status", "call_status", "transcription"):
        for o in ("accepted", "duplicate", "forged"):
            fields[stats.field("webhooks", kind, o)] = 5
    for route in ("POST /v2/Conversations", "POST /v2/Conversations/{id}/Communications", "GET message"):
        for status in ("201", "429", "500"):
            fields[stats.field("v2_requests", route, status)] = 2
    pipe = r.pipeline(transaction=False)
    for m in range(1440):
        at = now - m * 60
        stats.add(pipe, fields, retention_minutes=1440, now=at)
        for ms in (30, 120, 800):
            stats.observe(pipe, "e2e_lag", ms, "SMS", retention_minutes=1440, now=at)
            stats.observe(pipe, "v2_latency", ms, "POST /v2/Conversations", retention_minutes=1440, now=at)
        if m % 100 == 0:
            pipe.execute()
    pipe.execute()
    return len(r.hgetall(stats.keys.stats_minute(stats.minute_of(now))))


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    r, token = _db()
    try:
        now = time.time()
        per_minute = _fill(r, now)
        settings = Settings(shards=16)
        print(f"fields per minute hash: {per_minute}; minutes kept: 1440; shards: 16")
        res = {}
        for window in ("5m", "1h", "24h"):
            res[window] = _median(lambda: statsread.read_stats(r, settings, window=window, now=now), args.repeat)
        uncached = statsread._parse.__wrapped__
        statsread._parse = uncached  # baseline: parse every field of every minute again
        try:
            res["24h-nocache"] = _median(lambda: statsread.read_stats(r, settings, window="24h", now=now), args.repeat)
        finally:
            statsread._parse = statsread.functools.lru_cache(maxsize=65536)(uncached)
        reg = CollectorRegistry(auto_describe=False)
        reg.register(RedisStatsCollector(r, settings))
        res["metrics"] = _median(lambda: generate_latest(reg), args.repeat)
        for k, v in res.items():
            print(f"{k:>12}: {v:8.1f} ms (median of {args.repeat})")
        print(f"24h / 1h read: {res['24h'] / res['1h']:.1f}x; parse cache speed-up on 24h: "
              f"{res['24h-nocache'] / res['24h']:.2f}x; /metrics vs 1h read: {res['metrics'] / res['1h']:.2f}x")
    finally:
        empty(r)
        release(r, token)


if __name__ == "__main__":
    main()
