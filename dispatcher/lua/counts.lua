-- One shard's counts for one batch: {total, then one count per status index} (read only).
-- KEYS[1]  the batch index   KEYS[2..] the status indexes   ARGV[1] retention floor (ms)
-- Members older than the floor are not counted, trimmed or not yet.
local floor = ARGV[1]
local counts = {redis.call('ZCOUNT', KEYS[1], floor, '+inf')}
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. floor)
for i = 2, #KEYS do
  local n = redis.call('ZINTERCARD', 2, KEYS[1], KEYS[i])
  for _, id in ipairs(stale) do
    if redis.call('ZSCORE', KEYS[i], id) then n = n - 1 end
  end
  counts[i] = n
end
return counts
