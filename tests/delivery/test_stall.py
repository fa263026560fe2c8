"""No shard waits (DESIGN §5): a drain hung on a request that never answers is fenced off, and
another drain takes its shard within THREADLINE_DRAIN_STALL_SECONDS + the lease's TTL.

Real processes: ``threadline web``, two ``threadline worker``s, the twin holding a create's
answer for a minute (past nothing: the workers' Twilio timeout is set longer still).
"""
from __future__ import annotations

import time

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS
from workers.delivery.leases import LEASE_TTL_MS

MESSAGING = "/webhooks/twilio/messaging"
STALL_S = 2.0


def _delivered(twin, sids: set[str]) -> set[str]:
    return {c["resourceId"] for conv in twin.state()["conversations"] for c in conv["communications"]
            if c["resourceId"] in sids}


def test_a_hung_drain_is_fenced_off_and_its_shard_drained_by_another(pipeline) -> None:
    pipeline.configure("main")
    env = {"THREADLINE_TWILIO_TIMEOUT": "60", "THREADLINE_DRAIN_STALL_SECONDS": str(STALL_S)}
    pipeline.twin.set_faults(rate_timeout=1.0, hold_seconds=60, path=r"^/v2/Conversations$")
    first = inbound_message("+14155557001", OURS, "held")
    post_signed(pipeline.web, MESSAGING, first)
    pipeline.start_worker(**env)
    pipeline.twin.wait_for(lambda st: len(st["conversations"]) == 1, timeout=20)
    held_at = time.monotonic()  # the create went through; its answer is held for 60 s
    pipeline.twin.clear_faults()
    pipeline.start_worker(**env)
    later = inbound_message("+14155557001", OURS, "after the hang")
    post_signed(pipeline.web, MESSAGING, later)
    sids = {first["MessageSid"], later["MessageSid"]}
    bound = STALL_S + LEASE_TTL_MS / 1000 + 5  # stall, the lease's TTL at worst, and slack
    while _delivered(pipeline.twin, sids) != sids:
        assert time.monotonic() - held_at < bound, (
            "the shard stayed with its hung drain\n" + "\n".join(w.output()[-2000:] for w in pipeline.workers))
        time.sleep(0.1)
    pipeline.wait_idle(timeout=10)
    assert pipeline.dead_letters() == []
