"""The v2 client's two hot-path choices, each measured beside its naive alternative in one run.

1. Connection reuse: N sequential ``POST …/Communications`` (resourceId upserts) through the
   pooled client (HTTP/1.1 keep-alive) vs. the same calls each on a fresh connection (a new
   ``httpx.AsyncClient`` per call, what a per-job client does). Against the local twin over
   loopback without TLS, so the ratio is a floor: to Twilio every new connection also costs a
   TLS handshake (one or two more round trips of ~100 ms).
2. Stats: the same calls with counts batched (one pipeline per ~1 s flush, what the client
   does) vs. one Redis pipeline round trip per call.

Prints calls/s and the ratios (median of ROUNDS rounds). Starts its own ``threadline twin``;
takes a free Redis DB (1-15) with the test suite's lock key and empties it afterwards.

    .venv/bin/python bench/v2client.py [--calls 400] [--rounds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402
from workers.foundations.redis_conn import connect  # noqa: E402
from workers.foundations.settings import load_settings  # noqa: E402
from workers.stats.buffer import StatsBuffer  # noqa: E402
from workers.twilio.client import V2Client  # noqa: E402

ACCOUNT = "AC" + "c" * 32
TOKEN = "bench-token"
STORE = "mem_store_0" + "c" * 25


class CountingBuffer(StatsBuffer):
    """Counts the Redis round trips (pipelines executed) its flushes make."""

    trips = 0

    def flush(self) -> int:
        written = super().flush()
        if written:
            self.trips += 1
        return written


class PerCallFlush(CountingBuffer):
    """The naive alternative: every add is written at once (one pipeline round trip per call)."""

    def add(self, counts, *, now=None) -> None:  # type: ignore[override]
        super().add(counts, now=now)
        self.flush()


class FreshConnection(httpx.AsyncBaseTransport):
    """A new connection for every request, for the naive side. The TLS context is built once
    (building one per client costs more than the connection itself), so only the connection
    setup is measured."""

    def __init__(self) -> None:
        import ssl

        self.ssl = ssl.create_default_context()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = httpx.AsyncHTTPTransport(verify=self.ssl)
        try:
            response = await transport.handle_async_request(request)
            await response.aread()
            return httpx.Response(response.status_code, headers=response.headers,
                                  content=response.content, request=request)
        finally:
            await transport.aclose()


async def setup(settings) -> str:
    async with V2Client(settings, stats_buffer=StatsBuffer(lambda: connect(settings),
                                                           retention_minutes=1)) as client:
        accepted = await client.create_configuration({
            "displayName": "bench", "description": "bench", "memoryStoreId": STORE,
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES"})
        op = await client.wait_operation(accepted, 10, interval=0.05)
        conv = await client.create_conversation({"configurationId": op["related"]["configurationId"]})
        return conv["id"]


async def run(settings, conv_id: str, calls: int, stats: StatsBuffer,
              transport: httpx.AsyncBaseTransport | None) -> float:
    client = V2Client(settings, stats_buffer=stats, transport=transport)
    body = {"author": {"address": "+14155550100", "channel": "SMS"},
            "content": {"type": "TEXT", "text": "bench"},
            "recipients": [{"address": "+14155550199", "channel": "SMS"}]}
    t0 = time.perf_counter()
    for i in range(calls):
        await client.create_communication(conv_id, {**body, "resourceId": f"SM{i % 50}"})
    elapsed = time.perf_counter() - t0
    await client.aclose()
    return calls / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    rclient, url, token = take_db()
    port = free_port()
    twin = Proc(["twin", "--port", str(port), "--operation-delay", "0"],
                {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN,
                 "THREADLINE_LOG_LEVEL": "WARNING"},
                ready_url=f"http://127.0.0.1:{port}/_twin/healthz")
    try:
        empty(rclient)
        settings = load_settings(REDIS_URL=url, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                                 THREADLINE_TWILIO_BASE_URL=f"http://127.0.0.1:{port}")
        conv_id = asyncio.run(setup(settings))

        def batched() -> CountingBuffer:
            return CountingBuffer(lambda: connect(settings), retention_minutes=5)

        def per_call() -> CountingBuffer:
            return PerCallFlush(lambda: connect(settings), retention_minutes=5, interval=3600)

        results: dict[str, list[float]] = {"pooled": [], "fresh": [], "per_call_stats": []}
        trips = {"batched": 0, "per_call": 0}
        def one(kind: str) -> None:
            if kind == "pooled":
                buf = batched()
                results["pooled"].append(asyncio.run(run(settings, conv_id, args.calls, buf, None)))
                trips["batched"] += buf.trips
            elif kind == "fresh":
                results["fresh"].append(asyncio.run(run(settings, conv_id, args.calls, batched(),
                                                        FreshConnection())))
            else:
                buf = per_call()
                results["per_call_stats"].append(asyncio.run(run(settings, conv_id, args.calls,
                                                                 buf, None)))
                trips["per_call"] += buf.trips

        kinds = ["pooled", "fresh", "per_call_stats"]
        for r in range(args.rounds):  # interleaved and rotated, so drift hits every variant alike
            for kind in kinds[r % 3:] + kinds[:r % 3]:
                one(kind)
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"{args.calls} sequential POST …/Communications, median of {args.rounds} rounds")
        print(f"  pooled keep-alive, batched stats : {med['pooled']:8.0f} calls/s")
        print(f"  new connection per call          : {med['fresh']:8.0f} calls/s")
        print(f"  pooled, one Redis trip per call  : {med['per_call_stats']:8.0f} calls/s")
        print(f"  reuse vs new connection : {med['pooled'] / med['fresh']:.2f}x")
        print(f"  batched vs per-call stats: {med['pooled'] / med['per_call_stats']:.2f}x calls/s; "
              f"Redis round trips for stats {trips['batched'] / args.rounds:.0f} vs "
              f"{trips['per_call'] / args.rounds:.0f} per {args.calls} calls")
    finally:
        twin.stop()
        empty(rclient)
        release(rclient, token)
        rclient.close()


if __name__ == "__main__":
    main()
