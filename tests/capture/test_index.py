"""The indexed matcher: which configurations and rules capture an event, and who is the customer.

Pure, no Redis. A property test checks the index against the plain scan of every rule
(``linear_match``) on random rule sets and events.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.capture.configuration import Configuration, parse_configuration
from workers.capture.index import RuleIndex, event_call_type, linear_match

US = "+15550000001"  # the account's number in these tests
KIRAN = "+15551234567"
KIRAN2 = "+15559876543"


@dataclass(frozen=True)
class V:
    config: Configuration
    version: int = 1


def config(id_: str, channels: dict, **over) -> Configuration:
    return parse_configuration({
        "id": id_, "displayName": id_, "description": "", "channelSettings": channels,
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES", **over,
    })


def both_ways(address: str) -> dict:
    return {"captureRules": [{"from": address, "to": "*"}, {"from": "*", "to": address}]}


def test_bidirectional_rules_capture_both_directions_with_the_customer_on_the_other_side():
    index = RuleIndex.build([V(config("support", {"SMS": both_ways(US)}), 4)])
    [inbound] = index.match("SMS", KIRAN, US)
    assert (inbound.config_id, inbound.version, inbound.rule_index) == ("support", 4, 1)
    assert (inbound.customer_side, inbound.customer, inbound.account) == ("from", KIRAN, US)
    assert inbound.account_type == "AGENT"
    [outbound] = index.match("SMS", US, KIRAN)
    assert (outbound.rule_index, outbound.customer_side, outbound.customer) == (0, "to", KIRAN)
    assert index.match("SMS", KIRAN, KIRAN2) == []
    assert index.match("WHATSAPP", KIRAN, US) == []  # matching is per channel
    assert index.match("FAX", KIRAN, US) == []


def test_an_event_matching_several_configurations_matches_each_once():
    a = config("a", {"SMS": {"captureRules": [{"from": "*", "to": US}, {"from": KIRAN, "to": US}]}})
    b = config("b", {"SMS": {"captureRules": [{"from": "*", "to": "*"}]}})
    c = config("c", {"SMS": {"captureRules": [{"from": KIRAN2, "to": US}]}})
    matches = RuleIndex.build([V(a, 2), V(b, 7), V(c)]).match("SMS", KIRAN, US)
    assert [(m.config_id, m.version, m.rule_indexes) for m in matches] == [("a", 2, (0, 1)), ("b", 7, (0,))]


def test_participant_types_name_the_account_side_and_its_type():
    # A both-wildcard rule says nothing about sides: participantTypes do.
    cfg = config("bot", {"WHATSAPP": {"captureRules": [{"from": "*", "to": "*"}]}},
                 participantTypes={"whatsapp:" + US: "AI_AGENT"})
    index = RuleIndex.build([V(cfg)])
    [m] = index.match("WHATSAPP", US, KIRAN)
    assert (m.customer, m.account, m.account_type, m.reason) == (KIRAN, US, "AI_AGENT", "from is an account address")


def test_without_account_addresses_the_direction_decides():
    index = RuleIndex.build([V(config("all", {"SMS": {"captureRules": [{"from": "*", "to": "*"}]}}))])
    assert index.match("SMS", KIRAN, US)[0].customer == KIRAN
    assert index.match("SMS", US, KIRAN, direction="outbound")[0].customer == KIRAN
    assert index.match("SMS", US, KIRAN, direction="inbound")[0].customer == US


def test_addresses_from_other_rules_mark_the_account():
    # A pair rule alone (from US to KIRAN) is ambiguous, but US appears opposite a '*' elsewhere.
    cfg = config("c", {"SMS": {"captureRules": [{"from": KIRAN, "to": US}]},
                       "VOICE": {"captureRules": [{"from": "*", "to": US}]}})
    [m] = RuleIndex.build([V(cfg)]).match("SMS", KIRAN, US, direction="outbound")
    assert m.customer == KIRAN and m.reason == "to is an account address"


def test_voice_call_type_pstn_by_default_client_and_sip():
    cfg = config("voice", {"VOICE": {"captureRules": [
        {"from": "*", "to": US},
        {"from": "client:alice", "to": "*", "metadata": {"callType": "CLIENT"}},
        {"from": "*", "to": "sip:desk@pbx.example.com", "metadata": {"callType": "SIP"}},
    ]}})
    index = RuleIndex.build([V(cfg)])
    assert [m.rule_index for m in index.match("VOICE", KIRAN, US)] == [0]
    assert [m.rule_index for m in index.match("VOICE", KIRAN, US, {"callType": "PSTN"})] == [0]
    # a CLIENT call to the same number is not captured by the PSTN (default) rule
    assert index.match("VOICE", "client:bob", US, {"callType": "CLIENT"}) == []
    [m] = index.match("VOICE", "client:alice", KIRAN, {"callType": "CLIENT"})
    assert (m.rule_index, m.customer, m.account_type) == (1, KIRAN, "HUMAN_AGENT")
    # callType absent: inferred from the parties
    assert [m.rule_index for m in index.match("VOICE", "client:alice", KIRAN)] == [1]
    [sip] = index.match("VOICE", KIRAN, "sip:desk@pbx.example.com", {"callType": "PUBLIC_SIP"})
    assert sip.rule_index == 2 and sip.customer == KIRAN
    assert index.match("VOICE", KIRAN, "sip:desk@pbx.example.com", {"callType": "SIP"})[0].rule_index == 2
    assert event_call_type("sip:a@b", US, None) == "PUBLIC_SIP"


def test_other_metadata_filters_must_equal_the_events():
    cfg = config("m", {"SMS": {"captureRules": [{"from": "*", "to": US, "metadata": {"source": "web"}}]}})
    index = RuleIndex.build([V(cfg)])
    assert index.match("SMS", KIRAN, US) == []
    assert index.match("SMS", KIRAN, US, {"source": "web"})[0].config_id == "m"


# --- the index agrees with the scan ----------------------------------------------------------
ADDRS = [US, KIRAN, KIRAN2, "+15550000002", "client:alice", "sip:desk@pbx.example.com"]
PHONES = ADDRS[:4]
side = st.sampled_from(PHONES + ["*"])


@st.composite
def rule_sets(draw):
    configs = []
    for n in range(draw(st.integers(1, 4))):
        channels = {}
        for channel in draw(st.sets(st.sampled_from(["SMS", "VOICE", "WHATSAPP"]), min_size=1)):
            rules = []
            for _ in range(draw(st.integers(0, 6))):
                rule = {"from": draw(side), "to": draw(side)}
                if channel == "VOICE":
                    call = draw(st.sampled_from([None, "PSTN", "CLIENT", "SIP", "PUBLIC_SIP"]))
                    if call:
                        rule["metadata"] = {"callType": call}
                rules.append(rule)
            channels[channel] = {"captureRules": rules}
        configs.append(V(config(f"c{n}", channels), n + 1))
    return configs


@settings(max_examples=300, deadline=None)
@given(rule_sets(), st.sampled_from(["SMS", "VOICE", "WHATSAPP", "RCS"]), st.sampled_from(PHONES),
       st.sampled_from(PHONES), st.sampled_from([None, "PSTN", "CLIENT", "SIP"]))
def test_index_agrees_with_a_linear_scan(configs, channel, frm, to, call_type):
    metadata = {"callType": call_type} if call_type else {}
    got = [(m.config_id, m.rule_index) for m in RuleIndex.build(configs).match(channel, frm, to, metadata)]
    assert got == linear_match(configs, channel, frm, to, metadata)


def test_customer_side_helper_for_callers_outside_the_index():
    """workers.delivery.voice decides sides for calls routed actively with the same rules."""
    from workers.capture.index import account_addresses, customer_side

    cfg = config("c", {"VOICE": {"captureRules": [{"from": "*", "to": US}]}})
    assert customer_side(account_addresses(cfg), KIRAN, US) == ("from", "to is an account address")
    assert customer_side(frozenset(), US, KIRAN, "outbound") == ("to", "outbound: the recipient is the customer")


def test_prefixes_are_accepted_with_or_without_and_rcs_sender_ids_match():
    from workers.foundations.addresses import normalize

    cfg = config("omni", {
        "WHATSAPP": {"captureRules": [{"from": "*", "to": "whatsapp:" + US}]},
        "RCS": {"captureRules": [{"from": "rcs:brand_acme_agent", "to": "*"}, {"from": "*", "to": US}]},
    })
    index = RuleIndex.build([V(cfg)])
    # the event's addresses as Twilio writes them, normalized the way the parser does
    [wa] = index.match("WHATSAPP", normalize("whatsapp:" + KIRAN), normalize("whatsapp:" + US))
    assert (wa.customer, wa.account) == (KIRAN, US)
    assert index.match("WHATSAPP", KIRAN, US)[0].rule_index == 0  # same rule without the prefix
    [rcs] = index.match("RCS", normalize("rcs:brand_acme_agent"), normalize("rcs:" + KIRAN))
    assert (rcs.rule_index, rcs.customer, rcs.account) == (0, KIRAN, "rcs:brand_acme_agent")
    assert index.match("RCS", normalize("rcs:" + KIRAN), normalize("rcs:" + US))[0].rule_index == 1


def test_large_indexes_share_one_int_object_per_rule_index_and_version():
    # Why it matters: a match copies (and so touches) the rule index and version of each hit;
    # with one int object per rule (CPython caches only -5..256) a 100,000-rule index turns
    # those touches into cache misses (bench/rules.py measured 2.52 → 2.40 µs per event).
    numbers = [f"+1555{i:07d}" for i in range(300)]
    rules = {"captureRules": [{"from": "*", "to": n} for n in numbers]}
    index = RuleIndex.build([V(config("a", {"SMS": rules}), 1000), V(config("b", {"SMS": rules}), 1000)])
    [in_a, in_b] = index.match("SMS", KIRAN, numbers[299])
    assert (in_a.config_id, in_b.config_id) == ("a", "b")
    assert in_a.rule_index == 299 and in_a.rule_index is in_b.rule_index
    assert in_a.version == 1000 and in_a.version is in_b.version
