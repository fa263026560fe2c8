"""Voice webhooks → capture events, on the shared fixtures c and d (pure: no Redis needed)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from workers.eventlog.entries import CALL_STATUS, TRANSCRIPTION, LogEntry
from workers.parse.voice import (
    CLIENT,
    PSTN,
    PUBLIC_SIP,
    CallParties,
    VoiceParseError,
    attribute,
    call_type_of,
    occurred_at,
    parse_voice,
    speakers,
    transcription_content,
)


def _entries(name: str) -> list[LogEntry]:
    out = []
    for i, d in enumerate(json.loads((FIXTURES / name).read_text())):
        path, _, query = d["url"].partition("?")
        kind = TRANSCRIPTION if path.endswith("/transcription") else CALL_STATUS
        q = dict(pair.split("=", 1) for pair in query.split("&")) if query else {}
        out.append(LogEntry(kind, 1_772_463_846_000 + i, d["params"]["AccountSid"], d["params"], q, f"c{i}"))
    return out


C = _entries("c_inbound_pstn_call_transcription.json")
D = _entries("d_client_and_sip_calls.json")
PARENT = "CA170601453461ae9437029d0cb1cec23c"


def test_fixture_c_final_results_are_the_only_communications():
    events = [parse_voice(e) for e in C]
    finals = [e for e in events if not e.voice.progress]
    assert [e.voice.sequence for e in finals] == [2, 3, 4]
    assert [e.resource_id for e in finals] == [
        "GT1db12110484674d81449b743a8027441:2", "GT1db12110484674d81449b743a8027441:3",
        "GT1db12110484674d81449b743a8027441:4",
    ]
    assert finals[0].text == "Hi, I'm calling about my order forty four eleven."
    assert finals[1].voice.confidence == pytest.approx(0.9637)
    assert [e.voice.track for e in finals] == ["inbound_track", "outbound_track", "inbound_track"]
    # everything else is call progress: status callbacks, started, stopped
    progress = [e for e in events if e.voice.progress]
    assert len(progress) == 8 and all(e.text is None for e in progress)
    started = events[1]
    assert started.voice.transcription_event == "transcription-started" and started.voice.engine == "google"
    assert events[9].voice.terminal and events[10].voice.terminal


def test_fixture_c_call_status_fields_and_child_leg():
    ringing, child_init = parse_voice(C[0]), parse_voice(C[2])
    assert ringing.kind == CALL_STATUS and ringing.channel == "VOICE"
    assert (ringing.from_bare, ringing.to_bare, ringing.direction) == ("+14155550123", "+14155550100", "inbound")
    assert ringing.metadata == {"callType": PSTN}
    assert ringing.voice.parent_call_sid is None and ringing.voice.call_status == "ringing"
    assert child_init.voice.parent_call_sid == PARENT
    assert child_init.voice.sequence == 0 and child_init.direction == "outbound"
    assert child_init.occurred_at == "2026-03-02T15:04:06.000Z"  # RFC 2822 → ISO 8601
    # the incoming-call webhook has no Timestamp: the receive time stands in
    assert ringing.occurred_at.startswith("2026-03-02T")


def test_fixture_c_authors_by_track():
    parties = CallParties("+14155550123", "+14155550100", "inbound")
    first, second = (attribute(parse_voice(C[i]), parties) for i in (5, 6))
    assert (first.from_bare, first.to_bare, first.direction) == ("+14155550123", "+14155550100", "inbound")
    assert (second.from_bare, second.to_bare, second.direction) == ("+14155550100", "+14155550123", "outbound")
    assert first.metadata["callType"] == PSTN
    content = transcription_content(first, engine="google")
    assert content == {"type": "TRANSCRIPTION", "text": first.text,
                       "transcription": {"channel": 0, "confidence": pytest.approx(0.9412), "engine": "google"}}
    assert transcription_content(second)["transcription"]["channel"] == 1
    assert "engine" not in transcription_content(second)["transcription"]  # no nulls


def test_speakers_on_outbound_and_child_legs():
    # REST call from our number to the customer: the remote party (inbound_track) is the callee
    out = CallParties("+14155550100", "+14155550123", "outbound-api")
    assert speakers(out, "inbound_track") == ("+14155550123", "+14155550100", 0)
    # a transcription on the dialled child leg of an inbound call: its remote party is our side
    child = CallParties("+14155550123", "+14155550100", "inbound", leg_is_child=True)
    assert speakers(child, "inbound_track") == ("+14155550100", "+14155550123", 0)
    assert speakers(child, "outbound_track") == ("+14155550123", "+14155550100", 1)


def test_fixture_d_call_types():
    events = [parse_voice(e) for e in D]
    by_sid = {e.voice.call_sid: e.metadata["callType"] for e in events}
    assert by_sid["CA3f381e99434f832d3818636827ebd0c0"] == CLIENT        # browser call
    assert by_sid["CA9ca08e390b656d89821d68b8c4a15ef1"] == PSTN          # its dialled PSTN leg
    assert by_sid["CA110c7ebf8250157d83ca6fa5b473f466"] == PUBLIC_SIP    # SIP domain call
    assert by_sid["CA169bc873ec7974f16fb97492903add5b"] == CLIENT        # PSTN dialled to client:alice
    sip = events[6]
    assert sip.from_bare == "sip:alice@acme.sip.twilio.com" and sip.to_bare == "sip:+14155550123@acme.sip.twilio.com"
    browser = events[0]
    assert browser.from_bare == "client:alice" and browser.to_bare == "+14155550123"


def test_call_type_helpers():
    assert call_type_of("+1415", "client:bob") == CLIENT
    assert call_type_of("sip:a@b.example", "+14155550100") == PUBLIC_SIP
    assert call_type_of("+14155550123", "+14155550100") == PSTN


def _content(data: str | None, *, final: str = "true", query: dict | None = None, **extra) -> LogEntry:
    params = {**C[5].params, "Final": final, **extra}
    if data is None:
        params.pop("TranscriptionData")
    else:
        params["TranscriptionData"] = data
    return LogEntry(TRANSCRIPTION, 1, "AC1", params, query or {}, "x")


@pytest.mark.parametrize("data", [
    None, "", "not json", "[1,2]", '{"confidence":0.9}', '{"transcript":7}',
    '{"transcript":"hi","confidence":"high"}', '{"transcript":"hi","confidence":1.5}',
    '{"transcript":"hi","confidence":true}', '{"transcript":"hi","confidence":NaN}',
])
def test_malformed_transcription_data_is_a_reasoned_error(data):
    with pytest.raises(VoiceParseError) as err:
        parse_voice(_content(data))
    assert err.value.reason == "malformed_transcription_data"
    assert "hi" not in str(err.value)  # never the transcript in an error


def test_partials_and_empty_finals_are_not_communications():
    partial = parse_voice(_content('{"transcript":"Hi I am"}', final="false"))
    assert partial.voice.progress and partial.text is None and not partial.voice.final
    empty = parse_voice(_content('{"transcript":"  ","confidence":0.2}'))
    assert empty.voice.progress and empty.text is None
    with pytest.raises(ValueError):
        transcription_content(partial)


def test_unknown_track_event_and_missing_fields():
    with pytest.raises(VoiceParseError) as err:
        parse_voice(_content('{"transcript":"x"}', Track="customer"))
    assert err.value.reason == "unknown_track"
    with pytest.raises(VoiceParseError) as err:
        parse_voice(_content('{"transcript":"x"}', TranscriptionEvent="transcription-paused"))
    assert err.value.reason == "unknown_transcription_event"
    with pytest.raises(VoiceParseError) as err:
        parse_voice(_content('{"transcript":"x"}', CallSid=""))
    assert err.value.reason == "missing_call_sid"
    with pytest.raises(VoiceParseError) as err:
        parse_voice(_content('{"transcript":"x"}', SequenceId=""))
    assert err.value.reason == "missing_transcription_sequence"


def test_active_routing_parameters_come_from_the_url_query():
    both = parse_voice(_content('{"transcript":"x"}', query={
        "conversationId": "conv_conversation_1", "conversationConfiguration": "cfg-support"}))
    assert both.voice.route_conversation_id == "conv_conversation_1"
    assert both.voice.route_configuration == "cfg-support" and both.voice.routed_actively
    plain = parse_voice(C[5])  # ?call=inbound-demo is not a routing parameter
    assert not plain.voice.routed_actively


def test_occurred_at_formats():
    assert occurred_at("2026-03-02T15:04:13.874Z", 0) == "2026-03-02T15:04:13.874Z"
    assert occurred_at("Mon, 02 Mar 2026 15:05:09 +0000", 0) == "2026-03-02T15:05:09.000Z"
    assert occurred_at("garbage", 1_772_463_846_000) == "2026-03-02T15:04:06.000Z"
