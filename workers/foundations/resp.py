"""Redis commands as RESP bytes, and one round trip of them on a pooled connection without
redis-py's per-command machinery.

Why: redis-py's asyncio pipeline packs each argument through a type dispatch, reads each reply
under its own timeout and runs a reply callback per command; for the drain's few commands per
event that was a sixth of the worker's CPU (BENCHMARKS.md, issue 19). :func:`round_trip`
writes every command in one call and reads every reply under one timeout — what the lane's
writes and reads need (commands whose arguments are str or int, replies read raw). The web
tier's append writes on a pooled connection the same way (workers.eventlog.writer).
"""
from __future__ import annotations

import asyncio
import math
from typing import Any

from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout


def bulk(value: str | int) -> bytes:
    """One argument in RESP: ``$<len>\\r\\n<bytes>\\r\\n``."""
    data = value.encode() if isinstance(value, str) else str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def resp(argv: list | tuple) -> bytes:
    """A command (every argument a str or an int) in RESP."""
    return b"*%d\r\n" % len(argv) + b"".join([bulk(arg) for arg in argv])


def as_pairs(reply: Any) -> dict:
    """An HGETALL reply read raw (a flat list under RESP2, a dict under RESP3) as a dict."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


async def round_trip(redis: Any, commands: list[tuple]) -> list:
    """Send ``commands`` and return their raw replies, in order; raises the first error reply
    (after reading them all), or a connection error or timeout (the connection is dropped).

    A client without a connection pool of sockets (fakeredis, for ``threadline dev``) runs them
    as a redis-py pipeline instead, whose replies then come through redis-py's callbacks."""
    if not commands:
        return []
    pool = getattr(redis, "connection_pool", None)
    if pool is None or type(redis).__module__.startswith("fakeredis"):
        pipe = redis.pipeline(transaction=False)
        for c in commands:
            pipe.execute_command(*c)
        return list(await pipe.execute())
    conn = await pool.get_connection()
    replies: list = []
    errors: list[ResponseError] = []
    try:
        await conn.send_packed_command(b"".join([resp(c) for c in commands]))
        async with asyncio.timeout(conn.socket_timeout):
            for _ in commands:
                try:
                    replies.append(await conn.read_response(timeout=math.inf))  # one timeout is around all
                except ResponseError as exc:  # its reply was read: the rest still are
                    errors.append(exc)
                    replies.append(exc)
    except TimeoutError as exc:
        await conn.disconnect()
        raise RedisTimeout("timed out reading the replies of a round trip") from exc
    except BaseException:  # a connection error or a cancellation leaves replies unread
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)
    if errors:
        raise errors[0]
    return replies
