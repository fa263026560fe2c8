"""Failures and bad input through the whole path: a flaky Twilio, refusals that dead-letter an
event until an operator fixes the cause and replays it, and input that must never block a shard."""
from __future__ import annotations

import json
import subprocess

from tests.procs import THREADLINE
from tests.web_fixtures import inbound_message, message_status, new_sid, post_signed
from tests.worker_fixtures import OURS, SHARDS
from workers.foundations import keys
from workers.foundations.addresses import shard_of_pair

MESSAGING = "/webhooks/twilio/messaging"
STATUS = "/webhooks/twilio/messaging/status"


def _replay(pipeline, dead_id: str) -> None:
    out = subprocess.run([THREADLINE, "dlq", "replay", dead_id], env={**pipeline.env()},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_flaky_twin_everything_delivered_in_order(pipeline):
    """30% 500s and 10% 429s: every message delivered, in log order within each conversation."""
    pipeline.configure("main")
    pipeline.twin.set_faults(rate_500=0.3, rate_429=0.1, retry_after=0, seed=11)
    customers = [f"+1415555{3000 + i:04d}" for i in range(6)]
    sent: dict[str, list[str]] = {c: [] for c in customers}
    for n in range(8):
        for c in customers:
            params = inbound_message(c, OURS, f"{c} #{n}")
            sent[c].append(params["MessageSid"])
            assert post_signed(pipeline.web, MESSAGING, params).status_code == 200
    pipeline.start_worker(THREADLINE_MAX_ATTEMPTS="12")
    pipeline.wait_idle(timeout=60)
    state = pipeline.twin.state()
    assert pipeline.dead_letters() == []
    assert len(state["conversations"]) == len(customers)
    for conv in state["conversations"]:
        customer = next(p for p in conv["participants"] if p["type"] == "CUSTOMER")["addresses"][0]["address"]
        assert [c["resourceId"] for c in conv["communications"]] == sent[customer]
    counts = pipeline.twin.counts()["routes"]
    assert counts["POST /v2/Conversations/{ConversationId}/Communications"].get("500", 0) > 0  # faults happened


def test_refusal_dead_letters_then_replay_delivers(pipeline):
    """A status callback for a message the Messages API does not have (404) → dead letter with
    its reason; once the message exists, ``threadline dlq replay`` delivers it."""
    pipeline.configure("main")
    pipeline.start_worker()
    sid = new_sid("SM")
    post_signed(pipeline.web, STATUS, message_status(sid, "delivered", OURS, "+14155550177"))
    pipeline.wait_idle()
    dead = pipeline.dead_letters()
    assert [d["reason"] for d in dead] == ["message_not_found"]
    assert "Hello there" not in json.dumps(dead)
    # nothing made in v2 for it: an empty conversation would stay open with no timer (the soak
    # found one ACTIVE long past its timeouts)
    assert pipeline.twin.conversations() == []
    pipeline.twin.seed_message(OURS, "+14155550177", "Hello there", sid=sid)  # the cause, fixed
    dead_id = pipeline.redis.xrange(keys.DEAD_LETTERS)[0][0].decode()
    _replay(pipeline, dead_id)
    pipeline.wait_idle()
    comms = pipeline.twin.conversations()[0]["communications"]
    assert [(c["resourceId"], c["content"]["text"], c["recipients"][0]["deliveryStatus"])
            for c in comms] == [(sid, "Hello there", "DELIVERED")]
    assert pipeline.dead_letters() == []


def test_unbound_configuration_dead_letters_until_bound(pipeline):
    """v2 requires a configurationId: an unbound configuration dead-letters with a pointer to
    ``configs sync``; bound and replayed, the event lands."""
    cfg = pipeline.configure("loose", bound=False)
    pipeline.start_worker()
    post_signed(pipeline.web, MESSAGING, inbound_message("+14155550166", OURS, "hi"))
    pipeline.wait_idle()
    (dead,) = pipeline.dead_letters()
    assert dead["reason"] == "configuration_unbound" and "configs sync" in dead["error"]
    pipeline.configure("loose", bound=True)  # what `configs sync` records
    _replay(pipeline, pipeline.redis.xrange(keys.DEAD_LETTERS)[0][0].decode())
    pipeline.wait_idle()
    (conv,) = pipeline.twin.conversations()
    assert len(conv["communications"]) == 1 and cfg["id"] == conv["metadata"]["threadlineConfiguration"]


def test_bad_input_never_blocks_a_shard(pipeline):
    """Unknown channels, addresses that normalize to nothing, undecodable log entries and events
    whose configuration was deleted are dead-lettered or counted; good events behind them land."""
    from workers.capture.store import ConfigStore

    pipeline.configure("main")
    pipeline.configure("doomed", ours="+14155550199")
    customer = "+14155550155"
    shard = shard_of_pair(customer, OURS, SHARDS)
    # An undecodable entry written straight into the shard the good events go to.
    pipeline.redis.xadd(keys.events(shard), {"k": "message", "t": "x", "p": "{not json"})
    post_signed(pipeline.web, MESSAGING, inbound_message("messenger:12345", OURS, "hi"))
    post_signed(pipeline.web, MESSAGING, inbound_message("whatsapp:", f"whatsapp:{OURS}", "hi"))
    post_signed(pipeline.web, MESSAGING, inbound_message(customer, "+14155550199", "for doomed"))
    ConfigStore(pipeline.redis).delete("doomed")  # deleted while its event waits
    good = inbound_message(customer, OURS, "still delivered")
    post_signed(pipeline.web, MESSAGING, good)
    pipeline.start_worker()
    pipeline.wait_idle()
    reasons = sorted(d["reason"] for d in pipeline.dead_letters())
    assert reasons == ["bad_address", "malformed_entry", "unknown_channel"]
    assert pipeline.counter("events|-|SMS|ignored") == 1  # the deleted configuration's event
    (conv,) = pipeline.twin.conversations()
    assert [c["resourceId"] for c in conv["communications"]] == [good["MessageSid"]]
