"""Reading a webhook's parameters: strict decoding, limits, and the parameters each kind needs.

Pure functions (no I/O) so every refusal reason is unit-tested. A refusal raises
:class:`Refused` with the HTTP status, the counter outcome and a plain reason that names the
parameter, never a value (values may be message bodies or phone numbers).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

from workers import eventlog
from workers.eventlog.entries import CALL_STATUS, CLASSIC, MESSAGE, MESSAGE_STATUS, TRANSCRIPTION
from workers.foundations.errors import Permanent

# Twilio's richest webhook (an MMS with 10 media items and a WhatsApp ad referral) has well
# under 100 parameters; a flood of them is refused before anything is built from it.
MAX_PARAMS = 500

REQUIRED: dict[str, tuple[str, ...]] = {
    MESSAGE: ("MessageSid", "From", "To"),
    MESSAGE_STATUS: ("MessageSid", "From", "To"),
    CALL_STATUS: ("CallSid", "CallStatus"),
    TRANSCRIPTION: ("TranscriptionSid", "TranscriptionEvent"),
    CLASSIC: ("EventType", "ChatServiceSid", "ConversationSid"),
}
# Status callbacks must also say which status they report, or their dedupe key is meaningless.
REQUIRED[MESSAGE_STATUS] += ("MessageStatus",)

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


class Refused(Permanent):
    """A delivery threadline will not log: HTTP status, counter outcome (the slug), plain reason."""

    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason


def bad(reason: str) -> Refused:
    return Refused(400, eventlog.BAD_REQUEST, reason)


def media_type(content_type: str | None) -> str:
    """``application/x-www-form-urlencoded; charset=utf-8`` → ``application/x-www-form-urlencoded``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def require_type(content_type: str | None, want: str) -> None:
    if media_type(content_type) != want:
        raise Refused(415, eventlog.UNSUPPORTED_MEDIA, f"Content-Type must be {want}")


def check_length(content_length: str | None, limit: int) -> None:
    """Refuse on the declared length before reading a byte (the body is counted again as read)."""
    if content_length is None:
        return
    if not content_length.strip().isdigit():
        raise bad("invalid Content-Length")
    if int(content_length) > limit:
        raise too_large(limit)


def too_large(limit: int) -> Refused:
    return Refused(413, eventlog.TOO_LARGE, f"body over {limit} bytes")


def parse_pairs(raw: bytes | str, what: str = "body") -> list[tuple[str, str]]:
    """Decode ``application/x-www-form-urlencoded`` (a body or a query) strictly.

    Blank values are kept (Twilio signs them); bytes that are not UTF-8, raw or
    percent-encoded, are refused rather than replaced, because a replaced character would
    silently change what Twilio sent.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad(f"{what} is not valid UTF-8") from None
    if not raw:
        return []
    if raw.count("&") >= MAX_PARAMS:
        raise bad(f"too many parameters in {what} (limit {MAX_PARAMS})")
    if "%00" not in raw and _CANONICAL.fullmatch(raw):
        return _parse_canonical(raw, what)
    try:
        return [(_unquote(name), _unquote(value))
                for name, _, value in (part.partition("=") for part in raw.split("&") if part)]
    except UnicodeDecodeError:
        raise bad(f"{what} has percent-encoded bytes that are not UTF-8") from None


# The form every client writes (Twilio's included): name=value pairs joined by "&", one "=" in
# each, no empty pair, no NUL. Anything else takes the pair-by-pair way above.
_CANONICAL = re.compile(r"[^&=\x00]*=[^&=\x00]*(?:&[^&=\x00]*=[^&=\x00]*)*")


def _parse_canonical(raw: str, what: str) -> list[tuple[str, str]]:
    """:func:`parse_pairs` of a canonical form, decoded in one pass over the whole text instead
    of one per name and value: the separators become NUL (which the text has nowhere, raw or
    as ``%00``), the text is decoded once, and split on NUL into names and values — an escaped
    ``%26`` or ``%3D`` becomes "&" or "=" inside its value, as pair by pair."""
    text = raw.replace("&", "\x00").replace("=", "\x00")
    try:
        text = _unquote(text)
    except UnicodeDecodeError:
        raise bad(f"{what} has percent-encoded bytes that are not UTF-8") from None
    flat = iter(text.split("\x00"))
    return list(zip(flat, flat))


def _unquote(text: str) -> str:
    """``urllib.parse.parse_qsl``'s decoding of one name or value (``+`` is a space), strict
    about UTF-8, and free when there is nothing to decode (most of Twilio's values)."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" in text:
        text = _unquote_ascii(text) or unquote(text, encoding="utf-8", errors="strict")
    return text


# "2B" → "+": the two hex digits after "%" of every ASCII character, digits in either case.
_ASCII_ESCAPES = {hi + lo: chr(i) for i in range(128)
                  for hi in {f"{i >> 4:x}", f"{i >> 4:X}"} for lo in {f"{i & 15:x}", f"{i & 15:X}"}}


def _unquote_ascii(text: str) -> str | None:
    """Percent-decoding when every escape is an ASCII character (phone numbers' ``%2B``,
    punctuation in a message): a dict lookup per escape instead of ``unquote``'s regex and
    bytes round trip, the largest share of decoding a webhook. None when any escape is not
    plain ASCII (UTF-8 bytes, or a malformed ``%``): ``unquote`` decides those."""
    first, *rest = text.split("%")
    out = [first]
    for part in rest:
        char = _ASCII_ESCAPES.get(part[:2])
        if char is None:
            return None
        out.append(char)
        out.append(part[2:])
    return "".join(out)


def single_valued(pairs: Sequence[tuple[str, str]], what: str = "body") -> dict[str, str]:
    """The pairs as a dict, refusing a repeated name: no Twilio webhook repeats one, and the
    log entry keeps one value per name, so keeping either copy would lose the other."""
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise bad(f"parameter {_printable(name)} repeated in {what}")
        seen.add(name)
    raise AssertionError("unreachable")  # pragma: no cover


def require(kind: str, params: dict[str, str]) -> None:
    missing = [n for n in REQUIRED[kind] if not params.get(n)]
    if missing:
        raise bad("missing required parameter" + ("s" if len(missing) > 1 else "") + ": "
                  + ", ".join(missing))


def _printable(name: str) -> str:
    name = name[:40]
    return name if name.isprintable() else repr(name)
