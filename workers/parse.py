"""LogEntry → CaptureEvent: what one logged webhook says, in the terms capture works with.

Pure (no I/O): the drain parses every entry before matching, and a bad entry must become a
:class:`ParseError` with a short reason slug (the dead letter's reason), never an exception
that stops the shard. Messaging kinds live here; voice kinds are parsed by
``workers.parse_voice`` (the voice owner's module), which :func:`parse` calls when present.

Delivery status — Twilio ``MessageStatus`` → v2 ``deliveryStatus`` (documented mapping):

=====================================  ===========  ====
MessageStatus                          deliveryStatus rank
=====================================  ===========  ====
accepted, scheduled, queued            INITIATED    1
sending, sent, receiving               IN_PROGRESS  2
undelivered, failed, canceled          FAILED       3
delivered, received, partially_delivered DELIVERED  4
read                                   READ         5
=====================================  ===========  ====

Callbacks arrive out of order and repeated, so a recipient's status only ever moves to a
higher rank. FAILED ranks below DELIVERED: a positive confirmation from the handset (or a
read receipt) is stronger evidence than a carrier's failure report, and a total order makes
the final status the same whatever order the callbacks came in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from workers.addresses import CHANNEL_PREFIXES, normalize
from workers.events import CALL_STATUS, MESSAGE, MESSAGE_STATUS, TRANSCRIPTION, LogEntry

CHANNELS = ("SMS", "WHATSAPP", "RCS", "VOICE")

DELIVERY_STATUS: dict[str, str] = {
    "accepted": "INITIATED", "scheduled": "INITIATED", "queued": "INITIATED",
    "sending": "IN_PROGRESS", "sent": "IN_PROGRESS", "receiving": "IN_PROGRESS",
    "undelivered": "FAILED", "failed": "FAILED", "canceled": "FAILED",
    "delivered": "DELIVERED", "received": "DELIVERED", "partially_delivered": "DELIVERED",
    "read": "READ",
}
STATUS_RANK: dict[str, int] = {
    "INITIATED": 1, "IN_PROGRESS": 2, "FAILED": 3, "DELIVERED": 4, "READ": 5,
}
_INBOUND_STATUSES = {"receiving", "received"}
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


class ParseError(ValueError):
    """An entry that cannot become a CaptureEvent; ``reason`` is a slug for the dead letter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CaptureEvent:
    """One communication-bearing event, as capture rules, grouping and delivery see it."""

    kind: str
    channel: str                 # SMS | WHATSAPP | RCS | VOICE
    from_addr: str               # raw, as Twilio sent it
    to_addr: str
    from_bare: str               # normalize(): what rules and grouping compare
    to_bare: str
    direction: str               # inbound | outbound (seen from the account)
    resource_id: str             # MessageSid (voice: TranscriptionSid + sequence)
    text: str | None             # the body; None when the webhook carries none (status callbacks)
    delivery_status: str | None  # v2 deliveryStatus of the recipient(s), or None
    occurred_at: str             # ISO 8601 UTC
    metadata: dict = field(default_factory=dict)
    account: str = ""
    received_at_ms: int = 0
    cid: str = ""
    occurred_at_source: str = "received"  # "twilio" when a Twilio timestamp was used

    def v2_address(self, side: str) -> str:
        """The address as v2 wants it for this channel: E.164 for SMS/VOICE, prefixed otherwise."""
        bare = self.from_bare if side == "from" else self.to_bare
        return v2_address(self.channel, bare)


def v2_address(channel: str, bare: str) -> str:
    """v2's address format: ``+E164`` for SMS/VOICE, ``whatsapp:+E164``, ``rcs:…`` (DESIGN §4)."""
    if channel == "WHATSAPP":
        return f"whatsapp:{bare}"
    if channel == "RCS":
        return bare if bare.startswith("rcs:") else f"rcs:{bare}"
    return bare


def iso_ms(ms: int) -> str:
    """Epoch milliseconds → ``2026-03-02T15:04:05.123Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_timestamp(value: str | None) -> str | None:
    """Twilio's timestamps (ISO 8601, or RFC 2822 as in voice callbacks) → ISO 8601 UTC, else None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    dt: datetime | None = None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return iso_ms(int(dt.timestamp() * 1000))


def delivery_status_of(message_status: str | None) -> str | None:
    """A MessageStatus (any case: Event Streams writes it upper-case) → deliveryStatus."""
    if not message_status:
        return None
    return DELIVERY_STATUS.get(message_status.strip().lower())


def better_status(current: str | None, new: str | None) -> str | None:
    """The higher-ranked of two delivery statuses (never moves backwards)."""
    if not new:
        return current
    if not current:
        return new
    return new if STATUS_RANK.get(new, 0) > STATUS_RANK.get(current, 0) else current


