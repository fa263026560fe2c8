"""Every way a webhook can be refused: its status, a plain reason, nothing written, a counter.

Driven over real HTTP against ``threadline web`` on this run's Redis, with requests shaped the
way a misconfigured Twilio account, a proxy or an attacker would send them.
"""
from __future__ import annotations

from urllib.parse import urlencode

import httpx

from tests.procs import free_port
from tests.web_fixtures import (
    FORM,
    call_status,
    inbound_message,
    log_entries,
    message_status,
    post_signed,
    public_url,
    sign,
    transcription,
    wait_counter,
)
from workers.foundations.settings import MAX_WEBHOOK_BODY

MSG = "/webhooks/twilio/messaging"
STATUS = "/webhooks/twilio/messaging/status"
VOICE = "/webhooks/twilio/voice/status"
TRANSCRIPTION = "/webhooks/twilio/voice/transcription"
EVENTS = "/webhooks/twilio/events"


def _signed_raw(web, path: str, body: bytes, signed_pairs, content_type: str = FORM):
    """POST ``body`` as is, with the signature Twilio would compute for ``signed_pairs``."""
    url = public_url(path)
    return web.post(path, content=body, headers={
        "Content-Type": content_type, "X-Twilio-Signature": sign(url, signed_pairs)})


def test_missing_required_parameters_are_named(module_web, redis_client):
    cases = [
        (MSG, inbound_message("+14155550123", "+14155550100"), "MessageSid", "message"),
        (MSG, inbound_message("+14155550123", "+14155550100"), "From", "message"),
        (STATUS, message_status("SM" + "1" * 32, "sent", "+14155550100", "+14155550123"), "To",
         "message_status"),
        (STATUS, message_status("SM" + "1" * 32, "sent", "+14155550100", "+14155550123"),
         "MessageStatus", "message_status"),
        (VOICE, call_status("CA" + "2" * 32, "ringing", "+1415", "+1416"), "CallStatus", "call_status"),
        (VOICE, call_status("CA" + "2" * 32, "ringing", "+1415", "+1416"), "CallSid", "call_status"),
        (TRANSCRIPTION, transcription("CA" + "2" * 32, "GT" + "3" * 32, "transcription-started", 1),
         "TranscriptionEvent", "transcription"),
        (TRANSCRIPTION, transcription("CA" + "2" * 32, "GT" + "3" * 32, "transcription-started", 1),
         "TranscriptionSid", "transcription"),
    ]
    for path, params, drop, _kind in cases:
        params = {k: v for k, v in params.items() if k != drop}
        r = post_signed(module_web, path, params)
        assert r.status_code == 400, (path, drop)
        assert drop in r.text and "missing required parameter" in r.text
        # an empty value is as missing as an absent one
        r = post_signed(module_web, path, {**params, drop: ""})
        assert r.status_code == 400 and drop in r.text
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|message|bad_request", 4) == 4
    assert wait_counter(redis_client, "webhooks|call_status|bad_request", 4) == 4
    assert wait_counter(redis_client, "webhooks|transcription|bad_request", 4) == 4


def test_wrong_content_type_is_415(module_web, redis_client):
    params = inbound_message("+14155550123", "+14155550100")
    body = urlencode(params).encode()
    for ctype in ("text/plain", "application/json", "multipart/form-data; boundary=x", ""):
        r = _signed_raw(module_web, MSG, body, params, content_type=ctype)
        assert r.status_code == 415, ctype
    # a charset parameter is fine
    r = _signed_raw(module_web, MSG, body, params, content_type=FORM + "; charset=utf-8")
    assert r.status_code == 200
    r = module_web.post(EVENTS, content=b"[]", headers={"Content-Type": FORM})
    assert r.status_code == 415
    assert len(log_entries(redis_client)) == 1
    assert wait_counter(redis_client, "webhooks|message|unsupported_media", 4) == 4
    assert wait_counter(redis_client, "webhooks|event_streams|unsupported_media", 1) == 1


def test_bodies_over_64_kib_are_413_by_header_and_by_count(module_web, redis_client):
    params = inbound_message("+14155550123", "+14155550100", body="x")
    base = len(urlencode(params))
    # exactly at the limit, validly signed: taken
    at_limit = {**params, "Body": "x" * (MAX_WEBHOOK_BODY - base + 1)}
    assert len(urlencode(at_limit)) == MAX_WEBHOOK_BODY
    assert post_signed(module_web, MSG, at_limit).status_code == 200
    # one byte over: refused on Content-Length, before the body is read
    over = {**params, "MessageSid": "SM" + "9" * 32, "Body": "x" * (MAX_WEBHOOK_BODY - base + 2)}
    r = post_signed(module_web, MSG, over)
    assert r.status_code == 413
    # a chunked body (no Content-Length) is counted as it streams
    def chunks():
        yield b"Body="
        for _ in range(100):
            yield b"x" * 1024
    r = module_web.post(MSG, content=chunks(), headers={"Content-Type": FORM,
                                                 "X-Twilio-Signature": "irrelevant"})
    assert r.status_code == 413
    # an absurdly long value
    r = post_signed(module_web, STATUS, {**params, "Body": "y" * 1_000_000})
    assert r.status_code == 413
    assert len(log_entries(redis_client)) == 1
    assert wait_counter(redis_client, "webhooks|message|too_large", 2) == 2
    assert wait_counter(redis_client, "webhooks|message_status|too_large", 1) == 1


