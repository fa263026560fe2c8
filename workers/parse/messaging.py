"""Messaging webhooks (incoming messages, status callbacks) → CaptureEvent. Pure.

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

from workers.eventlog.entries import MESSAGE, LogEntry
from workers.foundations.addresses import CHANNEL_PREFIXES, normalize
from workers.parse.event import CaptureEvent, ParseError, iso_ms, parse_timestamp

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
