"""The classic bridge: a Conversations (classic) service's events into v2 (DESIGN §4, issue 17).

Each classic conversation maps one-to-one to a v2 conversation of the configuration whose
``conversationsV1Bridge.serviceId`` names the service: its threadline record has the grouping
key ``classic|<ConversationSid>`` (so the per-key lock, the index and the admin API work as for
any conversation), and it is created on the conversation's first event, whatever that is.

- Participants: channel ``CHAT``, the identity as the address, the classic ConversationSid as
  ``channelId``; typed by :meth:`Configuration.chat_type` (CUSTOMER, the service's ``system``
  author AGENT, ``participantTypes["chat:<identity>"]`` when mapped). Every bridged conversation
  has the ``system`` participant, so a message always has a recipient.
- Messages: a TEXT communication with ``resourceId`` = the classic MessageSid (an update is an
  upsert), ``channelId`` = the ConversationSid. Each message's last applied change is kept
  (:func:`workers.keys.classic_message`): an event older than it (out of order) is counted
  ``stale`` and left. v2 has no communication delete, so a removal is counted and left, and
  the message is marked so that a late add or update does not bring it back.
- State: classic's ``active``/``inactive``/``closed`` becomes v2's ACTIVE/INACTIVE/CLOSED
  (``PATCH /v2/Conversations/{id}``); no lifecycle timer is ever armed (statusTimeouts do not
  apply). A closed or removed classic conversation is final in classic: later events for it are
  counted (``classic|<event>|after_closed``/``after_removed``) and left.
- A participant removal is counted and left (v2 has no participant delete).

Counters: ``classic|<event>|<outcome>``.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from workers import keys, stats
from workers.capture import grouping
from workers.capture.index import Match
from workers.capture.store import VersionedConfig
from workers.constants import GroupingType
from workers.conversations import store as cv
from workers.delivery.deliver import BRIDGED_PREFIX, Delivery, LaneSession, Undeliverable
from workers.errors import Permanent
from workers.log import get_logger
from workers.parse import CaptureEvent, iso_ms, parse_timestamp
from workers.parse import classic as c
from workers.text import iso_to_epoch
from workers.twilio.client import V2Error

logger = get_logger("threadline.classic")

CHAT = c.CHAT
TTL_S = 30 * 86400  # what the bridge remembers of a message or a finished conversation
_V2_STATUS = {"active": cv.ACTIVE, "inactive": cv.INACTIVE, "closed": cv.CLOSED}


class ReplyRefused(Permanent):
    """A reply threadline will not post: the admin API's status and a plain reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, "reply_refused", message


def grouping_key(conversation_sid: str) -> str:
    return f"{BRIDGED_PREFIX}{conversation_sid}"


def conversation_sid(conv: cv.Conversation) -> str | None:
    """The classic ConversationSid of a bridged conversation's record (None: not bridged)."""
    sid = conv.grouping_key.removeprefix(BRIDGED_PREFIX)
    return sid if sid != conv.grouping_key and sid else None


def bridging(configs: dict[str, VersionedConfig], service: str) -> VersionedConfig | None:
    """The live configuration that bridges classic service ``service`` (one at most: validated)."""
    for vc in configs.values():
        bridge = vc.config.conversationsV1Bridge
        if bridge is not None and bridge.serviceId == service:
            return vc
    return None


def match_for(vc: VersionedConfig, event: CaptureEvent) -> Match:
    """The drain's Match for a bridged event (no capture rule matched: the bridge did)."""
    return Match(vc.id, vc.version, -1, (), "from", event.from_bare, event.to_bare,
                 "AGENT", "classic bridge")


