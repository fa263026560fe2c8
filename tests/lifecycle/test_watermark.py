"""The watermark's pure decisions (:mod:`workers.lifecycle.watermark`)."""
from __future__ import annotations

import pytest

from workers.lifecycle import watermark
from workers.lifecycle.watermark import MIN_RECHECK

NOW = 1_700_000_000.0


def test_an_entry_id_is_its_append_time_in_seconds() -> None:
    assert watermark.entry_seconds("1700000000123-7") == pytest.approx(1_700_000_000.123)
    assert watermark.entry_seconds(b"1700000000123-0") == pytest.approx(1_700_000_000.123)
    assert watermark.entry_seconds(None) is None


def _id(t: float) -> str:
    return f"{int(t * 1000)}-0"


def test_every_shard_empty_is_now() -> None:
    assert watermark.LogHeads.of([None, None, None], NOW).mark() == NOW
    assert watermark.LogHeads.of([], NOW).mark() == NOW


def test_the_oldest_head_of_any_shard_is_the_watermark() -> None:
    heads = [None, _id(NOW - 3), f"{int((NOW - 9) * 1000)}-4", None]
    assert watermark.LogHeads.of(heads, NOW).mark() == pytest.approx(NOW - 9)


def test_a_head_ahead_of_this_clock_never_puts_the_watermark_past_now() -> None:
    assert watermark.LogHeads.of([_id(NOW + 5)], NOW).mark() == NOW


def test_a_conversation_waits_fully_for_its_own_shards() -> None:
    log = watermark.LogHeads.of([_id(NOW - 30), None, _id(NOW - 1)], NOW)
    assert log.mark({0}) == pytest.approx(NOW - 30)      # its own shard is 30 s behind
    assert log.mark({0, 2}) == pytest.approx(NOW - 30)


def test_other_shards_hold_a_conversation_no_further_back_than_the_grace() -> None:
    grace = watermark.OTHER_SHARDS_GRACE
    log = watermark.LogHeads.of([_id(NOW - 30), None, _id(NOW - 1)], NOW)
    assert log.mark({1}) == pytest.approx(NOW - grace)   # shard 0's backlog is not its own
    assert log.mark({2}) == pytest.approx(NOW - max(grace, 1))
    # while every shard is within the grace, a conversation waits for all of them (an event of a
    # shard it never had, appended just before its deadline, still joins it)
    near = watermark.LogHeads.of([_id(NOW - grace / 2), None, None], NOW)
    assert near.mark({1}) == pytest.approx(NOW - grace / 2)


def test_a_conversation_with_no_shard_recorded_waits_for_every_shard() -> None:
    log = watermark.LogHeads.of([_id(NOW - 30), None], NOW)
    assert log.mark(set()) == log.mark() == pytest.approx(NOW - 30)
    assert log.mark({7}) == pytest.approx(NOW - 30)      # a shard past the count: as if none


def test_the_horizon_is_the_watermark_within_the_hold_and_never_older() -> None:
    assert watermark.horizon(NOW, NOW - 4, max_hold=60) == NOW - 4
    assert watermark.horizon(NOW, NOW, max_hold=60) == NOW
    assert watermark.horizon(NOW, NOW - 600, max_hold=60) == NOW - 60
    assert watermark.horizon(NOW, 0.0, max_hold=0) == NOW  # hold 0: the watermark is off


def test_a_close_the_log_has_passed_applies() -> None:
    gate = watermark.gate_close(NOW - 5, mark=NOW - 1, now=NOW, max_hold=60)
    assert not gate.hold and not gate.overridden
    assert not watermark.gate_close(NOW - 5, mark=NOW, now=NOW, max_hold=60).hold


def test_a_close_the_log_has_not_reached_waits_about_the_log_s_lag() -> None:
    # deadline 5 s ago, the log 8 s behind: it should get there in ~3 s
    gate = watermark.gate_close(NOW - 5, mark=NOW - 8, now=NOW, max_hold=60)
    assert gate.hold and not gate.overridden
    assert gate.recheck_at == pytest.approx(NOW + 3)
    # never re-checked in a busy loop
    assert watermark.gate_close(NOW - 5, mark=NOW - 5.001, now=NOW, max_hold=60).recheck_at >= NOW + MIN_RECHECK


def test_a_close_held_the_maximum_applies_and_says_so() -> None:
    gate = watermark.gate_close(NOW - 61, mark=NOW - 300, now=NOW, max_hold=60)
    assert not gate.hold and gate.overridden
    held = watermark.gate_close(NOW - 59, mark=NOW - 300, now=NOW, max_hold=60)
    assert held.hold and held.recheck_at == pytest.approx(NOW + 1)
