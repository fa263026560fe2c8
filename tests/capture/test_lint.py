"""``rules check``'s lints, pure (no Redis): what an operator is warned about before going live."""
from __future__ import annotations

from workers.capture.configuration import parse_configuration
from workers.capture.lint import check_data, lint

US, US2, KIRAN = "+15550000001", "+15550000002", "+15551234567"


def cfg(id_: str, channels: dict, **over):
    return parse_configuration({
        "id": id_, "displayName": id_, "description": "", "memoryStoreId": "mem_1",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES", "channelSettings": channels, **over,
    })


def rules(*pairs, call_type=None) -> dict:
    meta = {"callType": call_type} if call_type else {}
    return {"captureRules": [{"from": f, "to": t, "metadata": meta} for f, t in pairs]}


def messages(findings) -> list[str]:
    return [str(f) for f in findings]


def test_a_clean_set_has_no_findings():
    a = cfg("a", {"SMS": rules((US, "*"), ("*", US))})
    b = cfg("b", {"WHATSAPP": rules((US2, "*"), ("*", US2)), "VOICE": rules(("*", US))})
    assert lint([a, b]) == []


def test_bidirectional_rules_of_two_numbers_overlap_on_traffic_between_them():
    a = cfg("a", {"SMS": rules((US, "*"), ("*", US))})
    b = cfg("b", {"SMS": rules((US2, "*"), ("*", US2))})
    [finding] = lint([a, b])
    assert f"SMS traffic from {US} to {US2}" in finding.message


def test_overlaps_across_configurations_name_both_rules():
    cases = [
        (rules((US, "*")), rules((US, "*")), f"from {US}"),
        (rules(("*", US)), rules(("*", US)), f"to {US}"),
        (rules((KIRAN, US)), rules(("*", US)), f"from {KIRAN} to {US}"),
        (rules((US, "*")), rules(("*", US2)), f"from {US} to {US2}"),
        (rules((KIRAN, US)), rules((KIRAN, US)), f"from {KIRAN} to {US}"),
        (rules(("*", "*")), rules((KIRAN, US)), f"from {KIRAN} to {US}"),
    ]
    for left, right, event in cases:
        found = [f for f in lint([cfg("a", {"SMS": left}), cfg("b", {"SMS": right})]) if "captured twice" in f.message]
        assert len(found) == 1, (left, right)
        assert found[0].level == "warning" and found[0].where == "a and b"
        assert f"SMS traffic {event}:" in found[0].message
        assert "a: channelSettings.SMS.captureRules[0]" in found[0].message
        assert "b: channelSettings.SMS.captureRules[0]" in found[0].message


def test_no_overlap_across_channels_call_types_or_disjoint_pairs():
    assert not [f for f in lint([cfg("a", {"SMS": rules((US, "*"))}), cfg("b", {"WHATSAPP": rules((US, "*"))})])
                if "twice" in f.message]
    assert not [f for f in lint([cfg("a", {"VOICE": rules(("*", US))}),
                                 cfg("b", {"VOICE": rules(("client:x", US), call_type="CLIENT")})])
                if "twice" in f.message]
    assert not [f for f in lint([cfg("a", {"SMS": rules((KIRAN, US))}), cfg("b", {"SMS": rules((US, KIRAN))})])
                if "twice" in f.message]


def test_both_sides_wildcard_and_client_wildcards():
    out = messages(lint([cfg("a", {"SMS": rules(("*", "*")),
                                   "VOICE": rules(("*", US), ("client:desk", "*"), call_type="CLIENT")})]))
    assert out == [
        "warning: a: channelSettings.SMS.captureRules[0]: both sides are '*': captures every SMS event of the account",
        "warning: a: channelSettings.VOICE.captureRules[0]: CLIENT rule with wildcard identities: Orchestrator "
        "cannot match dynamic client identities (threadline captures every in-app call); name the client: "
        "identities or use active TwiML",
    ]


def test_voice_rules_with_active_twiml_warn_about_double_billing():
    out = lint([cfg("a", {"VOICE": rules(("*", US))}, activeTwiml=True)])
    assert len(out) == 1 and "double STT billing" in out[0].message
    assert out[0].where == "a: channelSettings.VOICE.captureRules"
    # active TwiML with VOICE settings but no capture rules is Orchestrator's recommended setup
    assert lint([cfg("a", {"VOICE": {"statusTimeouts": {"inactive": 5, "closed": 30}}}, activeTwiml=True)]) == []


def test_timeouts_and_missing_memory_store():
    out = messages(lint([cfg("a", {"SMS": {"statusTimeouts": {"inactive": 30, "closed": 30}}}, memoryStoreId=None)]))
    assert out[0].startswith("warning: a: channelSettings.SMS.statusTimeouts: closed is not after inactive")
    assert out[1].startswith("warning: a: no twilioConfigurationId and no memoryStoreId")
    assert lint([cfg("b", {}, memoryStoreId=None, twilioConfigurationId="conv_configuration_1")]) == []


def test_twilio_limits_are_errors_only_when_asked():
    many = [cfg(f"c{i}", {"SMS": rules((f"+1555000{i:04d}", "*"))}) for i in range(11)]
    big = cfg("big", {"SMS": rules(*[(f"+1555100{i:04d}", "*") for i in range(101)])})
    assert lint(many) == [] and lint([big]) == []
    assert messages(lint(many, twilio_limits=True)) == [
        "error: 11 configurations; Orchestrator allows 10 per account"]
    assert messages(lint([big], twilio_limits=True)) == [
        "error: big: channelSettings.SMS.captureRules: 101 rules; Orchestrator allows 100 per channel"]


def test_validation_problems_are_errors():
    out = check_data([{"id": "a", "displayName": "A", "description": "",
                       "conversationGroupingType": "GROUP_BY_PROFILE",
                       "channelSettings": {"SMS": {"captureRules": [{"from": "+1", "to": "*"}]}}}])
    assert len(out) == 1 and out[0].level == "error"
    assert str(out[0]).startswith("error: [0] (a) channelSettings.SMS.captureRules[0].from: '+1' is not an address")


# --- the overlap lint agrees with brute force -------------------------------------------------
from dataclasses import dataclass  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workers.capture.index import linear_match  # noqa: E402

PHONES = [US, US2, KIRAN, "+15550000003"]
FRESH = "+15559999999"  # an address no rule names: what a '*' side stands for


@dataclass(frozen=True)
class _V:
    config: object
    version: int = 1


side = st.sampled_from(PHONES + ["*"])
rule_list = st.lists(st.tuples(side, side), max_size=4)


@settings(max_examples=200, deadline=None)
@given(rule_list, rule_list)
def test_overlap_lint_agrees_with_trying_every_event(left, right):
    a, b = cfg("a", {"SMS": rules(*left)}), cfg("b", {"SMS": rules(*right)})
    universe = PHONES + [FRESH]
    both = [(f, t) for f in universe for t in universe
            if len(linear_match([_V(a), _V(b)], "SMS", f, t)) == 2]
    overlaps = [f for f in lint([a, b]) if "captured twice" in f.message]
    assert bool(overlaps) == bool(both), (left, right, both)


def test_repeated_rule_within_a_channel():
    out = messages(lint([cfg("a", {"SMS": rules((US, "*"), ("*", US), ("+1 555 000 0001", "*"))})]))
    assert out == ["warning: a: channelSettings.SMS.captureRules[2]: the same rule as captureRules[0]"]
