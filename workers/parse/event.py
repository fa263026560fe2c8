"""The types every parser shares: CaptureEvent, ParseError, and Twilio's timestamps. Pure.

A module of its own so the messaging and voice parsers (and the engine beyond) import them
from one place, and no parser imports another.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from workers.foundations.errors import Permanent


class ParseError(Permanent, ValueError):
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
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
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
        dt = dt.replace(tzinfo=UTC)
    return iso_ms(int(dt.timestamp() * 1000))
