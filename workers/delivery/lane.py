"""What one drain lane holds until it ends: grouping-key locks, conversations, the states of its
messages, and its bookkeeping writes, queued and sent in one pipeline.

Why: a lane delivers its events one after another and is, while it holds the grouping-key
locks, the only writer of its conversations' records and of its messages' states
(:class:`workers.conversations.messages.MessageMemory` says why). So it reads its messages'
states once, in one round trip at its first event (:meth:`LaneSession.expect` names them), keeps
them in memory as it changes them, and queues each event's writes — the message state, the
channel's activity, the lifecycle timer — on one pipeline that :meth:`flush` sends before the
locks are released: per lane two round trips to Redis, not two per event. The drain acknowledges
a lane's events only after a successful flush (:attr:`lost` says one failed), so an event is
never acknowledged without its bookkeeping.
"""
from __future__ import annotations

import contextlib
from typing import Any

from workers.conversations import store as cv


class LaneSession:
    """Grouping-key locks, conversations and message states held by one drain lane until it ends."""

    def __init__(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        self.convs: dict[tuple[str, str], cv.Conversation | None] = {}
        self.states: dict[str, dict[str, str]] = {}  # resource id → its message state, as written
        self.expected: list[str] = []                # resource ids of the lane's messages
        self.lost = False                            # a flush failed: its writes may be missing
        self._pipe: Any = None

    def expect(self, resource_ids: list[str]) -> None:
        """The lane's messages: their states are read together, at the first one's delivery."""
        self.expected = resource_ids

    def pipe(self, redis) -> Any:
        """The lane's write pipeline (made on first use; :meth:`flush` sends it)."""
        if self._pipe is None:
            self._pipe = redis.pipeline(transaction=False)
        return self._pipe

    async def flush(self) -> None:
        """Send the queued writes (one round trip); a failure marks the session :attr:`lost`."""
        pipe, self._pipe = self._pipe, None
        if pipe is None or not len(pipe):
            return
        try:
            await pipe.execute()
        except BaseException:
            self.lost = True
            raise

    async def __aenter__(self) -> LaneSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()  # before the locks go: the writes were decided under them
        finally:
            await self.stack.aclose()
