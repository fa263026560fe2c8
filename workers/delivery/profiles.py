"""Whose conversation is it: the CUSTOMER participant's profile, for GROUP_BY_PROFILE.

A configuration with a ``memoryStoreId`` resolves the customer through the Memory store's
profile lookup (``phone`` for SMS/voice numbers, ``whatsapp`` then ``phone`` for WhatsApp), and
an unknown customer gets a new profile with its identifiers, as Orchestrator does. Results are
cached in Redis for ``THREADLINE_PROFILE_CACHE_SECONDS``, so a busy customer costs one lookup
per TTL, not one per message. Lookup-and-create runs under a per-identifier lock: two workers
seeing a new customer at the same moment create one profile, not two.

Without a Memory store, a local profile directory in Redis plays the store's part: every bare
address belongs to one local profile (created on first sight), and operators link a second
address to it through ``/api/v1/profiles`` (``service.admin.profiles``).

Failures (Orchestrator fails silently here; threadline must not):

- transient (429, 5xx, timeouts, after the client's own retries) → :class:`ProfileUnavailable`;
  the engine retries the event, as it does for a transient v2 error;
- a missing or invalid store (404 on create, 400/401/403) → the event is still captured and
  grouped by its addresses, and the ``profile_fallbacks`` counter and a warning say so; the store
  is marked bad for a minute so every event does not pay for the same refusal.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from workers import stats
from workers.delivery.directory import LocalDirectory
from workers.foundations import keys
from workers.foundations.constants import CHAT
from workers.foundations.errors import Transient
from workers.foundations.log import get_logger
from workers.twilio.memory import MemoryClient
from workers.twilio.wire import V2Error

logger = get_logger("threadline.profiles")

BAD_STORE_SECONDS = 60
LOCK_TTL_MS = 15_000
LOCK_WAIT_S = 15.0
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


class ProfileUnavailable(Transient):
    """Memory failed transiently after retries: the event should be retried later, not regrouped."""


@dataclass(frozen=True)
class Resolution:
    """``profile_id`` None means: group by addresses (``reason`` says why)."""

    profile_id: str | None
    source: str                      # memory | cache | created | local | fallback
    reason: str | None = None
    memory_profile: bool = False     # True: a Memory profile id v2 knows (sent as profileId)


def identifiers(channel: str, bare: str) -> list[tuple[str, str]]:
    """The Memory identifiers to look a customer up by, most specific first. Pure.

    Phone numbers: ``phone`` (E.164); WhatsApp: ``whatsapp`` then ``phone`` (Orchestrator links an
    SMS, a call and a WhatsApp from one number to one profile). A SIP URI whose user part is a
    number counts as that number. Voice SDK identities and RCS sender ids resolve to nothing
    (Orchestrator: CLIENT identities do not resolve to Phone profiles). A bridged chat identity
    (CHAT) is an ``email`` when it looks like one, else an ``external_id``."""
    value = bare.strip()
    if channel == CHAT:  # a classic chat identity: an email address, else the app's own user id
        return [("email", value)] if "@" in value else [("external_id", value)] if value else []
    if value.lower().startswith(("sip:", "sips:")):
        user = value.split(":", 1)[1].rsplit("@", 1)[0]
        value = user if user.startswith("+") and user[1:].isdigit() else ""
    if value.lower().startswith("rcs:"):
        value = value[4:]
    if not (value.startswith("+") and value[1:].isdigit()):
        return []
    if channel == "WHATSAPP":
        return [("whatsapp", value), ("phone", value)]
    return [("phone", value)]


class ProfileResolver:
    """Resolves customers to profiles; one per worker process (it holds no per-event state)."""

    def __init__(self, redis, memory: MemoryClient | None, *, cache_seconds: int = 300,
                 retention_minutes: int = 1440) -> None:
        self.redis = redis
        self.memory = memory
        self.cache_seconds = cache_seconds
        self.retention = retention_minutes
        self.directory = LocalDirectory(redis)
        self._release = redis.register_script(_RELEASE)

    async def resolve(self, config_id: str, store_id: str | None, channel: str,
                      customer_bare: str) -> Resolution:
        """The customer's profile under configuration ``config_id``. ``memory_profile`` says
        whether v2 knows the id (the engine then sends it as the CUSTOMER's ``profileId``;
        local ``tlp_`` ids are threadline's own)."""
        if not store_id:
            return Resolution(await self.directory.ensure(customer_bare), "local")
        ids = identifiers(channel, customer_bare)
        if not ids:
            return await self._fallback(config_id, store_id, "no_identifier", warn=False)
        if await self.redis.exists(keys.memory_store_bad(store_id)):
            return await self._fallback(config_id, store_id, "memory_store_invalid", warn=False)
        cached = await self._cached(store_id, ids)
        if cached:
            return Resolution(cached, "cache", memory_profile=True)
        if self.memory is None:
            return await self._fallback(config_id, store_id, "memory_unconfigured", warn=True)
        try:
            async with self._lock(store_id, ids[0][1]):
                cached = await self._cached(store_id, ids)  # another worker may have just made it
                if cached:
                    return Resolution(cached, "cache", memory_profile=True)
                pid, source = await self._lookup_or_create(store_id, ids)
                pipe = self.redis.pipeline(transaction=False)
                for id_type, value in ids:
                    pipe.set(keys.profile_cache(store_id, id_type, value), pid, ex=self.cache_seconds)
                stats.add(pipe, {stats.field("profile_resolutions", config_id, source): 1},
                          retention_minutes=self.retention)
                await pipe.execute()
                return Resolution(pid, source, memory_profile=True)
        except V2Error as exc:
            if exc.transient:
                await self._count(config_id, "unavailable")
                raise ProfileUnavailable(f"Memory store unavailable (HTTP {exc.status})") from None
            await self.redis.set(keys.memory_store_bad(store_id), str(exc.status), ex=BAD_STORE_SECONDS)
            return await self._fallback(config_id, store_id, f"memory_http_{exc.status}", warn=True)

    async def _lookup_or_create(self, store_id: str, ids: list[tuple[str, str]]) -> tuple[str, str]:
        assert self.memory is not None
        for id_type, value in ids:
            found = await self.memory.lookup(store_id, id_type, value)
            if found:
                return found[0], "memory"
        phone = ids[-1][1]
        pid = await self.memory.create_profile(store_id, {"Contact": {"phone": phone}})
        for id_type, value in ids:
            await self.memory.add_identifier(store_id, pid, id_type, value)
        return pid, "created"

    async def _cached(self, store_id: str, ids: list[tuple[str, str]]) -> str | None:
        values = await self.redis.mget([keys.profile_cache(store_id, t, v) for t, v in ids])
        for v in values:
            if v:
                return v.decode() if isinstance(v, bytes) else v
        return None

    async def _fallback(self, config_id: str, store_id: str, reason: str, *, warn: bool) -> Resolution:
        await self._count(config_id, "fallback", reason)
        if warn:
            # a warning, not silence: grouping by profile has degraded to grouping by addresses
            logger.warning("profile resolution fell back to addresses", extra={
                "configuration": config_id, "memory_store": store_id, "reason": reason})
        return Resolution(None, "fallback", reason)

    async def _count(self, config_id: str, source: str, reason: str | None = None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        counts = {stats.field("profile_resolutions", config_id, source): 1}
        if reason:
            counts[stats.field("profile_fallbacks", config_id, reason)] = 1
        stats.add(pipe, counts, retention_minutes=self.retention)
        await pipe.execute()

    def _lock(self, store_id: str, value: str):
        return _IdentifierLock(self, keys.profile_lock(store_id, value))


class _IdentifierLock:
    """A short lease around lookup-or-create of one identifier (see the module docstring),
    renewed every LOCK_TTL/3 while held: Memory calls with their retries can outlast the TTL,
    and a lease that ran out would let a second worker create a second profile."""

    def __init__(self, resolver: ProfileResolver, name: str) -> None:
        self.resolver, self.name, self.token = resolver, name, uuid.uuid4().hex
        self._renewer: asyncio.Task | None = None

    async def _renew(self) -> None:
        redis = self.resolver.redis
        while await redis.eval(_RENEW, 1, self.name, self.token, LOCK_TTL_MS):
            await asyncio.sleep(LOCK_TTL_MS / 3000)

    async def __aenter__(self) -> None:
        deadline, delay = time.monotonic() + LOCK_WAIT_S, 0.005
        while not await self.resolver.redis.set(self.name, self.token, nx=True, px=LOCK_TTL_MS):
            if time.monotonic() > deadline:
                raise ProfileUnavailable("profile lookup lock stayed held")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._renewer = asyncio.create_task(self._renew_later())

    async def _renew_later(self) -> None:
        await asyncio.sleep(LOCK_TTL_MS / 3000)
        await self._renew()

    async def __aexit__(self, *exc: object) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.wait({self._renewer}, timeout=1.0)
        await self.resolver._release(keys=[self.name], args=[self.token])


def resolver_for(redis, client, settings) -> ProfileResolver:
    """The engine's GROUP_BY_PROFILE hook (``workers.delivery.deliver``): a resolver whose Memory calls
    ride on the process's v2 client."""
    return ProfileResolver(redis, MemoryClient(client) if client is not None else None,
                           cache_seconds=settings.profile_cache_seconds,
                           retention_minutes=settings.stats_retention_minutes)