def messaging_channel(from_addr: str, to_addr: str) -> str:
    """SMS unless an address carries ``whatsapp:`` / ``rcs:``; any other scheme is refused."""
    found: set[str] = set()
    for raw in (from_addr, to_addr):
        m = _URI_SCHEME.match(raw.strip())
        if not m:
            continue
        scheme = m.group(1).lower()
        if scheme not in CHANNEL_PREFIXES:
            raise ParseError("unknown_channel", f"address scheme {scheme!r} is not a messaging channel")
        found.add(CHANNEL_PREFIXES[scheme])
    if len(found) > 1:
        raise ParseError("channel_mismatch", "From and To name different channels")
    return found.pop() if found else "SMS"


def _media(params: dict[str, str]) -> dict:
    """MMS media: counted and linked in metadata (never put in the text)."""
    try:
        count = int(params.get("NumMedia") or 0)
    except ValueError:
        count = 0
    media = []
    for i in range(max(0, min(count, 10))):
        url = params.get(f"MediaUrl{i}")
        if url:
            media.append({"url": url, "contentType": params.get(f"MediaContentType{i}", "")})
    return {"numMedia": count, "media": media} if count else {}


def _required(params: dict[str, str], name: str) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise ParseError("missing_field", f"{name} is missing")
    return value


def parse_message(entry: LogEntry) -> CaptureEvent:
    """An inbound message webhook or a message status callback → CaptureEvent."""
    p = entry.params
    sid = (p.get("MessageSid") or p.get("SmsMessageSid") or p.get("SmsSid") or "").strip()
    if not sid:
        raise ParseError("missing_field", "MessageSid is missing")
    from_addr, to_addr = _required(p, "From"), _required(p, "To")
    channel = messaging_channel(from_addr, to_addr)
    from_bare, to_bare = normalize(from_addr), normalize(to_addr)
    if not from_bare or not to_bare:
        side = "From" if not from_bare else "To"
        raise ParseError("bad_address", f"{side} does not normalize to an address")

    metadata: dict = {}
    if entry.kind == MESSAGE:
        direction, status_raw = "inbound", "received"
        text: str | None = p.get("Body", "")
        metadata.update(_media(p))
    else:
        status_raw = (p.get("MessageStatus") or p.get("SmsStatus") or "").strip().lower()
        if not status_raw:
            raise ParseError("missing_field", "MessageStatus is missing")
        direction = "inbound" if status_raw in _INBOUND_STATUSES else "outbound"
        text = p.get("Body")  # status callbacks carry none; Event Streams may
    status = delivery_status_of(status_raw)
    if status is None:
        raise ParseError("unknown_status", f"MessageStatus {status_raw!r}")
    metadata["messageStatus"] = status_raw
    for src, dst in (("ErrorCode", "errorCode"), ("RawDlrDoneDate", "dlrDoneDate"),
                     ("OriginalRepliedMessageSid", "repliedToSid"),
                     ("MessagingServiceSid", "messagingServiceSid")):
        if p.get(src):
            metadata[dst] = p[src]

    twilio_time = parse_timestamp(p.get("Timestamp"))
    return CaptureEvent(
        kind=entry.kind, channel=channel, from_addr=from_addr, to_addr=to_addr,
        from_bare=from_bare, to_bare=to_bare, direction=direction, resource_id=sid,
        text=text, delivery_status=status,
        occurred_at=twilio_time or iso_ms(entry.received_at_ms),
        occurred_at_source="twilio" if twilio_time else "received",
        metadata=metadata, account=entry.account or p.get("AccountSid", ""),
        received_at_ms=entry.received_at_ms, cid=entry.cid,
    )


def parse(entry: LogEntry) -> CaptureEvent | None:
    """The CaptureEvent of a log entry; None when the entry carries nothing to capture.

    Voice kinds go to ``workers.parse_voice.parse_voice(entry)`` (same contract) once the
    voice owner's module exists; until then they are refused as ``unsupported_kind``.
    """
    if entry.kind in (MESSAGE, MESSAGE_STATUS):
        return parse_message(entry)
    if entry.kind in (CALL_STATUS, TRANSCRIPTION):
        try:
            from workers import parse_voice  # type: ignore[attr-defined]
        except ModuleNotFoundError as exc:
            if exc.name != "workers.parse_voice":
                raise
            raise ParseError("unsupported_kind", f"no parser for {entry.kind}") from None
        return parse_voice.parse_voice(entry)
    raise ParseError("unsupported_kind", f"no parser for {entry.kind!r}")
