"""The conversation record's shape and its compact encoding as a Redis hash (pure, no I/O).

Why compact: issue 5 budgets ≤ 1 KiB of Redis per open conversation, record and indexes and
lifecycle timer together. Redis keeps a small hash as one listpack (a few bytes per field)
only while every value is ≤ ``hash-max-listpack-value`` (64) bytes; one longer value turns
the whole record into a hashtable at ~3× the memory. So every value here stays short:

====================  =================================================================
field                 value
====================  =================================================================
``c``                 configuration id
``v``                 the pinned configuration version
``k``                 grouping key
``g``                 grouping type (``P``/``A``/``AC`` for the three known ones, else as is)
``s``                 status: CREATING, ACTIVE, INACTIVE or CLOSED
``x``                 why it closed (absent while open)
``tw``                v2 id, ``conv_conversation_`` prefix dropped (``!`` + id without it)
``t0`` / ``t1``       created / last updated, epoch milliseconds (an integer: 10 bytes)
``a{channel}``        last activity on the channel, epoch milliseconds
``p{bare}``           participant: ``{id}|{type}|{channel}[|{address}]`` — the id without its
                      ``conv_participant_`` prefix, the address only when it is not
                      ``v2_address(channel, bare)``
``o{bare}:{n}``       the participant's n-th further ``{channel}|{address}`` (a customer who
                      moved from SMS to WhatsApp), in the order v2 was told them
``h{n}``              ``1``: event-log shard n carried events of this conversation (its
                      pairs', its calls'): a close waits for those shards
                      (:mod:`workers.lifecycle.watermark`)
====================  =================================================================

The record's own id is its key (``tl:conv:{id}``), not a field.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from workers.foundations.constants import ACTIVE, CLOSED, CREATING, INACTIVE, OPEN
from workers.foundations.text import as_str
from workers.parse import v2_address

STATUSES = (CREATING, ACTIVE, INACTIVE, CLOSED)

_GTYPES = {"GROUP_BY_PROFILE": "P", "GROUP_BY_PARTICIPANT_ADDRESSES": "A",
           "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE": "AC"}
_GTYPE_NAMES = {v: k for k, v in _GTYPES.items()}
CONVERSATION_PREFIX, PARTICIPANT_PREFIX = "conv_conversation_", "conv_participant_"


@dataclass
class Participant:
    id: str
    type: str
    address: str   # as v2 has it (e.g. ``whatsapp:+44…``), on the first channel it was seen on
    channel: str
    # Every (channel, address) v2 holds for it: a customer who moves from SMS to WhatsApp in one
    # conversation (GROUP_BY_PARTICIPANT_ADDRESSES) gets the second address added.
    others: list[tuple[str, str]] = field(default_factory=list)

    @property
    def addresses(self) -> list[tuple[str, str]]:
        return [(self.channel, self.address), *self.others]


@dataclass
class Conversation:
    id: str
    configuration_id: str
    configuration_version: int
    grouping_key: str
    grouping_type: str
    status: str
    twilio_id: str | None = None
    participants: dict[str, Participant] = field(default_factory=dict)  # bare address → …
    last_activity: dict[str, float] = field(default_factory=dict)       # channel → epoch s
    created_at: float = 0.0
    updated_at: float = 0.0
    closed_reason: str | None = None
    shards: set[int] = field(default_factory=set)                       # event-log shards it drew on

    @property
    def channels(self) -> list[str]:
        return sorted(self.last_activity)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def to_api(self) -> dict:
        """The admin API's view (no message content is ever stored here)."""
        return {
            "id": self.id, "twilioConversationId": self.twilio_id, "status": self.status,
            "configurationId": self.configuration_id,
            "configurationVersion": self.configuration_version,
            "groupingKey": self.grouping_key, "groupingType": self.grouping_type,
            "channels": self.channels,
            "participants": [{"address": p.address, "channel": p.channel, "type": p.type,
                              "participantId": p.id, "bareAddress": bare}
                             for bare, p in sorted(self.participants.items())],
            "lastActivity": {ch: _iso(at) for ch, at in sorted(self.last_activity.items())},
            "createdAt": _iso(self.created_at), "updatedAt": _iso(self.updated_at),
            **({"closedReason": self.closed_reason} if self.closed_reason else {}),
        }


