"""Conversation records in Redis: the engine's memory of what it created in v2.

A record (hash ``tl:conv:{id}``, encoded by :mod:`workers.conversations.record`) holds the
conversation's v2 id, the configuration id and the *pinned* version it was created with, its
grouping key, its status, its participants by bare address, and the last activity per
channel. The grouping index (one hash, ``configuration:key`` → id) names the one open
conversation of a key; a CLOSED conversation leaves the index and is never reused (DESIGN §4).
Beside them: one hash v2 id → id, one sorted set of every id by creation time (the listing),
and the count of conversations per status (the dashboard's gauge). That is all: per open
conversation a listpack record and three hash/sorted-set entries, because issue 5 budgets
≤ 1 KiB of Redis for it (bench/lifecycle.py measures it; BENCHMARKS.md).

Why a threadline id as well as the v2 id: v2 takes no idempotency key on a conversation
create, so the engine writes the record (status CREATING) *before* it sends the create. A
crash in between leaves a visible CREATING record — the only window in which a duplicate
conversation can appear (DESIGN §5) — instead of an invisible one.

Writers of one grouping key serialize on :meth:`ConversationStore.lock` (a token lease,
renewed while held), because a key can be reached from two shards. Lifecycle (timers,
scheduler) and the admin API read and write records through this module only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from workers.conversations.locks import LOCK_TTL, KeyLocks, LockTimeout  # noqa: F401  (re-exported)
from workers.conversations.record import (  # noqa: F401
    ACTIVE,
    CLOSED,
    CREATING,
    INACTIVE,
    OPEN,
    STATUSES,
    Conversation,
    Participant,
    from_hash,
    ms,
    new_id,
    new_record,
    participant_fields,
    twilio_id_value,
)
from workers.foundations import keys
from workers.foundations.text import as_str


@dataclass(frozen=True)
class Touch:
    """What one communication changed: the lifecycle owner arms timers from it."""

    status: str            # the conversation's status (INACTIVE = traffic should reopen it)
    new_channel: bool      # first communication on this channel
    last_activity: float   # this channel's last activity after the touch


# Every status change moves one count in the per-status hash in the same script, so the
# dashboard reads ACTIVE/INACTIVE/CLOSED without touching a record.
# Closes: status CLOSED, out of the grouping index (only if the index still names it), into
# the closed set that the retention sweep reads (workers.conversations.retention).
# KEYS: record, grouping index, status counts, closed set. ARGV: id, reason, now ms, index field.
# Returns the previous status ('' if no record).
_CLOSE = """
local prev = redis.call('HGET', KEYS[1], 's')
if not prev then return '' end
if prev ~= 'CLOSED' then
  redis.call('HSET', KEYS[1], 's', 'CLOSED', 'x', ARGV[2], 't1', ARGV[3])
  redis.call('HINCRBY', KEYS[3], prev, -1)
  redis.call('HINCRBY', KEYS[3], 'CLOSED', 1)
  redis.call('ZADD', KEYS[4], tonumber(ARGV[3]) / 1000, ARGV[1])
end
if redis.call('HGET', KEYS[2], ARGV[4]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[4]) end
return prev
"""
# Sets a status unless the conversation is CLOSED (nothing leaves CLOSED). Returns previous.
# KEYS: record, status counts. ARGV: status, now ms.
_SET_STATUS = """
local prev = redis.call('HGET', KEYS[1], 's')
if not prev then return '' end
if prev == 'CLOSED' then return prev end
redis.call('HSET', KEYS[1], 's', ARGV[1], 't1', ARGV[2])
if prev ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[2], prev, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return prev
"""
# The v2 id, the participants, status ACTIVE. KEYS: record, v2-id index, status counts.
# ARGV: id, v2 id, its stored form, now ms, then participant field/value pairs.
_FINISH = """
local prev = redis.call('HGET', KEYS[1], 's')
if not prev then return '' end
redis.call('HSET', KEYS[1], 'tw', ARGV[3], 's', 'ACTIVE', 't1', ARGV[4])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
if prev ~= 'ACTIVE' then
  redis.call('HINCRBY', KEYS[3], prev, -1)
  redis.call('HINCRBY', KEYS[3], 'ACTIVE', 1)
end
return prev
"""
# Last activity of a channel (epoch ms) only moves forward; the lifecycle timer is armed in the
# same step (workers.lifecycle.timers' sorted set, epoch seconds): at once when the conversation is
# INACTIVE (traffic reopens it), else at the activity + ARGV[5] seconds. KEYS: record, timers.
# ARGV: channel, at ms, now ms, id, timer offset s ('' = no timer).
# Returns {status, previous activity or '', activity after}.
_TOUCH = """
local f = 'a' .. ARGV[1]
local cur = redis.call('HMGET', KEYS[1], 's', f)
local status, prev = cur[1], cur[2]
if not status then return false end
local at = tonumber(ARGV[2])
if prev and tonumber(prev) >= at then at = tonumber(prev) end
local atms = string.format('%.0f', at)
redis.call('HSET', KEYS[1], f, atms, 't1', ARGV[3])
if (status == 'ACTIVE' or status == 'INACTIVE') and ARGV[5] ~= '' then
  local due = at / 1000 + tonumber(ARGV[5])
  if status == 'INACTIVE' then due = tonumber(ARGV[3]) / 1000 end
  redis.call('ZADD', KEYS[2], due, ARGV[4])
