"""Traffic on the twin (``/_twin/simulate``) and the webhooks it sends: to the right URLs, with
Twilio's parameters, signed as Twilio signs (checked with twilio's own RequestValidator), with an
idempotency token kept across the retry, and every attempt (failures too) in ``/_twin/state``."""
from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import parse_qsl

import httpx
from twilio.request_validator import RequestValidator

from tests.procs import free_port
from tests.twin_fixtures import Receiver, TwinHandle

OURS = "+14155550100"
CUSTOMER = "+14155550123"


def _form(request: dict) -> dict[str, str]:
    return dict(parse_qsl(request["body"], keep_blank_values=True))


def _valid(twin: TwinHandle, receiver: Receiver, request: dict) -> bool:
    url = receiver.url + request["path"]
    signature = request["headers"]["X-Twilio-Signature"]
    validator = RequestValidator(twin.auth_token)
    if request["headers"].get("Content-Type") == "application/json":
        return validator.validate(url, request["body"], signature)
    return validator.validate(url, _form(request), signature)


def test_inbound_message_goes_to_the_numbers_sms_url_signed(twin: TwinHandle,
                                                           receiver: Receiver) -> None:
    twin.give_number(OURS, SmsUrl=receiver.url + "/sms?tenant=7")
    sid = twin.simulate_message(from_=CUSTOMER, to=OURS, body="Hi there")["sid"]
    (request,) = receiver.wait(1)
    params = _form(request)
    assert request["path"] == "/sms?tenant=7"
    assert params["MessageSid"] == params["SmsSid"] == sid and params["Body"] == "Hi there"
    assert (params["From"], params["To"], params["SmsStatus"]) == (CUSTOMER, OURS, "received")
    assert params["AccountSid"] == twin.account_sid and params["ApiVersion"] == "2010-04-01"
    assert _valid(twin, receiver, request)
    tampered = {**request, "body": request["body"].replace("Hi+there", "Bye")}
    assert not _valid(twin, receiver, tampered)
    assert request["headers"]["I-Twilio-Idempotency-Token"]
    (attempt,) = twin.wait_deliveries("incoming_message", 1)  # recorded once its answer is in
    assert attempt["status"] == 200 and attempt["answer"] == "<Response/>"


def test_sms_url_as_get_carries_the_parameters_in_the_signed_query(
        twin: TwinHandle, receiver: Receiver) -> None:
    twin.give_number(OURS, SmsUrl=receiver.url + "/sms", SmsMethod="GET")
    twin.simulate_message(from_=f"whatsapp:{CUSTOMER}", to=OURS, body="Hola",
                          channel="WHATSAPP")
    (request,) = receiver.wait(1)
    assert request["method"] == "GET" and request["body"] == ""
    query = dict(parse_qsl(request["path"].split("?", 1)[1]))
    assert query["To"] == f"whatsapp:{OURS}" and query["WaId"] == CUSTOMER.lstrip("+")
    assert RequestValidator(twin.auth_token).validate(
        receiver.url + request["path"], {}, request["headers"]["X-Twilio-Signature"])


def test_outbound_undelivered_carries_the_error_code(twin: TwinHandle,
                                                     receiver: Receiver) -> None:
    twin.give_number(OURS)
    twin.simulate_message(from_=OURS, to=CUSTOMER, body="x", direction="outbound",
                          statusCallback=receiver.url + "/status", fail="30003")
    callbacks = [_form(r) for r in receiver.wait(3)]
    assert [c["MessageStatus"] for c in callbacks] == ["queued", "sent", "undelivered"]
    assert "ErrorCode" not in callbacks[1] and callbacks[2]["ErrorCode"] == "30003"
    assert all("Body" not in c for c in callbacks)
    message = twin.state()["messages"][0]
    assert message["status"] == "undelivered" and message["error_code"] == 30003


def test_unreachable_url_is_retried_once_and_recorded(twin: TwinHandle) -> None:
    dead = f"http://127.0.0.1:{free_port()}/sms"
    twin.give_number(OURS, SmsUrl=dead)
    twin.simulate_message(from_=CUSTOMER, to=OURS, body="anyone?")
    attempts = twin.wait_deliveries("incoming_message", 2)
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert all(a["error"].startswith("connection failed") and "status" not in a
               for a in attempts)
    assert attempts[0]["idempotency_token"] == attempts[1]["idempotency_token"]


def test_transcription_callbacks_are_retried_on_5xx_as_twilio_does(
        twin: TwinHandle, receiver: Receiver) -> None:
    receiver.status = 503
    twin.give_number(OURS)
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS, holdSeconds=2)["sid"]
    twin.wait_for(lambda s: next(c for c in s["calls"] if c["sid"] == sid)["status"]
                  == "in-progress")
    twin.client().calls(sid).transcriptions.create(status_callback_url=receiver.url + "/rtt")
    attempts = twin.wait_deliveries("transcription", 4)
    assert [a["attempt"] for a in attempts[:4]] == [1, 2, 3, 4]
    assert {a["status"] for a in attempts[:4]} == {503}
    assert len({a["idempotency_token"] for a in attempts[:4]}) == 1


