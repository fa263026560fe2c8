"""Where a webhook's CPU goes: the web tier's CPU per request, user and system, beside a raw
ASGI app and bare Starlette on the same uvicorn, with optional perf and py-spy profiles.

Why beside ``bench/ingress.py``: that one gives the target's figure (accepted webhooks per
CPU-second against bare Starlette); this one splits it, so the gap can be accounted for:
- ``raw``: a plain ASGI callable that reads the body and answers 200 — uvicorn's own floor;
- ``bare``: bare Starlette (``bench/ingress.py``'s yardstick, the same app);
- ``threadline``: ``threadline web`` on a borrowed Redis DB; and ``before`` with BENCH_BEFORE.
Each gets the same wrk load (``bench/ingress.py``'s script and pool of pre-signed deliveries)
in alternating rounds; per round it prints µs of CPU per request (per accepted webhook for
threadline), split into user and system time from ``/proc/<pid>/stat``.

BENCH_PERF=1 records ``perf record -F 1999 -g`` of each server in the last round into
``$TMPDIR/ingress-<name>.perf`` (read them with ``perf report --no-children --sort dso``);
BENCH_PYSPY=1 records ``py-spy record --nonblocking -r 300 -f raw`` of the threadline servers
instead (a wall-clock profile: drop its socket-write and event-loop leaves before reading shares).

Run: ``.venv/bin/python bench/ingress_cpu.py`` (BENCH_SECONDS=6 BENCH_ROUNDS=3).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import ingress  # noqa: E402
from costs import cpu_seconds  # noqa: E402

from tests.procs import free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BEFORE = os.environ.get("BENCH_BEFORE", "")
OUT = Path(tempfile.gettempdir())

RAW_APP = """
import sys, uvicorn
HEADERS = [(b"content-type", b"text/xml"), (b"content-length", b"11")]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"<Response/>"})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False,
            lifespan="off")
"""


def user_system(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def profiler(name: str, pid: int) -> subprocess.Popen | None:
    if os.environ.get("BENCH_PERF"):
        return subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-p", str(pid), "-o",
                                 str(OUT / f"ingress-{name}.perf"), "--", "sleep", str(SECONDS - 1)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.environ.get("BENCH_PYSPY") and name not in ("raw", "bare"):
        return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking",
                                 "-r", "300", "-d", str(SECONDS - 1), "-p", str(pid), "-f", "raw",
                                 "-o", str(OUT / f"ingress-{name}.spy")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return None


def main() -> int:
    wrk = ingress.ensure_wrk()
    client, url, token = take_db()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingress-cpu-"))
    pool, lua = tmp / "pool.tsv", tmp / "replay.lua"
    ingress.write_pool(pool, ingress.POOL)
    lua.write_text(ingress.WRK_LUA)
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for name, app in (("raw", RAW_APP), ("bare", ingress.BARE_APP)):
            port = free_port()
            args = [str(port)] if name == "raw" else [str(port), "auto", "auto"]
            servers[name] = (subprocess.Popen([sys.executable, "-c", app, *args]), port)
            ingress.wait_http(f"http://127.0.0.1:{port}/", servers[name][0])
        env = {**os.environ, "REDIS_URL": url, "THREADLINE_PUBLIC_URL": ingress.PUBLIC_URL,
               "TWILIO_ACCOUNT_SID": ingress.ACCOUNT_SID, "TWILIO_AUTH_TOKEN": ingress.AUTH_TOKEN,
               "THREADLINE_LOG_LEVEL": "WARNING", "THREADLINE_ACK_DURABILITY": "none"}
        trees = {"threadline": str(ROOT), **({"before": BEFORE} if BEFORE else {})}
        for name, tree in trees.items():
            port = free_port()
            servers[name] = (subprocess.Popen([ingress.THREADLINE, "web", "--port", str(port)],
                                              env={**env, "PYTHONPATH": tree},
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port)
            ingress.wait_http(f"http://127.0.0.1:{port}/healthz", servers[name][0])
        for _, port in servers.values():  # warm
            ingress.run_wrk(wrk, lua, pool, port, ingress.CONNECTIONS, 2)
        per_request: dict[str, list[float]] = {name: [] for name in servers}
        for r in range(ROUNDS):
            for name, (proc, port) in servers.items():
                empty(client)
                done0, (u0, s0), c0 = ingress.accepted(client), user_system(proc.pid), cpu_seconds(proc.pid)
                prof = profiler(name, proc.pid) if r == ROUNDS - 1 else None
                run = ingress.run_wrk(wrk, lua, pool, port, ingress.CONNECTIONS, SECONDS)
                if prof:
                    prof.wait()
                u1, s1 = user_system(proc.pid)
                n = run["requests"] if name in ("raw", "bare") else ingress.accepted(client) - done0
                n = max(n, 1)
                per_request[name].append(1e6 * (cpu_seconds(proc.pid) - c0) / n)
                print(f"round {r} {name:10} {per_request[name][-1]:6.1f} us CPU per request "
                      f"(user {1e6 * (u1 - u0) / n:5.1f}, system {1e6 * (s1 - s0) / n:5.1f}); "
                      f"{run['rps']:7.0f} req/s, {run['non2xx']} non-2xx", flush=True)
        bare = statistics.median(per_request["bare"])
        print(f"load average {os.getloadavg()}; medians of {ROUNDS} rounds, wrk -t2 -c{ingress.CONNECTIONS} "
              f"-d{SECONDS}s:")
        for name, values in per_request.items():
            us = statistics.median(values)
            print(f"  {name:10} {us:6.1f} us per request, {1e6 / us:7.0f} per CPU-second, "
                  f"{bare / us:.0%} of bare")
        return 0
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(10)
        empty(client)
        release(client, token)


if __name__ == "__main__":
    sys.exit(main())
