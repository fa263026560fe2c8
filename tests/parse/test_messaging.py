"""Pure unit tests of parse (LogEntry → CaptureEvent) and grouping keys. No Redis, no HTTP:
these are the engine's decisions, checked on the shared webhook fixtures and edge cases."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from workers.capture import grouping
from workers.eventlog.entries import MESSAGE, MESSAGE_STATUS, LogEntry
from workers.parse import DELIVERY_STATUS, STATUS_RANK, ParseError, better_status, parse, parse_timestamp

T0 = 1772463900000  # 2026-03-02T15:05:00Z


def _entries(name: str) -> list[LogEntry]:
    out = []
    for d in json.loads(next(FIXTURES.glob(f"{name}_*.json")).read_text()):
        kind = MESSAGE_STATUS if "/status" in d["url"] else MESSAGE
        out.append(LogEntry(kind, T0, d["params"]["AccountSid"], d["params"], {}, "cid"))
    return out


def test_inbound_sms_and_reply_statuses():
    inbound, *statuses = [parse(e) for e in _entries("a")]
    assert inbound.channel == "SMS" and inbound.direction == "inbound"
    assert inbound.from_bare == "+14155550123" and inbound.to_bare == "+14155550100"
    assert inbound.text == "Hi, is my order #4411 shipped yet?"
    assert inbound.delivery_status == "DELIVERED"
    assert inbound.resource_id == "SM7802f3e2531a18915c8f03b2a89bc64e"
    assert inbound.occurred_at == "2026-03-02T15:05:00.000Z" and inbound.occurred_at_source == "received"
    assert [s.delivery_status for s in statuses] == ["INITIATED", "IN_PROGRESS", "DELIVERED"]
    assert all(s.direction == "outbound" and s.text is None for s in statuses)
    assert statuses[2].metadata["dlrDoneDate"] == "2603021505"


def test_whatsapp_prefix_and_read_receipt():
    events = [parse(e) for e in _entries("b")]
    assert {e.channel for e in events} == {"WHATSAPP"}
    assert events[0].from_bare == "+447700900123" and events[0].v2_address("from") == "whatsapp:+447700900123"
    assert [e.delivery_status for e in events[1:4]] == ["IN_PROGRESS", "DELIVERED", "READ"]
    assert events[4].metadata["repliedToSid"] == "SM2687eb77354913427d6c80fee1c6f162"


def test_undelivered_is_failed_with_error_code():
    last = parse(_entries("f")[-1])
    assert last.delivery_status == "FAILED" and last.metadata["errorCode"] == "30003"


def test_mms_media_in_metadata_not_text():
    e = parse(_entries("g")[0])
    assert e.text == "Here is the damaged box"
    assert e.metadata["numMedia"] == 2
    assert [m["contentType"] for m in e.metadata["media"]] == ["image/jpeg", "video/mp4"]
    assert "https://" not in e.text


def test_rcs_channel_and_sender_id():
    e = parse(LogEntry(MESSAGE, T0, "AC1", {"MessageSid": "SMx", "From": "rcs:+14155550123",
                                             "To": "rcs:brand_acme_agent", "Body": "hi"}))
    assert e.channel == "RCS" and e.to_bare == "rcs:brand_acme_agent"
    assert e.v2_address("from") == "rcs:+14155550123" and e.v2_address("to") == "rcs:brand_acme_agent"


def test_twilio_timestamp_wins_over_receive_time():
    e = parse(LogEntry(MESSAGE_STATUS, T0, "AC1", {
        "MessageSid": "SMx", "From": "+14155550100", "To": "+14155550123",
        "MessageStatus": "DELIVERED", "Timestamp": "2026-03-02T19:00:04.900Z"}))
    assert e.occurred_at == "2026-03-02T19:00:04.900Z" and e.occurred_at_source == "twilio"
    assert e.delivery_status == "DELIVERED"  # Event Streams' upper-case status
    assert parse_timestamp("Mon, 02 Mar 2026 19:01:10 +0000") == "2026-03-02T19:01:10.000Z"
    assert parse_timestamp("not a date") is None


@pytest.mark.parametrize("params,reason", [
    ({"MessageSid": "SMx", "From": "messenger:123", "To": "+14155550100"}, "unknown_channel"),
    ({"MessageSid": "SMx", "From": "whatsapp:+14155550123", "To": "rcs:+14155550100"}, "channel_mismatch"),
    ({"MessageSid": "SMx", "From": "garbage", "To": "+14155550100"}, "bad_address"),
    ({"MessageSid": "SMx", "From": "whatsapp:", "To": "+14155550100"}, "bad_address"),
    ({"From": "+14155550123", "To": "+14155550100"}, "missing_field"),
    ({"MessageSid": "SMx", "To": "+14155550100"}, "missing_field"),
])
def test_bad_messages_get_a_reason(params, reason):
    with pytest.raises(ParseError) as err:
        parse(LogEntry(MESSAGE, T0, "AC1", params))
    assert err.value.reason == reason


def test_unknown_status_is_refused():
    with pytest.raises(ParseError) as err:
        parse(LogEntry(MESSAGE_STATUS, T0, "AC1", {"MessageSid": "SMx", "From": "+14155550100",
                                                    "To": "+14155550123", "MessageStatus": "teleported"}))
    assert err.value.reason == "unknown_status"


@given(st.lists(st.sampled_from(sorted(DELIVERY_STATUS)), min_size=1, max_size=8), st.randoms())
def test_best_status_is_order_independent(statuses, rnd):
    mapped = [DELIVERY_STATUS[s] for s in statuses]
    shuffled = mapped[:]
    rnd.shuffle(shuffled)
    a = b = None
    for s in mapped:
        a = better_status(a, s)
    for s in shuffled:
        b = better_status(b, s)
    assert a == b == max(mapped, key=STATUS_RANK.__getitem__)


# --- grouping ------------------------------------------------------------------------------

def test_grouping_example_sms_and_whatsapp():
    """Seed 002: SMS and WhatsApp from one number, SMS from a second → 3 and 2 conversations."""
    ours, kiran, kiran2 = "+15550000000", "+15551234567", "+15559876543"
    events = [("SMS", kiran, ours), ("WHATSAPP", kiran, ours), ("SMS", kiran2, ours), ("SMS", ours, kiran)]
    by_channel = {grouping.grouping_key(grouping.BY_ADDRESSES_AND_CHANNEL, *e) for e in events}
    by_addr = {grouping.grouping_key(grouping.BY_ADDRESSES, *e) for e in events}
    assert len(by_channel) == 3 and len(by_addr) == 2


def test_profile_grouping_needs_a_profile():
    with pytest.raises(grouping.ProfileRequired):
        grouping.grouping_key(grouping.BY_PROFILE, "SMS", "+1", "+2")
    assert grouping.grouping_key(grouping.BY_PROFILE, "SMS", "+1", "+2", profile_id="mem_p") == "profile|mem_p"
    with pytest.raises(ValueError):
        grouping.grouping_key("GROUP_BY_MOON", "SMS", "+1", "+2")


def test_long_keys_are_hashed_for_metadata():
    key = "x" * 600
    value = grouping.metadata_value(key)
    assert len(value) <= 512 and value.startswith("sha256:")
    assert grouping.metadata_value("short") == "short"
