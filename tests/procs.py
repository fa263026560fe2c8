"""Start threadline's own processes (web, worker, twin, scheduler) for tests, over real HTTP.

Every process is a real subprocess of the installed ``threadline`` command, so a test drives
it exactly as an operator or Twilio would. Its output goes to a log file that a failing test
prints.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

THREADLINE = str(Path(sys.executable).with_name("threadline"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """One running ``threadline …`` subprocess."""

    def __init__(self, args: list[str], env: dict[str, str], *, ready_url: str | None = None,
                 ready_timeout: float = 20.0) -> None:
        self.args = args
        self.log_path = Path(tempfile.mkstemp(prefix="threadline-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **env}
        self.popen = subprocess.Popen(
            [THREADLINE, *args], env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if ready_url:
            self.wait_http(ready_url, ready_timeout)

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"threadline {' '.join(self.args)} exited:\n{self.output()}")
            try:
                if httpx.get(url, timeout=0.5).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{url} not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:  # still running, or read after stop() for a failure message
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(5)
        self._log.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.popen.poll() is None:
            self.stop()
