"""Per-event costs for the benchmarks: a Redis of the bench's own, its command counts, and the
CPU time of processes.

Why a Redis of its own: ``INFO commandstats`` counts every client of a server, and the shared
development Redis serves other test runs at the same time, so its deltas would count their
commands too. A private ``redis-server`` (no persistence, a free port) counts only the bench's.
Commands executed inside EVAL/EVALSHA are counted by commandstats as well (each ``redis.call``
is one call of its command, beside the EVALSHA itself), so a script's inner work is included.

CPU time comes from ``/proc/<pid>/stat`` (utime + stime, every thread of the process): it is
what the process cost whatever else shares the machine, unlike a rate, which moves with load.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tests.procs import free_port  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


class OwnRedis:
    """A private ``redis-server`` for one bench run (stopped by :meth:`stop`)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server not found: the bench counts commands on a Redis of its own")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="threadline-bench-redis-")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}"
        self.client = redis.Redis.from_url(f"{self.url}/0")
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def commandstats(client: redis.Redis) -> dict[str, int]:
    """Calls per command so far (INFO's own calls left out: the bench makes them)."""
    raw = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in raw.items()
            if name != "cmdstat_info"}


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def redis_cpu_seconds(client: redis.Redis) -> float:
    """The Redis server's own CPU time (INFO cpu: main thread and helpers, user + system)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
