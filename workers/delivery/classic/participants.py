"""The classic bridge's v2 conversations and participants (issue 17; :mod:`.classic` says the semantics).

- A bridged conversation is created on its classic conversation's first event, with the
  service's ``system`` participant and the event's author: channel ``CHAT``, the identity as the
  address, the classic ConversationSid as ``channelId``; typed by
  :meth:`Configuration.chat_type` (CUSTOMER, ``system`` AGENT, ``participantTypes["chat:<identity>"]``).
- GROUP_BY_PROFILE: a CUSTOMER's profile (Memory lookup by the chat identity) indexes the
  bridged conversation under the profile's grouping key too, so other channels' traffic of the
  same customer joins it.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from workers import stats
from workers.capture import grouping
from workers.capture.index import Match
from workers.capture.store import VersionedConfig
from workers.conversations import store as cv
from workers.delivery.classic.bridged import CHAT, conversation_sid
from workers.delivery.deliver import Delivery
from workers.foundations import keys
from workers.foundations.constants import GroupingType
from workers.foundations.log import get_logger
from workers.parse import CaptureEvent
from workers.parse import classic as c
from workers.twilio.client import V2Error

logger = get_logger("threadline.classic")


class BridgeParticipants:
    """One per :class:`workers.delivery.classic.ClassicBridge`."""

    def __init__(self, delivery: Delivery) -> None:
        self.d = delivery
        self.redis = delivery.redis
        self.store = delivery.store

    def plan(self, identity: str, vc: VersionedConfig, sid: str) -> dict[str, Any]:
        return {"type": vc.config.chat_type(identity),
                "addresses": [{"channel": CHAT, "address": identity, "channelId": sid}]}

    async def create(self, event: CaptureEvent, vc: VersionedConfig, twilio_cfg: str, key: str,
                      counts: Counter) -> cv.Conversation:
        sid, service = event.metadata["conversation"], event.metadata["service"]
        gtype = getattr(vc.config.conversationGroupingType, "value", vc.config.conversationGroupingType)
        conv = await self.store.begin_create(vc.id, vc.version, key, gtype)
        identities = [c.SYSTEM_AUTHOR]
        if event.from_bare and event.from_bare != c.SYSTEM_AUTHOR:
            identities.append(event.from_bare)
        plans = {i: self.plan(i, vc, sid) for i in identities}
        profiles = {i: await self.profile(event, i, vc) for i in identities}
        for identity, pid in profiles.items():
            if pid and pid in self.d._memory_profiles:
                plans[identity]["profileId"] = pid
        body = {"configurationId": twilio_cfg, "participants": list(plans.values()),
                "metadata": {"threadlineGroupingKey": key, "threadlineConfiguration": vc.id,
                             "threadlineConversation": conv.id,
                             "classicServiceSid": service, "classicConversationSid": sid}}
        try:
            created = await self.d.call_v2(self.d.client.create_conversation, body)
        except V2Error as exc:
            if not exc.uncertain:
                await self.store.close(conv.id, "create_failed")
            raise
        found = _chat_participants(created)
        for identity in identities:
            if identity not in found:
                made = await self.d.call_v2(self.d.client.create_participant, created["id"],
                                            plans[identity])
                found[identity] = cv.Participant(made["id"], plans[identity]["type"], identity, CHAT)
        pipe = self.redis.pipeline(transaction=True)
        self.store.finish_create(pipe, conv, created["id"], found)
        stats.add(pipe, {stats.field("conversations_created", vc.id): 1},
                  retention_minutes=self.d.settings.stats_retention_minutes)
        await pipe.execute()
        for pid in filter(None, profiles.values()):
            await self.join_key(conv, vc, pid)
        logger.info("bridged conversation created", extra={
            "conversation": conv.id, "twilio_id": created["id"], "configuration": vc.id})
        return conv

    async def ensure(self, conv: cv.Conversation, identity: str, vc: VersionedConfig,
                      default: str | None = None) -> cv.Participant:
        known = conv.participants.get(identity)
        if known is not None:
            return known
        sid = conversation_sid(conv) or ""
        plan = self.plan(identity, vc, sid)
        if default and "chat:" + identity not in vc.config.participantTypes:
            plan["type"] = default  # a reply's author is the business's, not a customer
        pid = None
        if plan["type"] == "CUSTOMER":
            pid = await self.profile(None, identity, vc)
            if pid and pid in self.d._memory_profiles:
                plan["profileId"] = pid
        made = await self.d.call_v2(self.d.client.create_participant, conv.twilio_id, plan)
        participant = cv.Participant(made["id"], plan["type"], identity, CHAT)
        await self.store.add_participant(conv, identity, participant)
        if pid:
            await self.join_key(conv, vc, pid)
        return participant

    async def profile(self, event: CaptureEvent | None, identity: str,
                       vc: VersionedConfig) -> str | None:
        """The chat CUSTOMER's profile (Memory lookup by the identity, or the local directory),
        when the configuration groups by profile; None otherwise."""
        if vc.config.conversationGroupingType != GroupingType.PROFILE or identity == c.SYSTEM_AUTHOR \
                or vc.config.chat_type(identity) != "CUSTOMER":
            return None
        probe = CaptureEvent(kind="classic", channel=CHAT, from_addr=identity, to_addr="",
                             from_bare=identity, to_bare="", direction="inbound", resource_id="",
                             text=None, delivery_status=None, occurred_at="") if event is None else event
        return await self.d._profile_id(probe, vc, Match(vc.id, vc.version, -1, (), "from", identity,
                                                         "", "AGENT", "classic bridge"))

    async def join_key(self, conv: cv.Conversation, vc: VersionedConfig, profile_id: str) -> None:
        """Index the bridged conversation under the profile's grouping key too, so the other
        channels' traffic of the same customer (GROUP_BY_PROFILE) joins it — unless another
        open conversation already holds that key (it keeps it: first come, first joined)."""
        key = grouping.grouping_key(GroupingType.PROFILE, CHAT, "", "", profile_id=profile_id)
        holder = await self.store.indexed(vc.id, key)
        if holder is not None and holder.is_open and holder.id != conv.id:
            return
        await self.redis.hset(keys.CONVERSATION_INDEX, keys.conversation_index_field(vc.id, key), conv.id)


def _chat_participants(created: dict) -> dict[str, cv.Participant]:
    """The CHAT participants of a v2 conversation response, by identity."""
    out: dict[str, cv.Participant] = {}
    for p in created.get("participants") or []:
        if not isinstance(p, dict) or not p.get("id"):
            continue
        for a in p.get("addresses") or []:
            if isinstance(a, dict) and a.get("channel") == CHAT and a.get("address"):
                out[a["address"]] = cv.Participant(p["id"], p.get("type") or "UNKNOWN",
                                                   a["address"], CHAT)
    return out
