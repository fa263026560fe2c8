"""Delivering one CaptureEvent into one matched configuration's v2 conversation.

Per (event, configuration), under the grouping key's lock (:mod:`workers.conversations.store`):

1. find the key's open conversation, or create one: the record is written (CREATING) *before*
   ``POST /v2/Conversations`` so a crash leaves a visible trace (DESIGN §5), which the next
   delivery resolves against v2 (:meth:`Delivery.find_created`: adopt, never orphan); the create names
   the configuration's v2 ``configurationId``, the CUSTOMER and the account's participant, and
   ``metadata`` with the grouping key (hashed when longer than v2's 512 characters);
2. an address new to the conversation becomes a new participant;
3. post the communication (TEXT, ``resourceId`` = MessageSid, ``occurredAt``, author and
   recipients with participant ids, the recipients' best ``deliveryStatus``) — skipped when v2
   already has that status (:mod:`workers.conversations.messages`); a body missing from a status callback is
   fetched from the Messages API once; the post is recorded as attempted before it is sent, so a
   redelivery after the conversation closed finds it in v2 (:mod:`.interrupted`), not posting it twice;
4. a refusal because the conversation is CLOSED on Twilio's side closes it here too
   (``conversations_closed|<cfg>|twilio``) and the event starts a new conversation;
5. the conversation's activity is touched and its lifecycle timer armed (``tl:timers``, the
   lifecycle owner's sorted set), in the same round trip as step 3's bookkeeping.

Permanent problems raise :class:`Undeliverable` (the drain dead-letters the event with its
reason); transient ones (V2Error.transient, lock or profile waits) propagate for a retry.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

from workers import stats
from workers.capture import grouping
from workers.capture.index import Match
from workers.capture.store import VersionedConfig
from workers.conversations import store as cv
from workers.conversations.messages import MessageMemory, MessageState
from workers.delivery import interrupted, profiles
from workers.delivery.lane import LaneSession
from workers.foundations import keys
from workers.foundations.errors import Permanent
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.foundations.text import iso_to_epoch
from workers.lifecycle import policy as lifecycle
from workers.lifecycle import timers
from workers.parse import CaptureEvent, v2_address
from workers.twilio.client import V2Client, V2Error

logger = get_logger("threadline.delivery")


# The grouping key of a bridged classic conversation (workers.delivery.classic): its status
# follows classic, so traffic of other channels that joins it arms no lifecycle timer.
BRIDGED_PREFIX = "classic|"


class Undeliverable(Permanent):
    """A permanent failure: dead-letter the event with ``reason`` (a slug) and ``message``."""

    def __init__(self, reason: str, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.reason, self.message, self.attempts = reason, message, attempts


class Delivery:
    """One per worker process: holds the v2 client and the stores.

    The bound on in-flight Twilio requests is the client's (its adaptive limit, per HTTP
    attempt, :mod:`workers.twilio.concurrency`), not held here around whole calls and their backoff.
    """

    def __init__(self, settings: Settings, redis, client: V2Client) -> None:
        self.settings, self.redis, self.client = settings, redis, client
        self.store = cv.ConversationStore(redis)
        self.messages = MessageMemory(redis)
        self._resolver: profiles.ProfileResolver | None = None
        self._memory_profiles: set[str] = set()

    async def call_v2(self, call, *args):
        """``call(*args)``: one v2 call (kept as the seam every delivery call goes through)."""
        return await call(*args)

    # --- the entry point -------------------------------------------------------------------
    async def deliver(self, event: CaptureEvent, vc: VersionedConfig, match: Match,
                      counts: Counter, session: LaneSession | None = None) -> None:
        """Deliver ``event`` into ``vc``'s conversation. With a ``session`` (one per drain lane)
        the grouping key's lock and conversation stay held across the lane's events, so the
        second event of a conversation costs no lock or index round trip."""
        if session is None:
            async with LaneSession() as own:
                return await self.deliver(event, vc, match, counts, own)
        if event.text is None and await self._only_in_closed(event, vc):
            # A status callback (or a redelivery) of a message whose conversation has closed
            # since: not new traffic, so it starts no conversation (the soak saw such messages
            # doubled into a second one); v2 refuses writes to a CLOSED conversation anyway.
            counts[stats.field("communications", "after_close")] += 1
            return None
        if event.text is None:
            # The body of a status callback's message, fetched (or read from the cache) before
            # any conversation is found or made: a message the Messages API does not have is
            # dead-lettered without leaving an empty conversation behind (the soak saw one).
            await self._body(event)
        await self.post_in_conversation(
            event, vc, match, counts, session, lambda conv: self._post(conv, event, vc, counts, session),
            lambda conv: interrupted.resume_elsewhere(self, event, vc.id, conv, counts, session))

    async def _only_in_closed(self, event: CaptureEvent, vc: VersionedConfig) -> bool:
        """The message is already in some of this configuration's conversations, none open."""
        mine = []
        for conv_id in await self.messages.posted_in(event.resource_id):
            conv = await self.store.get(conv_id)
            if conv is not None and conv.configuration_id == vc.id:
                mine.append(conv)
        return bool(mine) and all(c.status == cv.CLOSED for c in mine)

    async def post_in_conversation(self, event: CaptureEvent, vc: VersionedConfig, match: Match,
                                   counts: Counter, session: LaneSession,
                                   post: Callable[[cv.Conversation], Awaitable[None]],
                                   resume: Callable[[cv.Conversation | None],
                                                    Awaitable[cv.Conversation | None]] | None = None,
                                   ) -> cv.Conversation:
        """Get or create the conversation of (configuration, grouping key) under the key's lock
        (held for the lane), then ``post`` into it. A conversation that Twilio says is closed
        is closed here too, and the event starts a new one — unless ``resume`` (messages) names
        a closed conversation the event's message is already in (:func:`.interrupted.resume_elsewhere`).
        Messages and voice share this."""
        cfg = vc.config
        twilio_cfg = cfg.twilioConfigurationId or await self.bound_id(cfg.id)
        if not twilio_cfg:
            raise Undeliverable("configuration_unbound", (
                f"configuration {cfg.id!r} has no v2 configurationId: run `threadline configs "
                f"sync` (or set twilioConfigurationId), then replay this dead letter"))
        gtype = str(cfg.conversationGroupingType)
        key = await self.grouping_key_for(gtype, event, vc, match)
        slot = (cfg.id, key)
        if slot not in session.convs:
            await session.stack.enter_async_context(self.store.lock(cfg.id, key))
            session.convs[slot] = await self.open_conversation(cfg.id, key, counts)
        conv = session.convs[slot]
        if resume is not None and (already := await resume(conv)) is not None:
            return already
        if conv is None or conv.status == cv.CLOSED:
            # Kept before the post: when this event's post fails for good (dead-lettered, the
            # lane goes on), the lane's next event must find this conversation, not make another.
            conv = session.convs[slot] = await self.create_conversation(
                event, vc, match, twilio_cfg, key, gtype, counts)
        else:
            await self.ensure_participants(conv, event, match)
        try:
            await post(conv)
        except V2Error as exc:
            if not exc.conversation_closed:
                raise
            await session.flush()  # this lane's writes to it land before it closes, as they were made
            await self.store.close(conv.id, "twilio")
            conv.status = cv.CLOSED
            counts[stats.field("conversations_closed", cfg.id, "twilio")] += 1
            logger.info("conversation closed on Twilio's side; starting a new one",
                        extra={"conversation": conv.id, "configuration": cfg.id})
            if resume is not None and (already := await resume(conv)) is not None:
                return already
            conv = session.convs[slot] = await self.create_conversation(
                event, vc, match, twilio_cfg, key, gtype, counts)
            await post(conv)
        return conv

    async def bound_id(self, config_id: str) -> str | None:
        """The v2 id ``configs sync`` recorded for the configuration (when the version lacks it)."""
        raw = await self.redis.hget(keys.CONFIG_V2_IDS, config_id)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def grouping_key_for(self, gtype: str, event: CaptureEvent, vc: VersionedConfig,
                            match: Match) -> str:
        if gtype == grouping.BY_PROFILE:
            profile_id = await self._profile_id(event, vc, match)
            if profile_id:
                return grouping.grouping_key(gtype, event.channel, event.from_bare, event.to_bare,
                                             profile_id=profile_id)
            gtype = grouping.BY_ADDRESSES  # no profile: group by addresses (counted by profiles)
        return grouping.grouping_key(gtype, event.channel, event.from_bare, event.to_bare)

    async def _profile_id(self, event: CaptureEvent, vc: VersionedConfig, match: Match) -> str | None:
        """The customer's profile for GROUP_BY_PROFILE (:mod:`workers.delivery.profiles`)."""
        if self._resolver is None:
            self._resolver = profiles.resolver_for(self.redis, self.client, self.settings)
        res = await self._resolver.resolve(vc.id, vc.config.memoryStoreId, event.channel, match.customer)
        if res.profile_id and res.memory_profile:  # a Memory profile v2 knows: sent as profileId
            if len(self._memory_profiles) > 100_000:
                self._memory_profiles.clear()
            self._memory_profiles.add(res.profile_id)
        return res.profile_id

    async def open_conversation(self, config_id: str, key: str,
                                 counts: Counter) -> cv.Conversation | None:
        conv = await self.store.indexed(config_id, key)
        if conv is None or conv.is_open:
            return conv
        if conv.status == cv.CREATING:
            # A create was recorded but its outcome never was (a crash, or an uncertain
            # timeout): v2 may hold the conversation, tagged with this record's id. Adopt it
            # if so; replace the record only when v2 has none (DESIGN §5: no orphans).
            counts[stats.field("uncertain_creates", "conversation")] += 1
            found = await self.find_created(conv.id)
            if found is not None:
                pipe = self.redis.pipeline(transaction=True)
                self.store.finish_create(pipe, conv, found["id"], interrupted.participants_from(found, ""))
                await pipe.execute()
                counts[stats.field("uncertain_creates", "conversation_adopted")] += 1
                logger.warning("adopted the conversation an interrupted create left in v2",
                               extra={"conversation": conv.id, "twilio_id": found["id"]})
                return conv
            logger.warning("replacing an interrupted conversation create that v2 does not hold",
                           extra={"conversation": conv.id, "configuration": config_id})
            await self.store.close(conv.id, "create_interrupted")
        return None

    async def find_created(self, conv_id: str) -> dict | None:
        """The open v2 conversation an interrupted create of ``conv_id`` left (:mod:`.interrupted`)."""
        return await interrupted.find_created(self, conv_id)

    # --- conversations and participants ------------------------------------------------------
    def _participant_plan(self, event: CaptureEvent, match: Match, key: str = "") -> dict[str, dict]:
        """CUSTOMER and the account's participant; under GROUP_BY_PROFILE the CUSTOMER carries
        its Memory ``profileId`` (never a local directory id, which v2 would not know)."""
        plan = {}
        for bare, ptype in ((match.customer, "CUSTOMER"), (match.account, match.account_type)):
            plan[bare] = {"type": ptype, "addresses": [
                {"channel": event.channel, "address": v2_address(event.channel, bare)}]}
        profile_id = key.split("|", 1)[1] if key.startswith("profile|") else None
        if profile_id in self._memory_profiles:
            plan[match.customer]["profileId"] = profile_id
        return plan

    async def create_conversation(self, event: CaptureEvent, vc: VersionedConfig, match: Match, twilio_cfg: str,
                      key: str, gtype: str, counts: Counter) -> cv.Conversation:
        conv = await self.store.begin_create(vc.id, vc.version, key, gtype)
        plan = self._participant_plan(event, match, key)
        body = {
            "configurationId": twilio_cfg,
            "participants": list(plan.values()),
            "metadata": {"threadlineGroupingKey": grouping.metadata_value(key),
                         "threadlineConfiguration": vc.id,
                         "threadlineConversation": conv.id},
        }
        try:
            created = await self.call_v2(
                lambda: self.client.create_conversation(body, retry_uncertain=False))
        except V2Error as exc:
            if not exc.uncertain:  # refused for sure: nothing exists in v2, drop the record
                await self.store.close(conv.id, "create_failed")
                raise
            # Sent, answer lost: look for it in v2 before sending it again (no duplicate).
            created = await self.find_created(conv.id)
            if created is not None:
                counts[stats.field("uncertain_creates", "conversation_adopted")] += 1
            else:
                created = await self.call_v2(self.client.create_conversation, body)
        found = interrupted.participants_from(created, event.channel)
        missing = [bare for bare in plan if bare not in found]
        for bare in missing:  # a response without the participants it was asked for
            made = await self.new_participant(created["id"], plan[bare])
            found[bare] = cv.Participant(made["id"], plan[bare]["type"],
                                         v2_address(event.channel, bare), event.channel)
        pipe = self.redis.pipeline(transaction=True)
        self.store.finish_create(pipe, conv, created["id"], found)
        if not key.startswith(BRIDGED_PREFIX):
            # Its lifecycle timer from the start, counted from the creation (the lifecycle's
            # rule for a conversation never talked in): if the event that made it is
            # dead-lettered, nothing else would ever close it. A post moves the timer on.
            t = lifecycle.channel_timeouts(vc.config, [event.channel])[event.channel]
            timers.schedule(pipe, conv.id, lifecycle.due_after_communication(
                event.channel, conv.created_at, t, self.settings.minute_seconds))
        stats.add(pipe, {stats.field("conversations_created", vc.id): 1},
                  retention_minutes=self.settings.stats_retention_minutes)
        await pipe.execute()
        logger.info("conversation created", extra={"conversation": conv.id, "twilio_id": created["id"],
                                                    "configuration": vc.id})
        return conv

    async def ensure_participants(self, conv: cv.Conversation, event: CaptureEvent, match: Match) -> None:
        plan = self._participant_plan(event, match, conv.grouping_key)
        for bare, body in plan.items():
            known = conv.participants.get(bare)
            if known is not None:
                here = (event.channel, v2_address(event.channel, bare))
                if here not in known.addresses:  # the same party on a new channel: add the address
                    known.others.append(here)
                    addresses = [{"channel": ch, "address": a} for ch, a in known.addresses]
                    await self.call_v2(self.client.update_participant, conv.twilio_id, known.id,
                                   {"type": known.type, "addresses": addresses})
                    await self.store.add_participant(conv, bare, known)
                continue
            made = await self.new_participant(conv.twilio_id, body)
            await self.store.add_participant(conv, bare, cv.Participant(
                made["id"], body["type"], v2_address(event.channel, bare), event.channel))

    async def new_participant(self, twilio_id: str | None, body: dict) -> dict:
        """Create a participant; when v2 says its address already has one (409 naming it), that
        one is adopted. It is this engine's own from an interrupted create: a worker killed
        before it recorded the answer, or a timed-out create the client sent again. Without
        this every later event of the address was dead-lettered (v2_rejected)."""
        try:
            return await self.call_v2(self.client.create_participant, twilio_id, body)
        except V2Error as exc:
            if exc.status != 409 or not exc.conflicting_id:
                raise
            logger.warning("adopted the participant an interrupted create left in v2",
                           extra={"twilio_id": twilio_id, "participant": exc.conflicting_id})
            return {"id": exc.conflicting_id}

    # --- communications ----------------------------------------------------------------------
    async def _post(self, conv: cv.Conversation, event: CaptureEvent, vc: VersionedConfig,
                    counts: Counter, session: LaneSession) -> None:
        rid = event.resource_id
        if rid not in session.states:  # the lane's messages, read together (workers.delivery.lane)
            await self.messages.load([*session.expected, rid], session.states)
        known = session.states[rid]
        first_time_at = event.occurred_at if event.text is not None else None
        state = self.messages.observe(known, event.delivery_status, first_time_at, conv.id)
        if state.up_to_date:
            return await self.after_post(conv, event, vc, None, state, session)
        try:
            text, occurred_at = event.text, state.occurred_at
            if text is None:
                text, fetched_at = await self._body(event)
                occurred_at = known["at"] = await self.messages.set_occurred_at(
                    rid, fetched_at or event.occurred_at)
            author, recipient = conv.participants.get(event.from_bare), conv.participants.get(event.to_bare)
            body = {
                "author": {"address": event.v2_address("from"), "channel": event.channel,
                           "participantId": author.id if author else None},
                "content": {"type": "TEXT", "text": text},
                "recipients": [{"address": event.v2_address("to"), "channel": event.channel,
                                "participantId": recipient.id if recipient else None,
                                "deliveryStatus": state.best or None}],
                "resourceId": rid,
                "channelId": rid,
                "occurredAt": occurred_at or event.occurred_at,
            }
            await interrupted.before_first_post(self, conv, vc.id, rid, session)
            await self.call_v2(self.client.create_communication, conv.twilio_id, body)
        except Exception:  # not posted: the best status seen is kept all the same
            self.messages.write(session.pipe(self.redis), rid, state, known=known)
            raise
        counts[stats.field("communications", "updated" if state.posted else "posted")] += 1
        await self.after_post(conv, event, vc, state.best, state, session)

    async def _body(self, event: CaptureEvent) -> tuple[str, str]:
        cached = await self.messages.cached_body(event.account, event.resource_id)
        if cached is not None:
            return cached
        try:
            message = await self.call_v2(self.client.fetch_message, event.account, event.resource_id)
        except V2Error as exc:
            if exc.status == 404:
                raise Undeliverable("message_not_found", (
                    f"the Messages API has no {event.resource_id} (status callback without a "
                    f"body): {exc}"), exc.attempts) from None
            raise
        return await self.messages.cache_body(event.account, event.resource_id, message)

    async def after_post(self, conv: cv.Conversation, event: CaptureEvent, vc: VersionedConfig,
                         posted: str | None, state: MessageState | None = None,
                         session: LaneSession | None = None) -> None:
        """The message's state (``state``'s changes; ``posted``: the status v2 accepted), the
        channel's activity, the lifecycle timer: queued on the lane's pipeline (``session``,
        sent by its flush) or, without one, sent at once. Caller holds the key's lock."""
        try:
            at = iso_to_epoch(event.occurred_at)
        except ValueError:
            at = time.time()
        t = lifecycle.channel_timeouts(vc.config, [event.channel])[event.channel]
        offset: float | None = lifecycle.due_after_communication(event.channel, 0.0, t,
                                                                 self.settings.minute_seconds)
        if conv.grouping_key.startswith(BRIDGED_PREFIX):  # joined a bridged chat: classic's state rules
            offset = None
        # Plain commands, no script (both writers' arguments: MessageMemory, touch_held): this
        # runs under the grouping key's lock, which the caller (post_in_conversation) holds.
        pipe = session.pipe(self.redis) if session is not None else self.redis.pipeline(transaction=False)
        if state is not None:
            self.messages.write(pipe, event.resource_id, state, conv.id, posted,
                                known=session.states.get(event.resource_id) if session else None)
        touch = self.store.touch_held(pipe, conv, event.channel, at, timer_offset=offset,
                                      shard=session.shard if session is not None else None)
        if session is None:
            await pipe.execute()
        self.store.touched(conv, event.channel, touch)