def new_id() -> str:
    """A threadline conversation id: ``tlc_`` + 96 random bits (24 hex digits). Not longer,
    because the id is stored five times per open conversation (record key, two sorted sets,
    two index values) and ≤ 28 characters fits Redis' 32-byte string allocation."""
    return "tlc_" + secrets.token_hex(12)


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if at else ""



def ms(at: float) -> str:
    """Epoch seconds → the stored integer milliseconds."""
    return str(int(round(at * 1000)))


def seconds(v: object) -> float:
    return int(as_str(v)) / 1000 if v not in (None, b"", "") else 0.0


def _pack_id(value: str, prefix: str) -> str:
    rest = value[len(prefix):] if value.startswith(prefix) else None
    return rest if rest and not rest.startswith("!") else "!" + value


def _unpack_id(stored: str, prefix: str) -> str:
    return stored[1:] if stored.startswith("!") else prefix + stored


def gtype_code(grouping_type: str) -> str:
    return _GTYPES.get(grouping_type, grouping_type)


def twilio_id_value(twilio_id: str) -> str:
    return _pack_id(twilio_id, CONVERSATION_PREFIX)


def participant_fields(bare: str, p: Participant) -> dict[str, str]:
    """The participant's own field and one per further address."""
    value = f"{_pack_id(p.id, PARTICIPANT_PREFIX)}|{p.type}|{p.channel}"
    if p.address != v2_address(p.channel, bare):
        value += f"|{p.address}"
    out = {f"p{bare}": value}
    out.update({f"o{bare}:{n}": f"{ch}|{addr}" for n, (ch, addr) in enumerate(p.others)})
    return out


def new_record(conv: Conversation) -> dict[str, str]:
    """The fields ``begin_create`` writes (status CREATING, no v2 id yet)."""
    return {"c": conv.configuration_id, "v": str(conv.configuration_version),
            "k": conv.grouping_key, "g": gtype_code(conv.grouping_type), "s": conv.status,
            "t0": ms(conv.created_at), "t1": ms(conv.updated_at)}


def from_hash(conv_id: str, raw: dict) -> Conversation | None:
    if not raw:
        return None
    h = {as_str(k): as_str(v) for k, v in raw.items()}
    if "s" not in h:
        return None
    g = h.get("g", "")
    conv = Conversation(
        id=conv_id, configuration_id=h.get("c", ""), configuration_version=int(h.get("v") or 0),
        grouping_key=h.get("k", ""), grouping_type=_GTYPE_NAMES.get(g, g), status=h["s"],
        twilio_id=_unpack_id(h["tw"], CONVERSATION_PREFIX) if h.get("tw") else None,
        created_at=seconds(h.get("t0")), updated_at=seconds(h.get("t1")),
        closed_reason=h.get("x") or None,
    )
    others: dict[str, list[tuple[int, str, str]]] = {}
    for k, v in h.items():
        if k[0] == "p":
            bare = k[1:]
            pid, ptype, channel, *address = v.split("|", 3)
            conv.participants[bare] = Participant(
                _unpack_id(pid, PARTICIPANT_PREFIX), ptype,
                address[0] if address else v2_address(channel, bare), channel)
        elif k[0] == "o":
            bare, n = k[1:].rsplit(":", 1)
            ch, addr = v.split("|", 1)
            others.setdefault(bare, []).append((int(n), ch, addr))
        elif k[0] == "a":
            conv.last_activity[k[1:]] = seconds(v)
        elif k[0] == "h" and k[1:].isdigit():
            conv.shards.add(int(k[1:]))
    for bare, rows in others.items():
        if bare in conv.participants:
            conv.participants[bare].others = [(ch, addr) for _, ch, addr in sorted(rows)]
    return conv
