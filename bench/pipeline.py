"""Benchmark: events per second from the event log into v2, threadline's drain vs. the naive design.

Both designs run in this one run, against the same twin adding 100 ms to every API call:

- threadline: N events over M customers are logged (ingress's own append path), then ONE
  ``threadline worker`` process is started; the clock runs from its start until the twin holds
  all N communications.
- naive: one RQ job per event (``bench/naive.py``: a synchronous httpx client, one v2 call in
  flight), on one in-process RQ worker (SimpleWorker, connection reused); same clock.

Prints both rates and their ratio; targets: ≥ 500 events/s per worker process, ≥ 50× naive.
Takes a free Redis DB (1–15) with the test suite's lock key, and empties it afterwards.

    .venv/bin/python bench/pipeline.py [--events 6000] [--customers 1500] [--naive-events 150]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from twinsetup import v2_configuration  # noqa: E402  (bench/, this script's folder)

from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402
from workers import eventlog  # noqa: E402
from workers.capture.configuration import parse_configuration  # noqa: E402
from workers.capture.store import ConfigStore  # noqa: E402
from workers.eventlog.entries import MESSAGE, LogEntry, dedupe_key, shard_of  # noqa: E402
from workers.settings import load_settings  # noqa: E402

ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-token"
OURS = "+14155550100"
LATENCY_MS = 100


def params(customer: str, n: int) -> dict[str, str]:
    sid = "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT, "From": customer, "To": OURS,
            "Body": f"message {n} from {customer}", "NumMedia": "0", "SmsStatus": "received"}


def events(count: int, customers: int) -> list[dict[str, str]]:
    people = [f"+1415{5000000 + i:07d}" for i in range(customers)]
    return [params(people[i % customers], i // customers) for i in range(count)]


def comm_count(twin: httpx.Client) -> int:
    return counts(twin)[0]


def counts(twin: httpx.Client) -> tuple[int, int]:
    """(communications created, all v2 calls answered) so far."""
    routes = twin.get("/_twin/counts").json()["routes"]
    comms = routes.get("POST /v2/Conversations/{ConversationId}/Communications", {}).get("201", 0)
    calls = sum(n for route, by_status in routes.items() if route.startswith(("POST /v2/Conv", "PATCH /v2/Conv"))
                for n in by_status.values())
    return comms, calls


@dataclass
class Timing:
    """One design's run: spawn → first v2 call answered (interpreter and worker start-up) and
    first call → all N communications (processing). Both designs are separate processes
    started the same way, so both pay their start-up; it is reported apart from processing
    because it is paid once per process, not per event."""

    events: int
    spawned: float
    first_call: float
    end: float

    @property
    def rate(self) -> float:  # end to end, start-up included
        return self.events / (self.end - self.spawned)

    @property
    def processing_rate(self) -> float:
        return self.events / (self.end - self.first_call)

    @property
    def startup_s(self) -> float:
        return self.first_call - self.spawned


def wait_comms(twin: httpx.Client, want: int, timeout: float, spawned: float) -> Timing:
    """Poll the twin every 20 ms until it holds ``want`` communications."""
    timeout = float(os.environ.get("BENCH_TIMEOUT", timeout))
    calls_before = counts(twin)[1]
    first = None
    while True:
        comms, calls = counts(twin)
        now = time.monotonic()
        if first is None and calls > calls_before:
            first = now
        if comms >= want:
            return Timing(0, spawned, first or now, now)
        if now - spawned > timeout:
            raise SystemExit(f"only {comms}/{want} communications after {timeout}s")
        time.sleep(0.02)


def run_threadline(client, env, twin, twilio_cfg, n: int, m: int) -> Timing:
    settings = load_settings(redis_url=env["REDIS_URL"], shards=16)
    ConfigStore(client).put(parse_configuration({
        "id": "bench", "displayName": "bench", "description": "bench",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
        "twilioConfigurationId": twilio_cfg,
        "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": OURS}, {"from": OURS, "to": "*"}]}}}))
    now = int(time.time() * 1000)
    items = [(LogEntry(MESSAGE, now, ACCOUNT, p), dedupe_key(MESSAGE, p), shard_of(MESSAGE, p, 16))
             for p in events(n, m)]
    eventlog.append_many(client, items, settings)  # the worker's start-up sweep enqueues every shard
    before = comm_count(twin)
    start = time.monotonic()
    worker = Proc(["worker"], env)
    try:
        timing = wait_comms(twin, before + n, timeout=600, spawned=start)
    except SystemExit:
        print(worker.output()[-6000:], file=sys.stderr)
        raise
    finally:
        worker.stop()
    routes = twin.get("/_twin/counts").json()["routes"]
    print("v2 calls:", {r: c for r, c in routes.items() if "Configurations" not in r and "Operations" not in r})
    timing.events = n
    return timing


def run_naive(client, env, twin, twilio_cfg, n: int, m: int) -> Timing:
    from rq import Queue

    q = Queue("naive", connection=client)
    for p in events(n, m):
        q.enqueue("naive.deliver_one", p, twilio_cfg, result_ttl=0)
    before = comm_count(twin)
    code = ("from rq import Queue, SimpleWorker; import redis, os; "
            "c = redis.Redis.from_url(os.environ['REDIS_URL']); "
            "SimpleWorker([Queue('naive', connection=c)], connection=c).work(burst=True, logging_level='WARNING')")
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], env={
        **env, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timing = wait_comms(twin, before + n, timeout=600, spawned=start)
    proc.wait(60)
    timing.events = n
    return timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--customers", type=int, default=1500)
    ap.add_argument("--naive-events", type=int, default=150, help="0 skips the naive run")
    args = ap.parse_args()

    client, url, token = take_db()
    port = free_port()
    twin_proc = Proc(["twin", "--port", str(port), "--latency-ms", str(LATENCY_MS)],
                     {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "THREADLINE_TWILIO_BASE_URL": ""},
                     ready_url=f"http://127.0.0.1:{port}/_twin/healthz")
    env = {"REDIS_URL": url, "THREADLINE_TWILIO_BASE_URL": f"http://127.0.0.1:{port}",
           "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "THREADLINE_SHARDS": "16",
           "THREADLINE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}
    try:
        empty(client)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(ACCOUNT, TOKEN), timeout=30) as twin:
            cfg = v2_configuration(twin)
            naive = (run_naive(client, env, twin, cfg, args.naive_events, max(1, args.naive_events // 4))
                     if args.naive_events else None)
            empty(client)
            ours = run_threadline(client, env, twin, cfg, args.events, args.customers)
        print(f"twin latency {LATENCY_MS} ms per call; threadline {args.events} events over "
              f"{args.customers} customers, naive {args.naive_events} events; "
              f"machine {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        print(f"{'':44}{'events/s':>10}{'start-up s':>12}{'processing events/s':>21}")
        rows = [("naive (one RQ job per event, sync client)", naive), ("threadline (one worker process)", ours)]
        for name, t in rows:
            if t is not None:
                print(f"{name:44}{t.rate:10.1f}{t.startup_s:12.2f}{t.processing_rate:21.1f}")
        if naive is not None:
            print(f"ratio: {ours.rate / naive.rate:.1f}x end to end, "
                  f"{ours.processing_rate / naive.processing_rate:.1f}x processing "
                  "(targets: >= 500 events/s per worker process, >= 50x)")
    finally:
        twin_proc.stop()
        empty(client)
        release(client, token)


if __name__ == "__main__":
    main()
