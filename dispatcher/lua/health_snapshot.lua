-- Read every provider's health in one call, first making the transitions time alone causes:
-- open -> half_open once open_until has passed (`half_open_if_due`), expired probe permits
-- reclaimed, and the trip count reset after healthy_reset of closed health (`trips_reset`).
-- KEYS     per provider i: KEYS[5i-4] window, KEYS[5i-3] state, KEYS[5i-2] permits,
--          KEYS[5i-1] rate, KEYS[5i] the operator's override (a string with a TTL, or none)
-- ARGV[1]  now (ms, or "" for the Redis clock)   ARGV[2] bucket (ms)   ARGV[3] buckets per window
-- ARGV[4]  histogram buckets H
-- ARGV[5..] per provider, 3 each: healthy reset (ms), rate interval (ms; 0 = unlimited), burst
-- Returns {now, then per provider 18 + H values}: state, gen, trips, open_until, throttle_until,
-- closed_at, last_seen, ewma, permits in use, rate tokens free now ("" when unlimited), the
-- override (drain, open, close or "") and its ms left (-1: no expiry), then the window sums
-- calls, successes, failures, throttled, slow, latency sum (ms), h0..h(H-1).
-- Times are ms; a missing value is "".
local now = clock(ARGV[1])
local oldest = math.floor(now / tonumber(ARGV[2])) - tonumber(ARGV[3]) + 1
local hist = tonumber(ARGV[4])
local columns = {c = 1, s = 2, f = 3, t = 4, w = 5, l = 6}  -- the stats, not the verdict C F W
for n = 0, hist - 1 do columns['h' .. n] = 7 + n end
local out = {now}
for i = 1, #KEYS / 5 do
  local win, state, permits, rate = KEYS[5 * i - 4], KEYS[5 * i - 3], KEYS[5 * i - 2], KEYS[5 * i - 1]
  local override = redis.call('GET', KEYS[5 * i])
  local reset, interval, burst = tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3]),
                                 tonumber(ARGV[3 * i + 4])
  local phase = half_open_if_due(state, permits, now)
  local s = redis.call('HMGET', state, 'closed_at', 'trips')
  if tonumber(s[2] or 0) > 0 and trips_reset(phase, s[1], now, reset) then
    redis.call('HSET', state, 'trips', 0)
  end
  redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
  local f = redis.call('HMGET', state, 'state', 'gen', 'trips', 'open_until', 'throttle_until',
                       'closed_at', 'last_seen', 'ewma')
  local tokens = ''
  if interval > 0 then tokens = tostring(gcra_free(rate, now, interval, burst)) end
  out[#out + 1] = f[1] or 'closed'
  for k = 2, 8 do out[#out + 1] = f[k] or '' end
  out[#out + 1] = redis.call('ZCARD', permits)
  out[#out + 1] = tokens
  out[#out + 1] = override or ''
  out[#out + 1] = override and redis.call('PTTL', KEYS[5 * i]) or -1
  local sums = {}
  for k = 1, 6 + hist do sums[k] = 0 end
  local flat = redis.call('HGETALL', win)
  for j = 1, #flat, 2 do
    local b, counter = string.match(flat[j], '^(%d+):(%w+)$')
    local k = columns[counter]
    if k and tonumber(b) >= oldest then sums[k] = sums[k] + tonumber(flat[j + 1]) end
  end
  for k = 1, 6 + hist do out[#out + 1] = sums[k] end
end
return out
