"""What the engine remembers per message: its best delivery status, when it occurred, and what
each conversation already has — plus the body cache for messages first seen in a callback.

Why: status callbacks arrive repeated and out of order, and each one re-sends the whole
communication (v2's upsert by ``resourceId`` replaces it). Keeping the best status seen per
message (one Lua step, ranks from :mod:`workers.parse`) means a late ``queued`` never undoes a
``delivered``; keeping the status v2 last *accepted* per conversation means a repeat costs no
v2 call at all, and a failed post is retried because nothing was marked posted.

Status callbacks carry no body: the body is fetched from the Messages API once and cached with
a TTL (it is a message body: it is never logged and never leaves this cache but for v2).
"""
from __future__ import annotations

from dataclasses import dataclass

from workers import keys
from workers.parse import STATUS_RANK, parse_timestamp
from workers.text import as_str

BODY_TTL_SECONDS = 2 * 86400

# Raise the best status (by rank) and set the occurredAt once. KEYS: state. ARGV: status,
# rank-table as "NAME=rank,…", occurredAt candidate ('' = none), conversation id, TTL s.
# Returns {best, at, posted-in-conversation}. One HMGET and at most one HSET (with the EXPIRE,
# three commands inside the script): Redis counts each call, and this runs once per event.
_OBSERVE = """
local ranks = {}
for name, r in string.gmatch(ARGV[2], '([A-Z_]+)=(%d+)') do ranks[name] = tonumber(r) end
local cur = redis.call('HMGET', KEYS[1], 'best', 'at', 'posted:' .. ARGV[4])
local best, at = cur[1], cur[2]
local new = ARGV[1]
local set = {}
if new ~= '' and (not best or (ranks[new] or 0) > (ranks[best] or 0)) then
  best = new
  set[#set + 1] = 'best'
  set[#set + 1] = new
end
if ARGV[3] ~= '' and not at then
  at = ARGV[3]
  set[#set + 1] = 'at'
  set[#set + 1] = at
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {best or '', at or '', cur[3] or ''}
"""
_RANKS = ",".join(f"{k}={v}" for k, v in STATUS_RANK.items())
STATE_TTL_SECONDS = 30 * 86400



@dataclass(frozen=True)
class MessageState:
    best: str          # best deliveryStatus seen for the message ('' = none)
    occurred_at: str   # the communication's occurredAt, fixed by the first event that set it
    posted: str        # deliveryStatus v2 last accepted in this conversation ('' = never posted)

    @property
    def up_to_date(self) -> bool:
        """v2 already has this status (or a better one) in this conversation: nothing to send."""
        return bool(self.posted) and STATUS_RANK.get(self.posted, 0) >= STATUS_RANK.get(self.best, 0)


class MessageMemory:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._observe = redis.register_script(_OBSERVE)

    async def observe(self, resource_id: str, status: str | None, occurred_at: str | None,
                      conversation_id: str) -> MessageState:
        raw = await self._observe(keys=[keys.message_state(resource_id)],
                                  args=[status or "", _RANKS, occurred_at or "", conversation_id,
                                        STATE_TTL_SECONDS])
        return MessageState(*(as_str(x) for x in raw))

    async def set_occurred_at(self, resource_id: str, occurred_at: str) -> str:
        """Fix the occurredAt if no event fixed it yet; returns the one that stands."""
        key = keys.message_state(resource_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(key, "at", occurred_at)
        pipe.hget(key, "at")
        return as_str((await pipe.execute())[1])

    def mark_posted(self, pipe, resource_id: str, conversation_id: str, status: str) -> None:
        """Queue on ``pipe``: v2 accepted ``status`` in the conversation (the caller executes)."""
        pipe.hset(keys.message_state(resource_id), f"posted:{conversation_id}", status)

    async def posted_in(self, resource_id: str) -> list[str]:
        """The conversations (threadline ids) v2 already holds this message in."""
        fields = await self.redis.hkeys(keys.message_state(resource_id))
        return [f[len("posted:"):] for f in map(as_str, fields) if f.startswith("posted:")]

    async def forget_posted(self, resource_id: str, conversation_id: str) -> None:
        await self.redis.hdel(keys.message_state(resource_id), f"posted:{conversation_id}")

    # --- bodies of messages first seen through a status callback ------------------------------
    async def cached_body(self, account: str, sid: str) -> tuple[str, str] | None:
        raw = await self.redis.hgetall(keys.message_body(account, sid))
        if not raw:
            return None
        h = {as_str(k): as_str(v) for k, v in raw.items()}
        return h.get("b", ""), h.get("at", "")

    async def cache_body(self, account: str, sid: str, message: dict) -> tuple[str, str]:
        """Cache the fetched message's body and its time (date_sent, else date_created)."""
        body = message.get("body") or ""
        at = parse_timestamp(message.get("date_sent")) or parse_timestamp(
            message.get("date_created")) or ""
        key = keys.message_body(account, sid)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"b": body, "at": at})
        pipe.expire(key, BODY_TTL_SECONDS)
        await pipe.execute()
        return body, at
