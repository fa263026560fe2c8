"""``rules explain``: what threadline would do with one event, without doing it.

It answers an operator's "why was (or wasn't) this captured?": which configurations and rules
match, which side is the customer and why, the grouping key, and the conversation the event
would join (an open one found through the grouping index, or a new one). It only reads:
nothing is created, no profile either — under GROUP_BY_PROFILE an unknown customer is reported
as "resolved (or created) at capture time".

The same function serves ``POST /api/v1/rules/explain`` and ``threadline rules explain``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.capture import grouping
from workers.capture.configuration import CHANNELS, Configuration
from workers.capture.index import Match, RuleIndex, Versioned, event_call_type
from workers.foundations.addresses import normalize
from workers.foundations.errors import InvalidInput


class ExplainError(InvalidInput):
    """Bad explain input; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_request(body: Any) -> tuple[str, str, str, dict[str, str], str | None]:
    """Validate ``{channel, from, to, metadata?, direction?}``; raises :class:`ExplainError`."""
    if not isinstance(body, dict):
        raise ExplainError("body", "must be a JSON object")
    channel = body.get("channel")
    if not isinstance(channel, str) or channel.upper() not in CHANNELS:
        raise ExplainError("channel", f"must be one of {', '.join(CHANNELS)}")
    out = []
    for name in ("from", "to"):
        value = body.get(name)
        if not isinstance(value, str) or normalize(value) is None:
            raise ExplainError(name, "must be an address (E.164 number, short code, whatsapp:/rcs: "
                                     "prefixed, client:identity or sip:user@host)")
        out.append(value)
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ExplainError("metadata", "must be an object of strings")
    direction = body.get("direction")
    if direction not in (None, "inbound", "outbound"):
        raise ExplainError("direction", "must be inbound or outbound")
    return channel.upper(), out[0], out[1], metadata, direction


async def _profile(redis: Any, config: Configuration, channel: str,
                   customer: str) -> tuple[str | None, str, bool]:
    """A read-only profile lookup: (profile id or None, where from, falls back to addresses)."""
    from workers.delivery.directory import LocalDirectory
    from workers.delivery.profiles import identifiers
    from workers.foundations import keys

    if not config.memoryStoreId:
        pid = await LocalDirectory(redis).profile_of(customer)
        return pid, "local profile directory" if pid else "new local profile at capture time", False
    ids = identifiers(channel, customer)
    if not ids:
        return None, "no Memory identifier for this address: grouped by addresses", True
    if await redis.exists(keys.memory_store_bad(config.memoryStoreId)):
        return None, "the Memory store refused lookups lately: grouped by addresses", True
    for id_type, value in ids:
        cached = await redis.get(keys.profile_cache(config.memoryStoreId, id_type, value))
        if cached:
            pid = cached.decode() if isinstance(cached, bytes) else cached
            return pid, "Memory lookup (cached)", False
    return None, "not cached: looked up in Memory (or created) at capture time", False


async def explain(configs: Sequence[Versioned], channel: str, from_raw: str, to_raw: str,
                  metadata: dict[str, str], *, direction: str | None = None, redis: Any = None,
                  conversations: Any = None) -> dict[str, Any]:
    """The explanation as JSON. ``redis``/``conversations`` (async) enable the lookups."""
    from_bare, to_bare = normalize(from_raw) or "", normalize(to_raw) or ""
    index = RuleIndex.build(configs)
    by_id = {vc.config.id: vc.config for vc in configs}
    out: dict[str, Any] = {"channel": channel, "from": from_bare, "to": to_bare}
    if channel == "VOICE":
        out["callType"] = event_call_type(from_bare, to_bare, metadata)
    matches = index.match(channel, from_bare, to_bare, metadata, direction=direction)
    out["matches"] = [await _one(m, by_id[m.config_id], channel, redis, conversations) for m in matches]
    if not matches:
        out["ignored"] = f"no {channel} capture rule of the {len(configs)} configuration(s) matches"
    return out


async def _one(m: Match, config: Configuration, channel: str, redis: Any, conversations: Any) -> dict[str, Any]:
    rules = getattr(config.channelSettings, channel).captureRules
    entry: dict[str, Any] = {
        "configurationId": m.config_id,
        "version": m.version,
        "rules": [{"index": i, **rules[i].model_dump(by_alias=True)} for i in m.rule_indexes],
        "customer": {"address": m.customer, "side": m.customer_side, "reason": m.reason},
        "account": {"address": m.account, "participantType": m.account_type},
        "groupingType": config.conversationGroupingType.value,
    }
    profile_id = None
    grouping_type = config.conversationGroupingType.value
    if grouping_type == grouping.BY_PROFILE:
        if redis is None:
            entry["groupingKey"] = None
            entry["profile"] = {"id": None, "source": "profiles are resolved at capture time"}
            return entry
        profile_id, source, fallback = await _profile(redis, config, channel, m.customer)
        entry["profile"] = {"id": profile_id, "source": source}
        if fallback:
            grouping_type = grouping.BY_ADDRESSES  # what delivery does without a profile
        elif profile_id is None:
            entry["groupingKey"] = None
            entry["conversation"] = {"action": "create or join by profile at capture time"}
            return entry
    key = grouping.grouping_key(grouping_type, channel, m.customer, m.account, profile_id=profile_id)
    entry["groupingKey"] = key
    if conversations is not None:
        entry["conversation"] = _conversation(await conversations.indexed(m.config_id, key), m.version)
    return entry


def _conversation(conv: Any, version: int) -> dict[str, Any]:
    """What delivery would do with the conversation the grouping index names (or none)."""
    if conv is None:
        return {"action": "create", "configurationVersion": version}
    if conv.status in ("ACTIVE", "INACTIVE"):
        return {"action": "join", "id": conv.id, "status": conv.status,
                "twilioConversationId": conv.twilio_id,
                "configurationVersion": conv.configuration_version}
    if conv.status == "CREATING":
        return {"action": "join or replace", "id": conv.id, "status": conv.status,
                "note": "a create is in flight (the event joins it) or was interrupted "
                        "(delivery abandons it and creates a new conversation)"}
    return {"action": "create", "configurationVersion": version,
            "previous": conv.id, "previousStatus": conv.status}
