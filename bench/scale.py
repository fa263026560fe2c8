"""Benchmark: the scale curve — 1, 2 and 4 worker processes against an account concurrency limit.

The twin adds ``--latency-ms`` (100) to every call and refuses with Twilio's 429 (20429) any
request beyond ``--max-concurrent`` (100) in flight, as an account's concurrency limit does.
First M customers' conversations are opened (one event each, one worker), so every run below
is steady state: N events, one communication each, appended through ingress's append (script
calls of up to 128 deliveries), then W workers started together; the clock runs from the
first v2 call to the last communication. Per W it prints events/s, the 429s as a share of
calls, worker CPU per event (``/proc`` of every worker), Redis commands/s and per event
(``INFO commandstats``), and Redis's own CPU per event.

Redis's ceiling for this mix, measured in the same run two ways: (1) from its CPU per event
(Redis runs commands on one thread: one core / CPU per event), (2) ``redis-benchmark``'s
unpipelined commands/s on the same server divided by the commands per event. Both are
printed as the events/s at which one Redis would saturate. Runs on a private redis-server.

    .venv/bin/python bench/scale.py [--events 3000] [--customers 500] [--workers 1,2,4]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from costs import OwnRedis, command_delta, commandstats, cpu_seconds, redis_cpu_seconds  # noqa: E402
from pipeline import ACCOUNT, OURS, TOKEN, counts, events, items_for  # noqa: E402
from twinsetup import v2_configuration  # noqa: E402

from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import take_db  # noqa: E402
from workers import eventlog  # noqa: E402
from workers.capture.configuration import parse_configuration  # noqa: E402
from workers.capture.store import ConfigStore  # noqa: E402
from workers.foundations.settings import load_settings  # noqa: E402


def four_twenty_nines(twin: httpx.Client) -> int:
    routes = twin.get("/_twin/counts").json()["routes"]
    return sum(by.get("429", 0) for by in routes.values())


def wait(twin, want: int, timeout: float, workers: list[Proc]) -> tuple[float, float, float]:
    """(first v2 call, last communication) as monotonic times, and the workers' CPU seconds
    from the first call on (their start-up is not the events' cost)."""
    calls0 = counts(twin)[1]
    start, first, cpu0 = time.monotonic(), None, 0.0
    while True:
        comms, calls = counts(twin)
        now = time.monotonic()
        if first is None and calls > calls0:
            first, cpu0 = now, sum(cpu_seconds(w.popen.pid) for w in workers)
        if comms >= want:
            return first or now, now, sum(cpu_seconds(w.popen.pid) for w in workers) - cpu0
        if now - start > timeout:
            for w in workers:
                print(w.output()[-3000:], file=sys.stderr)
            raise SystemExit(f"only {comms}/{want} communications after {timeout}s")
        time.sleep(0.02)


def redis_benchmark(port: int) -> float:
    """Unpipelined commands/s of a few of the mix's commands (50 clients), median of them."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return float("nan")
    out = subprocess.run([exe, "-p", str(port), "-n", "100000", "-c", "50", "-q", "-t", "set,get,hset,lpush,incr"],
                         capture_output=True, text=True, timeout=300).stdout
    rates = sorted(float(m) for m in re.findall(r"([\d.]+) requests per second", out))
    return rates[len(rates) // 2] if rates else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--customers", type=int, default=500)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--max-concurrent", type=int, default=100)
    ap.add_argument("--latency-ms", type=float, default=100)
    ap.add_argument("--inflight", type=int, default=None, help="THREADLINE_MAX_INFLIGHT per worker (default 128)")
    args = ap.parse_args()
    timeout = float(os.environ.get("BENCH_TIMEOUT", 600))

    own = OwnRedis()
    client, url, _ = take_db(own.url)
    port = free_port()
    twin_proc = Proc(["twin", "--port", str(port), "--latency-ms", str(args.latency_ms),
                      "--max-concurrent", str(args.max_concurrent)],
                     {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "THREADLINE_TWILIO_BASE_URL": ""},
                     ready_url=f"http://127.0.0.1:{port}/_twin/healthz")
    env = {"REDIS_URL": url, "THREADLINE_TWILIO_BASE_URL": f"http://127.0.0.1:{port}",
           "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "THREADLINE_SHARDS": "16",
           "THREADLINE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}
    if args.inflight:
        env["THREADLINE_MAX_INFLIGHT"] = str(args.inflight)
    settings = load_settings(redis_url=url, shards=16)
    rows = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(ACCOUNT, TOKEN), timeout=30) as twin:
            ConfigStore(client).put(parse_configuration({
                "id": "bench", "displayName": "bench", "description": "bench",
                "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
                "twilioConfigurationId": v2_configuration(twin),
                "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": OURS}, {"from": OURS, "to": "*"}]}}}))
            # Open every customer's conversation first: the runs below are steady state.
            eventlog.append_many(client, items_for(events(args.customers, args.customers)), settings)
            want = counts(twin)[0] + args.customers
            warm = Proc(["worker"], env)
            wait(twin, want, timeout, [warm])
            warm.stop()
            for w in (int(x) for x in args.workers.split(",")):
                eventlog.append_many(client, items_for(events(args.events, args.customers)), settings)
                want = counts(twin)[0] + args.events
                c0, r0, n0 = commandstats(client), redis_cpu_seconds(client), four_twenty_nines(twin)
                calls0 = counts(twin)[1]
                workers = [Proc(["worker"], env) for _ in range(w)]
                first, end, cpu = wait(twin, want, timeout, workers)
                c1, r1 = commandstats(client), redis_cpu_seconds(client)
                n429, calls = four_twenty_nines(twin) - n0, counts(twin)[1] - calls0
                for p in workers:
                    p.stop()
                cmds = sum(command_delta(c0, c1).values())
                secs = end - first
                rows.append((w, args.events / secs, n429, calls, cpu / args.events * 1000, cmds / secs,
                             cmds / args.events, (r1 - r0) / args.events))
            bench_rate = redis_benchmark(own.port)
        print(f"twin: {args.latency_ms:g} ms per call, --max-concurrent {args.max_concurrent}; {args.events} events "
              f"over {args.customers} open conversations per run; machine {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'workers':>7}{'events/s':>10}{'429s':>7}{'of calls':>10}{'CPU ms/ev':>11}"
              f"{'Redis cmd/s':>13}{'cmd/ev':>8}{'Redis us/ev':>13}")
        for w, rate, n429, calls, cpu_ms, cps, cpe, rcpu in rows:
            print(f"{w:7d}{rate:10.1f}{n429:7d}{100 * n429 / max(calls, 1):9.1f}%{cpu_ms:11.3f}"
                  f"{cps:13.0f}{cpe:8.2f}{rcpu * 1e6:13.1f}")
        cpe = sorted(r[6] for r in rows)[len(rows) // 2]
        rcpu = sorted(r[7] for r in rows)[len(rows) // 2]
        print("CPU ms/ev: every worker's CPU (user+sys) over the run / events; cmd/ev: the drain's commands and "
              "RQ's (the append is apart)")
        print(f"one Redis saturates at ~{1 / rcpu:,.0f} events/s (one core / {rcpu * 1e6:.1f} us of Redis CPU "
              f"per event), or ~{bench_rate / cpe:,.0f} events/s (redis-benchmark {bench_rate:,.0f} "
              f"unpipelined commands/s / {cpe:.2f} commands per event)")
        print("the webhook append is apart: bench/pipeline.py prints its commands per webhook")
    finally:
        twin_proc.stop()
        own.stop()


if __name__ == "__main__":
    main()
