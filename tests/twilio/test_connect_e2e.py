"""`threadline connect` / `disconnect` against Twilio's side: the twin plays the account, the
operator's real application (tests/operator_app.py: checks signatures, answers TwiML) keeps
answering its customers, and a real web + worker capture the traffic into the twin's v2.

The web runs without THREADLINE_PUBLIC_URL and trusts its loopback peer's Host (it checks
signatures over the URL the twin called);
``connect`` gets the web's URL as THREADLINE_PUBLIC_URL, which is what it tells Twilio.
"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.app_fixtures import dead_url
from tests.operator_app import SMS_TWIML, OperatorApp
from tests.procs import THREADLINE
from tests.worker_fixtures import OURS, Pipeline
from workers.foundations import keys
from workers.twilio import upstreams

CUSTOMER = "+14155550123"
OTHER = "+14155550177"
THIRD = "+14155550188"
FIELDS = ("sms_url", "sms_method", "voice_url", "voice_method", "status_callback", "status_callback_method")




def threadline(p: Pipeline, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **p.env(THREADLINE_PUBLIC_URL=p.web.url), **env}
    return subprocess.run([THREADLINE, *args], env=full, capture_output=True, text=True, timeout=60)


def number(p: Pipeline, phone: str) -> dict[str, Any]:
    return next(n for n in p.twin.state()["numbers"] if n["phone_number"] == phone)


def account(p: Pipeline) -> dict[str, Any]:
    """What connect may touch: the numbers (every field but the update time), sinks, subscriptions."""
    state = p.twin.state()
    numbers = {n["phone_number"]: {k: v for k, v in n.items() if k != "date_updated"} for n in state["numbers"]}
    return {"numbers": numbers, "sinks": state["sinks"], "subscriptions": state["subscriptions"]}


def sent_by_threadline(p: Pipeline, method: str, path_part: str) -> list[dict[str, Any]]:
    """What the twin recorded of threadline's own requests (the contract test checks these)."""
    entries = [json.loads(line) for line in p.twin.record_path.read_text().splitlines() if line.strip()]
    return [e for e in entries if e.get("user_agent", "").startswith("threadline/")
            and e["method"] == method and path_part in e["path"]]


def conversation_of(p: Pipeline, resource_id: str) -> dict[str, Any]:
    return next(c for c in p.twin.conversations()
                if any(m["resourceId"] == resource_id for m in c["communications"]))


