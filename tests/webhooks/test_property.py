"""Property: whatever arrives at a webhook endpoint — any method, body, Content-Type or header,
signed or not — the answer is one of 200/400/403/405/413/415 (never a 500, never a
traceback), every refusal is counted, and the log only ever holds deliveries that carried a
valid signature.

Hypothesis drives the real ``threadline web`` over HTTP; a share of the examples are validly
signed (with generated parameters) so the accepting path is explored too.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from urllib.parse import urlencode

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.web_fixtures import (
    call_status,
    counters,
    inbound_message,
    message_status,
    new_sid,
    public_url,
    sign,
    transcription,
)
from workers.foundations import keys

ENDPOINTS = ["/webhooks/twilio/messaging", "/webhooks/twilio/messaging/status",
             "/webhooks/twilio/voice/status", "/webhooks/twilio/voice/transcription",
             "/webhooks/twilio/events"]
ALLOWED = {200, 400, 403, 405, 413, 415}
REQUIRED = ["MessageSid", "From", "To", "MessageStatus", "CallSid", "CallStatus",
            "TranscriptionSid", "TranscriptionEvent", "AccountSid", "Body", "SequenceId"]

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip)
names = st.one_of(st.sampled_from(REQUIRED), st.text(max_size=12))
values = st.one_of(st.text(max_size=40), st.sampled_from(["", "+14155550123", "queued"]))
pairs = st.lists(st.tuples(names, values), max_size=14)
content_types = st.one_of(
    st.sampled_from(["application/x-www-form-urlencoded", "application/json",
                     "application/x-www-form-urlencoded; charset=utf-8", "text/plain",
                     "multipart/form-data"]),
    header_text)
json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _template(path: str, text: str) -> dict[str, str]:
    sid = new_sid("SM")
    if path.endswith("/messaging"):
        return inbound_message("+14155550123", "+14155550100", text, sid=sid)
    if path.endswith("/messaging/status"):
        return message_status(sid, "sent", "+14155550100", "+14155550123")
    if path.endswith("/voice/status"):
        return call_status(new_sid("CA"), "ringing", "+14155550123", "+14155550100")
    return transcription(new_sid("CA"), new_sid("GT"), "transcription-content", 2, transcript=text)


@st.composite
def requests(draw):
    path = draw(st.sampled_from(ENDPOINTS))
    odd = draw(st.integers(0, 99))  # < 70: a well-formed delivery; else anything goes
    if odd < 70:
        method = "GET" if path.endswith("/messaging") and odd < 10 else "POST"
        shape = "json" if path.endswith("/events") else "twilio"
    else:
        method = draw(st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]))
        shape = draw(st.sampled_from(["twilio", "form", "json", "bytes"]))
    query = draw(st.sampled_from(["", "tenant=t1", "a=1&a=2", "x=%FF"]))
    signed = draw(st.integers(0, 9)) < 6
    proper = "application/json" if shape == "json" else "application/x-www-form-urlencoded"
    headers = {"Content-Type": proper if odd < 70 else draw(content_types)}
    for name in draw(st.lists(st.sampled_from(
            ["X-Forwarded-Host", "X-Forwarded-Proto", "I-Twilio-Idempotency-Token",
             "X-Twilio-Webhooks-Signature-Settings", "Accept"]), max_size=3, unique=True)):
        headers[name] = draw(header_text)
    form: list[tuple[str, str]] | None = None
    if shape == "twilio":  # a realistic delivery for the endpoint, plus whatever else
        form = list(_template(path, draw(st.text(max_size=20))).items()) + draw(pairs)
        body = urlencode(form).encode()
    elif shape == "form":
        form = draw(pairs)
        body = urlencode(form).encode()
    elif shape == "json" and odd < 70:  # CloudEvents, some of them broken
        events = [{"id": new_sid("EZ"), "type": "com.twilio.messaging.inbound-message.received",
                   "data": {"messageSid": new_sid("SM"), "from": "+14155550123",
                            "to": "+14155550100", "body": draw(st.text(max_size=20))}}]
        events += draw(st.lists(json_bodies, max_size=2))
        body = json.dumps(events).encode()
        query = "bodySHA256=" + hashlib.sha256(body).hexdigest()
    elif shape == "json":
        body = json.dumps(draw(json_bodies)).encode()
        query = "bodySHA256=" + hashlib.sha256(body).hexdigest()
    else:
        body = draw(st.binary(max_size=300))
    if method == "GET" and form is not None:
        query = "&".join(q for q in (query, urlencode(form)) if q)
        body = b""
    url = public_url(path, query)
    if signed:
        if method == "GET" or form is None:
            headers["X-Twilio-Signature"] = sign(url, body.decode("utf-8", "replace") if shape == "json" else None)
        else:
            headers["X-Twilio-Signature"] = sign(url, form or [])
    else:
        headers["X-Twilio-Signature"] = draw(header_text)
    target = path + (f"?{query}" if query else "")
    return method, target, headers, body, signed


def _log_length(redis_client) -> int:
    pipe = redis_client.pipeline(transaction=False)
    for n in range(16):
        pipe.xlen(keys.events(n))
    return sum(pipe.execute())


REFUSALS = ("forged", "bad_request", "too_large", "unsupported_media", "method_not_allowed",
            "not_found", "timeout", "unconfigured", "unavailable")


def _refusals_counted(redis_client) -> int:
    return sum(n for f, n in counters(redis_client).items()
               if f.startswith("webhooks|") and f.rsplit("|", 1)[1] in REFUSALS)


def test_any_request_gets_a_clear_answer_and_only_signed_ones_are_logged(module_web, redis_client):
    answers: Counter = Counter()
    counted_before = _refusals_counted(redis_client)

    @settings(max_examples=250, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(req=requests())
    def one(req):
        method, target, headers, body, signed = req
        before = _log_length(redis_client)
        r = module_web.client.request(method, target, headers=headers, content=body)
        assert r.status_code in ALLOWED, (r.status_code, r.text)
        assert "Traceback" not in r.text
        answers[r.status_code] += 1
        event(f"status {r.status_code}")
        grew = _log_length(redis_client) - before
        if not signed:
            assert r.status_code != 200, "an unsigned request was accepted"
        if grew:
            # the log grows only by what a validly signed, accepted delivery brought
            assert signed and r.status_code == 200
        if r.status_code != 200:
            assert grew == 0, "a refused request wrote to the log"

    one()
    # every refusal is counted (webhooks|<kind>|<outcome>; the counts are flushed about once a second)
    refused = sum(n for status, n in answers.items() if status != 200)
    deadline = time.monotonic() + 10
    while _refusals_counted(redis_client) - counted_before < refused and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _refusals_counted(redis_client) - counted_before == refused, answers
    assert "Traceback" not in module_web.proc.output()
