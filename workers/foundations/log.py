"""Structured logs: one JSON object per line, with the correlation id of the delivery in hand.

The correlation id is born at the webhook (stored in the log entry) and set again by the drain
and the v2 client, so one id follows a delivery from Twilio's request to the v2 call.
Never pass a message body, a token or a signature to a logger.
"""
from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import sys
import time

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count()


def new_correlation_id() -> str:
    """16 hex digits, unique across processes: a random per-process prefix and a counter.

    Made for every webhook, so it costs a counter step, not a random read (a system call).
    """
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line; ``extra={...}`` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            out["cid"] = cid
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str = "INFO") -> None:
    """Send every threadline log line to stderr as JSON; called once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
