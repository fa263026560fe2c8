"""Which URL and which token a signature is checked against (shared/reference §1).

The URL rules are pure and tested directly on :class:`service.webhooks.signatures.Signatures`; token
rotation, subaccounts and proxies are driven over real HTTP as Twilio and a proxy would.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from service.webhooks.signatures import Signatures, UntrustedUrl
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.web_fixtures import (
    inbound_message,
    load_fixture,
    log_entries,
    post_fixture,
    post_signed,
    sign,
    wait_counter,
)
from workers.foundations.settings import Settings

MSG = "/webhooks/twilio/messaging"
SUB = "AC" + "5" * 32
SUB_TOKEN = "5" * 32
OTHER = "AC" + "6" * 32


PROXY = "10.0.0.9"


def _scope(path: bytes, query: bytes = b"", peer: str = PROXY) -> dict:
    return {"type": "http", "path": path.decode(), "raw_path": path, "query_string": query,
            "scheme": "http", "server": ("10.0.0.5", 8000), "client": (peer, 40000)}


def test_public_url_plus_raw_path_and_query_is_what_is_signed():
    s = Signatures(Settings(public_url="https://capture.example.com/", twilio_auth_token="t"))
    url = s.url(_scope(b"/webhooks/twilio/messaging", b"a=1&b=it%27s+me&c='x'"), {})
    # raw: nothing re-encoded or re-ordered, the proxy's view of the host ignored
    assert url == "https://capture.example.com/webhooks/twilio/messaging?a=1&b=it%27s+me&c='x'"
    assert s.url(_scope(b"/webhooks/twilio/messaging"), {"host": "evil.example"}) == \
        "https://capture.example.com/webhooks/twilio/messaging"


def test_credentials_and_fragments_never_enter_the_url():
    s = Signatures(Settings(public_url="https://user:secret@capture.example.com:8443/base#rc=2",
                            twilio_auth_token="t"))
    assert s.url(_scope(b"/webhooks/x"), {}) == "https://capture.example.com:8443/base/webhooks/x"
    bare = Signatures(Settings(twilio_auth_token="t", public_url=None, trusted_proxies=PROXY))
    assert bare.url(_scope(b"/w", b"q=1#ct=100"), {"host": "h.example"}) == "http://h.example/w?q=1"


def test_without_a_public_url_only_a_trusted_proxys_forwarded_headers_rebuild_it():
    s = Signatures(Settings(twilio_auth_token="t", public_url=None, trusted_proxies="10.0.0.0/24"))
    scope = _scope(b"/webhooks/twilio/messaging", b"x=1")
    assert s.url(scope, {"host": "10.0.0.5:8000"}) == "http://10.0.0.5:8000/webhooks/twilio/messaging?x=1"
    headers = {"host": "10.0.0.5:8000", "x-forwarded-proto": "https",
               "x-forwarded-host": "capture.example.com"}
    assert s.url(scope, headers) == "https://capture.example.com/webhooks/twilio/messaging?x=1"
    with pytest.raises(UntrustedUrl) as refused:  # anyone else's headers are not believed
        s.url(_scope(b"/webhooks/twilio/messaging", peer="203.0.113.7"), headers)
    assert refused.value.status == 403


@pytest.mark.parametrize("host", ["capture.example.com, lb.internal", "attacker.example/x",
                                  "a.example?x=1", "user@capture.example.com", "", "a b.example",
                                  "capture.example.com:99999999"])
def test_a_forwarded_host_that_is_not_one_plain_host_is_refused(host):
    s = Signatures(Settings(twilio_auth_token="t", public_url=None, trusted_proxies=PROXY))
    with pytest.raises(UntrustedUrl) as refused:
        s.url(_scope(b"/webhooks/twilio/messaging"), {"host": "ok.example", "x-forwarded-host": host}
              if host else {})
    assert refused.value.status == 400
    with pytest.raises(UntrustedUrl):
        s.url(_scope(b"/w"), {"host": "ok.example", "x-forwarded-proto": "https, http"})


def test_without_public_url_nor_trusted_proxies_nothing_is_believed():
    s = Signatures(Settings(twilio_auth_token="t", public_url=None))
    with pytest.raises(UntrustedUrl) as refused:
        s.url(_scope(b"/webhooks/twilio/messaging"), {"host": "capture.example.com"})
    assert refused.value.status == 503
    assert "every webhook is refused" in s.describe()


def test_token_choice_by_account():
    s = Signatures(Settings(twilio_auth_token="primary", twilio_auth_token_secondary="second",
                            auth_tokens=f"{SUB}={SUB_TOKEN}"))
    assert [v.token for v in s.validators(SUB)] == [SUB_TOKEN.encode()]
    assert [v.token for v in s.validators(OTHER)] == [b"primary", b"second"]
    assert [v.token for v in s.validators(None)] == [b"primary", b"second"]


def test_json_without_body_hash_is_refused_even_when_the_url_is_signed():
    s = Signatures(Settings(twilio_auth_token=AUTH_TOKEN, public_url=None))
    url = "https://capture.example.com/webhooks/twilio/events"
    assert not s.check_json(url, "[]", sign(url), None)
    hashed = url + "?bodySHA256=" + hashlib.sha256(b"[]").hexdigest()
    assert s.check_json(hashed, "[]", sign(hashed, "[]"), None)
    assert not s.check_json(hashed, "[ ]", sign(hashed, "[ ]"), None)


def test_the_secondary_token_is_accepted_while_rotating(start_web, redis_client):
    new = "a" * 32
    web = start_web(TWILIO_AUTH_TOKEN_SECONDARY=new)
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 200
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100"),
                       token=new).status_code == 200
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100"),
                       token="b" * 32).status_code == 403
    assert len(log_entries(redis_client)) == 2


def test_subaccounts_use_their_own_token(start_web, redis_client):
    web = start_web(THREADLINE_AUTH_TOKENS=f"{SUB}={SUB_TOKEN}")
    sub_msg = inbound_message("+14155550123", "+14155550100", account=SUB)
    assert post_signed(web, MSG, sub_msg, token=SUB_TOKEN).status_code == 200
    # the parent account's token does not sign a subaccount's webhooks
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100", account=SUB),
                       token=AUTH_TOKEN).status_code == 403
    # an account not in the list keeps the account's own token
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100",
                                                 account=ACCOUNT_SID)).status_code == 200
    accounts = sorted(e.account for e in log_entries(redis_client))
    assert accounts == sorted([SUB, ACCOUNT_SID])


def test_a_url_signed_for_anyone_else_is_refused_without_public_url(start_web, redis_client):
    """The attack of issue 12 item 4: signed with the account's token for the attacker's own
    URL, the delivery names that host; without THREADLINE_PUBLIC_URL it used to pass."""
    web = start_web(THREADLINE_PUBLIC_URL=None)
    params = inbound_message("+14155550123", "+14155550100")
    url = "https://attacker.example" + MSG
    headers = {"X-Twilio-Signature": sign(url, params), "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "attacker.example", "Host": "attacker.example"}
    r = web.client.post(MSG, data=params, headers=headers)
    assert r.status_code == 503 and "THREADLINE_PUBLIC_URL" in r.text
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|message|unconfigured", 1) == 1
    assert "every webhook is refused" in web.proc.output()


def test_behind_a_tls_proxy_without_public_url(start_web, redis_client):
    web = start_web(THREADLINE_PUBLIC_URL=None, THREADLINE_TRUSTED_PROXIES="127.0.0.1")
    delivery = load_fixture("a_inbound_sms_reply_status")[0]
    # as the app sees it (http, an internal host): not what Twilio signed
    assert post_fixture(web, delivery).status_code == 403
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "capture.example.com"}
    assert post_fixture(web, delivery, headers=proxied).status_code == 200
    # a proxy that passes the Host through and only says the scheme
    status = load_fixture("a_inbound_sms_reply_status")[1]  # its URL carries ?tenant=t_001
    assert post_fixture(web, status, headers={"Host": "capture.example.com",
                                              "X-Forwarded-Proto": "https"}).status_code == 200
    assert post_fixture(web, status, headers={"Host": "capture.example.com"}).status_code == 403
    assert len(log_entries(redis_client)) == 2


def _inbound_event(event_id: str, account: str, message_sid: str) -> dict:
    """An Event Streams inbound-message CloudEvent of ``account``."""
    return {"specversion": "1.0", "type": "com.twilio.messaging.inbound-message.received",
            "id": event_id, "source": f"/2010-04-01/Accounts/{account}/Messages/{message_sid}.json",
            "data": {"messageSid": message_sid, "accountSid": account, "from": "+14155550123",
                     "to": "+14155550100", "body": "hi"}}


def test_event_streams_of_a_subaccount_use_its_token(start_web, redis_client):
    from tests.web_fixtures import new_sid, post_events

    web = start_web(THREADLINE_AUTH_TOKENS=f"{SUB}={SUB_TOKEN}")
    event = _inbound_event(new_sid("EZ"), SUB, "SM" + "1" * 32)
    assert post_events(web, [event], token=AUTH_TOKEN).status_code == 403
    assert post_events(web, [event], token=SUB_TOKEN).status_code == 200
    [entry] = log_entries(redis_client)
    assert entry.account == SUB and entry.params["CloudEventId"] == event["id"]


def test_a_subaccounts_token_vouches_for_its_own_events_only(start_web, redis_client):
    from tests.web_fixtures import new_sid, post_events

    web = start_web(THREADLINE_AUTH_TOKENS=f"{SUB}={SUB_TOKEN}")
    ours = _inbound_event(new_sid("EZ"), SUB, "SM" + "1" * 32)
    parents = _inbound_event(new_sid("EZ"), ACCOUNT_SID, "SM" + "2" * 32)
    # the subaccount's token, a later event claiming the parent account: the batch is forged
    assert post_events(web, [ours, parents], token=SUB_TOKEN).status_code == 403
    # and the reverse: the parent's token cannot carry a subaccount's event (it has its own token)
    assert post_events(web, [parents, ours], token=AUTH_TOKEN).status_code == 403
    assert log_entries(redis_client) == []
    assert wait_counter(redis_client, "webhooks|event_streams|forged", 2) == 2
    assert post_events(web, [ours], token=SUB_TOKEN).status_code == 200
    assert post_events(web, [parents], token=AUTH_TOKEN).status_code == 200
    assert sorted(e.account for e in log_entries(redis_client)) == sorted([SUB, ACCOUNT_SID])


def test_a_form_signed_by_a_subaccounts_token_must_name_that_subaccount(start_web, redis_client):
    web = start_web(THREADLINE_AUTH_TOKENS=f"{SUB}={SUB_TOKEN}")
    for account in (ACCOUNT_SID, OTHER, None):
        params = inbound_message("+14155550123", "+14155550100", account=account or SUB)
        if account is None:
            params.pop("AccountSid")
        assert post_signed(web, MSG, params, token=SUB_TOKEN).status_code == 403, account
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100", account=SUB),
                       token=SUB_TOKEN).status_code == 200
    assert [e.account for e in log_entries(redis_client)] == [SUB]


# --- the usual-case check is the SDK's signature, and SharedKey signing -------------------

from hypothesis import given  # noqa: E402
from hypothesis import settings as hsettings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@hsettings(max_examples=200, deadline=None)
@given(params=st.dictionaries(_text, _text, max_size=8), tail=_text)
def test_the_usual_case_accepts_exactly_the_sdk_signature(params, tail):
    # check_form joins the URL and the sorted pairs itself and has the SDK compute the HMAC of
    # that; it must accept what compute_signature(url, params) gives and nothing else.
    s = Signatures(Settings(twilio_auth_token=AUTH_TOKEN, public_url=None))
    url = "https://capture.example.com/webhooks/twilio/messaging" + ("?t=" + tail if tail else "")
    good = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    pairs = list(params.items())
    assert s.check_form(url, pairs, good, None)
    assert not s.check_form(url, pairs, RequestValidator("x" * 32).compute_signature(url, params), None)
    if pairs:
        name, value = pairs[0]
        assert not s.check_form(url, [(name, value + "x"), *pairs[1:]], good, None)


KEY_ID = "webhooks_sharedkey_0123456789abcdef"
SECRET = "shared-secret-" + "7" * 18


def _shared(url: str, params, algorithm: str, secret: str = SECRET, key: str = KEY_ID) -> dict:
    sig = RequestValidator(secret).compute_signature(url, params, algorithm)
    return {"X-Twilio-Signature": sig,
            "X-Twilio-Webhooks-Signature-Settings": f"key={key},algorithm={algorithm}"}


def test_shared_key_signatures_are_checked_with_the_keys_secret_and_algorithm(start_web, redis_client):
    from tests.web_fixtures import public_url

    web = start_web(THREADLINE_WEBHOOK_SHARED_KEYS=f"{KEY_ID}={SECRET},other_key=zzz")
    url = public_url(MSG)

    def post(params, headers):
        return post_signed(web, MSG, params, headers=headers)

    ok256 = inbound_message("+14155550123", "+14155550100")
    assert post(ok256, _shared(url, ok256, "HMAC_SHA256")).status_code == 200
    ok1 = inbound_message("+14155550123", "+14155550100")
    assert post(ok1, _shared(url, ok1, "HMAC_SHA1")).status_code == 200
    # the header names the key: the Auth Token's signature is not accepted in its place
    m = inbound_message("+14155550123", "+14155550100")
    token_sig = {"X-Twilio-Signature": sign(url, m),
                 "X-Twilio-Webhooks-Signature-Settings": f"key={KEY_ID},algorithm=HMAC_SHA1"}
    assert post(m, token_sig).status_code == 403
    # an unknown key id, another key's secret, an algorithm the SDK does not know
    assert post(m, _shared(url, m, "HMAC_SHA256", key="webhooks_sharedkey_unknown")).status_code == 403
    assert post(m, _shared(url, m, "HMAC_SHA256", key="other_key")).status_code == 403
    bad_alg = {**_shared(url, m, "HMAC_SHA256"),
               "X-Twilio-Webhooks-Signature-Settings": f"key={KEY_ID},algorithm=HMAC_MD5"}
    assert post(m, bad_alg).status_code == 403
    # a SHA-256 signature presented as SHA-1
    relabelled = {**_shared(url, m, "HMAC_SHA256"),
                  "X-Twilio-Webhooks-Signature-Settings": f"key={KEY_ID},algorithm=HMAC_SHA1"}
    assert post(m, relabelled).status_code == 403
    assert sorted(e.params["MessageSid"] for e in log_entries(redis_client)) == sorted(
        [ok256["MessageSid"], ok1["MessageSid"]])


def test_shared_key_event_streams_delivery(start_web, redis_client):
    import json

    from tests.web_fixtures import new_sid, public_url

    web = start_web(THREADLINE_WEBHOOK_SHARED_KEYS=f"{KEY_ID}={SECRET}")
    event = _inbound_event(new_sid("EZ"), ACCOUNT_SID, "SM" + "2" * 32)
    body = json.dumps([event], separators=(",", ":"))
    url = public_url("/webhooks/twilio/events", {"bodySHA256": hashlib.sha256(body.encode()).hexdigest()})
    headers = {"Content-Type": "application/json", **_shared(url, {}, "HMAC_SHA256")}
    target = url.removeprefix("https://capture.example.com")
    assert web.client.post(target, content=body.encode(), headers=headers).status_code == 200
    forged = {**headers, "X-Twilio-Signature": RequestValidator("nope").compute_signature(url, {}, "HMAC_SHA256")}
    assert web.client.post(target, content=body.encode(), headers=forged).status_code == 403
    [entry] = log_entries(redis_client)
    assert entry.params["MessageSid"] == "SM" + "2" * 32


@pytest.mark.parametrize("algorithm, hash_", [("HMAC_SHA1", hashlib.sha1), ("HMAC_SHA256", hashlib.sha256)])
@pytest.mark.parametrize("secret", [b"", b"k", b"0123456789abcdef0123456789abcdef", b"s" * 64, b"long" * 40])
def test_the_prepared_hmac_is_the_standard_one(algorithm, hash_, secret):
    """Keys shorter than, as long as and longer than the hash's block: the signature of the
    usual check equals hmac's, base64 as Twilio's header carries it."""
    from service.webhooks.signatures import _Keyed

    keyed = _Keyed(secret, algorithm)
    for message in (b"", b"https://capture.example.com/webhooks/twilio/messaging", "é".encode() * 500):
        assert keyed.sign(message) == base64.b64encode(hmac.new(secret, message, hash_).digest())
