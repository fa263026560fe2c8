"""Which server said it: ``threadline dev`` runs two uvicorn servers (web and the twin) in one
process, and uvicorn's start-up lines ("Started server process", "Application startup
complete", "Uvicorn running on …") would otherwise read twice with nothing saying which is
which. Each server is served in its own asyncio task with a label in a context variable
(tasks copy their context, so the lifespan task a server starts carries it too), and a filter
on uvicorn's logger puts the label in front of the line and in a ``server`` field.
"""
from __future__ import annotations

import contextvars
import logging

_label: contextvars.ContextVar[str | None] = contextvars.ContextVar("uvicorn_server", default=None)


class _Label(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        label = _label.get()
        if label and not hasattr(record, "server"):
            record.server = label
            record.msg = f"{label}: {record.msg}"
        return True


_FILTER = _Label()


def install() -> None:
    """Label the lines of uvicorn's loggers (safe to call more than once)."""
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addFilter(_FILTER)


async def serve(server, label: str) -> None:
    """``server.serve()`` with its log lines labelled ``label`` (call in a task of its own)."""
    _label.set(label)
    await server.serve()
