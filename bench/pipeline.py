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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from tests.redisdb import empty, release, take_db  # noqa: E402
from twinsetup import v2_configuration  # noqa: E402  (bench/, this script's folder)
from tests.procs import Proc, free_port  # noqa: E402
from workers import eventlog  # noqa: E402
from workers.configs import parse_configuration  # noqa: E402
from workers.configstore import ConfigStore  # noqa: E402
from workers.events import MESSAGE, LogEntry, dedupe_key, shard_of  # noqa: E402
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
    routes = twin.get("/_twin/counts").json()["routes"]
    return routes.get("POST /v2/Conversations/{ConversationId}/Communications", {}).get("201", 0)


def wait_comms(twin: httpx.Client, want: int, timeout: float) -> float:
    timeout = float(os.environ.get("BENCH_TIMEOUT", timeout))
    start = time.monotonic()
    while comm_count(twin) < want:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"only {comm_count(twin)}/{want} communications after {timeout}s")
        time.sleep(0.05)
    return time.monotonic()


def run_threadline(client, env, twin, twilio_cfg, n: int, m: int) -> float:
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
        end = wait_comms(twin, before + n, timeout=600)
    except SystemExit:
        print(worker.output()[-6000:], file=sys.stderr)
        raise
    finally:
        worker.stop()
    routes = twin.get("/_twin/counts").json()["routes"]
    print("v2 calls:", {r: c for r, c in routes.items() if "Configurations" not in r and "Operations" not in r})
    return n / (end - start)


def run_naive(client, env, twin, twilio_cfg, n: int, m: int) -> float:
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
    end = wait_comms(twin, before + n, timeout=600)
    proc.wait(60)
    return n / (end - start)


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
                     if args.naive_events else float("nan"))
            empty(client)
            ours = run_threadline(client, env, twin, cfg, args.events, args.customers)
        print(f"twin latency {LATENCY_MS} ms per call; threadline {args.events} events over "
              f"{args.customers} customers, naive {args.naive_events} events")
        print(f"naive (one RQ job per event, sync client):  {naive:8.1f} events/s")
        print(f"threadline (one worker process):            {ours:8.1f} events/s")
        print(f"ratio: {ours / naive:.1f}x   (targets: >= 500 events/s, >= 50x)")
    finally:
        twin_proc.stop()
        empty(client)
        release(client, token)


if __name__ == "__main__":
    main()
