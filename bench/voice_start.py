"""Forwarding's passive voice: the web tier's CPU time to decide a call and rewrite its TwiML.

    .venv/bin/python bench/voice_start.py

Why: the relay decides on the incoming-call webhook whether a VOICE rule captures the call
(service.webhooks.voice_start) — this must stay cheap beside the relay itself. What runs, on 100
configurations with 200 VOICE rules: ``capture_matches`` (the workers' pure decision, over the
cached ``RuleIndex``) and, for a captured call, ``with_transcription`` (parse, insert, parse
again) with the configuration's attributes; and the decision alone for a call no rule captures.
CPU time of this process (``time.process_time``), best of 5 batches of 20,000, per call. Pure
CPU; a captured call also pays one pipelined Redis round trip (the call record), not timed here.
"""
from __future__ import annotations

import time
import timeit

from service.webhooks.twiml import with_transcription
from workers.capture.configuration import parse_configuration
from workers.capture.index import RuleIndex
from workers.capture.store import VersionedConfig
from workers.delivery.callpoll import capture_matches
from workers.delivery.transcribe import transcription_settings, twiml_attributes
from workers.eventlog.entries import CALL_STATUS, LogEntry

CONFIGS = 100
TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice">Thanks for calling</Say>'
         '<Dial><Number>+15557654321</Number></Dial></Response>')
CALLBACK = "https://capture.example.com/webhooks/twilio/voice/transcription"


def _configs() -> list[VersionedConfig]:
    out = []
    for i in range(CONFIGS):
        n = f"+1555{i:07d}"
        out.append(VersionedConfig(parse_configuration({
            "id": f"c{i}", "displayName": "x", "description": "",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
            "channelSettings": {"VOICE": {"captureRules": [{"from": "*", "to": n}, {"from": n, "to": "*"}],
                                          "transcription": {"languageCode": "en-US"}}}}), 1))
    return out


def main() -> None:
    configs = _configs()
    index, by_id = RuleIndex.build(configs), {vc.id: vc for vc in configs}
    params = {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "1" * 32, "From": "+14155550123",
              "To": "+15550000042", "CallStatus": "ringing", "Direction": "inbound"}
    missed = {**params, "To": "+19990000000"}

    def captured() -> tuple[str | None, str]:
        m = capture_matches(LogEntry(CALL_STATUS, 0, "", params, {}, ""), index, by_id)
        return with_transcription(TWIML, CALLBACK,
                                  twiml_attributes(params["CallSid"], transcription_settings(m, by_id)))

    def not_captured() -> list:
        return capture_matches(LogEntry(CALL_STATUS, 0, "", missed, {}, ""), index, by_id)

    assert captured()[1] == "added" and not not_captured()
    for name, f in (("captured call (decide + TwiML)", captured), ("call no rule captures", not_captured)):
        n = 20000
        best = min(timeit.repeat(f, number=n, repeat=5, timer=time.process_time)) / n * 1e6
        print(f"{name}: {best:.1f} µs CPU per call ({CONFIGS} configurations, {2 * CONFIGS} VOICE rules)")


if __name__ == "__main__":
    main()
