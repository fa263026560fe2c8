"""Forwarding: a forwarded number's webhooks are captured, then reach the operator's application.

One ``threadline web`` for the module, with upstreams recorded (as ``connect --forward`` records
them) for a set of numbers, each pointing at one behaviour of a real application
(tests/operator_app.py: checks Twilio signatures, answers TwiML) — or at nothing, or at garbage.
Twilio's side is played by signed deliveries over real HTTP.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.app_fixtures import dead_url
from tests.conftest import ACCOUNT_SID
from tests.operator_app import BIG_TWIML, RELAY_TWIML, SMS_TWIML, VOICE_TWIML, Garbage, OperatorApp
from tests.procs import Proc, free_port
from tests.redisdb import empty
from tests.web_fixtures import (
    Web,
    call_status,
    counters,
    inbound_message,
    log_entries,
    new_sid,
    post_signed,
    wait_counter,
    web_env,
)
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys
from workers.twilio import upstreams
from workers.twilio.upstreams import Upstream

CUSTOMER = "+15557654321"
APP, GET_APP, DOWN, SLOW, HUGE, BIG, REDIRECT, ERROR, GARBAGE, NO_URLS, LATE = (
    f"+1555010{n:04d}" for n in range(1, 12))
CAPTURED, NOT_TWIML, RELAYING, PRE_VOICE = (f"+1555010{n:04d}" for n in range(12, 16))
UNFORWARDED = "+15550109999"
MESSAGING = "/webhooks/twilio/messaging"
VOICE = "/webhooks/twilio/voice"
VOICE_STATUS = "/webhooks/twilio/voice/status"


def _upstream(number: str, sms: str = "", voice: str = "", status: str = "", sms_method: str = "POST"
              ) -> Upstream:
    return Upstream(number, new_sid("PN"), ACCOUNT_SID, {
        "SmsUrl": sms, "SmsMethod": sms_method, "VoiceUrl": voice, "VoiceMethod": "POST",
        "StatusCallback": status, "StatusCallbackMethod": "POST"})


@pytest.fixture(scope="module")
def db(redis_url: str) -> Iterator[redis.Redis]:
    """This run's database, emptied once for the module (not per test: the web's forwarding
    table is loaded from it)."""
    client = redis.Redis.from_url(redis_url)
    empty(client)
    yield client
    client.close()


@pytest.fixture(scope="module")
def fwd_web(db: redis.Redis, redis_url: str, operator_app: OperatorApp, garbage_server: Garbage
            ) -> Iterator[Web]:
    app = operator_app.url
    for up in (
        _upstream(APP, f"{app}/sms", f"{app}/voice", f"{app}/status"),
        _upstream(GET_APP, f"{app}/sms?from=twilio", sms_method="GET"),
        _upstream(DOWN, dead_url(), dead_url("/voice")),
        _upstream(SLOW, f"{app}/slow"),
        _upstream(HUGE, f"{app}/huge"),
        _upstream(BIG, f"{app}/big"),
        _upstream(REDIRECT, f"{app}/redirect"),
        _upstream(ERROR, f"{app}/error"),
        _upstream(GARBAGE, f"{garbage_server.url}/sms"),
        _upstream(NO_URLS),
        _upstream(CAPTURED, voice=f"{app}/voice"),
        _upstream(NOT_TWIML, voice=f"{app}/status"),
        _upstream(RELAYING, voice=f"{app}/voice-relay"),
        _upstream(PRE_VOICE, voice=f"{app}/voice"),
    ):
        upstreams.record(db, up)
    # VOICE rules capture calls to these numbers (passive voice: service.webhooks.voice_start);
    # PRE_VOICE's rule names CLIENT calls only (callType), so a PSTN call to it is not captured.
    rules = [{"from": "*", "to": n} for n in (CAPTURED, NOT_TWIML, RELAYING)]
    rules.append({"from": "*", "to": PRE_VOICE, "metadata": {"callType": "CLIENT"}})
    ConfigStore(db).put(parse_configuration({
        "id": "voice", "displayName": "voice", "description": "passive voice",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
        "channelSettings": {"VOICE": {"captureRules": rules, "transcription": {"languageCode": "fr-FR"}}}}))
    # Started here rather than with start_web (function-scoped) so the module shares one server.
    port = free_port()
    env = web_env(redis_url, THREADLINE_FORWARD_TIMEOUT="1")
    proc = Proc(["web", "--port", str(port)], env, ready_url=f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}"
    web = Web(url=url, proc=proc, env=env, client=httpx.Client(base_url=url, timeout=10))
    yield web
    web.stop()


def _logged(db: redis.Redis, sid_name: str, sid: str) -> list:
    return [e for e in log_entries(db) if e.params.get(sid_name) == sid]


def _bodies(app: OperatorApp, path: str, sid: str) -> list:
    return [s for s in app.requests(path) if s.params.get("MessageSid") == sid]


def test_an_inbound_sms_reaches_the_app_signed_and_its_twiml_comes_back(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, APP, "Where is my order?")
    r = post_signed(fwd_web, MESSAGING, params, headers={"I-Twilio-Idempotency-Token": "tok-1"})
    assert r.status_code == 200, r.text
    assert r.content == SMS_TWIML
    assert r.headers["content-type"].startswith("text/xml")
    [seen] = _bodies(operator_app, "/sms", params["MessageSid"])
    assert seen.signature_ok and seen.method == "POST"
    assert seen.params == params                      # the same parameters, every one
    assert seen.headers["i-twilio-idempotency-token"] == "tok-1"
    assert "x-forwarded-for" not in seen.headers
    [entry] = _logged(db, "MessageSid", params["MessageSid"])
    assert entry.kind == "message" and entry.params == params
    assert wait_counter(db, "forwards|messaging|answered", 1) >= 1


def test_a_twilio_retry_reaches_the_app_again_but_is_logged_once(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, APP, "Hello twice")
    duplicates = counters(db).get("webhooks|message|duplicate", 0)
    for _ in range(2):
        r = post_signed(fwd_web, MESSAGING, params)
        assert r.status_code == 200 and r.content == SMS_TWIML
    assert len(_bodies(operator_app, "/sms", params["MessageSid"])) == 2
    assert all(s.signature_ok for s in _bodies(operator_app, "/sms", params["MessageSid"]))
    assert len(_logged(db, "MessageSid", params["MessageSid"])) == 1
    assert counters(db).get("webhooks|message|duplicate", 0) == duplicates + 1


def test_the_app_down_is_a_502_and_the_message_is_still_captured(fwd_web: Web, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, DOWN, "Anyone there?")
    r = post_signed(fwd_web, MESSAGING, params)
    assert r.status_code == 502
    assert "could not be reached" in r.text
    assert len(_logged(db, "MessageSid", params["MessageSid"])) == 1
    assert wait_counter(db, "forwards|messaging|unreachable", 1) >= 1


def test_an_app_slower_than_the_forward_timeout_is_a_502_and_still_captured(
        fwd_web: Web, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, SLOW, "Take your time")
    started = time.monotonic()
    r = post_signed(fwd_web, MESSAGING, params)
    elapsed = time.monotonic() - started
    assert r.status_code == 502 and "in time" in r.text
    assert 0.9 <= elapsed < 2.5  # THREADLINE_FORWARD_TIMEOUT=1, not the app's 3 s
    assert len(_logged(db, "MessageSid", params["MessageSid"])) == 1
    assert wait_counter(db, "forwards|messaging|timeout", 1) >= 1


def test_a_get_webhook_is_relayed_as_twilio_sends_one(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, GET_APP, "Via GET & more")
    r = post_signed(fwd_web, MESSAGING, params)
    assert r.status_code == 200 and r.content == SMS_TWIML
    [seen] = _bodies(operator_app, "/sms", params["MessageSid"])
    assert seen.method == "GET" and seen.signature_ok
    assert seen.params == {"from": "twilio", **params}  # the app's own query kept, then Twilio's
    assert len(_logged(db, "MessageSid", params["MessageSid"])) == 1


def test_an_incoming_call_is_captured_and_the_apps_twiml_answers_it(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    call_sid = new_sid("CA")
    params = call_status(call_sid, "ringing", CUSTOMER, APP)
    del params["SequenceNumber"], params["CallbackSource"], params["Timestamp"]  # not on the call webhook
    r = post_signed(fwd_web, VOICE, params)
    assert r.status_code == 200 and r.content == VOICE_TWIML
    [seen] = [s for s in operator_app.requests("/voice") if s.params.get("CallSid") == call_sid]
    assert seen.signature_ok and seen.params == params
    [entry] = _logged(db, "CallSid", call_sid)
    assert entry.kind == "call_status" and entry.params["CallStatus"] == "ringing"


def test_an_incoming_call_without_an_upstream_is_captured_and_answered_empty(
        fwd_web: Web, db: redis.Redis) -> None:
    call_sid = new_sid("CA")
    r = post_signed(fwd_web, VOICE, call_status(call_sid, "ringing", CUSTOMER, UNFORWARDED))
    assert r.status_code == 200 and r.content == b"<Response/>"
    assert [e.kind for e in _logged(db, "CallSid", call_sid)] == ["call_status"]


def test_a_call_status_callback_is_relayed_to_the_numbers_status_callback(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    call_sid = new_sid("CA")
    r = post_signed(fwd_web, VOICE_STATUS, call_status(call_sid, "completed", CUSTOMER, APP, sequence=3))
    assert r.status_code == 200 and r.content == b""
    assert [s.signature_ok for s in operator_app.requests("/status") if s.params.get("CallSid") == call_sid] == [True]
    assert len(_logged(db, "CallSid", call_sid)) == 1


@pytest.mark.parametrize(("number", "status", "outcome"), [
    (BIG, 200, "answered"),
    (HUGE, 502, "too_large"),
    (REDIRECT, 302, "answered"),
    (ERROR, 500, "answered"),
    (GARBAGE, 502, "bad_answer"),
])
def test_whatever_the_app_answers_goes_back_bounded_and_never_a_500_of_ours(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis, number: str, status: int,
        outcome: str) -> None:
    before = counters(db).get(f"forwards|messaging|{outcome}", 0)
    params = inbound_message(CUSTOMER, number)
    r = post_signed(fwd_web, MESSAGING, params)
    assert r.status_code == status
    if number == BIG:  # 900 KiB of TwiML: under the 1 MiB bound, passed back intact
        assert r.content == BIG_TWIML and r.headers["content-type"] == "application/xml"
    if number == REDIRECT:  # made absolute against the app's URL, so Twilio follows it there
        assert r.headers["location"] == f"{operator_app.url}/sms"
    if number == ERROR:
        assert r.text == "the application broke"
    assert len(_logged(db, "MessageSid", params["MessageSid"])) == 1
    assert wait_counter(db, f"forwards|messaging|{outcome}", before + 1) >= before + 1


def test_a_forged_delivery_never_reaches_the_app(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, APP)
    r = post_signed(fwd_web, MESSAGING, params, token="f" * 32)
    assert r.status_code == 403
    assert _bodies(operator_app, "/sms", params["MessageSid"]) == []
    assert _logged(db, "MessageSid", params["MessageSid"]) == []


def test_a_signed_delivery_threadline_cannot_log_still_reaches_the_app(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    before = counters(db).get("webhooks|message|bad_request", 0)
    params = {**inbound_message(CUSTOMER, APP), "Body": "no sid"}
    sid = params.pop("MessageSid")
    r = post_signed(fwd_web, MESSAGING, params)
    assert r.status_code == 200 and r.content == SMS_TWIML
    assert [s.params.get("SmsSid") for s in operator_app.requests("/sms")].count(sid) == 1
    assert wait_counter(db, "webhooks|message|bad_request", before + 1) >= before + 1


def test_a_number_whose_app_had_no_url_is_answered_as_without_forwarding(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, NO_URLS)
    seen_before = len(operator_app.seen)
    r = post_signed(fwd_web, MESSAGING, params)
    assert r.status_code == 200 and r.content == b"<Response/>"
    assert len(operator_app.seen) == seen_before
    assert len(_logged(db, "MessageSid", params["MessageSid"])) == 1


def test_a_webhook_threadline_relayed_is_not_relayed_again(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    params = inbound_message(CUSTOMER, APP)
    r = post_signed(fwd_web, MESSAGING, params, headers={"X-Threadline-Forwarded": "1"})
    assert r.status_code == 508
    assert _bodies(operator_app, "/sms", params["MessageSid"]) == []
    assert len(_logged(db, "MessageSid", params["MessageSid"])) == 1
    assert wait_counter(db, "forwards|messaging|loop", 1) >= 1


def test_a_number_recorded_while_running_is_forwarded_within_the_settle_time(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    upstreams.record(db, _upstream(LATE, f"{operator_app.url}/sms"))
    time.sleep(upstreams.SETTLE_SECONDS)
    params = inbound_message(CUSTOMER, LATE)
    r = post_signed(fwd_web, MESSAGING, params)
    assert r.content == SMS_TWIML and len(_bodies(operator_app, "/sms", params["MessageSid"])) == 1
    upstreams.forget(db, LATE)
    time.sleep(upstreams.SETTLE_SECONDS)
    params = inbound_message(CUSTOMER, LATE)
    r = post_signed(fwd_web, MESSAGING, params)
    assert r.content == b"<Response/>" and _bodies(operator_app, "/sms", params["MessageSid"]) == []


def _incoming_call(to: str, **extra: str) -> dict[str, str]:
    params = call_status(new_sid("CA"), "ringing", CUSTOMER, to, **extra)
    del params["SequenceNumber"], params["CallbackSource"], params["Timestamp"]  # not on the call webhook
    return params


def test_a_captured_call_gets_its_transcription_ahead_of_the_apps_twiml(
        fwd_web: Web, operator_app: OperatorApp, db: redis.Redis) -> None:
    before = counters(db).get("transcriptions|started|twiml", 0)
    params = _incoming_call(CAPTURED)
    r = post_signed(fwd_web, VOICE, params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    name = f"threadline-{params['CallSid']}"
    assert r.text == (f'<Response><Start><Transcription statusCallbackUrl="{fwd_web.env["THREADLINE_PUBLIC_URL"]}'
                      f'/webhooks/twilio/voice/transcription" track="both_tracks" name="{name}" '
                      f'partialResults="false" languageCode="fr-FR"/></Start>'
                      + VOICE_TWIML.decode()[len("<Response>"):])
    assert int(r.headers["content-length"]) == len(r.content)
    assert db.hget(keys.call(params["CallSid"]), "rts") == b"twiml"  # the poll will leave it alone
    assert 0 < db.ttl(keys.call(params["CallSid"])) <= 86400
    assert wait_counter(db, "transcriptions|started|twiml", before + 1) == before + 1


@pytest.mark.parametrize(("to", "extra", "answer", "counter", "field"), [
    (NOT_TWIML, {}, b"", "transcriptions|failed|not_twiml", None),
    (RELAYING, {}, RELAY_TWIML, "transcriptions|skipped|actively_routed", "act"),
    (PRE_VOICE, {}, VOICE_TWIML, None, None),                         # callType PSTN: not captured
    (APP, {}, VOICE_TWIML, None, None),                               # no VOICE rule names it
    (CAPTURED, {"ParentCallSid": "CA" + "0" * 32}, VOICE_TWIML, None, None),  # a child leg
])
def test_the_apps_answer_goes_back_unchanged_when_the_call_gets_no_transcription_of_ours(
        fwd_web: Web, db: redis.Redis, to: str, extra: dict, answer: bytes, counter: str | None,
        field: str | None) -> None:
    before = counters(db).get(counter, 0) if counter else 0
    started = counters(db).get("transcriptions|started|twiml", 0)
    params = _incoming_call(to, **extra)
    r = post_signed(fwd_web, VOICE, params)
    assert r.status_code == 200 and r.content == answer
    if counter:
        assert wait_counter(db, counter, before + 1) == before + 1
    if field:
        assert db.hget(keys.call(params["CallSid"]), field) == b"twiml"
    assert db.hget(keys.call(params["CallSid"]), "rts") is None
    time.sleep(1.1)  # the counters are flushed about once a second
    assert counters(db).get("transcriptions|started|twiml", 0) == started
