"""An event left for retry (a lock or profile wait) is not overtaken by a newer event of the
same pair read in a later batch of the same drain: the rest of its lane waits for the next
drain, which re-reads the pending entries in log order. The drain runs in this process on a
real runtime (real Redis, the twin as v2); one transient failure is injected into the first
delivery, the way a grouping-key lock that stays held fails it."""
from __future__ import annotations

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS, SHARDS
from workers.conversations.locks import LockTimeout
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime

MESSAGING = "/webhooks/twilio/messaging"


def test_a_retried_event_is_not_overtaken_by_a_newer_one_of_its_pair(pipeline) -> None:
    pipeline.configure("main")
    first = inbound_message("+14155557301", OURS, "first")
    later = inbound_message("+14155557301", OURS, "later")
    for params in (first, later):
        assert post_signed(pipeline.web, MESSAGING, params).status_code == 200
    (shard,) = [n for n in range(SHARDS) if pipeline.redis.xlen(keys.events(n))]
    rt = Runtime(load_settings(**pipeline.env(THREADLINE_BATCH_SIZE="1")))
    real = rt.delivery.deliver
    failed: list[str] = []

    async def deliver(event, *args, **kw):
        if not failed:
            failed.append(event.resource_id)
            raise LockTimeout("grouping key stayed locked")
        return await real(event, *args, **kw)

    try:
        rt.delivery.deliver = deliver
        rt.run(rt.drainer.drain(shard))
        assert failed == [first["MessageSid"]]
        delivered = [m["resourceId"] for c in pipeline.twin.conversations() for m in c["communications"]]
        assert delivered == [], "the later event overtook the one left for retry"
        rt.run(rt.drainer.drain(shard))  # the next drain: both, in order
        (conv,) = pipeline.twin.conversations()
        assert [m["resourceId"] for m in conv["communications"]] == [first["MessageSid"], later["MessageSid"]]
    finally:
        rt.close()
