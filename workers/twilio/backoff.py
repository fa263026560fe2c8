"""How long to wait before retrying a Twilio API call: pure arithmetic, unit-tested without I/O.

Exponential backoff with *full jitter* (a uniform draw between 0 and the exponential ceiling)
spreads the retries of many workers hit by the same 429 or 5xx burst, instead of having them
all come back in lock-step. When Twilio says how long to wait (``Retry-After``), that wins as
the floor: retrying earlier only earns another 429.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime

# A Retry-After longer than this is clamped: a shard's events must not wait on one call for
# minutes; the attempt budget (THREADLINE_MAX_ATTEMPTS) still bounds the whole retry.
MAX_RETRY_AFTER = 60.0


def ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The exponential ceiling before retry number ``attempt`` (1 = first retry)."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # min() before the power would overflow for large attempts: compare exponents instead.
    exp = min(attempt - 1, 62)
    return min(cap, base * (2**exp))


def delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to sleep before retry number ``attempt``.

    Full jitter: ``uniform(0, min(cap, base·2^(attempt-1)))``. With ``retry_after`` the result
    is ``retry_after`` plus a small jitter (up to ``base``), never less than Twilio asked for.
    """
    jitter = rand() * ceiling(attempt, base=base, cap=cap)
    if retry_after is not None and retry_after > 0:
        return min(retry_after, MAX_RETRY_AFTER) + rand() * base
    return jitter


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds (what Twilio sends) or an HTTP date.

    Anything unparseable is ignored (None) rather than trusted.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        import time

        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0 if seconds == seconds else None
    return seconds
