"""Conversation records in Redis: the engine's memory of what it created in v2.

A record (hash ``tl:conv:{id}``) holds the conversation's threadline id, its v2 id, the
configuration id and the *pinned* version it was created with, its grouping key, its status,
its participants by bare address, and the last activity per channel (epoch seconds). The
grouping index (``tl:convidx:{configuration}:{key}`` → id) names the one open conversation
of a key; a CLOSED conversation leaves the index and is never reused (DESIGN §4).

Why a threadline id as well as the v2 id: v2 takes no idempotency key on a conversation
create, so the engine writes the record (status CREATING) *before* it sends the create. A
crash in between leaves a visible CREATING record — the only window in which a duplicate
conversation can appear (DESIGN §5) — instead of an invisible one.

Writers of one grouping key serialize on :meth:`ConversationStore.lock` (a token lease,
renewed while held), because a key can be reached from two shards. Lifecycle (timers,
scheduler) and the admin API read and write records through this module only.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from workers import keys
from workers.keylock import LOCK_TTL, KeyLocks, LockTimeout  # noqa: F401  (re-exported)

CREATING, ACTIVE, INACTIVE, CLOSED = "CREATING", "ACTIVE", "INACTIVE", "CLOSED"
OPEN = (ACTIVE, INACTIVE)
STATUSES = (CREATING, ACTIVE, INACTIVE, CLOSED)


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

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "type": self.type, "address": self.address,
                           "channel": self.channel, "others": self.others}, separators=(",", ":"))


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


@dataclass(frozen=True)
class Touch:
    """What one communication changed: the lifecycle owner arms timers from it."""

    status: str            # the conversation's status (INACTIVE = traffic should reopen it)
    new_channel: bool      # first communication on this channel
    last_activity: float   # this channel's last activity after the touch


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if at else ""


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _from_hash(raw: dict) -> Conversation | None:
    if not raw:
        return None
    h = {_s(k): _s(v) for k, v in raw.items()}
    conv = Conversation(
        id=h["id"], configuration_id=h.get("cfg", ""), configuration_version=int(h.get("ver") or 0),
        grouping_key=h.get("key", ""), grouping_type=h.get("gtype", ""), status=h.get("status", ""),
        twilio_id=h.get("tw") or None, created_at=float(h.get("created") or 0),
        updated_at=float(h.get("updated") or 0), closed_reason=h.get("closed_reason") or None,
    )
    for k, v in h.items():
        if k.startswith("p:"):
            d = json.loads(v)
            conv.participants[k[2:]] = Participant(d["id"], d["type"], d["address"], d["channel"],
                                                   [tuple(x) for x in d.get("others", [])])
        elif k.startswith("la:"):
            conv.last_activity[k[3:]] = float(v)
    return conv


# Closes a conversation: status CLOSED, out of the grouping index (only if the index still
# names it) and out of the open set. KEYS: record, index-of-its-key, open set. ARGV: id,
# reason, now. Returns the previous status ('' if no record).
_CLOSE = """
local prev = redis.call('HGET', KEYS[1], 'status')
if not prev then return '' end
if prev ~= 'CLOSED' then
  redis.call('HSET', KEYS[1], 'status', 'CLOSED', 'closed_reason', ARGV[2], 'updated', ARGV[3])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[1])
return prev
"""
# Sets a status unless the conversation is CLOSED (nothing leaves CLOSED). Returns previous.
_SET_STATUS = """
local prev = redis.call('HGET', KEYS[1], 'status')
if not prev then return '' end
if prev == 'CLOSED' then return prev end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated', ARGV[2])
return prev
"""
# Last activity of a channel only moves forward; the lifecycle timer is armed in the same step
# (workers.timers' sorted set): at once when the conversation is INACTIVE (traffic reopens it),
# else at the activity + ARGV[5] seconds. KEYS: record, open set, timers. ARGV: channel, at,
# now, id, timer offset ('' = no timer). Returns {status, previous activity or '', activity after}.
_TOUCH = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
local f = 'la:' .. ARGV[1]
local prev = redis.call('HGET', KEYS[1], f)
local at = tonumber(ARGV[2])
if prev and tonumber(prev) >= at then at = tonumber(prev) end
redis.call('HSET', KEYS[1], f, tostring(at), 'updated', ARGV[3])
if status == 'ACTIVE' or status == 'INACTIVE' then
  redis.call('ZADD', KEYS[2], at, ARGV[4])
  if ARGV[5] ~= '' then
    local due = at + tonumber(ARGV[5])
    if status == 'INACTIVE' then due = tonumber(ARGV[3]) end
    redis.call('ZADD', KEYS[3], due, ARGV[4])
  end
end
return {status, prev or '', tostring(at)}
"""


