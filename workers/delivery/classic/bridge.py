"""The classic bridge's entry point: a classic event routed to its bridged configuration and
applied (conversation, participants, message, state); :mod:`workers.delivery.classic` says
what the bridge keeps."""
from __future__ import annotations

from collections import Counter

from workers import stats
from workers.capture.index import Match
from workers.capture.store import VersionedConfig
from workers.conversations import store as cv
from workers.delivery.classic.bridged import CHAT, TTL_S, bridging, conversation_sid, grouping_key, match_for, text
from workers.delivery.classic.messages import BridgeMessages, ReplyRefused, remember
from workers.delivery.classic.participants import BridgeParticipants
from workers.delivery.deliver import Delivery, LaneSession, Undeliverable
from workers.foundations import keys
from workers.foundations.log import get_logger
from workers.parse import CaptureEvent
from workers.parse import classic as c
from workers.twilio.client import V2Error

logger = get_logger("threadline.classic")
__all__ = ["ClassicBridge", "ReplyRefused", "CHAT", "TTL_S", "bridging", "conversation_sid",
           "grouping_key", "match_for", "remember"]
_V2_STATUS = {"active": cv.ACTIVE, "inactive": cv.INACTIVE, "closed": cv.CLOSED}


class ClassicBridge:
    """One per worker process, beside :class:`Delivery` (whose client and stores it shares)."""

    def __init__(self, delivery: Delivery) -> None:
        self.d = delivery
        self.redis = delivery.redis
        self.store = delivery.store
        self.people = BridgeParticipants(delivery)
        self.messages = BridgeMessages(self.people)

    async def route(self, event: CaptureEvent, configs: dict[str, VersionedConfig]) -> VersionedConfig | None:
        """The configuration bridging the event's service (None: no bridge). An event from
        Event Streams names no service: it is the conversation's, remembered from an earlier
        event, else asked of each bridged service (``GET /v1/Services/{IS}/Conversations/{CH}``;
        a 404 from every one: not a bridged conversation)."""
        sid, service = event.to_bare, event.metadata["service"]
        if service:
            await self.redis.set(keys.classic_service(sid), service, ex=TTL_S)
            return bridging(configs, service)
        service = text(await self.redis.get(keys.classic_service(sid)))
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
            await self.messages.mark_removed(event.resource_id)
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
            conv = session.convs[slot] = await self.people.create(event, vc, twilio_cfg, key, counts)
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
                await self.people.ensure(conv, event.from_bare, vc)
            self._count(counts, name, "applied")
        else:
            await self.messages.post(conv, event, vc, counts)

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

    async def reply(self, conv: cv.Conversation, vc: VersionedConfig, author: str,
                    text: str) -> dict[str, str]:
        """Post a reply into the classic conversation behind ``conv`` (:meth:`BridgeMessages.reply`)."""
        return await self.messages.reply(conv, vc, author, text)
