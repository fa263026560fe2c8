"""The spool: deliveries taken while Redis was unreachable, kept on local disk until it is back.

With ``THREADLINE_SPOOL_DIR`` set, a webhook that cannot reach Redis is appended to a file in
that directory and fsynced *before* Twilio gets its 200, so an acknowledged delivery is on
disk even if the process dies next (DESIGN §5). A background task replays spooled deliveries
through :func:`workers.eventlog.writer.append_many` — the same dedupe as live traffic — so a
delivery Twilio retried meanwhile, or one whose append reached Redis before its reply was
lost, is still stored once. Replayed entries count as ``webhooks|<kind>|spooled``.

Files: each process appends to its own ``spool-<pid>-<random>.jsonl`` and holds an exclusive
``flock`` on it while it lives. A replay claims a file by renaming it to ``….replaying`` while
holding that lock: its own file (closed for writing from then on), or a file whose lock is
free (its process is gone). A file is deleted only after every line in it reached Redis; a
failed replay leaves it for the next round. A torn last line (a crash mid-write, so never
acknowledged) is skipped and logged.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from workers import eventlog
from workers.eventlog.entries import LogEntry
from workers.log import get_logger
from workers.settings import Settings

logger = get_logger("threadline.spool")

REPLAY_BATCH = 200

Item = tuple[LogEntry, str | None, int]


class Spool:
    def __init__(self, directory: Path, settings: Settings,
                 drain: Callable[[int], None] = lambda shard: None) -> None:
        self.drain = drain  # called for each shard whose drain flag a replayed append set
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None

    # --- writing (request path, in a worker thread) --------------------------------------------

    def write(self, items: list[Item]) -> None:
        """Append and fsync; returns only when the deliveries are on disk."""
        data = "".join(json.dumps({"f": e.to_fields(), "d": d, "s": s}, ensure_ascii=False,
                                  separators=(",", ":")) + "\n" for e, d, s in items).encode()
        with self._lock:
            if self._fd is None:
                self._path = self.dir / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
                fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._fd = fd
            os.write(self._fd, data)
            os.fsync(self._fd)

    def pending(self) -> bool:
        """Whether any spool file (this process's or an orphan) waits for a replay."""
        return any(self.dir.glob("spool-*.jsonl")) or any(self.dir.glob("spool-*.replaying"))

    # --- replaying (background, in a worker thread) --------------------------------------------

    def replay(self, redis) -> int:
        """Move every claimable spooled delivery into the log; the number stored.

        Raises the Redis error when Redis is still away (the files stay for the next round).
        """
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
                self._fd, self._path = None, None
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
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        lines = b"".join(chunks).split(b"\n")
        items: list[Item] = []
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                items.append((LogEntry.from_fields(rec["f"]), rec.get("d"), int(rec["s"])))
            except (ValueError, KeyError, TypeError):
                logger.warning("skipped an unreadable spool line",
                               extra={"file": path.name, "line": n + 1})
        stored = 0
        for i in range(0, len(items), REPLAY_BATCH):
            results = eventlog.append_many(redis, items[i:i + REPLAY_BATCH], self.settings,
                                           outcome=eventlog.SPOOLED)
            stored += sum(r.stored for r in results)
            for (_, _, shard), r in zip(items[i:i + REPLAY_BATCH], results):
                if r.drain_needed:
                    self.drain(shard)
        if items:
            logger.info("replayed the spool", extra={"file": path.name, "deliveries": len(items),
                                                     "stored": stored})
        return stored

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # the file stays; the next process (or this one) replays it
                self._fd = None
