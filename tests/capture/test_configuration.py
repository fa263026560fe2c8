"""The Configuration model: Orchestrator's JSON accepted as-is, bad input refused with the field named.

Pure validation, no Redis: the same checks run for the file, the admin API and ``rules check``.
"""
from __future__ import annotations

import json

import pytest

from workers.capture.configuration import (
    Configuration,
    ConfigurationError,
    canonical_call_type,
    load_file,
    parse_configuration,
    parse_configurations,
)


def base(**over) -> dict:
    data = {
        "id": "support",
        "displayName": "Support",
        "description": "Customer support",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
    }
    data.update(over)
    return data


def problems(data) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        parse_configuration(data)
    return info.value.problems


# The example of the v2 spec's configuration_channel_settings (CHAT removed: classic bridge only).
SPEC_EXAMPLE = {
    "SMS": {"statusTimeouts": {"inactive": 10, "closed": 15}, "captureRules": [
        {"from": "+18005550100", "to": "+18005550101", "metadata": {}},
        {"from": "+18005550103", "to": "*", "metadata": {}},
        {"from": "*", "to": "+18005550103", "metadata": {}}]},
    "VOICE": {"statusTimeouts": {"inactive": 5, "closed": 30}, "captureRules": [
        {"from": "+18005550104", "to": "+18005550105", "metadata": {"callType": "PSTN"}},
        {"from": "+18005550106", "to": "*", "metadata": {}},
        {"from": "*", "to": "+18005550106", "metadata": {}}]},
    "WHATSAPP": {"statusTimeouts": {"inactive": 15, "closed": 60}, "captureRules": [
        {"from": "whatsapp:+18005550100", "to": "*", "metadata": {}},
        {"from": "*", "to": "whatsapp:+18005550100", "metadata": {}}]},
    "RCS": {"statusTimeouts": {"inactive": 15, "closed": 60}, "captureRules": [
        {"from": "rcs:brand_acme_agent", "to": "*", "metadata": {}},
        {"from": "*", "to": "rcs:brand_acme_agent", "metadata": {}},
        {"from": "rcs:+18005550107", "to": "*", "metadata": {}}]},
}


def test_spec_example_channel_settings_are_accepted_and_round_trip():
    config = parse_configuration(base(channelSettings=SPEC_EXAMPLE, memoryStoreId="mem_store_1",
                                      statusCallbacks=[{"url": "https://example.com/cb"}]))
    again = parse_configuration(config.to_json())
    assert again == config
    assert config.canonical() == again.canonical()
    rules = config.channelSettings.WHATSAPP.captureRules
    assert rules[0].from_bare == "+18005550100" and rules[1].to == "whatsapp:+18005550100"
    assert config.channelSettings.RCS.captureRules[0].from_bare == "rcs:brand_acme_agent"
    assert "null" not in json.dumps(config.to_json())


def test_display_name_pattern_and_length():
    assert problems(base(displayName="x" * 33)) == ["displayName: String should have at most 32 characters"]
    assert problems(base(displayName="café!")) == [
        "displayName: may contain only letters, digits, '-', '_' and spaces"]
    assert parse_configuration(base(displayName="Sales - EU_2")).displayName == "Sales - EU_2"


def test_required_fields_and_enum_are_named():
    out = problems({"id": "x"})
    assert {p.split(":")[0] for p in out} == {"displayName", "description", "conversationGroupingType"}
    out = problems(base(conversationGroupingType="GROUP_BY_MOOD"))
    assert out[0].startswith("conversationGroupingType: Input should be")


def test_description_limit_callbacks_and_intelligence_limits():
    assert problems(base(description="d" * 513))[0].startswith("description: ")
    cb = {"url": "https://example.com/x"}
    assert problems(base(statusCallbacks=[cb, cb, cb]))[0].startswith("statusCallbacks: ")
    assert problems(base(statusCallbacks=[{"url": "ftp://x"}]))[0].startswith("statusCallbacks[0].url: ")
    assert problems(base(intelligenceConfigurationIds=list("abcdef")))[0].startswith(
        "intelligenceConfigurationIds: ")


def test_id_must_be_a_slug():
    assert problems(base(id="Sales Team"))[0].startswith("id: must be a slug")


def test_status_timeouts_are_minutes_at_least_one():
    out = problems(base(channelSettings={"SMS": {"statusTimeouts": {"inactive": 0, "closed": 5}}}))
    assert out == ["channelSettings.SMS.statusTimeouts.inactive: Input should be greater than or equal to 1"]
    # `"statusTimeouts": null` is Orchestrator's own spelling for "defaults" (active TwiML example).
    assert parse_configuration(base(channelSettings={"VOICE": {"statusTimeouts": None}}))


def test_capture_rule_addresses_must_normalize_with_the_path_named():
    out = problems(base(channelSettings={"SMS": {"captureRules": [
        {"from": "+15551234567", "to": "*"},
        {"from": "4155550123", "to": "*"},  # no +: the country would be a guess
    ]}}))
    assert len(out) == 1 and out[0].startswith("channelSettings.SMS.captureRules[1].from: '4155550123' is not")


def test_addresses_must_fit_the_channel():
    out = problems(base(channelSettings={
        "SMS": {"captureRules": [{"from": "whatsapp:+15551234567", "to": "*"},
                                 {"from": "*", "to": "client:alice"}]},
        "WHATSAPP": {"captureRules": [{"from": "*", "to": "sip:a@b.com"}]},
    }))
    assert out == [
        "channelSettings.SMS.captureRules[0].from: a whatsapp: address cannot appear in the SMS rules",
        "channelSettings.SMS.captureRules[1].to: a client address cannot appear in the SMS rules",
        "channelSettings.WHATSAPP.captureRules[0].to: a sip address cannot appear in the WHATSAPP rules",
    ]


