"""A number's own webhooks, as `threadline connect --forward` found them: where forwarding relays.

`connect --forward` records, per number, the ``SmsUrl`` / ``VoiceUrl`` / ``StatusCallback`` (and
their methods) the operator's application had configured, *before* pointing the number at
threadline; every web process relays the number's webhooks to those URLs
(``service.webhooks.forwarding``), and `disconnect` writes them back to Twilio. One hash
(:data:`workers.foundations.keys.UPSTREAMS`, number → JSON) holds them; a generation counter beside it moves
on every change, so web processes reload the table only when it changed.

Which webhook goes where (the number's field Twilio would have called):
``messaging`` → ``SmsUrl``/``SmsMethod``; ``voice`` (incoming call) → ``VoiceUrl``/``VoiceMethod``;
``voice_status`` → ``StatusCallback``/``StatusCallbackMethod``. An empty URL means the application
had none: the webhook is captured and answered as without forwarding.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from workers.foundations import keys

MESSAGING, VOICE, VOICE_STATUS = "messaging", "voice", "voice_status"
ROLES = (MESSAGING, VOICE, VOICE_STATUS)
# How long a change to the table takes to reach every web process (they poll the generation at
# half this interval): `connect` waits this long after recording before pointing a number at
# threadline, and `disconnect` forgets a number only after restoring it.
SETTLE_SECONDS = 2.0

# The IncomingPhoneNumber fields (API spelling) behind each role: (URL, method).
FIELDS: dict[str, tuple[str, str]] = {
    MESSAGING: ("SmsUrl", "SmsMethod"),
    VOICE: ("VoiceUrl", "VoiceMethod"),
    VOICE_STATUS: ("StatusCallback", "StatusCallbackMethod"),
}


@dataclass(frozen=True)
class Upstream:
    """One number's own webhooks (the IncomingPhoneNumber's fields, API spelling)."""

    number: str                     # E.164, as Twilio's ``To`` spells it
    number_sid: str                 # PN…
    account: str                    # AC… that owns the number (whose token signs the relay)
    urls: dict[str, str]            # field name (SmsUrl, SmsMethod, …) → value, all six fields

    def target(self, role: str) -> tuple[str, str] | None:
        """(URL, method) the application wants this role's webhook at; None when it has none."""
        url_field, method_field = FIELDS[role]
        url = (self.urls.get(url_field) or "").strip()
        if not url:
            return None
        method = (self.urls.get(method_field) or "POST").strip().upper()
        return url, "GET" if method == "GET" else "POST"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Upstream | None:
        """The record, or None for one that cannot be read (never an exception on a hot path)."""
        try:
            doc = json.loads(raw)
            urls = doc["urls"]
            if not isinstance(urls, dict):
                return None
            return cls(str(doc["number"]), str(doc["number_sid"]), str(doc["account"]),
                       {str(k): str(v) for k, v in urls.items()})
        except (ValueError, KeyError, TypeError):
            return None


def generation(redis) -> int:
    raw = redis.get(keys.UPSTREAMS_GENERATION)
    return int(raw) if raw else 0


def load(redis) -> dict[str, Upstream]:
    """Every recorded number's upstream (unreadable records are skipped)."""
    out: dict[str, Upstream] = {}
    for number, raw in redis.hgetall(keys.UPSTREAMS).items():
        up = Upstream.from_json(raw)
        if up is not None:
            out[number.decode() if isinstance(number, bytes) else number] = up
    return out


def record(redis, upstream: Upstream) -> None:
    """Remember a number's own webhooks (before the number is pointed at threadline)."""
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.UPSTREAMS, upstream.number, upstream.to_json())
    pipe.incr(keys.UPSTREAMS_GENERATION)
    pipe.execute()


def forget(redis, number: str) -> None:
    """Drop a number's record (after its own webhooks are back at Twilio)."""
    pipe = redis.pipeline(transaction=True)
    pipe.hdel(keys.UPSTREAMS, number)
    pipe.incr(keys.UPSTREAMS_GENERATION)
    pipe.execute()
