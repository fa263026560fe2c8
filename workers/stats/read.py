"""Reading the stats back: all-time totals, a window of per-minute series, and a summary.

Every view (``GET /api/v1/stats``, ``GET /metrics``, ``threadline stats``, ``/dashboard``)
calls :func:`read_stats` (or :func:`read_totals`), so they show the same numbers. Counters and
histograms come from the hashes :mod:`workers.stats.counters` writes; live gauges (backlog, dead
letters, RQ, conversations by status) from :mod:`workers.stats.gauges`.

A query names a *window* (``5m``, ``1h``, ``24h`` … up to the retention) and optionally a
*configuration*; an unknown one is refused with :class:`StatsQueryError` rather than answered
with zeros that would look like "no traffic".
"""
from __future__ import annotations

import functools
import math
import re
import time
from collections import defaultdict
from typing import Any

import redis

from workers import stats
from workers.foundations import keys
from workers.foundations.errors import InvalidInput
from workers.foundations.settings import Settings
from workers.stats import gauges as statsgauges
from workers.stats.summary import quantile, summarize

# Long windows are summed into at most this many points, so a 24 h chart stays light.
MAX_POINTS = 120
_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mh])$")
Key = tuple[str, tuple[str, ...], "str | None"]


class StatsQueryError(InvalidInput):
    """A stats query the reader cannot answer truthfully; the message is the reason.

    ``field`` names the query parameter at fault (``window`` or ``configuration``).
    """

    reason = "bad_stats_query"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def parse_window(text: str, retention_minutes: int) -> int:
    """``"5m"`` / ``"1h"`` / ``"24h"`` → minutes; refuse what is malformed or beyond retention."""
    m = _WINDOW.match(text or "")
    if not m:
        raise StatsQueryError(f"unknown window {text!r}: use minutes or hours, like 5m, 1h or 24h",
                              "window")
    minutes = int(m.group(1)) * (60 if m.group(2) == "h" else 1)
    if minutes > retention_minutes:
        raise StatsQueryError(
            f"window {text!r} exceeds the stats retention of {retention_minutes} minutes"
            " (THREADLINE_STATS_RETENTION_MINUTES)", "window"
        )
    return minutes


@functools.lru_cache(maxsize=65536)
def _parse(raw_field: bytes | str) -> Key | None:
    """Field names repeat in every minute's hash: parse each once (a 24 h read sees ~100k)."""
    return stats.parse_field(raw_field.decode() if isinstance(raw_field, bytes) else raw_field)


def _decode_hash(raw: dict) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for f, v in raw.items():
        parsed = _parse(f)
        if parsed is not None:
            try:
                out[parsed] = out.get(parsed, 0) + int(v)
            except ValueError:
                continue
    return out


def read_totals(r: redis.Redis) -> dict[Key, int]:
    """All-time counters, keyed by (metric, labels, histogram part)."""
    return _decode_hash(r.hgetall(keys.STATS_TOTAL))


def configured_ids(r: redis.Redis) -> set[str]:
    """Configurations the store holds now (``workers.capture.store``'s current-version hash)."""
    return {k.decode() if isinstance(k, bytes) else k for k in r.hkeys(keys.CONFIG_CURRENT)}


def _labels_of(name: str) -> tuple[str, ...]:
    return (stats.METRICS.get(name) or stats.HISTOGRAMS[name])[0]


def _config_ok(name: str, labels: tuple[str, ...], configuration: str | None) -> bool:
    if configuration is None:
        return True
    names = _labels_of(name)
    return "configuration" in names and labels[names.index("configuration")] == configuration


def _hist(parts: dict[str, int]) -> dict[str, Any]:
    raw = {p[2:]: n for p, n in parts.items() if p.startswith("b:")}
    cum, running = {}, 0
    for bound in [*map(str, stats.BUCKETS_MS), stats.INF]:
        running += raw.get(bound, 0)
        cum["+Inf" if bound == stats.INF else bound] = running
    count, total = parts.get("count", 0), parts.get("sum", 0)
    return {"count": count, "sum_ms": total, "avg_ms": round(total / count, 1) if count else None,
            "p50_ms": quantile(raw, 0.5), "p95_ms": quantile(raw, 0.95),
            "p99_ms": quantile(raw, 0.99), "buckets": cum}


