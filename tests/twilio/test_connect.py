"""`threadline connect` / `disconnect`: what is decided before Twilio is asked anything.

The runs against Twilio's side (the twin) are in tests/twilio/test_connect_e2e.py.
"""
from __future__ import annotations

import subprocess

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.response import Response

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.procs import THREADLINE
from workers.capture.configuration import parse_configuration
from workers.capture.store import VersionedConfig
from workers.foundations.errors import Permanent
from workers.twilio.connect import ConnectRefused, Report, points_at, twilio_said
from workers.twilio.numbers import rule_numbers
from workers.twilio.sinks import EVENT_TYPES


def _versioned(channels: dict) -> VersionedConfig:
    return VersionedConfig(parse_configuration({
        "id": "support", "displayName": "support", "description": "",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES", "channelSettings": channels}), 1)


def test_the_numbers_rules_name_are_the_sms_and_voice_e164_addresses_on_either_side() -> None:
    config = _versioned({
        "SMS": {"captureRules": [{"from": "*", "to": "+15550000001"}, {"from": "+15550000002", "to": "*"}]},
        "VOICE": {"captureRules": [{"from": "*", "to": "+1 (555) 000-0003"},
                                   {"from": "client:alice", "to": "*", "metadata": {"callType": "CLIENT"}}]},
        "WHATSAPP": {"captureRules": [{"from": "*", "to": "whatsapp:+15550000004"}]},
    })
    assert rule_numbers([config]) == {"+15550000001", "+15550000002", "+15550000003"}
    assert rule_numbers([_versioned({"SMS": {"captureRules": [{"from": "*", "to": "*"}]}})]) == set()


def test_points_at_threadline_only_under_its_webhook_paths() -> None:
    base = "https://capture.example.com"
    assert points_at("https://capture.example.com/webhooks/twilio/messaging", base)
    assert not points_at("https://capture.example.com/other", base)
    assert not points_at("https://app.example.com/webhooks/twilio/messaging", base)
    assert not points_at("", base)


def test_twilio_refusals_are_told_with_status_code_and_message() -> None:
    exc = TwilioRestException(401, "https://api.twilio.com/x", "Unable to fetch record: Authenticate", 20003)
    assert twilio_said(exc) == "HTTP 401 (code 20003): Authenticate"
    # A list page Twilio refused comes as TwilioException("Unable to fetch page", response).
    page = TwilioException("Unable to fetch page", Response(403, '{"code": 20403, "message": "Forbidden"}'))
    assert twilio_said(page) == "HTTP 403 (code 20403): Forbidden"
    assert twilio_said(TwilioException("Unable to fetch page", Response(502, "<html>"))) == "HTTP 502"
    assert issubclass(ConnectRefused, Permanent)


def test_a_dry_run_describes_changes_without_making_them() -> None:
    made: list[str] = []
    report = Report(dry_run=True)
    assert report.change("create a sink", lambda: made.append("sink")) is None
    assert report.read("list sinks", lambda: ["one"]) == ["one"]  # reads happen: the plan needs them
    assert made == [] and report.lines == ["would create a sink"] and report.changes == 0


def test_every_subscribed_type_is_one_the_events_endpoint_reads() -> None:
    from service.webhooks.eventstreams import map_event

    for event_type, _ in EVENT_TYPES:
        data: dict = {"messageSid": "SM" + "0" * 32, "accountSid": ACCOUNT_SID, "from": "+15550000001",
                      "to": "+15550000002", "messageStatus": "DELIVERED", "body": "hi"}
        if ".voice." in event_type:
            data = {"request": {"parameters": {"CallSid": "CA" + "0" * 32, "CallStatus": "completed",
                                               "From": "+15550000001", "To": "+15550000002"}}}
        mapped = map_event({"specversion": "1.0", "type": event_type, "id": "EZ" + "0" * 32,
                            "source": "/x", "data": data}, 0)
        assert mapped is not None, event_type


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    return subprocess.run([THREADLINE, *args], env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_connect_refuses_without_a_public_url_or_credentials_and_sends_nothing() -> None:
    out = _cli("connect", TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
    assert out.returncode == 2 and "THREADLINE_PUBLIC_URL is not set" in out.stderr
    out = _cli("disconnect", "--dry-run", THREADLINE_PUBLIC_URL="https://capture.example.com")
    assert out.returncode == 2 and "no Twilio credentials" in out.stderr
    assert AUTH_TOKEN not in out.stderr + out.stdout
    out = _cli("connect", "--numbers", "+15550000001", THREADLINE_PUBLIC_URL="https://capture.example.com",
               TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
    assert out.returncode == 2 and "only applies with --forward" in out.stderr