def test_undecodable_bodies_are_400(module_web, redis_client):
    params = inbound_message("+14155550123", "+14155550100")
    good = urlencode(params)
    bodies = [
        good.encode() + b"&Extra=\xff\xfe",          # raw bytes that are not UTF-8
        (good + "&Extra=%FF%FE").encode(),           # percent-encoded bytes that are not UTF-8
        (good + "&Body2=%E2%82").encode(),           # a UTF-8 sequence cut short
        good.encode()[: good.encode().index(b"%2B") + 2],  # truncated mid-escape and mid-body
    ]
    statuses = [_signed_raw(module_web, MSG, b, params).status_code for b in bodies]
    # Undecodable bytes are 400; a body that decodes but was cut is simply not what was signed.
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3] in (400, 403)
    assert log_entries(redis_client) == []
    want_bad = statuses.count(400)
    assert wait_counter(redis_client, "webhooks|message|bad_request", want_bad) == want_bad
    if 403 in statuses:
        assert wait_counter(redis_client, "webhooks|message|forged", 1) == 1


def test_repeated_parameter_names_are_400_even_when_signed(module_web, redis_client):
    params = list(inbound_message("+14155550123", "+14155550100").items())
    pairs = params + [("Body", "second body")]
    r = _signed_raw(module_web, MSG, urlencode(pairs).encode(), pairs)
    assert r.status_code == 400
    assert "Body" in r.text and "repeated" in r.text
    assert "second body" not in r.text
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|message|bad_request", 1) == 1


def test_ten_thousand_parameters_are_400(module_web, redis_client):
    pairs = list(inbound_message("+14155550123", "+14155550100").items())
    pairs += [(f"P{i}", "") for i in range(10_000)]
    body = urlencode(pairs).encode()
    assert len(body) < MAX_WEBHOOK_BODY * 2
    r = _signed_raw(module_web, MSG, body, pairs)
    assert r.status_code == 413  # 10,000 parameters do not fit in 64 KiB
    small = urlencode(pairs[:6000]).encode()  # under 64 KiB, so the parameter limit answers
    assert len(small) < MAX_WEBHOOK_BODY
    r = _signed_raw(module_web, MSG, small, pairs[:6000])
    assert r.status_code == 400 and "too many parameters" in r.text
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|message|bad_request", 1) == 1
    assert wait_counter(redis_client, "webhooks|message|too_large", 1) == 1


def test_unknown_paths_are_404_and_wrong_methods_405(module_web, redis_client):
    for path in ("/webhooks/twilio/sms", "/webhooks/twilio/messaging/", "/webhooks/x/y/z"):
        r = post_signed(module_web, path, inbound_message("+14155550123", "+14155550100"))
        assert r.status_code == 404, path
    for method, path in (("PUT", MSG), ("DELETE", MSG), ("GET", STATUS), ("GET", VOICE),
                         ("PATCH", TRANSCRIPTION), ("GET", EVENTS)):
        r = module_web.client.request(method, path)
        assert r.status_code == 405, (method, path)
        assert "POST" in r.headers["allow"]
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|unknown|not_found", 3) == 3
    assert wait_counter(redis_client, "webhooks|message|method_not_allowed", 2) == 2
    assert wait_counter(redis_client, "webhooks|event_streams|method_not_allowed", 1) == 1


def test_missing_signature_is_403(module_web, redis_client):
    params = inbound_message("+14155550123", "+14155550100")
    r = module_web.post(MSG, content=urlencode(params).encode(), headers={"Content-Type": FORM})
    assert r.status_code == 403
    r = module_web.get(MSG + "?" + urlencode(params))
    assert r.status_code == 403
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|message|forged", 2) == 2


def test_redis_unreachable_without_spool_is_503(start_web):
    web = start_web(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    r = post_signed(web, MSG, inbound_message("+14155550123", "+14155550100"))
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert web.get("/healthz").status_code == 200
    ready = web.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("failed")
    # a forged delivery is still 403, not 503: the signature is checked first
    r = web.post(MSG, content=b"MessageSid=SMx", headers={"Content-Type": FORM})
    assert r.status_code == 403


def test_readyz_when_redis_answers(module_web):
    r = module_web.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True
    assert body["checks"] == {"redis": "ok", "log": "ok", "durability": "ok"}
    assert body["durability"]["setting"] == "none"  # tests/conftest.py: the shared Redis keeps nothing
    assert isinstance(httpx.get(module_web.url + "/healthz").text, str)
