"""``threadline scheduler``: re-triggers stalled shards, sweeps closed conversations past their
retention, and (passive voice) enqueues the poll of the account's in-progress calls while VOICE
rules exist.

Several schedulers may run (for availability); one leads by a Redis lease (``SET NX PX``,
renewed by compare-and-expire) and only the leader acts.

Lifecycle timers are not the scheduler's any more: every worker claims and applies the due ones
beside its drains (:mod:`workers.lifecycle.applier`). Swept here and queued as RQ jobs, they
waited for the drain jobs ahead of them — the soak saw transitions PATCHed 10 s late on average.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid

from rq import Queue
from rq.job import Job

from workers.conversations import retention
from workers.eventlog.writer import JOB_TIMEOUT_SECONDS
from workers.foundations import keys
from workers.foundations.constants import DRAIN_JOB, POLL_CALLS_JOB
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings

logger = get_logger("threadline.scheduler")

TICK = 0.25            # sleep between ticks (seconds)
LEASE_MS = 5000        # the leader's lease; renewed every tick
DRAIN_CHECK_EVERY = 2.0
# A flagged shard with no lease holder and no drain job queued gets a drain once it has been
# seen so for this long (the next check): a drain just taken off the queue takes its lease in ms.
UNHELD_GRACE_S = 1.0
RETENTION_EVERY = 60.0  # seconds between retention sweeps (sooner when the retention is shorter)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """The leader lease: take it when free, keep it while alive, give it back on exit."""

    def __init__(self, redis, token: str | None = None, ttl_ms: int = LEASE_MS) -> None:
        self.redis = redis
        self.token = token or uuid.uuid4().hex
        self.ttl_ms = ttl_ms
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def hold(self) -> bool:
        """Renew (or take) the lease; True when this process leads."""
        return bool(self._renew(keys=[keys.SCHEDULER_LEASE], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[keys.SCHEDULER_LEASE], args=[self.token])


class Scheduler:
    """One scheduler process's loop; :meth:`run` until :meth:`stop`."""

    def __init__(self, settings: Settings, redis, *, name: str = "") -> None:
        self.settings = settings
        self.redis = redis
        self.lease = Lease(redis)
        self.queue = Queue(keys.QUEUE, connection=redis)
        self.name = name or self.lease.token[:8]
        self._stop = threading.Event()
        self._leading = False
        self._last_drain_check = 0.0
        self._unheld_since: dict[int, float] = {}
        self._last_retention = 0.0
        self.swept = 0
        self._last_call_poll = 0.0
        self._voice: tuple[int, bool] | None = None  # (config generation, has VOICE rules)

    def stop(self, *_: object) -> None:
        self._stop.set()

    def requeue_stalled_drains(self) -> int:
        """Enqueue ``drain_shard(n)`` for each shard with unread or pending entries and no drain.

        Ingress sets the drain flag (NX) with every append; if a drain job was lost (its worker
        killed before it ran), the flag expires and the shard would wait for the next webhook.
        A shard whose flag is set while no drain holds its lease gets a drain too — the flag is
        only a guard against duplicate enqueues — as soon as two checks in a row find no drain
        job for it in the queue (its drain was killed, fenced off, or ended on a Redis error
        before it took the lease: the soak saw such shards wait the whole stall bound), and in
        any case after ``THREADLINE_DRAIN_STALL_SECONDS``.
        """
        pipe = self.redis.pipeline(transaction=False)
        for n in range(self.settings.shards):
            pipe.exists(keys.drain_flag(n))
            pipe.xlen(keys.events(n))
            pipe.exists(keys.shard_lease(n))
        res = pipe.execute()
        now = time.monotonic()
        candidates = []
        waiting: set[int] | None = None
        for n in range(self.settings.shards):
            flagged, length, leased = res[3 * n:3 * n + 3]
            if not length or leased or not flagged:
                self._unheld_since.pop(n, None)
                if length and not flagged:
                    candidates.append(n)
                continue
            since = self._unheld_since.setdefault(n, now)
            seen_before = now - since >= UNHELD_GRACE_S
            if seen_before and waiting is None:
                waiting = self._queued_drains()
            if now - since > self.settings.drain_stall_seconds or (seen_before and n not in (waiting or ())):
                self._unheld_since.pop(n, None)
                self.redis.delete(keys.drain_flag(n))
                candidates.append(n)
        requeued = 0
        for n in candidates:
            if not self._has_work(n):
                continue
            # The same flag ingress sets; the drain clears it when it ends.
            if self.redis.set(keys.drain_flag(n), "scheduler", nx=True, ex=300):
                self.queue.enqueue(DRAIN_JOB, n, result_ttl=0, job_timeout=JOB_TIMEOUT_SECONDS,
                                   description=f"drain shard {n}", at_front=True)
                requeued += 1
                logger.info("requeued a stalled shard", extra={"shard": n})
        return requeued

    def _queued_drains(self) -> set[int]:
        """The shards with a drain job waiting in the queue (read only while some shard is
        flagged with no lease holder)."""
        return queued_drains(self.redis, self.queue.key)

    def _voice_rules(self) -> bool:
        """Whether any configuration has VOICE capture rules (re-read when the store changes)."""
        from workers.capture.store import ConfigStore
        from workers.delivery.callpoll import has_voice_rules

        store = ConfigStore(self.redis)
        generation = store.generation()
        if self._voice is None or self._voice[0] != generation:
            self._voice = (generation, has_voice_rules({vc.id: vc for vc in store.current()}))
        return self._voice[1]

    def enqueue_call_poll(self, now: float | None = None) -> bool:
        """Passive voice: enqueue ``poll_calls`` every ``THREADLINE_CALL_POLL_SECONDS`` while
        VOICE rules exist; at most one queued or running (a flag set NX, cleared by the job,
        expiring if the job is lost). True when one was enqueued."""
        interval = self.settings.call_poll_seconds
        now = time.monotonic() if now is None else now
        if interval <= 0 or now - self._last_call_poll < interval:
            return False
        self._last_call_poll = now
        if not self._voice_rules():
            return False
        if not self.redis.set(keys.CALL_POLL_FLAG, self.name, nx=True, ex=max(30, int(interval * 10))):
            return False
        self.queue.enqueue(POLL_CALLS_JOB, result_ttl=0, failure_ttl=3600, description="passive voice: poll calls")
        return True

    def _has_work(self, shard: int) -> bool:
        try:
            groups = self.redis.xinfo_groups(keys.events(shard))
        except Exception:  # no group yet: every entry is unread
            return True
        for g in groups:
            name = g.get("name")
            if (name.decode() if isinstance(name, bytes) else name) != keys.CONSUMER_GROUP:
                continue
            lag = g.get("lag")
            return bool(g.get("pending")) or lag is None or lag > 0
        return True

    def tick(self) -> None:
        leading = self.lease.hold()
        if leading != self._leading:
            logger.info("scheduler leads" if leading else "scheduler follows",
                        extra={"scheduler": self.name})
            self._leading = leading
        if not leading:
            return
        now = time.monotonic()
        if now - self._last_drain_check >= DRAIN_CHECK_EVERY:
            self._last_drain_check = now
            self.requeue_stalled_drains()
        every = min(RETENTION_EVERY, max(0.5, self.settings.retention_days * 86400 / 2))
        if now - self._last_retention >= every:
            self._last_retention = now
            retention.backfill(self.redis)  # once: conversations closed before the closed index
            swept = retention.sweep(self.redis, self.settings.retention_days)
            self.swept += swept
            if swept:
                logger.info("closed conversations past retention deleted",
                            extra={"count": swept, "retention_days": self.settings.retention_days})
        self.enqueue_call_poll(now)

    def run(self) -> None:
        logger.info(
            "scheduler started",
            extra={"scheduler": self.name, "minute_seconds": self.settings.minute_seconds,
                   "scaled": self.settings.minute_seconds != 60.0,
                   "note": f"one configured minute of statusTimeouts lasts "
                           f"{self.settings.minute_seconds:g} s"},
        )
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:  # Redis blips: log, wait, go on (the lease expires if down)
                    logger.exception("scheduler tick failed")
                    self._stop.wait(1.0)
                    continue
                self._stop.wait(TICK)
        finally:
            try:
                self.lease.release()
            except Exception:
                pass
            logger.info("scheduler stopped", extra={"scheduler": self.name})


def queued_drains(redis, queue_key: str) -> set[int]:
    """The shards with a drain job waiting in the RQ queue (one LRANGE, one HGET per job)."""
    ids = redis.lrange(queue_key, 0, -1)
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(Job.key_for(job_id.decode() if isinstance(job_id, bytes) else job_id), "description")
    out = set()
    for desc in pipe.execute() if ids else []:
        text = desc.decode() if isinstance(desc, bytes) else (desc or "")
        if text.startswith("drain shard "):
            with contextlib.suppress(ValueError):
                out.add(int(text.rsplit(" ", 1)[1]))
    return out


def run_forever(settings: Settings) -> int:
    """The CLI entry: run until SIGTERM/SIGINT."""
    from workers.foundations.redis_conn import connect

    sched = Scheduler(settings, connect(settings))
    signal.signal(signal.SIGTERM, sched.stop)
    signal.signal(signal.SIGINT, sched.stop)
    sched.run()
    return 0
