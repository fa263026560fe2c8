"""``threadline stats``: the summary of ``/api/v1/stats`` as tables in a terminal.

Reads Redis directly (the same :func:`workers.stats.read.read_stats`), so it works on any
machine that reaches Redis, with no web tier and no admin token; ``--json`` prints the full
JSON for scripts.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import redis

from workers.foundations.redis_conn import connect
from workers.foundations.settings import load_settings
from workers.stats.read import StatsQueryError, read_stats


def _table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [tuple("—" if v is None else str(v) for v in row) for row in rows] or [("—",) * len(header)]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))

    return "\n".join([title, line(header), line(tuple("-" * w for w in widths)), *map(line, cells), ""])


def render(data: dict[str, Any]) -> str:
    s, g = data["summary"], data.get("gauges") or {}
    scope = f" · configuration {data['configuration']}" if data["configuration"] else ""
    out = [f"threadline stats · last {data['window']}{scope}\n"]
    if s.get("webhooks"):
        out.append(_table("Webhooks", ("outcome", "count"), sorted(s["webhooks"]["by_outcome"].items())))
    out.append(_table("Events by channel", ("channel", "captured", "ignored", "all"),
                      [(ch, r.get("captured", 0), r.get("ignored", 0), r["all"])
                       for ch, r in s["events"]["by_channel"].items()]))
    c = s["conversations"]
    out.append(_table("Conversations", ("", "count"),
                      [("created", c["created"]), ("closed", c["closed"]),
                       *((f"  closed: {k}", v) for k, v in c["closed_by_reason"].items()),
                       *((f"now {k}", v) for k, v in
                         (g.get("conversations") or {}).get("by_status", {}).items())]))
    if "v2" in s:
        v2 = s["v2"]
        out.append(_table(f"v2 calls: {v2['requests']} · errors: {v2['errors']}",
                          ("route", "status", "count"),
                          [(e["route"], e["status"], e["count"]) for e in v2["errors_by_route"]]))
    if "lag" in s:
        lag = s["lag"]
        out.append(_table("End-to-end lag (ms)", ("count", "avg", "p50", "p95", "p99"),
                          [(lag["count"], lag["avg_ms"], lag["p50_ms"], lag["p95_ms"], lag["p99_ms"])]))
    if g:
        busy = [(r["shard"], r["backlog"], r["pending"], r["oldest_age_s"])
                for r in g["shards"] if r["backlog"]]
        out.append(_table(f"Backlog: {g['backlog']} entries in {len(busy)} shard(s)",
                          ("shard", "backlog", "pending", "oldest age s"), busy))
        out.append(_table("Now", ("", "value"),
                          [("dead letters", g["dead_letters"]), ("RQ queue depth", g["queue"]["depth"]),
                           ("RQ workers", g["queue"]["workers"])]))
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        data = read_stats(connect(settings), settings, window=args.window,
                          configuration=args.configuration)
    except StatsQueryError as exc:
        print(f"threadline stats: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"threadline stats: redis unavailable ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0

