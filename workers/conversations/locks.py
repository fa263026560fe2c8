"""Token locks on Redis keys, renewed while held: the per-grouping-key lock of the engine.

A lock is ``SET name token NX PX``; only the holder's token releases or renews it. One renewal
loop per :class:`KeyLocks` renews every lock it holds in one script call every LOCK_TTL/3, so a
drain holding hundreds of keys costs one round trip per renewal period, not a task per lock.
A holder that dies stops renewing: its locks free themselves within LOCK_TTL.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from workers.foundations.errors import Transient

# Seconds a lock lives without renewal: how long a killed worker's lock blocks its key.
LOCK_TTL = 6.0

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# Every held lock in one call (KEYS: names; ARGV: ttl ms, then each name's token): one EVALSHA per
# renewal period, not one per lock.
_RENEW = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then n = n + redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return n
"""


class LockTimeout(Transient, TimeoutError):
    """The key stayed locked longer than the caller would wait (a transient failure)."""


class KeyLocks:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._held: dict[str, str] = {}
        self._renewer: asyncio.Task | None = None

    @contextlib.asynccontextmanager
    async def hold(self, name: str, *, wait: float = 30.0, what: str = "key") -> AsyncIterator[str]:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        delay = 0.005
        while not await self.redis.set(name, token, nx=True, px=int(LOCK_TTL * 1000)):
            if time.monotonic() > deadline:
                raise LockTimeout(f"{what} stayed locked")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        self._held[name] = token
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_held())
        try:
            yield token
        finally:
            self._held.pop(name, None)
            await self._release(keys=[name], args=[token])

    async def _renew_held(self) -> None:
        while self._held:
            await asyncio.sleep(LOCK_TTL / 3)
            held = list(self._held.items())
            if not held:
                break
            with contextlib.suppress(Exception):  # a missed renewal is retried next round
                for i in range(0, len(held), 500):  # a few hundred keys per script call at most
                    part = held[i:i + 500]
                    await self._renew(keys=[name for name, _ in part],
                                      args=[int(LOCK_TTL * 1000), *(token for _, token in part)])
