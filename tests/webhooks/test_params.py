"""The pure parameter rules of webhook ingress (no I/O): decoding, limits, required names."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.webhooks import params as params_module
from service.webhooks.params import (
    MAX_PARAMS,
    Refused,
    check_length,
    media_type,
    parse_pairs,
    require,
    require_type,
    single_valued,
)


def test_blank_values_and_plus_signs_survive_decoding():
    assert parse_pairs(b"FromCity=&Body=Don%27t+stop&To=%2B14155550100") == [
        ("FromCity", ""), ("Body", "Don't stop"), ("To", "+14155550100")]
    assert parse_pairs(b"") == []
    assert parse_pairs(b"Body=caf%C3%A9+%F0%9F%98%80") == [("Body", "café 😀")]


@pytest.mark.parametrize("raw, reason", [
    (b"Body=\xff", "not valid UTF-8"),
    (b"Body=%FF", "not UTF-8"),
    (b"Body=%E2%82", "not UTF-8"),
    (("a=1&" * MAX_PARAMS).encode(), "too many parameters"),
])
def test_undecodable_or_flooding_bodies_are_refused_with_a_reason(raw, reason):
    with pytest.raises(Refused) as exc:
        parse_pairs(raw)
    assert exc.value.status == 400 and exc.value.outcome == "bad_request"
    assert reason in exc.value.reason


def test_repeated_names_are_refused_without_echoing_values():
    with pytest.raises(Refused) as exc:
        single_valued([("Body", "secret one"), ("Body", "secret two")])
    assert "Body" in exc.value.reason and "secret" not in exc.value.reason
    assert single_valued([("a", "1"), ("b", "")]) == {"a": "1", "b": ""}


def test_required_parameters_per_kind():
    require("message", {"MessageSid": "SM1", "From": "+1", "To": "+2"})
    require("call_status", {"CallSid": "CA1", "CallStatus": "ringing"})
    require("transcription", {"TranscriptionSid": "GT1", "TranscriptionEvent": "transcription-started"})
    with pytest.raises(Refused, match="missing required parameters: From, To"):
        require("message", {"MessageSid": "SM1", "From": ""})
    with pytest.raises(Refused, match="MessageStatus"):
        require("message_status", {"MessageSid": "SM1", "From": "+1", "To": "+2"})


def test_content_type_and_length_checks():
    assert media_type("Application/X-WWW-Form-Urlencoded; charset=UTF-8") == "application/x-www-form-urlencoded"
    require_type("application/json; charset=utf-8", "application/json")
    with pytest.raises(Refused) as exc:
        require_type(None, "application/json")
    assert exc.value.status == 415
    check_length(None, 10)
    check_length("10", 10)
    with pytest.raises(Refused) as exc:
        check_length("11", 10)
    assert exc.value.status == 413
    with pytest.raises(Refused) as exc:
        check_length("ten", 10)
    assert exc.value.status == 400


@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=10),
       st.text(alphabet="&=+%2BAaf7cC9 ", max_size=20))
def test_decoding_is_parse_qsl_for_whatever_decodes(pairs, noise):
    """The fast decoder must read every body exactly as the standard library would."""
    for raw in (urlencode(pairs), urlencode(pairs) + noise, noise):
        _decodes_as_parse_qsl(raw)


def _decodes_as_parse_qsl(raw: str) -> None:
    """parse_pairs gives parse_qsl's pairs, or refuses what parse_qsl cannot decode."""
    try:
        want = parse_qsl(raw, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        with pytest.raises(Refused):
            parse_pairs(raw.encode())
        return
    assert parse_pairs(raw.encode()) == want


@pytest.mark.parametrize("raw", ["a=%2b%2B%7e%7E%7f", "a=%e2%82%ac%E2%82%AC", "a=100%&b=%4", "a=%g1%%2",
                                 "a=%00x", "%41%42=%43+%44", "a=%C3"])
def test_escapes_in_either_case_malformed_or_not_ascii_decode_as_parse_qsl(raw):
    _decodes_as_parse_qsl(raw)


@pytest.mark.parametrize("raw", [
    "a=x%26y%3Dz&b=%25", "a=x%&b=1", "a=x%4&1=2", "a=%C3&b=%A9", "a=%C3%A9&%C3%A9=%F0%9F%98%80",
    "a=1&a=2", "a=&=&b=", "a=caf\u00e9+au+lait&b=+", "a=%00&b=1", "a=1&&b=2", "a=b=c&d=1", "a&b=1",
    "&a=1&", "a=%2B1%20415", "A=%41%4a%4A%6a",
])
def test_canonical_and_other_forms_decode_as_parse_qsl(raw):
    """Escaped separators, a lone or half escape before a separator, UTF-8 split across pairs,
    repeated names, blanks and NUL: both ways of decoding (whole text, pair by pair) agree."""
    _decodes_as_parse_qsl(raw)


def test_a_twilio_body_takes_the_one_pass_decoding():
    body = ("ToCountry=US&SmsMessageSid=SM1&Body=Hi%2C+is+my+order+%234411+shipped%3F&To=%2B14155550100"
            "&From=%2B14155550123&NumMedia=0&FromCity=")
    assert params_module._CANONICAL.fullmatch(body)
    assert parse_pairs(body.encode()) == parse_qsl(body, keep_blank_values=True)
    assert dict(parse_pairs(body.encode()))["Body"] == "Hi, is my order #4411 shipped?"


def test_invalid_utf8_is_refused_the_same_either_way():
    for raw in (b"a=1&b=%C3", b"a=1&&b=%C3", b"a=%C3&b=%A9", b"a=%C3&&b=%A9"):
        with pytest.raises(Refused) as exc:
            parse_pairs(raw)
        assert exc.value.status == 400 and exc.value.outcome == "bad_request"
        assert "percent-encoded bytes that are not UTF-8" in exc.value.reason


def test_single_valued_names_the_first_repeat():
    with pytest.raises(Refused, match="parameter b repeated in query"):
        single_valued([("a", "1"), ("b", "2"), ("c", ""), ("b", "3"), ("a", "4")], "query")
