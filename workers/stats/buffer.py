"""Counters added on a hot path, written to Redis in one pipeline about once a second.

The v2 client counts every API call (route, status, latency). A Redis round trip per call
would double the cost of a drain, so counts accumulate in memory and a background thread
flushes them through *one* pipeline every ``interval`` seconds (and at close / process exit).
Counts are kept per wall-clock minute, so the per-minute hashes stay exact across a flush.

A thread (not an asyncio task) on purpose: RQ jobs may each run their own event loop, and a
thread outlives them, so one buffer serves the whole worker process. If Redis is unreachable the
counts stay in the buffer and go out with the next successful flush: nothing is lost while the
process lives; at most ``interval`` seconds of counts are lost if it is killed.
"""
from __future__ import annotations

import atexit
import threading
from collections import Counter
from collections.abc import Callable, Mapping

from workers import stats
from workers.foundations.log import get_logger

logger = get_logger("threadline.stats")


class StatsBuffer:
    def __init__(self, connect: Callable[[], object], *, retention_minutes: int,
                 interval: float = 1.0) -> None:
        self._connect = connect
        self._redis: object | None = None
        self._retention = retention_minutes
        self._interval = interval
        self._lock = threading.Lock()
        self._counts: dict[int, Counter[str]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failing = False

    def add(self, counts: Mapping[str, int], *, now: float | None = None) -> None:
        """Add counts (fields made by :func:`workers.stats.counters.field`); no I/O."""
        minute = stats.minute_of(now)
        with self._lock:
            self._counts.setdefault(minute, Counter()).update(counts)
            if self._thread is None:
                self._start()

    def pending(self) -> dict[str, int]:
        """Counts not yet written (all minutes summed): for tests and shutdown logs."""
        with self._lock:
            total: Counter[str] = Counter()
            for c in self._counts.values():
                total.update(c)
            return dict(total)

    def flush(self) -> int:
        """Write everything buffered in one pipeline; returns the number of fields written."""
        with self._lock:
            batch, self._counts = self._counts, {}
        if not batch:
            return 0
        try:
            if self._redis is None:
                self._redis = self._connect()
            pipe = self._redis.pipeline(transaction=False)  # type: ignore[attr-defined]
            for minute, counts in batch.items():
                stats.add(pipe, counts, retention_minutes=self._retention, now=minute * 60.0)
            pipe.execute()
        except Exception as exc:  # Redis down: keep the counts for the next flush
            self._redis = None  # reconnect next time
            with self._lock:
                for minute, counts in batch.items():
                    self._counts.setdefault(minute, Counter()).update(counts)
            if not self._failing:
                logger.warning("stats flush failed; counts kept for the next try",
                               extra={"error": type(exc).__name__})
            self._failing = True
            return 0
        self._failing = False
        return sum(len(c) for c in batch.values())

    def close(self) -> None:
        """Stop the flusher and write what is left."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._interval + 5)
        self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="threadline-stats-flush",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()


_shared: dict[tuple[str, int], StatsBuffer] = {}
_shared_lock = threading.Lock()


def shared(settings) -> StatsBuffer:  # settings: workers.foundations.settings.Settings
    """The process's buffer for ``settings.redis_url`` (one flusher thread per Redis)."""
    import os

    from workers.foundations.redis_conn import connect

    key = (settings.redis_url, os.getpid())
    with _shared_lock:
        buf = _shared.get(key)
        if buf is None:
            buf = StatsBuffer(lambda: connect(settings),
                              retention_minutes=settings.stats_retention_minutes)
            _shared[key] = buf
        return buf

