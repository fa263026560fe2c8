"""The drain's fenced commit: one batch's acknowledgements, deletes, dead letters and counters
in one pipeline, applied only if the drain still holds the shard's lease.

Why fenced: a drain that stalled past its lease must not acknowledge what the next holder is
delivering (:mod:`workers.delivery.leases`); the check and the acks are one Lua step.
"""
from __future__ import annotations

from workers import stats
from workers.eventlog.deadletters import letter_fields
from workers.foundations import keys
from workers.foundations.log import get_logger

logger = get_logger("threadline.drain")

# Fenced commit: only the lease holder's token may XACK (and XDEL: the log keeps what is not
# done) and write the batch's dead letters — a fenced-off drain writes none of them, so the
# next holder's verdict on those entries is the only one.
# KEYS: lease, stream, dead letters. ARGV: token, group, #acks, ack ids…, then per dead letter:
# its entry id (acked too), #fields, field, value, …
# The acks go as one XACK and one XDEL per 500 ids, not one of each per entry: Redis counts
# every call, and this is most of a batch's commands otherwise.
_ACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = 0
local stop = 3 + tonumber(ARGV[3])
for j = 4, stop, 500 do
  local last = math.min(j + 499, stop)
  n = n + redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, j, last))
  redis.call('XDEL', KEYS[2], unpack(ARGV, j, last))
end
local i = stop + 1
while i <= #ARGV do
  n = n + redis.call('XACK', KEYS[2], ARGV[2], ARGV[i])
  redis.call('XDEL', KEYS[2], ARGV[i])
  local nf = tonumber(ARGV[i + 1])
  redis.call('XADD', KEYS[3], '*', unpack(ARGV, i + 2, i + 1 + nf))
  i = i + 2 + nf
end
return n
"""


class FencedCommit:
    def __init__(self, redis, settings) -> None:
        self.redis, self.settings = redis, settings
        self._ack = redis.register_script(_ACK)

    async def commit(self, shard: int, token: str, batch, report, read: int) -> bool:
        """Commit a batch (``batch.Batch``) into its ``batch.Report``; False when the lease
        passed to another drain (nothing was acknowledged: the caller stops)."""
        stream = keys.events(shard)
        pipe = self.redis.pipeline(transaction=True)
        done = batch.acks + [d[0] for d in batch.dead]
        letters: list[str] = []
        for eid, entry, reason, attempts, error in batch.dead:
            fields = letter_fields(entry, reason, attempts, error, eid, source_stream=stream)
            letters += [eid, str(2 * len(fields)), *(x for kv in fields.items() for x in kv)]
            batch.counts[stats.field("dead_letters", reason)] += 1
            logger.warning("dead-lettered", extra={"entry": eid, "reason": reason})
        stats.add(pipe, dict(batch.counts), retention_minutes=self.settings.stats_retention_minutes)
        if done:
            await self._ack(keys=[keys.shard_lease(shard), stream, keys.DEAD_LETTERS],
                            args=[token, keys.CONSUMER_GROUP, len(batch.acks), *batch.acks, *letters],
                            client=pipe)
        results = await pipe.execute()
        report.read += read
        report.acked += len(batch.acks)
        report.dead += len(batch.dead)
        report.retry += len(batch.retry)
        report.counts.update(batch.counts)
        if done and results[-1] == -1:
            logger.warning("shard lease lost mid-drain; stopping", extra={"shard": shard})
            return False
        return True
