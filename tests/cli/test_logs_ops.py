"""Logs as an operator reads them: JSON lines, one correlation id from the webhook to the v2
calls it causes, and never a message body or a token — at DEBUG, on every path (accepted,
fetched body, forged, malformed, dead-lettered, admin and stats calls)."""
from __future__ import annotations

import json
import time
import uuid

import httpx

from tests.conftest import ADMIN_TOKEN, AUTH_TOKEN
from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS
from workers.foundations import keys

MESSAGING = "/webhooks/twilio/messaging"
STATUS = "/webhooks/twilio/messaging/status"


def _lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            out.append(json.loads(line))  # every line is one JSON object, or this fails
    return out


def test_one_cid_follows_a_delivery_and_no_body_or_token_is_logged(pipeline) -> None:
    pipeline.configure("main")
    web = pipeline.start_web(THREADLINE_LOG_LEVEL="DEBUG", THREADLINE_SHARDS="4", **pipeline.twin.env())
    secret = {name: f"{name}-{uuid.uuid4().hex}" for name in ("inbound", "fetched", "forged", "bad")}

    # 1. An inbound message: the web logs it into the event log under a new correlation id.
    params = inbound_message("+14155550142", OURS, secret["inbound"])
    assert post_signed(web, MESSAGING, params).status_code == 200
    (entry_id, fields), = [row for n in range(4) for row in pipeline.redis.xrange(keys.events(n))]
    cid = fields[b"c"].decode()
    assert len(cid) >= 8
    # 2. A status callback whose body the worker must fetch from the Messages API.
    out_sid = new_sid("SM")
    pipeline.twin.seed_message(OURS, "+14155550143", secret["fetched"], sid=out_sid)
    assert post_signed(web, STATUS, message_status(out_sid, "delivered", OURS, "+14155550143")).status_code == 200
    # 3. A forged delivery and a malformed one (refused, logged with a reason).
    forged = inbound_message("+14155550144", OURS, secret["forged"])
    r = web.post(MESSAGING, content=httpx.QueryParams(forged).__str__().encode(),
                 headers={"Content-Type": "application/x-www-form-urlencoded",
                          "X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"})
    assert r.status_code == 403
    bad = {k: v for k, v in inbound_message("+14155550145", OURS, secret["bad"]).items() if k != "From"}
    assert post_signed(web, MESSAGING, bad).status_code == 400
    # 4. A dead letter (a status callback for a message the API does not have).
    post_signed(web, STATUS, message_status(new_sid("SM"), "delivered", OURS, "+14155550146"))
    # 5. Admin and stats calls carry the admin token in a header.
    assert web.get("/api/v1/stats", headers=web.admin_headers()).status_code == 200
    assert web.get("/api/v1/dead-letters", headers=web.admin_headers()).status_code == 200

    worker = pipeline.start_worker(THREADLINE_LOG_LEVEL="DEBUG")
    pipeline.wait_idle()
    time.sleep(1.2)  # the v2 client's stats and logs flush about once a second

    worker_lines = _lines(worker.output())
    web_lines = _lines(web.proc.output())
    mine = [line for line in worker_lines if line.get("cid") == cid]
    routes = {line.get("route") for line in mine if line.get("logger") == "threadline.v2"}
    assert {"POST /v2/Conversations", "POST /v2/Conversations/{id}/Communications"} <= routes, mine
    assert any(line.get("msg") == "conversation created" for line in mine)
    # Every v2 call is logged under the id of the delivery that caused it; the status
    # callback's calls (Messages fetch, communication) under its own.
    v2_lines = [line for line in worker_lines if line.get("logger") == "threadline.v2"]
    assert v2_lines and all(line.get("cid") for line in v2_lines)
    assert len({line["cid"] for line in v2_lines}) >= 2
    refusals = [line for line in web_lines if line.get("msg") == "webhook refused"]
    assert len(refusals) == 2 and all(line.get("cid") and line["cid"] != cid for line in refusals)

    everything = web.proc.output() + worker.output() + pipeline.web.proc.output()
    for name, value in {**secret, "auth token": AUTH_TOKEN, "admin token": ADMIN_TOKEN}.items():
        assert value not in everything, f"the {name} appears in the logs"
