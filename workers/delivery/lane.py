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
from workers.conversations.messages import STATE_TTL_SECONDS
from workers.foundations import keys
from workers.foundations.resp import round_trip


class Writes:
    """A lane's queued writes (the HSET, EXPIRE and ZADD its bookkeeping uses), sent as one RESP
    write on one pooled connection, their replies read under one timeout.

    Why not a redis-py pipeline: it reads each reply under its own timeout context and runs
    its reply callback — with four writes per event, about a sixth of the worker's CPU in a
    py-spy profile (BENCHMARKS.md, issue 19). Nothing reads these replies but for errors.
    They go through :func:`workers.foundations.resp.round_trip`, whose RESP encoding replaced
    redis-py's ``pack_commands`` (its per-argument type dispatch was a twelfth of the worker's
    samples once the v2 call got lean). The web tier's append talks to a pooled connection the
    same way (workers.eventlog.writer).

    Writes to the same key are coalesced as they are queued: an HSET's fields join the key's
    first HSET (later values win), a ZADD of one member replaces the member's earlier score, an
    EXPIRE replaces the key's earlier one (kept last, after the key's HSET). The lane's events
    of one conversation each touch its record and move its timer, and each of its messages'
    events writes the message's state: only the last values matter, as nothing reads these keys
    between the queueing and the flush (the lane holds their locks) and the commands are plain
    writes. It keeps the drain's commands per event low (issue 12: the attempt record a
    message's first post now writes is paid for by this).
    """

    def __init__(self, redis) -> None:
        self.redis = redis
        self.commands: list[tuple | None] = []
        self._hset: dict[str, int] = {}                   # key → index of its HSET
        self._expire: dict[str, int] = {}                 # key → index of its EXPIRE
        self._zadd: dict[tuple[str, str], int] = {}       # (key, member) → index of its ZADD

    def __len__(self) -> int:
        return sum(c is not None for c in self.commands)

    def hset(self, key: str, *, mapping: dict[str, str]) -> None:
        at = self._hset.get(key)
        if at is not None:
            prev = self.commands[at]
            assert prev is not None
            fields = dict(zip(prev[2::2], prev[3::2]))
            fields.update(mapping)
            self.commands[at] = ("HSET", key, *(x for kv in fields.items() for x in kv))
            return
        self._hset[key] = len(self.commands)
        self.commands.append(("HSET", key, *(x for kv in mapping.items() for x in kv)))

    def expire(self, key: str, seconds: int) -> None:
        at = self._expire.get(key)
        if at is not None:
            self.commands[at] = None
        self._expire[key] = len(self.commands)
        self.commands.append(("EXPIRE", key, int(seconds)))

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        if len(mapping) == 1:
            ((member, score),) = mapping.items()
            at = self._zadd.get((key, member))
            if at is not None:
                self.commands[at] = ("ZADD", key, repr(float(score)), member)
                return
            self._zadd[(key, member)] = len(self.commands)
        else:  # several members in one: later ZADDs of them are not folded into earlier ones
            for member in mapping:
                self._zadd.pop((key, member), None)
        self.commands.append(("ZADD", key, *(x for m, score in mapping.items() for x in (repr(float(score)), m))))

    async def execute(self) -> None:
        """Send every queued write; raises the first error reply, or a connection error."""
        commands = [c for c in self.commands if c is not None]
        self.commands, self._hset, self._expire, self._zadd = [], {}, {}, {}
        if commands:
            await round_trip(self.redis, commands)


class LaneSession:
    """Grouping-key locks, conversations and message states held by one drain lane until it ends."""

    def __init__(self, shard: int | None = None) -> None:
        self.shard = shard  # the event-log shard of the lane's events (None: not in a drain)
        self.stack = contextlib.AsyncExitStack()
        self.convs: dict[tuple[str, str], cv.Conversation | None] = {}
        self.states: dict[str, dict[str, str]] = {}  # resource id → its message state, as written
        self.expected: list[str] = []                # resource ids of the lane's messages
        self.lost = False                            # a flush failed: its writes may be missing
        # messages this lane recorded a post attempt for (MessageMemory.attempt): their states
        # get their TTL at the flush, whether or not the lane wrote them (:meth:`flush`)
        self.tried: set[str] = set()
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
        """Send the queued writes (one round trip); a failure marks the session :attr:`lost`.

        Every message this lane recorded an attempt for leaves with its state's TTL: an attempt
        is an HSET without EXPIRE (one command, not two), and a message whose event is then
        dead-lettered before its state is written would keep that field for ever. Free when the
        lane wrote the state (the EXPIREs coalesce, :class:`Writes`)."""
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            return
        for rid in self.tried:
            pipe.expire(keys.message_state(rid), STATE_TTL_SECONDS)
        self.tried.clear()
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
