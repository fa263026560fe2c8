"""``GET /metrics``: the stats in Prometheus' text format, read from Redis at scrape time.

A custom collector reads the cluster-wide hashes (not this process's memory), so any web
replica answers with the whole cluster's numbers and a scrape of one replica is enough.
Names follow Prometheus' conventions: ``threadline_<metric>_total`` for counters,
``threadline_<metric>_seconds`` (``_bucket``/``_sum``/``_count``) for histograms, which
threadline records in milliseconds; gauges for what is live now (backlog, dead letters, RQ).

``THREADLINE_METRICS_TOKEN`` set → a bearer token is required; unset → open (scrapers often
sit inside the cluster's network). Redis unreachable → 503, so the scrape fails visibly
(``up == 0``) instead of reporting zeros.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from service.auth import bearer_ok
from workers import stats
from workers.foundations.settings import Settings
from workers.stats.gauges import read_gauges
from workers.stats.read import read_totals

PREFIX = "threadline_"


class RedisStatsCollector:
    """A prometheus_client collector whose every collect() reads Redis afresh."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self._r = r
        self._settings = settings

    def describe(self) -> list:
        return []  # no fixed description: families depend on what is in Redis

    def collect(self) -> Iterator:
        totals = read_totals(self._r)
        for name, (labels, help_) in stats.METRICS.items():
            fam = CounterMetricFamily(PREFIX + name, help_, labels=list(labels))
            for (n, lab, part), value in sorted(totals.items()):
                if n == name and part is None:
                    fam.add_metric(list(lab), value)
            yield fam
        for name, (labels, help_) in stats.HISTOGRAMS.items():
            hist = HistogramMetricFamily(PREFIX + name + "_seconds", help_, labels=list(labels))
            groups: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
            for (n, lab, part), value in totals.items():
                if n == name and part is not None:
                    groups[lab][part] = value
            for lab, parts in sorted(groups.items()):
                running, buckets = 0, []
                for bound in stats.BUCKETS_MS:
                    running += parts.get(f"b:{bound}", 0)
                    buckets.append((repr(bound / 1000), running))
                running += parts.get(f"b:{stats.INF}", 0)
                buckets.append(("+Inf", running))
                hist.add_metric(list(lab), buckets, sum_value=parts.get("sum", 0) / 1000)
            yield hist
        yield from self._gauges()

    def _gauges(self) -> Iterator:
        g = read_gauges(self._r, self._settings.shards)
        backlog = GaugeMetricFamily(PREFIX + "shard_backlog",
                                    "Event-log entries not yet acknowledged (pending + unread), per shard",
                                    labels=["shard"])
        pending = GaugeMetricFamily(PREFIX + "shard_pending",
                                    "Entries read by a drain and not yet acknowledged, per shard", labels=["shard"])
        age = GaugeMetricFamily(PREFIX + "shard_oldest_age_seconds",
                                "Age of the shard's oldest unacknowledged entry (0 when idle)", labels=["shard"])
        for row in g["shards"]:
            s = str(row["shard"])
            backlog.add_metric([s], row["backlog"])
            pending.add_metric([s], row["pending"])
            age.add_metric([s], row["oldest_age_s"] or 0.0)
        yield from (backlog, pending, age)
        yield GaugeMetricFamily(PREFIX + "dead_letters_waiting", "Entries in the dead-letter stream now",
                                value=g["dead_letters"])
        yield GaugeMetricFamily(PREFIX + "rq_queue_depth", "Jobs waiting on threadline's RQ queue",
                                value=g["queue"]["depth"])
        yield GaugeMetricFamily(PREFIX + "rq_workers", "RQ workers alive on threadline's queue",
                                value=g["queue"]["workers"])
        yield GaugeMetricFamily(PREFIX + "lifecycle_timers",
                                "Lifecycle timers armed (open conversations' next deadlines)",
                                value=g["lifecycle"]["armed"])
        yield GaugeMetricFamily(PREFIX + "lifecycle_timers_overdue",
                                "Lifecycle timers past their deadline that no worker has claimed yet",
                                value=g["lifecycle"]["overdue"])
        conv = g["conversations"]
        if conv["available"]:
            fam = GaugeMetricFamily(PREFIX + "conversations", "Conversations by status", labels=["status"])
            for status, n in sorted(conv["by_status"].items()):
                fam.add_metric([status], n)
            yield fam


def _registry(request: Request) -> CollectorRegistry:
    reg = getattr(request.app.state, "metrics_registry", None)
    if reg is None:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(RedisStatsCollector(request.app.state.redis_sync, request.app.state.settings))
        request.app.state.metrics_registry = reg
    return reg


async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token and not bearer_ok(request, token):
        return PlainTextResponse("missing or wrong bearer token\n", 401, headers={"WWW-Authenticate": "Bearer"})
    try:
        body = await run_in_threadpool(generate_latest, _registry(request))
    except redis.RedisError:
        return PlainTextResponse("redis unavailable\n", 503)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
