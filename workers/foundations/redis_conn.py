"""Connections to Redis: a real server, or (``memory://``) an embedded fakeredis for ``threadline dev``."""
from __future__ import annotations

import threading
from typing import Any

import redis

from workers.foundations.settings import Settings

_embedded_lock = threading.Lock()
_embedded_server: Any = None  # a fakeredis.FakeServer, made on first use


def _embedded() -> Any:
    """One in-process fakeredis server shared by every connection of this process."""
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            import fakeredis

            _embedded_server = fakeredis.FakeServer()
        return _embedded_server


def connect(settings: Settings, *, decode_responses: bool = False) -> redis.Redis:
    """A client for ``settings.redis_url``; RQ needs ``decode_responses=False``."""
    if settings.redis_url.startswith("memory://"):
        import fakeredis

        return fakeredis.FakeRedis(server=_embedded(), decode_responses=decode_responses)
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=decode_responses,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )


def connect_async(settings: Settings, *, decode_responses: bool = False,
                  socket_timeout: float | None = 5):  # -> redis.asyncio.Redis
    """An asyncio client for the same Redis (the web tier and drains use it).

    ``socket_timeout=None`` is for a caller that bounds its calls itself: redis-py's asyncio
    client makes every send with a timeout an ``asyncio.wait_for`` task and every read a timer
    (service.webhooks.appender bounds each group commit once instead)."""
    if settings.redis_url.startswith("memory://"):
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_embedded(), decode_responses=decode_responses)
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=decode_responses,
        socket_connect_timeout=2,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )
