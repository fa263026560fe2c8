"""LogEntry → CaptureEvent: what one logged webhook says, in the terms capture works with.

Pure (no I/O): the drain parses every entry before matching, and a bad entry must become a
:class:`ParseError` with a short reason slug (the dead letter's reason), never an exception
that stops the shard. One module per family of webhooks — :mod:`.messaging`, :mod:`.voice`,
:mod:`.classic` — chosen by the entry's kind in :data:`PARSERS`; the shared types are in :mod:`.event`, so
no parser imports another. It may import the foundations and :mod:`workers.eventlog`'s
entries; it does no I/O at all.
"""
from __future__ import annotations

from collections.abc import Callable

from workers.eventlog.entries import CALL_STATUS, CLASSIC, MESSAGE, MESSAGE_STATUS, TRANSCRIPTION, LogEntry
from workers.parse.classic import parse_classic
from workers.parse.event import CaptureEvent, ParseError, iso_ms, parse_timestamp, v2_address
from workers.parse.messaging import (
    DELIVERY_STATUS,
    STATUS_RANK,
    better_status,
    delivery_status_of,
    messaging_channel,
    parse_message,
)
from workers.parse.voice import parse_voice

__all__ = ["CaptureEvent", "ParseError", "iso_ms", "parse_timestamp", "v2_address",
           "DELIVERY_STATUS", "STATUS_RANK", "better_status", "delivery_status_of", "messaging_channel",
           "parse_message", "parse_voice", "parse_classic", "PARSERS", "parse"]

# The parser of each webhook kind, chosen in one place (as uvicorn's HTTP_PROTOCOLS).
PARSERS: dict[str, Callable[[LogEntry], CaptureEvent | None]] = {
    MESSAGE: parse_message,
    MESSAGE_STATUS: parse_message,
    CALL_STATUS: parse_voice,
    TRANSCRIPTION: parse_voice,
    CLASSIC: parse_classic,
}


def parse(entry: LogEntry) -> CaptureEvent | None:
    """The CaptureEvent of a log entry; an unknown kind is refused as ``unsupported_kind``."""
    parser = PARSERS.get(entry.kind)
    if parser is None:
        raise ParseError("unsupported_kind", f"no parser for {entry.kind!r}")
    return parser(entry)
