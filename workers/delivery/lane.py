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

import asyncio
import contextlib
import math

from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from workers.conversations import store as cv


class Writes:
    """A lane's queued writes (the HSET, EXPIRE and ZADD its bookkeeping uses), sent as one RESP
    write on one pooled connection, their replies read under one timeout.

    Why not a redis-py pipeline: it reads each reply under its own timeout context and runs
    its reply callback — with four writes per event, about a sixth of the worker's CPU in a
    py-spy profile (BENCHMARKS.md, issue 19). Nothing reads these replies but for errors.
    (The web tier's append talks to a pooled connection the same way: workers.eventlog.writer.)
    """

    def __init__(self, redis) -> None:
        self.redis = redis
        self.commands: list[tuple] = []

    def __len__(self) -> int:
        return len(self.commands)

    def hset(self, key: str, *, mapping: dict[str, str]) -> None:
        self.commands.append(("HSET", key, *(x for kv in mapping.items() for x in kv)))

    def expire(self, key: str, seconds: int) -> None:
        self.commands.append(("EXPIRE", key, seconds))

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        self.commands.append(("ZADD", key, *(x for m, score in mapping.items() for x in (repr(float(score)), m))))

    async def execute(self) -> None:
        """Send every queued write; raises the first error reply, or a connection error."""
        commands, self.commands = self.commands, []
        if not commands:
            return
        pool = getattr(self.redis, "connection_pool", None)
        if pool is None or type(self.redis).__module__.startswith("fakeredis"):  # `threadline dev`
            pipe = self.redis.pipeline(transaction=False)
            for c in commands:
                pipe.execute_command(*c)
            await pipe.execute()
            return
        conn = await pool.get_connection()
        errors: list[ResponseError] = []
        try:
            await conn.send_packed_command(conn.pack_commands(commands))
            async with asyncio.timeout(conn.socket_timeout):
                for _ in commands:
                    try:
                        await conn.read_response(timeout=math.inf)  # the one timeout is around all
                    except ResponseError as exc:  # its reply was read: the rest still are
                        errors.append(exc)
        except TimeoutError as exc:
            await conn.disconnect()
            raise RedisTimeout("timed out reading the lane's write replies") from exc
        except BaseException:  # a connection error or a cancellation leaves replies unread
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        if errors:
            raise errors[0]


class LaneSession:
    """Grouping-key locks, conversations and message states held by one drain lane until it ends."""

    def __init__(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        self.convs: dict[tuple[str, str], cv.Conversation | None] = {}
        self.states: dict[str, dict[str, str]] = {}  # resource id → its message state, as written
        self.expected: list[str] = []                # resource ids of the lane's messages
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
