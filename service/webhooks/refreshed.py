"""An in-memory copy of something in Redis, reloaded in the background when its generation moves.

The webhook path must not pay a Redis round trip for what changes rarely (which numbers are
forwarded, the capture rules): each web process keeps a copy and a task checks a generation
counter every ``interval`` seconds (one GET), reloading only when it moved. While Redis is away
the last copy stays in force, and the task never dies of an error.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError


class Refreshed:
    """Subclasses implement :meth:`refresh` (blocking; True when it reloaded) and name
    ``what`` for the logs."""

    what = "copy"

    def __init__(self, interval: float, logger: logging.Logger | logging.LoggerAdapter) -> None:
        self._interval = interval
        self._logger = logger
        self._task: asyncio.Task | None = None

    def refresh(self) -> bool:
        raise NotImplementedError

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.refresh)
        except RedisError as exc:
            self._logger.warning(f"{self.what} not loaded yet", extra={"error": type(exc).__name__})
        self._task = asyncio.create_task(self._loop(), name=f"threadline-{self.what.replace(' ', '-')}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await asyncio.to_thread(self.refresh)
            except RedisError as exc:
                self._logger.info(f"{self.what} keeps its last state", extra={"error": type(exc).__name__})
            except Exception:  # never let the refresher die: the last copy stays in force
                self._logger.exception(f"{self.what} refresh failed")
