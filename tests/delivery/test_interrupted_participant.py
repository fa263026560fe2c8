"""An interrupted participant create is resolved the way an interrupted conversation create is:
the participant v2 made is found and adopted, never made twice, and the event is delivered.

v2 refuses a second participant with the same address in a conversation (409 naming the holder,
``X-Conflicting-Resource-Id``; the twin does the same). A participant create whose answer was
lost (held past the worker's Twilio timeout, so the client sent it again; or a worker killed
before it recorded the answer) met that 409, and the event — and every later one of that
address — was dead-lettered. Real processes: web, a worker, the twin holding the first
participant create's answer; GROUP_BY_PROFILE with two numbers of one customer, so the second
number joins the conversation as a new participant.
"""
from __future__ import annotations

import random

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS

MESSAGING = "/webhooks/twilio/messaging"
FIRST, SECOND = "+15551230001", "+15559870001"


def _seed_held_then_answered() -> int:
    """A fault seed whose first draw at rate_timeout=0.5 holds the answer and whose second does not."""
    for seed in range(1000):
        rnd = random.Random(seed)
        if rnd.random() < 0.5 and rnd.random() >= 0.5:
            return seed
    raise AssertionError("no such seed")


def test_a_participant_create_sent_again_after_a_timeout_adopts_the_first(pipeline) -> None:
    p = pipeline
    p.configure("kiran", grouping="GROUP_BY_PROFILE", channels=("SMS",))
    r = p.web.post("/api/v1/profiles", json={"addresses": [FIRST, SECOND]}, headers=p.web.admin_headers())
    assert r.status_code == 201, r.text
    p.start_worker(THREADLINE_TWILIO_TIMEOUT="1.5")
    first = inbound_message(FIRST, OURS, "from the first number")
    assert post_signed(p.web, MESSAGING, first).status_code == 200
    p.wait_idle()
    (conv,) = p.twin.conversations()
    assert len(conv["participants"]) == 2

    # the second number's participant create goes through in v2; its answer comes too late
    p.twin.set_faults(rate_timeout=0.5, hold_seconds=4, seed=_seed_held_then_answered(),
                      path=r"/Participants$")
    second = inbound_message(SECOND, OURS, "from the second number")
    assert post_signed(p.web, MESSAGING, second).status_code == 200
    p.wait_idle(timeout=30)
    assert p.dead_letters() == []
    # the create was sent again after the timeout and met the participant the first one made
    assert p.twin.count("POST /v2/Conversations/{ConversationId}/Participants", 409) == 1
    p.twin.clear_faults()

    (conv,) = p.twin.conversations()
    holders = [pt for pt in conv["participants"]
               if any(a["address"] == SECOND for a in pt["addresses"])]
    assert len(holders) == 1 and len(conv["participants"]) == 3
    comms = [(c["resourceId"], c["author"]["address"], c["author"]["participantId"])
             for c in conv["communications"]]
    assert comms == [(first["MessageSid"], FIRST, comms[0][2]),
                     (second["MessageSid"], SECOND, holders[0]["id"])]