def read_stats(r: redis.Redis, settings: Settings, *, window: str = "1h",
               configuration: str | None = None, now: float | None = None,
               gauges: bool = True) -> dict[str, Any]:
    """The whole picture for one window (see module doc). Raises StatsQueryError on bad input."""
    now = time.time() if now is None else now
    minutes = parse_window(window, settings.stats_retention_minutes)
    step = max(1, math.ceil(minutes / MAX_POINTS))
    npoints = math.ceil(minutes / step)
    last = stats.minute_of(now)
    first = last - npoints * step + 1
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.STATS_TOTAL)
    for m in range(first, last + 1):
        pipe.hgetall(keys.stats_minute(m))
    raw = pipe.execute()
    totals = _decode_hash(raw[0])
    if configuration is not None:
        seen = {lab[_labels_of(n).index("configuration")] for (n, lab, _) in totals
                if "configuration" in _labels_of(n)}
        if configuration not in seen | configured_ids(r):
            raise StatsQueryError(f"unknown configuration {configuration!r}", "configuration")
    in_window: dict[Key, int] = defaultdict(int)
    points: dict[Key, list[int]] = defaultdict(lambda: [0] * npoints)
    for i, h in enumerate(raw[1:]):
        idx = i // step
        for k, n in _decode_hash(h).items():
            in_window[k] += n
            points[k][idx] += n
    # Series that only exist in the window (the total hash lost?) still show up.
    all_keys = [k for k in {**totals, **in_window} if _config_ok(k[0], k[1], configuration)]

    counters: dict[str, Any] = {}
    for name, (label_names, help_) in stats.METRICS.items():
        if configuration is not None and "configuration" not in label_names:
            continue
        series = [{"labels": dict(zip(label_names, k[1])), "total": totals.get(k, 0),
                   "window": in_window.get(k, 0), "points": list(points.get(k, [0] * npoints))}
                  for k in sorted(all_keys, key=lambda k: (k[0], k[1]))
                  if k[0] == name and k[2] is None]
        counters[name] = {"help": help_, "labels": list(label_names), "series": series}

    histograms: dict[str, Any] = {}
    for name, (label_names, help_) in stats.HISTOGRAMS.items():
        if configuration is not None and "configuration" not in label_names:
            continue
        groups: dict[tuple[str, ...], list[Key]] = defaultdict(list)
        for k in all_keys:
            if k[0] == name:
                groups[k[1]].append(k)
        series = []
        for lab in sorted(groups):
            ks = groups[lab]
            count_pts = points.get((name, lab, "count"), [0] * npoints)
            sum_pts = points.get((name, lab, "sum"), [0] * npoints)
            series.append({
                "labels": dict(zip(label_names, lab)),
                "total": _hist({str(k[2]): totals.get(k, 0) for k in ks}),
                "window": _hist({str(k[2]): in_window.get(k, 0) for k in ks}),
                "points_count": list(count_pts),
                "points_avg_ms": [round(s / c, 1) if c else None for s, c in zip(sum_pts, count_pts)],
            })
        histograms[name] = {"help": help_ + " (milliseconds)", "labels": list(label_names),
                            "series": series}

    out: dict[str, Any] = {
        "window": window, "window_minutes": minutes, "step_minutes": step,
        "configuration": configuration, "generated_at_ms": int(now * 1000),
        "points_start_minute": [first + i * step for i in range(npoints)],
        "counters": counters, "histograms": histograms,
    }
    out["summary"] = summarize(counters, histograms, npoints)
    if gauges:
        out["gauges"] = statsgauges.read_gauges(r, settings.shards, now)
    return out
