"""Traffic made on the twin (``/_twin/simulate``), webhooks sent by the twin as Twilio sends them,
taken by a real ``threadline web`` and delivered by a real ``threadline worker`` into the twin's
v2: one test per webhook kind (incoming message, message status, call status + transcription,
Event Streams). Nothing here is a canned delivery: the twin signs every webhook itself.

The web runs without THREADLINE_PUBLIC_URL and trusts its loopback peer's Host
(THREADLINE_TRUSTED_PROXIES=127.0.0.1), so it checks signatures over the URL the twin called
(http://127.0.0.1:port/…), exactly as the twin signed it.
"""
from __future__ import annotations

from tests.twin_fixtures import Receiver
from tests.worker_fixtures import OURS, Pipeline

CUSTOMER = "+14155550123"




def _settle(p: Pipeline, kind: str, count: int) -> None:
    """Until the twin made ``count`` ``kind`` attempts, every one answered 200, and the log is
    drained."""
    attempts = p.twin.wait_deliveries(kind, count)
    assert all(a.get("status") == 200 for a in attempts), attempts
    p.wait_idle()


def _comms(p: Pipeline) -> list[dict]:
    return [c for conv in p.twin.conversations() for c in conv["communications"]]


def test_incoming_message(live: Pipeline) -> None:
    p = live
    p.configure("sales", channels=("SMS",))
    p.start_worker()
    p.twin.give_number(OURS, SmsUrl=p.web.url + "/webhooks/twilio/messaging")
    sid = p.twin.simulate_message(from_=CUSTOMER, to=OURS, body="Is my order shipped?")["sid"]
    _settle(p, "incoming_message", 1)
    (comm,) = _comms(p)
    assert comm["resourceId"] == sid and comm["author"]["address"] == CUSTOMER
    assert comm["content"] == {"type": "TEXT", "text": "Is my order shipped?"}
    assert p.counter("events|sales|SMS|captured") == 1


def test_message_status(live: Pipeline) -> None:
    """Status callbacks carry no body: the worker fetches it from the twin's Messages API."""
    p = live
    p.configure("sales", channels=("SMS",))
    p.start_worker()
    p.twin.give_number(OURS)
    status_url = p.web.url + "/webhooks/twilio/messaging/status"
    ok = p.twin.simulate_message(from_=OURS, to=CUSTOMER, body="It shipped today",
                                 direction="outbound", statusCallback=status_url)["sid"]
    _settle(p, "message_status", 3)
    lost = p.twin.simulate_message(from_=OURS, to="+14155550188", body="Your code is 1234",
                                   direction="outbound", statusCallback=status_url,
                                   fail="30003")["sid"]
    _settle(p, "message_status", 6)
    comms = {c["resourceId"]: c for c in _comms(p)}
    assert comms[ok]["content"]["text"] == "It shipped today"
    assert comms[ok]["recipients"][0]["deliveryStatus"] == "DELIVERED"
    assert comms[lost]["recipients"][0]["deliveryStatus"] == "FAILED"
    assert p.dead_letters() == []


TWIML = """<Response><Start><Transcription statusCallbackUrl="{web}/webhooks/twilio/voice/transcription"
 track="both_tracks"/></Start><Say>Connecting you</Say></Response>"""


def test_call_status_and_transcription(live: Pipeline, receiver: Receiver) -> None:
    """A faithful inbound call: the application's TwiML starts the transcription and only the
    number's ``StatusCallback`` reports the call, at its end. threadline sees the words before
    the call's status: the first transcription callback of the unknown call makes the worker
    fetch the call from the Calls API (``voice_events|call_status|fetched``), so the words are
    captured at once, nothing dead-lettered."""
    p = live
    p.configure("support", channels=("VOICE",))
    p.start_worker()
    receiver.bodies["/voice"] = TWIML.format(web=p.web.url)
    p.twin.give_number(OURS, VoiceUrl=receiver.url + "/voice",
                       StatusCallback=p.web.url + "/webhooks/twilio/voice/status")
    call = p.twin.simulate_call(from_=CUSTOMER, to=OURS, utterances=[
        {"track": "inbound_track", "text": "Hi, my parcel never came"},
        {"track": "outbound_track", "text": "Sorry to hear that, let me look"}])["sid"]
    _settle(p, "call_status", 1)
    assert all(a.get("status") == 200 for a in p.twin.deliveries("transcription"))
    assert p.dead_letters() == []
    comms = sorted(_comms(p), key=lambda c: c["resourceId"])
    assert [(c["author"]["address"], c["content"]["text"]) for c in comms] == [
        (CUSTOMER, "Hi, my parcel never came"), (OURS, "Sorry to hear that, let me look")]
    assert all(c["content"]["type"] == "TRANSCRIPTION" for c in comms)
    assert all(c["resourceId"].startswith("GT") for c in comms)
    assert p.counter("voice_events|call_status|progress") == 1
    assert p.counter_reaches("voice_events|call_status|fetched", 1) == 1
    assert p.twin.count("GET /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", 200) == 1
    assert next(c for c in p.twin.state()["calls"] if c["sid"] == call)["status"] == "completed"


def test_event_streams(live: Pipeline) -> None:
    """No SmsUrl, no StatusCallback: the sink alone sees the traffic."""
    p = live
    p.configure("sales", channels=("SMS",))
    p.start_worker()
    p.twin.give_number(OURS)
    p.twin.create_sink(p.web.url + "/webhooks/twilio/events", [
        "com.twilio.messaging.inbound-message.received", "com.twilio.messaging.message.sent",
        "com.twilio.messaging.message.delivered"])
    inbound = p.twin.simulate_message(from_=CUSTOMER, to=OURS, body="Ping")["sid"]
    _settle(p, "event_streams", 1)
    outbound = p.twin.simulate_message(from_=OURS, to=CUSTOMER, body="Pong",
                                       direction="outbound")["sid"]
    _settle(p, "event_streams", 3)
    comms = {c["resourceId"]: c for c in _comms(p)}
    assert comms[inbound]["content"]["text"] == "Ping"
    assert comms[outbound]["content"]["text"] == "Pong"
    assert comms[outbound]["recipients"][0]["deliveryStatus"] == "DELIVERED"
    assert p.dead_letters() == []
