"""The core API (IncomingPhoneNumbers, Messages, Calls, a live call's Transcriptions) and
Event Streams, driven by the stock ``twilio.rest.Client`` over real HTTP, as threadline drives
them (workers.twilio.rest.RebasingHttpClient), and the twin's refusals in Twilio's shape."""
from __future__ import annotations

import time

import pytest
from twilio.base.exceptions import TwilioRestException

from tests.twin_fixtures import Receiver, TwinHandle

OURS = "+14155550100"
CUSTOMER = "+14155550123"


def _wait_status(twin: TwinHandle, call_sid: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while next(c for c in twin.state()["calls"] if c["sid"] == call_sid)["status"] != status:
        assert time.monotonic() < deadline, f"call never reached {status}"
        time.sleep(0.05)


def test_numbers_are_listed_fetched_and_updated(twin: TwinHandle) -> None:
    given = twin.give_number(OURS)
    assert given["sid"].startswith("PN") and given["phone_number"] == OURS
    assert twin.give_number(OURS)["sid"] == given["sid"]  # the same number twice is one
    client = twin.client()
    listed = client.incoming_phone_numbers.list(phone_number=OURS)
    assert [n.sid for n in listed] == [given["sid"]]
    assert client.incoming_phone_numbers.list(phone_number="+19995550000") == []
    updated = client.incoming_phone_numbers(given["sid"]).update(
        sms_url="https://app.example.com/sms", sms_method="GET",
        voice_url="https://app.example.com/voice", voice_method="POST",
        status_callback="https://app.example.com/status", status_callback_method="POST")
    assert (updated.sms_url, updated.sms_method) == ("https://app.example.com/sms", "GET")
    fetched = client.incoming_phone_numbers(given["sid"]).fetch()
    assert fetched.voice_url == "https://app.example.com/voice"
    assert fetched.status_callback == "https://app.example.com/status"


def test_number_refusals_are_twilios(twin: TwinHandle) -> None:
    number = twin.give_number(OURS)
    client = twin.client()
    with pytest.raises(TwilioRestException) as bad:
        client.incoming_phone_numbers(number["sid"]).update(sms_url="not a url")
    assert bad.value.status == 400 and "SmsUrl" in bad.value.msg
    with pytest.raises(TwilioRestException) as bad:
        client.incoming_phone_numbers(number["sid"]).update(voice_method="PUT")
    assert bad.value.status == 400 and "VoiceMethod" in bad.value.msg
    with pytest.raises(TwilioRestException) as missing:
        client.incoming_phone_numbers("PN" + "0" * 32).fetch()
    assert missing.value.status == 404 and missing.value.code == 20404
    with twin.http() as http:
        r = http.post("/2010-04-01/Accounts/AC" + "1" * 32 + "/IncomingPhoneNumbers.json")
        assert r.status_code == 405
        r = http.get("/2010-04-01/Accounts/AC" + "1" * 32 + "/IncomingPhoneNumbers.json")
        assert r.status_code == 404 and r.json()["code"] == 20404
    with httpx_control(twin) as control:
        r = control.post("/numbers", json={"phoneNumber": "555-0100"})
        assert r.status_code == 400 and "phoneNumber" in r.json()["message"]


def httpx_control(twin: TwinHandle):
    import httpx

    return httpx.Client(base_url=twin.base_url + "/_twin", timeout=10)


def test_messages_create_sends_status_callbacks_and_lists(twin: TwinHandle,
                                                          receiver: Receiver) -> None:
    twin.give_number(OURS)
    client = twin.client()
    msg = client.messages.create(to=CUSTOMER, from_=OURS, body="Your order shipped",
                                 status_callback=receiver.url + "/status")
    assert msg.sid.startswith("SM") and msg.status == "queued"
    receiver.wait(3)
    statuses = [dict(p.split("=", 1) for p in r["body"].split("&"))["MessageStatus"]
                for r in receiver.requests]
    assert statuses == ["queued", "sent", "delivered"]
    assert client.messages(msg.sid).fetch().status == "delivered"
    assert [m.sid for m in client.messages.list(to=CUSTOMER)] == [msg.sid]
    assert client.messages.list(to="+19995550000") == []
    with pytest.raises(TwilioRestException) as bad:
        client.messages.create(to=CUSTOMER, from_="+19995550000", body="x")
    assert bad.value.status == 400 and bad.value.code == 21606
    with pytest.raises(TwilioRestException) as bad:
        client.messages.create(to=CUSTOMER, from_=OURS, body="x", status_callback="nope")
    assert bad.value.status == 400 and "StatusCallback" in bad.value.msg


def test_calls_list_filters_status_and_transcriptions_need_a_live_call(
        twin: TwinHandle, receiver: Receiver) -> None:
    twin.give_number(OURS)
    client = twin.client()
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS, holdSeconds=3)["sid"]
    _wait_status(twin, sid, "in-progress")
    assert [c.sid for c in client.calls.list(status="in-progress")] == [sid]
    assert client.calls(sid).fetch().status == "in-progress"
    started = client.calls(sid).transcriptions.create(
        status_callback_url=receiver.url + "/rtt", track="inbound_track", partial_results=True,
        name="passive")
    assert started.sid.startswith("GT") and started.status == "in-progress"
    stopped = client.calls(sid).transcriptions("passive").update(status="stopped")
    assert stopped.status == "stopped"
    events = [r["body"] for r in receiver.wait(2)]
    assert "TranscriptionEvent=transcription-started" in events[0]
    assert "TranscriptionEvent=transcription-stopped" in events[1]
    _wait_status(twin, sid, "completed")
    assert client.calls.list(status="in-progress") == []
    assert [c.sid for c in client.calls.list(status="completed")] == [sid]
    with pytest.raises(TwilioRestException) as refused:
        client.calls(sid).transcriptions.create(status_callback_url=receiver.url + "/rtt")
    assert refused.value.status == 400 and refused.value.code == 21220
    with pytest.raises(TwilioRestException) as refused:
        client.calls(sid).transcriptions(started.sid).update(status="stopped")
    assert refused.value.code == 21220
    with pytest.raises(TwilioRestException) as missing:
        client.calls("CA" + "0" * 32).transcriptions.create()
    assert missing.value.status == 404
    with twin.http() as http:
        r = http.get(f"/2010-04-01/Accounts/{twin.account_sid}/Calls.json",
                     params={"Status": "talking"})
        assert r.status_code == 400 and "Status" in r.json()["message"]


