"""The soak's deliveryStatus verdict: judged against what was answered before the close deadline.

The large soak failed by one status of 2,984: a DELIVERED callback answered 200 only after its
conversation's close deadline (its first sends met a Redis restart's 503s), which v2 can no
longer take. The verdict now asks for the best status answered *before* the deadline, and
still fails a status that went backwards or one that was never answered.
"""
from __future__ import annotations

from bench.soak_parts.verdicts import shown_before_close

DEADLINE = 1_000.0


def test_the_best_status_answered_before_the_close_must_show() -> None:
    answers = [("IN_PROGRESS", 990.0), ("DELIVERED", 995.0)]
    assert shown_before_close(answers, DEADLINE, "DELIVERED")
    assert not shown_before_close(answers, DEADLINE, "IN_PROGRESS")  # DELIVERED was in time


def test_a_better_status_answered_after_the_close_deadline_may_be_missing() -> None:
    answers = [("IN_PROGRESS", 990.0), ("DELIVERED", 1_003.0)]
    assert shown_before_close(answers, DEADLINE, "IN_PROGRESS")
    assert shown_before_close(answers, DEADLINE, "DELIVERED")  # the close came later: it made it


def test_a_status_never_answered_or_worse_than_the_floor_fails() -> None:
    answers = [("DELIVERED", 990.0), ("IN_PROGRESS", 1_003.0)]  # out of order: the later is worse
    assert shown_before_close(answers, DEADLINE, "DELIVERED")
    assert not shown_before_close(answers, DEADLINE, "IN_PROGRESS")
    assert not shown_before_close(answers, DEADLINE, "READ")  # never answered at all