def test_event_streams_mode_sees_both_directions_and_never_touches_the_number(
        live: Pipeline, operator_app: OperatorApp) -> None:
    p = live
    p.configure("sales", channels=("SMS",))
    p.start_worker()
    p.twin.give_number(OURS, SmsUrl=operator_app.url + "/sms")
    own = number(p, OURS)

    dry = threadline(p, "connect", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would create an Event Streams webhook sink" in dry.stdout and "nothing was changed" in dry.stdout
    assert p.twin.state()["sinks"] == []

    done = threadline(p, "connect")
    assert done.returncode == 0, done.stderr
    [sink] = p.twin.state()["sinks"]
    assert sink["sink_configuration"]["destination"] == p.web.url + "/webhooks/twilio/events"
    again = threadline(p, "connect")
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert len(p.twin.state()["sinks"]) == 1 and len(p.twin.state()["subscriptions"]) == 1
    assert sent_by_threadline(p, "POST", "/v1/Sinks") and sent_by_threadline(p, "POST", "/v1/Subscriptions")

    inbound = p.twin.simulate_message(from_=CUSTOMER, to=OURS, body="Is my order shipped?")["sid"]
    # The application replies through the API, without a StatusCallback.
    reply = p.twin.client().messages.create(from_=OURS, to=CUSTOMER, body="It shipped today").sid
    sent = p.twin.wait_deliveries("event_streams", 4)  # inbound + queued, sent, delivered
    assert all(d.get("status") == 200 for d in sent), sent
    p.wait_idle()

    conv = conversation_of(p, inbound)
    comms = {c["resourceId"]: c for c in conv["communications"]}
    assert set(comms) == {inbound, reply}
    assert comms[inbound]["content"]["text"] == "Is my order shipped?"
    assert comms[reply]["content"]["text"] == "It shipped today"
    assert comms[reply]["recipients"][0]["deliveryStatus"] == "DELIVERED"
    assert number(p, OURS) == own  # the number's own webhooks never changed
    assert [s.signature_ok for s in operator_app.requests("/sms")
            if s.params.get("MessageSid") == inbound] == [True]


def test_forwarding_mode_relays_to_the_app_and_captures_even_when_it_is_down(
        live: Pipeline, operator_app: OperatorApp) -> None:
    p = live
    p.configure("sales", channels=("SMS",))
    p.configure("support", channels=("SMS",), ours=OTHER)
    p.start_worker()
    p.twin.give_number(OURS, SmsUrl=operator_app.url + "/sms", VoiceUrl=operator_app.url + "/voice")
    p.twin.give_number(OTHER, SmsUrl=dead_url())
    own = number(p, OURS)

    dry = threadline(p, "connect", "--forward", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would point {OURS}'s SmsUrl, VoiceUrl at threadline" in dry.stdout
    assert number(p, OURS) == own and upstreams.load(p.redis) == {}

    done = threadline(p, "connect", "--forward")
    assert done.returncode == 0, done.stderr
    assert number(p, OURS)["sms_url"] == p.web.url + "/webhooks/twilio/messaging"
    assert number(p, OURS)["voice_url"] == p.web.url + "/webhooks/twilio/voice"
    assert number(p, OTHER)["sms_url"] == p.web.url + "/webhooks/twilio/messaging"
    # What the application did not have stays empty: Twilio's own handling, nothing to restore.
    assert number(p, OURS)["status_callback"] == "" and number(p, OTHER)["voice_url"] == ""
    again = threadline(p, "connect", "--forward")
    assert again.returncode == 0 and "already points at threadline" in again.stdout
    assert sent_by_threadline(p, "POST", "/IncomingPhoneNumbers/")  # checked against the core API spec
    assert "nothing to change" in again.stdout

    inbound = p.twin.simulate_message(from_=CUSTOMER, to=OURS, body="Where is my parcel?")["sid"]
    [delivery] = p.twin.wait_deliveries("incoming_message", 1)
    assert delivery["status"] == 200 and delivery["answer"] == SMS_TWIML.decode()
    assert [s.signature_ok for s in operator_app.requests("/sms")
            if s.params.get("MessageSid") == inbound] == [True]

    lost = p.twin.simulate_message(from_=CUSTOMER, to=OTHER, body="Hello? Anyone?")["sid"]
    deliveries = p.twin.wait_deliveries("incoming_message", 2)
    assert deliveries[-1]["status"] == 502
    p.wait_idle()
    assert conversation_of(p, inbound)["communications"][0]["content"]["text"] == "Where is my parcel?"
    assert conversation_of(p, lost)["communications"][0]["content"]["text"] == "Hello? Anyone?"


def test_disconnect_leaves_the_account_as_it_was_before_connect(
        live: Pipeline, operator_app: OperatorApp) -> None:
    p = live
    p.configure("sales", channels=("SMS", "VOICE"))
    p.configure("support", channels=("SMS",), ours=THIRD)
    p.twin.give_number(OURS, SmsUrl=operator_app.url + "/sms", SmsMethod="GET",
                       VoiceUrl=operator_app.url + "/voice", StatusCallback=operator_app.url + "/status",
                       StatusCallbackMethod="GET")
    p.twin.give_number(THIRD, SmsUrl=operator_app.url + "/sms")  # named by a rule; no voice URLs
    p.twin.give_number(OTHER, SmsUrl=operator_app.url + "/sms")  # no rule names it
    p.twin.create_sink("https://elsewhere.example.com/events", ["com.twilio.messaging.message.sent"])
    before = account(p)

    assert threadline(p, "connect").returncode == 0
    forward = threadline(p, "connect", "--forward")
    assert forward.returncode == 0, forward.stderr
    assert number(p, OTHER)["sms_url"] == operator_app.url + "/sms"
    assert account(p) != before

    dry = threadline(p, "disconnect", "--dry-run")
    assert dry.returncode == 0 and "would restore" in dry.stdout and "would delete sink" in dry.stdout
    undone = threadline(p, "disconnect")
    assert undone.returncode == 0, undone.stderr
    after = account(p)
    for phone, fields in before["numbers"].items():
        for name, value in fields.items():
            assert after["numbers"][phone][name] == value, (phone, name)
    assert after == before
    assert p.redis.exists(keys.UPSTREAMS, keys.CONNECT_EVENT_STREAMS) == 0
    assert upstreams.load(p.redis) == {}
    assert "nothing recorded" in threadline(p, "disconnect").stdout


def test_disconnect_also_gives_classic_services_their_webhooks_back(live: Pipeline) -> None:
    """What ``configs sync`` recorded of a bridged classic service (workers.twilio.classic) is
    part of what disconnect undoes; the restore itself is tested with ``configs unsync``."""
    p = live
    service = "IS" + "3" * 32
    p.redis.set(keys.classic_webhooks_saved(service), json.dumps({"post_webhook_url": "", "method": "POST"}))
    dry = threadline(p, "disconnect", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would restore classic service {service}'s webhook configuration" in dry.stdout
    assert p.redis.exists(keys.classic_webhooks_saved(service)) == 1


def test_twilio_refusals_are_said_and_nothing_is_recorded(live: Pipeline) -> None:
    p = live
    refused = threadline(p, "connect", TWILIO_AUTH_TOKEN="f" * 32)
    assert refused.returncode == 1
    assert "Twilio refused to list Event Streams sinks: HTTP 401" in refused.stderr
    assert "f" * 32 not in refused.stderr + refused.stdout
    p.twin.give_number(OURS)
    stranger = threadline(p, "connect", "--forward", "--numbers", "+14155550999")
    assert stranger.returncode == 2 and "not a phone number of this account: +14155550999" in stranger.stderr
    nothing = threadline(p, "connect", "--forward")  # no configuration names a number
    assert nothing.returncode == 2 and "no capture rule names" in nothing.stderr
    assert p.redis.exists(keys.UPSTREAMS, keys.CONNECT_EVENT_STREAMS) == 0
