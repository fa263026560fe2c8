"""How fast the twin plays traffic: simulated inbound messages → signed webhooks, into
``threadline web`` and into a bare Starlette endpoint, side by side in one run.

What runs
- ``threadline twin`` (one process), with a number whose ``SmsUrl`` is set per round.
- ``threadline web`` (one process, real Redis, no THREADLINE_PUBLIC_URL so the twin's signature
  over http://127.0.0.1:port/… is the one checked): signature, parsing, the append script.
- The yardstick: a bare Starlette app under the same uvicorn settings answering ``<Response/>``.

What is measured (medians of ROUNDS alternating rounds, N messages each)
- wall ms per webhook: from the first ``POST /_twin/simulate/message`` to the N-th delivery
  recorded in ``/_twin/state`` (the simulate calls are sent back to back; the twin sends the
  webhooks concurrently, one task per message), divided by N;
- the twin's own per-attempt round trip (``duration_ms`` of each delivery record): p50, p99.
Every delivery must be answered 200, or the run fails.

Takes a free Redis DB (1–15) with the test suite's lock key and empties it afterwards.
Run: ``.venv/bin/python bench/twin_traffic.py`` (BENCH_MESSAGES, BENCH_ROUNDS to change N, rounds).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402

ACCOUNT_SID = "AC9af211329b2fc82e5efe906062c73008"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
OURS = "+14155550100"
N = int(os.environ.get("BENCH_MESSAGES", "300"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

BARE_APP = textwrap.dedent("""
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def ok(request):
        return Response(b"<Response/>", media_type="text/xml")

    app = Starlette(routes=[Route("/webhooks/twilio/messaging", ok, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
""")


def one_round(control: httpx.Client, api: httpx.Client, target: str) -> tuple[float, list[int]]:
    control.post("/reset").raise_for_status()
    number = control.post("/numbers", json={"phoneNumber": OURS}).json()
    api.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{number['sid']}.json",
             data={"SmsUrl": target + "/webhooks/twilio/messaging"}).raise_for_status()
    started = time.perf_counter()
    for i in range(N):
        r = control.post("/simulate/message", json={"from": f"+1415556{i % 10000:04d}",
                                                    "to": OURS, "body": f"bench {i}"})
        r.raise_for_status()
    while True:
        deliveries = control.get("/state").json()["deliveries"]
        if len(deliveries) >= N:
            break
        time.sleep(0.01)
    wall = time.perf_counter() - started
    bad = [d for d in deliveries if d.get("status") != 200]
    if bad:
        raise SystemExit(f"{len(bad)} deliveries not answered 200, e.g. {bad[0]}")
    return wall * 1000 / N, [d["duration_ms"] for d in deliveries]


def main() -> None:
    client, redis_url, token = take_db()
    empty(client)
    creds = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    twin_port, web_port, bare_port = free_port(), free_port(), free_port()
    twin = Proc(["twin", "--port", str(twin_port)], {**creds, "THREADLINE_TWILIO_BASE_URL": ""},
                ready_url=f"http://127.0.0.1:{twin_port}/_twin/healthz")
    web = Proc(["web", "--port", str(web_port)],
               {**creds, "REDIS_URL": redis_url, "THREADLINE_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
                "THREADLINE_TWILIO_BASE_URL": f"http://127.0.0.1:{twin_port}",
                "THREADLINE_LOG_LEVEL": "WARNING",
                # the shared Redis (7.0, no AOF) cannot give the default, local
                "THREADLINE_ACK_DURABILITY": "none"},
               ready_url=f"http://127.0.0.1:{web_port}/healthz")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(BARE_APP)
    bare = subprocess.Popen([sys.executable, f.name, str(bare_port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{bare_port}/", timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        targets = {"threadline web": f"http://127.0.0.1:{web_port}",
                   "bare Starlette": f"http://127.0.0.1:{bare_port}"}
        walls: dict[str, list[float]] = {name: [] for name in targets}
        trips: dict[str, list[int]] = {name: [] for name in targets}
        control = httpx.Client(base_url=f"http://127.0.0.1:{twin_port}/_twin", timeout=30)
        api = httpx.Client(base_url=f"http://127.0.0.1:{twin_port}", timeout=30,
                           auth=(ACCOUNT_SID, AUTH_TOKEN))
        for _ in range(ROUNDS):
            for name, url in targets.items():
                per, durations = one_round(control, api, url)
                walls[name].append(per)
                trips[name].extend(durations)
                empty(client)
        print(f"twin → webhook, {N} inbound messages × {ROUNDS} rounds (medians)")
        for name in targets:
            q = statistics.quantiles(trips[name], n=100)
            print(f"  {name:15s} wall {statistics.median(walls[name]):6.2f} ms/webhook   "
                  f"round trip p50 {q[49]:5.1f} ms  p99 {q[98]:6.1f} ms")
        ratio = statistics.median(walls["threadline web"]) / statistics.median(
            walls["bare Starlette"])
        print(f"  ratio threadline web / bare Starlette (wall per webhook): {ratio:.2f}")
    finally:
        bare.terminate()
        bare.wait(5)
        os.unlink(f.name)
        web.stop()
        twin.stop()
        empty(client)
        release(client, token)


if __name__ == "__main__":
    main()
