"""The spool: deliveries taken while Redis was unreachable, kept on local disk until it is back.

With ``THREADLINE_SPOOL_DIR`` set, a webhook that cannot reach Redis is appended to a file in
that directory and fsynced *before* Twilio gets its 200 — the file, and the directory when the
file is new (its name is only durable once the directory is) — so an acknowledged delivery is
on disk even if the process or the machine dies next (DESIGN §5).

Nothing answered 200 is cut short: ``os.write`` may write less than asked (a full disk, a file
size limit); the rest is written until done, and when the disk refuses, the file is truncated
back to where the delivery began and :class:`SpoolFull` (an ``OSError``) makes it a 503. A
size cap, ``THREADLINE_SPOOL_MAX_BYTES`` over every file in the directory, does the same before
the disk is full. A background task replays spooled deliveries
through :func:`workers.eventlog.writer.append_many` — the same dedupe as live traffic — so a
delivery Twilio retried meanwhile, or one whose append reached Redis before its reply was
lost, is still stored once. Replayed entries count as ``webhooks|<kind>|spooled``.

Files: each process appends to its own ``spool-<pid>-<random>.jsonl`` and holds an exclusive
``flock`` on it while it lives. A replay claims a file by renaming it to ``….replaying`` while
holding that lock: its own file (closed for writing from then on), or a file whose lock is
free (its process is gone). A file is deleted only after every line in it reached Redis; a
failed replay leaves it for the next round. A torn last line (a crash mid-write, so never
acknowledged) is skipped and logged. Replay reads a file line by line, REPLAY_BATCH deliveries at
a time, so its memory does not grow with the spool; each batch is appended with the process's
durability wait (``THREADLINE_ACK_DURABILITY``) before the file may be deleted.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from workers import eventlog
from workers.eventlog.entries import LogEntry
from workers.eventlog.writer import Wait
from workers.foundations.errors import Transient
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings

logger = get_logger("threadline.spool")

REPLAY_BATCH = 200
# A spooled line is one delivery (a body of at most 64 KiB, JSON-escaped); a longer one is no
# line threadline wrote, and replay skips it without holding it in memory.
MAX_LINE = 1 << 20
# How often the sizes of the other processes' spool files are re-read for the cap.
OTHERS_EVERY = 1.0

Item = tuple[LogEntry, str | None, int]


class SpoolFull(Transient, OSError):
    """The spool cannot take the delivery (its cap, or the disk): the webhook gets 503."""


class Spool:
    def __init__(self, directory: Path, settings: Settings,
                 drain: Callable[[int], None] = lambda shard: None, wait: Wait | None = None) -> None:
        self.drain = drain  # called for each shard whose drain flag a replayed append set
        self.wait = wait    # the durability wait each replayed batch is appended with
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.max_bytes = settings.spool_max_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0                      # bytes in this process's open file
        self._others = 0                    # bytes in every other spool file, as last read
        self._others_read = float("-inf")

    # --- writing (request path, in a worker thread) --------------------------------------------

    def write(self, items: list[Item]) -> None:
        """Append and fsync; returns only when the deliveries are on disk (else raises)."""
        data = "".join(json.dumps({"f": e.to_fields(), "d": d, "s": s}, ensure_ascii=False,
                                  separators=(",", ":")) + "\n" for e, d, s in items).encode()
        with self._lock:
            if self._used() + len(data) > self.max_bytes:
                raise SpoolFull(f"the spool holds its cap of {self.max_bytes} bytes "
                                "(THREADLINE_SPOOL_MAX_BYTES)")
            fd = self._open()
            start = self._size
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    if written <= 0:
                        raise SpoolFull("the disk took no more of the spool")
                    view = view[written:]
                os.fsync(fd)
            except SpoolFull:
                self._undo(fd, start)
                raise
            except OSError as exc:
                self._undo(fd, start)
                raise SpoolFull(f"the disk refused the spool: {exc.strerror}") from exc
            self._size = start + len(data)

    def _open(self) -> int:
        """This process's spool file, created (and its directory entry fsynced) when needed."""
        if self._fd is not None:
            return self._fd
        path = self.dir / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fsync_dir()
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._path, self._size = fd, path, 0
        return fd

    def _fsync_dir(self) -> None:
        dirfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def _undo(self, fd: int, start: int) -> None:
        """Cut a delivery that did not fully reach the disk, so no later line is glued to it;
        when even that fails, leave the file (its torn last line is skipped on replay) and
        start a new one for the next delivery."""
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
            self._size = start
        except OSError:
            logger.error("could not cut a partly written spool line; starting a new spool file")
            os.close(fd)
            self._fd, self._path, self._size = None, None, 0

    def _used(self) -> int:
        """Bytes in the spool directory: this file exactly, the others as read at most a second ago."""
        now = time.monotonic()
        if now - self._others_read > OTHERS_EVERY:
            total = 0
            for path in self.dir.glob("spool-*"):
                if path != self._path:
                    with contextlib.suppress(FileNotFoundError):
                        total += path.stat().st_size
            self._others, self._others_read = total, now
        return self._size + self._others

    def pending(self) -> bool:
        """Whether any spool file (this process's or an orphan) waits for a replay."""
        return any(self.dir.glob("spool-*.jsonl")) or any(self.dir.glob("spool-*.replaying"))

    # --- replaying (background, in a worker thread) --------------------------------------------

    def replay(self, redis) -> int:
        """Move every claimable spooled delivery into the log; the number stored.

        Raises the Redis error when Redis is still away (the files stay for the next round,
        untouched: a PING comes first, so a long outage does not claim this process's file
        every round and scatter its deliveries over many files).
        """
        redis.ping()
        stored = 0
        claimed = self._claim()
        try:
            for fd, path in claimed:
                stored += self._replay_file(redis, fd, path)
                path.unlink(missing_ok=True)
        finally:  # every claimed file's lock is released, replayed or not
            for fd, _ in claimed:
                os.close(fd)
        return stored

    def _claim(self) -> list[tuple[int, Path]]:
        claimed: list[tuple[int, Path]] = []
        with self._lock:
            if self._fd is not None and self._path is not None:
                target = self._path.with_suffix(".replaying")
                os.rename(self._path, target)
                claimed.append((self._fd, target))
                self._fd, self._path, self._size = None, None, 0
        for path in sorted(self.dir.glob("spool-*.jsonl")) + sorted(self.dir.glob("spool-*.replaying")):
            if any(p == path for _, p in claimed):
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process writes or replays it
                os.close(fd)
                continue
            if not path.exists():  # replayed and deleted between our glob and our lock
                os.close(fd)
                continue
            target = path if path.suffix == ".replaying" else path.with_suffix(".replaying")
            if target != path:
                os.rename(path, target)
            claimed.append((fd, target))
        return claimed

    def _replay_file(self, redis, fd: int, path: Path) -> int:
        """Append a claimed file's deliveries, REPLAY_BATCH at a time, reading as it goes."""
        os.lseek(fd, 0, os.SEEK_SET)
        stored = total = 0
        batch: list[Item] = []
        with os.fdopen(os.dup(fd), "rb") as f:
            n = 0
            while line := f.readline(MAX_LINE):
                n += 1
                if not line.endswith(b"\n") and len(line) == MAX_LINE:
                    while (rest := f.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                        pass  # skip the rest of an over-long line without holding it
                    logger.warning("skipped an over-long spool line", extra={"file": path.name, "line": n})
                    continue
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    batch.append((LogEntry.from_fields(rec["f"]), rec.get("d"), int(rec["s"])))
                except (ValueError, KeyError, TypeError):
                    logger.warning("skipped an unreadable spool line", extra={"file": path.name, "line": n})
                    continue
                if len(batch) >= REPLAY_BATCH:
                    stored += self._append(redis, batch)
                    total += len(batch)
                    batch = []
        if batch:
            stored += self._append(redis, batch)
            total += len(batch)
        if total:
            logger.info("replayed the spool", extra={"file": path.name, "deliveries": total,
                                                     "stored": stored})
        return stored

    def _append(self, redis, batch: list[Item]) -> int:
        results = eventlog.append_many(redis, batch, self.settings, outcome=eventlog.SPOOLED, wait=self.wait)
        for (_, _, shard), r in zip(batch, results):
            if r.drain_needed:
                self.drain(shard)
        return sum(r.stored for r in results)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # the file stays; the next process (or this one) replays it
                self._fd, self._path, self._size = None, None, 0
