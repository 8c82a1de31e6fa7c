-- Count a batch of send outcomes into each provider's sliding window, peak-EWMA latency,
-- throttle-until and last-seen time. (breaker_record.lua moves the breakers, in the same trip.)
-- KEYS     per provider i: KEYS[2i-1] window (hash), KEYS[2i] state (hash)
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] bucket (ms)   ARGV[3] buckets per window
-- ARGV[4]  latency decay tau (ms)   ARGV[5] state TTL (s)   ARGV[6] providers P
-- ARGV[7..] per provider, 2 each: slow-call threshold (ms), longest throttle (ms)
-- then per outcome, 5 each: provider index i, class (S sent, R rejected, T throttled, D down,
--   A ambiguous, M misconfigured), latency (ms), histogram bucket (hist_bucket in Python),
--   retry-after (ms) or ""
-- Window fields are "<bucket>:<counter>": c calls, s successes, f failures, t throttled, w slow,
-- l latency sum (ms), h<n> histogram (C F W are breaker_record.lua's); "p" is the bucket it
-- was last pruned in. Every outcome counts here, whatever generation it was routed under.
-- Returns the number of outcomes counted.
local now = clock(ARGV[1])
local bucket_ms, buckets, tau = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl, providers = tonumber(ARGV[5]), tonumber(ARGV[6])
local current = math.floor(now / bucket_ms)
local slot = current .. ':'

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

local function peak_ewma(state, latency)
  local old = redis.call('HMGET', state, 'ewma', 'ewma_at')
  local value = tonumber(old[1])
  if value and latency < value then
    local keep = math.exp(-math.max(0, now - tonumber(old[2])) / tau)
    latency = value * keep + latency * (1 - keep)
  end
  redis.call('HSET', state, 'ewma', tostring(latency), 'ewma_at', now)
end

local pruned, counted = {}, 0
for j = 7 + 2 * providers, #ARGV, 5 do
  local i, class, latency = tonumber(ARGV[j]), ARGV[j + 1], tonumber(ARGV[j + 2])
  local win, state = KEYS[2 * i - 1], KEYS[2 * i]
  if not pruned[i] then prune(win); pruned[i] = true end
  if class == 'T' then
    redis.call('HINCRBY', win, slot .. 't', 1)
    if ARGV[j + 4] ~= '' then
      local untl = now + math.min(tonumber(ARGV[j + 4]), tonumber(ARGV[6 + 2 * i]))
      if untl > tonumber(redis.call('HGET', state, 'throttle_until') or 0) then
        redis.call('HSET', state, 'throttle_until', untl)
      end
    end
  else
    local ok = class == 'S' or class == 'R'
    redis.call('HINCRBY', win, slot .. 'c', 1)
    redis.call('HINCRBY', win, slot .. (ok and 's' or 'f'), 1)
    if latency > tonumber(ARGV[5 + 2 * i]) then redis.call('HINCRBY', win, slot .. 'w', 1) end
    redis.call('HINCRBY', win, slot .. 'l', latency)
    redis.call('HINCRBY', win, slot .. 'h' .. ARGV[j + 3], 1)
    peak_ewma(state, latency)
  end
  redis.call('HSET', state, 'last_seen', now)
  redis.call('PEXPIRE', win, (buckets + 1) * bucket_ms)
  redis.call('EXPIRE', state, ttl)
  counted = counted + 1
end
return counted
