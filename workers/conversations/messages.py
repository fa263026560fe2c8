"""What the engine remembers per message: its best delivery status, when it occurred, and what
each conversation already has — plus the body cache for messages first seen in a callback.

Why: status callbacks arrive repeated and out of order, and each one re-sends the whole
communication (v2's upsert by ``resourceId`` replaces it). Keeping the best status seen per
message (ranks from :mod:`workers.parse`) means a late ``queued`` never undoes a
``delivered``; keeping the status v2 last *accepted* per conversation means a repeat costs no
v2 call at all, and a failed post is retried because nothing was marked posted.

Status callbacks carry no body: the body is fetched from the Messages API once and cached with
a TTL (it is a message body: it is never logged and never leaves this cache but for v2).
"""
from __future__ import annotations

from dataclasses import dataclass

from workers.foundations import keys
from workers.foundations.resp import as_pairs, round_trip
from workers.foundations.text import as_str
from workers.parse import STATUS_RANK, parse_timestamp

BODY_TTL_SECONDS = 2 * 86400

STATE_TTL_SECONDS = 30 * 86400



@dataclass(frozen=True)
class MessageState:
    best: str          # best deliveryStatus seen for the message ('' = none)
    occurred_at: str   # the communication's occurredAt, fixed by the first event that set it
    posted: str        # deliveryStatus v2 last accepted in this conversation ('' = never posted)
    changed: tuple[tuple[str, str], ...] = ()  # fields this event raised or fixed, not yet written

    @property
    def up_to_date(self) -> bool:
        """v2 already has this status (or a better one) in this conversation: nothing to send."""
        return bool(self.posted) and STATUS_RANK.get(self.posted, 0) >= STATUS_RANK.get(self.best, 0)


def tried_elsewhere(known: dict[str, str], configuration_id: str, current: str | None) -> list[str]:
    """The conversations of ``configuration_id`` other than ``current`` the message (its state
    ``known``) may already be in (pure): those it is marked posted in; else, when it is marked
    posted in none of them nor in ``current``, those it was tried in (each needs a lookup in v2).
    A message posted somewhere was resolved before that post, so what it was only tried in is
    not looked up again on each of its status callbacks (a post refused by a conversation
    Twilio had closed, then made in the next one). A ``posted:`` mark without its ``tried:``
    (written before ``tried:`` existed) names no configuration: it is listed, for the caller
    to check."""
    posted, tried = [], []
    for field, value in known.items():
        kind, _, conv = field.partition(":")
        if kind == "posted" and known.get(f"tried:{conv}", configuration_id) == configuration_id:
            posted.append(conv)
        elif kind == "tried" and value == configuration_id and f"posted:{conv}" not in known:
            tried.append(conv)
    if posted:
        return [] if current in posted else posted
    return [conv for conv in tried if conv != current]


def first_posts(states: dict[str, dict[str, str]], conversation_id: str, first: str,
                expected: list[str]) -> list[str]:
    """``first`` and the lane's other messages (``expected``, their states read) not yet posted
    nor tried in the conversation: recorded as attempted there together, in one round trip,
    before ``first``'s POST (pure). A message of the lane that is then not posted there costs at
    most one lookup in v2, should it be redelivered after that conversation closed."""
    posted, tried = f"posted:{conversation_id}", f"tried:{conversation_id}"
    rest = [rid for rid in dict.fromkeys(expected) if rid != first and rid in states
            and posted not in states[rid] and tried not in states[rid]]
    return [first, *rest]


def observed(stored: tuple[str, str, str], status: str | None, occurred_at: str | None) -> MessageState:
    """The message's state after this event (pure): the best status by rank (a late ``queued``
    never undoes a ``delivered``), the occurredAt fixed once; ``stored`` = (best, at, posted)."""
    best, at, posted = stored
    changed: list[tuple[str, str]] = []
    if status and (not best or STATUS_RANK.get(status, 0) > STATUS_RANK.get(best, 0)):
        best = status
        changed.append(("best", status))
    if occurred_at and not at:
        at = occurred_at
        changed.append(("at", at))
    return MessageState(best, at, posted, tuple(changed))


