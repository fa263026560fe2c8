"""A status callback of a message whose conversation has closed since starts no new conversation.

Found by the soak (bench/soak.py): with short timeouts, late or redelivered status callbacks of
messages already in a conversation that had CLOSED since were posted into a brand-new
conversation, so the same resourceId stood in two conversations. A status callback is not new
traffic; v2 refuses writes to a CLOSED conversation anyway. It is counted
(``communications|after_close``) and goes nowhere; a new message still starts a new conversation.
"""
from __future__ import annotations

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS

CUSTOMER = "+14155553377"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_a_late_status_callback_after_close_starts_no_conversation(pipeline) -> None:
    p = pipeline
    p.configure("late")
    p.start_worker()
    reply = new_sid("SM")
    p.twin.seed_message(OURS, CUSTOMER, "Your order ships today", sid=reply)
    assert post_signed(p.web, "/webhooks/twilio/messaging", inbound_message(CUSTOMER, OURS)).status_code == 200
    assert post_signed(p.web, "/webhooks/twilio/messaging/status",
                       message_status(reply, "sent", OURS, CUSTOMER)).status_code == 200
    p.twin.wait_for(lambda st: sum(len(c["communications"]) for c in st["conversations"]) == 2, 20)
    p.wait_idle()
    (conv,) = httpx.get(f"{p.web.url}/api/v1/conversations", headers=AUTH).json()["conversations"]
    r = httpx.patch(f"{p.web.url}/api/v1/conversations/{conv['id']}", headers=AUTH,
                    json={"status": "CLOSED"})
    assert r.status_code == 200, r.text

    # the reply's late "delivered" arrives after the close
    assert post_signed(p.web, "/webhooks/twilio/messaging/status",
                       message_status(reply, "delivered", OURS, CUSTOMER)).status_code == 200
    p.wait_idle()
    assert p.counter_reaches("communications|after_close", 1) == 1
    convs = p.twin.conversations()
    assert len(convs) == 1 and convs[0]["status"] == "CLOSED"
    rids = [c["resourceId"] for c in convs[0]["communications"]]
    assert rids.count(reply) == 1

    # new traffic after CLOSED still starts a new conversation
    assert post_signed(p.web, "/webhooks/twilio/messaging", inbound_message(CUSTOMER, OURS)).status_code == 200
    p.twin.wait_for(lambda st: len(st["conversations"]) == 2, 20)
