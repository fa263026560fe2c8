"""An adaptive bound on the Twilio API requests one worker process has in flight (AIMD).

Why adapt: Twilio limits how many REST requests an *account* may have in flight at once and
answers the excess with HTTP 429, error 20429 ("your account exceeds allowed concurrency to
Twilio's REST API"). The number is not published and every worker of a deployment draws on the
same account. A fixed per-process bound is therefore wrong one way or the other: low enough
that N workers stay under the account's limit, it starves a single worker; high enough for
one worker, N of them overrun the account and spend their time retrying 429s. So the bound
moves the way TCP's congestion window does:

- it starts at the ceiling (``THREADLINE_MAX_INFLIGHT``), so an account with room never waits
  for a ramp-up;
- additive increase: +1 after ``limit`` successful requests, i.e. about +1 per round trip of
  the whole window, up to the ceiling — counting only requests that finish while the window
  is full, so a quiet spell does not climb back to the ceiling unproven;
- multiplicative decrease: a 429 cuts it to ``limit × 0.75`` (rounded down, never below the
  floor). One overload shows up as a 429 on many of the requests that were in flight together,
  so only one decrease per window counts: a 429 on a request that *started* before the last
  decrease says nothing about the lowered limit and is ignored.

The arithmetic lives in :class:`Aimd`, plain methods testable without an event loop;
:class:`AdaptiveLimit` adds the asyncio part — an in-flight count and a FIFO queue of waiters,
served in arrival order (no barging: a slot freed while others wait goes to the oldest).
No I/O here: the caller (``workers.twilio.client``) logs and counts the decreases.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

DECREASE = 0.75   # the factor a 429 applies (TCP Reno halves; 0.75 oscillates less near the limit)
FLOOR = 2         # the lowest limit (1 when the ceiling itself is 1)


@dataclass
class Aimd:
    """The limit's arithmetic: start at ``ceiling``, +1 per ``limit`` successes, ×``decrease``
    on an overload, at most once per window. ``epoch`` counts the decreases: a request
    remembers the epoch it started in, and an overload from an older epoch is ignored."""

    ceiling: int
    floor: int = -1          # -1: min(FLOOR, ceiling)
    decrease: float = DECREASE
    limit: int = -1          # -1: the ceiling
    epoch: int = 0
    successes: int = 0       # since the limit last changed
    decreases: int = 0

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        if self.floor < 0:
            self.floor = min(FLOOR, self.ceiling)
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError("floor must be between 1 and the ceiling")
        if self.limit < 0:
            self.limit = self.ceiling
        self.limit = min(max(self.limit, self.floor), self.ceiling)

    def succeeded(self) -> bool:
        """A request answered without overload; True when the limit went up."""
        if self.limit >= self.ceiling:
            return False
        self.successes += 1
        if self.successes < self.limit:
            return False
        self.limit += 1
        self.successes = 0
        return True

    def overloaded(self, started_epoch: int) -> bool:
        """A request that started in ``started_epoch`` got a 429; True when the limit went down.

        Ignored when a decrease already happened since that request started (the same burst
        of overload), or when the limit is at the floor already.
        """
        if started_epoch < self.epoch:
            return False
        lowered = max(self.floor, int(self.limit * self.decrease))
        if lowered >= self.limit:
            return False
        self.limit = lowered
        self.epoch += 1
        self.successes = 0
        self.decreases += 1
        return True


@dataclass
class Slot:
    """One acquired place in the window; the caller says how its request ended."""

    epoch: int
    outcome: str = "neutral"  # "success" | "overload" | "neutral" (an error that is not a 429)
    decreased: bool = False   # set on release: this slot's overload lowered the limit

    def succeeded(self) -> None:
        self.outcome = "success"

    def overloaded(self) -> None:
        self.outcome = "overload"


@dataclass
class AdaptiveLimit:
    """At most ``aimd.limit`` holders at once; waiters are served first come, first served.

    Use ``async with limit.slot() as s: … s.succeeded() / s.overloaded()``, or
    :meth:`acquire` and :meth:`release`. Not bound to one event loop: each waiter is a future
    of the loop it waits in (a worker's V2Client outlives ``asyncio.run`` calls in tests).
    """

    aimd: Aimd
    inflight: int = 0
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    @classmethod
    def with_ceiling(cls, ceiling: int, **kw: object) -> AdaptiveLimit:
        return cls(Aimd(ceiling, **kw))  # type: ignore[arg-type]

    @property
    def limit(self) -> int:
        return self.aimd.limit

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> Slot:
        if not self._waiters and self.inflight < self.aimd.limit:
            self.inflight += 1
            return Slot(self.aimd.epoch)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back()  # granted, then cancelled before it could be used
            else:
                self._forget(waiter)
            raise
        return Slot(self.aimd.epoch)  # the request starts now: the epoch of now

    def release(self, slot: Slot) -> Slot:
        """Free the slot and apply its outcome to the limit; returns it (``decreased`` set)."""
        if slot.outcome == "success":
            # Grow only when the window was in use: successes while fewer requests are in
            # flight than allowed say nothing about room above the limit (TCP's "congestion
            # window validation", RFC 7661), and a quiet spell would otherwise climb back to
            # the ceiling and make the next burst pay the descent again.
            if self.inflight >= self.aimd.limit:
                self.aimd.succeeded()
        elif slot.outcome == "overload":
            slot.decreased = self.aimd.overloaded(slot.epoch)
        self._give_back()
        return slot

    def slot(self) -> _SlotContext:
        return _SlotContext(self)

    # --- the queue --------------------------------------------------------------------------
    def _give_back(self) -> None:
        self.inflight -= 1
        self._wake()

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
        self._wake()

    def _wake(self) -> None:
        """Hand freed places to the oldest waiters (the place is taken on their behalf, so a
        newcomer cannot overtake a waiter that was woken but has not run yet)."""
        while self._waiters and self.inflight < self.aimd.limit:
            waiter = self._waiters.popleft()
            if waiter.done():  # cancelled while waiting
                continue
            self.inflight += 1
            waiter.set_result(None)


class _SlotContext:
    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit
        self._slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        self._slot = await self._limit.acquire()
        return self._slot

    async def __aexit__(self, *exc: object) -> None:
        assert self._slot is not None
        self._limit.release(self._slot)
