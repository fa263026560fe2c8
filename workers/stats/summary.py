"""The handful of numbers a person looks at first, summed from the window's counters.

``/dashboard`` and ``threadline stats`` show exactly these figures (so a test can compare the
page with ``/api/v1/stats`` number for number); the full labelled series stay alongside
them in the JSON for anyone who wants more.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from workers import stats


def quantile(buckets: dict[str, int], q: float) -> float | None:
    """Estimate a quantile (ms) from non-cumulative bucket counts, interpolating linearly."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for bound in stats.BUCKETS_MS:
        n = buckets.get(str(bound), 0)
        if n and seen + n >= rank:
            return round(lower + (bound - lower) * (rank - seen) / n, 1)
        seen += n
        lower = float(bound)
    return float(stats.BUCKETS_MS[-1])  # in +Inf: the largest finite bound is all we know


def _by(counters: dict[str, Any], name: str, label: str) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for s in counters.get(name, {}).get("series", []):
        out[s["labels"][label]] += s["window"]
    return dict(sorted(out.items()))


def _window(counters: dict[str, Any], name: str) -> int:
    return sum(s["window"] for s in counters.get(name, {}).get("series", []))


def _points_by(counters: dict[str, Any], name: str, label: str, npoints: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in counters.get(name, {}).get("series", []):
        row = out.setdefault(s["labels"][label], [0] * npoints)
        for i, n in enumerate(s["points"]):
            row[i] += n
    return dict(sorted(out.items()))


def _merged_hist(series: list[dict[str, Any]], npoints: int) -> dict[str, Any]:
    """One histogram over every label set (e.g. lag across channels), window only."""
    cum: dict[str, int] = defaultdict(int)
    count = total = 0
    counts, sums = [0] * npoints, [0.0] * npoints
    for s in series:
        w = s["window"]
        count += w["count"]
        total += w["sum_ms"]
        for b, n in w["buckets"].items():
            cum[b] += n
        for i, (c, a) in enumerate(zip(s["points_count"], s["points_avg_ms"])):
            counts[i] += c
            sums[i] += (a or 0) * c
    bounds = [*map(str, stats.BUCKETS_MS), "+Inf"]
    raw, prev = {}, 0
    for b in bounds:
        raw[b if b != "+Inf" else stats.INF] = cum.get(b, 0) - prev
        prev = cum.get(b, 0)
    return {
        "count": count,
        "avg_ms": round(total / count, 1) if count else None,
        "p50_ms": quantile(raw, 0.5), "p95_ms": quantile(raw, 0.95), "p99_ms": quantile(raw, 0.99),
        "points_avg_ms": [round(s / c, 1) if c else None for s, c in zip(sums, counts)],
    }


def summarize(counters: dict[str, Any], histograms: dict[str, Any], npoints: int) -> dict[str, Any]:
    events_by_channel: dict[str, dict[str, int]] = {}
    for s in counters.get("events", {}).get("series", []):
        row = events_by_channel.setdefault(s["labels"]["channel"], {"all": 0})
        row[s["labels"]["outcome"]] = row.get(s["labels"]["outcome"], 0) + s["window"]
        row["all"] += s["window"]
    v2_errors = [
        {"route": s["labels"]["route"], "status": s["labels"]["status"], "count": s["window"]}
        for s in counters.get("v2_requests", {}).get("series", [])
        if not s["labels"]["status"].startswith("2") and s["window"]
    ]
    latency = {
        s["labels"]["route"]: s["window"]["p95_ms"]
        for s in histograms.get("v2_latency", {}).get("series", []) if s["window"]["count"]
    }
    out: dict[str, Any] = {
        "webhooks": {"window": _window(counters, "webhooks"),
                     "by_outcome": _by(counters, "webhooks", "outcome"),
                     "by_kind": _by(counters, "webhooks", "kind")} if "webhooks" in counters else None,
        "events": {"window": _window(counters, "events"),
                   "by_outcome": _by(counters, "events", "outcome"),
                   "by_channel": dict(sorted(events_by_channel.items()))},
        "traffic_by_channel": _points_by(counters, "events", "channel", npoints),
        "conversations": {"created": _window(counters, "conversations_created"),
                          "closed": _window(counters, "conversations_closed"),
                          "closed_by_reason": _by(counters, "conversations_closed", "reason")},
    }
    if "webhooks" in counters:
        out["webhook_traffic_by_kind"] = _points_by(counters, "webhooks", "kind", npoints)
    if "v2_requests" in counters:
        out["communications"] = _by(counters, "communications", "operation")
        out["v2"] = {"requests": _window(counters, "v2_requests"),
                     "errors": sum(e["count"] for e in v2_errors),
                     "errors_by_route": sorted(v2_errors, key=lambda e: -e["count"]),
                     "latency_p95_ms_by_route": dict(sorted(latency.items()))}
        out["dead_letters"] = {"window": _window(counters, "dead_letters"),
                               "by_reason": _by(counters, "dead_letters", "reason")}
        out["uncertain_creates"] = _window(counters, "uncertain_creates")
    if "transcriptions" in counters:  # passive voice (workers.delivery.transcribe)
        by: dict[str, dict[str, int]] = {}
        for s in counters["transcriptions"].get("series", []):
            row = by.setdefault(s["labels"]["operation"], {})
            row[s["labels"]["detail"]] = row.get(s["labels"]["detail"], 0) + s["window"]
        out["transcriptions"] = {
            "started": {"twiml": by.get("started", {}).get("twiml", 0),
                        "rest": by.get("started", {}).get("rest", 0)},
            **{op: sum(by.get(op, {}).values()) for op in ("refused", "failed", "stopped", "skipped")},
            "by_operation": by}
    if "e2e_lag" in histograms:
        out["lag"] = _merged_hist(histograms["e2e_lag"]["series"], npoints)
    return out
