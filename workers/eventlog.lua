-- Append one webhook delivery to its shard of the event log, in one round trip (DESIGN §1).
--
-- KEYS[1] dedupe marker (tl:dedupe:<event key>)   KEYS[2] the shard's stream (tl:events:<n>)
-- KEYS[3] tl:stats:total                           KEYS[4] this minute's stats hash
-- KEYS[5] the shard's drain flag (tl:drain:<n>)
-- ARGV[1] dedupe window in seconds; 0 = no dedupe (a dead letter's replay was taken once already)
-- ARGV[2] consumer group name          ARGV[3] seconds the minute hash lives
-- ARGV[4] counter field when stored    ARGV[5] counter field when a duplicate
-- ARGV[6] drain flag value             ARGV[7] drain flag TTL in seconds
-- ARGV[8..] the entry's field/value pairs
--
-- Returns {1, entry id, 1 if the drain flag was newly set else 0} when stored,
--         {0, id of the entry it repeats, 0} for a duplicate inside the window.
local window = tonumber(ARGV[1])

local function count(field)
  redis.call('HINCRBY', KEYS[3], field, 1)
  redis.call('HINCRBY', KEYS[4], field, 1)
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end

if window > 0 then
  local seen = redis.call('GET', KEYS[1])
  if seen then
    count(ARGV[5])
    return {0, seen, 0}
  end
end

-- The group must exist before the first entry, or a drain reading from '>' would skip it.
-- Creating it at id 0 whenever the stream is absent costs one EXISTS per append.
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[2], '0', 'MKSTREAM')
end

local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))

if window > 0 then
  redis.call('SET', KEYS[1], id, 'EX', window)
end
count(ARGV[4])

local flag_new = 0
if redis.call('SET', KEYS[5], ARGV[6], 'NX', 'EX', ARGV[7]) then flag_new = 1 end
return {1, id, flag_new}