def test_an_http_error_answer_is_recorded_not_retried(twin: TwinHandle,
                                                      receiver: Receiver) -> None:
    receiver.status = 500
    twin.give_number(OURS, SmsUrl=receiver.url + "/sms")
    twin.simulate_message(from_=CUSTOMER, to=OURS, body="x")
    receiver.wait(1)
    time.sleep(0.5)  # a retry would be sent at once
    (attempt,) = twin.wait_deliveries("incoming_message", 1)
    assert attempt["status"] == 500 and len(receiver.requests) == 1


TWIML = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Start><Transcription statusCallbackUrl="{url}/rtt?call=demo" track="both_tracks"
    partialResults="true" conversationConfiguration="conv_configuration_01" name="t1"/></Start>
  <Dial><Number statusCallback="{url}/leg"
    statusCallbackEvent="initiated ringing answered completed">+14155550150</Number></Dial>
</Response>"""


def test_call_plays_twiml_transcription_and_status_callbacks(twin: TwinHandle,
                                                             receiver: Receiver) -> None:
    receiver.bodies["/voice"] = TWIML.format(url=receiver.url)
    twin.give_number(OURS, VoiceUrl=receiver.url + "/voice",
                     StatusCallback=receiver.url + "/status")
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS, utterances=[
        {"track": "inbound_track", "text": "I need help with my order", "confidence": 0.91},
        {"track": "outbound_track", "text": "Sure thing"}])["sid"]
    twin.wait_deliveries("call_status", 5)
    by_path: dict[str, list[dict[str, str]]] = {}
    for r in receiver.requests:
        by_path.setdefault(r["path"].split("?")[0], []).append(_form(r))
        assert _valid(twin, receiver, r)
    (voice,) = by_path["/voice"]
    assert voice["CallSid"] == sid and voice["CallStatus"] == "ringing"
    rtt = by_path["/rtt"]
    assert [e["TranscriptionEvent"] for e in rtt] == [
        "transcription-started"] + ["transcription-content"] * 4 + ["transcription-stopped"]
    assert [int(e["SequenceId"]) for e in rtt] == list(range(1, 7))
    assert rtt[0]["Track"] == "both_tracks" and rtt[0]["PartialResults"] == "true"
    assert [(e["Track"], e["Final"]) for e in rtt[1:5]] == [
        ("inbound_track", "false"), ("inbound_track", "true"),
        ("outbound_track", "false"), ("outbound_track", "true")]
    final = json.loads(rtt[2]["TranscriptionData"])
    assert final == {"transcript": "I need help with my order", "confidence": 0.91}
    assert "confidence" not in json.loads(rtt[1]["TranscriptionData"])
    assert [s["CallStatus"] for s in by_path["/status"]] == ["completed"]
    legs = by_path["/leg"]
    assert [s["CallStatus"] for s in legs] == ["initiated", "ringing", "in-progress", "completed"]
    assert {s["ParentCallSid"] for s in legs} == {sid}
    assert [s["SequenceNumber"] for s in legs] == ["0", "1", "2", "3"]
    state = twin.state()
    call = next(c for c in state["calls"] if c["sid"] == sid)
    assert call["status"] == "completed"
    assert call["twiml"]["transcriptions"][0]["conversationConfiguration"] == \
        "conv_configuration_01"
    (t,) = state["transcriptions"]
    assert t["settings"]["ConversationConfiguration"] == "conv_configuration_01"


def test_a_voice_url_that_fails_fails_the_call(twin: TwinHandle, receiver: Receiver) -> None:
    receiver.body = "this is not TwiML"
    twin.give_number(OURS, VoiceUrl=receiver.url + "/voice",
                     StatusCallback=receiver.url + "/status")
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS)["sid"]
    status = _form(receiver.wait(2)[1])
    assert status["CallSid"] == sid and status["CallStatus"] == "failed"


def test_event_streams_get_signed_cloudevent_batches(twin: TwinHandle,
                                                     receiver: Receiver) -> None:
    twin.give_number(OURS, StatusCallback=receiver.url + "/status")
    events = twin.client().events.v1
    sink = events.sinks.create(description="s", sink_type="webhook", sink_configuration={
        "destination": receiver.url + "/events", "method": "POST", "batch_events": True})
    events.subscriptions.create(description="s", sink_sid=sink.sid, types=[
        {"type": "com.twilio.messaging.inbound-message.received"},
        {"type": "com.twilio.messaging.message.delivered"},
        {"type": "com.twilio.voice.status-callback.call.completed"}])
    sms = twin.simulate_message(from_=CUSTOMER, to=OURS, body="ping")["sid"]
    twin.simulate_message(from_=OURS, to=CUSTOMER, body="pong", direction="outbound")
    call = twin.simulate_call(from_=CUSTOMER, to=OURS)["sid"]
    twin.wait_deliveries("event_streams", 3)
    batches = [r for r in receiver.requests if r["path"].startswith("/events")]
    for r in batches:
        assert r["headers"]["Content-Type"] == "application/json"
        digest = hashlib.sha256(r["body"].encode()).hexdigest()
        assert f"bodySHA256={digest}" in r["path"]
        assert _valid(twin, receiver, r)
    kinds = {json.loads(r["body"])[0]["type"]: json.loads(r["body"])[0] for r in batches}
    inbound = kinds["com.twilio.messaging.inbound-message.received"]
    assert inbound["data"]["messageSid"] == sms and inbound["id"].startswith("EZ")
    assert kinds["com.twilio.messaging.message.delivered"]["data"]["messageStatus"] == "DELIVERED"
    completed = kinds["com.twilio.voice.status-callback.call.completed"]["data"]
    assert completed["request"]["parameters"]["CallSid"] == call
    assert completed["response"]["responseCode"] == 200
    assert len(batches) == 3  # queued/sent were not subscribed to


def test_no_status_callback_means_no_call_events(twin: TwinHandle, receiver: Receiver) -> None:
    twin.give_number(OURS)
    events = twin.client().events.v1
    sink = events.sinks.create(description="s", sink_type="webhook", sink_configuration={
        "destination": receiver.url + "/events", "method": "POST", "batch_events": True})
    events.subscriptions.create(description="s", sink_sid=sink.sid, types=[
        {"type": "com.twilio.voice.status-callback.call.completed"},
        {"type": "com.twilio.voice.status-callback.call.answered"}])
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS)["sid"]
    twin.wait_for(lambda s: next(c for c in s["calls"] if c["sid"] == sid)["status"]
                  == "completed")
    assert twin.deliveries("event_streams") == [] and receiver.requests == []


def test_bad_simulate_bodies_and_unknown_numbers_are_4xx(twin: TwinHandle) -> None:
    twin.give_number(OURS)
    with httpx.Client(base_url=twin.base_url + "/_twin/simulate", timeout=10) as control:
        cases = [
            ("/message", b"{not json", 400, "JSON"),
            ("/message", json.dumps({"from": CUSTOMER, "to": OURS}), 400, "body"),
            ("/message", json.dumps({"from": CUSTOMER, "to": OURS, "body": "x",
                                     "channel": "FAX"}), 400, "channel"),
            ("/message", json.dumps({"from": CUSTOMER, "to": OURS, "body": "x",
                                     "fail": "oops"}), 400, "fail"),
            ("/message", json.dumps({"from": CUSTOMER, "to": "+19995550000", "body": "x"}),
             404, "+19995550000"),
            ("/message", json.dumps({"from": "+19995550000", "to": CUSTOMER, "body": "x",
                                     "direction": "outbound"}), 404, "+19995550000"),
            ("/call", json.dumps({"from": CUSTOMER, "to": "+19995550000"}), 404, "+19995550000"),
            ("/call", json.dumps({"from": CUSTOMER, "to": OURS, "utterances": [
                {"track": "both_tracks", "text": "x"}]}), 400, "track"),
            ("/call", json.dumps({"from": CUSTOMER, "to": OURS, "holdSeconds": -1}), 400,
             "holdSeconds"),
            ("/call", json.dumps([1, 2]), 400, "JSON object"),
        ]
        for path, body, status, named in cases:
            r = control.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == status, (path, body, r.text)
            assert named in r.json()["message"] and r.json()["status"] == status
    assert twin.state()["messages"] == [] and twin.state()["calls"] == []
    assert twin.count("POST /_twin/simulate/message", 400) == 4
    assert twin.count("POST /_twin/simulate/message", 404) == 2
    assert twin.count("POST /_twin/simulate/call", 400) == 3
    assert twin.count("POST /_twin/simulate/call", 404) == 1


def test_a_transcription_started_mid_call_hears_what_follows(twin: TwinHandle,
                                                            receiver: Receiver) -> None:
    twin.give_number(OURS)
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS, holdSeconds=1, utterances=[
        {"track": "inbound_track", "text": "before anyone listened"},
        {"track": "inbound_track", "text": "after the start", "pauseSeconds": 4},
        {"track": "outbound_track", "text": "not this track"}])["sid"]
    twin.wait_for(lambda s: next(c for c in s["calls"] if c["sid"] == sid)["status"]
                  == "in-progress")
    twin.client().calls(sid).transcriptions.create(status_callback_url=receiver.url + "/rtt",
                                                   track="inbound_track")
    twin.wait_for(lambda s: next(c for c in s["calls"] if c["sid"] == sid)["status"]
                  == "completed")
    events = [_form(r) for r in receiver.wait(3)]
    assert [e["TranscriptionEvent"] for e in events] == [
        "transcription-started", "transcription-content", "transcription-stopped"]
    assert json.loads(events[1]["TranscriptionData"])["transcript"] == "after the start"
