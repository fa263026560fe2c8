"""Benchmark: the v2 client's HTTP stack — lean HTTP/1.1 vs aiohttp vs httpx, side by side in one run.

Four V2Clients send the same ``POST /v2/Conversations/{id}/Communications`` (resourceId
upserts over 50 conversations) with ``--inflight`` calls in flight, against one local twin
(no injected latency): the engine's client on the lean HTTP/1.1 sender (``engine_client``,
``Http11Sender``), the same client on aiohttp alone (``AiohttpSender``, the engine's before
issue 19's lean transport), httpx's API over aiohttp's pool (the engine's before that), and
plain ``httpx.AsyncClient`` on httpcore's pool at the same connection limit (httpx's own best
configuration: HTTP/1.1 keep-alive, limits = in-flight). The variants alternate in every
round; the figure that matters is this process's CPU time per call (``time.process_time``:
the client's own cost, whatever else shares the machine); calls/s is printed beside it but is
bounded by the twin, a Python process on the same cores. Medians over ``--rounds``. Runs on a
private redis-server (the client's counters).

    .venv/bin/python bench/httpstack.py [--calls 3000] [--inflight 64] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from aiohttp_sender import AiohttpSender  # noqa: E402
from costs import OwnRedis  # noqa: E402

from tests.procs import Proc, free_port  # noqa: E402
from workers.foundations.redis_conn import connect  # noqa: E402
from workers.foundations.settings import load_settings  # noqa: E402
from workers.stats.buffer import StatsBuffer  # noqa: E402
from workers.twilio.client import USER_AGENT, V2Client, engine_client  # noqa: E402


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's API over the engine's aiohttp pool (``AiohttpSender.session``): the worker's
    client before issue 19's sender, kept here as the comparison."""

    def __init__(self, limit: int) -> None:
        self._pool = AiohttpSender(limit, timeout=30.0, headers={})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        t = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(total=None, connect=t.get("connect"), sock_read=t.get("read"))
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in (b"host", b"content-length", b"transfer-encoding")]
        body = await request.aread()
        try:
            async with self._pool.session().request(
                    request.method, str(request.url), headers=headers, data=body or None,
                    timeout=timeout, allow_redirects=False) as resp:
                content = await resp.read()
                raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(status, headers=raw_headers, content=content, request=request)

    async def aclose(self) -> None:
        await self._pool.aclose()

ACCOUNT = "AC" + "c" * 32
TOKEN = "bench-token"


async def setup(settings, n: int) -> list[str]:
    async with V2Client(settings, stats_buffer=StatsBuffer(lambda: connect(settings), retention_minutes=1)) as c:
        accepted = await c.create_configuration({
            "displayName": "bench", "description": "bench", "memoryStoreId": "mem_store_0" + "b" * 25,
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES"})
        op = await c.wait_operation(accepted, 10, interval=0.05)
        cfg = op["related"]["configurationId"]
        return [(await c.create_conversation({"configurationId": cfg}))["id"] for _ in range(n)]


def variants(settings):
    return {
        "lean HTTP/1.1 (engine_client)": lambda: engine_client(settings),
        "aiohttp alone (AiohttpSender)": lambda: V2Client(settings, sender=AiohttpSender(
            settings.max_inflight, timeout=settings.twilio_timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"})),
        "httpx API over aiohttp's pool": lambda: V2Client(settings, transport=AiohttpTransport(settings.max_inflight)),
        "httpx.AsyncClient (httpcore pool)": lambda: V2Client(settings),
    }


async def run(make, settings, convs: list[str], calls: int, inflight: int) -> tuple[float, float]:
    """(calls/s, CPU µs per call) of one variant."""
    client = make()
    client.stats = StatsBuffer(lambda: connect(settings), retention_minutes=5, interval=3600)
    body = {"author": {"address": "+14155550100", "channel": "SMS"},
            "content": {"type": "TEXT", "text": "bench"},
            "recipients": [{"address": "+14155550199", "channel": "SMS", "deliveryStatus": "DELIVERED"}],
            "occurredAt": "2026-12-03T10:00:00.000Z"}
    left = iter(range(calls))

    async def caller() -> None:
        for i in left:
            await client.create_communication(convs[i % len(convs)], {**body, "resourceId": f"SM{i % 500}"})

    await client.create_communication(convs[0], {**body, "resourceId": "SMwarm"})  # pool and session
    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(inflight)))
    c1, t1 = time.process_time(), time.perf_counter()
    await client.aclose()
    return calls / (t1 - t0), (c1 - c0) * 1e6 / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    own = OwnRedis()
    port = free_port()
    twin = Proc(["twin", "--port", str(port), "--operation-delay", "0"],
                {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "THREADLINE_LOG_LEVEL": "WARNING",
                 "THREADLINE_TWILIO_BASE_URL": ""},
                ready_url=f"http://127.0.0.1:{port}/_twin/healthz")
    try:
        settings = load_settings(REDIS_URL=f"{own.url}/0", TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                                 THREADLINE_TWILIO_BASE_URL=f"http://127.0.0.1:{port}",
                                 THREADLINE_MAX_INFLIGHT=args.inflight)
        convs = asyncio.run(setup(settings, 50))
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants(settings)}
        for r in range(args.rounds):
            names = list(results)
            names = names[r % len(names):] + names[:r % len(names)]  # rotate the order every round
            for name in names:
                results[name].append(asyncio.run(run(variants(settings)[name], settings, convs,
                                                     args.calls, args.inflight)))
        print(f"{args.calls} POST …/Communications per round, {args.inflight} in flight, {args.rounds} rounds, "
              f"twin without latency; medians")
        print(f"{'':36}{'CPU us/call':>12}{'calls/s':>10}   rounds (CPU us/call)")
        base = statistics.median(c for _, c in results["aiohttp alone (AiohttpSender)"])
        for name, rows in results.items():
            cpu = statistics.median(c for _, c in rows)
            rate = statistics.median(r for r, _ in rows)
            print(f"{name:36}{cpu:12.0f}{rate:10.0f}   {', '.join(f'{c:.0f}' for _, c in rows)}"
                  f"   ({cpu / base:.2f}x aiohttp alone)")
    finally:
        twin.stop()
        own.stop()


if __name__ == "__main__":
    main()
