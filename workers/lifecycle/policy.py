"""The lifecycle of a conversation, as pure decisions: no Redis, no HTTP, no clock.

Orchestrator's rules (DESIGN §4, reference/twilio-webhooks.md "Lifecycle"):

- ACTIVE → INACTIVE after ``statusTimeouts.inactive`` minutes without a communication, and
  → CLOSED after ``statusTimeouts.closed`` minutes; *both* are counted from the last
  communication, not from entering INACTIVE.
- Per channel: each channel of a conversation proposes its own deadlines (its last
  communication + its channel's timeouts); the **latest** proposal governs, so a call ending
  does not close a conversation whose SMS timer still runs.
- Traffic from either side reopens an INACTIVE conversation (INACTIVE → ACTIVE).
- CLOSED is final: new traffic of the same grouping key starts a new conversation.
- Explicitly (``PATCH {"status": …}``, v2's enum ACTIVE|INACTIVE|CLOSED): CLOSED from any open
  status, INACTIVE from ACTIVE, ACTIVE from INACTIVE. Nothing leaves CLOSED.

Defaults, where a configuration's channel gives no ``statusTimeouts`` (or only one of the two
fields): Orchestrator documents none, so threadline uses the values Twilio's own examples use
for every messaging and voice channel (``inactive: 10``, ``closed: 60`` minutes —
the twilio/ai Orchestrator skill). See :data:`DEFAULT_TIMEOUTS`.

Time is seconds since the epoch (float). One configured minute lasts ``minute_seconds``
(``THREADLINE_MINUTE_SECONDS``: 60 in production, smaller in tests and demos).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workers.foundations.constants import ACTIVE, CLOSED, INACTIVE, OPEN  # noqa: F401  (re-exported: the lifecycle's vocabulary)
from workers.foundations.errors import Permanent

STATUSES = (ACTIVE, INACTIVE, CLOSED)  # the statuses the lifecycle moves among (v2's three)


@dataclass(frozen=True)
class Timeouts:
    """One channel's ``statusTimeouts``, in configured minutes."""

    inactive: int
    closed: int


DEFAULT_TIMEOUTS = Timeouts(inactive=10, closed=60)


def timeouts_from(channel_settings: object) -> Timeouts:
    """A channel's effective timeouts from its ``channelSettings`` entry (dict or model).

    Accepts the configuration JSON (``{"statusTimeouts": {"inactive": 5}}``), a pydantic model
    with a ``statusTimeouts``/``status_timeouts`` attribute, or None; missing fields take
    :data:`DEFAULT_TIMEOUTS`.
    """
    st = _get(channel_settings, "statusTimeouts", "status_timeouts")
    inactive = _get(st, "inactive")
    closed = _get(st, "closed")
    return Timeouts(
        inactive=int(inactive) if inactive else DEFAULT_TIMEOUTS.inactive,
        closed=int(closed) if closed else DEFAULT_TIMEOUTS.closed,
    )


def channel_timeouts(configuration: object, channels: Iterable[str]) -> dict[str, Timeouts]:
    """Effective timeouts of each channel in ``channels`` under ``configuration``.

    ``configuration`` is the Configuration JSON dict or model; a channel the configuration does
    not mention (an actively created conversation, say) gets the defaults.
    """
    settings = _get(configuration, "channelSettings", "channel_settings") or {}
    out: dict[str, Timeouts] = {}
    for ch in channels:
        out[ch] = timeouts_from(_get(settings, ch))
    return out


def _get(obj: object, *names: str) -> Any:
    if obj is None:
        return None
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return None


@dataclass(frozen=True)
class Deadlines:
    """When the conversation goes INACTIVE and CLOSED if nothing else happens."""

    inactive_at: float
    closed_at: float

    @property
    def skips_inactive(self) -> bool:
        """A ``closed`` timeout no longer than ``inactive`` closes without an INACTIVE step."""
        return self.closed_at <= self.inactive_at