def test_voice_call_types():
    ok = parse_configuration(base(channelSettings={"VOICE": {"captureRules": [
        {"from": "*", "to": "+15551234567"},
        {"from": "client:alice", "to": "*", "metadata": {"callType": "CLIENT"}},
        {"from": "*", "to": "sip:desk@PBX.example.com", "metadata": {"callType": "SIP"}},
        {"from": "*", "to": "sip:desk2@pbx.example.com", "metadata": {"callType": "PUBLIC_SIP"}},
    ]}}))
    assert [r.call_type for r in ok.channelSettings.VOICE.captureRules] == [
        "PSTN", "CLIENT", "PUBLIC_SIP", "PUBLIC_SIP"]
    assert ok.channelSettings.VOICE.captureRules[2].to_bare == "sip:desk@pbx.example.com"
    out = problems(base(channelSettings={"VOICE": {"captureRules": [
        {"from": "*", "to": "+15551234567", "metadata": {"callType": "WEBRTC"}},
        {"from": "client:bob", "to": "*"},
    ]}, "SMS": {"captureRules": [{"from": "*", "to": "+15551234567", "metadata": {"callType": "PSTN"}}]}}))
    assert out == [
        "channelSettings.SMS.captureRules[0].metadata.callType: only VOICE rules have a callType",
        "channelSettings.VOICE.captureRules[0].metadata.callType: 'WEBRTC' is not one of PSTN, CLIENT, PUBLIC_SIP (or SIP)",
        "channelSettings.VOICE.captureRules[1].metadata.callType: a rule naming a client: identity needs callType CLIENT",
    ]
    assert canonical_call_type(None) == "PSTN" and canonical_call_type("sip") == "PUBLIC_SIP"


def test_unknown_fields_and_channels_are_refused():
    assert problems(base(captureRules=[]))[0] == "captureRules: Extra inputs are not permitted"
    assert problems(base(channelSettings={"CHAT": {}}))[0] == "channelSettings.CHAT: Extra inputs are not permitted"
    assert problems(base(channelSettings={"SMS": {"captureRule": []}}))[0].startswith(
        "channelSettings.SMS.captureRule: ")


def test_participant_types():
    config = parse_configuration(base(participantTypes={"whatsapp:+15551234567": "AI_AGENT",
                                                        "client:desk": "HUMAN_AGENT"}))
    assert config.account_addresses() == {"+15551234567": "AI_AGENT", "client:desk": "HUMAN_AGENT"}
    assert problems(base(participantTypes={"+15551234567": "BOSS"}))[0].startswith(
        "participantTypes.+15551234567: Input should be")
    assert problems(base(participantTypes={"*": "AGENT"}))[0].startswith("participantTypes: '*' is not an address")
    assert "are the same address" in problems(
        base(participantTypes={"+15551234567": "AGENT", "whatsapp:+15551234567": "AI_AGENT"}))[0]


def test_v2_body_has_no_capture_rules_and_no_threadline_fields():
    config = parse_configuration(base(channelSettings=SPEC_EXAMPLE, memoryStoreId="mem_1",
                                      twilioConfigurationId="conv_configuration_1",
                                      participantTypes={"+18005550100": "AI_AGENT"}, activeTwiml=True))
    body = config.v2_body()
    assert set(body["channelSettings"]) == {"SMS", "VOICE", "WHATSAPP", "RCS"}
    assert all("captureRules" not in s for s in body["channelSettings"].values())
    assert body["channelSettings"]["SMS"] == {"statusTimeouts": {"inactive": 10, "closed": 15}}
    for own in ("id", "twilioConfigurationId", "participantTypes", "activeTwiml"):
        assert own not in body
    assert body["memoryStoreId"] == "mem_1"


def test_a_list_reports_every_problem_with_its_position_and_duplicates():
    with pytest.raises(ConfigurationError) as info:
        parse_configurations([base(), base(description="d" * 600, id="b"), base(), 7])
    assert info.value.problems == [
        "[1] (b) description: String should have at most 512 characters",
        "[2] (support) id: 'support' appears twice",
        "[3] a configuration must be a JSON object",
    ]
    with pytest.raises(ConfigurationError):
        parse_configurations({"not": "a list"})


def test_load_file_yaml_json_and_unreadable(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(
        "- id: support\n  displayName: Support\n  description: ''\n"
        "  conversationGroupingType: GROUP_BY_PROFILE\n"
        "  channelSettings:\n    SMS:\n      captureRules:\n        - {from: '+15551234567', to: '*'}\n"
    )
    [config] = load_file(yaml_file)
    assert isinstance(config, Configuration) and config.channelSettings.SMS.captureRules[0].to == "*"
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps([base()]))
    assert load_file(json_file)[0].id == "support"
    broken = tmp_path / "broken.yaml"
    broken.write_text("- id: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML or JSON at line"):
        load_file(broken)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_file(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_file(empty) == []


def test_a_local_number_with_punctuation_is_not_taken_for_a_short_code():
    out = problems(base(channelSettings={"SMS": {"captureRules": [{"from": "555-0100", "to": "*"}]}}))
    assert out == ["channelSettings.SMS.captureRules[0].from: '555-0100' looks like a local number: "
                   "write it in E.164 (+…), or a short code as digits only"]
    assert parse_configuration(base(channelSettings={"SMS": {"captureRules": [
        {"from": "55501", "to": "*"}]}})).channelSettings.SMS.captureRules[0].from_bare == "55501"
