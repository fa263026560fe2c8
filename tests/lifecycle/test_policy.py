"""The pure lifecycle rules (workers/lifecycle/policy.py): no Redis, no clock — every time is given."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.lifecycle import policy as lc
from workers.lifecycle.policy import ACTIVE, CLOSED, INACTIVE, Timeouts

M = 60.0  # production minute
SMS = Timeouts(inactive=10, closed=30)
VOICE = Timeouts(inactive=5, closed=15)


def test_defaults_fill_missing_fields_and_channels() -> None:
    assert lc.timeouts_from(None) == lc.DEFAULT_TIMEOUTS
    assert lc.timeouts_from({"statusTimeouts": {"inactive": 3}}) == Timeouts(3, lc.DEFAULT_TIMEOUTS.closed)
    assert lc.timeouts_from({"statusTimeouts": None}) == lc.DEFAULT_TIMEOUTS
    cfg = {"channelSettings": {"SMS": {"statusTimeouts": {"inactive": 1, "closed": 2}}}}
    got = lc.channel_timeouts(cfg, ["SMS", "WHATSAPP"])
    assert got == {"SMS": Timeouts(1, 2), "WHATSAPP": lc.DEFAULT_TIMEOUTS}


def test_active_goes_inactive_then_closed_counted_from_last_communication() -> None:
    last = {"SMS": 1000.0}
    t = {"SMS": SMS}
    d = lc.decide(ACTIVE, last, t, M, now=1000.0)
    assert (d.status, d.next_status, d.next_due) == (ACTIVE, INACTIVE, 1000 + 600)
    d = lc.decide(ACTIVE, last, t, M, now=1600.0)
    assert (d.status, d.next_status, d.next_due) == (INACTIVE, CLOSED, 1000 + 1800)
    # closed counts from the last communication, not from entering INACTIVE
    d = lc.decide(INACTIVE, last, t, M, now=2799.0, status_since=1600.0)
    assert d.status == INACTIVE and d.next_due == 2800.0
    assert lc.decide(INACTIVE, last, t, M, now=2800.0, status_since=1600.0).status == CLOSED


def test_latest_channel_deadline_governs() -> None:
    # a call ended at 1000 (voice closes at 1900); SMS at 1500 keeps it open until 3300
    last = {"VOICE": 1000.0, "SMS": 1500.0}
    t = {"VOICE": VOICE, "SMS": SMS}
    d = lc.decide(ACTIVE, last, t, M, now=1950.0)
    assert d.status == ACTIVE and d.next_due == 1500 + 600
    d = lc.decide(ACTIVE, last, t, M, now=3000.0)
    assert d.status == INACTIVE and d.next_due == 1500 + 1800


def test_traffic_after_inactive_reopens_but_explicit_inactive_sticks() -> None:
    t = {"SMS": SMS}
    # went INACTIVE at 1600; a reply at 1700 → ACTIVE again, next INACTIVE at 2300
    d = lc.decide(INACTIVE, {"SMS": 1700.0}, t, M, now=1701.0, status_since=1600.0)
    assert (d.status, d.next_due) == (ACTIVE, 2300.0)
    # an operator set INACTIVE at 1100, no traffic since: stays INACTIVE, closes on schedule
    d = lc.decide(INACTIVE, {"SMS": 1000.0}, t, M, now=1200.0, status_since=1100.0)
    assert (d.status, d.next_status, d.next_due) == (INACTIVE, CLOSED, 2800.0)


def test_explicit_reactivation_counts_as_activity() -> None:
    t = {"SMS": SMS}
    d = lc.decide(ACTIVE, {"SMS": 1000.0}, t, M, now=2000.0, status_since=2000.0, reactivated_at=2000.0)
    assert (d.status, d.next_due) == (ACTIVE, 2600.0)


def test_closed_not_after_inactive_skips_inactive() -> None:
    t = {"SMS": Timeouts(inactive=30, closed=10)}
    d = lc.decide(ACTIVE, {"SMS": 0.0}, t, M, now=1.0)
    assert (d.status, d.next_status, d.next_due) == (ACTIVE, CLOSED, 600.0)
    assert lc.due_after_communication("SMS", 0.0, t["SMS"], M) == 600.0


def test_minute_scale() -> None:
    d = lc.decide(ACTIVE, {"SMS": 10.0}, {"SMS": SMS}, 0.1, now=10.0)
    assert d.next_due == pytest.approx(11.0)


def test_closed_is_final() -> None:
    assert lc.decide(CLOSED, {"SMS": 1.0}, {"SMS": SMS}, M, now=2.0) == lc.Decision(CLOSED, None, None)
    with pytest.raises(ValueError):
        lc.decide("OPEN", {"SMS": 1.0}, {}, M, now=2.0)


def test_explicit_transitions() -> None:
    assert lc.check_explicit(ACTIVE, CLOSED) is True
    assert lc.check_explicit(INACTIVE, CLOSED) is True
    assert lc.check_explicit(ACTIVE, INACTIVE) is True
    assert lc.check_explicit(INACTIVE, ACTIVE) is True
    assert lc.check_explicit(ACTIVE, ACTIVE) is False
    with pytest.raises(lc.TransitionRefused) as e:
        lc.check_explicit(CLOSED, CLOSED)
    assert e.value.already and "CLOSED" in e.value.reason
    with pytest.raises(lc.TransitionRefused) as e:
        lc.check_explicit(CLOSED, ACTIVE)
    assert "final" in e.value.reason
    with pytest.raises(lc.TransitionRefused) as e:
        lc.check_explicit(ACTIVE, "ARCHIVED")
    assert not e.value.already


times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
tos = st.builds(Timeouts, st.integers(1, 100), st.integers(1, 200))


@given(st.dictionaries(st.sampled_from(["SMS", "VOICE", "WHATSAPP"]), st.tuples(times, tos), min_size=1),
       times)
def test_timer_after_a_communication_is_never_late(chans, extra) -> None:
    """The one-ZADD timer the engine arms is never after the true next deadline."""
    last = {c: v[0] for c, v in chans.items()}
    t = {c: v[1] for c, v in chans.items()}
    for ch in chans:
        now = last[ch]
        d = lc.decide(ACTIVE, last, t, 1.0, now=now)
        if d.next_due is not None:
            assert lc.due_after_communication(ch, last[ch], t[ch], 1.0) <= d.next_due
        # and the decision is monotone: the status only moves forward as time passes
        later = lc.decide(ACTIVE, last, t, 1.0, now=now + extra)
        order = {ACTIVE: 0, INACTIVE: 1, CLOSED: 2}
        assert order[later.status] >= order[d.status]