def deadlines(last_activity: Mapping[str, float], timeouts: Mapping[str, Timeouts],
              minute_seconds: float, *, reactivated_at: float | None = None) -> Deadlines:
    """The governing deadlines: for each, the latest of the channels' proposals.

    ``reactivated_at`` (an explicit INACTIVE → ACTIVE) counts as activity on every channel, so
    an operator's reopening is not undone by the next sweep.
    """
    if not last_activity and reactivated_at is None:
        raise ValueError("a conversation without activity has no deadlines")
    inactive_at = closed_at = float("-inf")
    channels = set(last_activity) or set(timeouts) or {"_"}
    for ch in channels:
        t = timeouts.get(ch, DEFAULT_TIMEOUTS)
        anchor = last_activity.get(ch, float("-inf"))
        if reactivated_at is not None:
            anchor = max(anchor, reactivated_at)
        inactive_at = max(inactive_at, anchor + t.inactive * minute_seconds)
        closed_at = max(closed_at, anchor + t.closed * minute_seconds)
    return Deadlines(inactive_at, closed_at)


@dataclass(frozen=True)
class Decision:
    """What the conversation's status should be now, and the next timer to set."""

    status: str                 # the status it should have at ``now``
    next_status: str | None     # the status it takes at ``next_due`` (None: no timer, CLOSED)
    next_due: float | None


def decide(status: str, last_activity: Mapping[str, float], timeouts: Mapping[str, Timeouts],
           minute_seconds: float, now: float, *, status_since: float = float("-inf"),
           reactivated_at: float | None = None) -> Decision:
    """The status a conversation should have at ``now`` and its next deadline.

    ``status_since`` is when the current status was set. An INACTIVE conversation reopens only
    on traffic *after* it went INACTIVE — an explicit INACTIVE sticks until someone talks.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if status == CLOSED:
        return Decision(CLOSED, None, None)
    d = deadlines(last_activity, timeouts, minute_seconds, reactivated_at=reactivated_at)
    if now >= d.closed_at:
        return Decision(CLOSED, None, None)
    latest = max(last_activity.values(), default=float("-inf"))
    if status == INACTIVE and latest <= status_since:
        # No traffic since it went INACTIVE (by timer or by hand): it only waits to close.
        return Decision(INACTIVE, CLOSED, d.closed_at)
    if d.skips_inactive or now >= d.inactive_at:
        if d.skips_inactive:
            return Decision(ACTIVE, CLOSED, d.closed_at)
        return Decision(INACTIVE, CLOSED, d.closed_at)
    return Decision(ACTIVE, INACTIVE, d.inactive_at)


def due_after_communication(channel: str, at: float, timeouts: Timeouts,
                            minute_seconds: float) -> float:
    """A timer that is never late after a communication on ``channel`` at ``at``.

    The true next deadline is the latest channel proposal, so it is at least this channel's;
    a timer that fires early only re-decides and re-arms (never PATCHes). This is what lets the
    engine arm a timer with one ZADD, without reading the other channels.
    """
    return at + min(timeouts.inactive, timeouts.closed) * minute_seconds


# --- explicit transitions ---------------------------------------------------------------------

class TransitionRefused(Permanent, ValueError):
    """An explicit status change Orchestrator does not allow; ``reason`` says why."""

    def __init__(self, reason: str, *, already: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.already = already


_ALLOWED: dict[str, set[str]] = {
    ACTIVE: {INACTIVE, CLOSED},
    INACTIVE: {ACTIVE, CLOSED},
    CLOSED: set(),
}


def check_explicit(current: str, wanted: str) -> bool:
    """True when ``current → wanted`` must be sent to v2; False when it is already so (no-op).

    Raises :class:`TransitionRefused` for an unknown status or a move Orchestrator forbids
    (anything out of CLOSED, which is final).
    """
    if wanted not in STATUSES:
        raise TransitionRefused(f"status must be one of {', '.join(STATUSES)}")
    if current == CLOSED:
        raise TransitionRefused("conversation is already CLOSED; CLOSED is final", already=True)
    if current == wanted:
        return False
    if wanted not in _ALLOWED[current]:
        raise TransitionRefused(f"{current} → {wanted} is not a transition Orchestrator allows")
    return True
