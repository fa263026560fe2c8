"""Backoff arithmetic and request-body hygiene of the v2 client: pure functions, no I/O."""
from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.twilio import backoff
from workers.twilio.client import V2Error, strip_nulls


def test_ceiling_doubles_then_caps() -> None:
    got = [backoff.ceiling(a, base=0.25, cap=3.0) for a in range(1, 7)]
    assert got == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_ceiling_survives_huge_attempt_numbers() -> None:
    assert backoff.ceiling(10_000, base=0.25, cap=20.0) == 20.0
    with pytest.raises(ValueError):
        backoff.ceiling(0, base=1, cap=1)


@given(attempt=st.integers(1, 200), r=st.floats(0, 1, exclude_max=True))
def test_full_jitter_stays_under_the_ceiling(attempt: int, r: float) -> None:
    d = backoff.delay(attempt, base=0.2, cap=5.0, rand=lambda: r)
    assert 0 <= d <= backoff.ceiling(attempt, base=0.2, cap=5.0)
    assert d == pytest.approx(r * backoff.ceiling(attempt, base=0.2, cap=5.0))


def test_full_jitter_spreads_over_the_whole_range() -> None:
    assert backoff.delay(4, base=1, cap=100, rand=lambda: 0.0) == 0.0
    assert backoff.delay(4, base=1, cap=100, rand=lambda: 0.999) == pytest.approx(7.992)


def test_retry_after_is_a_floor_even_on_the_first_attempt() -> None:
    # The exponential ceiling of attempt 1 is 0.1 s; Twilio asked for 3 s: 3 s wins.
    for r in (0.0, 0.5, 0.999):
        d = backoff.delay(1, base=0.1, cap=20, retry_after=3.0, rand=lambda: r)
        assert 3.0 <= d <= 3.1


def test_retry_after_is_clamped() -> None:
    d = backoff.delay(1, base=0.1, cap=20, retry_after=3600, rand=lambda: 0.0)
    assert d == backoff.MAX_RETRY_AFTER


@pytest.mark.parametrize("raw, want", [("2", 2.0), (" 0 ", 0.0), ("1.5", 1.5), (None, None),
                                       ("", None), ("soon", None), ("-3", 0.0), ("nan", None)])
def test_parse_retry_after_seconds(raw: str | None, want: float | None) -> None:
    assert backoff.parse_retry_after(raw) == want


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    raw = email.utils.formatdate(now + 7, usegmt=True)
    assert backoff.parse_retry_after(raw, now=now) == pytest.approx(7, abs=1)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert backoff.parse_retry_after(past, now=now) == 0.0


def test_strip_nulls_removes_every_null_recursively() -> None:
    body = {"a": None, "b": {"c": None, "d": [1, None, {"e": None, "f": "x"}]}, "g": [], "h": 0,
            "i": False}
    assert strip_nulls(body) == {"b": {"d": [1, {"f": "x"}]}, "g": [], "h": 0, "i": False}


@given(st.recursive(st.none() | st.integers() | st.text(max_size=3),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=3), kids, max_size=3), max_leaves=20))
def test_strip_nulls_leaves_no_null_anywhere(value: object) -> None:
    def has_null(v: object) -> bool:
        if v is None:
            return True
        if isinstance(v, dict):
            return any(has_null(x) for x in v.values())
        if isinstance(v, list):
            return any(has_null(x) for x in v)
        return False

    if value is not None:
        assert not has_null(strip_nulls(value))


def test_v2_error_reasons_and_text_carry_no_body() -> None:
    final = V2Error(400, 20001, "Invalid author", transient=False, route="POST /v2/Conversations")
    assert final.reason == "v2_rejected"
    assert "400" in str(final) and "20001" in str(final) and "Invalid author" in str(final)
    tired = V2Error(None, None, "ReadTimeout", transient=True, uncertain=True, attempts=8)
    assert tired.reason == "retries_exhausted" and "no answer" in str(tired)
    closed = V2Error(400, 50437, "Conversation is CLOSED", transient=False,
                     body={"code": 50437, "message": "Conversation is CLOSED"})
    assert closed.conversation_closed and not final.conversation_closed
