"""Small conversions every package needs, one home each: Redis bytes, URL path segments, ISO times."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import quote


def as_str(value: object, default: str = "") -> str:
    """A Redis reply (bytes, or str with ``decode_responses``) as text; None → ``default``.

    Undecodable bytes are replaced, never raised: a reader of engine state must not fail on one
    bad value.
    """
    if value is None:
        return default
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def path_segment(value: object) -> str:
    """``value`` quoted as one URL path segment (a ``/`` in an id must not open a new segment)."""
    return quote(str(value), safe="")


def iso_to_epoch(iso: str) -> float:
    """ISO 8601 (``…Z`` or with an offset) → epoch seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
