"""Forwarding mode's TwiML: a transcription started ahead of the application's own verbs (pure)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from service.webhooks.twiml import with_transcription

URL = "https://capture.example.com/webhooks/twilio/voice/transcription?a=1&b=2"


def _verbs(twiml: str) -> list[tuple[str, dict, str]]:
    return [(el.tag, dict(el.attrib), (el.text or "").strip()) for el in ET.fromstring(twiml)]


@pytest.mark.parametrize("app", [
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response>\n  <Say voice="alice">Hello</Say>\n'
    '  <Dial callerId="+15551230000"><Number statusCallback="https://app/s">+15557654321</Number></Dial>\n'
    '  <!-- the app\'s comment -->\n  <Hangup/>\n</Response>',
    "<Response><Connect><ConversationRelay url=\"wss://ai.example.com\"/></Connect></Response>",
    "<Response/>",
    '<Response xmlns:x="urn:x"><Play>https://app/hold.mp3</Play></Response>',
])
def test_the_start_goes_first_and_the_apps_verbs_stay_unchanged_and_in_order(app: str) -> None:
    out, why = with_transcription(app, URL)
    assert why == "added" and out is not None
    verbs = _verbs(out)
    start = verbs[0]
    assert start[0] == "Start"
    (transcription,) = list(ET.fromstring(out)[0])
    assert transcription.tag == "Transcription"
    assert transcription.attrib == {"statusCallbackUrl": URL, "track": "both_tracks"}
    assert verbs[1:] == _verbs(app)                       # the app's verbs, unchanged, in order
    assert out.replace(out[out.index("<Start>"):out.index("</Start>") + 8], "") == \
        app.replace("<Response/>", "<Response></Response>")  # byte for byte otherwise


@pytest.mark.parametrize(("app", "why"), [
    ('<Response><Start><Transcription statusCallbackUrl="https://app/t"/></Start><Say>Hi</Say></Response>',
     "already_transcribed"),
    ('<Response><Connect><ConversationRelay url="wss://x" conversationConfiguration="conf_1"/></Connect></Response>',
     "actively_routed"),
    ('<Response><Connect><ConversationRelay url="wss://x" conversationId="conv_1"/></Connect></Response>',
     "actively_routed"),
    ("<Response><Say>unclosed</Response>", "not_twiml"),
    ("<html><body>oops</body></html>", "not_twiml"),
    ("", "not_twiml"),
])
def test_left_alone_when_already_transcribed_routed_actively_or_not_twiml(app: str, why: str) -> None:
    assert with_transcription(app, URL) == (None, why)


def test_the_configurations_settings_ride_on_the_verb_quoted() -> None:
    attrs = {"name": "threadline-CA1", "languageCode": "fr-FR", "transcriptionEngine": "deepgram",
             "speechModel": 'nova-"2"', "partialResults": "false", "track": "inbound_track"}
    out, why = with_transcription("<Response><Say>Bonjour</Say></Response>", URL, attrs)
    assert why == "added" and out is not None
    (transcription,) = list(ET.fromstring(out)[0])
    assert transcription.attrib == {"statusCallbackUrl": URL, "track": "both_tracks",
                                    **{k: v for k, v in attrs.items() if k != "track"}}
