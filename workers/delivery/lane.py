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

from workers.conversations import store as cv
from workers.foundations.resp import round_trip


class Writes:
    """A lane's queued writes (the HSET, EXPIRE and ZADD its bookkeeping uses), sent as one RESP
    write on one pooled connection, their replies read under one timeout.

    Why not a redis-py pipeline: it reads each reply under its own timeout context and runs
    its reply callback — with four writes per event, about a sixth of the worker's CPU in a
    py-spy profile (BENCHMARKS.md, issue 19). Nothing reads these replies but for errors.
    (The web tier's append talks to a pooled connection the same way: workers.eventlog.writer.)
    (:func:`workers.foundations.resp.round_trip`; its RESP encoding replaced redis-py's
    ``pack_commands``, whose per-argument type dispatch was a twelfth of the worker's samples
    once the v2 call got lean.)
    """

    def __init__(self, redis) -> None:
        self.redis = redis
        self.commands: list[tuple] = []

    def __len__(self) -> int:
        return len(self.commands)

    def hset(self, key: str, *, mapping: dict[str, str]) -> None:
        self.commands.append(("HSET", key, *(x for kv in mapping.items() for x in kv)))

    def expire(self, key: str, seconds: int) -> None:
        self.commands.append(("EXPIRE", key, int(seconds)))

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        self.commands.append(("ZADD", key, *(x for m, score in mapping.items() for x in (repr(float(score)), m))))

    async def execute(self) -> None:
        """Send every queued write; raises the first error reply, or a connection error."""
        commands, self.commands = self.commands, []
        await round_trip(self.redis, commands)


class LaneSession:
    """Grouping-key locks, conversations and message states held by one drain lane until it ends."""

    def __init__(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        self.convs: dict[tuple[str, str], cv.Conversation | None] = {}
        self.states: dict[str, dict[str, str]] = {}  # resource id → its message state, as written
        self.expected: list[str] = []                # resource ids of the lane's messages
        # (conversation id, resource id) recorded as attempted before their posts (MessageMemory.load)
        self.attempted: set[tuple[str, str]] = set()
        self.lost = False                            # a flush failed: its writes may be missing
        self._pipe: Writes | None = None

    def expect(self, resource_ids: list[str]) -> None:
        """The lane's messages: their states are read together, at the first one's delivery."""
        self.expected = resource_ids

    def pipe(self, redis) -> Writes:
        """The lane's queued writes (made on first use; :meth:`flush` sends them)."""
        if self._pipe is None:
            self._pipe = Writes(redis)
        return self._pipe

    async def flush(self) -> None:
        """Send the queued writes (one round trip); a failure marks the session :attr:`lost`."""
        pipe, self._pipe = self._pipe, None
        if pipe is None:
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
