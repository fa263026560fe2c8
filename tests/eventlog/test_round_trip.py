"""``workers.foundations.resp.round_trip`` on a real Redis over TCP: raw replies in order, an
error reply raised only after every reply was read (so the pooled connection's next round trip
reads its own replies, not this one's leftovers), and HGETALL's raw reply as a dict."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from workers.foundations.resp import as_pairs, resp, round_trip


def test_round_trip_reads_every_reply_even_after_an_error(redis_url) -> None:
    async def main() -> tuple[list, list]:
        client = aioredis.Redis.from_url(redis_url, max_connections=1)  # one connection: reused
        try:
            await client.delete("t:rt:str", "t:rt:h")
            await client.set("t:rt:str", "x")
            with pytest.raises(ResponseError):
                await round_trip(client, [("HSET", "t:rt:str", "f", "v"),   # WRONGTYPE
                                          ("HSET", "t:rt:h", "a", "1", "b", "é"),
                                          ("EXPIRE", "t:rt:h", 60)])
            after = await round_trip(client, [("HGETALL", "t:rt:h"), ("TTL", "t:rt:h"), ("GET", "t:rt:none")])
            return after, await round_trip(client, [])
        finally:
            await client.delete("t:rt:str", "t:rt:h")
            await client.aclose()

    (pairs, ttl, missing), empty = asyncio.run(main())
    assert as_pairs(pairs) == {b"a": b"1", b"b": "é".encode()}  # the writes after the error ran
    assert 0 < ttl <= 60 and missing is None and empty == []


def test_resp_encodes_str_and_int_as_bulk_strings() -> None:
    assert resp(("EXPIRE", "k", 60)) == b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n60\r\n"
