"""No orphan v2 conversation after an interrupted create (DESIGN §5).

A create is recorded (CREATING) before it is sent, tagged in v2's ``metadata`` with the record's
id. Whether the answer was lost to a SIGKILL of the worker or to a timeout, the engine looks for
the tagged conversation in v2 and adopts it instead of creating a second one.
Real processes: ``threadline web``, ``threadline worker``s, the twin holding creates' answers.
"""
from __future__ import annotations

from collections import Counter

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS

MESSAGING = "/webhooks/twilio/messaging"
CUSTOMERS = [f"+1415555{7100 + i}" for i in range(5)]


def _send_all(pipeline, text: str) -> list[str]:
    sids = []
    for c in CUSTOMERS:
        params = inbound_message(c, OURS, text)
        sids.append(params["MessageSid"])
        post_signed(pipeline.web, MESSAGING, params)
    return sids


def _one_conversation_per_customer(pipeline, sids: list[str]) -> None:
    convs = pipeline.twin.conversations()
    per_customer = Counter(p["addresses"][0]["address"] for c in convs for p in c["participants"]
                           if p["type"] == "CUSTOMER")
    assert per_customer == Counter({c: 1 for c in CUSTOMERS}), per_customer
    delivered = Counter(m["resourceId"] for c in convs for m in c["communications"])
    assert set(delivered) == set(sids) and set(delivered.values()) == {1}
    assert pipeline.dead_letters() == []


def test_sigkill_mid_create_then_restart_adopts_the_created_conversations(pipeline) -> None:
    pipeline.configure("main")
    pipeline.twin.set_faults(rate_timeout=1.0, hold_seconds=30, path=r"^/v2/Conversations$")
    sids = _send_all(pipeline, "first")
    first = pipeline.start_worker(THREADLINE_TWILIO_TIMEOUT="60")
    pipeline.twin.wait_for(lambda st: len(st["conversations"]) == len(CUSTOMERS), timeout=30)
    first.kill()  # every create went through in v2; no answer reached the worker
    pipeline.twin.clear_faults()
    pipeline.start_worker()
    pipeline.wait_idle(timeout=60)
    _one_conversation_per_customer(pipeline, sids)
    assert pipeline.counter("uncertain_creates|conversation_adopted") == len(CUSTOMERS)


def test_a_create_that_times_out_is_found_in_v2_not_sent_again(pipeline) -> None:
    pipeline.configure("main")
    pipeline.twin.set_faults(rate_timeout=1.0, hold_seconds=8, path=r"^/v2/Conversations$")
    pipeline.start_worker(THREADLINE_TWILIO_TIMEOUT="3")
    sids = _send_all(pipeline, "first")
    pipeline.twin.wait_for(lambda st: len(st["conversations"]) == len(CUSTOMERS), timeout=30)
    pipeline.twin.clear_faults()  # the creates' answers stay held past the worker's timeout
    pipeline.wait_idle(timeout=60)
    _one_conversation_per_customer(pipeline, sids)
    assert pipeline.counter("uncertain_creates|conversation_adopted") == len(CUSTOMERS)
