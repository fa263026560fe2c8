"""The event log's watermark, and when it lets a close through: pure decisions, no I/O.

Why: v2 takes no update of a CLOSED conversation. A status callback or a message answered 200
and appended *before* a conversation's close deadline, but processed after it (the log runs
seconds behind under load), would be left out of v2 if the close went first — the medium soak
counted 1–4 statuses "behind" a close per ~2,700. So a close waits for the log to catch up.

What the watermark is: the shards' streams keep only what no drain has decided yet (the
drain's commit XACKs *and* XDELs, :mod:`workers.delivery.commit`; dead letters go to a stream of
their own), and a stream ID is Redis's millisecond clock at the XADD. So a shard's first entry
is the earliest moment whose events may still be unprocessed on it; an empty shard is "now".

Per conversation (:class:`LogHeads`): a close waits for the shards its own events came from
(the record's ``h{n}`` fields, written by the drain lane that touched it: its address pairs'
shards, its calls'), and for every other shard at most ``OTHER_SHARDS_GRACE`` seconds. Why not
only its own shards: an event of a shard it never had — another channel's pair, a new call, a
GROUP_BY_PROFILE customer's other number — appended just before the deadline still joins it
when the log is as far behind as it usually is. Why not every shard fully (the first version):
one shard's stuck entries (a killed worker's lease, a lane in a 429's backoff) then held every
close — the large soak's closes were 7 s late on average and 18% more than 10 s. A conversation
with no shard recorded (written by an earlier release; the classic bridge's) waits for all.

Only closes wait: INACTIVE is not final (v2 still takes the conversation's updates, and traffic
reopens it), so it stays on time. One stuck entry must not freeze every close: a close held
``max_hold`` seconds past its deadline applies anyway (counted: ``lifecycle_holds|max_hold``).

Not covered: a webhook spooled to disk during a Redis outage gets its ID when it is replayed,
after the outage — a close due in between does not wait for it; and the watermark is Redis's
clock while deadlines are the workers' (and Twilio's timestamps): skew between them moves it.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

# A held close is re-checked no sooner than this (seconds): a floor on the decisions it costs.
MIN_RECHECK = 0.5
# How far behind "now" the shards a conversation never had events from may hold its close
# (seconds): the log's usual lag, not a crash's.
OTHER_SHARDS_GRACE = 2.0


def entry_seconds(entry_id: str | bytes | None) -> float | None:
    """The append time of a stream entry from its ID (``<ms>-<seq>``), in epoch seconds."""
    if entry_id is None:
        return None
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, _ = raw.partition("-")
    return int(ms) / 1000.0


@dataclass(frozen=True)
class LogHeads:
    """Each shard's oldest unprocessed entry's append time (None: the shard is empty), as read
    at ``now``: one read per applier tick, a watermark per conversation from it."""

    heads: tuple[float | None, ...]
    now: float

    @classmethod
    def of(cls, first_ids: Iterable[str | bytes | None], now: float) -> LogHeads:
        return cls(tuple(entry_seconds(i) for i in first_ids), now)

    def mark(self, shards: Collection[int] = ()) -> float:
        """The watermark of a conversation whose events came from ``shards``: theirs, and
        every other shard's no further back than ``OTHER_SHARDS_GRACE`` (none: every shard)."""
        every = min([self.now, *(t for t in self.heads if t is not None)])
        own = [self.heads[n] for n in shards if 0 <= n < len(self.heads)]
        if not own:
            return every
        mine = min([self.now, *(t for t in own if t is not None)])
        return min(mine, max(every, self.now - OTHER_SHARDS_GRACE))


def horizon(now: float, mark: float, max_hold: float) -> float:
    """The latest close deadline that may apply now: the watermark, or ``now - max_hold`` when
    that is later, so a stuck entry delays closes by at most ``max_hold``."""
    return max(min(now, mark), now - max_hold)


@dataclass(frozen=True)
class Gate:
    """What the watermark says of a close that is due by the clock."""

    hold: bool           # the log has not reached its deadline: keep the conversation open
    recheck_at: float    # when to look again (if held)
    overridden: bool     # applied although the log has not reached it: the hold's bound


def gate_close(closed_at: float, mark: float, now: float, max_hold: float) -> Gate:
    """Hold a due close until the log's watermark passes its deadline (or the hold's bound).

    A held close is re-armed for when the log should get there if it keeps its current lag
    (``now + closed_at - horizon``): one re-check, not one per tick, while the lag is steady.
    """
    upto = horizon(now, mark, max_hold)
    if closed_at > upto:
        return Gate(True, now + max(MIN_RECHECK, closed_at - upto), False)
    return Gate(False, now, closed_at > mark)
