"""The per-process state behind the webhook endpoints, and the ways a delivery ends.

One :class:`Ingress` per web process (built in the app's lifespan by :func:`running`): the
signature checker, the group-commit appender, the drain enqueuer, the spool and its replay
task, the forwarding relay (:mod:`service.webhooks.forwarding`) with its passive-voice TwiML
(:mod:`service.webhooks.voice_start`, over the cached rules) and the buffer of refusal
counters. ``store`` answers 200 only once the deliveries are
durably in Redis — or, with ``THREADLINE_SPOOL_DIR``, fsynced to the spool — and 503 otherwise;
a group commit whose durability wait fell short (``THREADLINE_ACK_DURABILITY``,
:mod:`.durability`) is 503 and counted ``not_durable`` — never spooled: the webhooks are in
Redis already, and Twilio's retry is safe (dedupe); ``refuse`` counts and answers every other
outcome; ``dead_letter_events`` keeps the events of a signed Event Streams batch that cannot
be read (``unavailable`` answers 503 when it cannot).

Refusals are counted in memory and flushed about once a second
(:class:`workers.stats.buffer.StatsBuffer`): a flood of forged requests costs Redis nothing
per request, and a 503's counter survives the Redis outage that caused it. Accepted and
duplicate deliveries are counted by the append script itself, in the same round trip.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from redis.exceptions import RedisError
from starlette.responses import PlainTextResponse, Response

from service.webhooks import durability, eventstreams
from service.webhooks.appender import Appender
from service.webhooks.drains import DrainEnqueuer
from service.webhooks.forwarding import Relay
from service.webhooks.params import Refused
from service.webhooks.rules_cache import RulesCache
from service.webhooks.signatures import Signatures
from service.webhooks.slowbodies import SlowBodies
from service.webhooks.spool import Item, Spool
from service.webhooks.voice_start import VoiceStart
from workers import eventlog, stats
from workers.eventlog.deadletters import MALFORMED_EVENT, dead_letter
from workers.foundations import log
from workers.foundations.settings import Settings
from workers.stats.buffer import StatsBuffer

logger = log.get_logger("threadline.webhooks")

TWIML_OK = b"<Response/>"
# The one success answer, built once: a Starlette Response holds no per-request state.
OK = Response(TWIML_OK, media_type="text/xml")
SPOOL_REPLAY_EVERY = 0.5


class Ingress:
    """Per-process state of the webhook endpoints, built in the app's lifespan."""

    def __init__(self, settings: Settings, redis, redis_sync, counts: StatsBuffer) -> None:
        self.settings = settings
        self.redis = redis
        self.redis_sync = redis_sync
        self.signatures = Signatures(settings)
        self.counts = counts
        self.drains = DrainEnqueuer(redis_sync)
        self.slow_bodies = SlowBodies(settings.body_timeout)
        self.appender = Appender(redis, settings)
        self.relay = Relay(settings, self.signatures, counts, redis_sync)
        self.rules = RulesCache(redis_sync)
        self.voice_start = VoiceStart(settings, redis, counts, self.rules)
        self.spool: Spool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replayer: asyncio.Task | None = None
        if settings.spool_dir:
            self.spool = Spool(settings.spool_dir, settings, drain=self._drain_from_thread,
                               wait=self.appender.wait)
        if not self.signatures.configured:
            logger.warning("no TWILIO_AUTH_TOKEN or THREADLINE_AUTH_TOKENS: every webhook will be refused")
        (logger.info if self.signatures.base or self.signatures.proxies else logger.warning)(
            self.signatures.describe())

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.drains.start()
        self.slow_bodies.start()
        await self.relay.start()
        await self.rules.start()
        if self.spool:
            self._replayer = asyncio.create_task(self._replay_loop(), name="threadline-spool-replay")

    async def stop(self) -> None:
        if self._replayer:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        await self.drains.stop()
        await self.slow_bodies.stop()
        await self.relay.stop()
        await self.rules.stop()
        await self.appender.close()
        if self.spool:
            self.spool.close()
        await asyncio.to_thread(self.counts.flush)

    def _drain_from_thread(self, shard: int) -> None:
        if self._loop:
            self.drains.request_threadsafe(self._loop, shard)

    async def _replay_loop(self) -> None:
        assert self.spool
        delay = SPOOL_REPLAY_EVERY
        while True:
            if self.spool.pending():
                try:
                    await asyncio.to_thread(self.spool.replay, self.redis_sync)
                    delay = SPOOL_REPLAY_EVERY
                except RedisError as exc:
                    logger.info("spool replay waits for Redis", extra={"error": type(exc).__name__})
                    delay = min(delay * 2, 5.0)
                except Exception:  # never let the replayer die: the files stay for the next round
                    logger.exception("spool replay failed")
                    delay = min(delay * 2, 5.0)
            await asyncio.sleep(delay)

    # --- answers ----------------------------------------------------------------------------

    def count(self, kind: str, outcome: str, n: int = 1) -> None:
        self.counts.add({stats.field("webhooks", kind, outcome): n})

    def refuse(self, kind: str, refusal: Refused, headers: dict[str, str] | None = None) -> Response:
        self.count(kind, refusal.outcome)
        logger.info("webhook refused", extra={"kind": kind, "outcome": refusal.outcome,
                                              "status": refusal.status, "reason": refusal.reason})
        return PlainTextResponse(refusal.reason + "\n", refusal.status, headers=headers)

    async def store(self, items: list[Item], label: str) -> Response:
        """Append the deliveries (one round trip each batch); spool or 503 when Redis is away."""
        try:
            results = await self.appender.append(items)
        except durability.NotDurable as exc:
            for entry, _, _ in items:
                self.count(entry.kind, eventlog.NOT_DURABLE)
            logger.warning("durability wait fell short: webhook refused with 503",
                           extra={"kind": label, "durability": self.settings.ack_durability,
                                  "reason": str(exc)})
            return _retry_later("stored, not yet durable")
        except RedisError as exc:
            return await self._unreachable(items, label, exc)
        for (_, _, shard), result in zip(items, results):
            if result.drain_needed:
                self.drains.request(shard)
        return OK

    async def _unreachable(self, items: list[Item], label: str, exc: Exception) -> Response:
        if self.spool:
            try:
                await asyncio.to_thread(self.spool.write, items)
                logger.warning("Redis unreachable: delivery spooled",
                               extra={"kind": label, "error": type(exc).__name__})
                return OK
            except OSError as spool_exc:  # SpoolFull: its cap or a full disk; nothing half-written
                logger.error("Redis unreachable and the spool cannot take the delivery: 503",
                             extra={"error": type(spool_exc).__name__, "reason": str(spool_exc)})
        for entry, _, _ in items:
            self.count(entry.kind, eventlog.UNAVAILABLE)
        logger.warning("Redis unreachable: webhook refused with 503",
                       extra={"kind": label, "error": type(exc).__name__})
        return _retry_later()

    def unavailable(self, label: str) -> Response:
        """503 for a delivery refused as a whole because Redis did not answer."""
        self.count(label, eventlog.UNAVAILABLE)
        return _retry_later()

    async def dead_letter_events(self, broken: list[tuple[object, str]]) -> bool:
        """Dead-letter Event Streams events that cannot be read (reason ``malformed_event``).

        What is kept is the event's id, type and ``data`` as form-style parameters, so the
        dead-letter views redact a message body as they do for any entry; the error is the
        reason it could not be read. Such a letter is listed, never replayable. False when
        Redis did not answer (the caller answers 503: Event Streams retries the batch, and
        the events that were fine are duplicates then).
        """
        pipe = self.redis.pipeline(transaction=False)
        for event, reason in broken:
            dead_letter(pipe, eventstreams.broken_event_fields(event), MALFORMED_EVENT, 1, reason,
                        retention_minutes=self.settings.stats_retention_minutes)
        try:
            await pipe.execute()
        except RedisError as exc:
            logger.warning("Redis unreachable: malformed events not dead-lettered",
                           extra={"error": type(exc).__name__})
            return False
        logger.warning("Event Streams events dead-lettered", extra={
            "count": len(broken), "reason": MALFORMED_EVENT})
        return True


def _retry_later(why: str = "event log unavailable") -> Response:
    return PlainTextResponse(f"{why}; retry later\n", 503, headers={"Retry-After": "5"})


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[Ingress]:
    """Build the process's :class:`Ingress` on ``app.state`` and run its background tasks."""
    from workers.stats.buffer import shared

    state = app.state
    # Refuses to start (DurabilityRefused) when Redis cannot give THREADLINE_ACK_DURABILITY.
    state.durability_server = await durability.verify(state.settings, state.redis)
    ingress = Ingress(state.settings, state.redis, state.redis_sync, shared(state.settings))
    state.ingress = ingress
    await ingress.start()
    # Everything alive now (modules, settings, the app) lives as long as the process: move it
    # out of the collector's sight, so a full collection scans only what requests allocate
    # instead of pausing every webhook in flight for milliseconds (the p99 at load).
    gc.freeze()
    try:
        yield ingress
    finally:
        await ingress.stop()
