"""Address normalization and sharding are pure: no Redis needed."""
import pytest

from workers.eventlog.entries import CALL_STATUS, TRANSCRIPTION, shard_of
from workers.foundations.addresses import normalize, shard_of_pair, split_prefix


@pytest.mark.parametrize(
    ("raw", "bare"),
    [("+14155550123", "+14155550123"), ("whatsapp:+14155550123", "+14155550123"),
     ("WhatsApp:+1 (415) 555-0123", "+14155550123"), ("rcs:+14155550123", "+14155550123"),
     ("0044 20 7946 0958", "+442079460958"), ("12345", "12345"), ("client:Alice", "client:Alice"),
     ("sip:alice@Example.SIP.twilio.com;transport=tls", "sip:alice@example.sip.twilio.com"),
     ("rcs:brand_agent", "rcs:brand_agent"), ("4155550123", None), ("", None), ("whatsapp:", None),
     ("client:", None), (None, None)],
)
def test_normalize(raw: str | None, bare: str | None) -> None:
    assert normalize(raw) == bare


def test_split_prefix() -> None:
    assert split_prefix("whatsapp:+1415") == ("WHATSAPP", "+1415")
    assert split_prefix("+1415") == (None, "+1415")


def test_both_directions_and_spellings_share_a_shard() -> None:
    a = shard_of_pair("+14155550123", "+14155550100", 16)
    assert a == shard_of_pair("+14155550100", "+14155550123", 16)
    assert a == shard_of_pair("whatsapp:+14155550123", "whatsapp:+14155550100", 16)


def test_shard_is_stable_across_processes() -> None:
    # blake2b, not hash(): a fixed pair has a fixed shard whatever PYTHONHASHSEED is.
    assert shard_of_pair("+14155550123", "+14155550100", 1 << 30) == shard_of_pair(
        "+14155550100", "+14155550123", 1 << 30)
    assert len({shard_of_pair(f"+1415555{i:04d}", "+14155550100", 16) for i in range(200)}) == 16


def test_voice_events_shard_by_parent_call() -> None:
    parent = shard_of(CALL_STATUS, {"CallSid": "CA1"}, 64)
    assert shard_of(TRANSCRIPTION, {"CallSid": "CA1"}, 64) == parent
    assert shard_of(CALL_STATUS, {"CallSid": "CA2", "ParentCallSid": "CA1"}, 64) == parent
