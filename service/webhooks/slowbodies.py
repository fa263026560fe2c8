"""The bound on reading a webhook's body: a client that trickles it in gets 408.

Why one watchdog per process and not ``asyncio.timeout`` per request: a timer per request puts
a handle on the event loop's heap for every webhook (cancelled handles stay there until their
time), which measured ~80 µs a webhook — several times the cost of reading the body. Here a
read registers its task and deadline in a dict, and one task, waking every quarter of the
bound, cancels the reads that are past it; the reader asks :meth:`SlowBodies.expired` whether
a cancellation was the watchdog's (then it answers 408).
"""
from __future__ import annotations

import asyncio
from asyncio import get_running_loop

# Python 3.11's asyncio.current_task() is a Python function reading this dict (3.12's is in C).
_current_tasks: dict | None = getattr(asyncio.tasks, "_current_tasks", None)


class SlowBodies:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._reading: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="threadline-slow-bodies")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def begin(self) -> asyncio.Task | None:
        """A body read starts (the current task is watched until :meth:`end`)."""
        if self._task is None:  # no watchdog running (a bare app in a test)
            return None
        loop = get_running_loop()
        task = _current_tasks.get(loop) if _current_tasks is not None else asyncio.current_task()
        if task is not None:
            self._reading[task] = loop.time() + self.timeout
        return task

    def end(self, task: asyncio.Task | None) -> None:
        if task is not None:
            self._reading.pop(task, None)

    def expired(self, task: asyncio.Task | None) -> bool:
        """After a CancelledError in the read: True (and the cancellation undone) when it was
        the watchdog's; the caller answers 408 instead of dying."""
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.05, self.timeout / 4))
            now = loop.time()
            for task, deadline in list(self._reading.items()):
                if now > deadline and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
