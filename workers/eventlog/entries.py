"""What one webhook delivery becomes in the event log, and the pure rules that place it.

An entry holds the webhook kind, the receive time, the account, the correlation id and every
raw parameter (plus the query string of the URL Twilio called): nothing a worker could not
recompute from Twilio's own request. The web tier writes entries, the drains read them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from workers.foundations.addresses import shard_of_key, shard_of_pair
from workers.foundations.errors import Permanent

# The webhook kinds threadline logs (DESIGN §3 endpoints; Event Streams map onto these).
MESSAGE = "message"
MESSAGE_STATUS = "message_status"
CALL_STATUS = "call_status"
TRANSCRIPTION = "transcription"
CLASSIC = "classic"  # a Conversations (classic) service's post-event webhook (the bridge)
KINDS = (MESSAGE, MESSAGE_STATUS, CALL_STATUS, TRANSCRIPTION, CLASSIC)


class MalformedEntry(Permanent, ValueError):
    """A log entry that cannot be decoded; the drain dead-letters it (reason ``malformed_entry``)."""

    reason = "malformed_entry"


# One encoder for every entry (json.dumps with options builds a new one per call), and its C
# core made once too: JSONEncoder.encode builds the C encoder (and a dict to detect cycles,
# which a dict of strings cannot have) on every call, a quarter of its cost.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks = _C_ENCODER(None, _COMPACT_JSON.default, json.encoder.encode_basestring, None,
                            ":", ",", False, False, True) if _C_ENCODER else None


def compact_json(value: dict) -> str:
    """``value`` as ``_COMPACT_JSON.encode`` writes it (parsed data: no cycle to detect)."""
    if _encode_chunks is None:
        return _COMPACT_JSON.encode(value)
    return "".join(_encode_chunks(value, 0))


@dataclass(frozen=True)
class LogEntry:
    kind: str
    received_at_ms: int
    account: str
    params: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    cid: str = ""

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields (short names: they are stored once per webhook)."""
        items = self.field_items()
        return dict(zip(items[::2], items[1::2]))

    def field_items(self) -> list[str]:
        """:meth:`to_fields` flat, name, value, name, value…: the XADD arguments as the
        append script takes them (built once per webhook, so no dict in between)."""
        return ["k", self.kind, "t", str(self.received_at_ms), "a", self.account,
                "p", self.params_json(), "q", self.query_json(), "c", self.cid]

    def params_json(self) -> str:
        return compact_json(self.params)

    def query_json(self) -> str:
        return compact_json(self.query) if self.query else "{}"

    @classmethod
    def from_fields(cls, fields: dict) -> LogEntry:
        f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in fields.items()}
        try:
            kind = f["k"]
            if kind not in KINDS:
                raise MalformedEntry(f"unknown kind {kind!r}")
            params = json.loads(f["p"])
            query = json.loads(f.get("q") or "{}")
            if not isinstance(params, dict) or not isinstance(query, dict):
                raise MalformedEntry("params are not an object")
            return cls(kind, int(f["t"]), f.get("a", ""), params, query, f.get("c", ""))
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, MalformedEntry):
                raise
            raise MalformedEntry(f"undecodable entry: {type(exc).__name__}") from None


def dedupe_key(kind: str, params: dict[str, str]) -> str:
    """The identity of the *event* a delivery reports, not of the SID alone (issue 3).

    A retry of the same delivery has the same key; a new status of the same message does not.
    """
    p = params.get
    if kind == MESSAGE:
        return f"m:{p('MessageSid', '')}"
    if kind == MESSAGE_STATUS:
        return f"ms:{p('MessageSid', '')}:{p('MessageStatus', '')}:{p('EventType', '')}"
    if kind == CALL_STATUS:
        return f"cs:{p('CallSid', '')}:{p('CallStatus', '')}:{p('SequenceNumber', '')}"
    if kind == TRANSCRIPTION:
        return f"tr:{p('TranscriptionSid', '')}:{p('TranscriptionEvent', '')}:{p('SequenceId', '')}"
    if kind == CLASSIC:
        return classic_dedupe_key(params)
    raise ValueError(f"unknown kind {kind!r}")


def shard_of(kind: str, params: dict[str, str], shards: int) -> int:
    """The event-log shard of a delivery.

    Messages: the address pair, sorted, so both directions share a shard. Voice: the call
    (the parent call for a dialled leg), because transcription callbacks carry no addresses and
    a call's status and transcription events must stay in one shard, in order. A conversation
    reached from two shards is guarded by the per-grouping-key lock (DESIGN §1).
    """
    if kind == CLASSIC:  # one classic conversation's events stay in one shard, in order
        return shard_of_key(f"classic:{params.get('ConversationSid', '')}", shards)
    if kind in (CALL_STATUS, TRANSCRIPTION):
        call = params.get("ParentCallSid") or params.get("CallSid") or ""
        return shard_of_key(f"call:{call}", shards)
    return shard_of_pair(params.get("From"), params.get("To"), shards)


def classic_dedupe_key(params: dict[str, str]) -> str:
    """A classic post-event's identity: its EventType, the Sid of the resource it is about and
    that resource's index or date, so a retry (or the same event from Event Streams) is one
    event, while an update of the same message is another."""
    p = params.get
    sid = (p("MessageSid") or p("ParticipantSid") or p("ConversationSid") or "")
    when = (p("Index") if p("EventType") == "onMessageAdded" else None) or p("DateRemoved") \
        or p("StateUpdated") or p("DateUpdated") or p("DateCreated") or ""
    return f"cv:{p('EventType', '')}:{sid}:{when}"
