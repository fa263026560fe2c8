"""The classic bridge's messages: each one a v2 communication, and replies posted into classic (issue 17).

- A message is a TEXT communication with ``resourceId`` = the classic MessageSid (an update is
  an upsert), ``channelId`` = the ConversationSid. Each message's last applied change is kept
  (:func:`workers.foundations.keys.classic_message`): an event older than it (out of order) is counted
  ``stale`` and left. v2 has no communication delete, so a removal is counted and left, and the
  message is marked so that a late add or update does not bring it back.
- A reply posted through threadline goes into classic (with its webhooks) and into v2 at once,
  under the conversation's lock; the ``onMessageAdded`` echo is then ``stale``: v2 holds it once.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from workers import stats
from workers.capture.store import VersionedConfig
from workers.conversations import store as cv
from workers.delivery.classic.bridged import CHAT, TTL_S, conversation_sid, text
from workers.delivery.classic.participants import BridgeParticipants
from workers.foundations import keys
from workers.foundations.errors import Permanent
from workers.foundations.text import iso_to_epoch
from workers.parse import CaptureEvent, iso_ms, parse_timestamp
from workers.parse import classic as c


class ReplyRefused(Permanent):
    """A reply threadline will not post: the admin API's status and a plain reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, "reply_refused", message


class BridgeMessages:
    """One per :class:`workers.delivery.classic.ClassicBridge`."""

    def __init__(self, participants: BridgeParticipants) -> None:
        self.people = participants
        self.d = participants.d
        self.redis = participants.redis
        self.store = participants.store

    def _count(self, counts: Counter, event: str, outcome: str) -> None:
        counts[stats.field("classic", event, outcome)] += 1

    async def post(self, conv: cv.Conversation, event: CaptureEvent, vc: VersionedConfig,
                    counts: Counter) -> None:
        name, rid = event.metadata["event"], event.resource_id
        version = event.metadata["version"]
        seen = await self.redis.hmget(keys.classic_message(rid), "v", "r")
        applied = text(seen[0])
        if seen[1]:
            self._count(counts, name, "removed")
            return
        # ISO 8601 UTC: text order is time order. An add is never newer than what is applied
        # (a retry, the other source, or the add arriving after the update); an update of the
        # same instant is sent again (an upsert: harmless, and Twilio's dates are to the second).
        if applied and version and (version < applied or (version == applied and name == c.MESSAGE_ADDED)):
            self._count(counts, name, "stale")
            return
        await self.people.ensure(conv, event.from_bare, vc)
        await self._communicate(conv, event.from_bare, event.text or "", rid, event.occurred_at)
        await remember(self.redis, rid, version)
        try:
            at = iso_to_epoch(event.occurred_at)
        except ValueError:
            at = time.time()
        await self.store.touch(conv, CHAT, at)  # no timer: classic decides the state
        counts[stats.field("communications", "updated" if applied else "posted")] += 1
        self._count(counts, name, "posted")

    async def _communicate(self, conv: cv.Conversation, identity: str, text: str, rid: str,
                           occurred_at: str) -> dict:
        """Upsert the communication of classic message ``rid`` (its author already a participant)."""
        author = conv.participants[identity]
        recipients = [p for bare, p in conv.participants.items() if bare != identity]
        body = {
            "author": {"address": identity, "channel": CHAT, "participantId": author.id},
            "content": {"type": "TEXT", "text": text},
            "recipients": [{"address": p.address, "channel": CHAT, "participantId": p.id}
                           for p in recipients or [author]],
            "resourceId": rid,
            "channelId": conversation_sid(conv) or "",
            "occurredAt": occurred_at,
        }
        result: dict = await self.d.call_v2(self.d.client.create_communication, conv.twilio_id, body)
        return result

    async def reply(self, conv: cv.Conversation, vc: VersionedConfig, author: str,
                    text: str) -> dict[str, str]:
        """Post ``text`` by ``author`` into the classic conversation behind ``conv`` (with its
        webhooks, so the operator's application sees it too) and into v2 at once, under the
        conversation's lock: the ``onMessageAdded`` echo then finds the message already applied
        and is counted ``stale``, so v2 holds it once. Raises :class:`ReplyRefused`."""
        bridge, sid = vc.config.conversationsV1Bridge, conversation_sid(conv)
        if bridge is None or sid is None:
            raise ReplyRefused(409, "not a bridged conversation: replies go through classic only")
        async with self.store.lock(conv.configuration_id, conv.grouping_key, wait=10.0):
            fresh = await self.store.get(conv.id)
            if fresh is None or fresh.status not in cv.OPEN or not fresh.twilio_id:
                raise ReplyRefused(409, "conversation is not open")
            msg = await self.d.client.create_classic_message(bridge.serviceId, sid, author, text)
            occurred = parse_timestamp(msg.get("date_created")) or iso_ms(int(time.time() * 1000))
            await remember(self.redis, msg["sid"], occurred)
            if author not in fresh.participants:
                await self.people.ensure(fresh, author, vc, default="HUMAN_AGENT")
            made = await self._communicate(fresh, author, text, msg["sid"], occurred)
            await self.store.touch(fresh, CHAT, iso_to_epoch(occurred))
        return {"messageSid": msg["sid"], "communicationId": str(made.get("id", ""))}

    async def mark_removed(self, message_sid: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.classic_message(message_sid), "r", "1")
        pipe.expire(keys.classic_message(message_sid), TTL_S)
        await pipe.execute()


async def remember(redis: Any, message_sid: str, version: str) -> None:
    """Record that the message's change at ``version`` is in v2 (a reply, or a delivered event)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.classic_message(message_sid), "v", version)
    pipe.expire(keys.classic_message(message_sid), TTL_S)
    await pipe.execute()
