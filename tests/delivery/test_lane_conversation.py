"""A lane keeps the conversation it created even when the event that created it is
dead-lettered: the lane's next event posts into it instead of creating a second one."""
from __future__ import annotations

import random
import time

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS

MESSAGING = "/webhooks/twilio/messaging"


def _seed_500_then_ok() -> int:
    """A fault seed whose first draw at rate_500=0.5 is a 500 and whose second is not."""
    for seed in range(1000):
        rnd = random.Random(seed)
        if rnd.random() < 0.5 and rnd.random() >= 0.5:
            return seed
    raise AssertionError("no such seed")


def test_dead_lettered_post_after_a_create_does_not_orphan_the_conversation(pipeline):
    """Two messages of one customer in one drain; the first one's communication is refused for
    good (one attempt, a 500), after its conversation was created. The second lands in that
    same conversation: one conversation in v2, one record, no orphan."""
    pipeline.configure("main")
    pipeline.twin.set_faults(rate_500=0.5, seed=_seed_500_then_ok(), path="/Communications$")
    customer = "+14155556001"
    first, second = (inbound_message(customer, OURS, f"body-{n}") for n in range(2))
    for params in (first, second):
        assert post_signed(pipeline.web, MESSAGING, params).status_code == 200
    pipeline.start_worker(THREADLINE_MAX_ATTEMPTS="1")
    pipeline.wait_idle()
    assert [d["reason"] for d in pipeline.dead_letters()] == ["retries_exhausted"]
    (conv,) = pipeline.twin.conversations()
    assert [c["resourceId"] for c in conv["communications"]] == [second["MessageSid"]]
    records = [k for k in pipeline.redis.scan_iter("tl:conv:*")
               if pipeline.redis.type(k) == b"hash" and pipeline.redis.hget(k, "s")]
    assert len(records) == 1, records


def test_a_conversation_whose_only_event_is_dead_lettered_still_has_its_lifecycle_timer(pipeline):
    """The soak found an empty conversation ACTIVE long past its timeouts: the event that made it
    was dead-lettered, and the timer was armed only after a post. The create arms it now, so the
    lifecycle closes such a conversation like any other."""
    from workers.foundations import keys

    pipeline.configure("main")
    pipeline.twin.set_faults(rate_500=1.0, path="/Communications$")
    before = time.time()
    assert post_signed(pipeline.web, MESSAGING, inbound_message("+14155556002", OURS, "x")).status_code == 200
    pipeline.start_worker(THREADLINE_MAX_ATTEMPTS="1")
    pipeline.wait_idle()
    assert [d["reason"] for d in pipeline.dead_letters()] == ["retries_exhausted"]
    (conv,) = pipeline.twin.conversations()
    assert conv["communications"] == [] and conv["status"] == "ACTIVE"
    (record,) = [k for k in pipeline.redis.scan_iter("tl:conv:*")
                 if pipeline.redis.type(k) == b"hash" and pipeline.redis.hget(k, "s") == b"ACTIVE"]
    due = pipeline.redis.zscore(keys.TIMERS, record.decode().split(":", 2)[2])
    assert due is not None and before < due <= time.time() + 3 * 86400  # inactive/closed timeout ahead
