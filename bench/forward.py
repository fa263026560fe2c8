"""Forwarding: the latency threadline's relay adds over the operator's application, side by side.

What runs
- The operator's application: tests/operator_app.py in a process of its own (uvicorn), which
  checks every request's X-Twilio-Signature and answers TwiML after APP_MS of its own work.
- ``threadline web`` (one uvicorn process) on real Redis, with the application recorded as
  the upstream of one number (as ``connect --forward`` records it): every webhook is checked,
  logged (the append script) and relayed to the application with a recomputed signature.
- The load: signed inbound-message webhooks, each with its own MessageSid, at RATE per second
  *per path*, open loop (each request starts at its scheduled time, whatever the others do),
  interleaved: one straight to the application (signed for its URL, as Twilio would without
  threadline), the next through threadline (signed for threadline's public URL). So both paths
  see the same machine at the same moment, and the difference is the relay's.

What is printed, per round and as the median of ROUNDS rounds: p50 and p99 of each path, the
added latency (through − direct) at those quantiles, and the CPU time the web process spent
per relayed webhook next to the application's CPU per request (from /proc: unlike latency,
CPU time does not grow much when other processes crowd the machine, so it is the relay's own
cost), and the difference of the two paths' fastest requests (what the relay adds when no
process waits for a CPU).
Every answer must be the application's TwiML (a 502 or a bad signature fails the run).

Takes a free Redis DB (1–15) with the test suite's lock key and empties it afterwards.
Run: ``.venv/bin/python bench/forward.py`` (env: BENCH_RATE, BENCH_SECONDS, BENCH_ROUNDS, BENCH_APP_MS).
"""
from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
THREADLINE = str(Path(sys.executable).with_name("threadline"))
sys.path.insert(0, str(ROOT))

from tests.operator_app import SMS_TWIML  # noqa: E402
from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402
from workers.twilio import upstreams  # noqa: E402
from workers.twilio.upstreams import Upstream  # noqa: E402

ACCOUNT_SID = "AC9af211329b2fc82e5efe906062c73008"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://capture.example.com"
PATH = "/webhooks/twilio/messaging"
NUMBER = "+15550100001"
RATE = float(os.environ.get("BENCH_RATE", "20"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
APP_MS = float(os.environ.get("BENCH_APP_MS", "10"))
VALIDATOR = RequestValidator(AUTH_TOKEN)


def _delivery(url: str) -> tuple[bytes, str]:
    sid = "SM" + uuid.uuid4().hex
    params = {"ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid,
              "SmsStatus": "received", "Body": "Where is my order?", "To": NUMBER,
              "NumSegments": "1", "MessageSid": sid, "AccountSid": ACCOUNT_SID,
              "From": "+1555" + str(uuid.uuid4().int)[:7], "ApiVersion": "2010-04-01"}
    return urlencode(params).encode(), VALIDATOR.compute_signature(url, params)


def cpu_ms(pid: int) -> float:
    """User + system CPU time of a process so far, in milliseconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(session: aiohttp.ClientSession, target: str, body: bytes, signature: str,
               out: list[float]) -> None:
    started = time.perf_counter()
    async with session.post(target, data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}) as r:
        content = await r.read()
    if r.status != 200 or content != SMS_TWIML:
        raise SystemExit(f"bench: {target} answered {r.status}: {content[:200]!r}")
    out.append((time.perf_counter() - started) * 1000)


async def _round(app_url: str, web_url: str) -> tuple[list[float], list[float]]:
    direct: list[float] = []
    through: list[float] = []
    n = int(RATE * SECONDS)
    # Signed ahead of time, so the load generator's own CPU is not in the measurement.
    plan = []
    for i in range(n):
        plan.append((app_url + "/sms", *_delivery(app_url + "/sms"), direct, 2 * i))
        plan.append((web_url + PATH, *_delivery(PUBLIC_URL + PATH), through, 2 * i + 1))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        t0 = time.perf_counter() + 0.1
        for target, body, sig, out, slot in plan:
            delay = t0 + slot / (2 * RATE) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, target, body, sig, out)))
        await asyncio.gather(*tasks)
    # The first second warms connections up on both paths: left out of both.
    warm = int(RATE)
    return direct[warm:], through[warm:]


def main() -> int:
    client, redis_url, token = take_db()
    empty(client)
    app_port, web_port = free_port(), free_port()
    app = subprocess.Popen([sys.executable, "-m", "tests.operator_app", str(app_port), str(APP_MS)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    app_url = f"http://127.0.0.1:{app_port}"
    upstreams.record(client, Upstream(NUMBER, "PN" + "0" * 32, ACCOUNT_SID, {
        "SmsUrl": app_url + "/sms", "SmsMethod": "POST", "VoiceUrl": "", "VoiceMethod": "POST",
        "StatusCallback": "", "StatusCallbackMethod": "POST"}))
    env = {"REDIS_URL": redis_url, "THREADLINE_PUBLIC_URL": PUBLIC_URL, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "THREADLINE_LOG_LEVEL": "WARNING",
           # As the test fixtures: the shared Redis keeps nothing (bench/ingress.py measures durability).
           "THREADLINE_ACK_DURABILITY": "none"}
    web = Proc(["web", "--port", str(web_port)], env, ready_url=f"http://127.0.0.1:{web_port}/healthz")
    try:
        _wait(app_url)
        print(f"forwarding: {RATE:g}/s per path for {SECONDS:g}s, {ROUNDS} rounds, the application's "
              f"own time {APP_MS:g} ms; latencies in ms")
        print(f"{'round':>5} {'direct p50':>10} {'p99':>7} {'through p50':>11} {'p99':>7} "
              f"{'added p50':>9} {'added p99':>9} {'web CPU/req':>11} {'app CPU/req':>11} {'added min':>9}")
        rows = []
        for r in range(ROUNDS):
            web_cpu, app_cpu = cpu_ms(web.popen.pid), cpu_ms(app.pid)
            direct, through = asyncio.run(_round(app_url, f"http://127.0.0.1:{web_port}"))
            n = int(RATE * SECONDS)
            web_cpu, app_cpu = (cpu_ms(web.popen.pid) - web_cpu) / n, (cpu_ms(app.pid) - app_cpu) / (2 * n)
            row = (quantile(direct, 0.5), quantile(direct, 0.99), quantile(through, 0.5),
                   quantile(through, 0.99))
            row += (row[2] - row[0], row[3] - row[1], web_cpu, app_cpu, min(through) - min(direct))
            rows.append(row)
            print(f"{r + 1:>5} {row[0]:>10.2f} {row[1]:>7.2f} {row[2]:>11.2f} {row[3]:>7.2f} "
                  f"{row[4]:>9.2f} {row[5]:>9.2f} {row[6]:>11.2f} {row[7]:>11.2f} {row[8]:>9.2f}")
        med = [statistics.median(col) for col in zip(*rows)]
        print(f"{'median':>6}{med[0]:>10.2f} {med[1]:>7.2f} {med[2]:>11.2f} {med[3]:>7.2f} "
              f"{med[4]:>9.2f} {med[5]:>9.2f} {med[6]:>11.2f} {med[7]:>11.2f} {med[8]:>9.2f}")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        web.stop()
        app.terminate()
        app.wait(10)
        empty(client)
        release(client, token)
    return 0


def _wait(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("bench: the operator's application did not start")


if __name__ == "__main__":
    sys.exit(main())
