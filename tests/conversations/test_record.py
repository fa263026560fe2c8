"""The conversation record's compact hash encoding (workers.conversations.record): pure, no Redis.

What must hold: everything the engine puts in a record comes back the same, and no value
grows past the 64 bytes that keep Redis' small-hash (listpack) encoding."""
from __future__ import annotations

from workers.conversations.record import (
    Conversation,
    Participant,
    from_hash,
    ms,
    new_id,
    new_record,
    participant_fields,
    twilio_id_value,
)

BIZ, CUSTOMER = "+14155550100", "+447700900123"


def _record(conv: Conversation) -> dict[str, str]:
    out = new_record(conv)
    out["tw"] = twilio_id_value(conv.twilio_id)
    for bare, p in conv.participants.items():
        out.update(participant_fields(bare, p))
    out.update({f"a{ch}": ms(at) for ch, at in conv.last_activity.items()})
    return out


def _conv(**over) -> Conversation:
    base = dict(id=new_id(), configuration_id="support", configuration_version=7,
                grouping_key=f"{CUSTOMER}|{BIZ}", grouping_type="GROUP_BY_PARTICIPANT_ADDRESSES",
                status="ACTIVE", twilio_id="conv_conversation_01jx9k2m3n4p5q6r7s8t9v0w1x",
                created_at=1_790_000_000.25, updated_at=1_790_000_100.5,
                last_activity={"SMS": 1_790_000_050.125, "WHATSAPP": 1_790_000_090.0})
    base.update(over)
    return Conversation(**base)


def test_a_record_round_trips_with_moved_customer_and_odd_ids() -> None:
    customer = Participant("conv_participant_01jx9k2m3n4p5q6r7s8t9v0w1y", "CUSTOMER", CUSTOMER,
                           "SMS", [("WHATSAPP", f"whatsapp:{CUSTOMER}"), ("RCS", "rcs:brand|x")])
    agent = Participant("PA-legacy-id", "AI_AGENT", "client:bot", "VOICE")   # no TTID prefix
    bang = Participant("conv_participant_!odd", "AGENT", f"whatsapp:{BIZ}", "WHATSAPP")
    conv = _conv(participants={CUSTOMER: customer, "client:bot": agent, BIZ: bang})
    back = from_hash(conv.id, {k.encode(): v.encode() for k, v in _record(conv).items()})
    assert back == conv
    assert back.participants[CUSTOMER].addresses == [("SMS", CUSTOMER),
                                                     ("WHATSAPP", f"whatsapp:{CUSTOMER}"),
                                                     ("RCS", "rcs:brand|x")]


def test_every_value_stays_within_the_listpack_limit() -> None:
    p = Participant("conv_participant_01jx9k2m3n4p5q6r7s8t9v0w1y", "HUMAN_AGENT",
                    f"whatsapp:{CUSTOMER}", "WHATSAPP", [("SMS", CUSTOMER)])
    conv = _conv(grouping_type="GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
                 participants={CUSTOMER: p})
    record = _record(conv)
    assert max(len(v.encode()) for v in record.values()) <= 64, record
    assert "id" not in record and len(conv.id) <= 28   # the id is the key, and short


def test_unknown_grouping_type_and_missing_record() -> None:
    conv = _conv(grouping_type="GROUP_BY_SOMETHING_NEW", twilio_id="not-a-ttid")
    back = from_hash(conv.id, _record(conv))
    assert back.grouping_type == "GROUP_BY_SOMETHING_NEW" and back.twilio_id == "not-a-ttid"
    assert from_hash(conv.id, {}) is None
