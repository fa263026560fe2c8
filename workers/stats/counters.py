"""Counters kept in Redis, so every web, worker and scheduler process adds to the same numbers.

Two hashes hold them: ``tl:stats:total`` (all time) and ``tl:stats:m:{minute}`` (one per
wall-clock minute, expiring after the retention). A field is a metric name and its label
values joined by ``|``: ``webhooks|messaging|accepted``. Writers add counts inside a pipeline
or Lua script they already run, so a stat never costs an extra round trip.

The metric names and their labels are listed in :data:`METRICS`; readers (``/api/v1/stats``,
``/metrics``, ``threadline stats``) use the same list.

Histograms (:data:`HISTOGRAMS`) are counters too, in the same two hashes, so an observation
rides in the writer's pipeline like any count: one field per fixed millisecond bucket
(``v2_latency|conversations.create|b:250`` counts observations in (100, 250] ms — buckets are
stored *non*-cumulative, one HINCRBY each; readers accumulate), plus ``…|sum`` (milliseconds,
rounded) and ``…|count``. Fixed buckets keep every process's observations addable.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

from workers.foundations import keys

__all__ = ["METRICS", "BUCKETS_MS", "INF", "HISTOGRAMS", "field", "minute_of", "add", "bucket_of",
           "histogram_fields", "observe", "parse_field"]

# name → (label names, help). Add a metric here before writing it.
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "webhooks": (("kind", "outcome"), "Webhook deliveries by kind and outcome"),
    "events": (("configuration", "channel", "outcome"), "Logged events captured or ignored"),
    "conversations_created": (("configuration",), "Conversations created in v2"),
    "conversations_closed": (("configuration", "reason"), "Conversations closed, by reason"),
    "communications": (("operation",), "Communications posted or updated"),
    "v2_requests": (("route", "status"), "Twilio API calls by route and HTTP status"),
    "dead_letters": (("reason",), "Events sent to the dead-letter stream"),
    "uncertain_creates": (("resource",), "Creates whose outcome was unknown (timeouts, crashes)"),
    "v2_limit": (("change",), "Times a 429 lowered a worker's adaptive limit on in-flight Twilio requests"),
    "config_changes": (("source", "outcome"), "Configuration writes by source (api|file) and outcome"),
    "lifecycle_transitions": (("status", "reason"), "Status PATCHes sent (reason: timeout|explicit|traffic)"),
    "lifecycle_failures": (("reason",), "Status PATCHes v2 refused for good (conversation flagged)"),
    "lifecycle_holds": (("outcome",),
                        "Lifecycle timers applied before the event log caught up to their deadline "
                        "(max_hold: held THREADLINE_LIFECYCLE_MAX_HOLD_SECONDS)"),
    "stats_queries_refused": (("reason",), "Stats queries refused (bad window, unknown configuration)"),
    "profile_resolutions": (("configuration", "source"), "Customer profiles resolved, by source"),
    "profile_fallbacks": (("configuration", "reason"),
                          "GROUP_BY_PROFILE events grouped by addresses instead, by reason"),
    "voice_events": (("kind", "outcome"), "Voice events by kind and outcome (posted, progress, or why ignored)"),
    "auth_refused": (("reason",), "Bearer tokens refused (missing, wrong, too_long)"),
    "classic": (("event", "outcome"), "Classic bridge events by post-event type and outcome"),
    "forwards": (("role", "outcome"), "Webhooks relayed to the operator's application (forwarding), by outcome"),
    "transcriptions": (("operation", "detail"),
                       "Passive voice transcriptions: started by way (twiml|rest), refused by Twilio code, "
                       "failed, skipped (why), stopped (by whom)"),
    "call_polls": (("outcome",), "Polls of the account's in-progress calls (passive voice)"),
}


# Upper bounds (ms) of every histogram's buckets; the last bucket (+Inf) is implicit.
BUCKETS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
INF = "inf"

# name → (label names, help). Values are milliseconds; /metrics exports them as seconds.
HISTOGRAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "v2_latency": (("route",), "Twilio API call latency by route (each attempt)"),
    "e2e_lag": (
        ("channel",),
        "End-to-end lag: Twilio's timestamp (or receive time) to delivered in v2",
    ),
    "timer_lag": (("status",), "Lifecycle timer: deadline to status PATCHed"),
    "lifecycle_lag": (
        ("status",),
        "Lifecycle: status PATCHed after it could apply (its deadline, or for a close held by "
        "the event log, the last time the log was found behind it)",
    ),
    "forward_latency": (("role",), "Forwarding: the operator's application's time to answer a relayed webhook"),
}


def field(name: str, *labels: object) -> str:
    """The hash field of one counter: ``name|label|label``."""
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; add it to workers.stats.counters.METRICS")
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


def bucket_of(value_ms: float) -> str:
    """The bucket label (upper bound in ms, or ``inf``) an observation falls in."""
    for bound in BUCKETS_MS:
        if value_ms <= bound:
            return str(bound)
    return INF


def histogram_fields(name: str, value_ms: float, *labels: object) -> dict[str, int]:
    """The counter increments one observation makes: its bucket, the sum and the count.

    Writers that build a Lua script's arguments (or merge several stats into one
    :func:`add`) use this; :func:`observe` is the pipeline shortcut.
    """
    if name not in HISTOGRAMS:
        raise KeyError(f"unknown histogram {name!r}; add it to workers.stats.counters.HISTOGRAMS")
    want = len(HISTOGRAMS[name][0])
    if len(labels) != want:
        raise ValueError(f"{name} takes {want} labels, got {len(labels)}")
    value_ms = max(0.0, float(value_ms))
    base = "|".join([name, *(str(v).replace("|", "/") for v in labels)])
    return {f"{base}|b:{bucket_of(value_ms)}": 1, f"{base}|sum": round(value_ms), f"{base}|count": 1}


def observe(pipe, name: str, value_ms: float, *labels: object, retention_minutes: int,
            now: float | None = None) -> None:
    """Queue one histogram observation (milliseconds) on a pipeline the caller executes."""
    add(pipe, histogram_fields(name, value_ms, *labels), retention_minutes=retention_minutes, now=now)


def parse_field(raw: str) -> tuple[str, tuple[str, ...], str | None] | None:
    """Split a hash field into (name, labels, histogram part) — the readers' inverse of
    :func:`field` / :func:`histogram_fields`. The histogram part is ``b:<le>``, ``sum`` or
    ``count`` (None for a counter). Fields of unknown metrics (an older or newer version
    wrote them) give None, so a reader skips them instead of failing.
    """
    name, *rest = raw.split("|")
    if name in HISTOGRAMS:
        nlabels = len(HISTOGRAMS[name][0])
        if len(rest) != nlabels + 1:
            return None
        part = rest[-1]
        if part not in ("sum", "count") and not part.startswith("b:"):
            return None
        return name, tuple(rest[:-1]), part
    if name in METRICS and len(rest) == len(METRICS[name][0]):
        return name, tuple(rest), None
    return None
