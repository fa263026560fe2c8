"""Every recorded Twilio delivery is accepted and logged once; a changed byte is refused.

The server runs as ``threadline web`` over real HTTP with THREADLINE_PUBLIC_URL set to the
public URL the fixtures were signed for, on this run's Redis database.
"""
from __future__ import annotations

import json
import time

from tests.web_fixtures import all_fixture_deliveries, counters, log_entries, post_fixture, wait_counter

DELIVERIES = all_fixture_deliveries()


def test_every_fixture_delivery_is_accepted_and_logged_once(web, redis_client):
    for name, i, delivery in DELIVERIES:
        r = post_fixture(web, delivery)
        assert r.status_code == 200, (name, i, r.text)
        assert r.text == "<Response/>"
        assert r.headers["content-type"].startswith("text/xml")
    # and again: every one is a duplicate now
    for name, i, delivery in DELIVERIES:
        assert post_fixture(web, delivery).status_code == 200, (name, i)
    entries = log_entries(redis_client)
    form = [d for _, _, d in DELIVERIES if d.get("body") is None]
    events = sum(len(json.loads(d["body"])) for _, _, d in DELIVERIES if d.get("body"))
    assert len(entries) == len(form) + events
    c = counters(redis_client)
    assert sum(v for k, v in c.items() if k.endswith("|accepted")) == len(entries)
    assert sum(v for k, v in c.items() if k.endswith("|duplicate")) == len(entries)
    # nothing a worker could not recompute: kind, account, every raw parameter, the query
    by_sid = {(e.kind, e.params.get("MessageSid") or e.params.get("CallSid"), e.params.get(
        "MessageStatus") or e.params.get("CallStatus") or e.params.get("TranscriptionEvent"),
        e.params.get("SequenceId")): e for e in entries}
    first = DELIVERIES[0][2]
    inbound = by_sid[("message", first["params"]["MessageSid"], None, None)]
    assert inbound.params == first["params"]
    assert inbound.account == first["params"]["AccountSid"]
    assert inbound.query == {}
    status = [e for e in entries if e.kind == "message_status" and e.query]
    assert status and all(e.query == {"tenant": "t_001"} for e in status)
    transcriptions = [e for e in entries if e.kind == "transcription"]
    assert transcriptions and all(e.query == {"call": "inbound-demo"} for e in transcriptions)


def _flip(text: str) -> str:
    """The same string with its last character changed (one byte, still printable)."""
    if not text:
        return "x"
    last = text[-1]
    return text[:-1] + ("y" if last != "y" else "z")


def _tampered(delivery: dict) -> list[tuple[str, dict]]:
    """Copies of a delivery with one byte changed each, the signature left as it was."""
    out: list[tuple[str, dict]] = []
    url = delivery["url"]
    if delivery.get("body") is not None:
        out.append(("body", {**delivery, "body": _flip(delivery["body"][:-1]) + "]"}))
        head, _, sha = url.partition("bodySHA256=")
        out.append(("bodySHA256", {**delivery, "url": head + "bodySHA256=" + _flip(sha)}))
    elif delivery["method"] == "GET":  # the parameters are the signed query
        head, _, query = url.partition("?")
        pairs = query.split("&")
        for k, pair in enumerate(pairs):
            changed = pairs[:k] + [_flip(pair)] + pairs[k + 1:]
            out.append((f"query pair {k}", {**delivery, "url": head + "?" + "&".join(changed)}))
    else:
        for name, value in (delivery.get("params") or {}).items():
            params = dict(delivery["params"])
            params[name] = _flip(value)
            out.append((f"value of {name}", {**delivery, "params": params}))
        if delivery.get("params"):
            params = dict(delivery["params"])
            name = sorted(params)[0]
            params[_flip(name)] = params.pop(name)
            out.append((f"name {name}", {**delivery, "params": params}))
    path_url = url.replace("/webhooks/twilio/", "/webhooks/twilio/", 1)
    scheme_host, _, rest = path_url.partition("/webhooks/")
    path, q, query = rest.partition("?")
    if q and delivery["method"] == "GET":
        out.append(("query", {**delivery, "url": f"{scheme_host}/webhooks/{path}?{_flip(query)}"}))
    elif q and delivery.get("body") is None:
        out.append(("query", {**delivery, "url": f"{scheme_host}/webhooks/{path}?{_flip(query)}"}))
    else:
        out.append(("query added", {**delivery, "url": url + ("&" if q else "?") + "x=1"}))
    out.append(("trailing slash", {**delivery, "url": f"{scheme_host}/webhooks/{path}/" + (f"?{query}" if q else "")}))
    sig = delivery["headers"]["X-Twilio-Signature"]
    out.append(("signature", {**delivery, "headers": {**delivery["headers"], "X-Twilio-Signature": _flip(sig[:-1]) + "="}}))
    return out


def test_any_changed_byte_is_refused_and_nothing_is_written(web, redis_client):
    sent = 0
    for name, i, delivery in DELIVERIES:
        for what, bad in _tampered(delivery):
            r = post_fixture(web, bad)
            assert r.status_code in (403, 404), (name, i, what, r.status_code, r.text)
            sent += 1
    assert log_entries(redis_client) == []
    assert sent > 300
    total = wait_counter(redis_client, "webhooks|message|forged", 1)
    assert total >= 1
    c = counters(redis_client)
    refused = sum(v for k, v in c.items() if k.endswith(("|forged", "|not_found")))
    deadline = time.monotonic() + 5
    while refused < sent and time.monotonic() < deadline:
        time.sleep(0.1)
        c = counters(redis_client)
        refused = sum(v for k, v in c.items() if k.endswith(("|forged", "|not_found")))
    assert refused == sent
    assert not any(k.endswith(("|accepted", "|duplicate")) for k in c)


def test_a_token_other_than_the_accounts_is_refused(web, redis_client):
    from tests.web_fixtures import inbound_message, post_signed

    params = inbound_message("+14155550123", "+14155550100")
    assert post_signed(web, "/webhooks/twilio/messaging", params,
                       token="f" * 32).status_code == 403
    assert post_signed(web, "/webhooks/twilio/messaging", params).status_code == 200
    assert len(log_entries(redis_client)) == 1
