"""Event Streams sink deliveries: each CloudEvent logged as the webhook it stands for, deduped
on its id; the mapping is pure (tested directly), the endpoint is driven over real HTTP."""
from __future__ import annotations

import json

import pytest

from service.webhooks import eventstreams
from service.webhooks.params import Refused
from tests.conftest import ACCOUNT_SID
from tests.web_fixtures import counters, load_fixture, log_entries, post_events, post_fixture, wait_counter

BATCH = load_fixture("i_event_streams_batch")[0]
EVENTS = json.loads(BATCH["body"])


def test_the_fixture_batch_maps_to_message_status_and_call_webhooks():
    mapped = [eventstreams.map_event(ev, i) for i, ev in enumerate(EVENTS)]
    assert [m.kind for m in mapped] == ["message", "message_status", "call_status"]
    inbound, status, call = (m.params for m in mapped)
    assert inbound["MessageSid"] == "SM1a1e038daea806754635d5ece8e9f01e"
    assert (inbound["From"], inbound["To"], inbound["Body"]) == ("+14155550123", "+14155550100", "Ping")
    assert inbound["NumMedia"] == "0" and inbound["AccountSid"] == ACCOUNT_SID
    assert status["MessageStatus"] == "delivered"  # UPPER in Event Streams, lower in callbacks
    assert status["NumSegments"] == "1" and status["RawDlrDoneDate"] == "2603021900"
    assert call["CallSid"] == "CA54f072fede78400195d64169806a5a9a"
    assert call["CallStatus"] == "completed" and call["SequenceNumber"] == "0"
    assert [m.dedupe_key for m in mapped] == [f"es:{ev['id']}" for ev in EVENTS]
    assert all(m.params["CloudEventId"] == ev["id"] for m, ev in zip(mapped, EVENTS))
    assert inbound["CloudEventTime"] == "2026-03-02T19:00:00.120Z"


def test_data_as_a_json_string_and_status_from_the_type():
    ev = dict(EVENTS[1])
    data = {k: v for k, v in ev["data"].items() if k != "messageStatus"}
    ev["data"] = json.dumps(data)
    ev["type"] = "com.twilio.messaging.message.undelivered"
    m = eventstreams.map_event(ev, 0)
    assert m.kind == "message_status" and m.params["MessageStatus"] == "undelivered"


def test_types_not_captured_are_none_and_broken_events_are_refused():
    assert eventstreams.map_event({"id": "EZ1", "type": "com.twilio.error-logs.error.logged",
                                   "data": {}}, 0) is None
    for bad in ([1], {"type": "x"}, {"id": "EZ2", "type": eventstreams.INBOUND, "data": {}},
                {"id": "EZ3", "type": "com.twilio.voice.status-callback.call.ringing", "data": {}}):
        with pytest.raises(Refused) as exc:
            eventstreams.map_event(bad[0] if isinstance(bad, list) else bad, 4)
        assert exc.value.status == 400 and "event 4" in exc.value.reason


def test_a_batch_is_logged_once_per_cloud_event_id(module_web, redis_client):
    assert post_fixture(module_web, BATCH).status_code == 200
    assert post_fixture(module_web, BATCH).status_code == 200
    entries = log_entries(redis_client)
    assert sorted(e.kind for e in entries) == ["call_status", "message", "message_status"]
    # a later batch repeating one event and bringing a new one (at-least-once delivery)
    new = json.loads(json.dumps(EVENTS[1]))
    new["id"] = "EZ" + "7" * 32
    new["data"]["messageStatus"] = "READ"
    new["type"] = "com.twilio.messaging.message.read"
    assert post_events(module_web, [EVENTS[0], new]).status_code == 200
    entries = log_entries(redis_client)
    assert len(entries) == 4
    c = counters(redis_client)
    assert c["webhooks|message|duplicate"] == 2
    assert c["webhooks|message_status|accepted"] == 2


def test_uncaptured_types_are_acknowledged_and_counted(module_web, redis_client):
    ev = {"specversion": "1.0", "type": "com.twilio.voice.insights.call-summary.complete",
          "id": "EZ" + "8" * 32, "source": f"/v1/Voice/CA{'1' * 32}/Summary", "data": {}}
    assert post_events(module_web, [ev]).status_code == 200
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|event_streams|ignored", 1) == 1


def test_a_broken_event_is_dead_lettered_and_the_rest_of_its_batch_logged(module_web, redis_client):
    from workers.eventlog import deadletters

    broken = {"id": "EZ" + "9" * 32, "type": eventstreams.INBOUND,
              "data": {"from": "+1415", "body": "secret words"}}
    r = post_events(module_web, [EVENTS[0], broken, 7])
    assert r.status_code == 200
    assert [e.params["CloudEventId"] for e in log_entries(redis_client)] == [EVENTS[0]["id"]]
    letters, _ = deadletters.list(redis_client)
    assert [d.reason for d in letters] == ["malformed_event", "malformed_event"]
    first, second = (d.view() for d in letters)
    assert "event 1" in first["error"] and "MessageSid" in first["error"]
    assert first["entry"]["params"]["CloudEventId"] == "EZ" + "9" * 32
    assert first["entry"]["params"]["Body"] == "[12 chars]"  # the views never show a body
    assert first["replayable"] is False and "event 2" in second["error"]
    assert wait_counter(redis_client, "dead_letters|malformed_event", 2) == 2
    # a body that is not a batch at all is still refused whole, and writes nothing
    assert post_events(module_web, "nope").status_code == 400  # type: ignore[arg-type]
    assert len(log_entries(redis_client)) == 1
    assert wait_counter(redis_client, "webhooks|event_streams|bad_request", 1) == 1