class ConversationStore:
    """Conversation records over an asyncio Redis client (bytes or decoded responses)."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self._close = redis.register_script(_CLOSE)
        self._set_status = redis.register_script(_SET_STATUS)
        self._touch = redis.register_script(_TOUCH)
        self._locks = KeyLocks(redis)

    # --- reads ---------------------------------------------------------------------------
    async def get(self, conv_id: str) -> Conversation | None:
        return _from_hash(await self.redis.hgetall(keys.conversation(conv_id)))

    async def get_by_twilio_id(self, twilio_id: str) -> Conversation | None:
        conv_id = await self.redis.get(keys.conversation_by_twilio_id(twilio_id))
        return await self.get(_s(conv_id)) if conv_id else None

    async def indexed(self, config_id: str, grouping_key: str) -> Conversation | None:
        """The conversation the grouping index names (any status, CREATING included)."""
        conv_id = await self.redis.get(keys.conversation_index(config_id, grouping_key))
        return await self.get(_s(conv_id)) if conv_id else None

    async def list(self, *, status: str | None = None, channel: str | None = None,
                   configuration_id: str | None = None, limit: int = 100,
                   offset: int = 0) -> list[Conversation]:
        """Newest first, filtered; reads records in pipelined pages so a filter costs no N+1."""
        index = keys.conversations_of(configuration_id) if configuration_id else keys.CONVERSATIONS
        out: list[Conversation] = []
        skipped, start, page = 0, 0, max(50, limit)
        while len(out) < limit:
            ids = await self.redis.zrevrange(index, start, start + page - 1)
            if not ids:
                break
            start += page
            pipe = self.redis.pipeline(transaction=False)
            for cid in ids:
                pipe.hgetall(keys.conversation(_s(cid)))
            for raw in await pipe.execute():
                conv = _from_hash(raw)
                if conv is None or (status and conv.status != status) or (
                        channel and channel not in conv.last_activity):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(conv)
                if len(out) >= limit:
                    break
        return out

    # --- creation ------------------------------------------------------------------------
    async def begin_create(self, config_id: str, version: int, grouping_key: str,
                           grouping_type: str) -> Conversation:
        """Record a conversation about to be created (status CREATING) and index it."""
        now = time.time()
        conv = Conversation(id="tlc_" + uuid.uuid4().hex, configuration_id=config_id,
                            configuration_version=version, grouping_key=grouping_key,
                            grouping_type=grouping_type, status=CREATING,
                            created_at=now, updated_at=now)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.conversation(conv.id), mapping={
            "id": conv.id, "cfg": config_id, "ver": version, "key": grouping_key,
            "gtype": grouping_type, "status": CREATING, "created": repr(now), "updated": repr(now)})
        pipe.set(keys.conversation_index(config_id, grouping_key), conv.id)
        pipe.zadd(keys.CONVERSATIONS, {conv.id: now})
        pipe.zadd(keys.conversations_of(config_id), {conv.id: now})
        await pipe.execute()
        return conv

    def finish_create(self, pipe, conv: Conversation, twilio_id: str,
                      participants: dict[str, Participant]) -> None:
        """Queue on ``pipe``: the v2 id, the participants, status ACTIVE (the caller executes)."""
        conv.twilio_id, conv.status = twilio_id, ACTIVE
        conv.participants.update(participants)
        mapping = {"tw": twilio_id, "status": ACTIVE, "updated": repr(time.time())}
        mapping.update({f"p:{bare}": p.to_json() for bare, p in participants.items()})
        pipe.hset(keys.conversation(conv.id), mapping=mapping)
        pipe.set(keys.conversation_by_twilio_id(twilio_id), conv.id)

    async def add_participant(self, conv: Conversation, bare: str, participant: Participant) -> None:
        conv.participants[bare] = participant
        await self.redis.hset(keys.conversation(conv.id), f"p:{bare}", participant.to_json())

    # --- status --------------------------------------------------------------------------
    async def set_status(self, conv_id: str, status: str) -> str | None:
        """Set ACTIVE/INACTIVE (CLOSED goes through :meth:`close`); returns the previous status
        (None: no such conversation). A CLOSED conversation stays CLOSED."""
        if status == CLOSED:
            return await self.close(conv_id, "explicit")
        if status not in (ACTIVE, INACTIVE):
            raise ValueError(f"status must be one of {STATUSES}")
        prev = await self._set_status(keys=[keys.conversation(conv_id)], args=[status, repr(time.time())])
        return _s(prev) or None

    async def close(self, conv_id: str, reason: str) -> str | None:
        """Mark CLOSED, drop it from the grouping index; returns the previous status (None: unknown)."""
        conv = await self.get(conv_id)
        if conv is None:
            return None
        prev = await self._close(
            keys=[keys.conversation(conv_id),
                  keys.conversation_index(conv.configuration_id, conv.grouping_key),
                  keys.CONVERSATIONS_OPEN],
            args=[conv_id, reason, repr(time.time())])
        return _s(prev) or None

    async def touch(self, conv: Conversation, channel: str, at: float, *,
                    timer_offset: float | None = None, pipe=None) -> Touch | None:
        """Record a communication on ``channel`` at ``at`` (epoch s; the latest wins) and, with
        ``timer_offset``, arm the lifecycle timer. With ``pipe`` the step is queued there (the
        caller executes it and reads the reply with :meth:`touch_result`)."""
        args = [channel, repr(at), repr(time.time()), conv.id,
                "" if timer_offset is None else repr(timer_offset)]
        ks = [keys.conversation(conv.id), keys.CONVERSATIONS_OPEN, keys.TIMERS]
        if pipe is not None:
            await self._touch(keys=ks, args=args, client=pipe)
            return None
        return self.touch_result(conv, channel, await self._touch(keys=ks, args=args))

    @staticmethod
    def touch_result(conv: Conversation, channel: str, raw) -> Touch | None:
        if not raw:
            return None
        status, prev, after = (_s(x) for x in raw)
        conv.last_activity[channel] = float(after)
        return Touch(status=status, new_channel=prev == "", last_activity=float(after))

    # --- the per-grouping-key lock ------------------------------------------------------
    def lock(self, config_id: str, grouping_key: str, *, wait: float = 30.0):
        """Hold the grouping key's lock (an async context manager; :mod:`workers.keylock`)."""
        return self._locks.hold(keys.conversation_lock(config_id, grouping_key), wait=wait,
                                what=f"grouping key of configuration {config_id}")
