"""The call registry on real Redis: out-of-order status callbacks never move a call backwards,
a dialled child leg resolves to its parent, every record expires."""
from __future__ import annotations

import asyncio
import json
import random

import redis.asyncio as aioredis

from tests.conftest import FIXTURES
from workers.conversations.calls import CallRegistry
from workers.eventlog.entries import CALL_STATUS, LogEntry
from workers.foundations import keys
from workers.parse.voice import parse_voice

PARENT, CHILD = "CA170601453461ae9437029d0cb1cec23c", "CA7afcca011e01ddbfc5d11c6d1e58078c"


def _status_events():
    out = []
    for i, d in enumerate(json.loads((FIXTURES / "c_inbound_pstn_call_transcription.json").read_text())):
        if d["url"].split("?")[0].endswith("/status"):
            out.append(parse_voice(LogEntry(CALL_STATUS, 1_772_463_846_000 + i, "AC1", d["params"], {}, "")))
    return out


def _run(redis_url, fn):
    async def go():
        r = aioredis.Redis.from_url(redis_url)
        try:
            return await fn(CallRegistry(r, ttl_seconds=120))
        finally:
            await r.aclose()
    return asyncio.run(go())


def test_any_arrival_order_ends_in_the_same_state(redis_client, redis_url):
    events = _status_events()
    finals = set()
    for seed in range(6):
        redis_client.delete(keys.call(PARENT), keys.call(CHILD))
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)

        async def play(reg: CallRegistry):
            for e in shuffled:
                await reg.record_status(e)
            return await reg.leg_and_root(CHILD), await reg.get(PARENT)
        (leg, root), parent = _run(redis_url, play)
        finals.add((leg.status, leg.sequence, parent.status))
        assert root.sid == PARENT and leg.parent == PARENT
        assert (root.from_addr, root.to_addr, root.direction) == ("+14155550123", "+14155550100", "inbound")
        assert 0 < redis_client.ttl(keys.call(CHILD)) <= 120
    assert finals == {("completed", 3, "completed")}


def test_active_route_and_bindings_are_kept(redis_client, redis_url):
    ringing = _status_events()[0]

    async def go(reg: CallRegistry):
        await reg.record_status(ringing)
        await reg.mark_active(PARENT, "conversation:tlc_1")
        await reg.bind(PARENT, "support", "tlc_1")
        await reg.set_fields(PARENT, {"eng": "google"})
        await reg.record_status(_status_events()[-1])  # completed: parties unchanged
        return await reg.get(PARENT), await reg.leg_and_root("CA" + "0" * 32)
    rec, (leg, root) = _run(redis_url, go)
    assert rec.active == "conversation:tlc_1" and rec.conversations == {"support": "tlc_1"}
    assert rec.engine == "google" and rec.status == "completed" and rec.call_type == "PSTN"
    assert leg is None and root is None  # a call never seen
