"""Active creation (Orchestrator's API mode): a conversation an operator opens before any traffic.

``POST /api/v1/conversations`` with a configuration and participants creates the conversation
and its participants in v2, then registers it in the grouping index exactly as the engine
would have, so later inbound traffic between those participants joins it (the seeds'
"outbound and inbound SMS" combination: a business texts first, the customer's reply lands in
the same conversation).

The grouping key needs the pair of addresses: exactly one CUSTOMER participant and one
account-side participant (AGENT, HUMAN_AGENT or AI_AGENT) with an address on the channel.
GROUP_BY_PROFILE configurations also need the customer's ``profileId``.
"""
from __future__ import annotations

from dataclasses import dataclass

from workers import stats
from workers.capture import grouping
from workers.capture.configuration import Configuration
from workers.conversations.store import Conversation, ConversationStore, Participant
from workers.foundations.addresses import normalize
from workers.foundations.constants import CHANNELS
from workers.foundations.errors import InvalidInput, Permanent
from workers.foundations.settings import Settings
from workers.lifecycle import policy as lifecycle
from workers.lifecycle import timers
from workers.parse import v2_address
from workers.twilio.client import V2Client

AGENT_TYPES = ("AGENT", "HUMAN_AGENT", "AI_AGENT")


class BadRequest(InvalidInput):
    """The request cannot make a conversation; the message says which field and why."""


class Conflict(Permanent, ValueError):
    """The grouping key already has an open conversation (its id is ``existing``)."""

    reason = "conflict"

    def __init__(self, message: str, existing: str | None = None) -> None:
        super().__init__(message)
        self.existing = existing


@dataclass(frozen=True)
class Wanted:
    address: str       # as given (v2 form, e.g. whatsapp:+44…)
    bare: str
    channel: str
    type: str
    name: str | None
    profile_id: str | None


def parse_participants(raw: object) -> list[Wanted]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("participants: a non-empty list of {address, channel, type} is required")
    out = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise BadRequest(f"participants[{i}]: must be an object")
        channel = p.get("channel")
        if channel not in CHANNELS:
            raise BadRequest(f"participants[{i}].channel: must be one of {', '.join(CHANNELS)}")
        ptype = p.get("type", "CUSTOMER")
        if ptype not in ("CUSTOMER", *AGENT_TYPES):
            raise BadRequest(f"participants[{i}].type: must be CUSTOMER, AGENT, HUMAN_AGENT or AI_AGENT")
        address = p.get("address")
        bare = normalize(address) if isinstance(address, str) else None
        if not bare or not isinstance(address, str):
            raise BadRequest(f"participants[{i}].address: not an address")
        name, profile = p.get("name"), p.get("profileId")
        out.append(Wanted(address, bare, channel, ptype, name if isinstance(name, str) else None,
                          profile if isinstance(profile, str) else None))
    customers = [w for w in out if w.type == "CUSTOMER"]
    agents = [w for w in out if w.type in AGENT_TYPES]
    if len(customers) != 1 or not agents:
        raise BadRequest("participants: exactly one CUSTOMER and at least one AGENT/HUMAN_AGENT/"
                         "AI_AGENT are needed to group later traffic")
    return out


def grouping_key_of(config: Configuration, wanted: list[Wanted]) -> str:
    customer = next(w for w in wanted if w.type == "CUSTOMER")
    agent = next(w for w in wanted if w.type in AGENT_TYPES)
    gtype = str(config.conversationGroupingType)
    if gtype == grouping.BY_PROFILE and not customer.profile_id:
        raise BadRequest("participants: GROUP_BY_PROFILE needs the CUSTOMER's profileId")
    return grouping.grouping_key(gtype, customer.channel, customer.bare, agent.bare,
                                 profile_id=customer.profile_id)


async def create(settings: Settings, redis, store: ConversationStore, v2: V2Client,
                 config: Configuration, version: int, v2_config_id: str,
                 wanted: list[Wanted], name: str | None) -> Conversation:
    """Create in v2 and register for grouping, under the grouping key's lock."""
    key = grouping_key_of(config, wanted)
    gtype = str(config.conversationGroupingType)
    async with store.lock(config.id, key, wait=10.0):
        existing = await store.indexed(config.id, key)
        if existing is not None and existing.status != lifecycle.CLOSED:
            raise Conflict("an open conversation already groups these participants", existing.id)
        conv = await store.begin_create(config.id, version, key, gtype)
        body = {"configurationId": v2_config_id,
                "metadata": {"threadlineId": conv.id,
                             "threadlineGroupingKey": grouping.metadata_value(key)}}
        if name:
            body["name"] = name
        try:
            created = await v2.create_conversation(body)
            participants: dict[str, Participant] = {}
            for w in wanted:
                pbody: dict = {"type": w.type,
                               "addresses": [{"channel": w.channel,
                                              "address": v2_address(w.channel, w.bare)}]}
                if w.name:
                    pbody["name"] = w.name
                if w.profile_id and w.type == "CUSTOMER":
                    pbody["profileId"] = w.profile_id
                made = await v2.create_participant(created["id"], pbody)
                participants[w.bare] = Participant(made["id"], w.type, v2_address(w.channel, w.bare),
                                                   w.channel)
        except Exception:
            await store.close(conv.id, "create_failed")
            raise
        pipe = redis.pipeline(transaction=True)
        store.finish_create(pipe, conv, created["id"], participants)
        stats.add(pipe, {stats.field("conversations_created", config.id): 1},
                  retention_minutes=settings.stats_retention_minutes)
        await pipe.execute()
        # Opened on its channels now: that is its first activity (channels, list filters and
        # timers all count from it, as after a first communication).
        channels = sorted({w.channel for w in wanted})
        for ch in channels:
            await store.touch(conv, ch, conv.created_at)
        touts = lifecycle.channel_timeouts(config, channels)
        pipe = redis.pipeline(transaction=False)
        timers.schedule(pipe, conv.id, min(
            lifecycle.due_after_communication(ch, conv.created_at, touts[ch], settings.minute_seconds)
            for ch in channels))
        await pipe.execute()
        return conv
