"""A drain fenced off (its lease passed to another holder) writes nothing of its batch: no
acknowledgement and no dead letter — the next holder's verdict on those entries is the only one.
Real Redis; the drain's own commit, called with a stale and then the current token."""
from __future__ import annotations

from tests.web_fixtures import inbound_message
from workers.delivery.batch import Batch, Report
from workers.eventlog.entries import MESSAGE, LogEntry
from workers.foundations import keys
from workers.foundations.settings import load_settings
from workers.jobs import Runtime


def test_a_fenced_off_drain_writes_no_dead_letter(redis_client, redis_url) -> None:
    rt = Runtime(load_settings(REDIS_URL=redis_url, THREADLINE_SHARDS=4))
    try:
        params = inbound_message("+14155550100", "+14155550199", "x")
        entry = LogEntry(MESSAGE, 1_700_000_000_000, params["AccountSid"], params, {}, "")
        stream = keys.events(1)
        redis_client.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
        eid = redis_client.xadd(stream, entry.to_fields()).decode()
        redis_client.xreadgroup(keys.CONSUMER_GROUP, keys.consumer(1), {stream: ">"})
        redis_client.set(keys.shard_lease(1), "8")  # the lease is another holder's now

        def commit(token: str) -> bool:
            batch = Batch()
            batch.dead.append((eid, entry, "v2_rejected", 1, "400 code 20001"))
            return rt.run(rt.drainer._commit(1, token, batch, Report(1), 1))

        assert commit("7") is False
        assert redis_client.xlen(keys.DEAD_LETTERS) == 0 and redis_client.xlen(stream) == 1
        assert commit("8") is True
        [(_, letter)] = redis_client.xrange(keys.DEAD_LETTERS)
        assert letter[b"reason"] == b"v2_rejected" and letter[b"source_id"] == eid.encode()
        assert redis_client.xlen(stream) == 0
    finally:
        rt.close()
