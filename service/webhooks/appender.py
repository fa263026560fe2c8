"""Group commit: the appends of concurrent webhooks share one pipeline round trip.

Each request still gets its own answer from the append script (stored, duplicate, drain
needed) and still waits for Redis before Twilio hears 200. What is shared is the trip: while
one pipeline is in flight, the deliveries that arrive queue up and go together in the next.
Under light load a batch is one delivery and nothing changes; under heavy load the client's
per-command cost (the await, the syscalls, the reply wake-ups) is paid once per batch, which
is where redis-py's asyncio client spends most of its time.

A failed batch fails every delivery in it (each request then spools or answers 503); the
ones that reached Redis are duplicates when they come back, so nothing is doubled.

The group commit is also where ``THREADLINE_ACK_DURABILITY`` is paid (:mod:`.durability`): one
WAITAOF (or WAIT) per batch, written right after the append script on the same connection, so
a batch of 100 webhooks waits for one fsync, not 100. A wait that falls short fails the batch
with :class:`~service.webhooks.durability.NotDurable` (503, counted ``not_durable``).
"""
from __future__ import annotations

import asyncio

from redis.exceptions import TimeoutError as RedisTimeout

from service.webhooks import durability
from workers import eventlog
from workers.eventlog.writer import Appended
from workers.foundations.redis_conn import connect_async
from workers.foundations.settings import Settings

MAX_BATCH = eventlog.MAX_BATCH  # one script call
# Batches in flight at once. Without a durability wait, one: what arrives meanwhile waits for
# it and goes in the next, so at load the batches are about twice as large as with two in
# flight (half the round trips and script set-ups per webhook, ~10% less CPU per webhook) for
# at most one Redis round trip of waiting. With a wait (WAITAOF, WAIT), two: a batch may go
# out while the one before waits for its fsync or replica.
MAX_IN_FLIGHT = 1
MAX_IN_FLIGHT_WAITING = 2
# How long one group commit (its write and its replies) may take before it fails as a whole
# (503 or the spool for its webhooks), as the shared client's socket_timeout bounds a call.
BATCH_TIMEOUT_SECONDS = 5.0


class Appender:
    """The group commit. ``redis`` is the process's shared client; against a real server the
    appender opens its own, without per-call timeouts (it bounds each batch once, with
    :data:`BATCH_TIMEOUT_SECONDS`): redis-py makes each call with a socket timeout an
    ``asyncio.wait_for`` task and a timer, which cost twice the rest of the round trip. It
    holds that client's one connection too (:meth:`_connection`): with at most two batches
    in flight, taking a connection from redis-py's pool and giving it back for every batch
    cost more Python than the round trip itself."""

    def __init__(self, redis, settings: Settings) -> None:
        self.own = not settings.redis_url.startswith("memory://")
        self.redis = connect_async(settings, socket_timeout=None) if self.own else redis
        self.settings = settings
        self.wait = durability.wait_for(settings)
        self.max_in_flight = MAX_IN_FLIGHT if self.wait is None else MAX_IN_FLIGHT_WAITING
        self._queue: list[tuple[tuple, asyncio.Future]] = []
        self._in_flight = 0
        self._idle: list = []  # held connections of the own client not in use by a batch

    async def append(self, items: list[tuple]) -> list[Appended]:
        """Append ``(entry, dedupe_key, shard)`` items; their results, in order."""
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            fut = loop.create_future()
            self._queue.append((item, fut))
            futures.append(fut)
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            loop.create_task(self._flush())
        if len(futures) == 1:
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                conn = await self._connection()
                try:
                    try:
                        async with asyncio.timeout(BATCH_TIMEOUT_SECONDS):
                            results = await eventlog.append_many_async(
                                self.redis, [item for item, _ in batch], self.settings, wait=self.wait,
                                conn=conn)
                    except TimeoutError:  # the call's connection was dropped on the way out
                        raise RedisTimeout(f"no answer from Redis within {BATCH_TIMEOUT_SECONDS:g} s") \
                            from None
                except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc if isinstance(exc, Exception) else
                                              RuntimeError("append cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                finally:
                    if conn is not None:
                        self._idle.append(conn)
                for (_, fut), result in zip(batch, results):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._in_flight -= 1

    async def _connection(self):
        """A connection of the own client held by the appender (None: the shared client's pool).

        One per batch in flight, made once and kept: a call that failed disconnected it, and
        its next send connects again. One the server closed while it sat idle (a Redis restart,
        ``CLIENT KILL``, an idle timeout) is dropped first, so the next batch goes out on a new
        connection instead of failing on the dead one — as the pool's check before lending one.
        """
        if not self.own:
            return None
        if not self._idle:
            return self.redis.connection_pool.make_connection()
        conn = self._idle.pop()
        reader = getattr(conn, "_reader", None)
        if reader is not None and reader.at_eof():
            await conn.disconnect()
        return conn

    async def close(self) -> None:
        for conn in self._idle:
            await conn.disconnect()
        self._idle.clear()
        if self.own:
            await self.redis.aclose()
