"""Histograms are counters in the same hashes: an observation rides in the writer's pipeline."""
from __future__ import annotations

import pytest

from workers import stats
from workers.foundations import keys


def test_observe_writes_bucket_sum_and_count_in_both_hashes(redis_client) -> None:
    now = 1_700_000_000.0
    pipe = redis_client.pipeline()
    stats.add(pipe, {stats.field("webhooks", "messaging", "accepted"): 1}, retention_minutes=5, now=now)
    for ms in (3, 7, 120, 120, 99999):
        stats.observe(pipe, "v2_latency", ms, "conversations.create", retention_minutes=5, now=now)
    pipe.execute()
    for key in (keys.STATS_TOTAL, keys.stats_minute(stats.minute_of(now))):
        h = {k.decode(): int(v) for k, v in redis_client.hgetall(key).items()}
        assert h["webhooks|messaging|accepted"] == 1
        assert h["v2_latency|conversations.create|b:5"] == 1
        assert h["v2_latency|conversations.create|b:10"] == 1
        assert h["v2_latency|conversations.create|b:250"] == 2
        assert h["v2_latency|conversations.create|b:inf"] == 1
        assert h["v2_latency|conversations.create|count"] == 5
        assert h["v2_latency|conversations.create|sum"] == 3 + 7 + 240 + 99999
    ttl = redis_client.ttl(keys.stats_minute(stats.minute_of(now)))
    assert 0 < ttl <= 5 * 60 + 120


def test_bucket_edges_are_inclusive_upper_bounds() -> None:
    assert stats.bucket_of(0) == "5"
    assert stats.bucket_of(5) == "5"
    assert stats.bucket_of(5.01) == "10"
    assert stats.bucket_of(10000) == "10000"
    assert stats.bucket_of(10000.5) == stats.INF


def test_unknown_histogram_or_wrong_labels_refused() -> None:
    with pytest.raises(KeyError):
        stats.histogram_fields("nope", 1.0)
    with pytest.raises(ValueError):
        stats.histogram_fields("v2_latency", 1.0)
    assert stats.histogram_fields("e2e_lag", -4, "SMS")["e2e_lag|SMS|sum"] == 0


def test_parse_field_round_trips_and_skips_strangers() -> None:
    f = stats.field("events", "cfg-1", "SMS", "captured")
    assert stats.parse_field(f) == ("events", ("cfg-1", "SMS", "captured"), None)
    for hf in stats.histogram_fields("e2e_lag", 42, "WHATSAPP"):
        name, labels, part = stats.parse_field(hf)
        assert (name, labels) == ("e2e_lag", ("WHATSAPP",)) and part in ("b:50", "sum", "count")
    assert stats.parse_field("retired_metric|x") is None
    assert stats.parse_field("webhooks|only-one-label") is None
