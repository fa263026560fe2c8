"""Watching a soak run: shard progress and stalls, queue depths, processes, sampled as it goes."""
from __future__ import annotations

import time
from collections import Counter, defaultdict

import redis

from workers.foundations import keys


class Monitor:
    """Samples every shard's progress (entries added - entries left) and the processes' health."""

    def __init__(self, redis_url: str, shards: int) -> None:
        self.r = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
        self.shards = shards
        self.last_done: dict[int, int] = {}
        self.progress_at: dict[int, float] = {}
        self.max_stall: dict[int, float] = defaultdict(float)
        self.max_stall_from: dict[int, float] = {}   # monotonic start of each shard's longest stall
        self.peak_backlog = 0
        self.samples = 0
        self.queued: list[tuple[float, int, int, int]] = []   # (s, drain jobs, lifecycle jobs, all)

    def sample(self) -> int | None:
        """Total entries in the log now (None when Redis did not answer)."""
        pipe = self.r.pipeline(transaction=False)
        for n in range(self.shards):
            pipe.xlen(keys.events(n))
            pipe.xinfo_stream(keys.events(n))
        try:
            raw = pipe.execute(raise_on_error=False)
        except redis.exceptions.RedisError:
            return None
        now = time.monotonic()
        total = 0
        for n in range(self.shards):
            length, info = raw[2 * n], raw[2 * n + 1]
            if isinstance(length, Exception):
                return None
            added = info.get("entries-added", 0) if isinstance(info, dict) else 0
            done = added - length
            total += length
            if not length or done != self.last_done.get(n) or n not in self.progress_at:
                self.progress_at[n] = now
            elif now - self.progress_at[n] > self.max_stall[n]:
                self.max_stall[n] = now - self.progress_at[n]
                self.max_stall_from[n] = self.progress_at[n]
            self.last_done[n] = done
        self.samples += 1
        self.peak_backlog = max(self.peak_backlog, total)
        return total

    def queue(self, t: float) -> None:
        """What waits in the RQ queue: drain and lifecycle jobs (kept as a time series)."""
        from rq.job import Job

        try:
            ids = self.r.lrange(f"rq:queue:{keys.QUEUE}", 0, -1)
            ids += self.r.lrange(f"rq:queue:{getattr(keys, 'LIFECYCLE_QUEUE', keys.QUEUE)}", 0, -1)
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.hget(Job.key_for(i.decode()), "description")
            kinds = Counter((d or b"?").decode().split(" ")[0].rstrip(":") for d in pipe.execute())
        except redis.exceptions.RedisError:
            return
        self.queued.append((round(t, 1), kinds.get("drain", 0), kinds.get("lifecycle", 0), len(ids)))

    def logged(self) -> int:
        """Entries ever appended to the log, all shards (each accepted event once)."""
        pipe = self.r.pipeline(transaction=False)
        for n in range(self.shards):
            pipe.xinfo_stream(keys.events(n))
        return sum(i.get("entries-added", 0) for i in pipe.execute(raise_on_error=False) if isinstance(i, dict))

    def worst(self) -> tuple[int, float]:
        if not self.max_stall:
            return -1, 0.0
        shard = max(self.max_stall, key=self.max_stall.get)
        return shard, self.max_stall[shard]
