"""Counters kept in Redis, so every web, worker and scheduler process adds to the same numbers.

Two hashes hold them: ``tl:stats:total`` (all time) and ``tl:stats:m:{minute}`` (one per
wall-clock minute, expiring after the retention). A field is a metric name and its label
values joined by ``|``: ``webhooks|messaging|accepted``. Writers add counts inside a pipeline
or Lua script they already run, so a stat never costs an extra round trip.

The metric names and their labels are listed in :data:`METRICS`; readers (``/api/v1/stats``,
``/metrics``, ``threadline stats``) use the same list.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

from workers import keys

# name → (label names, help). Add a metric here before writing it.
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "webhooks": (("kind", "outcome"), "Webhook deliveries by kind and outcome"),
    "events": (("configuration", "channel", "outcome"), "Logged events captured or ignored"),
    "conversations_created": (("configuration",), "Conversations created in v2"),
    "conversations_closed": (("configuration", "reason"), "Conversations closed, by reason"),
    "communications": (("operation",), "Communications posted or updated"),
    "v2_requests": (("route", "status"), "Twilio API calls by route and HTTP status"),
    "dead_letters": (("reason",), "Events sent to the dead-letter stream"),
    "uncertain_creates": (("resource",), "Creates whose outcome was unknown (timeouts)"),
}


def field(name: str, *labels: object) -> str:
    """The hash field of one counter: ``name|label|label``."""
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; add it to workers.stats.METRICS")
    want = len(METRICS[name][0])
    if len(labels) != want:
        raise ValueError(f"{name} takes {want} labels, got {len(labels)}")
    return "|".join([name, *(str(v).replace("|", "/") for v in labels)])


def minute_of(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


def add(pipe, counts: Mapping[str, int], *, retention_minutes: int, now: float | None = None) -> None:
    """Queue HINCRBYs for ``counts`` (fields made by :func:`field`) on a pipeline.

    The caller executes the pipeline together with its own work.
    """
    if not counts:
        return
    minute_key = keys.stats_minute(minute_of(now))
    for name, n in counts.items():
        pipe.hincrby(keys.STATS_TOTAL, name, n)
        pipe.hincrby(minute_key, name, n)
    pipe.expire(minute_key, retention_minutes * 60 + 120)