def test_event_streams_sinks_and_subscriptions(twin: TwinHandle) -> None:
    events = twin.client().events.v1
    sink = events.sinks.create(description="threadline", sink_type="webhook",
                               sink_configuration={"destination": "https://c.example.com/ev",
                                                   "method": "POST", "batch_events": True})
    assert sink.sid.startswith("DG") and sink.status == "active"
    assert sink.sink_configuration["destination"] == "https://c.example.com/ev"
    assert [s.sid for s in events.sinks.list()] == [sink.sid]
    assert events.sinks(sink.sid).fetch().sink_type == "webhook"
    sub = events.subscriptions.create(
        description="messaging", sink_sid=sink.sid,
        types=[{"type": "com.twilio.messaging.message.delivered", "schema_version": 7},
               {"type": "com.twilio.messaging.inbound-message.received"}])
    assert sub.sid.startswith("DF")
    assert [s.sid for s in events.subscriptions.list(sink_sid=sink.sid)] == [sub.sid]
    types = [t.type for t in events.subscriptions(sub.sid).subscribed_events.list()]
    assert types == ["com.twilio.messaging.message.delivered",
                     "com.twilio.messaging.inbound-message.received"]
    with pytest.raises(TwilioRestException) as bad:
        events.sinks.create(description="x", sink_type="webhook",
                            sink_configuration={"destination": "not a url"})
    assert bad.value.status == 400 and "destination" in bad.value.msg
    with pytest.raises(TwilioRestException) as bad:
        events.subscriptions.create(description="x", sink_sid="DG" + "0" * 32,
                                    types=[{"type": "x"}])
    assert bad.value.status == 400
    assert events.subscriptions(sub.sid).delete() is True
    assert events.subscriptions.list() == []
    assert events.sinks(sink.sid).delete() is True
    assert events.sinks.list() == []


def test_answers_carry_the_status_codes_the_spec_declares(twin: TwinHandle) -> None:
    """The stock client hides the status: 201 for Messages create and Sink/Subscription create,
    200 for a transcription's start and stop and a number's update, 204 for deletes."""
    number = twin.give_number(OURS)
    sid = twin.simulate_call(from_=CUSTOMER, to=OURS, holdSeconds=3)["sid"]
    _wait_status(twin, sid, "in-progress")
    a = f"/2010-04-01/Accounts/{twin.account_sid}"
    with twin.http() as http:
        assert http.post(f"{a}/IncomingPhoneNumbers/{number['sid']}.json",
                         data={"FriendlyName": "main"}).status_code == 200
        assert http.post(f"{a}/Messages.json", data={"To": CUSTOMER, "From": OURS,
                                                     "Body": "x"}).status_code == 201
        started = http.post(f"{a}/Calls/{sid}/Transcriptions.json", data={"Name": "t"})
        assert started.status_code == 200 and started.json()["status"] == "in-progress"
        stopped = http.post(f"{a}/Calls/{sid}/Transcriptions/t.json", data={"Status": "stopped"})
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
        sink = http.post("/v1/Sinks", data={"Description": "d", "SinkType": "webhook",
                                            "SinkConfiguration": '{"destination": '
                                                                 '"https://e.example/x"}'})
        assert sink.status_code == 201
        sub = http.post("/v1/Subscriptions", data={"Description": "d",
                                                   "SinkSid": sink.json()["sid"],
                                                   "Types": '{"type": "x"}'})
        assert sub.status_code == 201
        assert http.delete(f"/v1/Subscriptions/{sub.json()['sid']}").status_code == 204
        assert http.delete(f"/v1/Sinks/{sink.json()['sid']}").status_code == 204
