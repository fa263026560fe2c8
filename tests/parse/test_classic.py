"""Classic post-events → CHAT CaptureEvents, their dedupe keys and shards, and the bridge's
configuration rules. Pure: no Redis, no HTTP."""
from __future__ import annotations

import pytest

from workers.capture.configuration import ConfigurationError, parse_configuration, parse_configurations
from workers.capture.lint import lint
from workers.eventlog.entries import CLASSIC, LogEntry, dedupe_key, shard_of
from workers.parse import ParseError, parse

T0 = 1772463900000  # 2026-03-02T15:05:00Z
IS, CH, CH2 = "IS" + "a" * 32, "CH" + "b" * 32, "CH" + "c" * 32
IM = "IM" + "d" * 32


def entry(**params: str) -> LogEntry:
    base = {"AccountSid": "AC" + "0" * 32, "ChatServiceSid": IS, "ConversationSid": CH}
    return LogEntry(CLASSIC, T0, base["AccountSid"], {**base, **params}, {}, "cid")


def message(event: str = "onMessageAdded", **over: str) -> LogEntry:
    base = {"EventType": event, "MessageSid": IM, "Index": "3", "Author": "alice", "Body": "Hi",
            "DateCreated": "2026-03-02T15:04:00.000Z", "Source": "SDK"}
    return entry(**{**base, **over})


def test_a_message_added_is_a_chat_communication_from_its_author():
    ev = parse(message())
    assert ev is not None
    assert (ev.channel, ev.from_bare, ev.to_bare, ev.resource_id, ev.text) == ("CHAT", "alice", CH, IM, "Hi")
    assert ev.occurred_at == "2026-03-02T15:04:00.000Z" and ev.occurred_at_source == "twilio"
    assert ev.metadata["service"] == IS and ev.metadata["event"] == "onMessageAdded"
    assert ev.metadata["version"] == "2026-03-02T15:04:00.000Z"


def test_a_rest_message_without_author_is_the_services_system_author():
    ev = parse(entry(EventType="onMessageAdded", MessageSid=IM, Index="0", Body="x"))
    assert ev is not None and ev.from_bare == "system"


def test_an_update_keeps_the_creation_time_and_is_versioned_by_its_update():
    ev = parse(message("onMessageUpdated", DateUpdated="2026-03-02T15:06:00.000Z", Body="Hi!"))
    assert ev is not None and ev.text == "Hi!"
    assert ev.occurred_at == "2026-03-02T15:04:00.000Z"
    assert ev.metadata["version"] == "2026-03-02T15:06:00.000Z"


def test_a_removal_carries_no_text_and_state_updates_carry_the_new_state():
    removed = parse(message("onMessageRemoved", DateRemoved="2026-03-02T15:07:00.000Z"))
    assert removed is not None and removed.text is None
    state = parse(entry(EventType="onConversationStateUpdated", StateFrom="active", StateTo="closed",
                        StateUpdated="2026-03-02T15:08:00.000Z", Reason="API"))
    assert state is not None and state.metadata["state"] == "closed" and state.resource_id == CH


def test_events_the_bridge_does_not_read_are_none():
    assert parse(entry(EventType="onDeliveryUpdated")) is None
    assert parse(entry(EventType="onUserAdded")) is None


@pytest.mark.parametrize("params, reason", [
    ({"EventType": "onMessageAdded"}, "classic_missing_sid"),
    ({"EventType": "onParticipantAdded"}, "classic_missing_sid"),
    ({"EventType": "onConversationAdded", "ConversationSid": "nope"}, "classic_bad_sid"),
    ({"EventType": "onConversationStateUpdated", "StateTo": "archived"}, "classic_bad_state"),
])
def test_broken_events_are_parse_errors_with_a_reason(params, reason):
    with pytest.raises(ParseError) as exc:
        parse(entry(**params))
    assert exc.value.reason == reason


def test_dedupe_is_on_the_event_and_shards_follow_the_classic_conversation():
    added, again = message(), message(RetryCount="1")
    updated = message("onMessageUpdated", DateUpdated="2026-03-02T15:06:00.000Z")
    updated2 = message("onMessageUpdated", DateUpdated="2026-03-02T15:09:00.000Z")
    keys = [dedupe_key(CLASSIC, e.params) for e in (added, again, updated, updated2)]
    assert keys[0] == keys[1] and len(set(keys)) == 3
    other = entry(ConversationSid=CH2, EventType="onConversationAdded")
    assert shard_of(CLASSIC, added.params, 64) == shard_of(CLASSIC, updated.params, 64)
    assert any(shard_of(CLASSIC, {"ConversationSid": f"CH{i:032x}"}, 64) != shard_of(CLASSIC, other.params, 64)
               for i in range(4))


def config(id_: str, service: str | None = IS, **over):
    body = {"id": id_, "displayName": id_, "description": "", "memoryStoreId": "mem_1",
            "conversationGroupingType": "GROUP_BY_PROFILE", **over}
    if service:
        body["conversationsV1Bridge"] = {"serviceId": service}
    return body


def test_one_configuration_per_classic_service():
    with pytest.raises(ConfigurationError) as exc:
        parse_configurations([config("a"), config("b")])
    assert "'a'" in exc.value.problems[0] and "'b'" in exc.value.problems[0]
    assert len(parse_configurations([config("a"), config("b", "IS" + "e" * 32)])) == 2


def test_chat_identities_are_typed_and_the_bridge_is_never_sent_to_v2():
    cfg = parse_configuration(config("a", participantTypes={"chat:kim": "HUMAN_AGENT",
                                                             "+14155550100": "AI_AGENT"}))
    assert (cfg.chat_type("kim"), cfg.chat_type("system"), cfg.chat_type("alice")) == (
        "HUMAN_AGENT", "AGENT", "CUSTOMER")
    assert cfg.account_addresses() == {"+14155550100": "AI_AGENT"}
    assert "conversationsV1Bridge" not in cfg.v2_body()
    with pytest.raises(ConfigurationError):
        parse_configuration(config("a", participantTypes={"chat:": "AGENT"}))


def test_rules_check_warns_when_a_bridge_meets_sms_or_whatsapp_rules():
    rules = {"captureRules": [{"from": "*", "to": "+14155550100"}]}
    voice_only = parse_configuration(config("a", channelSettings={"VOICE": rules}))
    assert lint([voice_only]) == []
    sms = parse_configuration(config("b", service=None, channelSettings={"SMS": rules}))
    [finding] = lint([voice_only, sms])
    assert finding.where == "a and b" and IS in finding.message and "twice" in finding.message
