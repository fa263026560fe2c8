"""A ``redis-server`` of a test's (or the soak's) own, so it can be crashed and restarted.

The shared Redis at ``REDIS_URL`` must never be restarted (other runs use it). A test that needs
Redis to go away and come back starts one of these on a free port, with its append-only file
in a temp dir (``appendfsync always``: nothing acknowledged is lost when it is SIGKILLed)::

    server = PrivateRedis(tmp_path)
    server.start()                 # server.url = redis://127.0.0.1:<port>/0
    server.crash(away=1.5)         # SIGKILL, 1.5 s without Redis, start again on the AOF
    server.stop()
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.procs import free_port


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server not found (Debian: apt-get install redis-server)")
        self.exe, self.dir, self.port = exe, Path(workdir), free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--maxmemory-policy", "noeviction", "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.exceptions.BusyLoadingError, redis.exceptions.ConnectionError):
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"private redis-server did not start (see {self.dir}/redis.log)")
                time.sleep(0.05)
        finally:
            client.close()

    def crash(self, away: float = 0.0) -> float:
        """SIGKILL, wait ``away`` seconds, start again on the same AOF; the seconds it was gone."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.kill()
        self.proc.wait(10)
        time.sleep(away)
        self.start()
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