end
return {status, prev or '', atms}
"""


def write_open(pipe, conv: Conversation) -> None:
    """Queue on ``pipe`` (sync or async) a whole open conversation — record, indexes, status
    count — in the layout the store writes step by step: for bulk loads (bench/lifecycle.py)."""
    record = new_record(conv)
    if conv.twilio_id:
        record["tw"] = twilio_id_value(conv.twilio_id)
        pipe.hset(keys.CONVERSATION_TWILIO_IDS, conv.twilio_id, conv.id)
    for bare, p in conv.participants.items():
        record.update(participant_fields(bare, p))
    record.update({f"a{ch}": ms(at) for ch, at in conv.last_activity.items()})
    pipe.hset(keys.conversation(conv.id), mapping=record)
    pipe.hset(keys.CONVERSATION_INDEX,
              keys.conversation_index_field(conv.configuration_id, conv.grouping_key), conv.id)
    pipe.zadd(keys.CONVERSATIONS, {conv.id: conv.created_at})
    pipe.hincrby(keys.CONVERSATION_STATUS_COUNTS, conv.status, 1)


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
        return from_hash(conv_id, await self.redis.hgetall(keys.conversation(conv_id)))

    async def get_by_twilio_id(self, twilio_id: str) -> Conversation | None:
        conv_id = await self.redis.hget(keys.CONVERSATION_TWILIO_IDS, twilio_id)
        return await self.get(as_str(conv_id)) if conv_id else None

    async def indexed(self, config_id: str, grouping_key: str) -> Conversation | None:
        """The conversation the grouping index names (any status, CREATING included)."""
        conv_id = await self.redis.hget(keys.CONVERSATION_INDEX,
                                        keys.conversation_index_field(config_id, grouping_key))
        return await self.get(as_str(conv_id)) if conv_id else None

    async def list(self, *, status: str | None = None, channel: str | None = None,
                   configuration_id: str | None = None, address: str | None = None,
                   since: float | None = None, until: float | None = None, limit: int = 100,
                   offset: int = 0) -> list[Conversation]:
        """Newest first, filtered; reads records in pipelined pages so a filter costs no N+1.
        Every filter (configuration included: a per-configuration index would cost each
        conversation another sorted-set entry) is applied to the records as they are read,
        except the creation-time range (``since`` ≤ created ≤ ``until``, epoch seconds), which
        the listing's own scores answer. ``address`` keeps the conversations with a CUSTOMER
        participant whose address (or bare address) contains it."""
        out: list[Conversation] = []
        hi = "+inf" if until is None else until
        lo = "-inf" if since is None else since
        skipped, start, page = 0, 0, max(200, limit)
        while len(out) < limit:
            ids = [as_str(i) for i in await self.redis.zrevrangebyscore(
                keys.CONVERSATIONS, hi, lo, start=start, num=page)]
            if not ids:
                break
            start += page
            pipe = self.redis.pipeline(transaction=False)
            for cid in ids:
                pipe.hgetall(keys.conversation(cid))
            for cid, raw in zip(ids, await pipe.execute()):
                conv = from_hash(cid, raw)
                if conv is None or (status and conv.status != status) or (
                        channel and channel not in conv.last_activity) or (
                        configuration_id and conv.configuration_id != configuration_id) or (
                        address and not _has_customer(conv, address)):
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
        conv = Conversation(id=new_id(), configuration_id=config_id,
                            configuration_version=version, grouping_key=grouping_key,
                            grouping_type=grouping_type, status=CREATING,
                            created_at=now, updated_at=now)
        pipe = self.redis.pipeline(transaction=True)
        write_open(pipe, conv)
        await pipe.execute()
        return conv

    def finish_create(self, pipe, conv: Conversation, twilio_id: str,
                      participants: dict[str, Participant]) -> None:
        """Queue on ``pipe``: the v2 id, the participants, status ACTIVE (the caller executes)."""
        conv.twilio_id, conv.status = twilio_id, ACTIVE
        conv.participants.update(participants)
        pairs: list[str] = []
        for bare, p in participants.items():
            for f, v in participant_fields(bare, p).items():
                pairs += [f, v]
        pipe.eval(_FINISH, 3, keys.conversation(conv.id), keys.CONVERSATION_TWILIO_IDS,
                  keys.CONVERSATION_STATUS_COUNTS, conv.id, twilio_id,
                  twilio_id_value(twilio_id), ms(time.time()), *pairs)

    async def add_participant(self, conv: Conversation, bare: str, participant: Participant) -> None:
        conv.participants[bare] = participant
        await self.redis.hset(keys.conversation(conv.id), mapping=participant_fields(bare, participant))

    # --- status --------------------------------------------------------------------------
    async def set_status(self, conv_id: str, status: str) -> str | None:
        """Set ACTIVE/INACTIVE (CLOSED goes through :meth:`close`); returns the previous status
        (None: no such conversation). A CLOSED conversation stays CLOSED."""
        if status == CLOSED:
            return await self.close(conv_id, "explicit")
        if status not in (ACTIVE, INACTIVE):
            raise ValueError(f"status must be one of {STATUSES}")
        prev = await self._set_status(keys=[keys.conversation(conv_id), keys.CONVERSATION_STATUS_COUNTS],
                                      args=[status, ms(time.time())])
        return as_str(prev) or None

    async def close(self, conv_id: str, reason: str) -> str | None:
        """Mark CLOSED, drop it from the grouping index; returns the previous status (None: unknown)."""
        config_id, grouping_key = await self.redis.hmget(keys.conversation(conv_id), "c", "k")
        if config_id is None:
            return None
        prev = await self._close(
            keys=[keys.conversation(conv_id), keys.CONVERSATION_INDEX,
                  keys.CONVERSATION_STATUS_COUNTS, keys.CONVERSATIONS_CLOSED],
            args=[conv_id, reason, ms(time.time()),
                  keys.conversation_index_field(as_str(config_id), as_str(grouping_key or ""))])
        return as_str(prev) or None

    async def touch(self, conv: Conversation, channel: str, at: float, *,
                    timer_offset: float | None = None) -> Touch | None:
        """Record a communication on ``channel`` at ``at`` (epoch s; the latest wins) and, with
        ``timer_offset``, arm the lifecycle timer, atomically (one script: the caller need not
        hold the key's lock; under it, :meth:`touch_held` does the same with plain commands)."""
        args = [channel, ms(at), ms(time.time()), conv.id,
                "" if timer_offset is None else repr(timer_offset)]
        raw = await self._touch(keys=[keys.conversation(conv.id), keys.TIMERS], args=args)
        if not raw:
            return None
        status, prev, after = (as_str(x) for x in raw)
        conv.last_activity[channel] = int(after) / 1000
        return Touch(status=status, new_channel=prev == "", last_activity=int(after) / 1000)

    def touch_held(self, pipe, conv: Conversation, channel: str, at: float, *,
                   timer_offset: float | None = None, shard: int | None = None) -> Touch:
        """Queue on ``pipe`` what :meth:`touch` does, as plain commands (one HSET, one ZADD),
        deciding from ``conv`` as the caller holds it; apply the returned :class:`Touch` with
        :meth:`touched` once the pipeline ran. The caller must hold the grouping key's lock
        (:meth:`lock`) since it read ``conv``: every writer of a record's status and activity
        does (deliveries, the lifecycle's transitions, the admin API's), and the record is
        deleted only once CLOSED (retention), so the held ``conv`` is what Redis has and the
        script's read-then-write is not needed. Costs 2 commands per event instead of 4.

        ``shard``: the event-log shard the event came from, recorded (in the same HSET) the first
        time the conversation draws on it, for the close's watermark."""
        prev = conv.last_activity.get(channel)
        at_ms = int(ms(at)) if prev is None else max(int(ms(at)), int(ms(prev)))
        now = time.time()
        fields = {f"a{channel}": str(at_ms), "t1": ms(now)}
        if shard is not None and shard not in conv.shards:
            fields[f"h{shard}"] = "1"
            conv.shards.add(shard)
        pipe.hset(keys.conversation(conv.id), mapping=fields)
        if conv.status in (ACTIVE, INACTIVE) and timer_offset is not None:
            due = now if conv.status == INACTIVE else at_ms / 1000 + timer_offset
            pipe.zadd(keys.TIMERS, {conv.id: due})
        return Touch(status=conv.status, new_channel=prev is None, last_activity=at_ms / 1000)

    @staticmethod
    def touched(conv: Conversation, channel: str, touch: Touch) -> None:
        conv.last_activity[channel] = touch.last_activity

    # --- the per-grouping-key lock ------------------------------------------------------
    def lock(self, config_id: str, grouping_key: str, *, wait: float = 30.0):
        """Hold the grouping key's lock (an async context manager; :mod:`workers.conversations.locks`)."""
        return self._locks.hold(keys.conversation_lock(config_id, grouping_key), wait=wait,
                                what=f"grouping key of configuration {config_id}")


def _has_customer(conv: Conversation, needle: str) -> bool:
    needle = needle.lower()
    return any(needle in bare.lower() or any(needle in a.lower() for _, a in p.addresses)
               for bare, p in conv.participants.items() if p.type == "CUSTOMER")