class MessageMemory:
    """The message state: read with HGETALL (a drain lane reads all its messages' states in one
    round trip, :meth:`load`), decided in memory (:func:`observed`), written with one HSET and
    its EXPIRE queued on the caller's pipeline (:meth:`write`) — plain commands, no script.

    Why plain commands are enough (this was a Lua step until issue 19): a message's events —
    the inbound webhook, its status callbacks, a dead letter's replay — all go to the shard of
    the message's address pair (``eventlog.entries.shard_of``), which one drain holds at a time
    (the fenced shard lease), and within that drain to the one lane of the pair, which delivers
    them one after another while it holds the grouping-key lock of every conversation it posts
    into (``Delivery.post_in_conversation``) and sends its writes before it lets the locks go
    (:class:`workers.delivery.lane.LaneSession`). So between this lane's read and its write
    nobody else writes the message's ``best``/``at``/``posted:*`` fields: the read-modify-write
    loses no update and the status only moves up. A drain whose lease passed to another is
    cancelled (its lane releases its locks as it unwinds) before the next holder's lane gets
    those locks.
    """

    def __init__(self, redis) -> None:
        self.redis = redis

    async def load(self, resource_ids: list[str], into: dict[str, dict[str, str]]) -> None:
        """Read the states of the messages not in ``into`` yet, in one round trip."""
        missing = [rid for rid in dict.fromkeys(resource_ids) if rid not in into]
        if not missing:
            return
        commands: list[tuple] = [("HGETALL", keys.message_state(rid)) for rid in missing]
        replies = await round_trip(self.redis, commands)  # one write, raw replies: no pipeline
        for rid, raw in zip(missing, replies):
            into[rid] = {as_str(k): as_str(v) for k, v in as_pairs(raw).items()}

    async def attempt(self, conversation_id: str, configuration_id: str, resource_ids: list[str],
                      states: dict[str, dict[str, str]]) -> None:
        """Record, before their first POST into the conversation, that these messages are being
        posted there: ``tried:<conversation>`` = its configuration, in each message's own state —
        what a redelivery after a crash reads when the conversation has closed since
        (``workers.delivery.interrupted``). In the message's state, not per conversation, so the
        redelivery finds *which* conversation it was tried in whatever the grouping key's
        conversations did since (issue 12: under GROUP_BY_PROFILE another number of the customer
        may have opened a newer one). ``states`` (the caller's copies) are updated.

        One HSET per message, none for a status update of a posted message (its ``posted:`` mark
        says where it is: :func:`first_posts`), all in one round trip. No EXPIRE: the lane gives
        every message it tried its TTL at its flush (``LaneSession.flush``), and a lane whose
        flush is lost leaves its entries pending, whose redelivery does."""
        await round_trip(self.redis, [("HSET", keys.message_state(rid), f"tried:{conversation_id}",
                                       configuration_id) for rid in resource_ids])
        for rid in resource_ids:
            states.setdefault(rid, {})[f"tried:{conversation_id}"] = configuration_id

    @staticmethod
    def observe(known: dict[str, str], status: str | None, occurred_at: str | None,
                conversation_id: str) -> MessageState:
        """This event applied to the message's ``known`` state (as :meth:`load` read it and
        :meth:`write` changed it); the changes are written by :meth:`write`."""
        return observed((known.get("best", ""), known.get("at", ""), known.get(f"posted:{conversation_id}", "")),
                        status, occurred_at)

    def write(self, pipe, resource_id: str, state: MessageState, conversation_id: str | None = None,
              posted: str | None = None, known: dict[str, str] | None = None) -> None:
        """Queue on ``pipe`` the state's changes and, with ``posted``, that v2 accepted that
        status in the conversation; the key's TTL restarts (the caller executes). ``known``
        (the caller's copy of the state) is updated as if it had run."""
        fields = dict(state.changed)
        if posted is not None and conversation_id is not None:
            fields[f"posted:{conversation_id}"] = posted
        key = keys.message_state(resource_id)
        if fields:
            pipe.hset(key, mapping=fields)
            if known is not None:
                known.update(fields)
        pipe.expire(key, STATE_TTL_SECONDS)

    async def set_occurred_at(self, resource_id: str, occurred_at: str) -> str:
        """Fix the occurredAt if no event fixed it yet; returns the one that stands."""
        key = keys.message_state(resource_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(key, "at", occurred_at)
        pipe.hget(key, "at")
        return as_str((await pipe.execute())[1])

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
