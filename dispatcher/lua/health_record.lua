-- Count a batch of send outcomes, folded per provider in Python (dispatcher.health.tally), into
-- each provider's sliding window, peak-EWMA latency, throttle-until and last-seen time.
-- (breaker_record.lua moves the breakers, in the same trip.)
-- KEYS     per provider i: KEYS[2i-1] window (hash), KEYS[2i] state (hash)
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] bucket (ms)   ARGV[3] buckets per window
-- ARGV[4]  latency decay tau (ms)   ARGV[5] state TTL (s)   ARGV[6] histogram buckets H
-- then per provider, 10 + H each: 0 longest throttle (ms), 1 calls, 2 successes, 3 failures,
--   4 slow calls, 5 latency sum (ms), 6 throttled, 7 longest retry-after asked (ms) or "",
--   8 first latency (ms) or "" (none but throttled), 9 largest latency (ms), then H histogram
--   counts (hist_bucket in Python)
-- Window fields are "<bucket>:<counter>": c calls, s successes, f failures, t throttled, w slow,
-- l latency sum (ms), h<n> histogram (C F W are breaker_record.lua's); "p" is the bucket it
-- was last pruned in. Every outcome counts here, whatever generation it was routed under.
-- Returns the number of outcomes counted.
local now = clock(ARGV[1])
local bucket_ms, buckets, tau = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl, hist = tonumber(ARGV[5]), tonumber(ARGV[6])
local current = math.floor(now / bucket_ms)
local slot = current .. ':'
local COUNTERS = {'c', 's', 'f', 'w', 'l', 't'}

local function prune(win)
  if tonumber(redis.call('HGET', win, 'p') or -1) == current then return end
  local doomed = {}
  for _, field in ipairs(redis.call('HKEYS', win)) do
    local b = tonumber(string.match(field, '^(%d+):'))
    if b and b <= current - buckets then doomed[#doomed + 1] = field end
  end
  for i = 1, #doomed, 1000 do
    redis.call('HDEL', win, unpack(doomed, i, math.min(i + 999, #doomed)))
  end
  redis.call('HSET', win, 'p', current)
end

-- The state's new fields: peak EWMA from the batch's first and largest latency (the first
-- decays the old value; a larger one replaces it), throttle-until, last seen.
local function state_fields(state, a)
  local old = redis.call('HMGET', state, 'ewma', 'ewma_at', 'throttle_until')
  local fields = {'last_seen', now}
  local first, peak = tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9])
  if first then
    local value = tonumber(old[1])
    if value and first < value then
      local keep = math.exp(-math.max(0, now - tonumber(old[2])) / tau)
      first = value * keep + first * (1 - keep)
    end
    fields[#fields + 1], fields[#fields + 2] = 'ewma', tostring(math.max(first, peak))
    fields[#fields + 1], fields[#fields + 2] = 'ewma_at', now
  end
  if ARGV[a + 7] ~= '' then
    local untl = now + math.min(tonumber(ARGV[a + 7]), tonumber(ARGV[a]))
    if untl > tonumber(old[3] or 0) then
      fields[#fields + 1], fields[#fields + 2] = 'throttle_until', untl
    end
  end
  return fields
end

local counted, width = 0, 10 + hist
for i = 1, #KEYS / 2 do
  local win, state, a = KEYS[2 * i - 1], KEYS[2 * i], 7 + width * (i - 1)
  prune(win)
  for n, counter in ipairs(COUNTERS) do
    local by = tonumber(ARGV[a + n])
    if by > 0 then redis.call('HINCRBY', win, slot .. counter, by) end
  end
  for h = 0, hist - 1 do
    local by = tonumber(ARGV[a + 10 + h])
    if by > 0 then redis.call('HINCRBY', win, slot .. 'h' .. h, by) end
  end
  redis.call('HSET', state, unpack(state_fields(state, a)))
  redis.call('PEXPIRE', win, (buckets + 1) * bucket_ms)
  redis.call('EXPIRE', state, ttl)
  counted = counted + tonumber(ARGV[a + 1]) + tonumber(ARGV[a + 6])
end
return counted
