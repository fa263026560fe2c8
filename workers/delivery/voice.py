"""Voice capture: what the drain does with a parsed call status or transcription event.

:meth:`Voice.prepare` runs in log order, before the batch's lanes (calls' events share a shard,
so a call's status callbacks are recorded before its transcriptions are read):

- a **call status** callback is recorded on its leg (``workers.conversations.calls``) and acknowledged:
  call progress is never a communication and does not move the lifecycle timer (Orchestrator
  counts voice time from transcription events);
- a **transcription** gets its author and recipient from the call (track → speaker) and:
  - with ``conversationId`` in its callback URL → that conversation, grouping bypassed;
  - with ``conversationConfiguration`` → that configuration, through its grouping;
    (``conversationId`` wins; either marks the call as actively routed);
  - else the passive VOICE rules, matched on the *call's* parties and callType — unless the
    call was routed actively (the double-billing guard);
  - progress (started, partial, stopped, error) only touches the conversations the call feeds;
    a final result goes on to :meth:`Voice.deliver` as a TRANSCRIPTION communication.

A final transcription is posted once (DESIGN §5): its attempt and its ``posted:`` mark are
kept as a message's are, so a post whose answer a kill lost and whose conversation closed before
the redelivery is found there in v2, not posted into a new one (:mod:`.interrupted`).

Bad input never stops the shard: a transcription of a call threadline never saw, a
``conversationId`` or ``conversationConfiguration`` that does not exist → :class:`VoiceParseError`
(dead-lettered with that reason, replayable) for a final result, a counted ignore for progress;
no matching rule (e.g. a callType no rule names) → a counted ignore.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

from redis.exceptions import RedisError

from workers import stats
from workers.capture.index import Match, RuleIndex, account_addresses, customer_side, participant_type
from workers.capture.store import AsyncConfigStore, VersionedConfig
from workers.conversations import store as cv
from workers.conversations.calls import CallRecord, CallRegistry
from workers.delivery import interrupted
from workers.delivery.deliver import Delivery, LaneSession, Undeliverable
from workers.delivery.transcribe import STARTED, STOPPED, TWIML, Transcriber, count
from workers.eventlog.entries import CALL_STATUS, LogEntry
from workers.foundations import keys
from workers.foundations.log import get_logger
from workers.foundations.text import as_str
from workers.parse import ParseError
from workers.parse.voice import (
    STARTED as STARTED_EVENT,
)
from workers.parse.voice import (
    STOPPED as STOPPED_EVENT,
)
from workers.parse.voice import (
    TERMINAL_STATUSES,
    TRANSCRIPTION,
    CallParties,
    VoiceEvent,
    VoiceParseError,
    attribute,
    parse_call_status,
    transcription_content,
)
from workers.twilio import voice_api
from workers.twilio.client import V2Error

logger = get_logger("threadline.voice")

Prepared = tuple[VoiceEvent, list[Match]]


def _count(counts: Counter, kind: str, outcome: str) -> None:
    counts[stats.field("voice_events", kind, outcome)] += 1


class Voice:
    def __init__(self, delivery: Delivery, redis, *, call_ttl_seconds: int) -> None:
        self.delivery = delivery
        self.redis = redis
        self.calls = CallRegistry(redis, call_ttl_seconds)
        self.transcriber = Transcriber(delivery.settings, delivery.client, self.calls, redis)
        self.configstore = AsyncConfigStore(redis)

    # --- before the lanes ----------------------------------------------------------------
    async def prepare(self, event: VoiceEvent, index: RuleIndex, configs: dict,
                      counts: Counter) -> Prepared | None:
        """(event with its speakers, the matches to deliver to), or None: handled here
        (acknowledge). Raises VoiceParseError: dead-letter with its reason. The event's
        ``metadata["callSid"]`` is the root call (the drain's lane); ``metadata["conversationId"]``
        is set when the call named its conversation.

        Redis and timeout errors propagate (the drain retries the batch); any other surprise
        becomes an ``internal_error`` dead letter, so one odd event never stalls its shard."""
        try:
            return await self._prepare(event, index, configs, counts)
        except (TimeoutError, ParseError, RedisError, OSError):
            raise
        except Exception as exc:
            logger.exception("voice event could not be prepared", extra={"kind": event.kind})
            raise VoiceParseError("internal_error", type(exc).__name__) from None

    async def _prepare(self, event: VoiceEvent, index: RuleIndex, configs: dict,
                       counts: Counter) -> Prepared | None:
        v = event.voice
        assert v is not None
        if event.kind != TRANSCRIPTION:
            await self.calls.record_status(event)
            _count(counts, "call_status", "progress")
            await self._transcribe(event, index, configs, counts)
            return None
        leg, root = await self.calls.leg_and_root(v.call_sid)
        if root is None and await self._learn_call(event, counts):
            leg, root = await self.calls.leg_and_root(v.call_sid)
        if root is None:
            return self._refuse(event, counts, "unknown_call",
                                "a transcription for a call threadline never saw (no status callback)")
        if not await self._own_or_foreign(event, root, counts):
            return None
        if v.transcription_event == STARTED_EVENT and v.engine:
            await self.calls.set_fields(root.sid, {"eng": v.engine})
        parties = CallParties(root.from_addr, root.to_addr, root.direction,
                              leg_is_child=leg is not None and leg.sid != root.sid)
        event = attribute(event, parties)
        event = replace(event, metadata={**event.metadata, "callSid": root.sid,
                                         "callType": root.call_type})
        if v.routed_actively:
            return await self._active(event, root, configs, counts)
        if root.active:
            _count(counts, "transcription", "actively_routed")  # double-billing guard
            return None
        if v.progress:
            await self._touch_bound(root, event, configs, counts)
            return None
        matches = _captures(root, index, configs)
        if not matches:
            logger.debug("no VOICE rule captures this call", extra={
                "call": root.sid, "callType": root.call_type})
            _count(counts, "transcription", f"no_rule:{root.call_type}")
            counts[stats.field("events", "-", "VOICE", "ignored")] += 1
            return None
        return event, matches

    async def _transcribe(self, event: VoiceEvent, index: RuleIndex, configs: dict,
                          counts: Counter) -> None:
        """Passive voice: a call learned in progress gets its transcription, an ended one loses it."""
        status = event.voice.call_status if event.voice else None
        if status != "in-progress" and status not in TERMINAL_STATUSES:
            return
        record = await self.calls.get(event.voice.call_sid)
        if record is None:
            return
        current = record.status or status
        matches = _captures(record, index, configs) if current == "in-progress" else []
        await self.transcriber.on_status(record, current, event.account, matches, configs, counts)

    async def _learn_call(self, event: VoiceEvent, counts: Counter) -> bool:
        """A transcription of a call no status told threadline about (Twilio sends a number's
        status callback only at the call's end): ask the Calls API and record the call."""
        v = event.voice
        assert v is not None
        try:
            found = await voice_api.fetch_call(self.delivery.client, event.account or
                                               (self.delivery.settings.twilio_account_sid or ""), v.call_sid)
        except V2Error as exc:
            if exc.transient:
                raise TimeoutError("the Calls API is unavailable") from None  # the drain retries
            found = None
        if found is None:
            return False
        entry = LogEntry(CALL_STATUS, event.received_at_ms, event.account,
                         voice_api.status_params(found), {}, event.cid)
        try:
            await self.calls.record_status(parse_call_status(entry))
        except ParseError:
            return False
        _count(counts, "call_status", "fetched")
        return True

    async def _own_or_foreign(self, event: VoiceEvent, root: CallRecord, counts: Counter) -> bool:
        """False when the event is threadline's own transcription's and must not be used: another
        transcription runs on the call (that one's words are kept, never both). A transcription not
        ours (the application's TwiML, an active route) stops ours: one engine per call."""
        v = event.voice
        assert v is not None
        tsid = v.transcription_sid
        if not tsid:
            return True
        ours = tsid == root.rest_sid
        if not ours and root.rest_state == TWIML and not root.rest_sid and not v.routed_actively:
            # The forwarding relay's <Start><Transcription> (the only one on a call it added one
            # to): its first callback names its Sid.
            await self.calls.set_fields(root.sid, {"rtsid": tsid})
            ours = True
        if ours:
            if v.transcription_event == STOPPED_EVENT and root.rest_state == STARTED:
                await self.calls.set_fields(root.sid, {"rts": STOPPED})
                count(counts, "stopped", "twilio")
            if root.foreign or root.active:
                _count(counts, "transcription", "superseded")
                return False
            return True
        if root.foreign != tsid:
            await self.calls.set_fields(root.sid, {"ext": tsid})
            if root.rest_state == STARTED:
                await self.transcriber.stop(root, event.account, counts)
        return True

    def _refuse(self, event: VoiceEvent, counts: Counter, reason: str, detail: str) -> Prepared | None:
        """Count the refusal; nothing to deliver (None), or raise when words would be lost."""
        _count(counts, "transcription", reason)
        if event.voice and not event.voice.progress:
            raise VoiceParseError(reason, detail)  # words would be lost: keep them for replay
        return None

    async def _active(self, event: VoiceEvent, root: CallRecord, configs: dict,
                      counts: Counter) -> Prepared | None:
        v = event.voice
        assert v is not None
        if v.route_conversation_id:
            conv = await self.delivery.store.get(v.route_conversation_id) or \
                await self.delivery.store.get_by_twilio_id(v.route_conversation_id)
            if conv is None:
                return self._refuse(event, counts, "unknown_conversation",
                                    "the callback URL's conversationId names no conversation")
            if root.active != f"conversation:{conv.id}":
                await self.calls.mark_active(root.sid, f"conversation:{conv.id}")
            await self.calls.bind(root.sid, conv.configuration_id, conv.id)
            vc = await self.configstore.get(conv.configuration_id, conv.configuration_version)
            if vc is None:
                return self._refuse(event, counts, "unknown_configuration",
                                    "the conversation's configuration version is gone")
            if v.progress:
                if conv.is_open:
                    await self._touch(conv, event, vc)
                _count(counts, "transcription", "progress")
                return None
            event = replace(event, metadata={**event.metadata, "conversationId": conv.id})
            return event, [self._match(vc, root, "active routing: conversationId")]
        vc = await self._configuration(v.route_configuration or "", configs)
        if vc is None:
            return self._refuse(event, counts, "unknown_configuration",
                                "the callback URL's conversationConfiguration names no configuration")
        if root.active != f"configuration:{vc.id}":
            await self.calls.mark_active(root.sid, f"configuration:{vc.id}")
        if v.progress:
            await self._touch_bound(root, event, {vc.id: vc}, counts)
            return None
        return event, [self._match(vc, root, "active routing: conversationConfiguration")]

    async def _configuration(self, ref: str, configs: dict) -> VersionedConfig | None:
        """A threadline configuration by its id or by the v2 Configuration id it is bound to."""
        if ref in configs:
            return configs[ref]
        bound = await self.redis.hgetall(keys.CONFIG_V2_IDS) if hasattr(keys, "CONFIG_V2_IDS") else {}
        by_v2 = {as_str(v): as_str(k) for k, v in bound.items()}
        for vc in configs.values():
            if vc.config.twilioConfigurationId == ref or by_v2.get(ref) == vc.id:
                return vc
        return None

    @staticmethod
    def _match(vc: VersionedConfig, root: CallRecord, reason: str) -> Match:
        f, t = _bare(root.from_addr), _bare(root.to_addr)
        side, why = customer_side(account_addresses(vc.config), f, t, _dir(root))
        customer, account = (f, t) if side == "from" else (t, f)
        return Match(vc.id, vc.version, -1, (), side, customer, account,
                     participant_type(vc.config.account_addresses(), account), f"{reason}; {why}")

    async def _touch_bound(self, root: CallRecord, event: VoiceEvent, configs: dict,
                           counts: Counter) -> None:
        """Transcription progress keeps the call's conversations' voice activity current."""
        _count(counts, "transcription", "progress")
        for config_id, conv_id in root.conversations.items():
            conv = await self.delivery.store.get(conv_id)
            vc = configs.get(config_id)
            if conv is not None and conv.is_open and vc is not None:
                await self._touch(conv, event, vc)

    async def _touch(self, conv: cv.Conversation, event: VoiceEvent, vc: VersionedConfig) -> None:
        """The engine's one-round-trip activity + lifecycle timer update (nothing posted)."""
        await self.delivery.after_post(conv, event, vc, None)

    # --- in the lane ---------------------------------------------------------------------
    async def deliver(self, event: VoiceEvent, vc: VersionedConfig | None, match: Match,
                      counts: Counter, session: LaneSession | None = None) -> None:
        """Post one final transcription into its conversation (created through grouping unless
        the call named one), then remember which conversation the call feeds. The same
        signature as ``Delivery.deliver``, so the drain's lanes call either; with the lane's
        ``session`` the grouping key's lock and conversation stay held across its events."""
        if session is None:
            async with LaneSession() as own:
                return await self.deliver(event, vc, match, counts, own)
        d = self.delivery
        routed_to = event.metadata.get("conversationId")
        if routed_to:
            conv = await d.store.get(routed_to)
            if conv is not None and conv.status == cv.CLOSED and await interrupted.resume_in_closed(
                    d, conv, event, counts, session):
                return  # an interrupted post of it is there already (issue 12)
            if conv is None or not conv.is_open:
                raise Undeliverable("conversation_closed", "the routed conversation is not open")
            vc = await self.configstore.get(conv.configuration_id, conv.configuration_version)
            if vc is None:
                raise Undeliverable("unknown_configuration", "the conversation's configuration is gone")
            slot = (conv.configuration_id, conv.grouping_key)
            if slot not in session.convs:
                await session.stack.enter_async_context(d.store.lock(*slot))
                session.convs[slot] = await d.store.get(conv.id)
            held = session.convs[slot]
            conv = held if held is not None and held.id == conv.id else conv
            await d.ensure_participants(conv, event, match)
            await self._post(conv, event, counts, session)
            await self._touch(conv, event, vc)
        else:
            if vc is None:
                raise Undeliverable("unknown_configuration", f"configuration {match.config_id!r} is gone")
            conv = await self._via_grouping(event, vc, match, counts, session)
            if not conv.is_open:  # already in this closed conversation (interrupted.resume_elsewhere)
                _count(counts, "transcription", "after_close")
                return
        await self.calls.bind(event.metadata["callSid"], vc.id, conv.id)
        _count(counts, "transcription", "posted")

    async def _via_grouping(self, event: VoiceEvent, vc: VersionedConfig, match: Match,
                            counts: Counter, session: LaneSession) -> cv.Conversation:
        """The engine's get-or-create under the grouping key's lock, posting a transcription —
        or the CLOSED conversation an interrupted post of it already went into, found as a
        message's is (:func:`.interrupted.resume_elsewhere`: no second conversation), which
        is returned untouched."""
        d = self.delivery
        conv = await d.post_in_conversation(
            event, vc, match, counts, session, lambda conv: self._post(conv, event, counts, session),
            lambda conv: interrupted.resume_elsewhere(d, event, vc.id, conv, counts, session))
        if conv.is_open:
            await self._touch(conv, event, vc)
        return conv

    async def _post(self, conv: cv.Conversation, event: VoiceEvent, counts: Counter,
                    session: LaneSession) -> None:
        """POST the transcription into ``conv``, with the message path's bookkeeping in its
        state (``tl:msg:<resourceId>``): the attempt recorded before the first POST there
        (:func:`.interrupted.before_first_post`), ``posted:<conversation>`` queued on the lane's
        flush after v2's answer. A redelivery finds it marked posted (no second POST) or,
        after the conversation closed, tried there and found in v2 by its ``resourceId``."""
        d = self.delivery
        rid = event.resource_id
        if rid not in session.states:  # the lane's transcriptions, read together
            await d.messages.load([*session.expected, rid], session.states)
        known = session.states[rid]
        state = d.messages.observe(known, None, event.occurred_at, conv.id)
        if state.up_to_date:  # v2 answered and the lane's flush recorded it: only the ack was lost
            return
        record = await self.calls.get(event.metadata["callSid"])
        author = conv.participants.get(event.from_bare)
        recipient = conv.participants.get(event.to_bare)
        body = {
            "author": {"address": event.from_bare, "channel": "VOICE",
                       "participantId": author.id if author else None},
            "content": transcription_content(event, record.engine if record else None),
            "recipients": [{"address": event.to_bare, "channel": "VOICE",
                            "participantId": recipient.id if recipient else None}],
            "resourceId": event.resource_id,
            "channelId": interrupted.channel_id_of(event),  # what a lookup in v2 filters by
            "occurredAt": event.occurred_at,
        }
        await interrupted.before_first_post(d, conv, conv.configuration_id, rid, session)
        await d.call_v2(d.client.create_communication, conv.twilio_id, body)
        d.messages.write(session.pipe(d.redis), rid, state, conv.id, interrupted.NO_STATUS, known=known)
        counts[stats.field("communications", "posted")] += 1



def _bare(raw: str) -> str:
    from workers.foundations.addresses import normalize

    return normalize(raw) or raw


def _captures(root: CallRecord, index: RuleIndex, configs: dict) -> list[Match]:
    """The live configurations whose VOICE rules capture the call (its parties and callType)."""
    return [m for m in index.match("VOICE", _bare(root.from_addr), _bare(root.to_addr),
                                   {"callType": root.call_type}, direction=_dir(root))
            if m.config_id in configs]


def _dir(root: CallRecord) -> str:
    return "inbound" if (root.direction or "inbound") in ("inbound", "trunking-terminating") else "outbound"
