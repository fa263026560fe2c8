"""Benchmark: GROUP_BY_PROFILE resolution per event — threadline's cached resolver vs a Memory
lookup per event, side by side in one run, against the twin adding 100 ms to every Memory call.

- threadline: ``workers.delivery.profiles.ProfileResolver`` (Redis cache, THREADLINE_PROFILE_CACHE_SECONDS
  = 300): the first event of a customer pays a Memory lookup, the rest read Redis;
- baseline: ``POST /v1/Stores/{id}/Profiles/Lookup`` for every event (what resolution costs
  without a cache: Orchestrator's behaviour as far as a client can tell);
- local: the local profile directory (no Memory store), for scale.

N events over M customers (each already has a Memory profile), resolved 16 at a time (the
drain's lanes run concurrently). Prints events/s of each, the ratio, and the Memory lookups the
twin counted. Takes a free Redis DB (1–15) with the test suite's lock key; empties it after.

    .venv/bin/python bench/profiles.py [--events 2000] [--customers 50] [--baseline-events 400]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402
from workers.delivery.profiles import ProfileResolver, resolver_for  # noqa: E402
from workers.foundations.settings import load_settings  # noqa: E402
from workers.twilio.client import V2Client  # noqa: E402
from workers.twilio.memory import MemoryClient  # noqa: E402

ACCOUNT = "AC" + "c" * 32
TOKEN = "bench-token"
LATENCY_MS = 100
CONCURRENCY = 16


def customers(m: int) -> list[str]:
    return [f"+1555300{i:04d}" for i in range(m)]


def lookups(twin: httpx.Client) -> int:
    routes = twin.get("/_twin/counts").json()["routes"]
    return sum(n for route, by in routes.items() if "Lookup" in route for n in by.values())


async def timed(n: int, people: list[str], resolve) -> float:
    """events/s resolving ``n`` events (customers round-robin), CONCURRENCY at a time."""
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with sem:
            await resolve(people[i % len(people)])
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def run(url: str, settings, store: str, args) -> dict[str, float]:
    r = aioredis.Redis.from_url(url)
    v2 = V2Client(settings)
    try:
        people = customers(args.customers)
        cached = resolver_for(r, v2, settings)
        memory = MemoryClient(v2)
        local = ProfileResolver(r, None)
        return {
            "threadline": await timed(args.events, people,
                                      lambda c: cached.resolve("bench", store, "SMS", c)),
            "baseline": await timed(args.baseline_events, people,
                                    lambda c: memory.lookup(store, "phone", c)),
            "local": await timed(args.events, people, lambda c: local.resolve("bench", None, "SMS", c)),
        }
    finally:
        await v2.aclose()
        await r.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--customers", type=int, default=50)
    ap.add_argument("--baseline-events", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    client, url, token = take_db()
    port = free_port()
    twin_proc = Proc(["twin", "--port", str(port), "--latency-ms", str(LATENCY_MS)],
                     {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN,
                      "THREADLINE_TWILIO_BASE_URL": ""},
                     ready_url=f"http://127.0.0.1:{port}/_twin/healthz")
    settings = load_settings(redis_url=url, twilio_base_url=f"http://127.0.0.1:{port}",
                             twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN,
                             max_inflight=CONCURRENCY, log_level="WARNING")
    try:
        rates: dict[str, list[float]] = {"threadline": [], "baseline": [], "local": []}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(ACCOUNT, TOKEN), timeout=60) as twin:
            for _ in range(args.repeats):
                empty(client)
                twin.post("/_twin/reset").raise_for_status()
                store = twin.post("/_twin/memory/stores", json={}).json()["id"]
                for c in customers(args.customers):
                    twin.post(f"/v1/Stores/{store}/Profiles",
                              json={"traits": {"Contact": {"phone": c}}}).raise_for_status()
                for name, rate in asyncio.run(run(url, settings, store, args)).items():
                    rates[name].append(rate)
                asked = lookups(twin)
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"twin latency {LATENCY_MS} ms per Memory call; {args.customers} customers, "
              f"{CONCURRENCY} resolutions in flight; medians of {args.repeats} runs")
        print(f"baseline (Memory lookup per event, {args.baseline_events} events): {med['baseline']:9.1f} events/s")
        print(f"threadline (cached resolver, {args.events} events):           {med['threadline']:9.1f} events/s")
        print(f"local profile directory (no Memory store):                {med['local']:9.1f} events/s")
        print(f"ratio threadline/baseline: {med['threadline'] / med['baseline']:.1f}x; Memory lookups in "
              f"the last run: {asked} ({args.customers} by threadline, {args.baseline_events} by the baseline)")
    finally:
        twin_proc.stop()
        empty(client)
        release(client, token)


if __name__ == "__main__":
    main()
