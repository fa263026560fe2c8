"""Benchmark: events per second from the event log into v2, threadline's drain vs. the naive design.

Both designs run in this one run, against the same twin adding 100 ms to every API call:

- threadline: N events over M customers are logged (ingress's own append path), then ONE
  ``threadline worker`` process is started; the clock runs from its start until the twin holds
  all N communications.
- naive: one RQ job per event (``bench/naive.py``: a synchronous httpx client, one v2 call in
  flight), on one in-process RQ worker (SimpleWorker, connection reused); same clock.

Then, with that worker still running and every conversation open (steady state), N more
events, one communication each, are appended one webhook per script call and drained; the
bench prints the costs that do not depend on the machine's speed (``bench/costs.py``):

- worker CPU per delivered event (``/proc/<pid>/stat`` utime+stime over the drain / events);
- Redis commands per delivered event in the drain (``INFO commandstats`` deltas, scripts'
  inner calls included) and, apart, per webhook's append;
- Redis's own CPU per event.

Prints both rates and their ratio; targets: ≥ 500 events/s per worker process, ≥ 50× naive;
steady state: worker CPU ≤ 0.6 ms per event, ≤ 8 Redis commands per event in the drain.
Runs on a private ``redis-server`` (so that commandstats counts only this bench's commands).

    .venv/bin/python bench/pipeline.py [--events 6000] [--customers 1500] [--naive-events 150]
        [--steady-events N] [--profile py-spy.svg]

BENCH_BEFORE=<dir of `git archive` of another commit> runs that version's worker instead (its
code first on the worker's PYTHONPATH; this bench and its twin unchanged), so a shell loop that
alternates with and without it measures before and after side by side on a shared machine.
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

from costs import OwnRedis, command_delta, commandstats, cpu_seconds, redis_cpu_seconds  # noqa: E402
from twinsetup import v2_configuration  # noqa: E402  (bench/, this script's folder)

from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402
from workers import eventlog  # noqa: E402
from workers.capture.configuration import parse_configuration  # noqa: E402
from workers.capture.store import ConfigStore  # noqa: E402
from workers.eventlog.entries import MESSAGE, LogEntry, dedupe_key, shard_of  # noqa: E402
from workers.eventlog.writer import DRAIN_JOB  # noqa: E402
from workers.foundations import keys  # noqa: E402
from workers.foundations.settings import load_settings  # noqa: E402

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


class Stalled(SystemExit):
    """Delivery stopped short of ``want``: ``comms`` arrived, the last at ``last`` (monotonic)."""

    def __init__(self, message: str, comms: int, last: float) -> None:
        super().__init__(message)
        self.comms, self.last = comms, last


def wait_comms(twin: httpx.Client, want: int, timeout: float, spawned: float) -> Timing:
    """Poll the twin every 20 ms until it holds ``want`` communications."""
    timeout = float(os.environ.get("BENCH_TIMEOUT", timeout))
    calls_before = counts(twin)[1]
    first, seen, last = None, -1, spawned
    while True:
        comms, calls = counts(twin)
        now = time.monotonic()
        if first is None and calls > calls_before:
            first = now
        if comms != seen:
            seen, last = comms, now
        if comms >= want:
            return Timing(0, spawned, first or now, now)
        if now - spawned > timeout:
            raise Stalled(f"only {comms}/{want} communications after {timeout}s", comms, last)
        time.sleep(0.02)


@dataclass
class Steady:
    """The steady-state phase: costs per delivered event with every conversation open."""

    events: int
    seconds: float
    worker_cpu_s: float
    redis_cpu_s: float
    drain_commands: dict[str, int]
    append_commands: dict[str, int]
    appended: int = 0  # events appended (``events`` were delivered: fewer if the phase stalled)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.worker_cpu_s * 1000 / self.events

    @property
    def drain_per_event(self) -> float:
        return sum(self.drain_commands.values()) / self.events

    @property
    def append_per_event(self) -> float:
        return sum(self.append_commands.values()) / (self.appended or self.events)


def items_for(evs: list[dict[str, str]]) -> list:
    now = int(time.time() * 1000)
    return [(LogEntry(MESSAGE, now, ACCOUNT, p), dedupe_key(MESSAGE, p), shard_of(MESSAGE, p, 16)) for p in evs]


def run_steady(client, worker: Proc, twin, settings, n: int, m: int, profile: str | None) -> Steady:
    """N more events over the same M customers (their conversations open), each appended as a
    lone webhook (one script call), then drained by the running worker."""
    from rq import Queue

    items = items_for(events(n, m))
    before = comm_count(twin)
    c0 = commandstats(client)
    for item in items:
        eventlog.append_many(client, [item], settings)
    c1 = commandstats(client)
    spy = None
    if profile:
        fmt = "flamegraph" if profile.endswith(".svg") else "raw"  # raw: collapsed stacks, text
        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                                str(worker.popen.pid), "--rate", "250", "--format", fmt,
                                "--output", profile, "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    cpu0, rcpu0 = cpu_seconds(worker.popen.pid), redis_cpu_seconds(client)
    start = time.monotonic()
    q = Queue(keys.QUEUE, connection=client)
    # Every shard, as a worker's start-up sweep does (extra drains give up at once): a drain
    # flag left set by the first phase would otherwise strand a shard in this bench, which
    # runs no scheduler to re-trigger it.
    for shard in range(settings.shards):
        q.enqueue(DRAIN_JOB, shard, result_ttl=0, description=f"drain shard {shard}")
    try:
        timing = wait_comms(twin, before + n, timeout=600, spawned=start)
        delivered, end = n, timing.end
    except Stalled as stall:  # a drain left entries behind (no scheduler runs here to re-trigger it)
        delivered, end = stall.comms - before, stall.last
        print(f"steady phase stalled: {delivered}/{n} delivered; costs are over those", file=sys.stderr)
    polls = settle(client, settings.shards)
    cpu1, rcpu1 = cpu_seconds(worker.popen.pid), redis_cpu_seconds(client)
    c2 = commandstats(client)
    drain = command_delta(c1, c2)
    drain["xlen"] = drain.get("xlen", 0) - polls  # the bench's own
    if spy is not None:
        spy.send_signal(2)
        spy.wait(30)
    return Steady(delivered, end - start, cpu1 - cpu0, rcpu1 - rcpu0,
                  drain, command_delta(c0, c1), n)


def settle(client, shards: int, timeout: float = 10.0) -> int:
    """Wait until every shard's log is empty: the twin holds the last communication before the
    drain has sent that lane's writes and acknowledged it, and those commands (and that CPU)
    belong to the events delivered. Bounded: a stalled shard is reported by the caller.
    Returns how many XLEN commands it sent (the caller takes them out of the drain's count)."""
    deadline, sent = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        sent += shards
        if not sum(client.xlen(keys.events(n)) for n in range(shards)):
            break
        time.sleep(0.05)
    return sent


def run_threadline(client, env, twin, twilio_cfg, n: int, m: int, steady_n: int = 0,
                   profile: str | None = None) -> tuple[Timing, Steady | None]:
    settings = load_settings(redis_url=env["REDIS_URL"], shards=16)
    ConfigStore(client).put(parse_configuration({
        "id": "bench", "displayName": "bench", "description": "bench",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
        "twilioConfigurationId": twilio_cfg,
        "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": OURS}, {"from": OURS, "to": "*"}]}}}))
    items = items_for(events(n, m))
    eventlog.append_many(client, items, settings)  # the worker's start-up sweep enqueues every shard
    before = comm_count(twin)
    start = time.monotonic()
    before_code = os.environ.get("BENCH_BEFORE")
    worker = Proc(["worker"], {**env, "PYTHONPATH": before_code} if before_code else env)
    steady = None
    try:
        timing = wait_comms(twin, before + n, timeout=600, spawned=start)
        timing.events = n
        routes = twin.get("/_twin/counts").json()["routes"]
        print("v2 calls:", {r: c for r, c in routes.items() if "Configurations" not in r and "Operations" not in r})
        if steady_n:
            time.sleep(1.0)  # the first drains' jobs end and the worker is idle
            steady = run_steady(client, worker, twin, settings, steady_n, m, profile)
            routes = twin.get("/_twin/counts").json()["routes"]
            print("v2 calls after the steady phase:",
                  {r: c for r, c in routes.items() if "Configurations" not in r and "Operations" not in r})
            if os.environ.get("BENCH_WORKER_LOG"):
                print("worker log:", worker.log_path, file=sys.stderr)
    except SystemExit:
        print(worker.output()[-6000:], file=sys.stderr)
        raise
    finally:
        worker.stop()
    return timing, steady


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
    ap.add_argument("--steady-events", type=int, default=None,
                    help="events of the steady-state phase (default: --events; 0 skips it)")
    ap.add_argument("--profile", default=None,
                    help="py-spy the worker in the steady phase (.svg: flame graph; else raw stacks)")
    ap.add_argument("--shared-redis", action="store_true",
                    help="use REDIS_URL's server (commandstats then count other clients too)")
    args = ap.parse_args()
    steady_n = args.events if args.steady_events is None else args.steady_events

    own = None if args.shared_redis else OwnRedis()
    client, url, token = take_db(own.url if own else None)
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
            ours, steady = run_threadline(client, env, twin, cfg, args.events, args.customers, steady_n,
                                          args.profile)
        print(f"twin latency {LATENCY_MS} ms per call; threadline {args.events} events over "
              f"{args.customers} customers, naive {args.naive_events} events; "
              f"machine {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
              f"worker code: {os.environ.get('BENCH_BEFORE') or 'this checkout'}")
        print(f"{'':44}{'events/s':>10}{'start-up s':>12}{'processing events/s':>21}")
        rows = [("naive (one RQ job per event, sync client)", naive), ("threadline (one worker process)", ours)]
        for name, t in rows:
            if t is not None:
                print(f"{name:44}{t.rate:10.1f}{t.startup_s:12.2f}{t.processing_rate:21.1f}")
        if naive is not None:
            print(f"ratio: {ours.rate / naive.rate:.1f}x end to end, "
                  f"{ours.processing_rate / naive.processing_rate:.1f}x processing "
                  "(targets: >= 500 events/s per worker process, >= 50x)")
        if steady is not None:
            print_steady(steady)
    finally:
        twin_proc.stop()
        empty(client)
        release(client, token)
        if own is not None:
            own.stop()


def print_steady(s: Steady) -> None:
    if not s.events:
        print(f"steady state: STALLED, none of {s.appended} events delivered (no costs to print)")
        return
    stalled = f" (STALLED: {s.events} of {s.appended} delivered)" if s.events < s.appended else ""
    print(f"steady state ({s.events} events, conversations open, one communication each){stalled}: "
          f"{s.rate:.1f} events/s")
    print(f"  worker CPU per delivered event   {s.cpu_ms:7.3f} ms   (target <= 0.6 ms)")
    print(f"  Redis commands per event, drain  {s.drain_per_event:7.2f}      (target <= 8)")
    print(f"  Redis commands per webhook append{s.append_per_event:7.2f}      (one script call per webhook)")
    print(f"  Redis CPU per event              {s.redis_cpu_s * 1e6 / s.events:7.1f} us")
    top = sorted(s.drain_commands.items(), key=lambda kv: -kv[1])
    print("  drain commands per event:", ", ".join(f"{k} {v / s.events:.2f}" for k, v in top if v / s.events >= 0.01))


if __name__ == "__main__":
    main()