class ClassicBridge:
    """One per worker process, beside :class:`Delivery` (whose client and stores it shares)."""

    def __init__(self, delivery: Delivery) -> None:
        self.d = delivery
        self.redis = delivery.redis
        self.store = delivery.store

    async def route(self, event: CaptureEvent, configs: dict[str, VersionedConfig]) -> VersionedConfig | None:
        """The configuration bridging the event's service (None: no bridge). An event from
        Event Streams names no service: it is the conversation's, remembered from an earlier
        event, else asked of each bridged service (``GET /v1/Services/{IS}/Conversations/{CH}``;
        a 404 from every one: not a bridged conversation)."""
        sid, service = event.to_bare, event.metadata["service"]
        if service:
            await self.redis.set(keys.classic_service(sid), service, ex=TTL_S)
            return bridging(configs, service)
        service = _text(await self.redis.get(keys.classic_service(sid)))
        if not service:
            for vc in configs.values():
                bridge = vc.config.conversationsV1Bridge
                if bridge is None:
                    continue
                try:
                    await self.d.call_v2(self.d.client.fetch_classic_conversation, bridge.serviceId, sid)
                except V2Error as exc:
                    if exc.status != 404:
                        raise
                    continue
                service = bridge.serviceId
                await self.redis.set(keys.classic_service(sid), service, ex=TTL_S)
                break
        event.metadata["service"] = service
        return bridging(configs, service) if service else None

    def _count(self, counts: Counter, event: str, outcome: str) -> None:
        counts[stats.field("classic", event, outcome)] += 1

    async def deliver(self, event: CaptureEvent, vc: VersionedConfig, match: Match,
                      counts: Counter, session: LaneSession) -> None:
        meta = event.metadata
        name, sid = meta["event"], meta["conversation"]
        gone = await self.redis.get(keys.classic_removed(sid))
        if gone:
            self._count(counts, name, f"after_{gone.decode() if isinstance(gone, bytes) else gone}")
            return
        cfg = vc.config
        twilio_cfg = cfg.twilioConfigurationId or await self.d.bound_id(cfg.id)
        if not twilio_cfg:
            raise Undeliverable("configuration_unbound", (
                f"configuration {cfg.id!r} has no v2 configurationId: run `threadline configs "
                f"sync` (or set twilioConfigurationId), then replay this dead letter"))
        key = grouping_key(sid)
        slot = (cfg.id, key)
        if slot not in session.convs:
            await session.stack.enter_async_context(self.store.lock(cfg.id, key))
            session.convs[slot] = await self.d.open_conversation(cfg.id, key, counts)
        conv = session.convs[slot]
        if name == c.MESSAGE_REMOVED:
            await self._mark_removed(event.resource_id)
            self._count(counts, name, "left")  # v2 has no delete: the communication stays
            return
        if name == c.PARTICIPANT_REMOVED:
            self._count(counts, name, "left")  # v2 has no participant delete
            return
        if name == c.CONVERSATION_REMOVED:
            if conv is not None:
                await self._set_state(conv, "closed", counts, reason="classic_removed")
            await self.redis.set(keys.classic_removed(sid), "removed", ex=TTL_S)
            self._count(counts, name, "closed" if conv else "unknown")
            return
        if conv is None:
            conv = session.convs[slot] = await self._create(event, vc, twilio_cfg, key, counts)
        try:
            await self._apply(conv, event, vc, counts)
        except V2Error as exc:
            if not exc.conversation_closed:
                raise
            await self._set_state(conv, "closed", counts, reason="twilio", patch=False)
            self._count(counts, name, "closed_on_twilio")

    async def _apply(self, conv: cv.Conversation, event: CaptureEvent, vc: VersionedConfig,
                     counts: Counter) -> None:
        name, state = event.metadata["event"], event.metadata["state"]
        if name in c.CONVERSATION_EVENTS:
            if state:
                await self._set_state(conv, state, counts)
            self._count(counts, name, "applied")
        elif name == c.PARTICIPANT_ADDED:
            if event.from_bare:
                await self._ensure(conv, event.from_bare, vc)
            self._count(counts, name, "applied")
        else:
            await self._post(conv, event, vc, counts)

    # --- conversations and participants ----------------------------------------------------
    def _plan(self, identity: str, vc: VersionedConfig, sid: str) -> dict[str, Any]:
        return {"type": vc.config.chat_type(identity),
                "addresses": [{"channel": CHAT, "address": identity, "channelId": sid}]}

    async def _create(self, event: CaptureEvent, vc: VersionedConfig, twilio_cfg: str, key: str,
                      counts: Counter) -> cv.Conversation:
        sid, service = event.metadata["conversation"], event.metadata["service"]
        gtype = getattr(vc.config.conversationGroupingType, "value", vc.config.conversationGroupingType)
        conv = await self.store.begin_create(vc.id, vc.version, key, gtype)
        identities = [c.SYSTEM_AUTHOR]
        if event.from_bare and event.from_bare != c.SYSTEM_AUTHOR:
            identities.append(event.from_bare)
        plans = {i: self._plan(i, vc, sid) for i in identities}
        profiles = {i: await self._profile(event, i, vc) for i in identities}
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
            await self._join_key(conv, vc, pid)
        logger.info("bridged conversation created", extra={
            "conversation": conv.id, "twilio_id": created["id"], "configuration": vc.id})
        return conv

    async def _ensure(self, conv: cv.Conversation, identity: str, vc: VersionedConfig,
                      default: str | None = None) -> cv.Participant:
        known = conv.participants.get(identity)
        if known is not None:
            return known
        sid = conversation_sid(conv) or ""
        plan = self._plan(identity, vc, sid)
        if default and "chat:" + identity not in vc.config.participantTypes:
            plan["type"] = default  # a reply's author is the business's, not a customer
        pid = None
        if plan["type"] == "CUSTOMER":
            pid = await self._profile(None, identity, vc)
            if pid and pid in self.d._memory_profiles:
                plan["profileId"] = pid
        made = await self.d.call_v2(self.d.client.create_participant, conv.twilio_id, plan)
        participant = cv.Participant(made["id"], plan["type"], identity, CHAT)
        await self.store.add_participant(conv, identity, participant)
        if pid:
            await self._join_key(conv, vc, pid)
        return participant

    # --- GROUP_BY_PROFILE: other channels join the bridged conversation ----------------------
    async def _profile(self, event: CaptureEvent | None, identity: str,
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

    async def _join_key(self, conv: cv.Conversation, vc: VersionedConfig, profile_id: str) -> None:
        """Index the bridged conversation under the profile's grouping key too, so the other
        channels' traffic of the same customer (GROUP_BY_PROFILE) joins it — unless another
        open conversation already holds that key (it keeps it: first come, first joined)."""
        key = grouping.grouping_key(GroupingType.PROFILE, CHAT, "", "", profile_id=profile_id)
        holder = await self.store.indexed(vc.id, key)
        if holder is not None and holder.is_open and holder.id != conv.id:
            return
        await self.redis.hset(keys.CONVERSATION_INDEX, keys.conversation_index_field(vc.id, key), conv.id)

    async def _set_state(self, conv: cv.Conversation, state: str, counts: Counter, *,
                         reason: str = "classic", patch: bool = True) -> None:
        status = _V2_STATUS[state]
        if conv.status == status:
            return
        if patch:
            await self.d.call_v2(self.d.client.patch_conversation, conv.twilio_id, {"status": status})
        if status == cv.CLOSED:
            await self.store.close(conv.id, reason)
            sid = conversation_sid(conv)
            if sid:
                await self.redis.set(keys.classic_removed(sid), "closed", ex=TTL_S, nx=True)
            counts[stats.field("conversations_closed", conv.configuration_id, reason)] += 1
        else:
            await self.store.set_status(conv.id, status)
        conv.status = status

    # --- messages ------------------------------------------------------------------------
    async def _post(self, conv: cv.Conversation, event: CaptureEvent, vc: VersionedConfig,
                    counts: Counter) -> None:
        name, rid = event.metadata["event"], event.resource_id
        version = event.metadata["version"]
        seen = await self.redis.hmget(keys.classic_message(rid), "v", "r")
        applied = _text(seen[0])
        if seen[1]:
            self._count(counts, name, "removed")
            return
        # ISO 8601 UTC: text order is time order. An add is never newer than what is applied
        # (a retry, the other source, or the add arriving after the update); an update of the
        # same instant is sent again (an upsert: harmless, and Twilio's dates are to the second).
        if applied and version and (version < applied or (version == applied and name == c.MESSAGE_ADDED)):
            self._count(counts, name, "stale")
            return
        await self._ensure(conv, event.from_bare, vc)
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

    # --- replies: threadline → classic --------------------------------------------------------
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
                await self._ensure(fresh, author, vc, default="HUMAN_AGENT")
            made = await self._communicate(fresh, author, text, msg["sid"], occurred)
            await self.store.touch(fresh, CHAT, iso_to_epoch(occurred))
        return {"messageSid": msg["sid"], "communicationId": str(made.get("id", ""))}

    async def _mark_removed(self, message_sid: str) -> None:
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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else (str(value) if value else "")


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
