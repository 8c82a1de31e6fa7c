-- Move each provider's circuit breaker on a batch of outcomes and release their probe permits.
-- Queued right after health_record.lua in the same round trip (which prunes and expires keys).
-- KEYS     per provider i: KEYS[3i-2] window (hash), KEYS[3i-1] state (hash), KEYS[3i] permits
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] bucket (ms)   ARGV[3] buckets per window
-- ARGV[4]  providers P   ARGV[5] open-time jitter j (0.2: +-20 %), then per provider 11 each: 1 slow call (ms), 2 minimum calls, 3 error
--   rate threshold, 4 slow-call rate threshold, 5 consecutive failures, 6 open (ms), 7 longest
--   open (ms), 8 misconfigured open (ms), 9 half-open successes, 10 healthy reset (ms), 11 jitter
--   draw 0..1; then per outcome 5 each: provider index i, class (S R T D A M, see
--   health_record.lua), latency (ms), generation seen when routed, permit token or ""
-- State: state (closed | open | half_open), gen, trips, open_until, consec, half_ok, closed_at.
-- Only an outcome of the current generation moves a breaker (fencing); each transition bumps
-- gen. Rates are judged on such outcomes only: window fields "<bucket>:C|F|W" (calls, failed,
-- slow). Returns each provider's generation after the batch.
local now = clock(ARGV[1])
local bucket_ms, buckets, providers = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local jitter = tonumber(ARGV[5])
local slot = math.floor(now / bucket_ms) .. ':'
local function param(i, n) return tonumber(ARGV[5 + 11 * (i - 1) + n]) end

local function trip(i, misconfigured)
  local state = KEYS[3 * i - 1]
  local s = redis.call('HMGET', state, 'state', 'trips', 'closed_at')
  local trips = tonumber(s[2] or 0) + 1
  if trips_reset(s[1] or 'closed', s[3], now, param(i, 10)) then trips = 1 end
  local open = param(i, 8)
  if not misconfigured then
    local spread = 1 - jitter + 2 * jitter * param(i, 11)
    open = math.min(param(i, 7), param(i, 6) * 2 ^ (trips - 1) * spread)
  end
  redis.call('HSET', state, 'state', 'open', 'trips', trips, 'open_until', math.floor(now + open),
             'consec', 0, 'half_ok', 0)
  redis.call('HINCRBY', state, 'gen', 1)
  redis.call('DEL', KEYS[3 * i])
end

local function close(i)
  redis.call('HSET', KEYS[3 * i - 1], 'state', 'closed', 'closed_at', now, 'consec', 0)
  redis.call('HINCRBY', KEYS[3 * i - 1], 'gen', 1)
  redis.call('DEL', KEYS[3 * i], KEYS[3 * i - 2])  -- old failures must not re-trip it at once
end

local function rates_trip(i)
  local sums, oldest = {C = 0, F = 0, W = 0}, math.floor(now / bucket_ms) - buckets + 1
  local flat = redis.call('HGETALL', KEYS[3 * i - 2])
  for j = 1, #flat, 2 do
    local b, counter = string.match(flat[j], '^(%d+):([CFW])$')
    if b and tonumber(b) >= oldest then sums[counter] = sums[counter] + tonumber(flat[j + 1]) end
  end
  local calls = sums.C
  return calls >= param(i, 2) and (sums.F >= param(i, 3) * calls or sums.W >= param(i, 4) * calls)
end

local function judge(i, class, latency, gen)  -- true when a closed breaker judged it
  local win, state = KEYS[3 * i - 2], KEYS[3 * i - 1]
  local s = redis.call('HMGET', state, 'state', 'gen', 'open_until')
  local phase, bad, slow = s[1] or 'closed', class == 'D' or class == 'A', latency > param(i, 1)
  if class == 'T' or gen ~= tonumber(s[2] or 0) then return false end
  if class == 'M' and phase == 'open' then
    local longer = math.floor(math.max(tonumber(s[3]), now + param(i, 8)))
    redis.call('HSET', state, 'open_until', longer)
  elseif class == 'M' then
    trip(i, true)
  elseif phase == 'half_open' and (bad or slow) then
    trip(i, false)
  elseif phase == 'half_open' and redis.call('HINCRBY', state, 'half_ok', 1) >= param(i, 9) then
    close(i)
  elseif phase == 'closed' then
    redis.call('HINCRBY', win, slot .. 'C', 1)
    if slow then redis.call('HINCRBY', win, slot .. 'W', 1) end
    if not bad then redis.call('HSET', state, 'consec', 0); return true end
    redis.call('HINCRBY', win, slot .. 'F', 1)
    if redis.call('HINCRBY', state, 'consec', 1) >= param(i, 5) then trip(i, false) end
    return true
  end
  return false
end

local judged = {}
for j = 6 + 11 * providers, #ARGV, 5 do
  local i = tonumber(ARGV[j])
  if ARGV[j + 4] ~= '' then redis.call('ZREM', KEYS[3 * i], ARGV[j + 4]) end
  if judge(i, ARGV[j + 1], tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3])) then judged[i] = true end
end
local generations = {}
for i = 1, providers do
  local state = KEYS[3 * i - 1]
  local closed = (redis.call('HGET', state, 'state') or 'closed') == 'closed'
  if judged[i] and closed and rates_trip(i) then trip(i, false) end
  generations[i] = tonumber(redis.call('HGET', state, 'gen') or 0)
end
return generations
