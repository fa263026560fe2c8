-- Append a batch of webhook deliveries to the event log, in one round trip (DESIGN §1).
-- A batch of one is the single append; a batch of many is what concurrent webhooks share
-- (group commit), the spool replay and an Event Streams delivery. Deliveries are taken in
-- order, so two copies of one delivery in the same batch store one entry.
--
-- KEYS[1] tl:stats:total            KEYS[2] this minute's stats hash
-- then three keys per delivery:     dedupe marker (tl:dedupe:<event key>),
--                                   the shard's stream (tl:events:<n>), its drain flag (tl:drain:<n>)
-- ARGV[1] consumer group name       ARGV[2] seconds the minute hash lives
-- ARGV[3] drain flag value          ARGV[4] drain flag TTL in seconds
-- then per delivery: dedupe window in seconds (0 = no dedupe: a dead letter's replay was
-- taken once already), counter field when stored, counter field when a duplicate, the number
-- of entry items that follow, and the entry's field/value items.
--
-- Returns one reply per delivery, in order:
--   {1, entry id, 1 if the drain flag was newly set else 0} when stored,
--   {0, id of the entry it repeats, 0} for a duplicate inside the window.
-- Counters are summed over the batch and written once per field at the end.
local counts = {}
local function count(field)
  counts[field] = (counts[field] or 0) + 1
end

local flag_tried = {}
local out = {}
local a, k = 5, 2
while a <= #ARGV do
  local window = tonumber(ARGV[a])
  local stored_field, dup_field, n = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local first = a + 4
  local dedupe, stream, flag = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  a, k = first + n, k + 3

  local seen = false
  if window > 0 then seen = redis.call('GET', dedupe) end
  if seen then
    count(dup_field)
    out[#out + 1] = {0, seen, 0}
  else
    -- The group must exist before the first entry, or a drain reading from '>' would skip
    -- it. XADD NOMKSTREAM adds nothing to an absent stream: then the group is created at
    -- id 0 (with the stream) and the entry added. The stream exists almost always, so this
    -- costs no command beyond the XADD (an EXISTS first would cost one per stream per call).
    local id = redis.call('XADD', stream, 'NOMKSTREAM', '*', unpack(ARGV, first, first + n - 1))
    if not id then
      redis.pcall('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
      id = redis.call('XADD', stream, '*', unpack(ARGV, first, first + n - 1))
    end
    if window > 0 then
      redis.call('SET', dedupe, id, 'EX', window)
    end
    count(stored_field)
    -- Only the first delivery of a shard in the batch can find the flag newly set.
    local flag_new = 0
    if not flag_tried[flag] then
      flag_tried[flag] = true
      if redis.call('SET', flag, ARGV[3], 'NX', 'EX', ARGV[4]) then flag_new = 1 end
    end
    out[#out + 1] = {1, id, flag_new}
  end
end

-- The minute hash gets its TTL when one of its fields is new: every writer of a minute hash
-- sets the TTL in the same call as its HINCRBYs, so a field that was there already came with
-- one (set at most a minute ago, which the TTL's margin past the retention covers); an
-- EXPIRE on every call would cost a command per call for nothing.
local new_field = false
for field, n in pairs(counts) do
  redis.call('HINCRBY', KEYS[1], field, n)
  if redis.call('HINCRBY', KEYS[2], field, n) == n then new_field = true end
end
if new_field then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return out
